"""The load model shared by every simulated meter: what a household or a feeder draws, when.

Rule: the model is a pure, deterministic function of (configuration, seed, time). It reads no
clock, does no I/O and needs no asyncio; callers pass timezone-aware datetimes (a
:class:`~metercom.clock.VirtualClock`'s ``now()`` to run a year in seconds, the system clock's
in real time). The same configuration, seed and times always give the same values, on any
machine; a different seed gives a different but statistically identical meter.

Theory of operation (details in each module's docstring):

* :mod:`.config` - immutable configuration: :class:`Appliance` objects in a :class:`Household`
  (or a three-phase :class:`Feeder` of households), supply, variability, tariffs, events,
  billing, time step. :meth:`Household.seed_example` is the seed's household; :mod:`.seed`
  states how its unit-less figures are read (appliance figures = 10 Wh/day units, period
  figures = mean power, used as shares).
* :mod:`._compile` - once per configuration: appliances' hourly usage fitted to the period
  table (iterative proportional fitting), per-phase expected profiles per step of the day,
  switched-appliance runs, tariff tables. Shared by every meter.
* :mod:`.model` - :class:`LoadModel`, one per meter: :meth:`LoadModel.snapshot` (voltage,
  current, P, Q, S, power factor, angles, frequency, events at any instant, O(1)) and
  :meth:`LoadModel.advance` (exact integer energy registers, per phase, per tariff, import and
  export, reactive, maximum demand, billing resets).
* :mod:`.events` - outages, sags, swells, broken neutral (floating star point physics),
  tamper and cover-open flags; scheduled or seeded random; :meth:`LoadModel.events_between`
  lists them for a meter's event log.

Example::

    from datetime import UTC, datetime
    from metercom.sim.load import Household, LoadConfig, LoadModel

    config = LoadConfig(Household.seed_example())       # build once, share between meters
    meter = LoadModel(config, seed=42, start=datetime(2026, 1, 1, tzinfo=UTC))
    meter.advance(datetime(2027, 1, 1, tzinfo=UTC))      # a year: about 0.3-0.5 s of CPU
    meter.registers.active_import_wh, meter.maximum_demand.demand_w
    meter.snapshot(datetime(2026, 7, 1, 19, 30, tzinfo=UTC)).phases[0].voltage_v
"""

from __future__ import annotations

from metercom.sim.load.config import (
    MAX_TARIFFS,
    Appliance,
    BillingConfig,
    EventConfig,
    EventKind,
    Feeder,
    Household,
    LoadConfig,
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
)
from metercom.sim.load.events import EventRecord, floating_star_point
from metercom.sim.load.model import (
    BillingRecord,
    IntervalEnergy,
    LoadModel,
    MaximumDemand,
    MeterSnapshot,
    PhaseValues,
    Registers,
)

__all__ = [
    "MAX_TARIFFS",
    "Appliance",
    "BillingConfig",
    "BillingRecord",
    "EventConfig",
    "EventKind",
    "EventRecord",
    "Feeder",
    "Household",
    "IntervalEnergy",
    "LoadConfig",
    "LoadModel",
    "MaximumDemand",
    "MeterSnapshot",
    "Period",
    "PeriodKind",
    "PeriodTable",
    "Phase",
    "PhaseValues",
    "PvSystem",
    "RandomEvents",
    "Registers",
    "ScheduledEvent",
    "Supply",
    "TariffSchedule",
    "TariffWindow",
    "UsageProfile",
    "Variability",
    "floating_star_point",
]
