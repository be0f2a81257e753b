"""Who may call the lifecycle API, and for which tenant.

Every call carries ``authorization: Bearer <token>`` in its metadata and a
``tenant_id`` in its request. Tokens are configured per tenant as *secret
references*: the name of an environment variable that holds the token
(``{"acme": "TICKRAIL_TOKEN_ACME"}``), resolved once when the server starts,
so no token is ever written in a settings file. A token identifies exactly one
tenant; asking about any other tenant is PERMISSION_DENIED.

``Authenticator.insecure_on(address)`` trusts ``tenant_id`` without a token. It exists for
local development and is refused on any address but a loopback one.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
from collections.abc import Iterable, Mapping

from tickrail.sdk.errors import AuthenticationError as Unauthenticated
from tickrail.sdk.errors import ConfigurationError
from tickrail.sdk.errors import InvalidArgumentError as InvalidArgument
from tickrail.sdk.errors import PermissionDeniedError as PermissionDenied

log = logging.getLogger("tickrail.api")

MIN_TOKEN_LENGTH = 16
Metadata = Iterable[tuple[str, str | bytes]]


def is_loopback(address: str) -> bool:
    """Whether a gRPC bind address (``host:port``, ``[v6]:port``, ``unix:``) stays local."""
    if address.startswith(("unix:", "unix-abstract:")):
        return True
    host = address.rpartition(":")[0] if ":" in address else address
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Authenticator:
    """Maps a bearer token to its tenant (tokens compared in constant time)."""

    def __init__(self, tokens: Mapping[str, str], *, insecure: bool = False) -> None:
        self._tokens = [(tenant, token.encode()) for tenant, token in tokens.items()]
        self.insecure = insecure

    @classmethod
    def from_references(
        cls, references: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> Authenticator:
        """Resolve ``tenant -> environment variable name`` to the tokens themselves.

        Raises ConfigurationError naming every variable that is unset or unusable.
        """
        env = os.environ if environ is None else environ
        if not references:
            raise ConfigurationError(
                "the API needs at least one tenant token reference "
                "(tenant -> name of the environment variable holding its token)"
            )
        problems: list[str] = []
        tokens: dict[str, str] = {}
        owners: dict[str, str] = {}
        for tenant, variable in references.items():
            value = env.get(variable, "")
            if not tenant:
                problems.append(f"an empty tenant id refers to ${variable}")
            elif not value:
                problems.append(f"${variable} (the token of tenant {tenant!r}) is not set")
            elif len(value) < MIN_TOKEN_LENGTH:
                problems.append(
                    f"${variable} (the token of tenant {tenant!r}) is shorter than "
                    f"{MIN_TOKEN_LENGTH} characters"
                )
            elif value in owners:
                problems.append(
                    f"tenants {owners[value]!r} and {tenant!r} share a token; "
                    "a token must identify one tenant"
                )
            else:
                owners[value] = tenant
                tokens[tenant] = value
        if problems:
            raise ConfigurationError("API tokens: " + "; ".join(problems))
        return cls(tokens)

    @classmethod
    def insecure_on(cls, address: str) -> Authenticator:
        """No tokens at all: callers are trusted to name their tenant. Loopback only."""
        if not is_loopback(address):
            raise ConfigurationError(
                f"refusing to serve the API without authentication on {address}: "
                "insecure mode is only allowed on a loopback address (127.0.0.1, ::1, "
                "localhost); configure tenant tokens instead"
            )
        log.warning(
            "!!! the tickrail API on %s runs WITHOUT AUTHENTICATION: any local process "
            "can act for any tenant. Use tenant tokens outside development. !!!",
            address,
        )
        return cls({}, insecure=True)

    @classmethod
    def local_socket(cls) -> Authenticator:
        """The embedded owner's Unix socket: only its user can connect (the socket
        and its folder are 0700), so callers name their tenant, as on the CLI."""
        return cls({}, insecure=True)

    def _caller(self, metadata: Metadata) -> str:
        header = next((v for k, v in metadata if k.lower() == "authorization"), None)
        if header is None:
            raise Unauthenticated("missing credentials: send 'authorization: Bearer <token>'")
        text = header.decode(errors="replace") if isinstance(header, bytes) else header
        scheme, _, token = text.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthenticated("the authorization metadata must be 'Bearer <token>'")
        presented = token.strip().encode()
        caller = None
        # Compare against every token, not stopping at a match, so the time taken
        # does not tell which tenant's token was close.
        for tenant, expected in self._tokens:
            if hmac.compare_digest(presented, expected):
                caller = tenant
        if caller is None:
            raise Unauthenticated("invalid token")
        return caller

    def authorize(self, metadata: Metadata, tenant_id: str) -> str:
        """The tenant the call may act for: ``tenant_id``, if the token is that tenant's.

        Credentials are checked first, so an unauthenticated caller learns
        nothing about the request's validity.
        """
        caller = None if self.insecure else self._caller(metadata)
        if not tenant_id:
            raise InvalidArgument("tenant_id", "is required")
        if caller is not None and caller != tenant_id:
            raise PermissionDenied(f"this token does not grant access to tenant {tenant_id!r}")
        return tenant_id
