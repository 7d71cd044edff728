"""The simulated DLMS/COSEM meter: a device profile's objects with live values from the load model.

Rule: :class:`SimulatedDlmsMeter` *is* the :class:`~metercom.codec.dlms.server.CosemObjectModel`
the sans-I/O :class:`~metercom.codec.dlms.server.DlmsServer` serves; it knows nothing about
bytes, links or associations beyond the name the server hands it. Every value is computed
when it is read, from three inputs: the device profile (static values, access rights, capture
lists), the injected :class:`~metercom.clock.Clock` (the true time) and the load model
(:class:`~metercom.sim.load.LoadModel`, a pure function of time). Nothing grows with time: a
year of 15-minute load profile is served from O(1) snapshots and an energy integral, not from
stored rows.

Theory of operation:

* Metrology (:class:`Metrology`): cumulative energy at any true time ``t`` is
  ``base + energy_between(anchor, t)`` (or ``base - energy_between(t, anchor)`` before the
  anchor), in exact millijoules, with per-UTC-day checkpoints cached so any reading costs at
  most one day of steps. Registers show ``floor(mJ / 3.6e6)`` Wh (scaled by the object's
  scaler with :func:`metercom.model.cosem.raw_value`), so a load-profile row and the live
  register agree exactly and consecutive rows differ by exactly the energy of the interval.
  While the disconnector is open the load is cut: instantaneous currents and powers read 0 and
  the energy of every open interval is subtracted from the integral.
* Clock: the meter's time is the true time plus its own offset (``set`` of Clock attribute 2
  or ``shift_time`` moves the offset, the clock-drift fault adds ppm), shown in the profile's
  time zone with the Blue Book deviation sign and DST status from the Clock's DST rules. The
  ``no_deviation`` quirk sends deviation "not specified".
* Sources: a profile attribute bound to ``source = "kind:name"`` (see
  :mod:`metercom.model.profiles.sources`) is evaluated at the read time, or at a row's capture
  time for profile buffers, and turned into the attribute's declared type.
* Profile Generic buffers are :class:`~metercom.codec.dlms.server.ProfileBuffer` views:
  periodic profiles (capture period > 0) have one entry per aligned period of *meter* time up
  to ``profile_entries``; the billing profile (``1.0.98.1.0.255``) one per month; event logs
  (``0.0.99.98.x.255``) one per load-model event of their group; other profiles with capture
  period 0 (scaler and instantaneous profiles) one row "now". Range selection by capture time
  is arithmetic, so only the rows asked for are computed, and each periodic row once: computed
  rows are kept per meter (bounded) until the meter's clock, relay or attributes change.
* Association LN attribute 2 is the object list of the association asking; access rights are
  the profile's, per association.
* Disconnect control (class 70) follows the Blue Book transition table of its control mode.
* Push setup (class 40) ``push`` (method 1) queues a DataNotification in :attr:`outbox`; the
  serving shell sends it to the configured destination.
"""

from __future__ import annotations

import bisect
import datetime as _dt
import hashlib
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache

from metercom.clock import Clock
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.codec.dlms.server import (
    ProfileBuffer,
    RequestContext,
    comparable,
    select_buffer,
)
from metercom.codec.dlms.xdlms import (
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    DataNotification,
    LongInvokeIdAndPriority,
    SelectiveAccessDescriptor,
)
from metercom.errors import InputError, MetercomError
from metercom.model.cosem import check_parameter, check_value, next_state, object_list_to_data, raw_value
from metercom.model.cosem.disconnect import DisconnectTrigger, output_state
from metercom.model.cosem.enums import ControlState
from metercom.model.cosem.types import AccessMode, MethodAccessMode
from metercom.model.dlms_data import (
    DEVIATION_NOT_SPECIFIED,
    CosemDateTime,
    Data,
    DlmsType,
)
from metercom.model.obis import Obis
from metercom.model.profiles import DeviceProfile, ObjectEntry, load_profile
from metercom.model.units import ScalerUnit
from metercom.sim.load import EventRecord, Feeder, Household, IntervalEnergy, LoadConfig, LoadModel, Phase
from metercom.sim.load.config import EventKind

__all__ = [
    "ClockState",
    "Metrology",
    "SimulatedDlmsMeter",
    "default_load_config",
]

_WH_MJ = 3_600_000
#: Cached readings per meter (a day of 15-minute rows, a few times over).
_POINT_CACHE = 512
#: Computed profile rows kept per meter (two days of 15-minute rows, about 200 kB; see
#: :meth:`SimulatedDlmsMeter._row_cache`).
_ROW_CACHE = 192
_DAY = _dt.timedelta(days=1)
_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)
_CLOCK = Obis(0, 0, 1, 0, 0, 255)
_BILLING_PROFILE_C = 98
_EVENT_PROFILE = (0, 0, 99, 98)

#: The registers of the energy vector, in order; tariffs follow (import then export, 8 each).
_REGISTERS = ("active_import", "active_export", "reactive_import", "reactive_export")
_TARIFFS = 8

#: IS 15959-like event codes per group, by event kind: (code at start, code at end).
_EVENT_CODES: dict[str, dict[EventKind, tuple[int, int]]] = {
    "voltage": {EventKind.SAG: (11, 12), EventKind.SWELL: (7, 8), EventKind.BROKEN_NEUTRAL: (9, 10)},
    "power": {EventKind.OUTAGE: (101, 102)},
    "other": {EventKind.TAMPER: (201, 202), EventKind.COVER_OPEN: (251, 252)},
    "current": {},
    "transaction": {},
    "non_rollover": {},
    "control": {},
}
_EVENT_GROUPS = ("voltage", "current", "power", "transaction", "other", "non_rollover", "control")


@cache
def default_load_config(three_phase: bool, utc_offset_minutes: int = 0) -> LoadConfig:
    """The load configuration meters of a profile share (built once per process)."""
    tz = _dt.timezone(_dt.timedelta(minutes=utc_offset_minutes))
    house = Household.seed_example()
    source: Household | Feeder = Feeder(house, (1, 1, 1)) if three_phase else house
    return LoadConfig(source, timezone=tz)


def _vector(energy: IntervalEnergy) -> tuple[int, ...]:
    tariffs_imp = (*energy.active_import_tariff_mj, *([0] * _TARIFFS))[:_TARIFFS]
    tariffs_exp = (*energy.active_export_tariff_mj, *([0] * _TARIFFS))[:_TARIFFS]
    return (
        energy.active_import_mj,
        energy.active_export_mj,
        energy.reactive_import_mvar_s,
        energy.reactive_export_mvar_s,
        *tariffs_imp,
        *tariffs_exp,
    )


def _add(a: Sequence[int], b: Sequence[int], sign: int = 1) -> tuple[int, ...]:
    return tuple(x + sign * y for x, y in zip(a, b, strict=True))


class Metrology:
    """Exact cumulative energy at any true time; see the module docstring.

    ``base_mj`` is the energy vector at ``anchor`` (a step boundary): import, export, Q+, Q-,
    then 8 import and 8 export tariff registers, all in mJ (mvar*s).
    """

    def __init__(self, load: LoadModel, anchor: _dt.datetime, base_mj: Sequence[int]) -> None:
        self.load = load
        self.anchor = anchor
        self.base = tuple(base_mj)
        self._day0 = _dt.datetime(anchor.year, anchor.month, anchor.day, tzinfo=_dt.UTC)
        self._checkpoints: dict[int, tuple[int, ...]] = {}
        self._points: dict[_dt.datetime, tuple[int, ...]] = {}
        self._times: list[_dt.datetime] = []
        #: Intervals (true time) during which the load was cut; the last may be open (end None).
        self.off: list[tuple[_dt.datetime, _dt.datetime | None]] = []

    def _raw(self, at: _dt.datetime) -> tuple[int, ...]:
        if at >= self.anchor:
            return _add(self.base, _vector(self.load.energy_between(self.anchor, at)))
        return _add(self.base, _vector(self.load.energy_between(at, self.anchor)), -1)

    def _checkpoint(self, day: int) -> tuple[int, ...]:
        found = self._checkpoints.get(day)
        if found is not None:
            return found
        at = self._day0 + day * _DAY
        if day in (0, 1):
            value = self._raw(at)
        elif day > 1:
            value = _add(self._checkpoint(day - 1), _vector(self.load.energy_between(at - _DAY, at)))
        else:
            value = _add(self._checkpoint(day + 1), _vector(self.load.energy_between(at, at + _DAY)), -1)
        self._checkpoints[day] = value
        return value

    def unmasked(self, at: _dt.datetime) -> tuple[int, ...]:
        """The energy vector the load drew up to ``at`` (disconnections ignored).

        Starts from the latest cached reading of the same UTC day before ``at`` (profile rows
        are read in ascending order, so each row costs one capture period of steps). The load
        model counts whole steps only, so the value is the one at the start of ``at``'s step;
        points are kept at step starts (chaining from a point inside a step would drop the
        partial steps at both ends, and freeze the register under reads a step apart or less).
        """
        at -= (at - self._day0) % self.load.config.step
        cached = self._points.get(at)
        if cached is not None:
            return cached
        day = (at - self._day0) // _DAY
        start = self._day0 + day * _DAY
        i = bisect.bisect_right(self._times, at) - 1
        if i >= 0 and self._times[i] >= start:
            begin = self._times[i]
            value = _add(self._points[begin], _vector(self.load.energy_between(begin, at)))
        elif day == 0:
            value = self._raw(at)
        else:
            value = _add(self._checkpoint(day), _vector(self.load.energy_between(start, at)))
        if len(self._times) >= _POINT_CACHE:
            for old in self._times[: _POINT_CACHE // 2]:
                del self._points[old]
            del self._times[: _POINT_CACHE // 2]
        bisect.insort(self._times, at)
        self._points[at] = value
        return value

    def cumulative(self, at: _dt.datetime) -> tuple[int, ...]:
        """The registers' energy vector at true time ``at`` (mJ), disconnections subtracted."""
        value = self.unmasked(at)
        for start, end in self.off:
            if start >= at:
                continue
            stop = at if end is None or end > at else end
            if stop > start:
                value = _add(value, _vector(self.load.energy_between(start, stop)), -1)
        return value

    def cut(self, at: _dt.datetime) -> bool:
        """True when the load is cut at ``at``."""
        return any(start <= at and (end is None or at < end) for start, end in self.off)

    def open_relay(self, at: _dt.datetime) -> None:
        if not self.off or self.off[-1][1] is not None:
            self.off.append((at, None))

    def close_relay(self, at: _dt.datetime) -> None:
        if self.off and self.off[-1][1] is None:
            self.off[-1] = (self.off[-1][0], max(at, self.off[-1][0]))


@dataclass(slots=True)
class ClockState:
    """The meter's own clock: offset from the true time, drift, time zone and DST rules."""

    offset: _dt.timedelta = _dt.timedelta(0)
    drift_ppm: float = 0.0
    drift_since: _dt.datetime | None = None
    #: Blue Book deviation of standard time (minutes, UTC = local + deviation).
    time_zone: int = 0
    dst_enabled: bool = False
    dst_deviation: int = 60
    dst_begin: tuple[int, int, int, int] = (3, 254, 7, 2)  # month, day, day_of_week, hour
    dst_end: tuple[int, int, int, int] = (10, 254, 7, 3)

    def meter_time(self, true: _dt.datetime) -> _dt.datetime:
        """The meter's time (UTC) at true time ``true``."""
        drift = _dt.timedelta(0)
        if self.drift_ppm and self.drift_since is not None:
            drift = (true - self.drift_since) * (self.drift_ppm / 1e6)
        return true + self.offset + drift

    def true_time(self, meter: _dt.datetime) -> _dt.datetime:
        """Inverse of :meth:`meter_time` (drift ignored within a read)."""
        drift = _dt.timedelta(0)
        if self.drift_ppm and self.drift_since is not None:
            drift = (meter - self.offset - self.drift_since) * (self.drift_ppm / 1e6)
        return meter - self.offset - drift

    def standard_offset(self) -> _dt.timedelta:
        return _dt.timedelta(minutes=-self.time_zone)

    def dst_active(self, utc: _dt.datetime) -> bool:
        if not self.dst_enabled:
            return False
        local = utc + self.standard_offset()
        begin = _rule_date(local.year, self.dst_begin)
        end = _rule_date(local.year, self.dst_end) - _dt.timedelta(minutes=self.dst_deviation)
        naive = local.replace(tzinfo=None)
        return begin <= naive < end

    def local_offset(self, utc: _dt.datetime) -> _dt.timedelta:
        offset = self.standard_offset()
        if self.dst_active(utc):
            offset += _dt.timedelta(minutes=self.dst_deviation)
        return offset

    def to_cosem(self, utc: _dt.datetime, *, with_deviation: bool = True) -> CosemDateTime:
        """The meter's clock value for the meter time ``utc``."""
        offset = self.local_offset(utc)
        local = (utc + offset).replace(tzinfo=_dt.timezone(offset))
        value = CosemDateTime.from_datetime(local)
        if not with_deviation:
            value = value._replace(deviation=DEVIATION_NOT_SPECIFIED)
        # A fixed-offset tzinfo has no dst(): the status bit comes from our own DST rules.
        return value._replace(clock_status=0x80 if self.dst_active(utc) else 0)


def _rule_date(year: int, rule: tuple[int, int, int, int]) -> _dt.datetime:
    month, day, day_of_week, hour = rule
    if day in (0xFD, 0xFE):  # second last / last day of the month
        nxt = _dt.datetime(year + (month == 12), month % 12 + 1, 1)  # noqa: DTZ001 - naive local wall time
        date = nxt - _dt.timedelta(days=1 if day == 0xFE else 2)
    else:
        date = _dt.datetime(year, month, max(1, min(day, 28)))  # noqa: DTZ001 - naive local wall time
    if 1 <= day_of_week <= 7:
        while date.isoweekday() != day_of_week:
            date -= _dt.timedelta(days=1)
    return date.replace(hour=hour if 0 <= hour <= 23 else 0)


def _seed_int(seed: int, *parts: object) -> int:
    digest = hashlib.sha256(repr((seed, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big")


# --------------------------------------------------------------------------------------------
# Profile buffers
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class _TimedBuffer:
    """Rows at known capture times (meter time, UTC), computed when read."""

    meter: SimulatedDlmsMeter
    entry: ObjectEntry
    columns: list[CaptureObjectDefinition]
    times: Callable[[int, int], list[_dt.datetime]]
    count: int
    locate: Callable[[_dt.datetime, _dt.datetime], tuple[int, int]]
    cells: Callable[[int, _dt.datetime, CaptureObjectDefinition], Data | None] | None = None

    def capture_objects(self) -> Sequence[CaptureObjectDefinition]:
        return self.columns

    def entries_in_use(self) -> int:
        return self.count

    cache: dict[tuple[Obis, _dt.datetime], list[Data]] | None = None

    def rows(self, first: int, last: int) -> Iterable[Sequence[Data]]:
        out = []
        cache, name = self.cache, self.entry.logical_name
        for index, at in zip(range(first, last + 1), self.times(first, last), strict=True):
            if cache is not None:
                found = cache.get((name, at))
                if found is not None:
                    out.append(found)
                    continue
            row = []
            for column in self.columns:
                cell = self.cells(index, at, column) if self.cells is not None else None
                row.append(cell if cell is not None else self.meter.column_value(column, at))
            if cache is not None and len(cache) < _ROW_CACHE:
                cache[(name, at)] = row
            out.append(row)
        return out

    def entry_range(self, column: int, low: Data, high: Data) -> tuple[int, int] | None:
        capture = self.columns[column]
        if capture.class_id != 8 or capture.attribute_index != 2:
            return None
        tz = _dt.timezone(self.meter.clock_state.local_offset(self.meter.meter_now()))
        lo = comparable(low, tz)
        hi = comparable(high, tz)
        if not isinstance(lo, _dt.datetime) or not isinstance(hi, _dt.datetime):
            return None
        return self.locate(lo, hi)


# --------------------------------------------------------------------------------------------
# The meter
# --------------------------------------------------------------------------------------------


@dataclass
class _PushMessage:
    """A DataNotification waiting to be sent: destination text ("host:port") and the APDU."""

    destination: str
    apdu: bytes


@dataclass
class SimulatedDlmsMeter:
    """One simulated meter: a :class:`~metercom.codec.dlms.server.CosemObjectModel`.

    ``anchor`` (default: the clock's time at creation, floored to the minute) is where the
    load model starts integrating; registers start from a seeded reading so history before the
    anchor stays positive. ``history`` bounds how far back periodic profiles reach.
    """

    profile: DeviceProfile
    clock: Clock
    seed: int = 0
    serial: str | None = None
    load: LoadModel | None = None
    anchor: _dt.datetime | None = None
    history: _dt.timedelta = _dt.timedelta(days=400)
    no_deviation: bool = False
    outbox: list[_PushMessage] = field(default_factory=list)
    values: dict[tuple[Obis, int], Data] = field(default_factory=dict)
    clock_state: ClockState = field(default_factory=ClockState)
    programming_count: int = 0
    on_change: Callable[[str], None] | None = None

    def __post_init__(self) -> None:
        now = self.clock.now()
        if self.anchor is None:
            self.anchor = now.replace(second=0, microsecond=0)
        clock = self.profile.find(_CLOCK)
        if clock is not None:
            self.clock_state.time_zone = clock.value("time_zone").as_int()
            self.clock_state.dst_enabled = bool(clock.value("daylight_savings_enabled").value)
            self.clock_state.dst_deviation = clock.value("daylight_savings_deviation").as_int()
            for name, slot in (("daylight_savings_begin", "dst_begin"), ("daylight_savings_end", "dst_end")):
                raw = clock.value(name).value
                if isinstance(raw, bytes) and len(raw) == 12:
                    v = CosemDateTime.from_bytes(raw)
                    setattr(self.clock_state, slot, (v.month, v.day, v.day_of_week, v.hour))
        if self.load is None:
            three_phase = any(o.source(2) == "load:voltage_l2" for o in self.profile.objects if _has_value(o))
            config = default_load_config(three_phase, -self.clock_state.time_zone)
            self.load = LoadModel(config, seed=self.seed, start=self.anchor)
        base_wh = 2_000_000 + _seed_int(self.seed, "base") % 18_000_000
        base = [base_wh * _WH_MJ, (base_wh // 50) * _WH_MJ, (base_wh // 3) * _WH_MJ, (base_wh // 40) * _WH_MJ]
        tariffs_imp = [base[0] // 2, base[0] - base[0] // 2] + [0] * (_TARIFFS - 2)
        tariffs_exp = [base[1] // 2, base[1] - base[1] // 2] + [0] * (_TARIFFS - 2)
        self.metrology = Metrology(self.load, self.anchor, [*base, *tariffs_imp, *tariffs_exp])
        self._capture_period_of: dict[Obis, int] = {}
        self._rows: dict[tuple[Obis, _dt.datetime], list[Data]] = {}
        self._rows_token: tuple[object, ...] = ()
        #: Bumped by every state change the row cache cannot see in its token.
        self._revision = 0
        for entry in self.profile.objects:
            if entry.class_id == 7:
                period = entry.value("capture_period").as_int()
                for column in self._captures(entry):
                    self._capture_period_of.setdefault(column.logical_name, period)
        if self.serial is not None:
            serial_obj = self.profile.find("0.0.96.1.0.255")
            if serial_obj is not None:
                self.values[(serial_obj.logical_name, 2)] = Data.octet_string(self.serial.encode())

    # -- time -----------------------------------------------------------------------------------

    def true_now(self) -> _dt.datetime:
        return self.clock.now()

    def meter_now(self) -> _dt.datetime:
        """The meter's own time (UTC), offset and drift applied."""
        return self.clock_state.meter_time(self.clock.now())

    def set_meter_time(self, meter_utc: _dt.datetime) -> None:
        """Set the meter's clock (Clock attribute 2): only the meter's own offset moves."""
        true = self.clock.now()
        self.clock_state.offset = meter_utc - true
        if self.clock_state.drift_ppm:
            self.clock_state.drift_since = true
        self.programming_count += 1

    def set_drift(self, ppm: float) -> None:
        """Fault: the meter's clock runs ``ppm`` parts per million fast (negative: slow)."""
        self.clock_state.offset = self.meter_now() - self.clock.now()
        self.clock_state.drift_ppm = ppm
        self.clock_state.drift_since = self.clock.now()

    # -- disconnector --------------------------------------------------------------------------

    def _disconnector(self) -> ObjectEntry | None:
        for entry in self.profile.objects:
            if entry.class_id == 70:
                return entry
        return None

    @property
    def connected(self) -> bool:
        """True while the relay is closed (the load is supplied)."""
        return not self.metrology.cut(self.true_now())

    def disconnect_trigger(self, trigger: DisconnectTrigger) -> ControlState:
        """Run a trigger through the disconnector's transition table; cut or restore the load."""
        entry = self._disconnector()
        if entry is None:
            raise InputError("this profile has no disconnect control object")
        key = (entry.logical_name, 3)
        state = ControlState(self.values.get(key, entry.value("control_state")).as_int())
        mode = self.values.get((entry.logical_name, 4), entry.value("control_mode")).as_int()
        new = ControlState(next_state(mode, state, trigger))
        self.values[key] = Data.enum(int(new))
        self.values[(entry.logical_name, 2)] = Data.boolean(output_state(new))
        self._revision += 1
        now = self.true_now()
        if output_state(new):
            self.metrology.close_relay(now)
        else:
            self.metrology.open_relay(now)
        if self.on_change is not None:
            self.on_change("disconnect")
        return new

    # -- helpers -------------------------------------------------------------------------------

    def _captures(self, entry: ObjectEntry) -> list[CaptureObjectDefinition]:
        raw = self.values.get((entry.logical_name, 3), entry.value("capture_objects"))
        return [CaptureObjectDefinition.from_data(item) for item in raw.as_items()]

    def _stored(self, entry: ObjectEntry, attribute: int) -> Data:
        found = self.values.get((entry.logical_name, attribute))
        return found if found is not None else entry.value(attribute)

    def _scaler_unit(self, entry: ObjectEntry) -> ScalerUnit:
        if entry.interface.has_attribute("scaler_unit"):
            index = entry.interface.attribute("scaler_unit").index
            return ScalerUnit.from_data(self._stored(entry, index))
        return ScalerUnit(0, 255)

    def column_value(self, column: CaptureObjectDefinition, meter_at: _dt.datetime) -> Data:
        """The value a profile captures for ``column`` at meter time ``meter_at``."""
        entry = self.profile.find(column.logical_name)
        if entry is None:
            return Data.null()
        return self.attribute_value(entry, column.attribute_index, meter_at)

    def attribute_value(
        self, entry: ObjectEntry, attribute: int, meter_at: _dt.datetime | None = None
    ) -> Data:
        """An attribute's value at meter time ``meter_at`` (now by default), sources evaluated."""
        at = meter_at if meter_at is not None else self.meter_now()
        if attribute == 1:
            return Data.octet_string(entry.logical_name.to_bytes())
        if entry.class_id == 8 and attribute == 2:
            return Data.octet_string(
                self.clock_state.to_cosem(at, with_deviation=not self.no_deviation).to_bytes()
            )
        stored = self.values.get((entry.logical_name, attribute))
        if stored is not None:
            return stored
        given = entry.attributes.get(attribute)
        if given is None:
            return entry.value(attribute)
        if given.source is None:
            return given.value
        return self._source(entry, given.source, given.value.type, at)

    def _source(self, entry: ObjectEntry, source: str, type_: DlmsType, meter_at: _dt.datetime) -> Data:
        kind, _, name = source.partition(":")
        true_at = self.clock_state.true_time(meter_at)
        if kind == "clock":
            return Data.octet_string(self.clock_state.to_cosem(meter_at).to_bytes())
        if kind == "demand_max_time":
            return Data.octet_string(self._demand_max_time(name, meter_at).to_bytes())
        quantity = self._quantity(entry, kind, name, true_at)
        if type_ in (DlmsType.NULL_DATA, DlmsType.STRUCTURE, DlmsType.ARRAY):
            type_ = DlmsType.DOUBLE_LONG_UNSIGNED
        su = self._scaler_unit(entry)
        if type_ in (DlmsType.OCTET_STRING, DlmsType.VISIBLE_STRING):
            return Data.visible_string(str(quantity))
        try:
            return raw_value(quantity, su, type_)
        except InputError:
            # Out of range for the declared type: clamp, as a register stage saturates.
            return raw_value(0, su, type_)

    def _quantity(
        self, entry: ObjectEntry, kind: str, name: str, true_at: _dt.datetime
    ) -> Decimal | float | int:
        if kind in ("load", "average", "billing_average"):
            return self._instantaneous(name, true_at)
        if kind == "energy":
            return self._energy(name, true_at)
        if kind == "block_energy":
            period = self._capture_period_of.get(entry.logical_name) or 1800
            end = _floor_time(true_at, period)
            start = end - _dt.timedelta(seconds=period)
            return self._energy(name, end) - self._energy(name, start)
        if kind in ("demand", "demand_last", "demand_max"):
            return self._demand(kind, name, true_at)
        if kind == "counter":
            return self._counter(name, true_at)
        if kind == "event":
            return self._last_event_code(name, true_at)
        return 0

    def _instantaneous(self, name: str, true_at: _dt.datetime) -> float:
        load = self.load
        assert load is not None  # noqa: S101 - set in __post_init__
        snap = load.snapshot(true_at)
        cut = self.metrology.cut(true_at)
        base, _, suffix = name.rpartition("_")
        phase: Phase | None = None
        if suffix in ("l1", "l2", "l3"):
            phase = Phase(int(suffix[1]))
        else:
            base = name
        if base == "frequency":
            return snap.frequency_hz
        if base == "voltage":
            values = [p.voltage_v for p in snap.phases if phase is None or p.phase == phase]
            return values[0] if values else 0.0
        if cut:
            return 1.0 if base == "power_factor" else 0.0
        if base == "current_n":
            return snap.neutral_current_a
        if phase is not None:
            found = [p for p in snap.phases if p.phase == phase]
            if not found:
                return 0.0
            p = found[0]
            p_w, q_var, s_va, pf, i_a = (
                p.active_power_w,
                p.reactive_power_var,
                p.apparent_power_va,
                p.power_factor,
                p.current_a,
            )
        else:
            p_w, q_var, s_va, pf = (
                snap.active_power_w,
                snap.reactive_power_var,
                snap.apparent_power_va,
                snap.power_factor,
            )
            i_a = max((ph.current_a for ph in snap.phases), default=0.0)
        table = {
            "current": i_a,
            "active_power": p_w,
            "active_power_import": max(p_w, 0.0),
            "active_power_export": max(-p_w, 0.0),
            "reactive_power_import": max(q_var, 0.0),
            "reactive_power_export": max(-q_var, 0.0),
            "apparent_power_import": s_va if p_w >= 0 else 0.0,
            "apparent_power_export": s_va if p_w < 0 else 0.0,
            "power_factor": pf if p_w >= 0 else -pf,
        }
        return table.get(base, 0.0)

    def energy_vector(self, true_at: _dt.datetime) -> tuple[int, ...]:
        """The exact register vector (mJ) at true time ``true_at``."""
        return self.metrology.cumulative(true_at)

    def _energy(self, name: str, true_at: _dt.datetime) -> int:
        """A register in Wh (varh, VAh): floor of the exact mJ integral."""
        vector = self.energy_vector(true_at)
        register, _, tariff = name.rpartition("_t")
        if not register or not tariff.isdigit():
            register, tariff = name, ""
        t = int(tariff) if tariff else 0
        if register in ("apparent_import", "apparent_export"):
            p = vector[0 if register == "apparent_import" else 1]
            q = vector[2 if register == "apparent_import" else 3]
            if t:
                share = vector[4 + t - 1] / vector[0] if vector[0] else 0.0
                return int(math.hypot(p, q) * share) // _WH_MJ
            return math.isqrt(p * p + q * q) // _WH_MJ
        if register in ("reactive_q1", "reactive_q4"):
            return vector[2 if register == "reactive_q1" else 3] // _WH_MJ
        if register in ("reactive_q2", "reactive_q3"):
            return 0
        if t:
            offset = 4 if register == "active_import" else 4 + _TARIFFS if register == "active_export" else -1
            if offset < 0 or t > _TARIFFS:
                return 0
            return vector[offset + t - 1] // _WH_MJ
        index = _REGISTERS.index(register) if register in _REGISTERS else 0
        return vector[index] // _WH_MJ

    def _demand(self, kind: str, name: str, true_at: _dt.datetime) -> Decimal | int:
        load = self.load
        assert load is not None  # noqa: S101 - set in __post_init__
        register = name.partition("_t")[0]
        if register not in ("active_import", "apparent_import"):
            return 0
        period = 900
        end = _floor_time(true_at, period)
        if kind == "demand":
            start = end
            stop = true_at
        elif kind == "demand_last":
            start, stop = end - _dt.timedelta(seconds=period), end
        else:  # demand_max: the largest block of the current billing month so far
            return self._max_demand(name, true_at)[0]
        if stop <= start:
            return 0
        energy_wh = Decimal(self._energy(register, stop) - self._energy(register, start))
        return energy_wh * 3600 / period

    def _max_demand(self, name: str, true_at: _dt.datetime) -> tuple[Decimal, _dt.datetime]:
        """Maximum 15-minute demand since the start of the billing month (coarse: hourly blocks
        of the energy integral are scanned once per call, at most ~744)."""
        register = name.partition("_t")[0]
        month_start = _month_start(self.clock_state.meter_time(true_at), self.clock_state)
        start = self.clock_state.true_time(month_start)
        best = (Decimal(0), month_start)
        period = _dt.timedelta(minutes=15)
        t = _floor_time(max(start, true_at - _dt.timedelta(days=2)), 900)
        previous = self._energy(register, t)
        while t + period <= true_at:
            nxt = t + period
            value = self._energy(register, nxt)
            demand = Decimal(value - previous) * 4
            if demand > best[0]:
                best = (demand, self.clock_state.meter_time(nxt))
            previous = value
            t = nxt
        return best

    def _demand_max_time(self, name: str, meter_at: _dt.datetime) -> CosemDateTime:
        _, at = self._max_demand(name, self.clock_state.true_time(meter_at))
        return self.clock_state.to_cosem(at)

    def _counter(self, name: str, true_at: _dt.datetime) -> int:
        anchor = self.anchor
        assert anchor is not None  # noqa: S101 - set in __post_init__
        if name == "billing_resets":
            months = (true_at.year - anchor.year) * 12 + true_at.month - anchor.month
            return 12 + max(months, 0)
        if name == "programming":
            return self.programming_count
        if name in ("tamper", "power_failures", "power_on_minutes", "power_off_minutes"):
            events = self._events(true_at - _dt.timedelta(days=30), true_at)
            if name == "tamper":
                return sum(1 for e in events if e.kind in (EventKind.TAMPER, EventKind.COVER_OPEN))
            if name == "power_failures":
                return sum(1 for e in events if e.kind is EventKind.OUTAGE)
            off = sum(
                (
                    (min(e.end, true_at) - e.start).total_seconds()
                    for e in events
                    if e.kind is EventKind.OUTAGE
                ),
                0.0,
            )
            if name == "power_off_minutes":
                return int(off // 60)
            return int(((true_at - anchor).total_seconds() + 30 * 86400 - off) // 60)
        return 0

    def _events(self, start: _dt.datetime, end: _dt.datetime) -> list[EventRecord]:
        load = self.load
        assert load is not None  # noqa: S101 - set in __post_init__
        return list(load.events_between(start, end))

    def _group_events(
        self, group: str, start: _dt.datetime, end: _dt.datetime
    ) -> list[tuple[_dt.datetime, int]]:
        """(true time, code) of every start and end of the group's events in ``[start, end)``."""
        codes = _EVENT_CODES.get(group, {})
        if not codes:
            return []
        load = self.load
        assert load is not None  # noqa: S101 - set in __post_init__
        out: list[tuple[_dt.datetime, int]] = []
        for record in load.events_between(start, end):
            pair = codes.get(record.kind)
            if pair is None:
                continue
            if start <= record.start < end:
                out.append((record.start, pair[0]))
            if start <= record.end < end:
                out.append((record.end, pair[1]))
        out.sort(key=lambda item: item[0])
        return out

    def _last_event_code(self, group: str, true_at: _dt.datetime) -> int:
        found = self._group_events(group, true_at - _dt.timedelta(days=30), true_at)
        return found[-1][1] if found else 0

    # -- profile buffers -----------------------------------------------------------------------

    def profile_buffer(self, entry: ObjectEntry) -> ProfileBuffer:
        """The buffer of a Profile Generic object as rows computed on demand."""
        columns = self._captures(entry)
        period = self._stored(entry, 4).as_int()
        limit = max(self._stored(entry, 8).as_int(), 0)
        now = self.meter_now()
        ln = entry.logical_name
        if ln.c == _BILLING_PROFILE_C:
            return self._monthly_buffer(entry, columns, limit, now)
        if (ln.a, ln.b, ln.c, ln.d) == _EVENT_PROFILE:
            return self._event_buffer(entry, columns, limit, now)
        if period <= 0:
            return _TimedBuffer(
                self, entry, columns, lambda a, b: [now] * (b - a + 1), min(limit, 1) or 1, _all_or_none
            )
        step = _dt.timedelta(seconds=period)
        anchor = self.anchor
        assert anchor is not None  # noqa: S101 - set in __post_init__
        last = _floor_time(now, period)
        earliest = _floor_time(self.clock_state.meter_time(anchor) - self.history, period) + step
        available = int((last - earliest) // step) + 1 if last >= earliest else 0
        count = min(limit, available) if limit else available
        first_time = last - (count - 1) * step

        def times(a: int, b: int) -> list[_dt.datetime]:
            return [first_time + (i - 1) * step for i in range(a, b + 1)]

        def locate(lo: _dt.datetime, hi: _dt.datetime) -> tuple[int, int]:
            a = math.ceil((lo - first_time) / step) + 1
            b = math.floor((hi - first_time) / step) + 1
            return max(a, 1), min(b, count)

        return _TimedBuffer(self, entry, columns, times, count, locate, cache=self._row_cache())

    def _row_cache(self) -> dict[tuple[Obis, _dt.datetime], list[Data]]:
        """Rows of periodic profiles already computed, by (profile, capture time).

        A row is a pure function of its capture time and the meter's state, so it is computed
        once (a day of load profile costs its load-model steps once, not at every read). The
        cache is emptied whenever that state may have changed: the clock (offset, drift, time
        zone, DST rules), the relay's cut intervals, any attribute written (``values``,
        ``programming_count``), and when it is full (:data:`_ROW_CACHE` rows), so the next
        window read is kept instead.
        """
        state = self.clock_state
        token = (
            state.offset,
            state.drift_ppm,
            state.drift_since,
            state.time_zone,
            state.dst_enabled,
            state.dst_deviation,
            state.dst_begin,
            state.dst_end,
            self.no_deviation,
            tuple(self.metrology.off),
            self.programming_count,
            len(self.values),
            self._revision,
        )
        if token != self._rows_token or len(self._rows) >= _ROW_CACHE:
            self._rows = {}
            self._rows_token = token
        return self._rows

    def _monthly_buffer(
        self, entry: ObjectEntry, columns: list[CaptureObjectDefinition], limit: int, now: _dt.datetime
    ) -> ProfileBuffer:
        starts: list[_dt.datetime] = []
        current = _month_start(now, self.clock_state)
        while len(starts) < (limit or 12):
            starts.append(current)
            current = _month_start(current - _dt.timedelta(days=1), self.clock_state)
        starts.reverse()

        def times(a: int, b: int) -> list[_dt.datetime]:
            return starts[a - 1 : b]

        def locate(lo: _dt.datetime, hi: _dt.datetime) -> tuple[int, int]:
            hits = [i for i, t in enumerate(starts, start=1) if lo <= t <= hi]
            return (hits[0], hits[-1]) if hits else (1, 0)

        return _TimedBuffer(self, entry, columns, times, len(starts), locate)

    def _event_buffer(
        self, entry: ObjectEntry, columns: list[CaptureObjectDefinition], limit: int, now: _dt.datetime
    ) -> ProfileBuffer:
        group = _EVENT_GROUPS[entry.logical_name.e] if entry.logical_name.e < len(_EVENT_GROUPS) else ""
        true_now = self.clock_state.true_time(now)
        found = self._group_events(group, true_now - _dt.timedelta(days=90), true_now)
        if limit:
            found = found[-limit:]
        stamps = [self.clock_state.meter_time(t) for t, _ in found]
        codes = [c for _, c in found]

        def times(a: int, b: int) -> list[_dt.datetime]:
            return stamps[a - 1 : b]

        def locate(lo: _dt.datetime, hi: _dt.datetime) -> tuple[int, int]:
            hits = [i for i, t in enumerate(stamps, start=1) if lo <= t <= hi]
            return (hits[0], hits[-1]) if hits else (1, 0)

        def extra(index: int, at: _dt.datetime, column: CaptureObjectDefinition) -> Data | None:
            del at
            if column.logical_name.c == 96 and column.logical_name.d == 11:
                return (
                    Data.unsigned(codes[index - 1] & 0xFF)
                    if codes[index - 1] < 256
                    else Data.long_unsigned(codes[index - 1])
                )
            return None

        return _TimedBuffer(self, entry, columns, times, len(found), locate, extra)

    # -- CosemObjectModel ------------------------------------------------------------------------

    def attribute_access(
        self, context: RequestContext, class_id: int, obis: Obis, attribute: int
    ) -> AccessMode | None:
        entry = self.profile.find(obis)
        if entry is None or entry.class_id != class_id:
            return None
        access = entry.access.get(context.association)
        if access is None:
            return None
        return access.attribute(attribute)

    def method_access(
        self, context: RequestContext, class_id: int, obis: Obis, method: int
    ) -> MethodAccessMode | None:
        entry = self.profile.find(obis)
        if entry is None or entry.class_id != class_id:
            return None
        access = entry.access.get(context.association)
        if access is None:
            return None
        return access.method(method)

    def get_attribute(
        self,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccessDescriptor | None,
        *,
        context: RequestContext,
    ) -> Data | DataAccessResult:
        entry = self.profile.find(descriptor.instance_id)
        if entry is None:
            return DataAccessResult.OBJECT_UNDEFINED
        attribute = descriptor.attribute_id
        if attribute < 1 or attribute > len(entry.interface.attributes):
            return DataAccessResult.OBJECT_UNDEFINED
        if entry.class_id == 15 and attribute == 2:
            return object_list_to_data(
                self.profile.object_list(context.association), association_version=entry.version
            )
        if entry.class_id == 7 and attribute == 2:
            return select_buffer(self.profile_buffer(entry), selection)
        if selection is not None:
            return DataAccessResult.OTHER_REASON
        if entry.class_id == 7 and attribute == 7:
            return Data.double_long_unsigned(self.profile_buffer(entry).entries_in_use())
        if entry.class_id == 15 and attribute == 8:
            return Data.enum(2)  # association_status: associated (we are being asked through it)
        return self.attribute_value(entry, attribute)

    def set_attribute(
        self,
        descriptor: CosemAttributeDescriptor,
        value: Data,
        selection: SelectiveAccessDescriptor | None,
        *,
        context: RequestContext,
    ) -> DataAccessResult:
        del context
        entry = self.profile.find(descriptor.instance_id)
        if entry is None:
            return DataAccessResult.OBJECT_UNDEFINED
        attribute = descriptor.attribute_id
        if selection is not None or attribute == 1:
            return DataAccessResult.READ_WRITE_DENIED
        try:
            check_value(entry.class_id, attribute, value, version=entry.version)
        except (MetercomError, ValueError):
            return DataAccessResult.TYPE_UNMATCHED
        if entry.class_id == 8 and attribute == 2:
            raw = value.value
            if not isinstance(raw, bytes) or len(raw) != 12:
                return DataAccessResult.TYPE_UNMATCHED
            try:
                stamp = CosemDateTime.from_bytes(raw)
                tz = _dt.timezone(self.clock_state.local_offset(self.meter_now()))
                when = stamp.to_datetime(default_tz=tz)
            except (MetercomError, ValueError):
                return DataAccessResult.TYPE_UNMATCHED
            self.set_meter_time(when.astimezone(_dt.UTC))
            return DataAccessResult.SUCCESS
        if entry.class_id == 8 and attribute == 3:
            self.clock_state.time_zone = value.as_int()
        self.values[(entry.logical_name, attribute)] = value
        self.programming_count += 1
        self._revision += 1
        return DataAccessResult.SUCCESS

    def invoke_method(
        self, descriptor: CosemMethodDescriptor, parameters: Data | None, *, context: RequestContext
    ) -> tuple[ActionResult, Data | None]:
        del context
        entry = self.profile.find(descriptor.instance_id)
        if entry is None:
            return ActionResult.OBJECT_UNDEFINED, None
        method = descriptor.method_id
        if method < 1 or method > len(entry.interface.methods):
            return ActionResult.OBJECT_UNDEFINED, None
        try:
            check_parameter(
                entry.class_id,
                method,
                parameters if parameters is not None else Data.null(),
                version=entry.version,
            )
        except (MetercomError, ValueError):
            if parameters is not None and parameters.type != DlmsType.NULL_DATA:
                return ActionResult.TYPE_UNMATCHED, None
        if entry.class_id == 70 and method in (1, 2):
            trigger = (
                DisconnectTrigger.REMOTE_DISCONNECT if method == 1 else DisconnectTrigger.REMOTE_RECONNECT
            )
            self.disconnect_trigger(trigger)
            return ActionResult.SUCCESS, None
        if entry.class_id == 8 and method == 6 and parameters is not None:  # shift_time (seconds)
            self.set_meter_time(self.meter_now() + _dt.timedelta(seconds=parameters.as_int()))
            return ActionResult.SUCCESS, None
        if entry.class_id == 8 and method == 1:  # adjust_to_quarter
            now = self.meter_now()
            self.set_meter_time(_round_time(now, 900))
            return ActionResult.SUCCESS, None
        if entry.class_id == 40 and method == 1:
            self.push(entry)
            return ActionResult.SUCCESS, None
        return ActionResult.SUCCESS, None

    # -- push ------------------------------------------------------------------------------------

    def push(self, entry: ObjectEntry | Obis | str) -> DataNotification:
        """Build the Push setup's DataNotification and queue it in :attr:`outbox`."""
        if not isinstance(entry, ObjectEntry):
            entry = self.profile.object(entry)
        objects = self._stored(entry, 2).as_items()
        body = []
        for item in objects:
            members = item.as_items()
            class_id = members[0].as_int()
            ln = Obis.from_bytes(members[1].as_bytes())
            attribute = members[2].as_int()
            target = self.profile.find(ln)
            if target is None or target.class_id != class_id:
                body.append(Data.null())
            elif class_id == 7 and attribute == 2:
                buffer = select_buffer(self.profile_buffer(target), None)
                body.append(buffer if isinstance(buffer, Data) else Data.null())
            else:
                body.append(self.attribute_value(target, attribute))
        destination = self._stored(entry, 3).as_items()
        where = destination[1].as_bytes().decode("latin-1") if len(destination) > 1 else ""
        stamp = self.clock_state.to_cosem(self.meter_now()).to_bytes()
        self._push_id = getattr(self, "_push_id", 0) + 1
        notification = DataNotification(
            LongInvokeIdAndPriority(invoke_id=self._push_id & 0xFFFFFF), stamp, Data.structure(*body)
        )
        self.outbox.append(_PushMessage(where, notification.to_bytes()))
        return notification


def _has_value(entry: ObjectEntry) -> bool:
    return entry.interface.has_attribute("value")


def _all_or_none(lo: _dt.datetime, hi: _dt.datetime) -> tuple[int, int]:
    del lo, hi
    return 1, 1


def _floor_time(at: _dt.datetime, period_s: int) -> _dt.datetime:
    seconds = int((at - _EPOCH).total_seconds())
    return _EPOCH + _dt.timedelta(seconds=seconds - seconds % period_s)


def _round_time(at: _dt.datetime, period_s: int) -> _dt.datetime:
    return _floor_time(at + _dt.timedelta(seconds=period_s / 2), period_s)


def _month_start(meter_utc: _dt.datetime, clock: ClockState) -> _dt.datetime:
    """Local midnight of the first day of the month containing ``meter_utc`` (as UTC)."""
    offset = clock.standard_offset()
    local = meter_utc + offset
    return _dt.datetime(local.year, local.month, 1, tzinfo=_dt.UTC) - offset


def build_meter(
    profile: str | DeviceProfile = "generic",
    *,
    clock: Clock,
    seed: int = 0,
    serial: str | None = None,
    no_deviation: bool = False,
) -> SimulatedDlmsMeter:
    """A meter from a bundled profile name (``"generic"``, ``"india"``) or a loaded profile."""
    loaded = _load(profile) if isinstance(profile, str) else profile
    return SimulatedDlmsMeter(loaded, clock, seed=seed, serial=serial, no_deviation=no_deviation)


@cache
def _load(name: str) -> DeviceProfile:
    return load_profile(name)
