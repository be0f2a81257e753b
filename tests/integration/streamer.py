"""A graph whose Task streams output with ctx.emit, to follow it across processes."""

from __future__ import annotations

from tickrail.sdk import AgentGraph, Task, TaskContext, final

WORDS = ["streamed ", "across ", "processes, ", "21 °C"]


class Stream(Task):
    async def run(self, ctx: TaskContext) -> str:
        for word in WORDS:
            ctx.emit(word)
        ctx.emit({"words": len(WORDS)})
        return "".join(WORDS)


graph = AgentGraph(
    "streamer", version="1.0.0", entry="stream", nodes=[Stream()], edges=[final("stream")]
)
