"""Print a Task's streamed output (``output`` events) as it arrives.

Text chunks of one execution are written on one line as they come (model
tokens read like text, not one line per token); a JSON value gets a line of
its own. Any other line first ends an open text line.
"""

from __future__ import annotations

import json
from typing import TextIO

from tickrail.sdk._payload import decode_bytes
from tickrail.sdk.pb import envelope_pb2 as pb

INDENT = " " * 14


class StreamedOutput:
    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._open: str | None = None  # exec id whose text line is open

    def show(self, output: pb.NodeOutput, at: str) -> None:
        if output.HasField("data"):
            self.end_line()
            self._write(f"  {at}  {output.name:<18} > {_value(output.data)}\n")
            return
        if self._open != output.exec_id:
            self.end_line()
            self._write(f"  {at}  {output.name:<18} > ")
            self._open = output.exec_id
        self._write(output.text.replace("\n", "\n" + INDENT + " " * 20))

    def end_line(self) -> None:
        if self._open is not None:
            self._write("\n")
            self._open = None

    def _write(self, text: str) -> None:
        self.stream.write(text)
        self.stream.flush()


def _value(payload: pb.Payload) -> str:
    if payload.WhichOneof("body") != "inline":
        return f"<{payload.WhichOneof('body') or 'empty'}>"
    value = decode_bytes(payload.content_type, payload.inline)
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    return json.dumps(value, ensure_ascii=False)
