"""Python values <-> Payload messages, and moving large payloads to the blob store."""

from __future__ import annotations

import hashlib
import hmac
import json
import math
from typing import Any, Protocol

from tickrail.sdk.errors import BlobIntegrityError, EnvelopeError
from tickrail.sdk.pb import envelope_pb2 as pb

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
BYTES = "application/octet-stream"

#: Results larger than this many bytes are written to the blob store.
DEFAULT_OFFLOAD_THRESHOLD = 1024 * 1024


class BlobWriter(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> str: ...


class BlobReader(Protocol):
    async def get(self, uri: str, *, tenant: str | None = None) -> bytes: ...


def encode(value: Any) -> pb.Payload:
    """Encode a node's value: bytes stay bytes, str is UTF-8 text, the rest JSON."""
    if isinstance(value, pb.Payload):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return pb.Payload(content_type=BYTES, inline=bytes(value))
    if isinstance(value, str):
        return pb.Payload(content_type=TEXT, inline=value.encode())
    try:
        # allow_nan=False: NaN and Infinity are not JSON, and a record other tools
        # cannot parse is no record; they are refused rather than stored.
        data = _ENCODER.encode(value)
    except ValueError as exc:
        raise ValueError(
            "cannot encode the result: it contains NaN or Infinity, which JSON cannot "
            "represent (return None, a string, or a finite number instead)"
        ) from exc
    except TypeError as exc:
        raise TypeError(
            f"cannot encode a {type(value).__name__} as a result: return bytes, str, or "
            f"JSON-serialisable data ({exc})"
        ) from exc
    return pb.Payload(content_type=JSON, inline=data.encode())


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON: refused")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses as inf: not a number JSON can carry
        raise ValueError(f"{text[:40]} is out of range for a JSON number: refused")
    return value


#: json.dumps / json.loads with options build an encoder / decoder per call; these
#: are built once (every step encodes a result and decodes an input).
_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def loads_json(data: str | bytes) -> Any:
    """Standard JSON only: NaN, Infinity and numbers that overflow are a ValueError.

    What ``json.loads(data, parse_constant=..., parse_float=...)`` does, with one decoder."""
    if isinstance(data, str):
        if data.startswith("\ufeff"):
            raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", data, 0)
    else:
        data = data.decode(json.detect_encoding(data), "surrogatepass")
    return _DECODER.decode(data)


def decode_bytes(content_type: str, data: bytes) -> Any:
    """Turn payload bytes back into the value the node returned."""
    if content_type == JSON:
        return loads_json(data)
    if content_type.startswith("text/"):
        return data.decode()
    return data


def inline_size(payload: pb.Payload) -> int:
    return len(payload.inline) if payload.WhichOneof("body") == "inline" else 0


async def offload(payload: pb.Payload, blobs: BlobWriter, key: str) -> None:
    """Replace an inline body by a BlobRef to the same bytes, in place."""
    data = payload.inline
    uri = await blobs.put(key, data, payload.content_type)
    payload.blob.CopyFrom(
        pb.BlobRef(uri=uri, size=len(data), sha256=hashlib.sha256(data).hexdigest())
    )


async def read_bytes(
    payload: pb.Payload, blobs: BlobReader | None, *, tenant: str | None = None
) -> bytes:
    """The payload's bytes, fetched from the blob store and verified when offloaded.

    ``tenant``: the lifetime's tenant; the store refuses blobs outside its prefix.
    The digest is checked before the bytes are used, and a mismatch says nothing
    about what was found there.
    """
    body = payload.WhichOneof("body")
    if body == "inline":
        return payload.inline
    if body is None:
        return b""
    ref = payload.blob
    if blobs is None:
        raise EnvelopeError(f"payload is stored at {ref.uri} but no blob store is configured")
    data = await blobs.get(ref.uri, tenant=tenant)
    if len(data) != ref.size or not hmac.compare_digest(
        hashlib.sha256(data).hexdigest(), ref.sha256.lower()
    ):
        raise BlobIntegrityError(f"blob {ref.uri} refused: it does not match its recorded digest")
    return data


async def read_value(
    payload: pb.Payload, blobs: BlobReader | None, *, tenant: str | None = None
) -> Any:
    """Decode a payload (fetching it if offloaded); an empty payload reads as None."""
    if payload.WhichOneof("body") is None:
        return None
    return decode_bytes(payload.content_type, await read_bytes(payload, blobs, tenant=tenant))
