"""``/api/v1/auth``: log in (session cookie + CSRF token), log out, who am I."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Depends, Request, Response

from metercom.api.context import COOKIE, Anyone, Ctx
from metercom.api.problems import Problem
from metercom.api.schemas import LoginRequest, MeResponse, UserPublic
from metercom.api.security import Principal, hash_secret, new_csrf_token, new_session_id

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


def _client(request: Request) -> str:
    return request.client.host if request.client is not None else "unknown"


def _secure(request: Request, ctx: Ctx) -> bool:
    if ctx.settings.secure_cookies is not None:
        return ctx.settings.secure_cookies
    return request.url.scheme == "https"


def _json_only(request: Request) -> None:
    """Login CSRF: a foreign page can post a form (urlencoded, multipart, text/plain) or a
    no-cors ``fetch`` without a Content-Type, but not ``application/json`` without a CORS
    preflight (which this server never grants); so only JSON logs in."""
    media_type = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if media_type != "application/json":
        raise Problem(415, "send the login as application/json")


@router.post(
    "/login",
    response_model=MeResponse,
    dependencies=[Depends(_json_only)],
    responses={
        401: {"description": "wrong username or password"},
        415: {"description": "not application/json"},
        429: {"description": "too many failures"},
    },
)
async def login(body: LoginRequest, request: Request, response: Response, ctx: Ctx) -> MeResponse:
    """Check the password and open a browser session (cookie ``metercom_session``)."""
    address = _client(request)
    keys = (f"user:{body.username.lower()}", f"addr:{address}")
    wait = ctx.limiter.retry_after(*keys)
    if wait is not None:
        seconds = max(1, int(wait + 0.999))
        if ctx.limiter.first_refusal(wait, *keys):  # once per block: refusals cost no disk
            await ctx.audit(body.username, "auth.login", address, "refused", {"reason": "rate limited"})
        raise Problem(
            429,
            f"too many failed logins; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
            retry_after_s=seconds,
        )
    # Counted before the (slow) check, so concurrent guesses cannot all pass the limit above.
    attempt = ctx.limiter.failed(*keys)
    user = await ctx.web.user(body.username)
    if user is not None:
        ctx.limiter.pin(keys[0])
    ok = await ctx.passwords.verify(user.password_hash if user is not None else None, body.password)
    if user is None or not ok or user.disabled:
        await ctx.audit(body.username, "auth.login", address, "failed")
        raise Problem(401, "wrong username or password")
    ctx.limiter.forgive(attempt, *keys)
    ctx.limiter.succeeded(keys[0])
    if ctx.passwords.hasher.check_needs_rehash(user.password_hash):
        await ctx.web.update_user(user.username, password_hash=await ctx.passwords.hash(body.password))
    previous = request.cookies.get(COOKIE)
    if previous:  # rotate: whatever session this browser had ends here
        await ctx.web.delete_session(hash_secret(previous))
    session_id, csrf = new_session_id(), new_csrf_token()
    now = ctx.now()
    await ctx.web.delete_expired_sessions(now=now, idle_before=now - ctx.settings.session_idle_timeout)
    lifetime = ctx.settings.session_lifetime
    await ctx.web.add_session(
        hash_secret(session_id), user.username, csrf, client=address, expires_at=now + lifetime
    )
    await ctx.audit(user.username, "auth.login", address, "ok")
    response.set_cookie(
        COOKIE,
        session_id,
        max_age=int(lifetime / timedelta(seconds=1)),
        httponly=True,
        samesite="strict",
        secure=_secure(request, ctx),
        path="/",
    )
    return MeResponse(
        user=UserPublic(username=user.username, role=user.role, meter_ids=list(user.meter_ids)),  # type: ignore[arg-type]
        csrf_token=csrf,
    )


@router.post("/logout", status_code=204, response_class=Response)
async def logout(principal: Anyone, request: Request, ctx: Ctx) -> Response:
    """End the browser session (deleted on the server; the cookie is cleared)."""
    if principal.session_hash is not None:
        await ctx.web.delete_session(principal.session_hash)
        await ctx.audit(principal.username, "auth.logout", _client(request), "ok")
    response = Response(status_code=204)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict", secure=_secure(request, ctx))
    return response


def me_of(principal: Principal) -> MeResponse:
    return MeResponse(
        user=UserPublic(
            username=principal.username,
            role=principal.role.value,
            meter_ids=list(principal.meter_ids),
        ),
        csrf_token=principal.csrf_token,
    )


@router.get("/me", response_model=MeResponse)
async def me(principal: Anyone) -> MeResponse:
    """The logged-in user and the session's CSRF token (``null`` for a bearer token)."""
    return me_of(principal)
