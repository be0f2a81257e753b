"""Checks on commands before they are sent: the rules of resuming a PAUSED lifetime.

Shared by ``tickrail lifetimes resume`` and the ResumeLifetime RPC. A PAUSED
lifetime is *held* (a pause command or a guardrail), has branches WAITING for
a person (``ctx.ask_human``), or both. An answer goes to one waiting
execution: the one named, or the only one. A resume without an answer lifts a
hold; it cannot answer anybody, so it is refused when nothing is held.
"""

from __future__ import annotations

from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.pb import envelope_pb2 as pb

from .state import LifetimeState


class ResumeRefused(ConfigurationError):
    """This resume cannot be applied. ``field`` names the argument at fault
    ('' when the lifetime's state, not an argument, is the reason)."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def resume_command(
    state: LifetimeState, *, answer: pb.Payload | None, exec_id: str, reason: str
) -> pb.LifetimeResumed:
    """The LifetimeResumed to send, or ResumeRefused saying why not."""
    resume = pb.LifetimeResumed(reason=reason)
    waiting = state.waiting
    asked = ", ".join(f"{e} ({i.name})" for e, i in waiting.items()) or "none"
    if answer is None and not exec_id:
        if not state.held:
            raise ResumeRefused(f"the lifetime waits for a person; answer with an input: {asked}")
        return resume
    if exec_id and exec_id not in waiting:
        raise ResumeRefused(f"{exec_id} is not waiting for input; waiting: {asked}", "exec_id")
    if not exec_id and len(waiting) != 1:
        raise ResumeRefused(f"say which waiting execution the input answers: {asked}", "exec_id")
    if answer is None:
        raise ResumeRefused("an answer to deliver to the waiting execution is needed", "input")
    resume.human_input.CopyFrom(answer)
    resume.exec_id = exec_id or next(iter(waiting))
    return resume
