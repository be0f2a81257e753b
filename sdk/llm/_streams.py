"""Stand-ins for the SDKs' stream objects that let a ``Call`` see every event.

They behave like the object they wrap (iteration, ``with``, ``close()``, any
other attribute), and record the call's usage when the stream ends: when it
is exhausted, closed, or its ``with`` block exits, whichever comes first.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

from ._observe import Call


class ObservedStream:
    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call

    def __iter__(self) -> Iterator[Any]:
        try:
            for event in self._inner:
                self._call.event(event)
                yield event
        finally:
            self._call.record()

    def __next__(self) -> Any:
        try:
            event = next(self._inner)
        except StopIteration:
            self._call.record()
            raise
        self._call.event(event)
        return event

    def __enter__(self) -> ObservedStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        try:
            self._inner.close()
        finally:
            self._call.record()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class AsyncObservedStream:
    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call

    async def _events(self) -> AsyncIterator[Any]:
        try:
            async for event in self._inner:
                self._call.event(event)
                yield event
        finally:
            self._call.record()

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def __anext__(self) -> Any:
        try:
            event = await self._inner.__anext__()
        except StopAsyncIteration:
            self._call.record()
            raise
        self._call.event(event)
        return event

    async def __aenter__(self) -> AsyncObservedStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._inner.close()
        finally:
            self._call.record()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class ObservedStreamManager:
    """Anthropic's ``messages.stream(...)``: the helper reads a raw stream we observe."""

    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call

    def __enter__(self) -> Any:
        stream = self._inner.__enter__()
        # MessageStream reads ``_raw_stream`` lazily (its generator has not
        # started yet), so every event it parses passes through the observer.
        stream._raw_stream = ObservedStream(stream._raw_stream, self._call)
        return stream

    def __exit__(self, *exc: Any) -> Any:
        try:
            return self._inner.__exit__(*exc)
        finally:
            self._call.record()


class AsyncObservedStreamManager:
    def __init__(self, inner: Any, call: Call) -> None:
        self._inner = inner
        self._call = call

    async def __aenter__(self) -> Any:
        stream = await self._inner.__aenter__()
        stream._raw_stream = AsyncObservedStream(stream._raw_stream, self._call)
        return stream

    async def __aexit__(self, *exc: Any) -> Any:
        try:
            return await self._inner.__aexit__(*exc)
        finally:
            self._call.record()
