"""How the API presents the head-end: meter summaries, live values, load curves, commands,
prepaid accounts and alarms, built from the head-end's read accessors and the store.

Rule: presentation only; nothing here changes state. Live values are the newest stored
instantaneous readings (the collector's, not a fresh conversation), each converted by its
stored unit to the field's unit (:func:`in_unit`). Load curves come from the stored import
energy: interval-energy columns of the meter's load profiles (1.29.0) where they cover a
stretch of time, else the cumulative register (1.8.0 readings and cumulative profile
columns) interpolated linearly between the points around each instant; stretches outside
the data have no energy, so a curve never shows energy that was not measured, and a bucket
measured over part of its time is flagged partial. Periods and peak hours are local to the
meter's time zone (else ``[web] timezone``); peak edges cut the hours exactly.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, time, timedelta
from decimal import Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from metercom.api.schemas import (
    Account,
    Alarm,
    CommandApproval,
    CommandOut,
    Live,
    LiveTotal,
    Load,
    LoadBucket,
    MeterDetail,
    MeterSummary,
    PhaseValues,
    TariffOut,
    TopUpAmount,
    TopUpOut,
)
from metercom.errors import MetercomError
from metercom.model.obis import Obis
from metercom.model.reading import ReadingValue
from metercom.service.config_model import MeterConfig
from metercom.service.config_profiles import switches_supply
from metercom.service.config_web import WebSettings
from metercom.service.headend import HeadEnd
from metercom.service.notify import AlarmRecord
from metercom.service.prepaid import PrepaidAccount, TopUpEvent
from metercom.service.prepaid.tariff import CreditUnit, PrepaidTariff
from metercom.service.status import MeterStatus
from metercom.service.store import CommandRecord
from metercom.service.store.records import object_key
from metercom.service.store.types import decode_value
from metercom.service.store.web import ApprovalRecord, WebStore

__all__ = [
    "ENERGY_IMPORT",
    "account_out",
    "alarm_out",
    "approval_out",
    "command_out",
    "json_value",
    "live_values",
    "load_curve",
    "meter_detail",
    "meter_summaries",
]

ENERGY_IMPORT: Final = "1-0:1.8.0*255"
#: (phase, voltage, current, active power, power factor) OBIS codes of the instantaneous values.
_PHASES: Final = (
    (1, "1-0:32.7.0*255", "1-0:31.7.0*255", "1-0:21.7.0*255", "1-0:33.7.0*255"),
    (2, "1-0:52.7.0*255", "1-0:51.7.0*255", "1-0:41.7.0*255", "1-0:53.7.0*255"),
    (3, "1-0:72.7.0*255", "1-0:71.7.0*255", "1-0:61.7.0*255", "1-0:73.7.0*255"),
)
#: A single-phase meter's values (12.7.0 voltage, 11.7.0 current, 13.7.0 power factor of any
#: phase), shown as phase 1 when the meter has no per-phase codes.
_SINGLE: Final = (1, "1-0:12.7.0*255", "1-0:11.7.0*255", "1-0:1.7.0*255", "1-0:13.7.0*255")
#: Single-phase meters that give their power as L1's (21.7.0) rather than the total's.
_SINGLE_POWER_ALT: Final = "1-0:21.7.0*255"
#: Per-phase import registers (a three-phase Modbus meter such as the pmtr3 has no 1.8.0).
_PHASE_ENERGY: Final = ("1-0:21.8.0*255", "1-0:41.8.0*255", "1-0:61.8.0*255")
_TOTAL_POWER: Final = ("1-0:1.7.0*255", "1-0:16.7.0*255")
_TOTAL_PF: Final = "1-0:13.7.0*255"
_FREQUENCY: Final = "1-0:14.7.0*255"
_DISCONNECT_CONTROL: Final = "0-0:96.3.10*255"


def json_value(value: ReadingValue) -> float | int | str | bool | None:
    """A stored reading value as JSON: numbers as numbers, bytes as hex, times as ISO text."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() and abs(value) < 2**53 else float(value)
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def _number(value: ReadingValue) -> float | None:
    if isinstance(value, Decimal) and value.is_finite():
        return float(value)
    return None


def _state(row: MeterStatus | None, enabled: bool) -> str:
    if not enabled:
        return "disabled"
    if row is None:
        return "unknown"
    if row.quarantined:
        return "quarantined"
    if row.consecutive_failures > 0 or not row.available:
        return "failing"
    if row.last_read_at is None:
        return "unknown"
    return "ok"


def _relay_of(evidence: Sequence[tuple[datetime, int, str]]) -> str | None:
    return max(evidence)[2] if evidence else None


async def relay_state(web: WebStore, meter_id: str) -> str | None:
    """The supply relay: the newest of a confirmed disconnect/reconnect and a stored reading of
    the disconnect control (0-0:96.3.10.255); ``None`` when neither is known."""
    return _relay_of((await web.relay_evidence([meter_id])).get(meter_id, []))


def relay_capable(meter: MeterConfig, relay_seen: bool, prepaid: bool) -> bool:
    """Whether metercom can switch the meter's supply relay. The configuration decides whenever
    it can (:func:`.config_profiles.switches_supply`): never an IEC 62056-21 meter, a Modbus meter
    without a load relay, nor a DLMS meter whose profile has no disconnect control or whose
    association (its client address) may not invoke its methods; always a Modbus meter with a
    load relay and a DLMS meter whose association may. Only where the configuration cannot tell
    (a DLMS meter without a device profile, or one that cannot be loaded) the evidence decides:
    its disconnect control was read or switched, it has a prepaid account, or it names its
    disconnect control (quirk ``disconnect_control``)."""
    known = switches_supply(meter)
    if known is not None:
        return known
    return relay_seen or prepaid or "disconnect_control" in meter.quirks


async def meter_summaries(
    headend: HeadEnd, web: WebStore, only: Sequence[str] | None = None
) -> list[MeterSummary]:
    config = headend.config
    status = {row.meter_id: row for row in headend.status()}
    prepaid = config.prepaid
    relays = await web.relay_evidence(only)
    out = []
    for meter in config.meters:
        if only is not None and meter.id not in only:
            continue
        row = status.get(meter.id)
        account = prepaid.account_of_meter(meter.id) if prepaid is not None else None
        out.append(
            MeterSummary(
                id=meter.id,
                protocol=meter.protocol.value,
                line=meter.line,
                groups=[g.id for g in config.groups if meter.id in g.meters],
                state=_state(row, meter.enabled),  # type: ignore[arg-type]
                last_read=row.last_read_at if row else None,
                next_read=row.next_read_at if row else None,
                last_error=row.last_error if row else None,
                consecutive_failures=row.consecutive_failures if row else 0,
                reads_ok=row.reads_ok if row else 0,
                reads_failed=row.reads_failed if row else 0,
                relay=_relay_of(relays.get(meter.id, [])),  # type: ignore[arg-type]
                relay_capable=relay_capable(meter, bool(relays.get(meter.id)), account is not None),
                prepaid_account=account.account if account is not None else None,
            )
        )
    return out


async def meter_detail(headend: HeadEnd, web: WebStore, meter_id: str) -> MeterDetail:
    config = headend.config
    (summary,) = await meter_summaries(headend, web, [meter_id])
    meter = config.meter(meter_id)
    plans: list[str] = []
    objects: list[str] = []
    for schedule in config.schedules:
        if meter in config.schedule_meters(schedule.id) and schedule.plan not in plans:
            plans.append(schedule.plan)
            plan = config.plan(schedule.plan)
            for obj in (*plan.objects, *(p.obis for p in plan.profiles), *(e.obis for e in plan.events)):
                if str(obj) not in objects:
                    objects.append(str(obj))
    events = await web.count_events(meter_id)
    return MeterDetail(
        **summary.model_dump(),
        objects=objects,
        plans=plans,
        tariff=meter.tariff,
        description=meter.description or None,
        events=events,
    )


#: Units a stored value may carry, per unit the API answers in: the factor to it. A unit not
#: listed for a field is another quantity (var for a W field...): the value is not shown.
_UNITS: Final[Mapping[str, Mapping[str, float]]] = {
    "W": {"W": 1.0, "kW": 1e3, "MW": 1e6, "mW": 1e-3},
    "V": {"V": 1.0, "kV": 1e3, "mV": 1e-3},
    "A": {"A": 1.0, "mA": 1e-3, "kA": 1e3},
    "Hz": {"Hz": 1.0, "kHz": 1e3},
    "kWh": {"Wh": 1e-3, "kWh": 1.0, "MWh": 1e3, "GWh": 1e6},
}
#: Spellings meters use in other cases (IEC 62056-21 readouts in capitals, ``KWH``).
_LOWER: Final[Mapping[str, Mapping[str, float]]] = {
    target: {
        **{name.lower(): f for name, f in table.items() if name not in ("mW", "MW", "mV", "MWh")},
        **({"mwh": 1e3} if target == "kWh" else {}),
    }
    for target, table in _UNITS.items()
}


def in_unit(number: float, unit: str | None, target: str) -> float | None:
    """``number`` given in ``unit`` (as the meter reported it) in ``target`` (W, V, A, Hz or
    kWh); a value without a unit is taken as already in ``target``; ``None`` when ``unit`` is
    not a unit of that quantity."""
    if target not in _UNITS:
        return number
    text = (unit or "").strip()
    if not text:
        return number
    factor = _UNITS[target].get(text)
    if factor is None:
        factor = _LOWER[target].get(text.lower())
    if factor is None:
        return None
    return number * factor


async def live_values(web: WebStore, meter_id: str) -> Live:
    """The newest stored instantaneous values, each converted by its stored unit to the field's
    unit: power W, voltage V, current A, frequency Hz, energy kWh (an IEC 62056-21 meter sends
    ``1.7.0(0.464*kW)``: 464 W). Three-phase codes (32/31/21/33.7.0 for L1...) make phases;
    a meter without them is single-phase (12.7.0 voltage, 11.7.0 current, 1.7.0 or 21.7.0
    power, 13.7.0 power factor: the PZEM-004T's and IS 15959 meters' codes). Without a total
    power (1.7.0, 16.7.0) the phases' powers are added; without 1.8.0 the phases' import
    registers (21/41/61.8.0), when all the meter's phases have one."""
    codes = [c for p in (*_PHASES, _SINGLE) for c in p[1:]]
    codes += [*_TOTAL_POWER, _TOTAL_PF, _FREQUENCY, ENERGY_IMPORT, _SINGLE_POWER_ALT, *_PHASE_ENERGY]
    stored = await web.latest_readings(meter_id, codes)
    newest: datetime | None = None

    def get(code: str, unit: str | None) -> float | None:
        nonlocal newest
        item = stored.get(code)
        if item is None:
            return None
        number = _number(decode_value(item[1], item[2]))
        if number is None:
            return None
        if unit is not None:
            number = in_unit(number, item[3], unit)
            if number is None:
                return None
        newest = item[0] if newest is None or item[0] > newest else newest
        return number

    phases = []
    single = all(p[1] not in stored and p[2] not in stored for p in _PHASES)
    for phase, voltage, current, power, pf in (_SINGLE,) if single else _PHASES:
        power_w = get(power, "W")
        if power_w is None and single:
            power_w = get(_SINGLE_POWER_ALT, "W")
        values = PhaseValues(
            phase=phase,
            voltage_v=get(voltage, "V"),
            current_a=get(current, "A"),
            power_w=power_w,
            power_factor=get(pf, None),
        )
        if any(
            v is not None for v in (values.voltage_v, values.current_a, values.power_w, values.power_factor)
        ):
            phases.append(values)
    total_power = get(_TOTAL_POWER[0], "W")
    if total_power is None:
        total_power = get(_TOTAL_POWER[1], "W")
    if total_power is None and not single:
        powers = [p.power_w for p in phases if p.power_w is not None]
        total_power = sum(powers) if powers and len(powers) == len(phases) else None
    energy = get(ENERGY_IMPORT, "kWh")
    if energy is None and not single:
        registers = [
            get(code, "kWh")
            for code, phase in zip(_PHASE_ENERGY, (1, 2, 3), strict=True)
            if any(p.phase == phase for p in phases)
        ]
        energy = sum(r for r in registers if r is not None) if registers and None not in registers else None
    total = LiveTotal(
        power_w=total_power,
        power_factor=get(_TOTAL_PF, None),
        frequency_hz=get(_FREQUENCY, "Hz"),
        energy_import_kwh=energy,
    )
    return Live(meter_id=meter_id, at=newest, phases=phases, total=total)


# -- load curves ------------------------------------------------------------------------------------

#: OBIS D of active import (C = 1, E = 0) a load curve uses: 8 the cumulative register, 29 the
#: energy of one capture period (a block load profile's column).
_CUMULATIVE_D: Final = 8
_INTERVAL_D: Final = 29
#: A bucket covered to within this (seconds) counts as whole.
_SLACK_S: Final = 1.0


def _is_peak(local_hour: time, start: time, end: time) -> bool:
    if start <= end:
        return start <= local_hour < end
    return local_hour >= start or local_hour < end  # a window over midnight


def _interpolate(times: list[float], values: list[float], at: float) -> float:
    i = bisect.bisect_left(times, at)
    if i < len(times) and times[i] == at:
        return values[i]
    t0, t1, v0, v1 = times[i - 1], times[i], values[i - 1], values[i]
    return v0 + (v1 - v0) * (at - t0) / (t1 - t0)


def _local_midnight(at: datetime, zone: ZoneInfo) -> datetime:
    local = at.astimezone(zone)
    return datetime(local.year, local.month, local.day, tzinfo=zone)


def _import_column(column: str) -> int | None:
    """D of a profile column that is active import energy (1.8.0 or 1.29.0), else None."""
    try:
        obis = Obis.parse(column)
    except (MetercomError, ValueError):
        return None
    if obis.a == 1 and obis.c == 1 and obis.e == 0 and obis.d in (_CUMULATIVE_D, _INTERVAL_D):
        return obis.d
    return None


class _Energy:
    """The stored import energy of one meter: cumulative points (register readings and
    cumulative profile columns, in kWh) and intervals (interval-energy profile columns)."""

    def __init__(self) -> None:
        self.points: dict[float, float] = {}
        self.intervals: list[tuple[float, float, float]] = []  # (end, start, kwh)
        self.longest = 0.0  # the longest interval
        self.times: list[float] = []
        self.kwh: list[float] = []

    def point(self, at: datetime, kwh: float) -> None:
        self.points.setdefault(at.timestamp(), kwh)

    def interval_rows(self, rows: list[tuple[float, float]]) -> None:
        """``(capture time, kWh)`` rows of one interval column: each covers the capture period
        that ends at its time; the period is the most common spacing of the rows (a single row
        is left out: its period is unknown)."""
        rows.sort()
        steps = [round(b[0] - a[0]) for a, b in itertools.pairwise(rows) if b[0] > a[0]]
        if not steps:
            return
        period = float(Counter(steps).most_common(1)[0][0])
        self.intervals += [(end, end - period, kwh) for end, kwh in rows]
        self.longest = max(self.longest, period)

    def seal(self) -> None:
        self.times = sorted(self.points)
        self.kwh = [self.points[t] for t in self.times]
        self.intervals.sort()

    def between(self, a: float, b: float) -> tuple[float, float]:
        """(kWh, seconds covered) of ``[a, b)``: the intervals' energy pro rata where they cover
        it, the cumulative points' difference (interpolated linearly) elsewhere between the
        first and the last point."""
        energy, covered = 0.0, 0.0
        segments: list[tuple[float, float]] = []
        i = bisect.bisect_right(self.intervals, (a, math.inf, math.inf))
        while i < len(self.intervals) and self.intervals[i][0] - self.longest < b:
            end, start, kwh = self.intervals[i]
            lo, hi = max(a, start), min(b, end)
            if hi > lo and end > start:
                energy += kwh * (hi - lo) / (end - start)
                covered += hi - lo
                segments.append((lo, hi))
            i += 1
        if self.times:
            cursor = a
            gaps = []
            for lo, hi in sorted(segments):
                if lo > cursor:
                    gaps.append((cursor, lo))
                cursor = max(cursor, hi)
            if cursor < b:
                gaps.append((cursor, b))
            first, last = self.times[0], self.times[-1]
            for gap_start, gap_end in gaps:
                lo, hi = max(gap_start, first), min(gap_end, last)
                if hi > lo:
                    diff = _interpolate(self.times, self.kwh, hi) - _interpolate(self.times, self.kwh, lo)
                    energy += max(0.0, diff)
                    covered += hi - lo
        return energy, covered


async def _energy(headend: HeadEnd, meter_id: str, since: datetime, until: datetime) -> _Energy:
    out = _Energy()
    config = headend.config
    meter = config.meter(meter_id)
    profiles: list[str] = []
    for schedule in config.schedules:
        if meter in config.schedule_meters(schedule.id):
            for profile in config.plan(schedule.plan).profiles:
                key = object_key(profile.obis)
                if key not in profiles:
                    profiles.append(key)
    for key in profiles:
        columns: dict[str, list[tuple[float, float]]] = {}
        for row in await headend.store.profile_rows(meter_id, key, since=since, until=until):
            for column, value in row.values.items():
                kind = _import_column(column)
                number = _number(value) if kind is not None else None
                kwh = in_unit(number, row.units.get(column), "kWh") if number is not None else None
                if kwh is None:
                    continue
                if kind == _CUMULATIVE_D:
                    out.point(row.capture_time, kwh)
                else:
                    columns.setdefault(column, []).append((row.capture_time.timestamp(), kwh))
        for rows in columns.values():
            out.interval_rows(rows)
    for r in await headend.store.readings(meter_id, obis=ENERGY_IMPORT, since=since, until=until):
        number = _number(r.value)
        kwh = in_unit(number, r.unit, "kWh") if number is not None else None
        if kwh is not None:
            out.point(r.capture_time, kwh)
    out.seal()
    return out


def _peak_edges(start: datetime, stop: datetime, zone: ZoneInfo, settings: WebSettings) -> list[float]:
    """The instants (UTC timestamps) where peak hours begin or end inside ``[start, stop)``."""
    edges: list[float] = []
    day = start.astimezone(zone).date() - timedelta(days=1)
    last = stop.astimezone(zone).date()
    while day <= last:
        for at in (settings.peak_start, settings.peak_end):
            edge = datetime.combine(day, at, tzinfo=zone).timestamp()
            if start.timestamp() < edge < stop.timestamp():
                edges.append(edge)
        day += timedelta(days=1)
    return sorted(set(edges))


def load_zone(headend: HeadEnd, meter_id: str, settings: WebSettings) -> ZoneInfo:
    """The load curve's time zone: the meter's own (``timezone`` of the meter), else ``[web] timezone``."""
    return ZoneInfo(headend.config.meter(meter_id).timezone or settings.timezone)


async def load_curve(
    headend: HeadEnd, meter_id: str, period: str, end: datetime | None, settings: WebSettings
) -> Load:
    """Energy by hour (day) or by local day (week, month); see docs/api.md."""
    zone = load_zone(headend, meter_id, settings)
    now = end or headend.clock.now()
    day_start = _local_midnight(now, zone)
    if period == "day":
        start, stop = day_start, _local_midnight(day_start + timedelta(hours=26), zone)
    elif period == "week":
        start = _local_midnight(day_start - timedelta(days=day_start.weekday()), zone)
        stop = _local_midnight(start + timedelta(days=7, hours=2), zone)
    else:
        start = day_start.replace(day=1)
        following = (start + timedelta(days=32)).replace(day=1)
        stop = _local_midnight(following, zone)
    start_utc, stop_utc = start.astimezone(UTC), stop.astimezone(UTC)
    energy = await _energy(headend, meter_id, start_utc - timedelta(days=2), stop_utc + timedelta(days=2))
    edges = _peak_edges(start_utc, stop_utc, zone, settings)
    # Hours (in UTC steps, so a DST change gives a 23- or 25-hour day), each cut where peak
    # hours begin or end: (start, end, kWh or None, partial, peak kWh, off-peak kWh).
    hours: list[tuple[datetime, datetime, float | None, bool, float, float]] = []
    t = start_utc
    while t < stop_utc:
        u = t + timedelta(hours=1)
        cuts = [t.timestamp(), *(e for e in edges if t.timestamp() < e < u.timestamp()), u.timestamp()]
        total = covered = peak_kwh = off_kwh = 0.0
        for lo, hi in itertools.pairwise(cuts):
            kwh, seconds = energy.between(lo, hi)
            local = datetime.fromtimestamp(lo, UTC).astimezone(zone).time()
            if _is_peak(local, settings.peak_start, settings.peak_end):
                peak_kwh += kwh
            else:
                off_kwh += kwh
            total += kwh
            covered += seconds
        seen = covered > 0
        hours.append((t, u, total if seen else None, seen and covered < 3600 - _SLACK_S, peak_kwh, off_kwh))
        t = u
    buckets: list[LoadBucket] = []
    if period == "day":
        for a_t, b_t, hour_kwh, partial, p, o in hours:
            peak = _is_peak(a_t.astimezone(zone).time(), settings.peak_start, settings.peak_end)
            buckets.append(
                LoadBucket(
                    start=a_t.astimezone(zone),
                    end=b_t.astimezone(zone),
                    kwh=_r(hour_kwh),
                    peak=peak,
                    peak_kwh=_r(p) if hour_kwh is not None else None,
                    offpeak_kwh=_r(o) if hour_kwh is not None else None,
                    partial=partial,
                )
            )
    else:
        day = start
        while day < stop:
            nxt = _local_midnight(day + timedelta(hours=26), zone)
            mine = [h for h in hours if day.astimezone(UTC) <= h[0] < nxt.astimezone(UTC)]
            known = [h for h in mine if h[2] is not None]
            p = sum(h[4] for h in known)
            o = sum(h[5] for h in known)
            buckets.append(
                LoadBucket(
                    start=day,
                    end=nxt,
                    kwh=_r(p + o) if known else None,
                    peak=False,
                    peak_kwh=_r(p) if known else None,
                    offpeak_kwh=_r(o) if known else None,
                    partial=bool(known) and (len(known) < len(mine) or any(h[3] for h in known)),
                )
            )
            day = nxt
    known_hours = [h for h in hours if h[2] is not None]
    peak_kwh = sum(h[4] for h in known_hours)
    off_kwh = sum(h[5] for h in known_hours)
    total = peak_kwh + off_kwh
    return Load(
        meter_id=meter_id,
        period=period,  # type: ignore[arg-type]
        start=start,
        end=stop,
        timezone=str(zone.key),
        peak_hours=f"{settings.peak_start:%H:%M}-{settings.peak_end:%H:%M}",
        buckets=buckets,
        total_kwh=_r(total) if known_hours else None,
        peak_kwh=_r(peak_kwh) if known_hours else None,
        offpeak_kwh=_r(off_kwh) if known_hours else None,
        peak_share=round(peak_kwh / total, 4) if known_hours and total > 0 else None,
    )


def _r(value: float | None) -> float | None:
    return round(value, 6) if value is not None else None


# -- commands ---------------------------------------------------------------------------------------


def approval_out(approval: ApprovalRecord) -> CommandApproval:
    return CommandApproval(
        required=True,
        state=approval.state,  # type: ignore[arg-type]
        approved_by=approval.decided_by if approval.state == "approved" else None,
        decided_at=approval.decided_at,
        reason=approval.reason,
        command_id=approval.command_id,
    )


def command_out(record: CommandRecord, approval: ApprovalRecord | None = None) -> CommandOut:
    return CommandOut(
        id=record.id,
        kind=record.kind,
        meter_id=record.meter_id,
        args=dict(record.args),
        status=record.state.value,
        requested_by=record.requested_by,
        requested_at=record.requested_at,
        started_at=record.started_at,
        finished_at=record.finished_at,
        result=_plain(record.result) if record.result is not None else None,
        error=record.error,
        approval=approval_out(approval) if approval is not None else None,
    )


def held_out(approval: ApprovalRecord) -> CommandOut:
    """A command held for approval (not recorded as a command yet), or rejected."""
    return CommandOut(
        id=approval.id,
        kind=approval.kind,
        meter_id=approval.meter_id,
        args=dict(approval.args),
        status={"rejected": "rejected", "approved": "failed"}.get(approval.state, "awaiting_approval"),  # type: ignore[arg-type]
        requested_by=approval.requested_by,
        requested_at=approval.requested_at,
        started_at=None,
        finished_at=approval.decided_at if approval.state != "awaiting_approval" else None,
        result=None,
        error=(
            f"rejected by {approval.decided_by}: {approval.reason or 'no reason given'}"
            if approval.state == "rejected"
            else "approved, but the command could not be requested (see the audit log)"
            if approval.state == "approved"
            else None
        ),
        approval=approval_out(approval),
    )


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


# -- prepaid ----------------------------------------------------------------------------------------


def _money(minor: int, digits: int) -> str:
    return str((Decimal(minor).scaleb(-digits)).quantize(Decimal(1).scaleb(-digits)))


def account_out(headend: HeadEnd, account: PrepaidAccount, relay: str | None) -> Account:
    prepaid = headend.config.prepaid
    digits = prepaid.minor_digits if prepaid is not None else 2
    currency = prepaid.currency if prepaid is not None else ""
    top_ups = [
        TopUpOut(
            at=e.at,
            amount=_money(e.amount_minor, digits),
            amount_minor=e.amount_minor,
            credit_units=str(e.credit),
            key=e.key,
        )
        for e in account.events
        if isinstance(e, TopUpEvent)
    ]
    total_minor = sum(t.amount_minor for t in top_ups)
    return Account(
        id=account.account_id,
        meter_id=account.meter_id,
        currency=currency,
        unit=account.tariff.unit_label,
        balance_units=str(account.balance),
        credited_units=str(account.credited),
        consumed_units=str(account.charged),
        energy_wh=account.energy_wh,
        total_topped_up=_money(total_minor, digits),
        total_topped_up_minor=total_minor,
        relay=relay,  # type: ignore[arg-type]
        disconnected_by_prepaid=account.disconnected_by_prepaid,
        last_top_up=top_ups[-1] if top_ups else None,
        last_reading_at=account.last_reading_at,
        top_ups=top_ups,
        tariff=tariff_out(account.tariff),
    )


def tariff_out(tariff: PrepaidTariff) -> TariffOut:
    """What a top-up buys: the table's amounts (what the dashboard offers) or the price."""
    table = tariff.credit_unit is CreditUnit.ENERGY
    return TariffOut(
        kind="table" if table else "per_kwh",
        currency=tariff.currency,
        minor_digits=tariff.minor_digits,
        unit=tariff.unit_label,
        unit_wh=tariff.unit_wh if table else None,
        between_rows=tariff.between_rows.value if table else None,
        amounts=[
            TopUpAmount(
                amount=tariff.format_minor(row.amount_minor),
                amount_minor=row.amount_minor,
                credit_units=str(row.units),
            )
            for row in tariff.rows
        ],
        price_per_kwh=(
            str(tariff.price_minor_per_kwh.scaleb(-tariff.minor_digits))
            if tariff.price_minor_per_kwh is not None
            else None
        ),
    )


# -- alarms -----------------------------------------------------------------------------------------


def alarm_out(record: AlarmRecord) -> Alarm:
    return Alarm(
        id=record.alarm_id,
        kind=record.kind.value,
        meter_id=record.meter_id,
        severity=record.severity.label,
        state=record.state.value,
        first_at=record.first_at,
        last_at=record.last_at,
        count=record.count,
        message=record.last.message,
        acknowledged_by=record.acknowledged_by,
        acknowledged_at=record.acknowledged_at,
        acknowledge_note=record.acknowledge_note or None,
        cleared_at=record.cleared_at,
    )
