"""Ready-made nodes for graphs written in YAML (``impl: sdk.builtins:Template``)."""

from __future__ import annotations

from typing import Any

from tickrail.sdk.context import PlanContext, TaskContext
from tickrail.sdk.decision import Finish, Next
from tickrail.sdk.node import Plan, Task


class Echo(Task):
    """Returns its input unchanged."""

    async def run(self, ctx: TaskContext) -> Any:
        return ctx.input


class Template(Task):
    """Formats ``template`` with the fields of its input (a JSON object).

    ``defaults`` fill fields the input does not give.
    """

    def __init__(self, template: str, defaults: dict[str, Any] | None = None) -> None:
        self.template = template
        self.defaults = dict(defaults or {})

    async def run(self, ctx: TaskContext) -> str:
        fields = {**self.defaults, **(ctx.input if isinstance(ctx.input, dict) else {})}
        try:
            return self.template.format_map(fields)
        except KeyError as exc:
            raise ValueError(
                f"template needs field {exc.args[0]!r}; input has {sorted(fields)}"
            ) from None


class Sequence(Plan):
    """Runs ``steps`` one after another, then finishes with the last result."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = list(steps)

    async def plan(self, ctx: PlanContext) -> Next | Finish:
        if not ctx.upstream:
            return Next(self.steps[0])
        done = ctx.upstream[-1].name
        index = self.steps.index(done) + 1 if done in self.steps else len(self.steps)
        if index >= len(self.steps):
            return Finish(ctx.input)
        return Next({self.steps[index]: ctx.input})
