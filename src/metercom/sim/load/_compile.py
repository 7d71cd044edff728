"""Compile a :class:`~metercom.sim.load.config.LoadConfig` into the arrays the model runs on.

Rule: everything that does not depend on the meter's seed or on the date is computed here,
once per configuration, and shared read-only by every meter using it.

Theory of operation:

1. **Fitting** (:func:`fit_hourly`). Each appliance's 24 hourly usage weights are its prior.
   Iterative proportional fitting (RAS) alternately scales each appliance's row to its daily
   energy and each period's columns to the period's share of the household's daily energy,
   until both marginals hold (relative error below 1e-9). IPF keeps the prior's cross-ratios,
   so an appliance keeps its character (the air-conditioner stays a night load) and never moves
   into an hour whose prior weight is 0. The result is each appliance's expected mean power per
   hour (W = Wh per hour). The last pass scales rows, so daily energies are exact.
2. **Shaping** (:func:`hourly_to_steps`). Hourly means become per-step values along a slope
   through each hour's centre (the centred difference of the neighbouring hours, limited so no
   value goes negative). The slope sums to zero over the hour, so every hour keeps exactly its
   energy while the shape has no staircase at the hour edges.
3. **Per phase**, continuous appliances add into ``base_p_mw`` (mW at nominal voltage, per local
   step of day) with their reactive power as the ratio ``q_ratio`` = Q/P; switched appliances
   become :class:`SessionSpec` (power of each step of one run, and the start-hour distribution).
   A feeder instead sums the whole household (switched appliances at their expected profile),
   smooths it over the diversity window and multiplies by the household count per phase.
4. **Tariffs**: the tariff of every local step for each day type, and its runs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import accumulate

from metercom.errors import ConfigError
from metercom.sim.load.config import (
    Appliance,
    EventKind,
    Feeder,
    Household,
    LoadConfig,
    Phase,
    PvSystem,
    RandomEvents,
)

__all__ = [
    "EPOCH",
    "CompiledLoad",
    "SessionSpec",
    "SimEvent",
    "compile_config",
    "fit_hourly",
    "hourly_to_steps",
]

#: Step numbers and microsecond times count from here.
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
US = timedelta(microseconds=1)
#: One watt-hour in millijoules (mW * s).
WH_MJ = 3_600_000


@dataclass(frozen=True, slots=True)
class SessionSpec:
    """A switched appliance: ``count`` runs a day, each drawing ``powers_mw`` step by step."""

    appliance: str
    phase_index: int
    count: int
    powers_mw: tuple[int, ...]
    reactive_mvar: tuple[int, ...]
    start_cdf: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class SimEvent:
    """An event in model time: microseconds since the epoch; power events are step-aligned."""

    kind: EventKind
    start_us: int
    end_us: int
    mask: int
    magnitude: float


@dataclass(frozen=True, eq=False)
class CompiledLoad:
    """Immutable arrays shared by all meters of one configuration (lists are never mutated)."""

    config: LoadConfig
    phases: tuple[Phase, ...]
    step_s: int
    steps_per_day: int
    demand_steps: int
    base_p_mw: tuple[list[float], ...]
    q_ratio: tuple[list[float], ...]
    sigma: tuple[float, ...]
    pv: PvSystem | None
    pv_mw: tuple[list[float] | None, ...]
    sessions: tuple[SessionSpec, ...]
    noise_index: list[int]
    diurnal: list[float]
    tariff_by_step: tuple[list[int], ...]
    tariff_runs: tuple[tuple[tuple[int, int, int], ...], ...]
    block_starts: tuple[int, ...]
    scheduled: tuple[SimEvent, ...]
    random_events: tuple[RandomEvents, ...]
    max_random_duration_us: int
    appliance_hourly_w: dict[str, tuple[float, ...]]
    appliance_phase: dict[str, Phase]
    switched: frozenset[str]

    @property
    def step_us(self) -> int:
        return self.step_s * 1_000_000

    @property
    def all_phases_mask(self) -> int:
        return (1 << len(self.phases)) - 1

    def expected_phase_power_w(self) -> tuple[list[float], ...]:
        """Expected load per phase and local step (W, no noise, no PV): continuous + switched.

        Switched appliances are taken at their expected (fitted hourly) profile.
        """
        out = [[v / 1000.0 for v in base] for base in self.base_p_mw]
        if isinstance(self.config.source, Household):
            for name in self.switched:
                shape = hourly_to_steps(self.appliance_hourly_w[name], self.step_s)
                i = self.phases.index(self.appliance_phase[name])
                out[i] = [a + b for a, b in zip(out[i], shape, strict=True)]
        return tuple(out)


def fit_hourly(
    priors: list[list[float]],
    row_targets: list[float],
    period_of_hour: tuple[int, ...],
    period_targets: list[float],
    *,
    tolerance: float = 1e-9,
    max_iterations: int = 20_000,
) -> list[list[float]]:
    """Iterative proportional fitting of appliance x hour energies to both marginals.

    ``priors[i][h]`` are appliance i's relative weights; row i must sum to ``row_targets[i]``
    and the hours of period p to ``period_targets[p]`` (both totals must agree). Raises
    :class:`ConfigError` when no fit exists with the priors' zero pattern.
    """
    total = sum(row_targets)
    n_periods = len(period_targets)
    matrix = [list(row) for row in priors]
    for i, row in enumerate(matrix):
        s = sum(row)
        if row_targets[i] > 0 and s <= 0:
            raise ConfigError(f"appliance #{i} has energy but no usage hours", where="fit_hourly")
    worst = math.inf
    for _ in range(max_iterations):
        for i, row in enumerate(matrix):
            s = sum(row)
            f = row_targets[i] / s if s > 0 else 0.0
            matrix[i] = [v * f for v in row]
        column = [0.0] * n_periods
        for row in matrix:
            for h, v in enumerate(row):
                column[period_of_hour[h]] += v
        worst = max(abs(c - t) for c, t in zip(column, period_targets, strict=True)) / total
        if worst < tolerance:
            break
        factors = []
        for p in range(n_periods):
            if column[p] <= 0 < period_targets[p]:
                raise ConfigError(
                    f"period #{p} needs energy but no appliance may run then (all usage weights 0)",
                    where="fit_hourly",
                )
            factors.append(period_targets[p] / column[p] if column[p] > 0 else 0.0)
        matrix = [[v * factors[period_of_hour[h]] for h, v in enumerate(row)] for row in matrix]
    else:
        raise ConfigError(
            f"period targets cannot be met with these usage windows (worst error {worst:.2%} of the day); "
            "widen the appliances' usage windows or relax the period table",
            where="fit_hourly",
        )
    return matrix


def hourly_to_steps(hourly_w: tuple[float, ...] | list[float], step_s: int) -> list[float]:
    """Per-step power (W) over a day from 24 hourly means, each hour's energy preserved."""
    n = 3600 // step_s
    out: list[float] = []
    for h in range(24):
        mean = hourly_w[h]
        slope = (hourly_w[(h + 1) % 24] - hourly_w[(h - 1) % 24]) / 2.0
        slope = max(-2.0 * mean, min(2.0 * mean, slope))  # never below zero inside the hour
        out.extend(mean + slope * ((j + 0.5) / n - 0.5) for j in range(n))
    return out


def _runs(values: list[int]) -> tuple[tuple[int, int, int], ...]:
    runs: list[tuple[int, int, int]] = []
    start = 0
    for k in range(1, len(values) + 1):
        if k == len(values) or values[k] != values[start]:
            runs.append((start, k, values[start]))
            start = k
    return tuple(runs)


def _fitted_hourly(household: Household) -> dict[str, tuple[float, ...]]:
    energies = household.appliance_energy_wh()
    rows: dict[str, list[float]] = {}
    for appliance in household.appliances:
        weights = appliance.usage.hourly
        s = sum(weights)
        rows[appliance.name] = [w / s * energies[appliance.name] for w in weights]
    table = household.period_targets
    if table is not None:
        total = sum(energies.values())
        period_of_hour = table.period_of_hour()
        targets = [share * total for share in table.shares()]
        for appliance in household.appliances:
            if not appliance.fitted:  # fixed rows: their energy comes off the period targets
                for h, v in enumerate(rows[appliance.name]):
                    targets[period_of_hour[h]] -= v
        if min(targets) < -1e-9 * total:
            raise ConfigError(
                "the appliances kept out of fitting (fitted=False) already use more than the period table "
                "allows in some period",
                where="Household",
            )
        flexible = [a.name for a in household.appliances if a.fitted]
        fitted = fit_hourly(
            [rows[n] for n in flexible],
            [energies[n] for n in flexible],
            period_of_hour,
            [max(0.0, t) for t in targets],
        )
        rows.update(zip(flexible, fitted, strict=True))
    return {name: tuple(row) for name, row in rows.items()}


def _check_rated(appliance: Appliance, hourly_w: tuple[float, ...]) -> None:
    if appliance.rated_power_w is None or appliance.sessions_per_day:
        return
    peak = max(hourly_w)
    if peak > appliance.rated_power_w * (1 + 1e-9):
        raise ConfigError(
            f"its hourly mean power reaches {peak:.0f} W, above its rated {appliance.rated_power_w:.0f} W; "
            "lower its daily energy, widen its usage windows or raise rated_power_w",
            where=f"Appliance {appliance.name!r}",
        )


def _session_spec(
    appliance: Appliance, energy_wh: float, hourly_w: tuple[float, ...], phase_index: int, cfg: LoadConfig
) -> SessionSpec | None:
    if energy_wh <= 0:
        return None
    rated_w = appliance.rated_power_w or 0.0  # Appliance guarantees it is set for switched loads
    step_s = cfg.step_s
    power_mw = round(rated_w * 1000)
    run_mj = round(energy_wh / appliance.sessions_per_day * WH_MJ)
    full, rest_mj = divmod(run_mj, power_mw * step_s)
    powers = [power_mw] * full
    if round(rest_mj / step_s):
        powers.append(round(rest_mj / step_s))
    steps_per_day = 86_400 // step_s
    if len(powers) * appliance.sessions_per_day > steps_per_day // 2:
        raise ConfigError(
            f"{appliance.sessions_per_day} runs of {len(powers) * step_s / 3600:.1f} h each at "
            f"{rated_w:.0f} W do not fit in half a day",
            where=f"Appliance {appliance.name!r}",
        )
    tan_phi = appliance.tan_phi
    total = sum(hourly_w)
    cdf = tuple(accumulate(w / total for w in hourly_w))
    return SessionSpec(
        appliance=appliance.name,
        phase_index=phase_index,
        count=appliance.sessions_per_day,
        powers_mw=tuple(powers),
        reactive_mvar=tuple(int(p * tan_phi) for p in powers),
        start_cdf=(*cdf[:-1], 1.0),
    )


def _smooth(values: list[float], window: int) -> list[float]:
    """Circular moving average over ``window`` samples (centred)."""
    if window <= 1:
        return list(values)
    n = len(values)
    half = window // 2
    ext = values[-half:] + values + values[: window - half]
    pref = list(accumulate(ext, initial=0.0))
    return [(pref[i + window] - pref[i]) / window for i in range(n)]


def _pv_shape_w(peak_w: float, sunrise_h: float, sunset_h: float, step_s: int) -> list[float]:
    spd = 86_400 // step_s
    out = []
    for m in range(spd):
        t = (m + 0.5) * step_s / 3600.0
        if sunrise_h < t < sunset_h:
            out.append(peak_w * math.sin(math.pi * (t - sunrise_h) / (sunset_h - sunrise_h)))
        else:
            out.append(0.0)
    return out


def _us(t: datetime) -> int:
    return (t - EPOCH) // US


def compile_config(cfg: LoadConfig) -> CompiledLoad:
    step_s = cfg.step_s
    spd = 86_400 // step_s
    phases = cfg.phases
    source = cfg.source
    household = source.household if isinstance(source, Feeder) else source
    hourly = _fitted_hourly(household)
    energies = household.appliance_energy_wh()
    for appliance in household.appliances:
        _check_rated(appliance, hourly[appliance.name])

    base_w = [[0.0] * spd for _ in phases]
    base_q = [[0.0] * spd for _ in phases]
    sessions: list[SessionSpec] = []
    sigma: list[float] = []
    pv: list[list[float] | None] = [None for _ in phases]
    hh_pv = household.pv

    if isinstance(source, Feeder):
        # Aggregate: every appliance of the household, switched ones at their expected profile.
        total_w = [0.0] * spd
        total_q = [0.0] * spd
        for appliance in household.appliances:
            shape = hourly_to_steps(hourly[appliance.name], step_s)
            tan_phi = appliance.tan_phi
            total_w = [a + b for a, b in zip(total_w, shape, strict=True)]
            total_q = [a + b * tan_phi for a, b in zip(total_q, shape, strict=True)]
        window = max(1, source.diversity // cfg.step)
        total_w = _smooth(total_w, window)
        total_q = _smooth(total_q, window)
        for i, count in enumerate(source.households_per_phase):
            base_w[i] = [count * v for v in total_w]
            base_q[i] = [count * v for v in total_q]
            # Independent households: relative noise falls as 1/sqrt(n).
            sigma.append(cfg.variability.step_noise / math.sqrt(count) if count else 0.0)
            if hh_pv is not None and count and hh_pv.peak_power_w > 0:
                pv[i] = _pv_shape_w(count * hh_pv.peak_power_w, hh_pv.sunrise_hour, hh_pv.sunset_hour, step_s)
    else:
        for appliance in household.appliances:
            i = phases.index(appliance.phase)
            if appliance.sessions_per_day:
                spec = _session_spec(appliance, energies[appliance.name], hourly[appliance.name], i, cfg)
                if spec is not None:
                    sessions.append(spec)
                continue
            shape = hourly_to_steps(hourly[appliance.name], step_s)
            tan_phi = appliance.tan_phi
            base_w[i] = [a + b for a, b in zip(base_w[i], shape, strict=True)]
            base_q[i] = [a + b * tan_phi for a, b in zip(base_q[i], shape, strict=True)]
        sigma = [cfg.variability.step_noise] * len(phases)
        if hh_pv is not None and hh_pv.peak_power_w > 0:
            on = [hh_pv.phase] if hh_pv.phase is not None else list(phases)
            for phase in on:
                peak_w = hh_pv.peak_power_w / len(on)
                pv[phases.index(phase)] = _pv_shape_w(peak_w, hh_pv.sunrise_hour, hh_pv.sunset_hour, step_s)

    base_p_mw = tuple([v * 1000.0 for v in row] for row in base_w)
    q_ratio = tuple(
        [q / p if p > 0 else 0.0 for p, q in zip(pw, qw, strict=True)]
        for pw, qw in zip(base_w, base_q, strict=True)
    )

    diurnal = [
        -cfg.supply.voltage_diurnal * math.cos(2 * math.pi * ((m + 0.5) * step_s / 3600.0 - 19.0) / 24.0)
        for m in range(spd)
    ]
    noise_index = [(m * step_s) // 60 for m in range(spd)]
    tariff_by_step = []
    for day_type in range(7):
        minutes = cfg.tariffs.tariff_by_minute(day_type)
        tariff_by_step.append([minutes[j] for j in noise_index])
    demand_steps = cfg.demand_period // cfg.step

    mask_all = (1 << len(phases)) - 1
    step_us = step_s * 1_000_000
    scheduled = []
    for event in cfg.events.scheduled:
        start_us = _us(event.start)
        end_us = start_us + event.duration // US
        if event.kind.affects_power:
            start_us = start_us // step_us * step_us
            end_us = -(-end_us // step_us) * step_us
        mask = sum(1 << phases.index(p) for p in event.phases) if event.phases else mask_all
        magnitude = event.magnitude if event.magnitude is not None else (event.kind.default_magnitude or 1.0)
        scheduled.append(SimEvent(event.kind, start_us, end_us, mask, magnitude))
    scheduled.sort(key=lambda e: (e.start_us, e.end_us))
    max_random_us = max((r.max_duration // US for r in cfg.events.random), default=0) + step_us

    return CompiledLoad(
        config=cfg,
        phases=phases,
        step_s=step_s,
        steps_per_day=spd,
        demand_steps=demand_steps,
        base_p_mw=base_p_mw,
        q_ratio=q_ratio,
        sigma=tuple(sigma),
        pv=hh_pv,
        pv_mw=tuple(None if row is None else [v * 1000.0 for v in row] for row in pv),
        sessions=tuple(sessions),
        noise_index=noise_index,
        diurnal=diurnal,
        tariff_by_step=tuple(tariff_by_step),
        tariff_runs=tuple(_runs(t) for t in tariff_by_step),
        block_starts=tuple(range(0, spd, demand_steps)),
        scheduled=tuple(scheduled),
        random_events=cfg.events.random,
        max_random_duration_us=max_random_us,
        appliance_hourly_w=hourly,
        appliance_phase={a.name: a.phase for a in household.appliances},
        switched=frozenset(a.name for a in household.appliances if a.sessions_per_day),
    )
