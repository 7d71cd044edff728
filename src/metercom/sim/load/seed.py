"""The seed's example household, and how its figures are read.

The seed (the issue that started the load model) gives two tables for one household:

* appliances with a daily figure: air-conditioner 288, refrigerator 96, rice cooker 54,
  vacuum 59, washing machine 41, computer 27, hair dryer 24, ceiling fan 21, lighting 10,
  laptop 9, aquarium 5, radio 1 (sum 635);
* consumption by period: 00:00-04:59 390, 05:00-05:59 166, 06:00-07:59 126, 08:00-09:59 161,
  10:00-11:59 143, 12:00-14:59 123, 15:00-17:59 102, 18:00-18:59 254, 19:00-22:59 446,
  23:00-23:59 390 (sum 2301).

Neither table states its units, and the two sums disagree, so this module fixes a reading:

* **Appliance figures are daily energies in units of 10 Wh** (``unit_wh``, configurable): the
  household uses 6,350 Wh/day, the air-conditioner 2.88 kWh, the refrigerator 0.96 kWh, the
  radio 10 Wh - plausible for a tropical home (the rice cooker and the night-time load point to
  one). ``daily_energy_wh`` rescales all of them to another total.
* **Period figures are mean power over each period** (W, i.e. Wh per hour;
  :attr:`~metercom.sim.load.config.PeriodKind.MEAN_POWER`), used only as *shares* of the daily
  energy. Evidence: 23:00-23:59 and 00:00-04:59 both read 390, a continuous night load (air
  conditioning) across midnight - read as period totals instead, the single hour 23:00 would
  use as much as the five hours after it. Read this way the table sums to 6,079 Wh/day, within
  5 % of the appliances' 6,350 Wh, which supports the reading; the remaining difference is
  absorbed by using the table for shares only. ``period_kind=PERIOD_ENERGY`` selects the other
  reading (each figure is the period's share of 2,301).

The appliances' usage windows, power factors, rated powers and switching behaviour are not in
the seed; :data:`SEED_TRAITS` states the assumptions. With ``fit_periods`` (the default) the
hourly usage is fitted so the household matches the period shares exactly in expectation while
every appliance keeps its daily energy (see :mod:`metercom.sim.load._compile`). Tolerances:
the expected profile matches the period shares to 1e-9 and each appliance's daily energy
exactly; a simulated meter's realised shares stay within 1 percentage point of the day's energy
over a year (single days vary more: switched appliances run at seeded random times, and the
per-step and day-to-day noise are on top).
"""

from __future__ import annotations

from typing import NamedTuple

from metercom.errors import ConfigError
from metercom.sim.load.config import (
    Appliance,
    Household,
    Period,
    PeriodKind,
    PeriodTable,
    Phase,
    PvSystem,
    UsageProfile,
)

__all__ = ["SEED_APPLIANCE_UNITS", "SEED_PERIODS", "SEED_TRAITS", "seed_household", "seed_period_table"]

#: The seed's appliance table, as given: (name, daily figure in seed units).
SEED_APPLIANCE_UNITS: tuple[tuple[str, int], ...] = (
    ("air-conditioner", 288),
    ("refrigerator", 96),
    ("rice cooker", 54),
    ("vacuum", 59),
    ("washing machine", 41),
    ("computer", 27),
    ("hair dryer", 24),
    ("ceiling fan", 21),
    ("lighting", 10),
    ("laptop", 9),
    ("aquarium", 5),
    ("radio", 1),
)

#: The seed's period table, as given: (start hour, end hour exclusive, figure).
SEED_PERIODS: tuple[tuple[int, int, int], ...] = (
    (0, 5, 390),
    (5, 6, 166),
    (6, 8, 126),
    (8, 10, 161),
    (10, 12, 143),
    (12, 15, 123),
    (15, 18, 102),
    (18, 19, 254),
    (19, 23, 446),
    (23, 24, 390),
)


class Traits(NamedTuple):
    """Assumed behaviour of a seed appliance (not in the seed)."""

    usage: UsageProfile
    power_factor: float
    rated_power_w: float
    sessions_per_day: int
    fitted: bool = True


W = UsageProfile.windows
#: Assumptions for each seed appliance: usage windows (local hours, the prior of the fit), lagging
#: power factor, rated power, runs per day (0 = continuous load) and whether the period fit may
#: reshape it (the refrigerator and the aquarium run around the clock whatever the household
#: does). Motors and compressors ~0.8-0.9, heaters 1.0, switched-mode supplies ~0.9-0.95.
SEED_TRAITS: dict[str, Traits] = {
    "air-conditioner": Traits(W((0, 6, 1.0), (6, 7, 0.3), (12, 17, 0.4), (19, 24, 0.8)), 0.9, 1200.0, 0),
    "refrigerator": Traits(W((10, 20, 0.2), base=1.0), 0.8, 150.0, 0, fitted=False),
    "rice cooker": Traits(W((5, 7, 2.0), (10, 12, 1.5), (17, 20, 2.0)), 1.0, 700.0, 2),
    "vacuum": Traits(W((8, 12, 1.0), (14, 17, 1.0)), 0.9, 1400.0, 1),
    "washing machine": Traits(W((6, 11, 1.0), (14, 18, 1.0), (19, 22, 0.5)), 0.8, 500.0, 1),
    "computer": Traits(W((8, 12, 1.0), (13, 17, 1.0), (19, 23, 1.5)), 0.95, 300.0, 0),
    "hair dryer": Traits(W((5, 8, 2.0), (18, 23, 1.0)), 1.0, 1600.0, 1),
    "ceiling fan": Traits(W((0, 6, 1.0), (10, 17, 1.0), (19, 24, 1.0)), 0.8, 150.0, 0),
    "lighting": Traits(W((5, 7, 1.0), (18, 24, 1.5), (0, 5, 0.2)), 0.9, 200.0, 0),
    "laptop": Traits(W((8, 17, 0.5), (19, 23, 1.0)), 0.9, 90.0, 0),
    "aquarium": Traits(UsageProfile.flat(), 0.9, 50.0, 0, fitted=False),
    "radio": Traits(W((5, 8, 1.0), (18, 22, 0.5)), 0.9, 20.0, 0),
}
del W


def seed_period_table(kind: PeriodKind = PeriodKind.MEAN_POWER) -> PeriodTable:
    """The seed's period table, read as ``kind``."""
    return PeriodTable(tuple(Period(a, b, float(v)) for a, b, v in SEED_PERIODS), kind)


def _balanced_phases(energies: dict[str, float], phases: tuple[Phase, ...]) -> dict[str, Phase]:
    """Greedy balancing: largest appliance first onto the least-loaded phase."""
    load = dict.fromkeys(phases, 0.0)
    placed: dict[str, Phase] = {}
    for name, energy in sorted(energies.items(), key=lambda item: (-item[1], item[0])):
        phase = min(phases, key=lambda p: (load[p], p))
        placed[name] = phase
        load[phase] += energy
    return placed


def seed_household(
    *,
    unit_wh: float = 10.0,
    daily_energy_wh: float | None = None,
    period_kind: PeriodKind = PeriodKind.MEAN_POWER,
    fit_periods: bool = True,
    phases: tuple[Phase, ...] = (Phase.L1,),
    pv: PvSystem | None = None,
) -> Household:
    """Build the seed household (see the module docstring for how the figures are read).

    On three phases the appliances are spread largest-first onto the least-loaded phase.
    """
    if not unit_wh > 0:
        raise ConfigError("unit_wh must be > 0", where="seed_household")
    energies = {name: units * unit_wh for name, units in SEED_APPLIANCE_UNITS}
    placement = _balanced_phases(energies, phases)
    appliances = tuple(
        Appliance(
            name=name,
            daily_energy_wh=energies[name],
            usage=SEED_TRAITS[name].usage,
            power_factor=SEED_TRAITS[name].power_factor,
            rated_power_w=SEED_TRAITS[name].rated_power_w,
            phase=placement[name],
            sessions_per_day=SEED_TRAITS[name].sessions_per_day,
            fitted=SEED_TRAITS[name].fitted,
        )
        for name, _ in SEED_APPLIANCE_UNITS
    )
    return Household(
        appliances=appliances,
        phases=phases,
        daily_energy_wh=daily_energy_wh,
        period_targets=seed_period_table(period_kind) if fit_periods else None,
        pv=pv,
    )
