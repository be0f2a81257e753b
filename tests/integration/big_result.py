"""A graph whose only Task returns 3 MB, to send a result through the blob store."""

from __future__ import annotations

from tickrail.sdk import AgentGraph, Task, TaskContext, final

SIZE = 3 * 1024 * 1024


def payload() -> bytes:
    return bytes(range(256)) * (SIZE // 256)


class Produce(Task):
    async def run(self, ctx: TaskContext) -> bytes:
        return payload()


graph = AgentGraph(
    "big_result", version="1.0.0", entry="produce", nodes=[Produce()], edges=[final("produce")]
)
