"""Who is looking: tenant tokens, browser sessions and CSRF protection.

The same per-tenant bearer tokens as the gRPC API (``services/api/auth.py``),
given as names of environment variables. A program sends
``Authorization: Bearer <token>``; a browser signs in once with its token and
gets a random session id in an HttpOnly, SameSite=Strict cookie, so the token
itself is never stored in the browser, never rendered and never logged.

State-changing requests (POST) made with a session cookie must also carry the
session's CSRF token in the ``X-CSRF-Token`` header (it is in a readable
cookie and in the page), and an ``Origin`` header, when the browser sends one,
must be this server's own. A cross-site form cannot set the header and a
cross-site script cannot read the cookie, so neither can steer a lifetime.
Bearer-token requests carry no ambient credential and need neither.

Without tokens the console is *insecure*: every caller may act for any tenant
(named with ``?tenant=`` or chosen on the page). That is only allowed on a
loopback address, and said loudly at start.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from tickrail.sdk.errors import ConfigurationError
from tickrail.services.api.auth import Authenticator, is_loopback

log = logging.getLogger("tickrail.console")

SESSION_COOKIE = "tickrail_session"
CSRF_COOKIE = "tickrail_csrf"
TENANT_COOKIE = "tickrail_tenant"  # insecure mode only: which tenant to show
CSRF_HEADER = "x-csrf-token"
SESSION_TTL_S = 12 * 3600


@dataclass(frozen=True, slots=True)
class Session:
    tenant: str
    csrf: str
    expires: float


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated request: the tenant it acts for, and how it proved it."""

    tenant: str
    via: str  # "bearer", "session" or "insecure"
    csrf: str = ""  # the session's CSRF token (sessions and insecure mode)


class NotSignedIn(Exception):
    """No credentials, or unknown ones (HTTP 401)."""


class Forbidden(Exception):
    """Authenticated, but not allowed (HTTP 403): another tenant, or a CSRF failure."""


@dataclass
class ConsoleAuth:
    """Token -> tenant (constant time), and the signed-in browser sessions."""

    tokens: Mapping[str, str]  # tenant -> token
    insecure: bool = False
    default_tenant: str = "default"
    _sessions: dict[str, Session] = field(default_factory=dict)

    @classmethod
    def from_references(
        cls, references: Mapping[str, str], environ: Mapping[str, str] | None = None
    ) -> ConsoleAuth:
        """``tenant -> environment variable`` resolved and checked as ``tickrail serve`` does."""
        env = os.environ if environ is None else environ
        Authenticator.from_references(references, env)  # raises naming every bad variable
        return cls({tenant: env[variable] for tenant, variable in references.items()})

    @classmethod
    def insecure_on(cls, host: str, default_tenant: str) -> ConsoleAuth:
        if not is_loopback(host):
            raise ConfigurationError(
                f"refusing to serve the console without authentication on {host}: that is "
                "only allowed on a loopback address (127.0.0.1, ::1, localhost); give tenant "
                "tokens with --token TENANT=ENV_VAR"
            )
        log.warning(
            "!!! the tickrail console on %s runs WITHOUT AUTHENTICATION: anyone who can "
            "reach it can read and steer every tenant's lifetimes. Use --token outside "
            "development. !!!",
            host,
        )
        return cls({}, insecure=True, default_tenant=default_tenant)

    def token_of(self, tenant: str) -> str | None:
        return self.tokens.get(tenant)

    def tenant_for(self, token: str) -> str | None:
        """The tenant whose token this is. Compares against every token, not stopping
        at a match, so the time taken does not tell which tenant's token was close."""
        presented = token.encode("utf-8", "surrogatepass")  # whatever was typed
        found = None
        for tenant, expected in self.tokens.items():
            if hmac.compare_digest(presented, expected.encode()):
                found = tenant
        return found

    # ---- sessions -------------------------------------------------------------

    def sign_in(self, token: str) -> tuple[str, Session]:
        """A new session for the token's tenant; raises NotSignedIn for a bad token."""
        tenant = self.tenant_for(token.strip())
        if tenant is None:
            raise NotSignedIn("invalid token")
        self._expire()
        session_id = secrets.token_urlsafe(32)
        session = Session(tenant, secrets.token_urlsafe(24), time.time() + SESSION_TTL_S)
        self._sessions[session_id] = session
        return session_id, session

    def sign_out(self, session_id: str) -> None:
        self._sessions.pop(session_id, None)

    def session(self, session_id: str) -> Session | None:
        session = self._sessions.get(session_id)
        if session is None:
            return None
        if session.expires < time.time():
            del self._sessions[session_id]
            return None
        return session

    def _expire(self) -> None:
        now = time.time()
        for key in [k for k, s in self._sessions.items() if s.expires < now]:
            del self._sessions[key]

    # ---- requests -------------------------------------------------------------

    def caller(
        self,
        *,
        authorization: str | None,
        session_id: str | None,
        csrf_cookie: str | None,
        chosen_tenant: str | None,
    ) -> Caller:
        """Who sent a request. Raises NotSignedIn when nobody provably did."""
        if authorization:
            scheme, _, token = authorization.strip().partition(" ")
            tenant = self.tenant_for(token.strip()) if scheme.lower() == "bearer" else None
            if tenant is None and not self.insecure:
                raise NotSignedIn("invalid bearer token")
            if tenant is not None:
                return Caller(tenant, "bearer")
        if session_id:
            session = self.session(session_id)
            if session is not None:
                return Caller(session.tenant, "session", session.csrf)
        if self.insecure:
            return Caller(chosen_tenant or self.default_tenant, "insecure", csrf_cookie or "")
        raise NotSignedIn("sign in with a tenant token")

    @staticmethod
    def check_csrf(caller: Caller, header: str | None, origin: str | None, host: str) -> None:
        """Refuse a state-changing browser request that did not come from our own page."""
        if caller.via == "bearer":
            return  # no ambient credential: a cross-site page cannot send the token
        if origin and origin != "null":
            origin_host = origin.split("://", 1)[-1].rstrip("/")
            if origin_host != host:
                raise Forbidden(f"cross-origin request from {origin} refused")
        if not caller.csrf or not header or not hmac.compare_digest(header, caller.csrf):
            raise Forbidden(
                "missing or wrong CSRF token: send the X-CSRF-Token header from the page"
            )
