"""When a lifetime stops moving: what followers (``run``, ``resume``, an owner) wait for.

A lifetime stops when it ends (completed, failed, aborted), when it is held
(a pause command or a guardrail's PAUSE_LIFETIME), and when nothing can run
until a person answers (the control plane's ``paused`` event with ``idle``).
A branch asking a person is not a stop by itself: the lifetime shows PAUSED,
but its other branches go on, and a follower that left then would leave work
running with nobody watching.
"""

from __future__ import annotations

from tickrail.sdk.pb import envelope_pb2 as pb

TERMINAL = frozenset({"completed", "failed", "aborted"})


class StopWatch:
    """Feed it one lifetime's events in order; it says which one stops it."""

    def __init__(self) -> None:
        self._asking: set[str] = set()  # exec ids whose branch waits for a person

    def stops(self, event: pb.LifetimeEvent) -> bool:
        kind = event.WhichOneof("kind")
        if kind in TERMINAL:
            return True
        if kind == "routed":
            if event.routed.status == pb.EXECUTION_STATUS_WAITING:
                self._asking.add(event.routed.exec_id)
            return False
        if kind == "paused":
            paused = event.paused
            return paused.idle or not paused.exec_id or paused.exec_id not in self._asking
        return False
