"""tickrail.llm: real openai/anthropic clients, against a local server speaking their wire format.

Each case runs a one-Task graph on the test profile; the Task calls the model
through a wrapped client (sync in a ``def`` Task's thread, async in an
``async def`` Task), and the test reads what the executor recorded: tokens,
served model and a cost that must equal the genai-prices table's. Streamed
cases also check that the text reached watchers live, as ``output`` events
before the lifetime completed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pydantic
import pytest
from genai_prices import Usage, calc_price

from tickrail import AgentGraph, Task, TaskContext, final, llm
from tickrail.sdk._payload import read_value
from tickrail.sdk.pb import envelope_pb2 as pb
from tickrail.services.config import Settings
from tickrail.services.runtime import Runtime

from .llm_server import ANTHROPIC_USAGE, OPENAI_USAGE, TEXT_CHUNKS, FakeProvider

TEXT = "".join(TEXT_CHUNKS)


class Hi(pydantic.BaseModel):
    greeting: str


@pytest.fixture(scope="module")
def provider() -> Iterator[FakeProvider]:
    with FakeProvider() as server:
        yield server


def clients(provider: FakeProvider, is_async: bool) -> tuple[Any, Any]:
    options: dict[str, Any] = {"api_key": "test-key", "max_retries": 0, "timeout": 30}
    if is_async:
        return (
            openai.AsyncOpenAI(base_url=provider.url + "/v1", **options),
            anthropic.AsyncAnthropic(base_url=provider.url, **options),
        )
    return (
        openai.OpenAI(base_url=provider.url + "/v1", **options),
        anthropic.Anthropic(base_url=provider.url, **options),
    )


def sync_call(api: str, stream: bool, oa: Any, an: Any) -> str:
    """One model call the way a user writes it; returns the text."""
    ask = [{"role": "user", "content": "Say hello in French"}]
    if api == "chat":
        if not stream:
            reply = oa.chat.completions.create(model="gpt-4o-mini", messages=ask)
            return str(reply.choices[0].message.content)
        parts = []
        for chunk in oa.chat.completions.create(model="gpt-4o-mini", messages=ask, stream=True):
            parts += [c.delta.content or "" for c in chunk.choices]
        return "".join(parts)
    if api == "responses":
        if not stream:
            return str(oa.responses.create(model="gpt-4o-mini", input="hi").output_text)
        with oa.responses.create(model="gpt-4o-mini", input="hi", stream=True) as events:
            return "".join(e.delta for e in events if e.type == "response.output_text.delta")
    if api == "chat.parse":  # structured output: the SDK posts by itself
        parsed = oa.chat.completions.parse(model="gpt-4o-mini", messages=ask, response_format=Hi)
        return str(parsed.choices[0].message.parsed.greeting)
    if api == "responses.parse":
        got = oa.responses.parse(model="gpt-4o-mini", input="hi", text_format=Hi)
        return str(got.output_parsed.greeting)
    if api == "chat.stream":  # the SDK's helper, built on chat.completions.create
        with oa.chat.completions.stream(model="gpt-4o-mini", messages=ask) as helper:
            return "".join(e.delta for e in helper if e.type == "content.delta")
    if api == "responses.stream":
        with oa.responses.stream(model="gpt-4o-mini", input="hi") as helper:
            return "".join(e.delta for e in helper if e.type == "response.output_text.delta")
    kwargs = {"model": "claude-3-5-haiku-latest", "max_tokens": 100, "messages": ask}
    if api == "messages":
        if not stream:
            return str(an.messages.create(**kwargs).content[0].text)
        parts = []
        for event in an.messages.create(**kwargs, stream=True):
            if event.type == "content_block_delta":
                parts.append(event.delta.text)
        return "".join(parts)
    with an.messages.stream(**kwargs) as helper:  # api == "messages.stream"
        return "".join(helper.text_stream)


async def async_call(api: str, stream: bool, oa: Any, an: Any) -> str:
    ask = [{"role": "user", "content": "Say hello in French"}]
    if api == "chat":
        if not stream:
            reply = await oa.chat.completions.create(model="gpt-4o-mini", messages=ask)
            return str(reply.choices[0].message.content)
        parts = []
        chunks = await oa.chat.completions.create(model="gpt-4o-mini", messages=ask, stream=True)
        async for chunk in chunks:
            parts += [c.delta.content or "" for c in chunk.choices]
        return "".join(parts)
    if api == "responses":
        if not stream:
            return str((await oa.responses.create(model="gpt-4o-mini", input="hi")).output_text)
        parts = []
        async with await oa.responses.create(model="gpt-4o-mini", input="hi", stream=True) as ev:
            async for e in ev:
                if e.type == "response.output_text.delta":
                    parts.append(e.delta)
        return "".join(parts)
    if api == "chat.parse":
        parsed = await oa.chat.completions.parse(
            model="gpt-4o-mini", messages=ask, response_format=Hi
        )
        return str(parsed.choices[0].message.parsed.greeting)
    if api == "responses.parse":
        got = await oa.responses.parse(model="gpt-4o-mini", input="hi", text_format=Hi)
        return str(got.output_parsed.greeting)
    if api == "chat.stream":
        async with oa.chat.completions.stream(model="gpt-4o-mini", messages=ask) as helper:
            return "".join([e.delta async for e in helper if e.type == "content.delta"])
    if api == "responses.stream":
        async with oa.responses.stream(model="gpt-4o-mini", input="hi") as helper:
            return "".join(
                [e.delta async for e in helper if e.type == "response.output_text.delta"]
            )
    kwargs = {"model": "claude-3-5-haiku-latest", "max_tokens": 100, "messages": ask}
    if api == "messages":
        if not stream:
            return str((await an.messages.create(**kwargs)).content[0].text)
        parts = []
        async for event in await an.messages.create(**kwargs, stream=True):
            if event.type == "content_block_delta":
                parts.append(event.delta.text)
        return "".join(parts)
    async with an.messages.stream(**kwargs) as helper:
        return "".join([t async for t in helper.text_stream])


def model_task(call: Callable[[TaskContext], Any], is_async: bool) -> Task:
    if is_async:

        class AsyncAsk(Task):
            name = "ask"

            async def run(self, ctx: TaskContext) -> Any:
                return await call(ctx)

        return AsyncAsk()

    class Ask(Task):
        name = "ask"

        def run(self, ctx: TaskContext) -> Any:  # a def Task: runs in a worker thread
            return call(ctx)

    return Ask()


async def run_task(tmp_path: Path, task: Task) -> tuple[pb.TaskExecution, list[pb.LifetimeEvent]]:
    graph = AgentGraph("llm", version="1.0.0", entry="ask", nodes=[task], edges=[final("ask")])
    seen: list[pb.LifetimeEvent] = []
    async with Runtime(Settings(profile="test", home=str(tmp_path)), [graph]) as rt:
        lifetime_id = await rt.start_lifetime(graph, None, on_event=seen.append)
        end = await rt.wait(lifetime_id, timeout=60)
        assert end.WhichOneof("kind") == "completed", end
        records = await rt.store.executions(lifetime_id)
        envelope = pb.ExecutionEnvelope.FromString(records[0].envelope)
        assert await read_value(envelope.task.result.output, rt.blobs) == TEXT
    return envelope.task, seen


def table_cost(model: str, provider: str, total_in: int, out: int, cached: int) -> float:
    usage = Usage(input_tokens=total_in, output_tokens=out, cache_read_tokens=cached)
    return float(calc_price(usage, model, provider_id=provider).total_price)


HELPERS = ("chat.stream", "responses.stream", "messages.stream", "chat.parse", "responses.parse")
CASES = [
    (api, stream)
    for api in ("chat", "responses", "messages", *HELPERS)
    for stream in (False, True)
    # a .stream() helper always streams, a .parse() never does
    if not (api.endswith(".stream") and not stream) and not (api.endswith(".parse") and stream)
]
CASE_IDS = [f"{api}-{'stream' if stream else 'json'}" for api, stream in CASES]


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
@pytest.mark.parametrize(("api", "stream"), CASES, ids=CASE_IDS)
async def test_a_wrapped_client_records_tokens_model_and_cost(
    tmp_path: Path, provider: FakeProvider, api: str, stream: bool, is_async: bool
) -> None:
    oa, an = clients(provider, is_async)
    llm.wrap(oa)
    llm.wrap(an)
    if is_async:

        async def call(ctx: TaskContext) -> Any:
            return await async_call(api, stream, oa, an)
    else:

        def call(ctx: TaskContext) -> Any:  # type: ignore[misc]
            return sync_call(api, stream, oa, an)

    execution, events = await run_task(tmp_path, model_task(call, is_async))
    telemetry = execution.telemetry
    if api.startswith(("chat", "responses")):
        u = OPENAI_USAGE
        model = "gpt-4o-mini-2024-07-18" if api.startswith("chat") else "gpt-4o-mini"
        expected_in, expected_out, cached = u["prompt"], u["completion"], u["cached"]
        expected_cost = table_cost(model, "openai", expected_in, expected_out, cached)
    else:
        u = ANTHROPIC_USAGE
        model = "claude-3-5-haiku-latest"
        expected_in = u["input"] + u["cache_read"] + u["cache_write"]
        expected_out = u["output"]
        expected_cost = table_cost(model, "anthropic", expected_in, expected_out, u["cache_read"])
    assert (telemetry.tokens_in, telemetry.tokens_out) == (expected_in, expected_out)
    assert telemetry.model == model
    assert expected_cost > 0
    assert telemetry.cost_usd == pytest.approx(expected_cost, rel=1e-9)

    outputs = [e.output for e in events if e.WhichOneof("kind") == "output"]
    kinds = [e.WhichOneof("kind") for e in events]
    if stream:
        assert [o.text for o in outputs] == TEXT_CHUNKS
        assert [o.index for o in outputs] == list(range(len(TEXT_CHUNKS)))
        assert {o.exec_id for o in outputs} == {execution.header.exec_id}
        assert kinds.index("output") < kinds.index("completed")  # live, before the end
    else:
        assert outputs == []


def test_a_streamed_chat_call_asks_for_usage(provider: FakeProvider) -> None:
    oa, _ = clients(provider, False)
    llm.wrap(oa)
    before = len(provider.requests)
    text = sync_call("chat", True, oa, None)  # outside a Task: passes through, records nothing
    assert text == TEXT
    path, body = provider.requests[before]
    assert path.endswith("/chat/completions")
    assert body["stream_options"] == {"include_usage": True}
    ask = [{"role": "user", "content": "hi"}]
    chunks = oa.chat.completions.create(
        model="gpt-4o-mini",
        messages=ask,
        stream=True,
        stream_options={"include_obfuscation": False},
    )
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == TEXT
    _, body = provider.requests[-1]
    assert body["stream_options"] == {"include_obfuscation": False, "include_usage": True}


async def test_private_prices_override_the_table(tmp_path: Path, provider: FakeProvider) -> None:
    oa, _ = clients(provider, False)
    # Keyed by the requested model; the response names its dated snapshot.
    llm.wrap(oa, prices={"gpt-4o-mini": llm.Price(input=2.0, output=10.0, cache_read=0.5)})

    def call(ctx: TaskContext) -> Any:
        return sync_call("chat", True, oa, None)

    execution, _ = await run_task(tmp_path, model_task(call, False))
    u = OPENAI_USAGE
    expected = (
        (u["prompt"] - u["cached"]) * 2.0 + u["cached"] * 0.5 + u["completion"] * 10.0
    ) / 1e6
    assert execution.telemetry.cost_usd == pytest.approx(expected, rel=1e-9)


async def test_process_wide_prices_and_unknown_models(
    tmp_path: Path, provider: FakeProvider
) -> None:
    _, an = clients(provider, False)
    llm.wrap(an)
    kwargs = {
        "model": "claude-private-7",
        "max_tokens": 5,
        "messages": [{"role": "user", "content": "x"}],
    }

    def call(ctx: TaskContext) -> Any:
        return an.messages.create(**kwargs).content[0].text

    execution, _ = await run_task(tmp_path, model_task(call, False))
    assert execution.telemetry.cost_usd == 0  # not in the table: recorded, costs 0
    assert execution.telemetry.tokens_out == ANTHROPIC_USAGE["output"]
    llm.set_prices({"claude-private-7": llm.Price(input=1.0, output=1.0)})
    try:
        execution, _ = await run_task(tmp_path / "again", model_task(call, False))
    finally:
        llm.clear_prices()
    u = ANTHROPIC_USAGE
    assert execution.telemetry.cost_usd == pytest.approx(
        (u["input"] + u["cache_read"] + u["output"]) / 1e6
    )


def test_wrap_refuses_other_objects() -> None:
    with pytest.raises(TypeError, match="openai and anthropic"):
        llm.wrap(object())
    with pytest.raises(ValueError, match=r"Price\.input"):
        llm.Price(input=-1, output=0)
