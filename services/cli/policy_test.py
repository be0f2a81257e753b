"""``tickrail policy test``: what a policy set would have done to a recorded lifetime."""

from __future__ import annotations

import argparse
import json

from tickrail.adapters import open_store
from tickrail.sdk._envelope import header_of
from tickrail.sdk._redact import redact_url
from tickrail.sdk.errors import LifetimeNotFoundError
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.control_plane.guardrails import PolicySet, what_if


async def run_policy_test(args: argparse.Namespace, settings: Settings) -> int:
    """Evaluate ``args.files`` against every recorded execution, in order. Read-only:
    nothing is written to the store, and the lifetime itself is not changed."""
    policies = PolicySet.load(args.files)
    async with open_store(settings.store_url) as store:
        events = await store.events(args.lifetime)
        if not events:
            raise LifetimeNotFoundError(
                f"no lifetime {args.lifetime!r} in {redact_url(settings.store_url)}"
            )
        records = await store.executions(args.lifetime)
    started_at = events[0].created_at
    envelopes = [pb.ExecutionEnvelope.FromString(r.envelope) for r in records]
    names = {}
    for envelope in envelopes:
        header = header_of(envelope)
        names[header.exec_id] = header.name
    found = await what_if(policies, envelopes, started_at)
    # After an abort nothing would have run, so later verdicts are hypothetical.
    for index, (_, verdict) in enumerate(found):
        if verdict.action == "ABORT_LIFETIME":
            found = found[: index + 1]
            break
    if args.json:
        print(
            json.dumps(
                [
                    {
                        "exec_id": exec_id,
                        "node": names.get(exec_id, ""),
                        "rule": v.rule,
                        "action": v.action,
                        "scope": v.scope,
                        "message": v.message,
                        "observed": v.observed,
                        "policy_version": v.policy_version,
                    }
                    for exec_id, v in found
                ],
                indent=2,
                ensure_ascii=False,
                default=str,
            )
        )
        return 0
    print(
        f"policy set {policies.version} against lifetime {args.lifetime} "
        f"({len(envelopes)} executions): {len(found)} verdict(s)"
    )
    for exec_id, v in found:
        seen = ", ".join(f"{k}={val}" for k, val in sorted(v.observed.items()))
        print(
            f"  {exec_id:<28} {names.get(exec_id, ''):<16} {v.action:<17} {v.rule}: "
            f"{v.message} [saw {seen}]"
        )
    if not found:
        print("  no execution would have been rejected, paused or aborted")
    elif found[-1][1].action == "ABORT_LIFETIME":
        print(
            f"  the lifetime would have been ABORTED at {found[-1][0]}; "
            "nothing after it would have run"
        )
    return 0
