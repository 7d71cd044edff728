"""Configuration of the load model: immutable, validated, shared by every meter that uses it.

Rule: a configuration is plain frozen data. It is validated when built (an invalid value raises
:class:`~metercom.errors.ConfigError` at once, never mid-simulation) and compiled once into the
arrays the model runs on (:meth:`LoadConfig.compiled`); a thousand meters built from the same
:class:`LoadConfig` share those arrays and differ only by their seed.

What is configured:

* the **source** of load: a :class:`Household` of :class:`Appliance` objects (each with a daily
  energy, an hourly usage profile, a power factor, a rated power and a phase), optionally fitted
  to a :class:`PeriodTable` of consumption by time of day, optionally with a :class:`PvSystem`;
  or a :class:`Feeder` of many such households spread over the three phases;
* the **supply** (:class:`Supply`): nominal voltage and frequency, their variation, the service
  cable's impedance and the neighbours that share the neutral;
* **variability** (:class:`Variability`): per-step noise, day-to-day, weekend and seasonal factors;
* **tariffs** (:class:`TariffSchedule`), **events** (:class:`EventConfig`) and **billing**
  (:class:`BillingConfig`);
* the model's time base: ``step`` (power is constant within a step), ``demand_period`` (maximum
  demand integration period) and ``timezone`` (local time for usage, tariffs and billing).

Times of day are local wall-clock times in ``timezone``; instants are timezone-aware datetimes.
"""

from __future__ import annotations

import enum
import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import TYPE_CHECKING

from metercom.errors import ConfigError

if TYPE_CHECKING:
    from metercom.sim.load._compile import CompiledLoad

__all__ = [
    "MAX_TARIFFS",
    "Appliance",
    "BillingConfig",
    "EventConfig",
    "EventKind",
    "Feeder",
    "Household",
    "LoadConfig",
    "Period",
    "PeriodKind",
    "PeriodTable",
    "Phase",
    "PvSystem",
    "RandomEvents",
    "ScheduledEvent",
    "Supply",
    "TariffSchedule",
    "TariffWindow",
    "UsageProfile",
    "Variability",
]

#: Tariff indices run from 1 to this (OBIS 1.8.1 .. 1.8.4).
MAX_TARIFFS = 4


class Phase(enum.IntEnum):
    """A supply phase. The voltage phasors are L1 at 0 deg, L2 at -120 deg, L3 at +120 deg."""

    L1 = 1
    L2 = 2
    L3 = 3

    @property
    def nominal_angle_deg(self) -> float:
        return (0.0, -120.0, 120.0)[self.value - 1]


def _check(condition: bool, message: str, where: str) -> None:
    if not condition:
        raise ConfigError(message, where=where)


def _finite(value: float) -> bool:
    return math.isfinite(value)


# --------------------------------------------------------------------------------------------
# Appliances and households


@dataclass(frozen=True, slots=True)
class UsageProfile:
    """When an appliance is used: 24 non-negative relative weights, one per local hour of day.

    Only the ratios matter. The model spreads the appliance's daily energy over the hours in
    proportion to these weights (after fitting to a :class:`PeriodTable`, when one is given),
    and within each hour along a mass-preserving slope towards the neighbouring hours.
    """

    hourly: tuple[float, ...]

    def __post_init__(self) -> None:
        _check(len(self.hourly) == 24, f"expected 24 hourly weights, got {len(self.hourly)}", "UsageProfile")
        _check(
            all(_finite(w) and w >= 0 for w in self.hourly), "weights must be finite and >= 0", "UsageProfile"
        )
        _check(sum(self.hourly) > 0, "at least one hour must have a positive weight", "UsageProfile")

    @classmethod
    def flat(cls) -> UsageProfile:
        """Used evenly around the clock (refrigerator, standby loads)."""
        return cls((1.0,) * 24)

    @classmethod
    def windows(cls, *spans: tuple[int, int, float], base: float = 0.0) -> UsageProfile:
        """Weights from ``(start_hour, end_hour, weight)`` spans; ``end <= start`` wraps past midnight.

        ``UsageProfile.windows((19, 24, 2.0), (0, 6, 1.0))`` is an evening-and-night load. Hours
        in no span get ``base``; overlapping spans add.
        """
        hourly = [base] * 24
        for start, end, weight in spans:
            _check(0 <= start < 24 and 0 < end <= 24, f"bad hour span {start}-{end}", "UsageProfile.windows")
            hours = range(start, end) if end > start else [*range(start, 24), *range(end)]
            for hour in hours:
                hourly[hour] += weight
        return cls(tuple(hourly))


@functools.cache
def _flat_profile() -> UsageProfile:
    return UsageProfile.flat()


@dataclass(frozen=True, slots=True)
class Appliance:
    """One appliance of a household.

    ``daily_energy_wh`` is its mean energy per day at nominal voltage. ``sessions_per_day`` = 0
    makes it a *continuous* load whose power follows its (expected) usage profile, with the
    household's noise on top; ``sessions_per_day`` = n > 0 makes it a *switched* load that runs
    n times a day at ``rated_power_w``, each run starting at a seeded random time drawn from the
    usage profile and lasting ``daily_energy_wh / (n * rated_power_w)`` hours, so its daily
    energy is exact every day. ``rated_power_w`` also caps a continuous load's hourly mean power.
    ``fitted`` False keeps the usage profile as configured when the household is fitted to a
    :class:`PeriodTable` (base loads such as a refrigerator, whose duty cycle does not follow the
    household's habits); the other appliances absorb the fit. The power factor is lagging
    (inductive); loads are constant-power except where an event says otherwise.
    """

    name: str
    daily_energy_wh: float
    usage: UsageProfile = field(default_factory=_flat_profile)
    power_factor: float = 1.0
    rated_power_w: float | None = None
    phase: Phase = Phase.L1
    sessions_per_day: int = 0
    fitted: bool = True

    def __post_init__(self) -> None:
        where = f"Appliance {self.name!r}"
        _check(bool(self.name), "an appliance needs a name", "Appliance")
        _check(
            _finite(self.daily_energy_wh) and self.daily_energy_wh >= 0, "daily_energy_wh must be >= 0", where
        )
        _check(
            _finite(self.power_factor) and 0 < self.power_factor <= 1, "power_factor must be in (0, 1]", where
        )
        _check(
            self.rated_power_w is None or (_finite(self.rated_power_w) and self.rated_power_w > 0),
            "rated_power_w must be > 0",
            where,
        )
        _check(0 <= self.sessions_per_day <= 48, "sessions_per_day must be in 0..48", where)
        _check(
            self.sessions_per_day == 0 or self.rated_power_w is not None,
            "a switched appliance (sessions_per_day > 0) needs rated_power_w",
            where,
        )

    @property
    def tan_phi(self) -> float:
        """Reactive over active power, Q/P = tan(arccos(pf))."""
        return math.sqrt(1.0 - self.power_factor**2) / self.power_factor


class PeriodKind(enum.Enum):
    """How the figures of a :class:`PeriodTable` are read."""

    #: Each figure is the period's mean power (W, equivalently Wh per hour): the period's energy
    #: is the figure times the period's length in hours.
    MEAN_POWER = "mean_power"
    #: Each figure is the energy of the whole period.
    PERIOD_ENERGY = "period_energy"


@dataclass(frozen=True, slots=True)
class Period:
    """``start_hour`` to ``end_hour`` (exclusive; 24 is midnight) with its figure."""

    start_hour: int
    end_hour: int
    value: float


@dataclass(frozen=True, slots=True)
class PeriodTable:
    """A household's consumption by time of day, used as *shares* of its daily energy.

    The periods must tile the day in whole hours, in order. Only their relative sizes matter:
    :meth:`shares` gives each period's fraction of the daily energy, and the household's daily
    energy comes from its appliances (or :attr:`Household.daily_energy_wh`).
    """

    periods: tuple[Period, ...]
    kind: PeriodKind = PeriodKind.MEAN_POWER

    def __post_init__(self) -> None:
        _check(bool(self.periods), "no periods", "PeriodTable")
        hour = 0
        for period in self.periods:
            _check(
                period.start_hour == hour and hour < period.end_hour <= 24,
                f"periods must tile 0..24 h in order; got {period.start_hour}-{period.end_hour} at {hour} h",
                "PeriodTable",
            )
            _check(_finite(period.value) and period.value >= 0, "figures must be >= 0", "PeriodTable")
            hour = period.end_hour
        _check(hour == 24, f"periods end at {hour} h, not 24 h", "PeriodTable")
        _check(sum(self.energy_weights()) > 0, "all figures are zero", "PeriodTable")

    def energy_weights(self) -> tuple[float, ...]:
        """Each period's energy in the table's own units."""
        if self.kind is PeriodKind.MEAN_POWER:
            return tuple(p.value * (p.end_hour - p.start_hour) for p in self.periods)
        return tuple(p.value for p in self.periods)

    def shares(self) -> tuple[float, ...]:
        """Each period's fraction of the daily energy (they sum to 1)."""
        weights = self.energy_weights()
        total = sum(weights)
        return tuple(w / total for w in weights)

    def period_of_hour(self) -> tuple[int, ...]:
        """For each hour 0..23, the index of its period."""
        return tuple(i for i, p in enumerate(self.periods) for _ in range(p.start_hour, p.end_hour))


@dataclass(frozen=True, slots=True)
class PvSystem:
    """A photovoltaic system behind the meter (unity power factor inverter).

    Clear-sky output is ``peak_power_w * sin(pi * (t - sunrise) / (sunset - sunrise))`` between
    sunrise and sunset (local hours). Each day a seeded cloud factor in ``[1 - cloudiness, 1]``
    scales it, and a per-step correlated noise of relative size ``variability`` models passing
    clouds. ``phase`` None splits the output evenly over the source's phases. Physical caveat:
    inverters disconnect during an outage and during a broken neutral (over/under-voltage trip).
    """

    peak_power_w: float
    phase: Phase | None = None
    sunrise_hour: float = 6.0
    sunset_hour: float = 18.0
    cloudiness: float = 0.3
    variability: float = 0.1

    def __post_init__(self) -> None:
        _check(_finite(self.peak_power_w) and self.peak_power_w >= 0, "peak_power_w must be >= 0", "PvSystem")
        _check(
            0 <= self.sunrise_hour < self.sunset_hour <= 24, "need 0 <= sunrise < sunset <= 24", "PvSystem"
        )
        _check(0 <= self.cloudiness <= 1, "cloudiness must be in [0, 1]", "PvSystem")
        _check(0 <= self.variability <= 0.2, "variability must be in [0, 0.2]", "PvSystem")


@dataclass(frozen=True)
class Household:
    """A household: appliances on one or three phases, optionally a PV system.

    ``daily_energy_wh`` (if given) rescales every appliance so their daily energies sum to it,
    keeping their proportions. ``period_targets`` (if given) fits the appliances' hourly usage by
    iterative proportional fitting so that each appliance keeps its daily energy exactly *and*
    the household's energy by period matches the table's shares; the appliances' own usage
    profiles act as the prior (an appliance is never moved into an hour where its weight is 0).
    """

    appliances: tuple[Appliance, ...]
    phases: tuple[Phase, ...] = (Phase.L1,)
    daily_energy_wh: float | None = None
    period_targets: PeriodTable | None = None
    pv: PvSystem | None = None

    def __post_init__(self) -> None:
        _check(bool(self.appliances), "a household needs at least one appliance", "Household")
        names = [a.name for a in self.appliances]
        _check(len(set(names)) == len(names), "appliance names must be unique", "Household")
        _check(
            bool(self.phases)
            and len(set(self.phases)) == len(self.phases)
            and list(self.phases) == sorted(self.phases),
            "phases must be distinct and in order (L1, L2, L3)",
            "Household",
        )
        for appliance in self.appliances:
            _check(
                appliance.phase in self.phases,
                f"appliance {appliance.name!r} is on {appliance.phase.name}, not a phase of the household",
                "Household",
            )
        _check(
            self.daily_energy_wh is None or (_finite(self.daily_energy_wh) and self.daily_energy_wh >= 0),
            "daily_energy_wh must be >= 0",
            "Household",
        )
        _check(sum(a.daily_energy_wh for a in self.appliances) > 0, "total daily energy is zero", "Household")
        if self.pv is not None and self.pv.phase is not None:
            _check(
                self.pv.phase in self.phases, "the PV phase is not one of the household's phases", "Household"
            )

    @property
    def scale(self) -> float:
        """Factor applied to every appliance's configured daily energy."""
        configured = sum(a.daily_energy_wh for a in self.appliances)
        return 1.0 if self.daily_energy_wh is None else self.daily_energy_wh / configured

    def appliance_energy_wh(self) -> dict[str, float]:
        """Each appliance's daily energy after scaling (Wh/day)."""
        return {a.name: a.daily_energy_wh * self.scale for a in self.appliances}

    @property
    def total_daily_energy_wh(self) -> float:
        return sum(self.appliance_energy_wh().values())

    @classmethod
    def seed_example(
        cls,
        *,
        unit_wh: float = 10.0,
        daily_energy_wh: float | None = None,
        period_kind: PeriodKind = PeriodKind.MEAN_POWER,
        fit_periods: bool = True,
        phases: tuple[Phase, ...] = (Phase.L1,),
        pv: PvSystem | None = None,
    ) -> Household:
        """The seed's example household (see :mod:`metercom.sim.load.seed` for the reading)."""
        from metercom.sim.load.seed import seed_household

        return seed_household(
            unit_wh=unit_wh,
            daily_energy_wh=daily_energy_wh,
            period_kind=period_kind,
            fit_periods=fit_periods,
            phases=phases,
            pv=pv,
        )


@dataclass(frozen=True)
class Feeder:
    """A three-phase LV feeder: ``households_per_phase[i]`` copies of ``household`` on L1..L3.

    Each copy is a single-phase connection (all of the template's appliances on its feeder
    phase). The feeder is modelled in aggregate, not house by house: the per-phase load is the
    household's expected profile times the number of households, smoothed over ``diversity``
    (households do not switch on at the same minute), with switched appliances taken at their
    expected profile and the per-step noise reduced by sqrt(n) (independent households average
    out; the day-to-day factor, like the weather, stays common). PV scales with the count.
    """

    household: Household
    households_per_phase: tuple[int, int, int]
    diversity: timedelta = timedelta(minutes=45)

    def __post_init__(self) -> None:
        _check(len(self.households_per_phase) == 3, "households_per_phase needs three counts", "Feeder")
        _check(all(n >= 0 for n in self.households_per_phase), "household counts must be >= 0", "Feeder")
        _check(sum(self.households_per_phase) > 0, "a feeder needs at least one household", "Feeder")
        _check(timedelta(0) <= self.diversity <= timedelta(hours=6), "diversity must be 0..6 h", "Feeder")

    @property
    def phases(self) -> tuple[Phase, ...]:
        return (Phase.L1, Phase.L2, Phase.L3)


# --------------------------------------------------------------------------------------------
# Supply and variability


@dataclass(frozen=True, slots=True)
class Supply:
    """The grid side: what the meter's voltage and frequency do.

    Voltage at the meter = source EMF * (1 + static per-phase bias (seeded, within
    ``+/-voltage_bias``) + diurnal term (lowest at 19:00, highest at 07:00, amplitude
    ``voltage_diurnal``) + correlated noise (``voltage_noise``)) minus the drop on the service
    cable ``(R*P + X*Q) / V`` (so a PV house exporting sees its voltage rise). Frequency is
    nominal plus correlated noise of ``frequency_noise_hz``.

    ``neighbour_load_w`` is the load of other consumers sharing the neutral that can break: with
    a broken neutral the star point floats according to *all* loads on it (see
    :func:`metercom.sim.load.events.floating_star_point`).
    """

    nominal_voltage_v: float = 230.0
    nominal_frequency_hz: float = 50.0
    voltage_bias: float = 0.015
    voltage_diurnal: float = 0.01
    voltage_noise: float = 0.003
    frequency_noise_hz: float = 0.02
    source_resistance_ohm: float = 0.15
    source_reactance_ohm: float = 0.05
    neighbour_load_w: tuple[float, float, float] = (1500.0, 2500.0, 2000.0)
    neighbour_power_factor: float = 0.95

    def __post_init__(self) -> None:
        _check(50 <= self.nominal_voltage_v <= 1000, "nominal_voltage_v must be 50..1000", "Supply")
        _check(self.nominal_frequency_hz in (50.0, 60.0), "nominal_frequency_hz must be 50 or 60", "Supply")
        for name in ("voltage_bias", "voltage_diurnal", "voltage_noise"):
            _check(0 <= getattr(self, name) <= 0.05, f"{name} must be in [0, 0.05]", "Supply")
        _check(0 <= self.frequency_noise_hz <= 0.2, "frequency_noise_hz must be in [0, 0.2]", "Supply")
        _check(self.source_resistance_ohm >= 0, "source_resistance_ohm must be >= 0", "Supply")
        _check(self.source_reactance_ohm >= 0, "source_reactance_ohm must be >= 0", "Supply")
        _check(
            all(w >= 0 for w in self.neighbour_load_w),
            "neighbour_load_w values must be >= 0",
            "Supply",
        )
        _check(0 < self.neighbour_power_factor <= 1, "neighbour_power_factor must be in (0, 1]", "Supply")


@dataclass(frozen=True, slots=True)
class Variability:
    """How load varies around its expected profile.

    ``step_noise`` is the relative standard deviation of the per-step noise of one household's
    continuous load (correlated over about 10 minutes); ``day_to_day`` that of a daily factor
    common to all phases. ``weekend_factor`` multiplies Saturdays, Sundays and holidays;
    ``seasonal_amplitude`` adds a cosine over the year peaking on ``peak_day_of_year``. All
    factors have mean 1 over a year when weekend_factor = 1, so configured daily energies hold
    on average. :meth:`none` gives the deterministic expected profile.
    """

    step_noise: float = 0.12
    day_to_day: float = 0.08
    weekend_factor: float = 1.0
    seasonal_amplitude: float = 0.0
    peak_day_of_year: int = 15

    def __post_init__(self) -> None:
        # Bounds keep every multiplicative factor positive without clamping in the hot loop:
        # noise samples lie within +/-4.5 and daily samples within +/-3.47.
        _check(0 <= self.step_noise <= 0.2, "step_noise must be in [0, 0.2]", "Variability")
        _check(0 <= self.day_to_day <= 0.25, "day_to_day must be in [0, 0.25]", "Variability")
        _check(0.2 <= self.weekend_factor <= 3, "weekend_factor must be in [0.2, 3]", "Variability")
        _check(0 <= self.seasonal_amplitude <= 0.5, "seasonal_amplitude must be in [0, 0.5]", "Variability")
        _check(1 <= self.peak_day_of_year <= 366, "peak_day_of_year must be 1..366", "Variability")

    @classmethod
    def none(cls) -> Variability:
        return cls(step_noise=0.0, day_to_day=0.0)


# --------------------------------------------------------------------------------------------
# Tariffs


_ALL_DAYS = frozenset(range(7))


@dataclass(frozen=True, slots=True)
class TariffWindow:
    """Local ``start`` to ``end`` on the given weekdays (0 = Monday) bills to ``tariff``.

    ``end`` is exclusive; ``time(0)`` as the end means midnight. A window with ``end <= start``
    wraps: on each listed day it covers ``start..24:00`` and ``00:00..end`` of that same day.
    """

    start: time
    end: time
    tariff: int
    weekdays: frozenset[int] = _ALL_DAYS

    def __post_init__(self) -> None:
        _check(1 <= self.tariff <= MAX_TARIFFS, f"tariff must be 1..{MAX_TARIFFS}", "TariffWindow")
        _check(self.weekdays <= _ALL_DAYS, "weekdays are 0 (Monday) .. 6 (Sunday)", "TariffWindow")
        for t in (self.start, self.end):
            _check(
                t.tzinfo is None, "window times are local wall-clock times, without tzinfo", "TariffWindow"
            )

    def minutes(self) -> list[tuple[int, int]]:
        """The covered minute-of-day ranges ``[a, b)``."""
        a = self.start.hour * 60 + self.start.minute
        b = self.end.hour * 60 + self.end.minute
        b = 1440 if b == 0 else b
        return [(a, b)] if b > a else [(a, 1440), (0, b)]


@dataclass(frozen=True, slots=True)
class TariffSchedule:
    """Time-of-use tariffs: the first window that covers a local time wins, else ``default_tariff``.

    Holidays count as Sundays. Window edges must fall on step boundaries.
    """

    windows: tuple[TariffWindow, ...] = ()
    default_tariff: int = 1
    holidays: frozenset[date] = frozenset()

    def __post_init__(self) -> None:
        _check(1 <= self.default_tariff <= MAX_TARIFFS, f"tariff must be 1..{MAX_TARIFFS}", "TariffSchedule")

    @classmethod
    def single(cls) -> TariffSchedule:
        """One tariff around the clock."""
        return cls()

    @classmethod
    def peak_offpeak(
        cls,
        peak_start: time = time(7),
        peak_end: time = time(23),
        *,
        peak_tariff: int = 2,
        offpeak_tariff: int = 1,
        weekend_offpeak: bool = True,
        holidays: Iterable[date] = (),
    ) -> TariffSchedule:
        """Two rates: ``peak_tariff`` from ``peak_start`` to ``peak_end``, else ``offpeak_tariff``."""
        days = frozenset(range(5)) if weekend_offpeak else _ALL_DAYS
        return cls(
            windows=(TariffWindow(peak_start, peak_end, peak_tariff, days),),
            default_tariff=offpeak_tariff,
            holidays=frozenset(holidays),
        )

    def day_type(self, local_date: date) -> int:
        """The weekday used for ``local_date`` (holidays are 6, Sunday)."""
        return 6 if local_date in self.holidays else local_date.weekday()

    def tariff_by_minute(self, weekday: int) -> list[int]:
        """The tariff of each minute of a day of type ``weekday``."""
        minutes = [self.default_tariff] * 1440
        for window in reversed(self.windows):  # paint in reverse so the first window wins
            if weekday in window.weekdays:
                for a, b in window.minutes():
                    minutes[a:b] = [window.tariff] * (b - a)
        return minutes

    def tariff_at(self, local: datetime) -> int:
        """The tariff at a local wall-clock time (an aware datetime is taken at its own wall time)."""
        return self.tariff_by_minute(self.day_type(local.date()))[local.hour * 60 + local.minute]


# --------------------------------------------------------------------------------------------
# Events


class EventKind(enum.StrEnum):
    """What can happen to a meter's supply or case."""

    #: Supply interruption: voltage, current and power are 0 on the affected phases.
    OUTAGE = "outage"
    #: Voltage dip: voltage falls to ``magnitude`` times its value (EN 50160: below 90 %).
    SAG = "sag"
    #: Voltage swell: voltage rises to ``magnitude`` times its value (EN 50160: above 110 %).
    SWELL = "swell"
    #: The neutral is lost upstream: the star point floats and the phase voltages shift.
    BROKEN_NEUTRAL = "broken_neutral"
    #: Tamper detected (e.g. magnetic field); a flag only, metrology unaffected.
    TAMPER = "tamper"
    #: Terminal cover opened; a flag only.
    COVER_OPEN = "cover_open"

    @property
    def affects_power(self) -> bool:
        """True for events that change power and energy; those are quantised to model steps."""
        return self in (EventKind.OUTAGE, EventKind.BROKEN_NEUTRAL)

    @property
    def default_magnitude(self) -> float | None:
        return {EventKind.SAG: 0.7, EventKind.SWELL: 1.15}.get(self)


def _check_magnitude(kind: EventKind, magnitude: float, where: str) -> None:
    if kind is EventKind.SAG:
        _check(0.01 <= magnitude <= 0.9, "a sag's residual voltage must be 0.01..0.9 of nominal", where)
    elif kind is EventKind.SWELL:
        _check(1.1 <= magnitude <= 2.0, "a swell must be 1.1..2.0 of nominal", where)


@dataclass(frozen=True, slots=True)
class ScheduledEvent:
    """An event at a fixed time. ``phases`` () means every phase of the meter."""

    kind: EventKind
    start: datetime
    duration: timedelta
    phases: tuple[Phase, ...] = ()
    magnitude: float | None = None

    def __post_init__(self) -> None:
        where = f"ScheduledEvent {self.kind.value}"
        _check(self.start.tzinfo is not None, "start must be timezone-aware", where)
        _check(self.duration > timedelta(0), "duration must be positive", where)
        if self.magnitude is not None:
            _check_magnitude(self.kind, self.magnitude, where)


@dataclass(frozen=True, slots=True)
class RandomEvents:
    """Seeded random events: ``per_year`` on average (Poisson), durations log-uniform.

    Random outages and broken neutrals hit every phase; a random sag or swell hits one phase or
    all (even odds). ``magnitude`` is the range a sag's or swell's factor is drawn from.
    """

    kind: EventKind
    per_year: float
    min_duration: timedelta
    max_duration: timedelta
    magnitude: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        where = f"RandomEvents {self.kind.value}"
        _check(_finite(self.per_year) and 0 <= self.per_year <= 20_000, "per_year must be 0..20000", where)
        _check(timedelta(0) < self.min_duration <= self.max_duration, "need 0 < min_duration <= max", where)
        _check(self.max_duration <= timedelta(days=7), "max_duration is at most 7 days", where)
        if self.magnitude is not None:
            low, high = self.magnitude
            _check(low <= high, "magnitude range must be (low, high)", where)
            _check_magnitude(self.kind, low, where)
            _check_magnitude(self.kind, high, where)


@dataclass(frozen=True, slots=True)
class EventConfig:
    """Scheduled and random events."""

    scheduled: tuple[ScheduledEvent, ...] = ()
    random: tuple[RandomEvents, ...] = ()

    @classmethod
    def typical(cls) -> EventConfig:
        """Rates of a typical urban LV customer (order of magnitude, CEER benchmarking)."""
        return cls(
            random=(
                RandomEvents(EventKind.OUTAGE, 2.0, timedelta(minutes=3), timedelta(hours=3)),
                RandomEvents(
                    EventKind.SAG, 30.0, timedelta(milliseconds=40), timedelta(seconds=3), (0.4, 0.9)
                ),
                RandomEvents(
                    EventKind.SWELL, 5.0, timedelta(milliseconds=40), timedelta(seconds=3), (1.1, 1.2)
                ),
                RandomEvents(EventKind.BROKEN_NEUTRAL, 0.05, timedelta(minutes=30), timedelta(hours=8)),
            )
        )


# --------------------------------------------------------------------------------------------
# Billing and the whole configuration


@dataclass(frozen=True, slots=True)
class BillingConfig:
    """Automatic billing reset at local midnight starting ``day_of_month`` (None: manual only).

    A reset stores the registers and maximum demands in the billing history (the newest
    ``history`` records are kept), resets maximum demand and increments the billing counter.
    Energy registers are cumulative and never reset.
    """

    day_of_month: int | None = 1
    history: int = 12

    def __post_init__(self) -> None:
        _check(
            self.day_of_month is None or 1 <= self.day_of_month <= 28,
            "day_of_month must be 1..28",
            "BillingConfig",
        )
        _check(0 <= self.history <= 1000, "history must be 0..1000", "BillingConfig")


@dataclass(frozen=True)
class LoadConfig:
    """Everything a :class:`~metercom.sim.load.model.LoadModel` needs besides its seed and start.

    ``step`` must divide 15 minutes (1 s .. 15 min; power is constant within a step and energy
    integrates step by step), ``demand_period`` must be a multiple of ``step`` that divides a day.
    ``timezone``'s UTC offsets must be whole multiples of ``step`` (true of every zone in use
    today for steps up to 15 minutes), so steps align with the local clock; demand periods are
    aligned to local time (a quarter-hour block starts at local :00, :15, :30, :45).
    """

    source: Household | Feeder
    supply: Supply = field(default_factory=Supply)
    variability: Variability = field(default_factory=Variability)
    tariffs: TariffSchedule = field(default_factory=TariffSchedule)
    events: EventConfig = field(default_factory=EventConfig)
    billing: BillingConfig = field(default_factory=BillingConfig)
    timezone: tzinfo = UTC
    step: timedelta = timedelta(minutes=1)
    demand_period: timedelta = timedelta(minutes=15)

    def __post_init__(self) -> None:
        step_us = self.step // timedelta(microseconds=1)
        _check(
            self.step >= timedelta(seconds=1)
            and step_us % 1_000_000 == 0
            and 900 % (step_us // 1_000_000) == 0,
            f"step must be whole seconds dividing 15 min, got {self.step}",
            "LoadConfig",
        )
        _check(
            self.demand_period >= self.step
            and self.demand_period % self.step == timedelta(0)
            and timedelta(days=1) % self.demand_period == timedelta(0),
            f"demand_period must be a multiple of step dividing a day, got {self.demand_period}",
            "LoadConfig",
        )
        for event in self.events.scheduled:
            if event.phases:
                _check(
                    all(p in self.phases for p in event.phases),
                    f"scheduled {event.kind.value} names a phase the meter does not have",
                    "LoadConfig",
                )
        for window in self.tariffs.windows:
            for t in (window.start, window.end):
                _check(
                    (t.hour * 3600 + t.minute * 60 + t.second) % self.step_s == 0 and t.microsecond == 0,
                    f"tariff window edge {t} is not on a step boundary",
                    "LoadConfig",
                )

    @property
    def phases(self) -> tuple[Phase, ...]:
        """The phases the meter measures."""
        return self.source.phases

    @property
    def step_s(self) -> int:
        return self.step // timedelta(seconds=1)

    @functools.cached_property
    def compiled(self) -> CompiledLoad:
        """The arrays the model runs on, built once and shared (see :mod:`._compile`)."""
        from metercom.sim.load._compile import compile_config

        return compile_config(self)
