"""Garbage-collector thresholds for a process that runs tickrail roles.

Thousands of concurrent lifetimes keep their steps' objects alive for the tens
of milliseconds a step waits (a model, a tool, the next hop): long enough to
survive the young generations, so with CPython's default thresholds a full
collection came every ten second-generation collections and walked the whole
heap each time. CPU per execution then grew with the number of live
lifetimes: bench/scale.py spent 42 µs per execution in the collector at 1,000
lifetimes and 110 µs at 10,000, most of it in 62 full collections of ~0.3 s.

A young collection now waits for ``YOUNG`` new objects instead of 700, so a
step's short-lived objects are mostly gone before it runs and far fewer are
promoted; a full collection, still due only once the survivors since the last
one reach a quarter of the heap (CPython's own rule), also waits for
``FULL_AFTER`` second-generation collections. Reference cycles are freed as
before, only later. Measured (bench/scale.py, 10 Tasks of 50 ms per lifetime,
loaded machine): collector 42 -> 17 µs per execution at 1,000 lifetimes and
110 -> 27 µs at 10,000 (no full collection left in that run); peak RSS the
same (83 / 308 MiB before, 82 / 297 after).

Tried and left: ``YOUNG`` 100,000. The collector's own time fell (1,000
lifetimes x 10 Tasks: 35 -> 3 µs per execution; 10,000: 54 -> 39), but the
CPU per execution did not (1,000 lifetimes, medians of 3 interleaved runs:
453 µs with 100,000, 442 µs with 10,000), the 200-step chain counted +8.6 k
instructions per step over 600 steps, and a young collection with 10,000
live lifetimes took ~70 ms instead of ~6 ms: a pause the cloud's planner
loop would feel.
"""

from __future__ import annotations

import gc

#: CPython's defaults: a process that changed them keeps its own choice.
PYTHON_DEFAULTS = (700, 10, 10)
YOUNG = 10_000
MIDDLE = 10
FULL_AFTER = 100


def tune() -> bool:
    """Set tickrail's thresholds unless the process chose its own; True if set."""
    if gc.get_threshold() != PYTHON_DEFAULTS:
        return False
    gc.set_threshold(YOUNG, MIDDLE, FULL_AFTER)
    return True
