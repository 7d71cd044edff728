"""Benchmark: the load model (metercom.sim.load) - a simulated year per meter, and a fleet's memory.

Measures, on this machine:

* CPU time (``time.process_time``) to :meth:`LoadModel.advance` one meter over a simulated year
  at 1-minute resolution (525,600 steps), for the seed household alone, the seed household with
  PV, two tariffs and the typical random events, and a three-phase feeder of 120 households;
  the median of ``--repeats`` runs, each on a fresh meter with its own seed;
* memory per meter for a fleet of 1,000 meters sharing one configuration (``tracemalloc``,
  after each meter has advanced and answered a snapshot of another day, so both of its day
  caches are filled; the shared configuration and noise table are built before tracing);
* the cost of :meth:`LoadModel.snapshot` at arbitrary times and of a 15-minute
  :meth:`LoadModel.energy_between` (a load-profile row), and of compiling a configuration.

There is no independent peer to compare with, so absolute numbers are printed, with the
targets from the load-model issue: a year well under 5 s of CPU, and meters cheap enough that a
fleet of 1,000 fits easily. Run: ``.venv/bin/python bench/load_model.py`` (``--quick`` for one
repeat and 200 meters).
"""

from __future__ import annotations

import argparse
import gc
import statistics
import time
import tracemalloc
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from metercom.sim.load import (
    EventConfig,
    Feeder,
    Household,
    LoadConfig,
    LoadModel,
    Phase,
    PvSystem,
    TariffSchedule,
)
from metercom.sim.load._rng import noise_table

START = datetime(2026, 1, 1, tzinfo=UTC)
YEAR = timedelta(days=365)
TARGET_YEAR_CPU_S = 5.0


def configs() -> dict[str, LoadConfig]:
    seed = Household.seed_example()
    return {
        "seed household, 1 phase": LoadConfig(seed),
        "seed household + PV 4 kW, 2 tariffs, random events": LoadConfig(
            Household.seed_example(pv=PvSystem(4000.0)),
            tariffs=TariffSchedule.peak_offpeak(),
            events=EventConfig.typical(),
        ),
        "seed household on 3 phases + PV 6 kW": LoadConfig(
            Household.seed_example(phases=(Phase.L1, Phase.L2, Phase.L3), pv=PvSystem(6000.0))
        ),
        "feeder, 3 x 40 households": LoadConfig(Feeder(seed, (40, 40, 40))),
    }


def year_cpu_s(config: LoadConfig, repeats: int) -> tuple[float, int]:
    """Median CPU seconds to advance a fresh meter one year; and its import register (Wh)."""
    times = []
    wh = 0
    for seed in range(repeats):
        meter = LoadModel(config, seed=seed, start=START)
        started = time.process_time()
        meter.advance(START + YEAR)
        times.append(time.process_time() - started)
        wh = meter.registers.active_import_wh
    return statistics.median(times), wh


def per_call_us(fn: Callable[[int], object], count: int) -> float:
    started = time.perf_counter()
    for k in range(count):
        fn(k)
    return (time.perf_counter() - started) / count * 1e6


def fleet_bytes_per_meter(config: LoadConfig, meters: int) -> float:
    """Traced bytes per meter for ``meters`` meters sharing ``config`` (compiled beforehand)."""
    config.compiled  # noqa: B018 - compile outside the measurement: it is shared
    noise_table()
    LoadModel(config, seed=-1, start=START).advance(START + timedelta(days=1))  # warm caches
    gc.collect()
    tracemalloc.start()
    before, _ = tracemalloc.get_traced_memory()
    fleet = []
    for seed in range(meters):
        meter = LoadModel(config, seed=seed, start=START)
        # An hour fills the same state a year would (a few integers, a cached day); longer runs
        # only cost time here, as tracing slows allocation tenfold.
        meter.advance(START + timedelta(minutes=60 + seed % 60))
        meter.snapshot(START + timedelta(days=200))
        fleet.append(meter)
    gc.collect()
    after, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return (after - before) / len(fleet)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one repeat, 200 meters")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--meters", type=int, default=1000)
    args = parser.parse_args(argv)
    repeats = 1 if args.quick else args.repeats
    meters = 200 if args.quick else args.meters

    started = time.process_time()
    noise_table()
    print(f"noise table (once per process): {time.process_time() - started:.3f} s CPU")
    all_configs = configs()
    for name, config in all_configs.items():
        started = time.process_time()
        config.compiled  # noqa: B018 - compile and cache
        print(f"compile [{name}]: {(time.process_time() - started) * 1e3:.1f} ms CPU")

    print(f"\nOne meter, one simulated year at 1-minute steps (525,600 steps), median of {repeats}:")
    for name, config in all_configs.items():
        cpu_s, wh = year_cpu_s(config, repeats)
        verdict = "ok" if cpu_s < TARGET_YEAR_CPU_S else "ABOVE TARGET"
        steps_per_s = 525_600 / cpu_s
        print(
            f"  {name}: {cpu_s:.3f} s CPU ({steps_per_s:,.0f} steps/s; "
            f"target < {TARGET_YEAR_CPU_S:g} s: {verdict}); import {wh / 1000:,.1f} kWh"
        )

    config = all_configs["seed household + PV 4 kW, 2 tariffs, random events"]
    meter = LoadModel(config, seed=1, start=START)
    snap_us = per_call_us(lambda k: meter.snapshot(START + timedelta(minutes=7919 * k)), 5000)
    near_us = per_call_us(lambda k: meter.snapshot(START + timedelta(seconds=13 * k)), 5000)
    row_us = per_call_us(
        lambda k: meter.energy_between(
            START + timedelta(minutes=15 * k), START + timedelta(minutes=15 * k + 15)
        ),
        2000,
    )
    print("\nPer call (seed household + PV, tariffs, events):")
    print(f"  snapshot at a random time (new day each call): {snap_us:.1f} us")
    print(f"  snapshot at successive times (same day):       {near_us:.1f} us")
    print(f"  energy_between over 15 min (profile row):      {row_us:.1f} us")

    print(f"\nFleet of {meters} meters sharing one configuration (tracemalloc):")
    for name in ("seed household + PV 4 kW, 2 tariffs, random events", "feeder, 3 x 40 households"):
        per_meter = fleet_bytes_per_meter(all_configs[name], meters)
        print(
            f"  [{name}]: {per_meter / 1024:.1f} KiB per meter, {per_meter * meters / 2**20:.1f} MiB in all"
        )


if __name__ == "__main__":
    main()
