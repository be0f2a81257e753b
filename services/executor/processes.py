"""A process pool for CPU-bound ``def`` Tasks (``pool = "process"``).

Workers are spawned, not forked (forking a process that runs threads and an
event loop can deadlock), so each worker imports the graph files this
process loaded from paths, under the same module names: the Task classes then
pickle by reference like any importable class.
"""

from __future__ import annotations

import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from tickrail.sdk.context import _NO_ANSWER, TaskContext, Usage, set_current
from tickrail.sdk.node import Task

_FILE_MODULES = "tickrail_graph_"  # how sdk.loading names modules loaded from files


def open_process_pool(size: int) -> ProcessPoolExecutor:
    files = [
        str(module.__file__)
        for name, module in list(sys.modules.items())
        if name.startswith(_FILE_MODULES) and getattr(module, "__file__", None)
    ]
    return ProcessPoolExecutor(
        max_workers=size,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_load_graph_files,
        initargs=(files,),
    )


def _load_graph_files(files: list[str]) -> None:
    from tickrail.sdk.loading import _import_file

    for file in files:
        _import_file(Path(file))


def run_in_child(node: Task, ctx: TaskContext, answered: bool) -> tuple[Any, Usage]:
    """Runs in the worker: the Task's result and the usage it recorded.

    ``answered`` is decided by the parent: the no-answer sentinel does not
    survive pickling, so the child restores its own.
    """
    if not answered:
        ctx.human_input = _NO_ANSWER
    restore = set_current(ctx)  # tickrail.llm records on it here too
    try:
        return node.run(ctx), ctx.usage
    finally:
        restore()
