"""Commands: read now, recover, time sync, disconnect and reconnect.

Rule: every command goes through the head-end's command path (recorded before it runs, run at
most once, confirmed by reading back, audited with the user as the actor). The API answers
202 with the record as soon as it is recorded; ``GET /commands/{id}`` shows the progress.
Disconnect and reconnect need ``"confirm": true``. With ``[web] disconnect_approval`` a
disconnect is held (nothing is recorded as a command, nothing reaches the meter) until a
different operator or administrator approves it; the approval decides once, atomically, and
the approved command's idempotency key is derived from the approval, so approving can never
request it twice.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from metercom.api.context import ApiContext, Ctx, Operator, Viewer
from metercom.api.problems import Problem
from metercom.api.routes_meters import check_meter
from metercom.api.schemas import CommandOut, CommandRequest, RejectRequest
from metercom.api.views import command_out, held_out
from metercom.service.store import CommandNotFoundError
from metercom.service.store.web import ApprovalStateError

router = APIRouter(prefix="/api/v1", tags=["commands"])

_CONFIRM: frozenset[str] = frozenset({"disconnect", "reconnect"})


def _approval_required(ctx: ApiContext) -> bool:
    """The server's ``[web]`` settings, or the configuration in force: an administrator who
    switches approvals on by applying a configuration gets them at once, not at the next start
    (switching them off still waits for the restart: the safe direction)."""
    live = ctx.headend.config.web
    return ctx.settings.disconnect_approval or (live is not None and live.disconnect_approval)


def _accepted(body: CommandOut) -> JSONResponse:
    return JSONResponse(body.model_dump(mode="json"), status_code=202)


async def _submit_approved(ctx: ApiContext, approval_id: str, approver: str) -> CommandOut:
    approval = await ctx.web.approval(approval_id)
    if approval is None:  # pragma: no cover - decided just before
        raise Problem(404, f"no approval {approval_id!r}")
    record = await ctx.headend.submit_command(
        approval.kind,
        approval.meter_id,
        dict(approval.args),
        requested_by=approval.requested_by,
        idempotency_key=f"approval:{approval.id}",
    )
    await ctx.web.link_command(approval.id, record.id)
    await ctx.audit(
        approver,
        "command.approved",
        f"command {record.id} {record.kind}",
        "ok",
        {"approval": approval.id, "requested_by": approval.requested_by, "meter": approval.meter_id},
    )
    linked = await ctx.web.approval(approval_id)
    return command_out(record, linked)


@router.post(
    "/meters/{meter_id}/commands",
    status_code=202,
    response_model=CommandOut,
    responses={409: {"description": "disconnect/reconnect without confirm"}},
)
async def send_command(meter_id: str, body: CommandRequest, principal: Operator, ctx: Ctx) -> JSONResponse:
    """Record and start a command; 202 with the record (poll ``GET /commands/{id}``)."""
    check_meter(ctx, principal, meter_id)
    if body.kind in _CONFIRM and not body.confirm:
        raise Problem(
            409,
            f'{body.kind} switches the supply: send it again with "confirm": true',
            slug="confirmation-required",
        )
    if body.kind == "disconnect" and _approval_required(ctx):
        approval, new = await ctx.web.add_approval(
            body.kind, meter_id, body.args, requested_by=principal.username, request_id=body.request_id
        )
        if new:
            await ctx.audit(
                principal.username,
                "command.approval_requested",
                f"approval {approval.id} disconnect",
                "ok",
                {"meter": meter_id, "args": body.args},
            )
        if approval.command_id is not None:
            return _accepted(command_out(await ctx.store.command(approval.command_id), approval))
        return _accepted(held_out(approval))
    record = await ctx.headend.submit_command(
        body.kind,
        meter_id,
        body.args,
        requested_by=principal.username,
        idempotency_key=f"api:{body.request_id}" if body.request_id else None,
    )
    return _accepted(command_out(record))


async def _command_view(ctx: ApiContext, command_id: str) -> CommandOut:
    approval = await ctx.web.approval(command_id)
    if approval is not None:
        if approval.command_id is None:
            return held_out(approval)
        return command_out(await ctx.store.command(approval.command_id), approval)
    try:
        record = await ctx.store.command(command_id)
    except CommandNotFoundError as exc:
        raise Problem(404, f"no command {command_id!r}") from exc
    return command_out(record, await ctx.web.approval_of_command(command_id))


@router.get("/commands", response_model=list[CommandOut])
async def list_commands(
    _: Viewer,
    ctx: Ctx,
    meter_id: Annotated[str | None, Query(max_length=64)] = None,
    status: Literal["awaiting_approval", "requested", "running", "succeeded", "failed", "rejected"]
    | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandOut]:
    """Commands newest first, with disconnects awaiting approval (or rejected) among them."""
    out: list[CommandOut] = []
    if status in (None, "awaiting_approval", "rejected"):
        held = [
            held_out(a)
            for a in await ctx.web.approvals(meter_id=meter_id, limit=limit)
            if a.command_id is None
        ]
        out.extend(h for h in held if status is None or h.status == status)
    if status not in ("awaiting_approval", "rejected"):
        records = await ctx.web.recent_commands(meter_id=meter_id, state=status, limit=limit)
        out.extend([command_out(r, await ctx.web.approval_of_command(r.id)) for r in records])
    out.sort(key=lambda c: c.requested_at, reverse=True)
    return out[:limit]


@router.get("/commands/{command_id}", response_model=CommandOut)
async def get_command(command_id: str, _: Viewer, ctx: Ctx) -> CommandOut:
    """One command and its progress (or a disconnect awaiting approval)."""
    return await _command_view(ctx, command_id)


@router.post("/commands/{command_id}/approve", status_code=202, response_model=CommandOut)
async def approve(command_id: str, principal: Operator, ctx: Ctx) -> JSONResponse:
    """Approve a held disconnect (a different operator or administrator than who asked)."""
    approval = await ctx.web.approval(command_id)
    if approval is None:
        raise Problem(404, f"no command awaiting approval with id {command_id!r}")
    if approval.requested_by == principal.username:
        raise Problem(403, "a second person must approve: you asked for this disconnect")
    try:
        await ctx.web.decide_approval(command_id, approved=True, by=principal.username)
    except ApprovalStateError as exc:
        raise Problem(409, str(exc)) from exc
    return _accepted(await _submit_approved(ctx, command_id, principal.username))


@router.post("/commands/{command_id}/reject", response_model=CommandOut)
async def reject(command_id: str, body: RejectRequest, principal: Operator, ctx: Ctx) -> CommandOut:
    """Refuse a held disconnect (anyone with the operator role, the requester included)."""
    approval = await ctx.web.approval(command_id)
    if approval is None:
        raise Problem(404, f"no command awaiting approval with id {command_id!r}")
    try:
        decided = await ctx.web.decide_approval(
            command_id, approved=False, by=principal.username, reason=body.reason
        )
    except ApprovalStateError as exc:
        raise Problem(409, str(exc)) from exc
    await ctx.audit(
        principal.username,
        "command.rejected",
        f"approval {command_id} {approval.kind}",
        "ok",
        {"reason": body.reason, "meter": approval.meter_id, "requested_by": approval.requested_by},
    )
    return held_out(decided)
