"""Administration: configuration (validate, apply, history), users, tokens and the audit log.

Configuration text is the request body itself (TOML). Validation answers every problem with
its line; applying goes through the head-end's :class:`~metercom.service.config_store.ConfigStore`
(atomic, versioned; the running head-end picks the version up at once). Every change here is
audited with the administrator as the actor; passwords and tokens never appear in the log.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Final

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from metercom.api.context import Admin, ApiContext, Ctx, Viewer
from metercom.api.problems import Problem
from metercom.api.schemas import (
    AuditItem,
    ConfigApplied,
    ConfigProblemOut,
    ConfigValidation,
    ConfigVersionOut,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserPatch,
)
from metercom.api.security import Role, hash_secret, new_token
from metercom.errors import ConfigError
from metercom.service.config_validate import ConfigValidationError
from metercom.service.store.web import TokenRecord, UserConflictError, UserRecord

router = APIRouter(prefix="/api/v1", tags=["admin"])

_MAX_CONFIG: Final = 2_000_000
_TOML_BODY: Final = {
    "requestBody": {
        "required": True,
        "content": {
            "application/toml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}


async def _text(request: Request) -> str:
    raw = await request.body()
    if len(raw) > _MAX_CONFIG:
        raise Problem(413, f"the configuration is larger than {_MAX_CONFIG} bytes")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Problem(422, "the configuration is not UTF-8 text", slug="validation") from exc


def _problems(exc: ConfigError) -> list[ConfigProblemOut]:
    if isinstance(exc, ConfigValidationError):
        return [ConfigProblemOut(line=p.line, key=p.key, message=p.message) for p in exc.problems]
    return [ConfigProblemOut(line=None, key="", message=str(exc))]


@router.post("/config/validate", response_model=ConfigValidation, openapi_extra=_TOML_BODY)
async def validate_config(request: Request, _: Admin, ctx: Ctx) -> ConfigValidation:
    """Check a configuration (the TOML is the body); changes nothing."""
    text = await _text(request)
    try:
        ctx.headend.configs.validate(text, source="<request>")
    except ConfigError as exc:
        return ConfigValidation(ok=False, errors=_problems(exc))
    return ConfigValidation(ok=True, errors=[])


@router.post("/config", status_code=201, response_model=ConfigApplied, openapi_extra=_TOML_BODY)
async def apply_config(request: Request, principal: Admin, ctx: Ctx) -> ConfigApplied:
    """Apply a configuration as a new version (422 with every problem when invalid)."""
    text = await _text(request)
    try:
        version = await ctx.headend.configs.apply(text, actor=principal.username, source="api")
    except ConfigError as exc:
        errors = [e.model_dump() for e in _problems(exc)]
        await ctx.audit(principal.username, "config.apply", "api", "invalid", {"problems": len(errors)})
        raise Problem(
            422, "the configuration is not valid; nothing changed", slug="validation", errors=errors
        ) from exc
    stored = await ctx.store.config_version(version)
    return ConfigApplied(
        version=version, summary=stored.summary if stored else "", sha256=stored.sha256 if stored else ""
    )


@router.get("/config/versions", response_model=list[ConfigVersionOut])
async def config_versions(
    _: Viewer, ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 50
) -> list[ConfigVersionOut]:
    """Configuration versions, newest first."""
    versions = await ctx.store.config_versions(limit=limit)
    return [ConfigVersionOut.model_validate(v, from_attributes=True) for v in versions]


@router.get("/config/versions/{version}", response_model=ConfigVersionOut)
async def config_version(version: int, _: Admin, ctx: Ctx) -> ConfigVersionOut:
    """One version with its text (administrators only: it may name secrets' sources)."""
    if not 1 <= version <= 2**31 - 1:
        raise Problem(404, f"no configuration version {version}")
    v = await ctx.store.config_version(version)
    if v is None:
        raise Problem(404, f"no configuration version {version}")
    return ConfigVersionOut.model_validate(v, from_attributes=True)


# -- users ------------------------------------------------------------------------------------------


def _user_out(user: UserRecord) -> UserOut:
    return UserOut.model_validate(user, from_attributes=True)


def _check_meters(ctx: ApiContext, role: str, meter_ids: list[str]) -> None:
    known = {m.id for m in ctx.headend.config.meters}
    unknown = [m for m in meter_ids if m not in known]
    if unknown:
        raise Problem(422, f"unknown meters: {', '.join(unknown)}", slug="validation")
    if role == Role.CONSUMER.value and not meter_ids:
        raise Problem(422, "a consumer needs at least one meter (meter_ids)", slug="validation")


@router.get("/users", response_model=list[UserOut])
async def users(_: Admin, ctx: Ctx) -> list[UserOut]:
    """Every user (no password hashes)."""
    return [_user_out(u) for u in await ctx.web.users()]


@router.post("/users", status_code=201, response_model=UserOut)
async def add_user(body: UserCreate, principal: Admin, ctx: Ctx) -> UserOut:
    """Create a user (password 12..256 characters, hashed with Argon2id)."""
    _check_meters(ctx, body.role, body.meter_ids)
    try:
        user = await ctx.web.add_user(
            body.username, await ctx.passwords.hash(body.password), body.role, body.meter_ids
        )
    except UserConflictError as exc:
        raise Problem(409, str(exc)) from exc
    await ctx.audit(
        principal.username, "user.add", body.username, "ok", {"role": body.role, "meter_ids": body.meter_ids}
    )
    return _user_out(user)


@router.patch("/users/{username}", response_model=UserOut)
async def change_user(username: str, body: UserPatch, principal: Admin, ctx: Ctx) -> UserOut:
    """Change a user's password, role, meters or disabled flag."""
    old = await ctx.web.user(username)
    if old is None:
        raise Problem(404, f"no user {username!r}")
    if username == principal.username and (
        (body.role is not None and body.role != Role.ADMINISTRATOR.value) or body.disabled
    ):
        raise Problem(409, "you cannot demote or disable yourself; ask another administrator")
    role = body.role or old.role
    meters = body.meter_ids if body.meter_ids is not None else list(old.meter_ids)
    _check_meters(ctx, role, meters)
    user = await ctx.web.update_user(
        username,
        password_hash=await ctx.passwords.hash(body.password) if body.password is not None else None,
        role=body.role,
        meter_ids=body.meter_ids,
        disabled=body.disabled,
    )
    changed = sorted(k for k, v in body.model_dump(exclude_unset=True).items() if v is not None)
    await ctx.audit(
        principal.username,
        "user.change",
        username,
        "ok",
        {"changed": changed, "role": user.role, "meter_ids": list(user.meter_ids), "disabled": user.disabled},
    )
    return _user_out(user)


@router.delete("/users/{username}", status_code=204, response_class=Response)
async def delete_user(username: str, principal: Admin, ctx: Ctx) -> Response:
    """Delete a user, their sessions and tokens."""
    if username == principal.username:
        raise Problem(409, "you cannot delete yourself; ask another administrator")
    if not await ctx.web.delete_user(username):
        raise Problem(404, f"no user {username!r}")
    await ctx.audit(principal.username, "user.delete", username, "ok")
    return Response(status_code=204)


# -- tokens -----------------------------------------------------------------------------------------


def _token_out(token: TokenRecord) -> TokenOut:
    return TokenOut.model_validate(token, from_attributes=True)


@router.post("/tokens", status_code=201, response_model=TokenCreated)
async def create_token(body: TokenCreate, principal: Admin, ctx: Ctx) -> JSONResponse:
    """A bearer token for a machine, acting as ``username`` (default: you). Shown only here."""
    username = body.username or principal.username
    secret = new_token()
    try:
        token = await ctx.web.add_token(
            hash_secret(secret), name=body.name, username=username, created_by=principal.username
        )
    except UserConflictError as exc:
        raise Problem(404, str(exc)) from exc
    await ctx.audit(
        principal.username, "token.create", f"token {token.id}", "ok", {"name": body.name, "user": username}
    )
    out = TokenCreated(**_token_out(token).model_dump(), token=secret)
    return JSONResponse(out.model_dump(mode="json"), status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/tokens", response_model=list[TokenOut])
async def tokens(_: Admin, ctx: Ctx) -> list[TokenOut]:
    """Every token (without its secret)."""
    return [_token_out(t) for t in await ctx.web.tokens()]


@router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
async def revoke_token(token_id: str, principal: Admin, ctx: Ctx) -> Response:
    """Revoke a token."""
    if not await ctx.web.delete_token(token_id):
        raise Problem(404, f"no token {token_id!r}")
    await ctx.audit(principal.username, "token.revoke", f"token {token_id}", "ok")
    return Response(status_code=204)


# -- audit ------------------------------------------------------------------------------------------


@router.get("/audit", response_model=list[AuditItem])
async def audit(
    _: Admin,
    ctx: Ctx,
    since: datetime | None = None,
    action: Annotated[str | None, Query(max_length=64, description="exact, or a prefix ending in *")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
) -> list[AuditItem]:
    """Audit entries, oldest first."""
    if since is not None and since.tzinfo is None:
        raise Problem(422, "since: give a time zone", slug="validation")
    entries = await ctx.store.audit_log(since=since, action=action, limit=limit)
    return [
        AuditItem(
            id=e.id,
            at=e.at,
            actor=e.actor,
            action=e.action,
            subject=e.subject,
            result=e.result,
            detail=dict(e.detail) if isinstance(e.detail, dict) else e.detail,
        )
        for e in entries
    ]
