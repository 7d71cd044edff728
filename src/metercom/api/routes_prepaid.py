"""Prepaid: accounts, top-ups (idempotent on the payment's ``request_id``) and monthly statements.

A consumer sees and tops up only the accounts of their own meters. A top-up is the head-end's
``top_up`` command (recorded, run once, audited); the same ``request_id`` again answers 200
with the first command, and the account is credited once.
"""

from __future__ import annotations

import re
from dataclasses import asdict
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from metercom.api.context import ApiContext, Ctx, OperatorOrConsumer, Reader
from metercom.api.problems import Problem
from metercom.api.schemas import Account, AccountTopUp, TopUpRequest
from metercom.api.security import Principal
from metercom.api.views import account_out, command_out, relay_state
from metercom.errors import PrepaidError
from metercom.service.prepaid import PrepaidAccount

router = APIRouter(prefix="/api/v1/prepaid", tags=["prepaid"])

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")


def _account(ctx: ApiContext, principal: Principal, account_or_meter: str) -> PrepaidAccount:
    headend = ctx.headend
    account = next((a for a in headend.prepaid_accounts() if a.account_id == account_or_meter), None)
    if account is None:
        account = headend.prepaid_account_of_meter(account_or_meter)
    if account is None:
        if principal.role.value == "consumer":
            raise Problem(403, "a consumer may see only their own account")
        raise Problem(404, f"no prepaid account or prepaid meter {account_or_meter!r}")
    if not principal.may_see_meter(account.meter_id):
        raise Problem(403, "a consumer may see only their own account")
    return account


async def _out(ctx: ApiContext, account: PrepaidAccount) -> Account:
    return account_out(ctx.headend, account, await relay_state(ctx.web, account.meter_id))


@router.get("/accounts", response_model=list[Account])
async def accounts(principal: Reader, ctx: Ctx) -> list[Account]:
    """Every prepaid account (a consumer: their own)."""
    return [await _out(ctx, a) for a in ctx.headend.prepaid_accounts() if principal.may_see_meter(a.meter_id)]


@router.get("/accounts/{account_id}", response_model=Account)
async def account(account_id: str, principal: Reader, ctx: Ctx) -> Account:
    """One account: balance, credit, consumption, top-ups, relay (``account_id`` may be the meter id)."""
    return await _out(ctx, _account(ctx, principal, account_id))


def _minor(ctx: ApiContext, body: TopUpRequest) -> int:
    prepaid = ctx.headend.config.prepaid
    digits = prepaid.minor_digits if prepaid is not None else 2
    if (body.amount is None) == (body.amount_minor is None):
        raise Problem(422, "give exactly one of 'amount' and 'amount_minor'", slug="validation")
    if body.amount_minor is not None:
        return body.amount_minor
    try:
        amount = Decimal(str(body.amount))
    except InvalidOperation as exc:
        raise Problem(422, f"amount: not a number: {body.amount!r}", slug="validation") from exc
    if not amount.is_finite() or amount <= 0 or amount > Decimal(10) ** 10:
        raise Problem(422, "amount: must be a positive sum", slug="validation")
    minor = amount.scaleb(digits)
    if minor != minor.to_integral_value():
        raise Problem(422, f"amount: at most {digits} decimal places", slug="validation")
    return int(minor)


def _check_amount(account: PrepaidAccount, minor: int) -> None:
    """422 before anything is recorded when the tariff refuses the amount (not in the table)."""
    tariff = account.tariff
    try:
        tariff.credit_for(minor)
    except PrepaidError as exc:
        raise Problem(
            422,
            str(exc),
            slug="top-up-refused",
            accepted_amounts=[tariff.format_minor(row.amount_minor) for row in tariff.rows],
            between_rows=tariff.between_rows.value if tariff.rows else None,
            currency=tariff.currency,
        ) from exc


@router.post(
    "/accounts/{account_id}/top-ups",
    status_code=201,
    response_model=AccountTopUp,
    responses={
        200: {"model": AccountTopUp, "description": "this request_id was already credited"},
        422: {"description": "the tariff refuses the amount (problem with accepted_amounts)"},
    },
)
async def top_up(
    account_id: str, body: TopUpRequest, principal: OperatorOrConsumer, ctx: Ctx
) -> JSONResponse:
    """Credit the account once per ``request_id`` (201 new, 200 already done)."""
    acct = _account(ctx, principal, account_id)
    minor = _minor(ctx, body)
    existing = await ctx.web.command_by_key(f"top_up:{acct.account_id}:{body.request_id}")
    if existing is None:
        _check_amount(acct, minor)
    record = await ctx.headend.top_up(
        acct.account_id, minor, body.request_id, requested_by=principal.username
    )
    out = AccountTopUp(command=command_out(record), account=await _out(ctx, acct))
    return JSONResponse(out.model_dump(mode="json"), status_code=200 if existing is not None else 201)


@router.get("/accounts/{account_id}/statements/{month}", response_model=dict[str, Any])
async def statement(account_id: str, month: str, principal: Reader, ctx: Ctx) -> dict[str, Any]:
    """The monthly statement (``month`` is ``YYYY-MM``) in the prepaid time zone."""
    match = _MONTH.match(month)
    if match is None:
        raise Problem(422, f"month: expected YYYY-MM, got {month!r}", slug="validation")
    acct = _account(ctx, principal, account_id)
    result = ctx.headend.prepaid_statement(acct.meter_id, int(match[1]), int(match[2]))
    out: dict[str, Any] = {}
    for key, value in asdict(result).items():
        out[key] = (
            str(value)
            if isinstance(value, Decimal)
            else value.isoformat()
            if hasattr(value, "isoformat")
            else value
        )
    out["balanced"] = result.balanced
    return out
