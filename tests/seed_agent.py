"""Drive examples/seed_coding_agent.py as a person would: answer each question asked.

Works for any profile: it reads the waiting questions from the store and
answers them through a ``resume`` callable (the CLI, in or out of process).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tickrail.adapters import open_store
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.control_plane.projection import rebuild

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "seed_coding_agent.py"
APP = "a todo list for my team"
STORAGE = "in sqlite"
REJECT = "reject: use async handlers"


def header(envelope: pb.ExecutionEnvelope) -> pb.ExecutionHeader:
    return getattr(envelope, envelope.WhichOneof("execution") or "task").header


async def recorded(store_url: str, lifetime_id: str) -> tuple[list[Any], list[Any]]:
    async with open_store(store_url) as store:
        events = [pb.LifetimeEvent.FromString(r.body) for r in await store.events(lifetime_id)]
        executions = [
            pb.ExecutionEnvelope.FromString(r.envelope) for r in await store.executions(lifetime_id)
        ]
    return events, executions


async def waiting(store_url: str, lifetime_id: str) -> tuple[int, dict[str, str]]:
    """The lifetime's status and its open questions (exec id -> prompt), oldest first."""
    events, executions = await recorded(store_url, lifetime_id)
    by_id = {header(e).exec_id: e for e in executions}
    state = rebuild(events, by_id)
    assert state is not None
    asked = {x: by_id[x].task.result.human_prompt for x in sorted(state.waiting, key=_order)}
    return state.status, asked


def _order(exec_id: str) -> tuple[int, ...]:
    return tuple(int(p) for p in exec_id.rsplit(".", 2)[-2:])


def answer(prompt: str, answered: list[tuple[str, str]]) -> str:
    """The person's policy: describe, clarify, reject the first candidate, accept the next."""
    if prompt.startswith("Describe"):
        return APP
    if prompt.startswith("Where should data be stored"):
        return STORAGE
    reviewed = [a for p, a in answered if p.startswith("candidate")]
    return REJECT if not reviewed else "accept"


def drive(
    store_url: str,
    lifetime_id: str,
    resume: Callable[[str, str], int],
    *,
    limit: int = 20,
) -> list[tuple[str, str]]:
    """Answer questions until the lifetime ends; returns (prompt, answer) in order.

    Synchronous: ``resume`` is typically the CLI, which runs its own event loop.
    """
    answered: list[tuple[str, str]] = []
    for _ in range(limit):
        status, asked = asyncio.run(waiting(store_url, lifetime_id))
        if status != pb.LIFETIME_STATUS_PAUSED:
            return answered
        assert asked, "a PAUSED lifetime here always waits for a person"
        exec_id, prompt = next(iter(asked.items()))
        reply = answer(prompt, answered)
        answered.append((prompt, reply))
        code = resume(exec_id, json.dumps(reply))
        assert code in (0, 3), f"resume exited {code}"
    raise AssertionError(f"still waiting after {limit} answers: {answered}")
