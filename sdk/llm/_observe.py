"""Read tokens, model and text out of provider responses and stream events.

One ``Call`` per model call: it accumulates what the response or the stream
reports and records it once on the running node's context (``record_usage``),
priced from the table. Streamed text is forwarded to ``ctx.emit`` as it
arrives. Every reader is duck-typed on the SDKs' response objects, so this
module imports neither SDK.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from tickrail.sdk.context import NodeContext, TaskContext, current_context

from .prices import Price, TokenCount, cost_usd


def _int(obj: Any, name: str) -> int:
    value = getattr(obj, name, None) if obj is not None else None
    return value if isinstance(value, int) else 0


class Call:
    """What one call used; ``record()`` puts it on the node that made the call."""

    def __init__(
        self,
        provider: str,
        api: str,
        model: str,
        prices: Mapping[str, Price],
        emit: bool,
    ) -> None:
        self.provider, self.api = provider, api
        self.model = model  # the requested model until a response names the served one
        self.prices = prices
        self.ctx: NodeContext | None = current_context()
        self.emit = emit and isinstance(self.ctx, TaskContext)
        self.tokens = TokenCount()
        self.recorded = False

    # ---- whole responses ----------------------------------------------------

    def response(self, response: Any) -> None:
        """A non-streamed response (chat completion, response, message)."""
        self._model(response)
        self._usage(getattr(response, "usage", None))
        self.record()

    # ---- stream events --------------------------------------------------------

    def event(self, event: Any) -> None:
        if self.api == "chat":
            self._chat_chunk(event)
        elif self.api == "responses":
            self._responses_event(event)
        else:
            self._messages_event(event)

    def _chat_chunk(self, chunk: Any) -> None:
        self._model(chunk)
        for choice in getattr(chunk, "choices", None) or ():
            text = getattr(getattr(choice, "delta", None), "content", None)
            if isinstance(text, str) and text:
                self._text(text)
        if getattr(chunk, "usage", None) is not None:  # the last chunk, with include_usage
            self._usage(chunk.usage)

    def _responses_event(self, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "response.output_text.delta":
            self._text(getattr(event, "delta", ""))
        elif kind in ("response.completed", "response.incomplete", "response.failed"):
            response = getattr(event, "response", None)
            self._model(response)
            self._usage(getattr(response, "usage", None))
        elif kind == "response.created":
            self._model(getattr(event, "response", None))

    def _messages_event(self, event: Any) -> None:
        kind = getattr(event, "type", "")
        if kind == "message_start":
            message = getattr(event, "message", None)
            self._model(message)
            self._usage(getattr(message, "usage", None))
        elif kind == "content_block_delta":
            delta = getattr(event, "delta", None)
            if getattr(delta, "type", "") == "text_delta":
                self._text(getattr(delta, "text", ""))
        elif kind == "message_delta":
            # Counts here are cumulative; input counts appear only in some versions.
            self._usage(getattr(event, "usage", None), partial=True)

    # ---- shared ---------------------------------------------------------------

    def _text(self, text: Any) -> None:
        if self.emit and isinstance(text, str) and text:
            assert isinstance(self.ctx, TaskContext)
            self.ctx.emit(text)

    def _model(self, obj: Any) -> None:
        model = getattr(obj, "model", None) if obj is not None else None
        if isinstance(model, str) and model:
            self.model = model

    def _usage(self, usage: Any, *, partial: bool = False) -> None:
        if usage is None:
            return
        t = self.tokens
        if self.provider == "anthropic":
            # Anthropic's input_tokens excludes cached tokens; tickrail counts all input.
            cache_read = _int(usage, "cache_read_input_tokens")
            cache_write = _int(usage, "cache_creation_input_tokens")
            uncached = _int(usage, "input_tokens")
            if partial and not (uncached or cache_read or cache_write):
                self.tokens = replace(t, output=_int(usage, "output_tokens") or t.output)
                return
            self.tokens = TokenCount(
                input=uncached + cache_read + cache_write,
                output=_int(usage, "output_tokens") or t.output,
                cache_read=cache_read,
                cache_write=cache_write,
            )
        elif self.api == "chat":
            details = getattr(usage, "prompt_tokens_details", None)
            self.tokens = TokenCount(
                input=_int(usage, "prompt_tokens"),
                output=_int(usage, "completion_tokens"),
                cache_read=_int(details, "cached_tokens"),
            )
        else:
            details = getattr(usage, "input_tokens_details", None)
            self.tokens = TokenCount(
                input=_int(usage, "input_tokens"),
                output=_int(usage, "output_tokens"),
                cache_read=_int(details, "cached_tokens"),
            )

    def record(self) -> None:
        """Record once on the node that made the call (nothing outside a node)."""
        if self.recorded:
            return
        self.recorded = True
        if self.ctx is None:
            return
        t = self.tokens
        self.ctx.record_usage(
            tokens_in=t.input,
            tokens_out=t.output,
            cost_usd=cost_usd(self.model, self.provider, t, self.prices),
            model=self.model,
        )
