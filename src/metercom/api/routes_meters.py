"""Reads: the fleet, meters (summary, live values, readings, profiles, load curves, events)
and alarms. A consumer reaches only their own meters (403 for any other)."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Annotated, Any, Final, Literal

from fastapi import APIRouter, Query, Request, Response

from metercom.api.context import Ctx, Operator, Reader, Viewer
from metercom.api.problems import Problem
from metercom.api.schemas import (
    Alarm,
    AlarmAck,
    EventOut,
    Fleet,
    LineOut,
    Live,
    Load,
    MeterDetail,
    MeterSummary,
    ProfileOut,
    ProfileRowOut,
    ReadingOut,
    ReadingsOut,
)
from metercom.api.security import Principal
from metercom.api.views import alarm_out, json_value, live_values, load_curve, meter_detail, meter_summaries
from metercom.errors import InputError
from metercom.model.obis import Obis
from metercom.service.store.records import object_key

router = APIRouter(prefix="/api/v1", tags=["meters"])

_CSV_RESPONSES: dict[int | str, dict[str, Any]] = {200: {"content": {"application/json": {}, "text/csv": {}}}}
MeterId = Annotated[str, "meter id"]
Since = Annotated[datetime | None, Query(description="inclusive, ISO 8601 with a time zone")]
Until = Annotated[datetime | None, Query(description="exclusive, ISO 8601 with a time zone")]
Format = Annotated[Literal["json", "csv"] | None, Query(description="json (default) or csv")]


def check_meter(ctx: Ctx, principal: Principal, meter_id: str) -> None:
    """404 for an unknown meter, 403 for a consumer's foreign one (403 first: a consumer must
    not learn which meter ids exist)."""
    if not principal.may_see_meter(meter_id):
        raise Problem(403, "a consumer may see only their own meter")
    if meter_id not in {m.id for m in ctx.headend.config.meters}:
        raise Problem(404, f"no meter {meter_id!r}")


def _aware(value: datetime | None, name: str) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise Problem(422, f"{name}: give a time zone (e.g. 2026-03-02T00:00:00Z)", slug="validation")
    return value


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    accept = request.headers.get("accept", "")
    return "text/csv" in accept and "application/json" not in accept


def _csv(rows: list[list[object]], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerows(rows)
    return Response(
        out.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


#: A spreadsheet runs a cell that starts with one of these as a formula (CSV injection). Text
#: comes from the meters (a register's text, a unit), and a consumer has their meter at hand.
_FORMULA_START: Final = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value  # shown as text, never evaluated
    return value


@router.get("/fleet", response_model=Fleet)
async def fleet(_: Viewer, ctx: Ctx) -> Fleet:
    """Every meter's summary, the lines' traffic and the number of active alarms."""
    headend = ctx.headend
    config = headend.config
    lines = {line.id: line for line in config.lines}
    traffic = {row.line_id: row for row in headend.line_status()}
    out_lines = []
    for line_id, line in lines.items():
        row = traffic.get(line_id)
        out_lines.append(
            LineOut(
                id=line_id,
                kind=line.kind.value,
                running=row.running if row else 0,
                queued=row.queued if row else 0,
                max_conversations=line.max_conversations,
            )
        )
    alarms = await headend.alarms(active=True)
    return Fleet(
        config_version=headend.config_version,
        meters=await meter_summaries(headend, ctx.web),
        lines=out_lines,
        alarms_active=len(alarms),
    )


@router.get("/meters", response_model=list[MeterSummary])
async def meters(principal: Reader, ctx: Ctx) -> list[MeterSummary]:
    """Meter summaries (a consumer: their own)."""
    only = principal.meter_ids if principal.role.value == "consumer" else None
    return await meter_summaries(ctx.headend, ctx.web, only)


@router.get("/meters/{meter_id}", response_model=MeterDetail)
async def meter(meter_id: str, principal: Reader, ctx: Ctx) -> MeterDetail:
    """A meter's summary, what it is read for, and how many events are stored."""
    check_meter(ctx, principal, meter_id)
    return await meter_detail(ctx.headend, ctx.web, meter_id)


@router.get("/meters/{meter_id}/live", response_model=Live)
async def live(meter_id: str, principal: Reader, ctx: Ctx) -> Live:
    """The newest stored voltage, current, power, power factor and frequency."""
    check_meter(ctx, principal, meter_id)
    return await live_values(ctx.web, meter_id)


@router.get("/meters/{meter_id}/readings", response_model=ReadingsOut, responses=_CSV_RESPONSES)
async def readings(
    meter_id: str,
    *,
    principal: Reader,
    ctx: Ctx,
    request: Request,
    obis: Annotated[str | None, Query(max_length=64, description="e.g. 1.8.0 or 1-0:1.8.0*255")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    format: Format = None,  # noqa: A002 - the query parameter's name
) -> ReadingsOut | Response:
    """Stored readings, oldest first (``format=csv`` for a spreadsheet)."""
    check_meter(ctx, principal, meter_id)
    key = None
    if obis is not None:
        try:
            key = object_key(Obis.parse(obis))
        except (InputError, ValueError):
            key = obis
    rows = await ctx.store.readings(
        meter_id, obis=key, since=_aware(since, "since"), until=_aware(until, "until"), limit=limit
    )
    if _wants_csv(request, format):
        table: list[list[object]] = [["meter_id", "obis", "capture_time", "value", "unit", "status"]]
        table += [
            [
                meter_id,
                r.obis,
                r.capture_time.isoformat(),
                _cell(json_value(r.value)),
                _cell(r.unit),
                r.status,
            ]
            for r in rows
        ]
        return _csv(table, f"{meter_id}-readings.csv")
    return ReadingsOut(
        meter_id=meter_id,
        readings=[
            ReadingOut(
                obis=r.obis,
                capture_time=r.capture_time,
                value=json_value(r.value),
                unit=r.unit,
                status=r.status,
            )
            for r in rows
        ],
    )


@router.get("/meters/{meter_id}/profile", response_model=ProfileOut, responses=_CSV_RESPONSES)
async def profile(
    meter_id: str,
    *,
    principal: Reader,
    ctx: Ctx,
    request: Request,
    profile: Annotated[str | None, Query(max_length=64, description="the profile's OBIS code")] = None,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
    format: Format = None,  # noqa: A002
) -> ProfileOut | Response:
    """Stored load-profile rows, oldest first (``format=csv`` for a spreadsheet)."""
    check_meter(ctx, principal, meter_id)
    key: str | None = None
    if profile is not None:
        try:
            key = object_key(Obis.parse(profile))
        except (InputError, ValueError):
            key = profile
    else:
        config = ctx.headend.config
        meter_cfg = config.meter(meter_id)
        for schedule in config.schedules:
            if meter_cfg in config.schedule_meters(schedule.id) and config.plan(schedule.plan).profiles:
                key = object_key(config.plan(schedule.plan).profiles[0].obis)
                break
    rows = (
        await ctx.store.profile_rows(
            meter_id, key, since=_aware(since, "since"), until=_aware(until, "until"), limit=limit
        )
        if key is not None
        else []
    )
    columns: list[str] = []
    units: dict[str, str] = {}
    for row in rows:
        for col in row.values:
            if col not in columns:
                columns.append(col)
        units.update(row.units)
    if _wants_csv(request, format):
        table: list[list[object]] = [["capture_time", "status", *columns]]
        table += [
            [
                row.capture_time.isoformat(),
                row.status,
                *(_cell(json_value(row.values.get(c))) for c in columns),
            ]
            for row in rows
        ]
        return _csv(table, f"{meter_id}-profile.csv")
    return ProfileOut(
        meter_id=meter_id,
        profile=key,
        columns=columns,
        units=units,
        rows=[
            ProfileRowOut(
                capture_time=row.capture_time,
                status=row.status,
                values={c: json_value(v) for c, v in row.values.items()},
            )
            for row in rows
        ],
    )


@router.get("/meters/{meter_id}/load", response_model=Load)
async def load(
    meter_id: str,
    principal: Reader,
    ctx: Ctx,
    period: Literal["day", "week", "month"] = "day",
    end: Annotated[datetime | None, Query(description="a time inside the period (default: now)")] = None,
) -> Load:
    """Energy by hour (day) or by day (week, month), with peak and off-peak shares."""
    check_meter(ctx, principal, meter_id)
    return await load_curve(ctx.headend, meter_id, period, _aware(end, "end"), ctx.settings)


@router.get("/meters/{meter_id}/events", response_model=list[EventOut])
async def events(
    meter_id: str,
    *,
    principal: Reader,
    ctx: Ctx,
    since: Since = None,
    until: Until = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[EventOut]:
    """Stored meter events (event logs), oldest first."""
    check_meter(ctx, principal, meter_id)
    rows = await ctx.store.events(
        meter_id, since=_aware(since, "since"), until=_aware(until, "until"), limit=limit
    )
    return [
        EventOut(id=e.id, log=e.log, time=e.time, code=e.code, description=e.description, data=dict(e.data))
        for e in rows
    ]


@router.get("/alarms", response_model=list[Alarm])
async def alarms(
    _: Viewer,
    ctx: Ctx,
    active: bool | None = None,
    meter_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
) -> list[Alarm]:
    """Alarm episodes, most recent first."""
    records = await ctx.headend.alarms(active=active, meter_id=meter_id, limit=limit)
    return [alarm_out(r) for r in records]


@router.post("/alarms/{alarm_id}/ack", response_model=Alarm)
async def acknowledge(alarm_id: str, body: AlarmAck, principal: Operator, ctx: Ctx) -> Alarm:
    """Acknowledge an alarm episode."""
    try:
        record = await ctx.headend.acknowledge(alarm_id, principal.username, body.note)
    except (InputError, KeyError) as exc:
        raise Problem(404, f"no alarm {alarm_id!r}") from exc
    await ctx.audit(principal.username, "alarm.acknowledge", alarm_id, "ok", {"note": body.note})
    return alarm_out(record)
