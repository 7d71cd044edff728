"""RFC 9457 problem details: every error the API answers, in one shape.

Rule: handlers raise :class:`Problem` (or let a :class:`~metercom.errors.MetercomError`
through); :func:`install` turns those, FastAPI's validation errors, Starlette's 404/405 and
anything unexpected into ``application/problem+json`` with ``type``, ``title``, ``status``,
``detail`` and ``instance``. An unexpected exception is logged with its traceback and answered
500 with a fixed detail: no stack trace, SQL or path reaches the client.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from http import HTTPStatus
from typing import Any, Final

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from metercom.errors import ConfigError, InputError, MetercomError, StoreError
from metercom.service.config_validate import ConfigValidationError
from metercom.service.store import CommandNotFoundError, CommandStateError, ConfigVersionConflict

__all__ = ["PROBLEM_BASE", "PROBLEM_JSON", "Problem", "install", "problem_response"]

log = logging.getLogger(__name__)

PROBLEM_JSON: Final = "application/problem+json"
PROBLEM_BASE: Final = "https://metercom.invalid/problems/"

_SLUGS: Final = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    406: "not-acceptable",
    409: "conflict",
    413: "too-large",
    415: "unsupported-media-type",
    422: "validation",
    429: "too-many-requests",
    500: "internal",
    503: "unavailable",
}


class Problem(Exception):
    """An error answer: ``raise Problem(404, "no meter 'm-9'")``."""

    def __init__(
        self,
        status: int,
        detail: str,
        *,
        slug: str | None = None,
        headers: Mapping[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.slug = slug or _SLUGS.get(status, "error")
        self.headers = dict(headers or {})
        self.extra = extra


def _title(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def problem_response(
    request: Request,
    status: int,
    detail: str,
    *,
    slug: str | None = None,
    headers: Mapping[str, str] | None = None,
    extra: Mapping[str, Any] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + (slug or _SLUGS.get(status, "error")),
        "title": _title(status),
        "status": status,
        "detail": detail,
        "instance": request.url.path,
    }
    body.update(extra or {})
    return JSONResponse(body, status_code=status, headers=dict(headers or {}), media_type=PROBLEM_JSON)


def _loc(loc: Any) -> list[str | int]:
    return [x if isinstance(x, int) else str(x) for x in loc] if isinstance(loc, list | tuple) else [str(loc)]


def install(app: FastAPI) -> None:
    """Register the handlers (see the module docstring)."""

    async def on_problem(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, Problem):  # pragma: no cover - registered for this class
            raise exc
        return problem_response(
            request, exc.status, exc.detail, slug=exc.slug, headers=exc.headers, extra=exc.extra
        )

    async def on_http(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, StarletteHTTPException):  # pragma: no cover - registered for this class
            raise exc
        status = exc.status_code
        detail: str = exc.detail or _title(status)
        if status == 404 and detail == "Not Found":
            detail = f"no such resource: {request.url.path}"
        elif status == 405:
            detail = f"{request.method} is not allowed on {request.url.path}"
        return problem_response(request, status, detail, headers=exc.headers)

    async def on_validation(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, RequestValidationError):  # pragma: no cover - registered for this class
            raise exc
        errors: list[dict[str, Any]] = [
            {"loc": _loc(e.get("loc", ())), "message": str(e.get("msg", "invalid"))} for e in exc.errors()
        ]
        first = errors[0] if errors else {"loc": [], "message": "invalid request"}
        where = ".".join(str(x) for x in first["loc"])
        detail = f"{where}: {first['message']}" if where else str(first["message"])
        return problem_response(request, 422, detail, extra={"errors": errors})

    async def on_metercom(request: Request, exc: Exception) -> JSONResponse:
        if not isinstance(exc, MetercomError):  # pragma: no cover - registered for this class
            raise exc
        if isinstance(exc, ConfigValidationError):
            errors = [{"line": p.line, "key": p.key, "message": p.message} for p in exc.problems]
            return problem_response(request, 422, str(exc).splitlines()[0], extra={"errors": errors})
        if isinstance(exc, CommandNotFoundError):
            return problem_response(request, 404, str(exc))
        if isinstance(exc, CommandStateError | ConfigVersionConflict):
            return problem_response(request, 409, str(exc))
        if isinstance(exc, InputError | ConfigError):
            return problem_response(request, 422, str(exc), slug="validation")
        if isinstance(exc, StoreError):
            log.error("%s %s: store error: %s", request.method, request.url.path, exc)
            return problem_response(request, 503, "the store is not available; try again", slug="unavailable")
        log.error("%s %s: %s: %s", request.method, request.url.path, type(exc).__name__, exc)
        return problem_response(request, 409, str(exc), slug="conflict")

    async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.error("%s %s failed unexpectedly", request.method, request.url.path, exc_info=exc)
        return problem_response(request, 500, "an unexpected error occurred; it was logged")

    app.add_exception_handler(Problem, on_problem)
    app.add_exception_handler(StarletteHTTPException, on_http)
    app.add_exception_handler(RequestValidationError, on_validation)
    app.add_exception_handler(MetercomError, on_metercom)
    app.add_exception_handler(Exception, on_unexpected)
