"""Request and response bodies of the REST API (pydantic models, so the OpenAPI schema says
exactly what comes back). Times are timezone-aware ISO 8601; money is exact decimal text."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Account",
    "AccountTopUp",
    "Alarm",
    "AlarmAck",
    "AuditItem",
    "CommandApproval",
    "CommandOut",
    "CommandRequest",
    "ConfigApplied",
    "ConfigProblemOut",
    "ConfigValidation",
    "ConfigVersionOut",
    "EventOut",
    "Fleet",
    "LineOut",
    "Live",
    "LiveTotal",
    "Load",
    "LoadBucket",
    "LoginRequest",
    "MeResponse",
    "MeterDetail",
    "MeterSummary",
    "PhaseValues",
    "ProfileOut",
    "ProfileRowOut",
    "ReadingOut",
    "ReadingsOut",
    "RejectRequest",
    "TariffOut",
    "TokenCreate",
    "TokenCreated",
    "TokenOut",
    "TopUpAmount",
    "TopUpOut",
    "TopUpRequest",
    "UserCreate",
    "UserOut",
    "UserPatch",
    "UserPublic",
]

Value = float | int | str | bool | None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# -- auth -------------------------------------------------------------------------------------------


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class UserPublic(BaseModel):
    username: str
    role: Literal["viewer", "operator", "administrator", "consumer"]
    meter_ids: list[str]


class MeResponse(BaseModel):
    user: UserPublic
    csrf_token: str | None


# -- fleet and meters -----------------------------------------------------------------------------


class MeterSummary(BaseModel):
    id: str
    protocol: str
    line: str
    groups: list[str]
    state: Literal["ok", "failing", "quarantined", "unknown", "disabled"]
    last_read: datetime | None
    next_read: datetime | None
    last_error: str | None
    consecutive_failures: int
    reads_ok: int
    reads_failed: int
    relay: Literal["connected", "disconnected"] | None
    relay_capable: bool = Field(
        description="metercom can switch this meter's supply relay (disconnect/reconnect are offered)"
    )
    prepaid_account: str | None


class MeterDetail(MeterSummary):
    objects: list[str]
    plans: list[str]
    tariff: str | None
    description: str | None
    events: int


class LineOut(BaseModel):
    id: str
    kind: str
    running: int
    queued: int
    max_conversations: int


class Fleet(BaseModel):
    config_version: int | None
    meters: list[MeterSummary]
    lines: list[LineOut]
    alarms_active: int


class PhaseValues(BaseModel):
    phase: int
    voltage_v: float | None
    current_a: float | None
    power_w: float | None
    power_factor: float | None


class LiveTotal(BaseModel):
    power_w: float | None
    power_factor: float | None
    frequency_hz: float | None
    energy_import_kwh: float | None


class Live(BaseModel):
    meter_id: str
    at: datetime | None
    phases: list[PhaseValues]
    total: LiveTotal


class ReadingOut(BaseModel):
    obis: str
    capture_time: datetime
    value: Value
    unit: str | None
    status: str


class ReadingsOut(BaseModel):
    meter_id: str
    readings: list[ReadingOut]


class ProfileRowOut(BaseModel):
    capture_time: datetime
    status: str
    values: dict[str, Value]


class ProfileOut(BaseModel):
    meter_id: str
    profile: str | None
    columns: list[str]
    units: dict[str, str]
    rows: list[ProfileRowOut]


class LoadBucket(BaseModel):
    start: datetime
    end: datetime
    kwh: float | None
    peak: bool
    peak_kwh: float | None
    offpeak_kwh: float | None
    partial: bool = Field(
        description="the energy covers only part of the bucket (the current one so far, or where data starts)"
    )


class Load(BaseModel):
    meter_id: str
    period: Literal["day", "week", "month"]
    start: datetime
    end: datetime
    timezone: str
    peak_hours: str
    buckets: list[LoadBucket]
    total_kwh: float | None
    peak_kwh: float | None
    offpeak_kwh: float | None
    peak_share: float | None


class EventOut(BaseModel):
    id: int
    log: str
    time: datetime
    code: int
    description: str
    data: dict[str, Any]


# -- alarms ---------------------------------------------------------------------------------------


class Alarm(BaseModel):
    id: str
    kind: str
    meter_id: str | None
    severity: str
    state: str
    first_at: datetime
    last_at: datetime
    count: int
    message: str
    acknowledged_by: str | None
    acknowledged_at: datetime | None
    acknowledge_note: str | None
    cleared_at: datetime | None


class AlarmAck(_Strict):
    note: str = Field(default="", max_length=500)


# -- commands -------------------------------------------------------------------------------------


class CommandRequest(_Strict):
    kind: Literal["read", "recover", "time_sync", "disconnect", "reconnect"]
    args: dict[str, Any] = Field(default_factory=dict)
    confirm: bool = False
    request_id: str | None = Field(default=None, min_length=1, max_length=100)


class CommandApproval(BaseModel):
    required: bool
    state: Literal["awaiting_approval", "approved", "rejected"]
    approved_by: str | None
    decided_at: datetime | None
    reason: str | None
    command_id: str | None


class CommandOut(BaseModel):
    id: str
    kind: str
    meter_id: str | None
    args: dict[str, Any]
    status: Literal["awaiting_approval", "requested", "running", "succeeded", "failed", "rejected"]
    requested_by: str
    requested_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    result: dict[str, Any] | None
    error: str | None
    approval: CommandApproval | None


class RejectRequest(_Strict):
    reason: str = Field(default="", max_length=500)


# -- prepaid --------------------------------------------------------------------------------------


class TopUpOut(BaseModel):
    at: datetime
    amount: str
    amount_minor: int
    credit_units: str
    key: str


class TopUpAmount(BaseModel):
    amount: str
    amount_minor: int
    credit_units: str


class TariffOut(BaseModel):
    kind: Literal["table", "per_kwh"]
    currency: str
    minor_digits: int
    unit: str
    unit_wh: int | None = Field(description="Wh per credit unit (top-up tables)")
    between_rows: Literal["exact", "interpolate"] | None = Field(
        description="exact: only the listed amounts; interpolate: any amount from the first to the last"
    )
    amounts: list[TopUpAmount] = Field(description="the top-up table's rows (empty for per_kwh)")
    price_per_kwh: str | None = Field(description="base price in the currency's major unit (per_kwh)")


class Account(BaseModel):
    id: str
    meter_id: str
    currency: str
    unit: str
    balance_units: str
    credited_units: str
    consumed_units: str
    energy_wh: int
    total_topped_up: str
    total_topped_up_minor: int
    relay: Literal["connected", "disconnected"] | None
    disconnected_by_prepaid: bool
    last_top_up: TopUpOut | None
    last_reading_at: datetime | None
    top_ups: list[TopUpOut]
    tariff: TariffOut


class TopUpRequest(_Strict):
    amount: str | float | None = Field(default=None, description="money in the currency's major unit")
    amount_minor: int | None = Field(default=None, gt=0, le=10**12)
    request_id: str = Field(min_length=1, max_length=100, description="the payment reference")


class AccountTopUp(BaseModel):
    command: CommandOut
    account: Account


# -- configuration --------------------------------------------------------------------------------


class ConfigProblemOut(BaseModel):
    line: int | None
    key: str
    message: str


class ConfigValidation(BaseModel):
    ok: bool
    errors: list[ConfigProblemOut]


class ConfigApplied(BaseModel):
    version: int
    summary: str
    sha256: str


class ConfigVersionOut(BaseModel):
    version: int
    applied_at: datetime
    actor: str
    source: str
    sha256: str
    summary: str
    text: str | None = None


# -- users, tokens, audit -------------------------------------------------------------------------


class UserOut(UserPublic):
    disabled: bool
    created_at: datetime
    updated_at: datetime


class UserCreate(_Strict):
    username: str = Field(pattern=r"^[A-Za-z0-9._@-]{1,64}$")
    password: str = Field(min_length=12, max_length=256)
    role: Literal["viewer", "operator", "administrator", "consumer"]
    meter_ids: list[str] = Field(default_factory=list, max_length=100)


class UserPatch(_Strict):
    password: str | None = Field(default=None, min_length=12, max_length=256)
    role: Literal["viewer", "operator", "administrator", "consumer"] | None = None
    meter_ids: list[str] | None = Field(default=None, max_length=100)
    disabled: bool | None = None


class TokenCreate(_Strict):
    name: str = Field(min_length=1, max_length=128)
    username: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._@-]{1,64}$")


class TokenOut(BaseModel):
    id: str
    name: str
    username: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None


class TokenCreated(TokenOut):
    token: str


class AuditItem(BaseModel):
    id: int
    at: datetime
    actor: str
    action: str
    subject: str
    result: str
    detail: dict[str, Any] | list[Any] | str | int | float | bool | None
