"""A local stand-in for the OpenAI and Anthropic HTTP APIs (their wire format).

It answers chat completions, responses and messages, as JSON or as SSE when
the request says ``stream: true``, with fixed token counts, and keeps every
request body so tests can check what the client sent. Bound to 127.0.0.1 on
a free port; ``with FakeProvider() as server`` runs it in a thread.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: What every answer says and counts.
TEXT_CHUNKS = ["Bonjour", ", ", "le monde"]
OPENAI_USAGE = {"prompt": 1200, "completion": 300, "cached": 200}
#: The answer when the request asks for structured output (``parse``).
STRUCTURED = json.dumps({"greeting": "".join(TEXT_CHUNKS)})
ANTHROPIC_USAGE = {"input": 900, "cache_read": 100, "cache_write": 0, "output": 250}


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, Any]]] = []
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                provider.requests.append((self.path, body))
                route = {
                    "/v1/chat/completions": provider.chat,
                    "/v1/responses": provider.responses,
                    "/v1/messages": provider.messages,
                }.get(self.path.split("?")[0])
                if route is None:
                    self.send_error(404)
                    return
                answer = route(body)
                if isinstance(answer, dict):
                    data = json.dumps(answer).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                    return
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("cache-control", "no-cache")
                self.end_headers()
                for event, payload in answer:
                    lines = f"event: {event}\n" if event else ""
                    data = payload if isinstance(payload, str) else json.dumps(payload)
                    self.wfile.write(f"{lines}data: {data}\n\n".encode())
                    self.wfile.flush()
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_port}"

    def __enter__(self) -> FakeProvider:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)

    # ---- OpenAI chat completions -------------------------------------------

    def chat(self, body: dict[str, Any]) -> Any:
        model = body["model"]
        served = f"{model}-2024-07-18"
        usage = {
            "prompt_tokens": OPENAI_USAGE["prompt"],
            "completion_tokens": OPENAI_USAGE["completion"],
            "total_tokens": OPENAI_USAGE["prompt"] + OPENAI_USAGE["completion"],
            "prompt_tokens_details": {"cached_tokens": OPENAI_USAGE["cached"]},
        }
        base = {"id": "chatcmpl-1", "created": 1, "model": served}
        content = STRUCTURED if body.get("response_format") else "".join(TEXT_CHUNKS)
        if not body.get("stream"):
            return {
                **base,
                "object": "chat.completion",
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": "stop",
                        "message": {"role": "assistant", "content": content},
                    }
                ],
                "usage": usage,
            }
        chunk = {**base, "object": "chat.completion.chunk"}
        events: list[tuple[str, Any]] = []
        for text in TEXT_CHUNKS:
            delta = {"index": 0, "delta": {"content": text}, "finish_reason": None}
            events.append(("", {**chunk, "choices": [delta]}))
        done = {"index": 0, "delta": {}, "finish_reason": "stop"}
        events.append(("", {**chunk, "choices": [done]}))
        if body.get("stream_options", {}).get("include_usage"):
            events.append(("", {**chunk, "choices": [], "usage": usage}))
        events.append(("", "[DONE]"))
        return events

    # ---- OpenAI responses ----------------------------------------------------

    def responses(self, body: dict[str, Any]) -> Any:
        model = body["model"]
        text = STRUCTURED if body.get("text", {}).get("format") else "".join(TEXT_CHUNKS)
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "status": "completed",
            "content": [{"type": "output_text", "text": text, "annotations": []}],
        }
        response = {
            "id": "resp_1",
            "object": "response",
            "created_at": 1,
            "model": model,
            "status": "completed",
            "output": [message],
            "parallel_tool_calls": True,
            "tool_choice": "auto",
            "tools": [],
            "usage": {
                "input_tokens": OPENAI_USAGE["prompt"],
                "output_tokens": OPENAI_USAGE["completion"],
                "total_tokens": OPENAI_USAGE["prompt"] + OPENAI_USAGE["completion"],
                "input_tokens_details": {"cached_tokens": OPENAI_USAGE["cached"]},
                "output_tokens_details": {"reasoning_tokens": 0},
            },
        }
        if not body.get("stream"):
            return response
        created = {**response, "status": "in_progress", "output": [], "usage": None}
        empty_item = {**message, "status": "in_progress", "content": []}
        part = {"type": "output_text", "text": "", "annotations": []}
        where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
        steps: list[dict[str, Any]] = [
            {"type": "response.created", "response": created},
            {"type": "response.output_item.added", "output_index": 0, "item": empty_item},
            {"type": "response.content_part.added", **where, "part": part},
        ]
        steps += [
            {"type": "response.output_text.delta", **where, "delta": chunk, "logprobs": []}
            for chunk in TEXT_CHUNKS
        ]
        steps += [
            {"type": "response.output_text.done", **where, "text": text, "logprobs": []},
            {"type": "response.content_part.done", **where,
             "part": {**part, "text": text}},
            {"type": "response.output_item.done", "output_index": 0, "item": message},
            {"type": "response.completed", "response": response},
        ]  # fmt: skip
        events: list[tuple[str, Any]] = [
            (step["type"], {**step, "sequence_number": n}) for n, step in enumerate(steps)
        ]
        return events

    # ---- Anthropic messages ----------------------------------------------------

    def messages(self, body: dict[str, Any]) -> Any:
        model = body["model"]
        u = ANTHROPIC_USAGE
        usage = {
            "input_tokens": u["input"],
            "output_tokens": u["output"],
            "cache_read_input_tokens": u["cache_read"],
            "cache_creation_input_tokens": u["cache_write"],
        }
        message = {
            "id": "msg_1",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [{"type": "text", "text": "".join(TEXT_CHUNKS)}],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": usage,
        }
        if not body.get("stream"):
            return message
        start = {
            **message,
            "content": [],
            "stop_reason": None,
            "usage": {**usage, "output_tokens": 1},
        }
        events: list[tuple[str, Any]] = [
            ("message_start", {"type": "message_start", "message": start}),
            (
                "content_block_start",
                {"type": "content_block_start", "index": 0,
                 "content_block": {"type": "text", "text": ""}},
            ),
        ]  # fmt: skip
        for chunk in TEXT_CHUNKS:
            delta = {"type": "text_delta", "text": chunk}
            events.append(
                ("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": delta})
            )
        events += [
            ("content_block_stop", {"type": "content_block_stop", "index": 0}),
            (
                "message_delta",
                {"type": "message_delta",
                 "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                 "usage": {"output_tokens": u["output"]}},
            ),
            ("message_stop", {"type": "message_stop"}),
        ]  # fmt: skip
        return events
