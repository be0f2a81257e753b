"""Dispatch tokens: proof that the control plane dispatched a node input.

Every NodeInput the control plane publishes carries an HMAC-SHA256 over the
fields that say what may answer it (input id, lifetime, tenant, graph id and
version, node name and kind), keyed with the deployment's dispatch secret.
The executor echoes it in the envelope's header. The data plane (before
storing) and the control plane (before any effect) recompute it from the
envelope's header: a bus writer that never received the input cannot produce
it, and an envelope that changes any signed field no longer matches.

Executors never hold the secret, so a compromised executor can answer the
inputs it was given, and nothing else.

The secret is a reference: the setting ``dispatch_secret_env`` names an
environment variable. Without one, the embedded profile keeps a generated
secret in ``<home>/dispatch.secret`` (mode 0600), so it works out of the box;
the cloud profile requires the variable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
from pathlib import Path

from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.pb import envelope_pb2 as pb

#: Attempts beyond this are refused (the executor's Retry caps far lower).
MAX_ATTEMPT = 1000
MIN_SECRET_BYTES = 16
_SECRET_FILE = "dispatch.secret"
_BLOCK = 64  # SHA-256's block size
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
#: NodeInput.dispatch_token (field 50, length-delimited): its tag on the wire.
_TOKEN_FIELD = bytes([(50 << 3 | 2) & 0x7F | 0x80, (50 << 3 | 2) >> 7])
#: A token is an HMAC-SHA256 in hex: always this long (its length's varint is one byte).
_TOKEN_CHARS = 64
_TOKEN_HEAD = _TOKEN_FIELD + bytes([_TOKEN_CHARS])
#: The 4-byte big-endian length before each field of a MAC's message.
_LENGTH = struct.Struct(">I").pack
#: Tokens remembered per signer (inputs in flight at once, with room to spare).
_RECENT_TOKENS = 4096


class DispatchSigner:
    """Signs node inputs and checks the tokens envelopes echo."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"the dispatch secret must be at least {MIN_SECRET_BYTES} bytes long"
            )
        # HMAC-SHA256 (RFC 2104) from two SHA-256 states keyed once: copying them
        # per MAC is a third of the cost of hmac.digest, which sets up OpenSSL's
        # HMAC on every call (and every step signs an input).
        block = secret if len(secret) <= _BLOCK else hashlib.sha256(secret).digest()
        block = block.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(block.translate(_IPAD))
        self._outer = hashlib.sha256(block.translate(_OPAD))
        # Each input's token is computed when it is dispatched and again by the
        # data plane and the control plane checking its envelope; in one process
        # those are the same fields, so recent tokens are remembered (keyed by
        # every signed field: the answer is the HMAC's, only not recomputed).
        self._recent: dict[tuple[str, str, str, str, str, str, int], str] = {}
        # The MAC's message after the input id (lifetime, tenant, graph, version, node,
        # kind) is the same for every input of one node of one lifetime: kept encoded.
        self._tails: dict[tuple[str, str, str, str, str, int], bytes] = {}

    def _mac(self, purpose: bytes, *parts: str) -> str:
        return self._digest(purpose + b"\0" + _fields(parts))

    def _digest(self, data: bytes) -> str:
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()

    def _input_mac(
        self,
        input_id: str,
        lifetime_id: str,
        tenant_id: str,
        graph_id: str,
        graph_version: str,
        name: str,
        kind: int,
    ) -> str:
        key = (input_id, lifetime_id, tenant_id, graph_id, graph_version, name, kind)
        recent = self._recent
        token = recent.get(key)
        if token is None:
            # The bytes of _mac(b"tickrail-dispatch-v1", input_id, ..., str(kind)).
            tails = self._tails
            at = (lifetime_id, tenant_id, graph_id, graph_version, name, kind)
            tail = tails.get(at)
            if tail is None:
                if len(tails) >= _RECENT_TOKENS:
                    del tails[next(iter(tails))]  # the oldest
                tail = _fields((lifetime_id, tenant_id, graph_id, graph_version, name, str(kind)))
                tails[at] = tail
            raw = input_id.encode()
            token = self._digest(_DISPATCH + _LENGTH(len(raw)) + raw + tail)
            if len(recent) >= _RECENT_TOKENS:
                del recent[next(iter(recent))]  # the oldest
            recent[key] = token
        return token

    def notice(self, header: pb.ExecutionHeader, reason: str) -> str:
        """Signs the data plane's word that it refused an envelope (see ExecutionRef.refused),
        so a writer to the persisted topic cannot put refusals on lifetimes either."""
        return self._mac(b"tickrail-refused-v1", header.exec_id, header.lifetime_id, reason)

    def notice_ok(self, header: pb.ExecutionHeader, reason: str, token: str) -> bool:
        return hmac.compare_digest(
            self.notice(header, reason).encode(), token.encode("utf-8", "replace")
        )

    def token(self, node_input: pb.NodeInput) -> str:
        return self._input_mac(
            node_input.input_id,
            node_input.lifetime_id,
            node_input.tenant_id,
            node_input.graph_id,
            node_input.graph_version,
            node_input.name,
            node_input.kind,
        )

    def token_of(self, header: pb.ExecutionHeader) -> str:
        """The token of the input this header claims to answer (for trusted tools and tests)."""
        return self._input_mac(
            header.input_id,
            header.lifetime_id,
            header.tenant_id,
            header.graph_id,
            header.graph_version,
            header.name,
            header.kind,
        )

    def signed(self, node_input: pb.NodeInput) -> bytes:
        """The input as published, serialized: its bytes with the token field
        appended. A field appended to a message's bytes is that field set (the
        last one wins on parsing), so the recorded input is not copied to sign it."""
        token = self.token(node_input).encode()
        if len(token) == _TOKEN_CHARS:
            return node_input.SerializeToString() + _TOKEN_HEAD + token
        return node_input.SerializeToString() + _TOKEN_FIELD + _varint(len(token)) + token

    def check(self, header: pb.ExecutionHeader, token: str, kind: str) -> str:
        """Why this envelope header cannot answer a dispatched input ('' if it can).

        ``kind`` is which half of the envelope's oneof holds the execution
        (``task`` or ``plan``); it must agree with the signed node kind.
        """
        if not token:
            return "no dispatch token: not an answer to any input the control plane dispatched"
        # Each field read once (every read of a protobuf field builds a new object).
        input_id, node_kind = header.input_id, header.kind
        expected = self._input_mac(
            input_id,
            header.lifetime_id,
            header.tenant_id,
            header.graph_id,
            header.graph_version,
            header.name,
            node_kind,
        )
        if not hmac.compare_digest(expected.encode(), token.encode("utf-8", "replace")):
            return (
                "dispatch token does not match: the envelope does not answer an input the "
                "control plane dispatched with this lifetime, tenant, graph and node"
            )
        want = pb.NODE_KIND_TASK if kind == "task" else pb.NODE_KIND_PLAN
        if node_kind != want:
            return f"a {kind} execution for a node of another kind"
        attempt = header.attempt
        if not 1 <= attempt <= MAX_ATTEMPT:
            return f"attempt {attempt} is out of range (1..{MAX_ATTEMPT})"
        if header.exec_id != f"{input_id}.{attempt}":
            return "exec id is not derived from the input id and attempt"
        return ""


_DISPATCH = b"tickrail-dispatch-v1\0"


def _fields(parts: tuple[str, ...]) -> bytes:
    """Length-prefixed fields: no two different tuples serialize alike."""
    return b"".join([_LENGTH(len(raw)) + raw for raw in [part.encode() for part in parts]])


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def load_signer(secret_env: str, profile: str, home: str | Path) -> DispatchSigner:
    """The deployment's signer, from the variable ``secret_env`` names.

    Without it, the embedded profile uses (and creates, mode 0600) a secret
    file in the state directory, the test profile (in-memory, one process) a
    random one, and the cloud profile refuses to start.
    """
    value = os.environ.get(secret_env, "") if secret_env else ""
    if value:
        if len(value.encode()) < MIN_SECRET_BYTES:
            raise ConfigurationError(
                f"${secret_env} (the dispatch secret) must be at least "
                f"{MIN_SECRET_BYTES} characters long"
            )
        return DispatchSigner(value.encode())
    if profile == "cloud":
        name = secret_env or "TICKRAIL_DISPATCH_SECRET"
        raise ConfigurationError(
            f"the cloud profile needs a dispatch secret: set ${name}"
            " (the same value for the control plane, the data plane and the API), or name "
            "another variable with the dispatch_secret_env setting"
        )
    if profile == "test":
        return DispatchSigner(secrets.token_bytes(32))
    return DispatchSigner(_local_secret(Path(home)))


def _local_secret(home: Path) -> bytes:
    path = home / _SECRET_FILE
    try:
        home.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            data = path.read_bytes().strip()
            if len(data) < MIN_SECRET_BYTES:
                raise ConfigurationError(
                    f"{path} holds no usable dispatch secret; delete it to make a new one"
                ) from None
            return data
        with os.fdopen(fd, "wb") as fh:
            data = secrets.token_hex(32).encode()
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        return data
    except OSError as exc:
        raise ConfigurationError(f"cannot keep the dispatch secret in {path}: {exc}") from exc


def header_only(envelope: pb.ExecutionEnvelope) -> pb.ExecutionEnvelope:
    """The envelope without result, telemetry or token: what a refusal may carry on."""
    which = envelope.WhichOneof("execution")
    out = pb.ExecutionEnvelope()
    if which == "task":
        out.task.header.CopyFrom(envelope.task.header)
        out.task.header.ClearField("dispatch_token")
    elif which == "plan":
        out.plan.header.CopyFrom(envelope.plan.header)
        out.plan.header.ClearField("dispatch_token")
    return out
