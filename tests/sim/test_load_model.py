"""The load model (metercom.sim.load): seed household, exact energy, demand, billing, events, physics.

Tolerances used here, and why:

* expected (noise-free) period shares match the seed table to 1e-6: the fit is exact;
* realised shares over a simulated year match within 1 percentage point of the day's energy
  (switched appliances run at seeded random times, so single days deviate more);
* energy registers match the integral of the captured power *exactly*, to the millijoule.
"""

from __future__ import annotations

import math
import os
import subprocess
import sys
import time as _time
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.sim.load import (
    Appliance,
    BillingConfig,
    EventConfig,
    EventKind,
    Feeder,
    Household,
    LoadConfig,
    LoadModel,
    Period,
    PeriodKind,
    PeriodTable,
    Phase,
    PvSystem,
    RandomEvents,
    ScheduledEvent,
    Supply,
    TariffSchedule,
    TariffWindow,
    UsageProfile,
    Variability,
    floating_star_point,
)
from metercom.sim.load._compile import WH_MJ, hourly_to_steps
from metercom.sim.load.seed import SEED_APPLIANCE_UNITS, SEED_PERIODS, seed_period_table

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MIN = timedelta(minutes=1)
DAY = timedelta(days=1)
SQRT3 = math.sqrt(3.0)


@pytest.fixture(scope="module")
def seed_config() -> LoadConfig:
    return LoadConfig(Household.seed_example(), tariffs=TariffSchedule.peak_offpeak())


@pytest.fixture(scope="module")
def rich_config() -> LoadConfig:
    """Seed household with PV, two rates and the typical random events: everything at once."""
    return LoadConfig(
        Household.seed_example(pv=PvSystem(4000.0)),
        tariffs=TariffSchedule.peak_offpeak(),
        events=EventConfig.typical(),
    )


def _net_mj(model: LoadModel, start: datetime, steps: int, step: timedelta = MIN) -> int:
    """Integral of the captured total active power, step by step from snapshots (mJ)."""
    start = start.astimezone(UTC)  # aware arithmetic in one zone is wall-clock arithmetic
    step_s = int(step.total_seconds())
    return sum(model.snapshot(start + k * step).active_power_mw for k in range(steps)) * step_s


def _import_mj(model: LoadModel, start: datetime, steps: int, step: timedelta = MIN) -> int:
    start = start.astimezone(UTC)
    step_s = int(step.total_seconds())
    return sum(max(0, model.snapshot(start + k * step).active_power_mw) for k in range(steps)) * step_s


# ---------------------------------------------------------------------------------------------
# The seed household


def test_seed_tables_are_as_given() -> None:
    assert sum(units for _, units in SEED_APPLIANCE_UNITS) == 635
    assert sum(value for _, _, value in SEED_PERIODS) == 2301
    household = Household.seed_example()
    # Reading: one seed unit = 10 Wh/day; the household uses 6,350 Wh a day.
    assert household.total_daily_energy_wh == pytest.approx(6350.0)
    assert household.appliance_energy_wh()["air-conditioner"] == pytest.approx(2880.0)
    # Period figures read as mean power: 6,079 Wh/day, within 5 % of the appliances' total.
    table = seed_period_table()
    assert sum(table.energy_weights()) == pytest.approx(6079.0)
    assert abs(sum(table.energy_weights()) / 6350.0 - 1) < 0.05


@pytest.mark.parametrize("kind", list(PeriodKind))
def test_seed_expected_period_shares_match_exactly(kind: PeriodKind) -> None:
    config = LoadConfig(Household.seed_example(period_kind=kind))
    compiled = config.compiled
    table = seed_period_table(kind)
    by_hour = [sum(row[h] for row in compiled.appliance_hourly_w.values()) for h in range(24)]
    total = sum(by_hour)
    assert total == pytest.approx(6350.0, rel=1e-12)
    for period, share in zip(table.periods, table.shares(), strict=True):
        got = sum(by_hour[period.start_hour : period.end_hour]) / total
        assert got == pytest.approx(share, abs=1e-6), period
    # The per-step expected profile (continuous + switched at expectation) keeps the shares too.
    profile = compiled.expected_phase_power_w()[0]
    for period, share in zip(table.periods, table.shares(), strict=True):
        got = sum(profile[period.start_hour * 60 : period.end_hour * 60]) / 60 / total
        assert got == pytest.approx(share, abs=1e-6), period


def test_seed_realised_period_shares_over_a_year() -> None:
    """Tolerance: 1 percentage point of the daily energy, over 365 simulated days."""
    model = LoadModel(LoadConfig(Household.seed_example()), seed=7, start=T0)
    table = seed_period_table()
    energy = [0] * len(table.periods)
    for d in range(365):
        day = T0 + d * DAY
        for i, period in enumerate(table.periods):
            interval = model.energy_between(
                day + timedelta(hours=period.start_hour), day + timedelta(hours=period.end_hour)
            )
            energy[i] += interval.active_import_mj
    total = sum(energy)
    assert total / 365 / WH_MJ == pytest.approx(6350.0, rel=0.02)
    for got, share in zip(energy, table.shares(), strict=True):
        assert abs(got / total - share) < 0.01


def test_per_appliance_daily_energy_matches_configuration() -> None:
    household = Household.seed_example(daily_energy_wh=9000.0)
    compiled = LoadConfig(household).compiled
    energies = household.appliance_energy_wh()
    assert sum(energies.values()) == pytest.approx(9000.0)
    for name, energy in energies.items():
        hourly = compiled.appliance_hourly_w[name]
        assert sum(hourly) == pytest.approx(energy, rel=1e-9), name  # fitting keeps daily energy
        assert sum(hourly_to_steps(hourly, 60)) / 60 == pytest.approx(energy, rel=1e-9), name  # shaping too
    for spec in compiled.sessions:  # switched appliances: exact per run, to within one step's rounding
        run_mj = sum(spec.powers_mw) * compiled.step_s
        assert abs(run_mj * spec.count - energies[spec.appliance] * WH_MJ) <= 30 * spec.count


@pytest.mark.parametrize(("name", "units"), SEED_APPLIANCE_UNITS)
def test_each_seed_appliance_alone_delivers_its_daily_energy(name: str, units: int) -> None:
    """One appliance per household, its fitted profile as usage, no noise: model energy per day."""
    fitted = LoadConfig(Household.seed_example()).compiled.appliance_hourly_w[name]
    seed_appliance = next(a for a in Household.seed_example().appliances if a.name == name)
    appliance = Appliance(
        name,
        units * 10.0,
        UsageProfile(fitted),
        seed_appliance.power_factor,
        seed_appliance.rated_power_w,
        sessions_per_day=seed_appliance.sessions_per_day,
    )
    model = LoadModel(LoadConfig(Household((appliance,)), variability=Variability.none()), seed=3, start=T0)
    for d in range(3):
        got_wh = model.energy_between(T0 + d * DAY, T0 + (d + 1) * DAY).active_import_mj / WH_MJ
        # Power is truncated to whole mW each minute: at most 1440 mW min = 0.024 Wh a day.
        assert got_wh == pytest.approx(units * 10.0, abs=0.03), d


def test_realised_daily_energy_follows_daily_energy_setting() -> None:
    model = LoadModel(LoadConfig(Household.seed_example(daily_energy_wh=12_000.0)), seed=11, start=T0)
    mean_wh = model.energy_between(T0, T0 + 28 * DAY).active_import_mj / 28 / WH_MJ
    assert mean_wh == pytest.approx(12_000.0, rel=0.03)


# ---------------------------------------------------------------------------------------------
# Exact energy


def test_registers_equal_integral_of_captured_power_over_a_month(rich_config: LoadConfig) -> None:
    """Capture every minute's power for a month; the registers are its exact integral."""
    model = LoadModel(rich_config, seed=42, start=T0)
    steps = 31 * 24 * 60
    snapshots = [model.snapshot(T0 + k * MIN) for k in range(steps)]
    captured = [s.active_power_mw for s in snapshots]
    model.advance(T0 + steps * MIN)
    r = model.registers
    assert r.at == T0 + steps * MIN
    assert r.active_import_mj == sum(p for p in captured if p > 0) * 60
    assert r.active_export_mj == sum(-p for p in captured if p < 0) * 60
    assert r.active_import_mj - r.active_export_mj == sum(captured) * 60
    assert r.active_import_wh == r.active_import_mj // WH_MJ
    assert r.active_export_wh == r.active_export_mj // WH_MJ
    assert r.active_export_wh > 0  # the PV house exports
    # Tariffs: exact partition in mJ, and the Wh registers add up to the total register exactly.
    assert sum(r.active_import_tariff_mj) == r.active_import_mj
    assert sum(r.active_export_tariff_mj) == r.active_export_mj
    assert sum(r.active_import_tariff_wh) == r.active_import_wh
    assert sum(r.active_export_tariff_wh) == r.active_export_wh
    assert all(w > 0 for w in r.active_import_tariff_wh[:2])
    assert r.active_import_tariff_wh[2:] == (0, 0)
    # Each tariff register is within a few Wh of its own exact energy (pulses are routed).
    for wh, mj in zip(r.active_import_tariff_wh, r.active_import_tariff_mj, strict=True):
        assert abs(wh - mj / WH_MJ) < 10
    # The tariff split follows the schedule: peak (2) 07:00-23:00 on weekdays.
    peak = sum(max(0, p) for k, p in enumerate(captured) if rich_config.tariffs.tariff_at(T0 + k * MIN) == 2)
    assert r.active_import_tariff_mj[1] == peak * 60
    # Reactive and per phase (single phase: the phase is the total).
    assert r.phase_active_import_mj == (r.active_import_mj,)
    assert r.phase_active_export_mj == (r.active_export_mj,)
    reactive = [s.reactive_power_mvar for s in snapshots]
    assert r.reactive_import_mvar_s == sum(q for q in reactive if q > 0) * 60
    assert r.reactive_import_varh == r.reactive_import_mvar_s // WH_MJ
    # Load-profile rows (15 min) add up to the registers too.
    rows = [model.energy_between(T0 + k * 15 * MIN, T0 + (k + 1) * 15 * MIN) for k in range(steps // 15)]
    assert sum(row.active_import_mj - row.active_export_mj for row in rows) == sum(captured) * 60


@settings(max_examples=25)
@given(cuts=st.lists(st.integers(min_value=1, max_value=3 * 86_400 - 1), max_size=12))
def test_advance_in_any_chunks_equals_one_advance(rich_config: LoadConfig, cuts: list[int]) -> None:
    """Real-time style (many small advances at odd times) and one big advance agree exactly."""
    start = datetime(2026, 1, 31, 20, 0, 7, tzinfo=UTC)  # billing reset (Feb 1) inside
    end = start + 3 * DAY
    whole = LoadModel(rich_config, seed=5, start=start)
    whole.advance(end)
    pieces = LoadModel(rich_config, seed=5, start=start)
    for cut in sorted(cuts):
        pieces.advance(start + timedelta(seconds=cut, microseconds=123))
    pieces.advance(end)
    assert pieces.registers == whole.registers
    assert pieces.maximum_demand == whole.maximum_demand
    assert pieces.tariff_maximum_demand == whole.tariff_maximum_demand
    assert pieces.billing_history == whole.billing_history


def test_step_by_step_advance_meets_the_snapshot_values(rich_config: LoadConfig) -> None:
    """Each minute's register increment is exactly the power a snapshot shows for that minute."""
    start = datetime(2026, 6, 10, tzinfo=UTC)
    model = LoadModel(rich_config, seed=9, start=start)
    before = model.registers
    for k in range(1440):
        model.advance(start + (k + 1) * MIN)
        after = model.registers
        net = (after.active_import_mj - after.active_export_mj) - (
            before.active_import_mj - before.active_export_mj
        )
        snap = model.snapshot(start + k * MIN + timedelta(seconds=30))
        assert net == snap.active_power_mw * 60
        reactive = (after.reactive_import_mvar_s - after.reactive_export_mvar_s) - (
            before.reactive_import_mvar_s - before.reactive_export_mvar_s
        )
        assert reactive == snap.reactive_power_mvar * 60
        before = after


@pytest.mark.parametrize("step", [timedelta(seconds=10), timedelta(minutes=5), timedelta(minutes=15)])
def test_exactness_holds_for_other_steps(step: timedelta) -> None:
    config = LoadConfig(
        Household.seed_example(pv=PvSystem(3000.0)),
        tariffs=TariffSchedule.peak_offpeak(),
        step=step,
        demand_period=timedelta(minutes=15),
    )
    model = LoadModel(config, seed=1, start=T0)
    steps = int(timedelta(hours=30) / step)
    model.advance(T0 + steps * step)
    r = model.registers
    assert r.active_import_mj == _import_mj(model, T0, steps, step)
    assert r.active_import_mj - r.active_export_mj == _net_mj(model, T0, steps, step)
    assert sum(r.active_import_tariff_wh) == r.active_import_wh


def test_three_phase_vector_sum_and_per_phase_registers() -> None:
    household = Household.seed_example(phases=(Phase.L1, Phase.L2, Phase.L3), pv=PvSystem(6000.0, Phase.L1))
    model = LoadModel(LoadConfig(household), seed=4, start=T0)
    model.advance(T0 + 7 * DAY)
    r = model.registers
    phase_net = [i - e for i, e in zip(r.phase_active_import_mj, r.phase_active_export_mj, strict=True)]
    assert r.active_import_mj - r.active_export_mj == sum(phase_net)  # energy is conserved
    # PV on L1 exports on L1 while L2/L3 import; the total nets the phases (vector sum).
    assert r.phase_active_export_mj[0] > r.active_export_mj > 0
    assert r.phase_active_export_mj[1] == r.phase_active_export_mj[2] == 0
    assert r.active_import_mj < sum(r.phase_active_import_mj)


def test_pv_import_export_separation() -> None:
    config = LoadConfig(Household.seed_example(pv=PvSystem(5000.0)))
    model = LoadModel(config, seed=2, start=T0)
    model.advance(T0 + 14 * DAY)
    r = model.registers
    assert r.active_export_wh > 0
    assert r.active_import_wh > 0
    for d in range(3):
        night = model.snapshot(T0 + d * DAY + timedelta(hours=2))
        noon = model.snapshot(T0 + d * DAY + timedelta(hours=12))
        assert night.active_power_w > 0
        assert noon.active_power_w < 0  # exporting: negative power, power factor below 0
        assert noon.power_factor < 0
        assert abs(noon.phases[0].current_angle_deg) > 90  # current opposite the voltage
    night_only = model.energy_between(T0 + timedelta(hours=20), T0 + timedelta(hours=30))
    assert night_only.active_export_mj == 0
    without_pv = LoadModel(LoadConfig(Household.seed_example()), seed=2, start=T0)
    without_pv.advance(T0 + 14 * DAY)
    assert without_pv.registers.active_export_mj == 0
    # PV changes neither the load nor the seeded noise: it only subtracts.
    assert without_pv.registers.active_import_mj > r.active_import_mj


# ---------------------------------------------------------------------------------------------
# Maximum demand and billing


def _blocks(model: LoadModel, start: datetime, end: datetime) -> list[tuple[int, datetime, int]]:
    out = []
    t = start
    while t < end:
        row = model.energy_between(t, t + 15 * MIN)
        out.append((row.active_import_mj, t + 15 * MIN, model.tariff_at(t)))
        t += 15 * MIN
    return out


def test_maximum_demand_is_the_largest_block(seed_config: LoadConfig) -> None:
    model = LoadModel(seed_config, seed=8, start=T0)
    end = datetime(2026, 1, 31, tzinfo=UTC)
    model.advance(end)
    blocks = _blocks(model, T0, end)
    best = max(blocks, key=lambda b: (b[0], -b[1].timestamp()))
    md = model.maximum_demand
    assert md.energy_mj == best[0]
    assert md.at == best[1]  # stamped at the end of the block
    assert md.demand_w == Decimal(best[0] // 900) / 1000
    assert model.last_demand.energy_mj == blocks[-1][0]
    assert model.last_demand.at == end
    for tariff in (1, 2):
        mine = [b for b in blocks if b[2] == tariff]
        assert model.tariff_maximum_demand[tariff - 1].energy_mj == max(b[0] for b in mine)
    assert max(m.energy_mj for m in model.tariff_maximum_demand) == md.energy_mj
    assert model.tariff_maximum_demand[2].at is None


def test_monthly_billing_reset(seed_config: LoadConfig) -> None:
    model = LoadModel(seed_config, seed=8, start=T0)
    model.advance(datetime(2026, 3, 15, 12, tzinfo=UTC))
    assert model.billing_counter == 2
    first, second = model.billing_history
    assert (first.counter, first.at) == (1, datetime(2026, 2, 1, tzinfo=UTC))
    assert (second.counter, second.at) == (2, datetime(2026, 3, 1, tzinfo=UTC))
    twin = LoadModel(seed_config, seed=8, start=T0)
    twin.advance(datetime(2026, 2, 1, tzinfo=UTC))
    assert first.registers == twin.registers  # a snapshot of the registers at the reset
    assert first.maximum_demand == twin.maximum_demand  # January's MD, closed with the period
    assert first.maximum_demand.at is not None
    assert first.maximum_demand.at.month in (1, 2)
    # After the March reset the MD only covers March.
    march = _blocks(model, datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 3, 15, 12, tzinfo=UTC))
    assert model.maximum_demand.energy_mj == max(b[0] for b in march)
    # Energy registers are cumulative: never reset.
    assert (
        model.registers.active_import_wh
        > second.registers.active_import_wh
        > first.registers.active_import_wh
    )


def test_manual_billing_reset_and_history_limit() -> None:
    config = LoadConfig(Household.seed_example(), billing=BillingConfig(day_of_month=None, history=2))
    model = LoadModel(config, seed=1, start=T0)
    model.advance(T0 + 40 * DAY)
    assert model.billing_counter == 0  # no automatic reset configured
    md = model.maximum_demand
    record = model.billing_reset()
    assert (record.counter, record.at, record.maximum_demand) == (1, T0 + 40 * DAY, md)
    assert model.maximum_demand.energy_mj == 0
    assert model.maximum_demand.at is None
    for k in range(3):
        model.advance(T0 + (41 + k) * DAY)
        model.billing_reset()
    assert [r.counter for r in model.billing_history] == [3, 4]
    assert model.maximum_demand.energy_mj == 0


def test_billing_and_tariffs_follow_local_time_across_dst() -> None:
    berlin = ZoneInfo("Europe/Berlin")
    config = LoadConfig(
        Household.seed_example(),
        tariffs=TariffSchedule.peak_offpeak(time(7), time(23)),
        timezone=berlin,
        billing=BillingConfig(day_of_month=1),
    )
    start = datetime(2026, 3, 28, tzinfo=berlin)
    model = LoadModel(config, seed=3, start=start)
    model.advance(datetime(2026, 4, 2, tzinfo=berlin))
    # The spring-forward day has 23 hours; its energy is integrated over 23 hours only.
    day = model.energy_between(datetime(2026, 3, 29, tzinfo=berlin), datetime(2026, 3, 30, tzinfo=berlin))
    assert day.end - day.start == timedelta(hours=23)
    # Peak starts at 07:00 local both before (UTC+1) and after (UTC+2) the change.
    assert model.tariff_at(datetime(2026, 3, 27, 6, 59, tzinfo=berlin)) == 1
    assert model.tariff_at(datetime(2026, 3, 27, 7, 0, tzinfo=berlin)) == 2
    assert model.tariff_at(datetime(2026, 3, 30, 6, 59, tzinfo=berlin)) == 1
    assert model.tariff_at(datetime(2026, 3, 30, 7, 0, tzinfo=berlin)) == 2
    # Billing at local midnight of April 1 (22:00 UTC on March 31).
    (record,) = model.billing_history
    assert record.at == datetime(2026, 4, 1, tzinfo=berlin)
    r = model.registers
    assert sum(r.active_import_tariff_wh) == r.active_import_wh
    steps = int((r.at - start) / MIN)
    assert r.active_import_mj == _import_mj(model, start, steps)


# ---------------------------------------------------------------------------------------------
# Events


def _with_events(
    *events: ScheduledEvent, phases: tuple[Phase, ...] = (Phase.L1,), pv: PvSystem | None = None
) -> LoadConfig:
    household = Household.seed_example(phases=phases, pv=pv)
    return LoadConfig(household, events=EventConfig(scheduled=events))


def test_outage_zeroes_power_and_voltage_and_is_logged() -> None:
    start = T0 + DAY + timedelta(hours=10, seconds=30)
    outage = ScheduledEvent(EventKind.OUTAGE, start, timedelta(minutes=45))
    model = LoadModel(_with_events(outage, pv=PvSystem(3000.0)), seed=1, start=T0)
    during = model.snapshot(start + timedelta(minutes=20))
    assert during.events == {EventKind.OUTAGE}
    assert during.frequency_hz == 0.0
    for phase in during.phases:
        assert (phase.voltage_v, phase.current_a, phase.active_power_mw, phase.reactive_power_mvar) == (
            0,
            0,
            0,
            0,
        )
    (record,) = model.events_between(T0, T0 + 2 * DAY)
    # Power events are quantised to the step: start floored, end ceiled.
    assert record.kind is EventKind.OUTAGE
    assert record.start == T0 + DAY + timedelta(hours=10)
    assert record.end == T0 + DAY + timedelta(hours=10, minutes=46)
    assert record.phases == (Phase.L1,)
    assert model.energy_between(record.start, record.end).active_import_mj == 0
    assert model.energy_between(record.start, record.end).active_export_mj == 0
    before = model.snapshot(record.start - timedelta(seconds=1))
    after = model.snapshot(record.end)
    assert before.phases[0].voltage_v > 200
    assert after.phases[0].voltage_v > 200
    assert not before.events
    assert not after.events


def test_single_phase_outage_on_a_three_phase_meter() -> None:
    start = T0 + timedelta(hours=20)
    outage = ScheduledEvent(EventKind.OUTAGE, start, timedelta(hours=1), phases=(Phase.L2,))
    model = LoadModel(_with_events(outage, phases=(Phase.L1, Phase.L2, Phase.L3)), seed=1, start=T0)
    snap = model.snapshot(start + timedelta(minutes=30))
    assert snap.phase(Phase.L2).voltage_v == 0
    assert snap.phase(Phase.L2).active_power_mw == 0
    assert snap.phase(Phase.L1).voltage_v > 200
    assert snap.phase(Phase.L3).voltage_v > 200
    assert snap.frequency_hz > 49
    interval = model.energy_between(start, start + timedelta(hours=1))
    assert interval.phase_active_import_mj[1] == 0 < interval.phase_active_import_mj[0]


@pytest.mark.parametrize(("kind", "magnitude"), [(EventKind.SAG, 0.55), (EventKind.SWELL, 1.18)])
def test_sag_and_swell_scale_the_voltage_only(kind: EventKind, magnitude: float) -> None:
    start = T0 + timedelta(hours=9, seconds=12.5)
    event = ScheduledEvent(kind, start, timedelta(milliseconds=800), magnitude=magnitude)
    plain = LoadModel(LoadConfig(Household.seed_example()), seed=6, start=T0)
    model = LoadModel(_with_events(event), seed=6, start=T0)
    inside = start + timedelta(milliseconds=400)
    ratio = model.snapshot(inside).phases[0].voltage_v / plain.snapshot(inside).phases[0].voltage_v
    assert ratio == pytest.approx(magnitude, rel=1e-12)
    v = model.snapshot(inside).phases[0].voltage_v
    assert (v < 0.9 * 230) if kind is EventKind.SAG else (v > 1.1 * 230)
    assert model.snapshot(inside).events == {kind}
    # Exact times, not quantised; the sag ends 800 ms later.
    assert model.snapshot(start + timedelta(milliseconds=801)).events == frozenset()
    (record,) = model.events_between(T0, T0 + DAY)
    assert (record.start, record.end, record.magnitude) == (
        start,
        start + timedelta(milliseconds=800),
        magnitude,
    )
    # Loads are constant power: the current rises in a sag, energy is unchanged.
    assert (
        model.snapshot(inside).phases[0].active_power_mw == plain.snapshot(inside).phases[0].active_power_mw
    )
    assert model.energy_between(T0, T0 + DAY) == plain.energy_between(T0, T0 + DAY)


def test_tamper_and_cover_open_flags() -> None:
    tamper = ScheduledEvent(EventKind.TAMPER, T0 + timedelta(hours=3, seconds=5), timedelta(seconds=90))
    cover = ScheduledEvent(EventKind.COVER_OPEN, T0 + timedelta(hours=3), timedelta(hours=2))
    model = LoadModel(_with_events(tamper, cover), seed=1, start=T0)
    assert model.active_events(T0 + timedelta(hours=3, seconds=6)) == {EventKind.TAMPER, EventKind.COVER_OPEN}
    assert model.active_events(T0 + timedelta(hours=4)) == {EventKind.COVER_OPEN}
    assert model.active_events(T0 + timedelta(hours=5)) == frozenset()
    log = model.events_between(T0, T0 + DAY)
    assert [(e.kind, e.start, e.duration) for e in log] == [
        (EventKind.COVER_OPEN, T0 + timedelta(hours=3), timedelta(hours=2)),
        (EventKind.TAMPER, T0 + timedelta(hours=3, seconds=5), timedelta(seconds=90)),
    ]


def test_random_events_are_seeded_and_within_their_ranges(rich_config: LoadConfig) -> None:
    year = (T0, T0 + 365 * DAY)
    log = LoadModel(rich_config, seed=21, start=T0).events_between(*year)
    assert log == LoadModel(rich_config, seed=21, start=T0).events_between(*year)
    assert log != LoadModel(rich_config, seed=22, start=T0).events_between(*year)
    sags = [e for e in log if e.kind is EventKind.SAG]
    assert 12 <= len(sags) <= 55  # Poisson, mean 30 a year
    for sag in sags:
        assert sag.magnitude is not None
        assert 0.4 <= sag.magnitude <= 0.9
        assert timedelta(milliseconds=40) <= sag.duration <= timedelta(seconds=3)
    outages = [e for e in log if e.kind is EventKind.OUTAGE]
    assert all(e.start.second == 0 and e.end.second == 0 for e in outages)  # quantised to minutes
    # The log of a sub-period is the matching slice of the year's log.
    month = LoadModel(rich_config, seed=21, start=T0).events_between(T0 + 31 * DAY, T0 + 59 * DAY)
    assert month == [e for e in log if e.end > T0 + 31 * DAY and e.start < T0 + 59 * DAY]
    # A random sag shows in the snapshot at that time, on its phase.
    plain = LoadModel(LoadConfig(Household.seed_example(pv=PvSystem(4000.0))), seed=21, start=T0)
    model = LoadModel(rich_config, seed=21, start=T0)
    sag = sags[0]
    mid = sag.start + sag.duration / 2
    if not model.active_events(mid) & {EventKind.OUTAGE, EventKind.SWELL}:
        ratio = model.snapshot(mid).phases[0].voltage_v / plain.snapshot(mid).phases[0].voltage_v
        assert ratio == pytest.approx(sag.magnitude, rel=1e-9)


@settings(max_examples=200)
@given(
    loads=st.tuples(*[st.floats(min_value=1.0, max_value=20_000.0)] * 3),
    pf=st.floats(min_value=0.5, max_value=1.0),
)
def test_floating_star_point_physics(loads: tuple[float, float, float], pf: float) -> None:
    tan_phi = math.sqrt(1 - pf * pf) / pf
    s = (
        complex(loads[0], loads[0] * tan_phi),
        complex(loads[1], loads[1] * tan_phi),
        complex(loads[2], loads[2] * tan_phi),
    )
    _shift, volts = floating_star_point(s)
    mags = [abs(v) for v in volts]
    # Line-to-line voltages are untouched by the neutral shift.
    for i, j in ((0, 1), (1, 2), (2, 0)):
        assert abs(volts[i] - volts[j]) == pytest.approx(SQRT3, rel=1e-9)
    # Kirchhoff at the floating star point: the load currents sum to zero.
    currents = [sk.conjugate() * v for sk, v in zip(s, volts, strict=True)]
    assert abs(sum(currents)) <= 1e-9 * sum(abs(c) for c in currents)
    # With equal power factors: the lightest phase rises, the heaviest falls.
    lightest = min(range(3), key=lambda k: loads[k])
    heaviest = max(range(3), key=lambda k: loads[k])
    assert mags[lightest] >= 1 - 1e-9
    assert mags[heaviest] <= 1 + 1e-9
    assert mags[lightest] >= max(mags) - 1e-9
    assert mags[heaviest] <= min(mags) + 1e-9
    # Balanced loads do not move the star point.
    balanced_shift, _ = floating_star_point((s[0], s[0], s[0]))
    assert abs(balanced_shift) < 1e-12


def test_broken_neutral_in_the_model() -> None:
    start = T0 + DAY + timedelta(hours=18)
    event = ScheduledEvent(EventKind.BROKEN_NEUTRAL, start, timedelta(hours=2))
    feeder = Feeder(Household.seed_example(), households_per_phase=(30, 10, 3))
    supply = Supply(neighbour_load_w=(0.0, 0.0, 0.0))
    plain = LoadModel(LoadConfig(feeder, supply=supply), seed=2, start=T0)
    model = LoadModel(
        LoadConfig(feeder, supply=supply, events=EventConfig(scheduled=(event,))), seed=2, start=T0
    )
    at = start + timedelta(minutes=37)
    snap = model.snapshot(at)
    normal = plain.snapshot(at)
    assert EventKind.BROKEN_NEUTRAL in snap.events
    v = {p.phase: p for p in snap.phases}
    # L3 (lightest) rises towards line voltage; L1 (heaviest) collapses.
    assert v[Phase.L3].voltage_v > 1.2 * normal.phase(Phase.L3).voltage_v
    assert v[Phase.L1].voltage_v < 0.9 * normal.phase(Phase.L1).voltage_v
    # Line-to-line voltages stay at sqrt(3) x phase EMF (diurnal term within +/-1 %).
    phasor = {p: math.radians(v[p].voltage_angle_deg) for p in v}
    for a, b in ((Phase.L1, Phase.L2), (Phase.L2, Phase.L3), (Phase.L3, Phase.L1)):
        line = abs(
            complex(math.cos(phasor[a]), math.sin(phasor[a])) * v[a].voltage_v
            - complex(math.cos(phasor[b]), math.sin(phasor[b])) * v[b].voltage_v
        )
        assert line == pytest.approx(SQRT3 * 230.0, rel=0.012)
    # No neutral path: the phase currents sum to (almost, integer mW rounding) zero.
    assert snap.neutral_current_a < 1e-3 * max(p.current_a for p in snap.phases)
    assert normal.neutral_current_a > 10.0  # unbalanced feeder, intact neutral
    # Constant-impedance loads: power scales with V^2, so L3 draws more, L1 less, and energy shows it.
    ratio_l3 = (
        v[Phase.L3].voltage_v / (230.0 * (1 + model.config.compiled.diurnal[int((at - T0) / MIN) % 1440]))
    ) ** 2
    assert v[Phase.L3].active_power_mw == pytest.approx(
        normal.phase(Phase.L3).active_power_mw * ratio_l3, rel=1e-3, abs=2
    )
    window = (start, start + timedelta(hours=2))
    with_bn = model.energy_between(*window).phase_active_import_mj
    without = plain.energy_between(*window).phase_active_import_mj
    assert with_bn[2] > without[2]
    assert with_bn[0] < without[0]
    assert model.energy_between(T0, start) == plain.energy_between(T0, start)


# ---------------------------------------------------------------------------------------------
# Reproducibility, O(1) snapshots, the clock


def test_same_seed_same_values_different_seed_different(rich_config: LoadConfig) -> None:
    times = [T0 + timedelta(days=d, hours=h, minutes=7) for d in range(0, 60, 7) for h in (3, 8, 12, 19)]
    a = LoadModel(rich_config, seed=100, start=T0)
    b = LoadModel(rich_config, seed=100, start=T0)
    c = LoadModel(rich_config, seed=101, start=T0)
    assert [a.snapshot(t) for t in times] == [b.snapshot(t) for t in times]
    assert [a.snapshot(t).active_power_mw for t in times] != [c.snapshot(t).active_power_mw for t in times]
    for model in (a, b, c):
        model.advance(T0 + 20 * DAY)
    assert a.registers == b.registers != c.registers
    # Grid frequency is common to every meter on the grid; the meter's own voltage is not.
    assert [a.snapshot(t).frequency_hz for t in times] == [c.snapshot(t).frequency_hz for t in times]
    assert [a.snapshot(t).phases[0].voltage_v for t in times] != [
        c.snapshot(t).phases[0].voltage_v for t in times
    ]


def test_reproducible_across_processes(seed_config: LoadConfig) -> None:
    """No dependence on hash randomisation or process state."""
    code = (
        "from datetime import UTC, datetime\n"
        "from metercom.sim.load import EventConfig, Household, LoadConfig, LoadModel, TariffSchedule\n"
        "c = LoadConfig(\n"
        "    Household.seed_example(), tariffs=TariffSchedule.peak_offpeak(), events=EventConfig.typical()\n"
        ")\n"
        "m = LoadModel(c, seed=77, start=datetime(2026, 1, 1, tzinfo=UTC))\n"
        "m.advance(datetime(2026, 1, 9, tzinfo=UTC))\n"
        "log = m.events_between(m.start, m.now)\n"
        "print(m.registers.active_import_mj, m.maximum_demand.energy_mj, len(log))\n"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    src = str(Path(__file__).resolve().parents[2] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    # The interpreter running this test and a fixed script: no untrusted input.
    out = subprocess.run(  # noqa: S603
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    )
    here = LoadModel(
        LoadConfig(
            Household.seed_example(), tariffs=TariffSchedule.peak_offpeak(), events=EventConfig.typical()
        ),
        seed=77,
        start=T0,
    )
    here.advance(datetime(2026, 1, 9, tzinfo=UTC))
    log = here.events_between(here.start, here.now)
    expected = f"{here.registers.active_import_mj} {here.maximum_demand.energy_mj} {len(log)}"
    assert out.stdout.strip() == expected


def test_snapshot_at_any_time_is_o1_and_independent_of_state(rich_config: LoadConfig) -> None:
    far = datetime(2035, 8, 17, 13, 45, 10, tzinfo=UTC)
    fresh = LoadModel(rich_config, seed=3, start=T0)
    first = fresh.snapshot(far)
    busy = LoadModel(rich_config, seed=3, start=T0)
    busy.advance(T0 + 90 * DAY)
    assert busy.snapshot(far) == first
    assert busy.snapshot(T0 + timedelta(days=45, hours=6)) == fresh.snapshot(T0 + timedelta(days=45, hours=6))
    # O(1): a snapshot ten years out costs what one tomorrow does (no history is replayed).
    started = _time.perf_counter()
    for k in range(50):
        fresh.snapshot(far + k * 3 * DAY)
    assert (_time.perf_counter() - started) / 50 < 0.02


def test_runs_on_the_virtual_clock() -> None:
    clock = VirtualClock(T0)
    model = LoadModel(LoadConfig(Household.seed_example()), seed=1, start=clock.now())
    clock.advance(86_400 * 7)
    model.advance(clock.now())
    assert model.now == clock.now()
    assert model.registers.active_import_wh == pytest.approx(7 * 6350, rel=0.05)


def test_a_year_advances_quickly(rich_config: LoadConfig) -> None:
    model = LoadModel(rich_config, seed=1, start=T0)
    started = _time.process_time()
    model.advance(T0 + 365 * DAY)
    assert _time.process_time() - started < 5.0
    assert model.billing_counter == 11


# ---------------------------------------------------------------------------------------------
# Feeders and three-phase balance


def _phase_energy(config: LoadConfig, days: int = 7) -> tuple[int, ...]:
    model = LoadModel(config, seed=5, start=T0)
    return model.energy_between(T0, T0 + days * DAY).phase_active_import_mj


def test_balanced_feeder_is_balanced() -> None:
    energy = _phase_energy(LoadConfig(Feeder(Household.seed_example(), (40, 40, 40))))
    assert max(energy) / min(energy) < 1.02
    assert sum(energy) / 7 / 120 / WH_MJ == pytest.approx(6350.0, rel=0.05)
    model = LoadModel(LoadConfig(Feeder(Household.seed_example(), (40, 40, 40))), seed=5, start=T0)
    snap = model.snapshot(T0 + timedelta(hours=20))
    currents = [p.current_a for p in snap.phases]
    assert max(currents) / min(currents) < 1.25
    assert snap.neutral_current_a < 0.2 * max(currents)


def test_unbalanced_feeder_follows_its_household_counts() -> None:
    energy = _phase_energy(LoadConfig(Feeder(Household.seed_example(), (60, 30, 10))))
    assert energy[0] / energy[2] == pytest.approx(6.0, rel=0.05)
    assert energy[1] / energy[2] == pytest.approx(3.0, rel=0.05)


def test_feeder_noise_averages_out() -> None:
    """Relative step noise of n households falls as 1/sqrt(n)."""

    def roughness(config: LoadConfig) -> float:
        model = LoadModel(config, seed=5, start=T0)
        p = [model.snapshot(T0 + timedelta(hours=2) + k * MIN).phases[0].active_power_mw for k in range(120)]
        mean = sum(p) / len(p)
        return math.sqrt(sum((x - mean) ** 2 for x in p) / len(p)) / mean

    one = roughness(LoadConfig(Feeder(Household.seed_example(), (1, 1, 1))))
    many = roughness(LoadConfig(Feeder(Household.seed_example(), (100, 100, 100))))
    assert many < one / 3


# ---------------------------------------------------------------------------------------------
# Configuration


@pytest.mark.parametrize(
    "build",
    [
        lambda: Appliance("x", 100.0, power_factor=0.0),
        lambda: Appliance("x", -1.0),
        lambda: Appliance("x", 100.0, sessions_per_day=2),  # switched needs rated power
        lambda: UsageProfile((1.0,) * 23),
        lambda: UsageProfile((0.0,) * 24),
        lambda: PeriodTable((Period(0, 5, 1.0), Period(6, 24, 1.0))),
        lambda: TariffWindow(time(7), time(22), 5),
        lambda: TariffSchedule(default_tariff=0),
        lambda: LoadConfig(Household.seed_example(), step=timedelta(minutes=7)),
        lambda: LoadConfig(Household.seed_example(), demand_period=timedelta(minutes=7)),
        lambda: LoadConfig(
            Household.seed_example(),
            tariffs=TariffSchedule((TariffWindow(time(7, 20), time(22), 2),)),
            step=timedelta(minutes=15),
        ),
        lambda: Household((Appliance("x", 1.0, phase=Phase.L2),)),
        lambda: Feeder(Household.seed_example(), (0, 0, 0)),
        lambda: Variability(step_noise=0.5),
        lambda: PvSystem(1000.0, sunrise_hour=19.0, sunset_hour=6.0),
        lambda: ScheduledEvent(EventKind.SAG, T0, timedelta(seconds=1), magnitude=0.95),
        lambda: ScheduledEvent(EventKind.OUTAGE, datetime(2026, 1, 1), timedelta(seconds=1)),  # noqa: DTZ001
        lambda: RandomEvents(EventKind.SWELL, 1.0, MIN, MIN, magnitude=(1.0, 1.2)),
        lambda: BillingConfig(day_of_month=31),
        # Infeasible fit: all energy at night by usage, but the table wants it by day.
        lambda: (
            LoadConfig(
                Household(
                    (Appliance("lamp", 100.0, UsageProfile.windows((20, 24, 1.0))),),
                    period_targets=PeriodTable((Period(0, 12, 1.0), Period(12, 24, 0.0))),
                )
            ).compiled
        ),
        # Rated power too low for the fitted profile.
        lambda: (
            LoadConfig(
                Household(
                    (Appliance("heater", 5000.0, UsageProfile.windows((0, 2, 1.0)), rated_power_w=100.0),)
                )
            ).compiled
        ),
    ],
)
def test_invalid_configuration_is_rejected(build: Callable[[], object]) -> None:
    with pytest.raises(ConfigError):
        build()


def test_usage_windows_and_tariff_windows() -> None:
    assert UsageProfile.windows((22, 2, 1.0)).hourly == (1.0, 1.0) + (0.0,) * 20 + (1.0, 1.0)
    night = TariffSchedule(
        (TariffWindow(time(22), time(6), 3),), default_tariff=1, holidays=frozenset({date(2026, 1, 6)})
    )
    assert night.tariff_at(datetime(2026, 1, 5, 23, 0)) == 3  # noqa: DTZ001 - local wall time
    assert night.tariff_at(datetime(2026, 1, 5, 5, 59)) == 3  # noqa: DTZ001
    assert night.tariff_at(datetime(2026, 1, 5, 6, 0)) == 1  # noqa: DTZ001
    weekday_only = TariffSchedule.peak_offpeak(holidays=[date(2026, 1, 6)])
    assert weekday_only.tariff_at(datetime(2026, 1, 5, 12)) == 2  # noqa: DTZ001 - Monday
    assert weekday_only.tariff_at(datetime(2026, 1, 6, 12)) == 1  # noqa: DTZ001 - holiday
    assert weekday_only.tariff_at(datetime(2026, 1, 10, 12)) == 1  # noqa: DTZ001 - Saturday


def test_configs_are_shared_not_copied() -> None:
    config = LoadConfig(Household.seed_example())
    a = LoadModel(config, seed=1, start=T0)
    b = LoadModel(config, seed=2, start=T0)
    assert a.config.compiled is b.config.compiled
    assert LoadModel(config, seed=1, start=T0 + timedelta(seconds=1)).start == T0 + MIN  # rounded up
    with pytest.raises(ValueError, match="timezone-aware"):
        a.snapshot(datetime(2026, 1, 1))  # noqa: DTZ001
    a.advance(T0 + DAY)
    with pytest.raises(ValueError, match="back"):
        a.advance(T0)


def test_seasonal_and_weekend_factors() -> None:
    variability = Variability(
        step_noise=0.0, day_to_day=0.0, weekend_factor=1.3, seasonal_amplitude=0.25, peak_day_of_year=196
    )
    only_continuous = Household(
        (Appliance("fridge", 1000.0, UsageProfile.flat(), 0.8, 200.0),), period_targets=None
    )
    model = LoadModel(LoadConfig(only_continuous, variability=variability), seed=1, start=T0)

    def day_wh(d: date) -> float:
        start = datetime.combine(d, time(0), tzinfo=UTC)
        return model.energy_between(start, start + DAY).active_import_mj / WH_MJ

    assert day_wh(date(2026, 7, 15)) / day_wh(date(2026, 1, 14)) == pytest.approx(1.25 / 0.75, rel=0.01)
    assert day_wh(date(2026, 7, 18)) / day_wh(date(2026, 7, 17)) == pytest.approx(1.3, rel=0.01)  # Sat/Fri


def test_pv_feeder_and_inverters_tripping_on_a_broken_neutral() -> None:
    noon = T0 + DAY + timedelta(hours=11)
    event = ScheduledEvent(EventKind.BROKEN_NEUTRAL, noon, timedelta(hours=1))
    feeder = Feeder(
        Household.seed_example(pv=PvSystem(3000.0, cloudiness=0.0)), households_per_phase=(20, 10, 5)
    )
    supply = Supply(neighbour_load_w=(0.0, 0.0, 0.0))
    plain = LoadModel(LoadConfig(feeder, supply=supply), seed=2, start=T0)
    model = LoadModel(
        LoadConfig(feeder, supply=supply, events=EventConfig(scheduled=(event,))), seed=2, start=T0
    )
    window = (noon, noon + timedelta(hours=1))
    assert plain.energy_between(*window).active_export_mj > 0  # the feeder's PV exports at noon
    assert model.energy_between(*window).active_export_mj == 0  # inverters off while the neutral is lost
    assert all(p.active_power_mw >= 0 for p in model.snapshot(noon + timedelta(minutes=30)).phases)


def test_random_sags_on_three_phases_hit_one_phase_or_all() -> None:
    config = LoadConfig(
        Household.seed_example(phases=(Phase.L1, Phase.L2, Phase.L3)),
        events=EventConfig(
            random=(RandomEvents(EventKind.SAG, 200.0, timedelta(milliseconds=20), timedelta(seconds=1)),)
        ),
    )
    log = LoadModel(config, seed=3, start=T0).events_between(T0, T0 + 365 * DAY)
    widths = {len(e.phases) for e in log}
    assert widths == {1, 3}
    assert all(e.magnitude == pytest.approx(0.7) for e in log)  # the default residual voltage


def test_timezone_offset_must_fit_the_step() -> None:
    from datetime import timezone

    config = LoadConfig(Household.seed_example(), timezone=timezone(timedelta(seconds=30)))
    with pytest.raises(ConfigError, match="step boundary"):
        LoadModel(config, seed=1, start=T0)


def test_small_accessors(seed_config: LoadConfig) -> None:
    model = LoadModel(seed_config, seed=1, start=T0)
    assert model.seed == 1
    assert "seed=1" in repr(model)
    model.advance(T0 + timedelta(hours=5, minutes=7))
    assert 0 < model.current_demand_energy_mj < model.maximum_demand.energy_mj
    r = model.registers
    assert r.active_import_kwh == Decimal(r.active_import_wh) / 1000
    assert r.active_export_kwh == 0
    interval = model.energy_between(T0, T0 + timedelta(hours=1))
    assert float(interval.active_import_wh) == pytest.approx(interval.active_import_mj / WH_MJ, abs=1e-6)
    with pytest.raises(KeyError):
        model.snapshot(T0).phase(Phase.L2)
    assert TariffSchedule.single().tariff_at(datetime(2026, 1, 5, 12)) == 1  # noqa: DTZ001
