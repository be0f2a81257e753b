"""``wrap(client)``: an openai or anthropic client whose calls record their usage.

The wrapper patches the client's own resource objects in place (the client
stays the same object, with its types), the way LangSmith's ``wrap_openai``
does: ``chat.completions.create``/``parse``, ``responses.create``/``parse``
(openai; their ``.stream()`` helpers call ``create``, so they are counted
too) and ``messages.create`` / ``messages.stream`` (anthropic), sync and
async, streamed or not. Not counted: ``with_raw_response`` calls and the
``beta`` namespaces. Every call made while a node runs (found through the
context the executor sets) adds its tokens, model and cost to that
execution's telemetry; streamed text is also forwarded to ``ctx.emit`` so
watchers see it live. Calls outside a node pass through untouched.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from ._observe import Call
from ._streams import (
    AsyncObservedStream,
    AsyncObservedStreamManager,
    ObservedStream,
    ObservedStreamManager,
)
from .prices import Price, _checked

ClientT = TypeVar("ClientT")

_WRAPPED = "_tickrail_wrapped"


def wrap(
    client: ClientT,
    *,
    prices: Mapping[str, Price] | None = None,
    emit: bool = True,
) -> ClientT:
    """Record every call's tokens, model and cost on the running Task.

    ``client`` is an ``openai.OpenAI``/``AsyncOpenAI`` (Azure too) or an
    ``anthropic.Anthropic``/``AsyncAnthropic``. ``prices`` overrides the public
    price table for these model names (USD per million tokens, see ``Price``).
    ``emit=False`` keeps streamed tokens from being forwarded to ``ctx.emit``.
    Returns the same client; wrapping twice is harmless.
    """
    if getattr(client, _WRAPPED, False):
        return client
    overrides = _checked(prices or {})
    provider = _provider(client)
    if provider == "openai":
        # ``stream()`` helpers call ``create``; ``parse()`` posts by itself.
        for method in ("create", "parse"):
            _patch(client.chat.completions, method, "openai", "chat", overrides, emit)  # type: ignore[attr-defined]
            responses = getattr(client, "responses", None)
            if responses is not None and hasattr(responses, method):
                _patch(responses, method, "openai", "responses", overrides, emit)
    else:
        _patch(client.messages, "create", "anthropic", "messages", overrides, emit)  # type: ignore[attr-defined]
        _patch_stream_helper(client.messages, overrides, emit)  # type: ignore[attr-defined]
    setattr(client, _WRAPPED, True)
    return client


def wrap_openai(client: ClientT, **options: Any) -> ClientT:
    if _provider(client) != "openai":
        name = type(client).__qualname__
        raise TypeError(f"wrap_openai needs an openai client, got {name}")
    return wrap(client, **options)


def wrap_anthropic(client: ClientT, **options: Any) -> ClientT:
    if _provider(client) != "anthropic":
        raise TypeError(
            f"wrap_anthropic needs an anthropic client, got {type(client).__qualname__}"
        )
    return wrap(client, **options)


def _provider(client: object) -> str:
    for cls in type(client).__mro__:
        root = cls.__module__.partition(".")[0]
        if root in ("openai", "anthropic"):
            return root
    raise TypeError(
        f"tickrail.llm.wrap supports openai and anthropic clients, got {type(client).__qualname__}"
    )


def _patch(
    resource: Any,
    method: str,
    provider: str,
    api: str,
    prices: Mapping[str, Price],
    emit: bool,
) -> None:
    original: Callable[..., Any] = getattr(resource, method)

    def call_for(kwargs: dict[str, Any]) -> Call:
        return Call(provider, api, str(kwargs.get("model", "")), prices, emit)

    @functools.wraps(original)
    def create(*args: Any, **kwargs: Any) -> Any:
        call = call_for(kwargs)
        streaming = _streaming(api, kwargs)
        result = original(*args, **kwargs)
        # The async clients' methods are plain functions returning a coroutine
        # (behind the SDKs' argument-checking decorators), so look at the result.
        if inspect.isawaitable(result):
            return _finish_async(result, call, streaming)
        if streaming:
            return ObservedStream(result, call)
        call.response(result)
        return result

    setattr(resource, method, create)


async def _finish_async(pending: Any, call: Call, streaming: bool) -> Any:
    result = await pending
    if streaming:
        return AsyncObservedStream(result, call)
    call.response(result)
    return result


def _streaming(api: str, kwargs: dict[str, Any]) -> bool:
    if kwargs.get("stream") is not True:
        return False
    if api == "chat":
        # Chat completions report usage on a stream only when asked to. The SDK's
        # own helpers pass an "omitted" sentinel, which is falsy, for no options.
        options = kwargs.get("stream_options")
        if not options:
            kwargs["stream_options"] = {"include_usage": True}
        elif isinstance(options, dict) and "include_usage" not in options:
            kwargs["stream_options"] = {**options, "include_usage": True}
    return True


def _patch_stream_helper(resource: Any, prices: Mapping[str, Price], emit: bool) -> None:
    original = getattr(resource, "stream", None)
    if original is None:
        return
    is_async = type(resource).__name__.startswith("Async")

    @functools.wraps(original)
    def stream(*args: Any, **kwargs: Any) -> Any:
        call = Call("anthropic", "messages", str(kwargs.get("model", "")), prices, emit)
        manager = original(*args, **kwargs)
        if is_async:
            return AsyncObservedStreamManager(manager, call)
        return ObservedStreamManager(manager, call)

    resource.stream = stream
