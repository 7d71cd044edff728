"""The load model of one simulated meter: instantaneous values and exactly integrated registers.

Rule: power is a pure function of (configuration, seed, step). Time is cut into fixed steps
(``LoadConfig.step``, 1 minute by default) counted from 1970-01-01T00:00Z; within a step every
phase's active and reactive power is constant and an *integer* number of milliwatts (mvar).
The energy registers are sums of those integers times the step length, so they are exact:
the energy over any interval equals the sum of the power steps a caller can read back with
:meth:`LoadModel.snapshot` (or :meth:`LoadModel.energy_between`), to the millijoule. Nothing in
the model reads a clock; callers pass times in (``metercom.clock.Clock.now()`` in real time, a
:class:`~metercom.clock.VirtualClock` for a year in seconds).

Theory of operation, for the step ``n`` on local day ``d`` at local step-of-day ``m``:

* continuous load per phase ``P = base[m] * (f_d + f_d * sigma * noise[o_d + minute(m)])``
  where ``base`` is the compiled expected profile, ``f_d`` the seeded daily factor and
  ``noise`` the shared correlated table read from a seeded per-day offset (O(1) per step; see
  :mod:`._rng`); ``Q = P * q_ratio[m]`` (the appliance mix's tan phi at that time of day);
* plus the runs of switched appliances that day (start times seeded per day, rated power);
* then broken-neutral scaling (constant-impedance loads, floating star point), then minus PV
  (clear-sky shape times a seeded daily cloud factor and correlated noise; off during a broken
  neutral), then zero on phases in outage. All in integer mW, truncated toward zero.

Per-day inputs (factors, offsets, switched runs, events) are drawn from generators seeded by
(seed, day) and recomputed on demand (tens of microseconds), so :meth:`LoadModel.snapshot` at
any past or future time is O(1) and returns exactly the power :meth:`LoadModel.advance`
integrated there. :meth:`advance` computes whole days at a time with list comprehensions and
prefix sums; a meter keeps a few integers and two cached days (about 5 KiB), and meters built
from one :class:`~metercom.sim.load.config.LoadConfig` share all arrays.

Registers (OBIS names for orientation):

* total active import/export (1.8.0/2.8.0) integrate the *vector sum* of the phases per step:
  import is ``max(sum of phase powers, 0)``; a PV house exporting on L1 while importing on L2
  nets the two, as most polyphase meters do. Per phase (21.8.0/22.8.0 ...) each phase on its own;
* per tariff (1.8.1..1.8.4, 2.8.1..): like a real register stage, the total's Wh "pulses" are
  routed to the tariff active when each pulse completes, so the tariff registers sum *exactly*
  to the total register in Wh. A tariff register may therefore differ from its own exact
  energy by less than 1 Wh per tariff change (a random walk: a few Wh a year); the exact
  millijoule value per tariff is kept as well;
* reactive Q+ and Q- (3.8.0/4.8.0) from the vector sum of reactive power;
* maximum demand: block demand over ``demand_period`` aligned to the local clock, the block's
  mean import power; stamped with the block's *end*, per tariff by the tariff at the block's
  start; a partly covered block (model start, billing) is divided by the full period;
* billing: at local midnight starting the configured day of the month (or on command),
  registers and maximum demands go to the billing history, maximum demand resets, and the
  billing counter increments. Registers only change at step boundaries (a meter whose
  metrology updates once per step); ``advance(to)`` integrates every step that ends by ``to``.

Local time: the day's local step-of-day comes from the configured ``tzinfo``; on DST change
days the day has 23 or 25 hours, the skipped hour is skipped and the repeated hour repeated.
"""

from __future__ import annotations

import cmath
import math
import operator
import random
from bisect import bisect_right
from collections import deque
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from itertools import accumulate

from metercom.errors import ConfigError
from metercom.sim.load._compile import EPOCH, US, WH_MJ, CompiledLoad, SimEvent, _runs
from metercom.sim.load._rng import NOISE_SPAN, derive, irwin_hall, noise_table
from metercom.sim.load.config import MAX_TARIFFS, EventKind, LoadConfig, Phase
from metercom.sim.load.events import (
    DAY_US,
    UNIT_EMF,
    EventRecord,
    floating_star_point,
    random_events_of_day,
    to_record,
)

__all__ = [
    "BillingRecord",
    "IntervalEnergy",
    "LoadModel",
    "MaximumDemand",
    "MeterSnapshot",
    "PhaseValues",
    "Registers",
]

_SALT_METER = 0x4D4554
_SALT_DAY = 0x444159
_SALT_RUNS = 0x52554E
_SALT_SUPPLY = 0x535550
_SALT_GRID = 0x475249


# --------------------------------------------------------------------------------------------
# Public value types


@dataclass(frozen=True, slots=True)
class PhaseValues:
    """Instantaneous values of one phase.

    Angles are degrees relative to the nominal L1 voltage phasor; the current lags the voltage
    by the load angle (and sits near 180 deg from it while the phase exports). ``power_factor``
    is P/S, negative while exporting, 1.0 when nothing flows. ``active_power_mw`` and
    ``reactive_power_mvar`` are the exact integers the registers integrate.
    """

    phase: Phase
    voltage_v: float
    current_a: float
    active_power_w: float
    reactive_power_var: float
    apparent_power_va: float
    power_factor: float
    voltage_angle_deg: float
    current_angle_deg: float
    active_power_mw: int
    reactive_power_mvar: int


@dataclass(frozen=True, slots=True)
class MeterSnapshot:
    """Everything a meter shows at one instant.

    Totals: active and reactive power are the phases' sums, apparent power the arithmetic sum
    of the phases' apparent powers, ``power_factor`` = P/S of those. ``neutral_current_a`` is
    the magnitude of the phasor sum of the phase currents (0 with a broken neutral, by
    Kirchhoff, when no neighbour shares the broken neutral). ``step_start`` is the start of the
    model step that holds ``at``.
    """

    at: datetime
    step_start: datetime
    phases: tuple[PhaseValues, ...]
    frequency_hz: float
    active_power_w: float
    reactive_power_var: float
    apparent_power_va: float
    power_factor: float
    neutral_current_a: float
    active_power_mw: int
    reactive_power_mvar: int
    tariff: int
    events: frozenset[EventKind]

    def phase(self, phase: Phase) -> PhaseValues:
        for values in self.phases:
            if values.phase is phase:
                return values
        raise KeyError(f"this meter does not measure {phase.name}")


@dataclass(frozen=True, slots=True)
class MaximumDemand:
    """A maximum (or last) block demand: mean import power over one demand period.

    ``demand_w`` is floored to the milliwatt; ``energy_mj`` is the block's exact import energy;
    ``at`` is the end of the block (None while no block has been recorded).
    """

    demand_w: Decimal
    at: datetime | None
    energy_mj: int


@dataclass(frozen=True, slots=True)
class Registers:
    """Energy register values at ``at`` (every step that ends by then is integrated).

    ``*_wh`` / ``*_varh`` are what a meter displays: whole Wh, floored; the tariff registers
    partition the total exactly. ``*_mj`` (millijoule = mW * s) and ``*_mvar_s`` are exact.
    Tariff tuples hold tariffs 1..4; phase tuples follow the configuration's phases.
    """

    at: datetime
    active_import_wh: int
    active_export_wh: int
    reactive_import_varh: int
    reactive_export_varh: int
    active_import_tariff_wh: tuple[int, ...]
    active_export_tariff_wh: tuple[int, ...]
    phase_active_import_wh: tuple[int, ...]
    phase_active_export_wh: tuple[int, ...]
    active_import_mj: int
    active_export_mj: int
    reactive_import_mvar_s: int
    reactive_export_mvar_s: int
    active_import_tariff_mj: tuple[int, ...]
    active_export_tariff_mj: tuple[int, ...]
    phase_active_import_mj: tuple[int, ...]
    phase_active_export_mj: tuple[int, ...]

    @property
    def active_import_kwh(self) -> Decimal:
        return Decimal(self.active_import_wh).scaleb(-3)

    @property
    def active_export_kwh(self) -> Decimal:
        return Decimal(self.active_export_wh).scaleb(-3)


@dataclass(frozen=True, slots=True)
class BillingRecord:
    """What a billing reset stored: counter after the reset, time, registers and the closed MDs."""

    counter: int
    at: datetime
    registers: Registers
    maximum_demand: MaximumDemand
    tariff_maximum_demand: tuple[MaximumDemand, ...]


@dataclass(frozen=True, slots=True)
class IntervalEnergy:
    """Exact energy over ``[start, end)`` (step-aligned): what a load profile row holds."""

    start: datetime
    end: datetime
    active_import_mj: int
    active_export_mj: int
    reactive_import_mvar_s: int
    reactive_export_mvar_s: int
    active_import_tariff_mj: tuple[int, ...]
    active_export_tariff_mj: tuple[int, ...]
    phase_active_import_mj: tuple[int, ...]
    phase_active_export_mj: tuple[int, ...]

    @property
    def active_import_wh(self) -> Decimal:
        """Import energy in Wh, rounded to 1 uWh (mJ / 3,600,000 rarely has a finite decimal form)."""
        return (Decimal(self.active_import_mj) / 3_600_000).quantize(Decimal("0.000001"))


# --------------------------------------------------------------------------------------------
# Internal: one local day's seeded inputs


class _Day:
    __slots__ = (
        "block_starts",
        "day_type",
        "events",
        "factor",
        "freq_off",
        "idx",
        "length",
        "local_date",
        "neutral",
        "noise_off",
        "outages",
        "pv_factor",
        "pv_off",
        "runs",
        "start_step",
        "tariff_runs",
        "tariffs",
        "volt_off",
    )

    local_date: date
    start_step: int
    length: int
    idx: list[int] | None
    day_type: int
    factor: float
    noise_off: tuple[int, ...]
    pv_factor: float
    pv_off: int
    volt_off: tuple[int, ...]
    freq_off: int
    runs: list[tuple[int, int, tuple[int, ...], tuple[int, ...]]]
    events: list[SimEvent]
    outages: list[tuple[int, int, int]]
    neutral: list[tuple[int, int]]
    tariffs: list[int]
    tariff_runs: tuple[tuple[int, int, int], ...]
    block_starts: tuple[int, ...]


class _Segment:
    """Sums over steps ``[a, b)`` of one day, in mW x steps (multiply by step_s for mJ)."""

    __slots__ = ("a", "phase_import", "phase_net", "pref_import", "pref_net", "q_import", "q_net")

    def __init__(self, a: int, p: list[list[int]], q: list[list[int]]) -> None:
        self.a = a
        total = p[0]
        total_q = q[0]
        for other in p[1:]:
            total = list(map(operator.add, total, other))
        for other in q[1:]:
            total_q = list(map(operator.add, total_q, other))
        # A conditional expression, not max(0, x): this runs for every step of a simulated year.
        self.pref_import = list(accumulate([x if x > 0 else 0 for x in total], initial=0))  # noqa: FURB136
        self.pref_net = list(accumulate(total, initial=0))
        self.phase_import = [sum([x for x in row if x > 0]) for row in p]
        self.phase_net = [sum(row) for row in p]
        self.q_import = sum([x for x in total_q if x > 0])
        self.q_net = sum(total_q)

    def imp(self, lo: int, hi: int) -> int:
        return self.pref_import[hi - self.a] - self.pref_import[lo - self.a]

    def net(self, lo: int, hi: int) -> int:
        return self.pref_net[hi - self.a] - self.pref_net[lo - self.a]


def _norm_deg(angle: float) -> float:
    angle = math.fmod(angle, 360.0)
    if angle > 180.0:
        angle -= 360.0
    elif angle <= -180.0:
        angle += 360.0
    return angle


# --------------------------------------------------------------------------------------------
# The model


class LoadModel:
    """The load seen by one meter. See the module docstring for the rules.

    ``seed`` makes the meter's load reproducible (same config, seed and times give identical
    values); ``start`` is when its registers start at zero (rounded up to a step boundary).
    """

    __slots__ = (
        "_aux",
        "_bias",
        "_billing_counter",
        "_blk_e",
        "_blk_start",
        "_blk_tariff",
        "_c",
        "_cfg",
        "_cursor",
        "_day",
        "_exp_mj",
        "_history",
        "_imp_mj",
        "_key",
        "_last_blk",
        "_md",
        "_md_tariff",
        "_ph_exp",
        "_ph_imp",
        "_q_exp",
        "_q_imp",
        "_requested_us",
        "_seed",
        "_start_step",
        "_t_exp_mj",
        "_t_exp_wh",
        "_t_imp_mj",
        "_t_imp_wh",
    )

    def __init__(self, config: LoadConfig, seed: int, start: datetime) -> None:
        self._cfg = config
        self._c: CompiledLoad = config.compiled
        self._seed = seed
        self._key = derive(_SALT_METER, seed)
        rnd = random.Random(derive(self._key, _SALT_SUPPLY))
        bias = config.supply.voltage_bias
        self._bias = tuple(bias * (2.0 * rnd.random() - 1.0) for _ in self._c.phases)
        self._start_step = self._step_ceil(start)
        self._cursor = self._start_step
        self._requested_us = self._us(start)
        self._day: _Day | None = None
        self._aux: _Day | None = None
        n_phases = len(self._c.phases)
        self._imp_mj = self._exp_mj = self._q_imp = self._q_exp = 0
        self._ph_imp = [0] * n_phases
        self._ph_exp = [0] * n_phases
        self._t_imp_wh = [0] * MAX_TARIFFS
        self._t_exp_wh = [0] * MAX_TARIFFS
        self._t_imp_mj = [0] * MAX_TARIFFS
        self._t_exp_mj = [0] * MAX_TARIFFS
        # Demand: current block (start step, energy in mW x steps, tariff or 0 while not yet
        # known), last closed block and maxima as (energy mW x steps, end step or -1).
        day = self._day_at(self._start_step, main=True)
        self._blk_start = self._start_step
        self._blk_e = 0
        self._blk_tariff = day.tariffs[self._start_step - day.start_step]
        self._last_blk = (0, -1)
        self._md = (0, -1)
        self._md_tariff = [(0, -1)] * MAX_TARIFFS
        self._billing_counter = 0
        self._history: deque[BillingRecord] = deque(maxlen=config.billing.history)

    # ---- time helpers

    @property
    def config(self) -> LoadConfig:
        return self._cfg

    @property
    def seed(self) -> int:
        return self._seed

    @property
    def start(self) -> datetime:
        """When the registers started (a step boundary)."""
        return self._time(self._start_step)

    @property
    def now(self) -> datetime:
        """The time up to which energy has been integrated."""
        return self._time(self._cursor)

    def _time(self, step: int) -> datetime:
        return EPOCH + timedelta(seconds=step * self._c.step_s)

    @staticmethod
    def _us(at: datetime) -> int:
        if at.tzinfo is None:
            raise ValueError(f"times must be timezone-aware, got {at!r}")
        return (at - EPOCH) // US

    def _step_floor(self, at: datetime) -> int:
        return self._us(at) // self._c.step_us

    def _step_ceil(self, at: datetime) -> int:
        return -(-self._us(at) // self._c.step_us)

    # ---- days

    def _midnight_step(self, local_date: date) -> int:
        midnight = datetime.combine(local_date, time(0), tzinfo=self._cfg.timezone)
        us = self._us(midnight)
        if us % self._c.step_us:
            raise ConfigError(
                f"local midnight of {local_date} is not on a step boundary; the zone's UTC offset "
                f"must be a multiple of the step ({self._cfg.step})",
                where="LoadConfig.timezone",
            )
        return us // self._c.step_us

    def _day_at(self, step: int, *, main: bool) -> _Day:
        for day in (self._day, self._aux):
            if day is not None and day.start_step <= step < day.start_step + day.length:
                return day
        local = (EPOCH + timedelta(seconds=step * self._c.step_s)).astimezone(self._cfg.timezone)
        day = self._make_day(local.date())
        if main:
            self._day = day
        else:
            self._aux = day
        return day

    def _make_day(self, local_date: date) -> _Day:
        c = self._c
        cfg = self._cfg
        day = _Day()
        day.local_date = local_date
        day.start_step = start = self._midnight_step(local_date)
        day.length = length = self._midnight_step(local_date + timedelta(days=1)) - start
        tz = cfg.timezone
        spd = c.steps_per_day
        first = self._time(start).astimezone(tz).utcoffset()
        last = self._time(start + length).astimezone(tz).utcoffset()
        if length == spd and first == last:
            day.idx = None
        else:  # DST change day: wall-clock step of day of each step
            step_s = c.step_s
            idx = []
            for k in range(length):
                wall = self._time(start + k).astimezone(tz)
                idx.append((wall.hour * 3600 + wall.minute * 60 + wall.second) // step_s)
            day.idx = idx
        day.day_type = cfg.tariffs.day_type(local_date)
        ordinal = local_date.toordinal()

        variability = cfg.variability
        rnd = random.Random(derive(self._key, _SALT_DAY, ordinal))
        factor = 1.0 + variability.day_to_day * irwin_hall(rnd)
        if day.day_type >= 5:
            factor *= variability.weekend_factor
        if variability.seasonal_amplitude:
            doy = local_date.timetuple().tm_yday
            phase = 2.0 * math.pi * (doy - variability.peak_day_of_year) / 365.25
            factor *= 1.0 + variability.seasonal_amplitude * math.cos(phase)
        day.factor = factor
        n_phases = len(c.phases)
        day.noise_off = tuple(rnd.randrange(NOISE_SPAN) for _ in range(3))[:n_phases]
        day.volt_off = tuple(rnd.randrange(NOISE_SPAN) for _ in range(3))[:n_phases]
        # Frequency belongs to the grid, not the meter: every meter sees the same trace.
        day.freq_off = random.Random(derive(_SALT_GRID, ordinal)).randrange(NOISE_SPAN)
        day.pv_off = rnd.randrange(NOISE_SPAN)
        day.pv_factor = 1.0 - (c.pv.cloudiness if c.pv is not None else 0.0) * rnd.random()

        # Switched appliances: centre hour from the fitted profile, minute uniform in the hour.
        runs = []
        if c.sessions:
            rnd_runs = random.Random(derive(self._key, _SALT_RUNS, ordinal))
            per_hour = 3600 // c.step_s
            for spec in c.sessions:
                duration = len(spec.powers_mw)
                for _ in range(spec.count):
                    hour = min(23, bisect_right(spec.start_cdf, rnd_runs.random()))
                    # The drawn time is the run's centre, so runs follow the fitted profile.
                    centre = int((hour + rnd_runs.random()) * per_hour)
                    m = max(0, min(centre - duration // 2, spd - duration))
                    if day.idx is None:
                        k0 = m
                    else:
                        k0 = next((k for k, v in enumerate(day.idx) if v >= m), length - duration)
                    k0 = max(0, min(k0, length - duration))
                    runs.append((spec.phase_index, k0, spec.powers_mw, spec.reactive_mvar))
        day.runs = runs

        # Events touching this day.
        step_us = c.step_us
        day_start_us = start * step_us
        day_end_us = (start + length) * step_us
        events = [e for e in c.scheduled if e.start_us < day_end_us and e.end_us > day_start_us]
        if c.random_events:
            first_day = (day_start_us - c.max_random_duration_us) // DAY_US
            for utc_day in range(first_day, (day_end_us - 1) // DAY_US + 1):
                events.extend(
                    e
                    for e in random_events_of_day(c, self._key, utc_day)
                    if e.start_us < day_end_us and e.end_us > day_start_us
                )
        day.events = events
        day.outages = [
            (
                max(0, (e.start_us - day_start_us) // step_us),
                min(length, (e.end_us - day_start_us) // step_us),
                e.mask,
            )
            for e in events
            if e.kind is EventKind.OUTAGE
        ]
        day.neutral = [
            (
                max(0, (e.start_us - day_start_us) // step_us),
                min(length, (e.end_us - day_start_us) // step_us),
            )
            for e in events
            if e.kind is EventKind.BROKEN_NEUTRAL
        ]

        # Tariffs and demand blocks.
        if day.idx is None:
            day.tariffs = c.tariff_by_step[day.day_type]
            day.tariff_runs = c.tariff_runs[day.day_type]
            day.block_starts = c.block_starts
        else:
            by_step = c.tariff_by_step[day.day_type]
            day.tariffs = [by_step[m] for m in day.idx]
            day.tariff_runs = _runs(day.tariffs)
            day.block_starts = tuple(k for k, m in enumerate(day.idx) if m % c.demand_steps == 0)
        return day

    # ---- power

    def _powers(
        self, day: _Day, a: int, b: int
    ) -> tuple[list[list[int]], list[list[int]], dict[int, complex]]:
        """Active (mW) and reactive (mvar) power per phase for day steps ``[a, b)``.

        The single definition of the model's power: advance, snapshot and energy_between all
        call it, so what is integrated is what is shown.
        """
        c = self._c
        ms: range | list[int] = range(a, b) if day.idx is None else day.idx[a:b]
        nis: range | list[int] = ms if c.step_s == 60 else [c.noise_index[m] for m in ms]
        tbl = noise_table()
        fd = day.factor
        p_rows: list[list[int]] = []
        q_rows: list[list[int]] = []
        for i in range(len(c.phases)):
            bp = c.base_p_mw[i]
            qr = c.q_ratio[i]
            sd = fd * c.sigma[i]
            o = day.noise_off[i]
            if sd:
                p = [int(bp[m] * (fd + sd * tbl[o + j])) for m, j in zip(ms, nis, strict=True)]
            else:
                p = [int(bp[m] * fd) for m in ms]
            p_rows.append(p)
            q_rows.append([int(x * qr[m]) for x, m in zip(p, ms, strict=True)])
        for i, k0, powers, reactive in day.runs:
            lo = max(a, k0)
            hi = min(b, k0 + len(powers))
            if lo < hi:
                p, q = p_rows[i], q_rows[i]
                for k in range(lo, hi):
                    p[k - a] += powers[k - k0]
                    q[k - a] += reactive[k - k0]
        shifts: dict[int, complex] = {}
        if day.neutral:
            shifts = self._broken_neutral(day, a, b, (p_rows, q_rows))
        pv_rows = c.pv_mw
        if any(row is not None for row in pv_rows):
            cf = day.pv_factor
            cs = cf * (c.pv.variability if c.pv is not None else 0.0)
            o = day.pv_off
            for i, pv in enumerate(pv_rows):
                if pv is None:
                    continue
                gen = [int(pv[m] * (cf + cs * tbl[o + j])) for m, j in zip(ms, nis, strict=True)]
                for k in shifts:  # inverters trip on the broken neutral's voltages
                    gen[k - a] = 0
                p_rows[i] = list(map(operator.sub, p_rows[i], gen))
        for oa, ob, mask in day.outages:
            lo = max(a, oa)
            hi = min(b, ob)
            if lo < hi:
                for i in range(len(c.phases)):
                    if mask >> i & 1:
                        p_rows[i][lo - a : hi - a] = [0] * (hi - lo)
                        q_rows[i][lo - a : hi - a] = [0] * (hi - lo)
        return p_rows, q_rows, shifts

    def _broken_neutral(
        self, day: _Day, a: int, b: int, rows: tuple[list[list[int]], list[list[int]]]
    ) -> dict[int, complex]:
        """Scale the loads of broken-neutral steps in place; return each step's star-point shift."""
        p_rows, q_rows = rows
        shifts: dict[int, complex] = {}
        supply = self._cfg.supply
        tan_n = math.sqrt(1.0 - supply.neighbour_power_factor**2) / supply.neighbour_power_factor
        neighbours = [complex(w * 1000.0, w * 1000.0 * tan_n) for w in supply.neighbour_load_w]
        index = [phase.value - 1 for phase in self._c.phases]
        for na, nb in day.neutral:
            for k in range(max(a, na), min(b, nb)):
                loads = list(neighbours)
                for i, s in enumerate(index):
                    loads[s] += complex(p_rows[i][k - a], q_rows[i][k - a])
                shift, volts = floating_star_point((loads[0], loads[1], loads[2]))
                shifts[k] = shift
                for i, s in enumerate(index):
                    ratio = abs(volts[s]) ** 2  # constant impedance: P ~ V**2
                    p_rows[i][k - a] = int(p_rows[i][k - a] * ratio)
                    q_rows[i][k - a] = int(q_rows[i][k - a] * ratio)
        return shifts

    # ---- snapshot

    def snapshot(self, at: datetime) -> MeterSnapshot:
        """Instantaneous values at ``at`` (any time, past or future; O(1), reproducible)."""
        c = self._c
        step = self._step_floor(at)
        day = self._day_at(step, main=False)
        k = step - day.start_step
        p_rows, q_rows, shifts = self._powers(day, k, k + 1)
        m = k if day.idx is None else day.idx[k]
        j = c.noise_index[m]
        t_us = self._us(at)
        tbl = noise_table()
        supply = self._cfg.supply
        vn = supply.nominal_voltage_v
        active = [e for e in day.events if e.start_us <= t_us < e.end_us]
        out_mask = 0
        for e in active:
            if e.kind is EventKind.OUTAGE:
                out_mask |= e.mask
        shift = shifts.get(k)
        phases: list[PhaseValues] = []
        neutral = 0j
        for i, phase in enumerate(c.phases):
            p_mw = p_rows[i][0]
            q_mvar = q_rows[i][0]
            pw = p_mw / 1000.0
            qv = q_mvar / 1000.0
            source = vn * (
                1.0 + self._bias[i] + c.diurnal[m] + supply.voltage_noise * tbl[day.volt_off[i] + j]
            )
            angle = phase.nominal_angle_deg
            if out_mask >> i & 1:
                volts = 0.0
            elif shift is not None:
                # One common EMF for all phases here, so the currents I = conj(S) / conj(V) keep
                # the floating star point's balance (their phasor sum is what neighbours carry).
                v = UNIT_EMF[phase.value - 1] - shift
                volts = abs(v) * vn * (1.0 + c.diurnal[m])
                angle = math.degrees(cmath.phase(v))
            else:
                # Voltage drop on the service cable, dV ~ (R P + X Q) / V.
                volts = (
                    source - (supply.source_resistance_ohm * pw + supply.source_reactance_ohm * qv) / source
                )
            for e in active:
                if e.kind in (EventKind.SAG, EventKind.SWELL) and e.mask >> i & 1:
                    volts *= e.magnitude
            apparent = math.hypot(pw, qv)
            current = apparent / volts if volts > 0 else 0.0
            load_angle = math.degrees(math.atan2(qv, pw)) if apparent else 0.0
            current_angle = _norm_deg(angle - load_angle)
            if current:
                neutral += cmath.rect(current, math.radians(current_angle))
            phases.append(
                PhaseValues(
                    phase=phase,
                    voltage_v=volts,
                    current_a=current,
                    active_power_w=pw,
                    reactive_power_var=qv,
                    apparent_power_va=apparent,
                    power_factor=pw / apparent if apparent else 1.0,
                    voltage_angle_deg=_norm_deg(angle),
                    current_angle_deg=current_angle,
                    active_power_mw=p_mw,
                    reactive_power_mvar=q_mvar,
                )
            )
        live = any(v.voltage_v > 0 for v in phases)
        frequency = (
            supply.nominal_frequency_hz + supply.frequency_noise_hz * tbl[day.freq_off + j] if live else 0.0
        )
        total_p = sum(v.active_power_mw for v in phases)
        total_q = sum(v.reactive_power_mvar for v in phases)
        total_s = sum(v.apparent_power_va for v in phases)
        return MeterSnapshot(
            at=at,
            step_start=self._time(step),
            phases=tuple(phases),
            frequency_hz=frequency,
            active_power_w=total_p / 1000.0,
            reactive_power_var=total_q / 1000.0,
            apparent_power_va=total_s,
            power_factor=total_p / 1000.0 / total_s if total_s else 1.0,
            neutral_current_a=abs(neutral),
            active_power_mw=total_p,
            reactive_power_mvar=total_q,
            tariff=day.tariffs[k],
            events=frozenset(e.kind for e in active),
        )

    def tariff_at(self, at: datetime) -> int:
        """The tariff in force at ``at``."""
        step = self._step_floor(at)
        day = self._day_at(step, main=False)
        return day.tariffs[step - day.start_step]

    # ---- events

    def events_between(self, start: datetime, end: datetime) -> list[EventRecord]:
        """Every event overlapping ``[start, end)``, by start time (O(days))."""
        c = self._c
        lo = self._us(start)
        hi = self._us(end)
        found = [e for e in c.scheduled if e.start_us < hi and e.end_us > lo]
        if c.random_events:
            for utc_day in range((lo - c.max_random_duration_us) // DAY_US, (hi - 1) // DAY_US + 1):
                found.extend(
                    e
                    for e in random_events_of_day(c, self._key, utc_day)
                    if e.start_us < hi and e.end_us > lo
                )
        found.sort(key=lambda e: (e.start_us, e.end_us, e.kind.value))
        return [to_record(e, c.phases) for e in found]

    def active_events(self, at: datetime) -> frozenset[EventKind]:
        """The kinds of event in progress at ``at``."""
        t_us = self._us(at)
        day = self._day_at(t_us // self._c.step_us, main=False)
        return frozenset(e.kind for e in day.events if e.start_us <= t_us < e.end_us)

    # ---- integration

    def advance(self, to: datetime) -> None:
        """Integrate every step that ends by ``to`` into the registers (``to`` never goes back)."""
        to_us = self._us(to)
        if to_us < self._requested_us:
            raise ValueError(f"cannot advance back to {to.isoformat()} (already at {self.now.isoformat()})")
        self._requested_us = to_us
        target = to_us // self._c.step_us
        billing_day = self._cfg.billing.day_of_month
        while self._cursor < target:
            day = self._day_at(self._cursor, main=True)
            a = self._cursor - day.start_step
            b = min(day.length, target - day.start_step)
            # The demand block that ended at midnight was closed when the previous day ended.
            if a == 0 and billing_day == day.local_date.day and day.start_step > self._start_step:
                self._reset(day.start_step)
            self._integrate(day, a, b)
            self._cursor = day.start_step + b

    def _integrate(self, day: _Day, a: int, b: int) -> None:
        p_rows, q_rows, _ = self._powers(day, a, b)
        seg = _Segment(a, p_rows, q_rows)
        s = self._c.step_s
        for r0, r1, tariff in day.tariff_runs:
            lo = max(r0, a)
            hi = min(r1, b)
            if lo >= hi:
                continue
            e_imp = seg.imp(lo, hi) * s
            e_exp = e_imp - seg.net(lo, hi) * s
            t = tariff - 1
            before = self._imp_mj
            self._imp_mj = before + e_imp
            self._t_imp_wh[t] += self._imp_mj // WH_MJ - before // WH_MJ
            self._t_imp_mj[t] += e_imp
            before = self._exp_mj
            self._exp_mj = before + e_exp
            self._t_exp_wh[t] += self._exp_mj // WH_MJ - before // WH_MJ
            self._t_exp_mj[t] += e_exp
        for i in range(len(p_rows)):
            self._ph_imp[i] += seg.phase_import[i] * s
            self._ph_exp[i] += (seg.phase_import[i] - seg.phase_net[i]) * s
        self._q_imp += seg.q_import * s
        self._q_exp += (seg.q_import - seg.q_net) * s
        # Demand blocks: close every block whose end falls in (a, b], the day's end included,
        # so a block is closed (and maximum demand updated) as soon as its last step is in.
        if not self._blk_tariff:
            self._blk_tariff = day.tariffs[a]
        starts = day.block_starts
        j = bisect_right(starts, a)
        pos = a
        while j < len(starts) and starts[j] <= b:
            beta = starts[j]
            self._blk_e += seg.imp(pos, beta)
            self._close_block(day.start_step + beta)
            if beta < b:
                self._blk_tariff = day.tariffs[beta]
            pos = beta
            j += 1
        self._blk_e += seg.imp(pos, b)
        if b == day.length:
            self._close_block(day.start_step + b)

    def _close_block(self, end_step: int) -> None:
        """Close the demand block in progress at ``end_step``; the next opens on its first step."""
        if self._blk_start >= end_step:
            return
        energy = self._blk_e
        self._last_blk = (energy, end_step)
        if energy > self._md[0]:
            self._md = (energy, end_step)
        t = self._blk_tariff - 1
        if energy > self._md_tariff[t][0]:
            self._md_tariff[t] = (energy, end_step)
        self._blk_start = end_step
        self._blk_e = 0
        self._blk_tariff = 0  # unknown until the next step is integrated

    def energy_between(self, start: datetime, end: datetime) -> IntervalEnergy:
        """Exact energy over the whole steps in ``[start, end)``, without touching the registers.

        For load-profile rows of any past or future period; costs O(steps).
        """
        c = self._c
        lo_step = self._step_ceil(start)
        hi_step = max(lo_step, self._step_floor(end))
        s = c.step_s
        imp = exp = q_imp = q_exp = 0
        t_imp = [0] * MAX_TARIFFS
        t_exp = [0] * MAX_TARIFFS
        ph_imp = [0] * len(c.phases)
        ph_exp = [0] * len(c.phases)
        cursor = lo_step
        while cursor < hi_step:
            day = self._day_at(cursor, main=False)
            a = cursor - day.start_step
            b = min(day.length, hi_step - day.start_step)
            p_rows, q_rows, _ = self._powers(day, a, b)
            seg = _Segment(a, p_rows, q_rows)
            for r0, r1, tariff in day.tariff_runs:
                lo = max(r0, a)
                hi = min(r1, b)
                if lo < hi:
                    e_imp = seg.imp(lo, hi) * s
                    e_exp = e_imp - seg.net(lo, hi) * s
                    t_imp[tariff - 1] += e_imp
                    t_exp[tariff - 1] += e_exp
            for i in range(len(p_rows)):
                ph_imp[i] += seg.phase_import[i] * s
                ph_exp[i] += (seg.phase_import[i] - seg.phase_net[i]) * s
            imp += seg.imp(a, b) * s
            exp += (seg.imp(a, b) - seg.net(a, b)) * s
            q_imp += seg.q_import * s
            q_exp += (seg.q_import - seg.q_net) * s
            cursor = day.start_step + b
        return IntervalEnergy(
            start=self._time(lo_step),
            end=self._time(hi_step),
            active_import_mj=imp,
            active_export_mj=exp,
            reactive_import_mvar_s=q_imp,
            reactive_export_mvar_s=q_exp,
            active_import_tariff_mj=tuple(t_imp),
            active_export_tariff_mj=tuple(t_exp),
            phase_active_import_mj=tuple(ph_imp),
            phase_active_export_mj=tuple(ph_exp),
        )

    # ---- registers, demand, billing

    @property
    def registers(self) -> Registers:
        return self._registers()

    def _registers(self) -> Registers:
        wh = WH_MJ
        return Registers(
            at=self._time(self._cursor),
            active_import_wh=self._imp_mj // wh,
            active_export_wh=self._exp_mj // wh,
            reactive_import_varh=self._q_imp // wh,
            reactive_export_varh=self._q_exp // wh,
            active_import_tariff_wh=tuple(self._t_imp_wh),
            active_export_tariff_wh=tuple(self._t_exp_wh),
            phase_active_import_wh=tuple(v // wh for v in self._ph_imp),
            phase_active_export_wh=tuple(v // wh for v in self._ph_exp),
            active_import_mj=self._imp_mj,
            active_export_mj=self._exp_mj,
            reactive_import_mvar_s=self._q_imp,
            reactive_export_mvar_s=self._q_exp,
            active_import_tariff_mj=tuple(self._t_imp_mj),
            active_export_tariff_mj=tuple(self._t_exp_mj),
            phase_active_import_mj=tuple(self._ph_imp),
            phase_active_export_mj=tuple(self._ph_exp),
        )

    def _demand(self, value: tuple[int, int]) -> MaximumDemand:
        energy_mj = value[0] * self._c.step_s
        period_s = self._c.demand_steps * self._c.step_s
        return MaximumDemand(
            demand_w=Decimal(energy_mj // period_s).scaleb(-3),
            at=self._time(value[1]) if value[1] >= 0 else None,
            energy_mj=energy_mj,
        )

    @property
    def maximum_demand(self) -> MaximumDemand:
        """Highest block demand since the last billing reset (all tariffs)."""
        return self._demand(self._md)

    @property
    def tariff_maximum_demand(self) -> tuple[MaximumDemand, ...]:
        """Highest block demand per tariff 1..4 since the last billing reset."""
        return tuple(self._demand(v) for v in self._md_tariff)

    @property
    def last_demand(self) -> MaximumDemand:
        """The last completed block's demand (DLMS demand register "last average value")."""
        return self._demand(self._last_blk)

    @property
    def current_demand_energy_mj(self) -> int:
        """Import energy of the block in progress so far."""
        return self._blk_e * self._c.step_s

    @property
    def billing_counter(self) -> int:
        return self._billing_counter

    @property
    def billing_history(self) -> tuple[BillingRecord, ...]:
        """Stored billing records, oldest first (at most ``BillingConfig.history``)."""
        return tuple(self._history)

    def billing_reset(self) -> BillingRecord:
        """End the billing period now (at :attr:`now`), as a meter does on command."""
        return self._reset(self._cursor)

    def _reset(self, step: int) -> BillingRecord:
        self._billing_counter += 1
        record = BillingRecord(
            counter=self._billing_counter,
            at=self._time(step),
            registers=self._registers(),
            maximum_demand=self._demand(self._md),
            tariff_maximum_demand=tuple(self._demand(v) for v in self._md_tariff),
        )
        self._history.append(record)
        self._md = (0, -1)
        self._md_tariff = [(0, -1)] * MAX_TARIFFS
        return record

    def __repr__(self) -> str:
        return f"LoadModel(seed={self._seed}, start={self.start.isoformat()}, now={self.now.isoformat()})"
