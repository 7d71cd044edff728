"""The REST API application: :func:`create_app` builds it around a running :class:`HeadEnd`.

Rule: the app owns no service state: it reads through the head-end's accessors and the store,
and changes things only through the head-end (commands, top-ups, configuration) and the web
store (users, sessions, tokens, approvals). It does not start or stop the head-end; whoever
serves it (``metercom serve``/``demo``) runs both in one event loop.

Everything under ``/api/v1``; the OpenAPI schema at ``/api/v1/openapi.json`` (the Swagger and
ReDoc pages are off: they load scripts from a CDN). ``/metrics`` for Prometheus. The dashboard's
static files are mounted at ``/``. Every error is an RFC 9457 problem (:mod:`.problems`).
"""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any, Final

from argon2 import PasswordHasher
from fastapi import FastAPI, Request, Response
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Receive, Scope, Send

from metercom.api import problems
from metercom.api.context import COOKIE, CSRF_HEADER, ApiContext, Ctx, authenticate
from metercom.api.metrics import CONTENT_TYPE, render_metrics
from metercom.api.problems import Problem, problem_response
from metercom.api.routes_admin import _MAX_CONFIG
from metercom.api.routes_admin import router as admin_router
from metercom.api.routes_auth import router as auth_router
from metercom.api.routes_commands import router as commands_router
from metercom.api.routes_meters import router as meters_router
from metercom.api.routes_prepaid import router as prepaid_router
from metercom.api.security import LoginLimiter, Passwords, Role
from metercom.service.config_web import WebSettings
from metercom.service.headend import HeadEnd
from metercom.service.store.web import WebStore

__all__ = ["create_app"]

log = logging.getLogger(__name__)

_SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (
        b"content-security-policy",
        (
            b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
            b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
        ),
    ),
)


#: Request bodies: JSON everywhere, except the configuration's TOML (routes_admin's limit).
MAX_BODY: Final = 64 * 1024
MAX_CONFIG_BODY: Final = _MAX_CONFIG
_CONFIG_PATHS: Final = frozenset({"/api/v1/config", "/api/v1/config/validate"})


def _body_limit(path: str) -> int:
    return MAX_CONFIG_BODY if path.rstrip("/") in _CONFIG_PATHS else MAX_BODY


class _Guard:
    """Outermost ASGI layer: security headers on every answer, a bound on the request body
    (413 by its declared length before anything runs, or as soon as a streamed body passes it,
    so no client, logged in or not, makes the server buffer more), and a problem (500) instead
    of a traceback for anything no handler caught."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = _body_limit(scope["path"])
        too_large = f"the request body is larger than {limit} bytes"
        declared = next((v for k, v in scope.get("headers", ()) if k.lower() == b"content-length"), None)
        if declared is not None and (not declared.strip().isdigit() or int(declared) > limit):
            request = Request(scope)
            response = problem_response(request, 413, too_large, headers={"Connection": "close"})
            await response(scope, receive, self._headers_added(scope, send))
            return

        received = 0

        async def bounded_receive() -> MutableMapping[str, Any]:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise StarletteHTTPException(413, too_large)
            return message

        await self._guarded(scope, bounded_receive, send)

    @staticmethod
    def _headers_added(scope: Scope, send: Send) -> Send:
        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in _SECURITY_HEADERS if k not in present]
                if scope["path"].startswith("/api/") and b"cache-control" not in present:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        return with_headers

    async def _guarded(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False
        with_headers = self._headers_added(scope, send)

        async def guarded_send(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await with_headers(message)

        try:
            await self.app(scope, receive, guarded_send)
        except Exception as exc:
            log.error("%s %s failed unexpectedly", scope.get("method"), scope.get("path"), exc_info=exc)
            if started:
                raise
            request = Request(scope)
            response = problem_response(request, 500, "an unexpected error occurred; it was logged")
            await response(scope, receive, guarded_send)


_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status", "detail", "instance"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
        "retry_after_s": {"type": "integer"},
    },
}


def _document_auth_and_problems(schema: dict[str, Any]) -> None:
    """Declare the two ways in (bearer token, session cookie + CSRF header) and that every
    error is an RFC 9457 problem."""
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas["Problem"] = _PROBLEM_SCHEMA
    for unused in ("HTTPValidationError", "ValidationError"):  # FastAPI's; ours are problems
        schemas.pop(unused, None)
    components["securitySchemes"] = {
        "bearer": {"type": "http", "scheme": "bearer", "description": "a token from POST /api/v1/tokens"},
        "session": {
            "type": "apiKey",
            "in": "cookie",
            "name": COOKIE,
            "description": f"from POST /api/v1/auth/login; unsafe methods also need the {CSRF_HEADER} header",
        },
    }
    problem = {
        "description": "an error (RFC 9457 problem details)",
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
    }
    for path, item in schema.get("paths", {}).items():
        for method, operation in item.items():
            if not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            for code in list(responses):
                if code.startswith(("4", "5")):
                    responses[code] = {**problem, "description": responses[code].get("description", "")}
            responses.setdefault("default", problem)
            if (path, method) not in {
                ("/api/v1/auth/login", "post"),
                ("/api/v1/openapi.json", "get"),
            } and path != "/metrics":
                operation["security"] = [{"bearer": []}, {"session": []}]


def _static_dir() -> Path | None:
    try:
        from metercom.web import static_dir
    except ImportError:  # pragma: no cover - the dashboard is part of the package
        return None
    path = static_dir()
    return path if path.is_dir() else None


def create_app(
    headend: HeadEnd,
    *,
    settings: WebSettings,
    password_hasher: PasswordHasher | None = None,
    static: bool = True,
) -> FastAPI:
    """The REST API and dashboard around ``headend`` (see the module docstring).

    ``password_hasher`` replaces argon2-cffi's default Argon2id parameters (tests use cheaper
    ones); ``static=False`` leaves the dashboard out.
    """
    app = FastAPI(
        title="metercom",
        version="1",
        summary="Meters, readings, commands, prepaid and configuration of a metercom head-end.",
        description="See docs/api.md. Errors are RFC 9457 problem details (application/problem+json).",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    clock = headend.clock
    app.state.ctx = ApiContext(
        headend=headend,
        settings=settings,
        web=WebStore(headend.store),
        passwords=Passwords(password_hasher),
        limiter=LoginLimiter(
            max_failures=settings.login_max_failures,
            window_s=settings.login_window.total_seconds(),
            now=clock.monotonic,
        ),
    )
    problems.install(app)
    for router in (auth_router, meters_router, commands_router, prepaid_router, admin_router):
        app.include_router(router)

    @app.get(
        "/metrics",
        tags=["metrics"],
        response_class=Response,
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def metrics(request: Request, ctx: Ctx) -> Response:
        """Prometheus text exposition (format 0.0.4)."""
        live = ctx.headend.config.web  # made private by an applied configuration: at once
        if not ctx.settings.metrics_public or (live is not None and not live.metrics_public):
            principal = await authenticate(request, ctx)
            if not principal.at_least(Role.VIEWER):
                raise Problem(403, "metrics need the viewer role")
        return Response(await render_metrics(ctx.headend, ctx.web), media_type=CONTENT_TYPE)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                summary=app.summary,
                description=app.description,
                routes=app.routes,
            )
            _document_auth_and_problems(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    directory = _static_dir() if static else None
    if directory is not None:
        app.mount("/", StaticFiles(directory=directory, html=True), name="dashboard")
    app.add_middleware(_Guard)
    return app
