"""What the benchmarks measure besides time: the collector's CPU and the data plane's commits."""

from __future__ import annotations

import time

from tickrail.services import metrics


class CollectorClock:
    """The garbage collector's CPU time, from its start/stop callbacks (``gc.callbacks``)."""

    def __init__(self) -> None:
        self.seconds, self._started = 0.0, 0.0

    def __call__(self, phase: str, _: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
        else:
            self.seconds += time.thread_time() - self._started


def data_plane_batches() -> int:
    """Batches the data plane handled; in one process each is one transaction."""
    return sum(metrics.batch_duration.labels(role="data_plane").counts)
