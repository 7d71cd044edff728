"""What every request handler shares: the head-end, the settings, the web store, the login
machinery; and the dependencies that authenticate a request and check its role.

Rule: authentication happens here and only here. A request is authenticated by a bearer
token (``Authorization: Bearer mct_...``) or by the session cookie; a cookie-authenticated
request with an unsafe method must carry the session's CSRF token in ``X-CSRF-Token``
(compared in constant time), a token-authenticated one needs none (a browser never sends a
bearer token on its own). Sessions expire on the head-end's clock: after ``session_lifetime``
from the login and after ``session_idle_timeout`` without a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Annotated, Any, Final

from fastapi import Depends, Request

from metercom.api.problems import Problem
from metercom.api.security import LoginLimiter, Passwords, Principal, Role, hash_secret, same_secret
from metercom.service.config_web import WebSettings
from metercom.service.headend import HeadEnd
from metercom.service.store.web import WebStore

__all__ = [
    "COOKIE",
    "CSRF_HEADER",
    "ApiContext",
    "Ctx",
    "authenticate",
    "ctx_of",
    "require",
]

COOKIE: Final = "metercom_session"
CSRF_HEADER: Final = "X-CSRF-Token"
_SAFE: Final = frozenset({"GET", "HEAD", "OPTIONS"})
#: A session's ``last_seen_at`` is written at most this often (a read-heavy dashboard polls).
_TOUCH_EVERY: Final = timedelta(seconds=30)


@dataclass
class ApiContext:
    headend: HeadEnd
    settings: WebSettings
    web: WebStore
    passwords: Passwords
    limiter: LoginLimiter
    #: Background tasks started by requests (kept referenced until done).
    tasks: set[Any] = field(default_factory=set)

    @property
    def store(self) -> Any:
        return self.headend.store

    def now(self) -> datetime:
        return self.web.now()

    async def audit(
        self,
        actor: str,
        action: str,
        subject: str = "",
        result: str = "ok",
        detail: dict[str, Any] | None = None,
    ) -> None:
        await self.headend.store.audit(
            actor=actor, action=action, subject=subject, result=result, detail=detail
        )


def ctx_of(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Ctx = Annotated[ApiContext, Depends(ctx_of)]


async def authenticate(request: Request, ctx: ApiContext) -> Principal:
    auth = request.headers.get("authorization")
    if auth is not None:
        scheme, _, credential = auth.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise Problem(401, "use 'Authorization: Bearer <token>'", headers={"WWW-Authenticate": "Bearer"})
        token = await ctx.web.token_by_hash(hash_secret(credential.strip()))
        user = await ctx.web.user(token.username) if token is not None else None
        if token is None or user is None or user.disabled:
            raise Problem(
                401,
                "the token is not valid (revoked, or its user is gone or disabled)",
                headers={"WWW-Authenticate": "Bearer"},
            )
        now = ctx.now()
        if token.last_used_at is None or now - token.last_used_at > _TOUCH_EVERY:
            await ctx.web.touch_token(token.id, now)
        return Principal(user.username, Role(user.role), user.meter_ids, "token")
    session_id = request.cookies.get(COOKIE)
    if not session_id:
        raise Problem(
            401,
            "log in first (POST /api/v1/auth/login) or send a bearer token",
            headers={"WWW-Authenticate": "Bearer"},
        )
    id_hash = hash_secret(session_id)
    session = await ctx.web.session(id_hash)
    now = ctx.now()
    if session is None:
        raise Problem(401, "the session has ended; log in again")
    if now >= session.expires_at or now - session.last_seen_at >= ctx.settings.session_idle_timeout:
        await ctx.web.delete_session(id_hash)
        raise Problem(401, "the session has expired; log in again")
    user = await ctx.web.user(session.username)
    if user is None or user.disabled:
        await ctx.web.delete_session(id_hash)
        raise Problem(401, "the session has ended; log in again")
    if request.method not in _SAFE:
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not same_secret(sent, session.csrf_token):
            raise Problem(
                403,
                f"missing or wrong {CSRF_HEADER} header (from the login answer or GET /api/v1/auth/me)",
                slug="csrf",
            )
    if now - session.last_seen_at > _TOUCH_EVERY:
        await ctx.web.touch_session(id_hash, now)
    return Principal(user.username, Role(user.role), user.meter_ids, "session", session.csrf_token, id_hash)


def require(role: Role | None = None, *, consumer: bool = False) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the authenticated principal, at least ``role`` (``None``: anyone logged
    in); ``consumer=True`` also lets consumers through (the handler checks their meters)."""

    async def dependency(request: Request, ctx: Ctx) -> Principal:
        principal = await authenticate(request, ctx)
        if principal.role is Role.CONSUMER:
            if not consumer and role is not None:
                raise Problem(403, "a consumer may see only their own meter")
            return principal
        if role is not None and principal.role.rank < role.rank:
            raise Problem(403, f"role {principal.role.value} may not do this; it needs {role.value}")
        return principal

    return dependency


Anyone = Annotated[Principal, Depends(require(None))]
Reader = Annotated[Principal, Depends(require(Role.VIEWER, consumer=True))]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
OperatorOrConsumer = Annotated[Principal, Depends(require(Role.OPERATOR, consumer=True))]
Admin = Annotated[Principal, Depends(require(Role.ADMINISTRATOR))]
