"""The console as one ASGI app: JSON API under /api, pages elsewhere, static files.

``create_app(auth, client_for)`` is all it needs: who may look (``auth.py``) and,
per tenant, a lifecycle client (``client.py``). How those are made (embedded,
cloud) is ``serve.py``'s business, so tests can build the app around any client.
"""

from __future__ import annotations

import logging
import secrets
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from tickrail.sdk.errors import (
    AdapterError,
    AuthenticationError,
    BlobIntegrityError,
    ConfigurationError,
    InvalidArgumentError,
    NotFoundError,
    OwnerError,
    PermissionDeniedError,
    TickrailError,
)

from . import api, pages
from .auth import CSRF_COOKIE, ConsoleAuth, Forbidden, NotSignedIn
from .client import ClientFor

log = logging.getLogger("tickrail.console")
HERE = Path(__file__).parent


def status_for(exc: Exception) -> tuple[int, str]:
    """The HTTP status and message for what a handler raised.

    Another tenant's lifetime answers 404 exactly like a missing one, so a
    caller cannot even learn which ids exist elsewhere.
    """
    if isinstance(exc, NotSignedIn | AuthenticationError):
        return 401, str(exc) or "sign in with a tenant token"
    if isinstance(exc, Forbidden):
        return 403, str(exc)
    if isinstance(exc, NotFoundError | PermissionDeniedError):
        return 404, "not found"
    if isinstance(exc, InvalidArgumentError):
        return 400, str(exc)
    if isinstance(exc, BlobIntegrityError):
        return 502, "a stored result failed its integrity check"
    if isinstance(exc, OwnerError) or (isinstance(exc, AdapterError) and exc.retriable):
        return 503, "the lifecycle service is unavailable; retry later"
    if isinstance(exc, ConfigurationError):  # LifetimeStateError and the like
        return 409, str(exc)
    return 500, "internal error"


def create_app(auth: ConsoleAuth, client_for: ClientFor, *, title: str = "tickrail") -> FastAPI:
    app = FastAPI(
        title=f"{title} console API",
        version="1",
        description="Lifetimes of one tenant: list, inspect, follow, steer, replay, fork, usage. "
        "Authenticate with `Authorization: Bearer <tenant token>` or a signed-in session.",
        docs_url=None,  # Swagger UI loads its assets from a CDN; nothing here goes online
        redoc_url=None,
    )
    app.state.auth = auth
    app.state.client_for = client_for
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def csrf_cookie(
        request: Request, call_next: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        # Insecure mode has no session to hold a CSRF token: every browser gets a
        # random one in a readable cookie and must echo it (double submit).
        response = await call_next(request)
        if auth.insecure and CSRF_COOKIE not in request.cookies:
            response.set_cookie(
                CSRF_COOKIE, secrets.token_urlsafe(24), samesite="strict", httponly=False
            )
        response.headers.setdefault("x-content-type-options", "nosniff")
        response.headers.setdefault("referrer-policy", "same-origin")
        response.headers.setdefault(
            "content-security-policy",
            "default-src 'self'; img-src 'self' data:; style-src 'self'; "
            "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        )
        return response

    @app.exception_handler(TickrailError)
    @app.exception_handler(NotSignedIn)
    @app.exception_handler(Forbidden)
    async def known(request: Request, exc: Exception) -> Response:
        code, message = status_for(exc)
        if code >= 500:
            incident = uuid.uuid4().hex[:12]
            log.error(
                "%s %s [incident %s]", request.method, request.url.path, incident, exc_info=exc
            )
            message = f"{message} (incident {incident}; see the console's log)"
        if request.url.path.startswith("/api/"):
            return JSONResponse({"detail": message}, status_code=code)
        if code == 401:
            return RedirectResponse("/signin", status_code=303)
        return pages.error_page(request, code, message)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        if request.url.path.startswith("/api/"):  # FastAPI's documented 422 shape
            return await request_validation_exception_handler(request, exc)
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in exc.errors()
        )
        return pages.error_page(request, 422, problems)

    return app
