"""Events of the load model: the event log, seeded random events, and floating-neutral physics.

Rule: events are a pure function of (configuration, seed, time). Scheduled events come from the
configuration; random events are drawn per UTC day from a generator seeded by (meter seed,
event kind's index, day), so the events of any period can be listed again at any time without
having been stored, and a meter's log never depends on when or how often it was asked.

Events that change power (outage, broken neutral) are quantised to the model step - their start
is floored and their end ceiled to step boundaries - because energy integrates step by step;
the log shows those quantised times, which are what the meter's metrology saw. Voltage events
(sag, swell) and flags (tamper, cover open) keep their exact times.

Broken neutral (:func:`floating_star_point`): with the neutral conductor open, the star point of
the loads is no longer held at earth potential. Treating every load as a constant impedance
``Y_k`` (from its power at nominal voltage) fed by the supply EMFs ``E_k`` (equal magnitude,
120 deg apart), Kirchhoff's current law at the floating star point (the phase currents must sum
to zero, there is no neutral path) gives the star point's displacement

    V_N = (Y1 E1 + Y2 E2 + Y3 E3) / (Y1 + Y2 + Y3)

and each load sees ``V_k = E_k - V_N``. The lightest-loaded phase (smallest admittance) is
pulled *away* from the star point and rises, towards line-to-line voltage; the heaviest phase
falls; line-to-line voltages are unchanged. Each load's power scales with ``|V_k / E_k|**2``
(constant impedance), so the meter records more energy on the over-voltage phase. Physical
caveats: real appliances are not constant impedances (electronics draw constant power and trip
on over-voltage), and PV inverters disconnect; the model turns PV off for the duration.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from metercom.sim.load._compile import EPOCH, CompiledLoad, SimEvent
from metercom.sim.load._rng import derive
from metercom.sim.load.config import EventKind, Phase

__all__ = ["DAY_US", "EventRecord", "floating_star_point", "random_events_of_day"]

#: Microseconds in a UTC day.
DAY_US = 86_400_000_000
_SALT_EVENTS = 0x4556454E54  # "EVENT"
_HALF_SQRT3 = 0.8660254037844386
#: Unit supply EMF phasors of L1, L2, L3 (0, -120, +120 degrees).
UNIT_EMF: tuple[complex, complex, complex] = (
    complex(1.0, 0.0),
    complex(-0.5, -_HALF_SQRT3),
    complex(-0.5, _HALF_SQRT3),
)


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One entry of the event log: ``start`` inclusive, ``end`` exclusive, both UTC."""

    kind: EventKind
    start: datetime
    end: datetime
    phases: tuple[Phase, ...]
    magnitude: float | None = None

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def to_record(event: SimEvent, phases: tuple[Phase, ...]) -> EventRecord:
    us = timedelta(microseconds=1)
    return EventRecord(
        kind=event.kind,
        start=EPOCH + event.start_us * us,
        end=EPOCH + event.end_us * us,
        phases=tuple(p for i, p in enumerate(phases) if event.mask >> i & 1),
        magnitude=event.magnitude if event.kind in (EventKind.SAG, EventKind.SWELL) else None,
    )


def floating_star_point(
    loads_va: tuple[complex, complex, complex], neutral_va: complex = 0j
) -> tuple[complex, tuple[complex, complex, complex]]:
    """Star-point displacement and load voltages, per unit of the phase EMF, with the neutral open.

    ``loads_va[k]`` is the complex power ``P + jQ`` the load on L(k+1) draws at nominal voltage
    (any consistent unit); it is taken as a constant impedance with admittance proportional to
    ``conj(S)``. ``neutral_va`` is what a residual neutral path would draw at nominal voltage
    (0 for a fully open neutral). Returns ``(V_N, (V1, V2, V3))`` as phasors relative to the
    EMF magnitude. With no load at all the star point is undefined; it is taken as 0 (voltages
    nominal), which is what a voltmeter on an unloaded installation shows.
    """
    admittances = [s.conjugate() for s in loads_va]
    total = sum(admittances, neutral_va.conjugate())
    weighted = sum((y * e for y, e in zip(admittances, UNIT_EMF, strict=True)), 0j)
    shift = 0j if total == 0 else weighted / total
    v1, v2, v3 = (e - shift for e in UNIT_EMF)
    return shift, (v1, v2, v3)


def _poisson_inverse(u: float, mean: float) -> int:
    """The Poisson(``mean``) count whose CDF first exceeds ``u`` (inverse transform sampling)."""
    p = math.exp(-mean)
    cdf = p
    count = 0
    while u >= cdf and p > 0:
        count += 1
        p *= mean / count
        cdf += p
    return count


def random_events_of_day(c: CompiledLoad, key: int, utc_day: int) -> list[SimEvent]:
    """The random events that start on UTC day ``utc_day`` (days since 1970-01-01)."""
    out: list[SimEvent] = []
    step_us = c.step_us
    n_phases = len(c.phases)
    mask_all = c.all_phases_mask
    for index, spec in enumerate(c.random_events):
        if spec.per_year <= 0:
            continue
        # One hash decides the day's count (most days have none and cost nothing more); only
        # days with events seed a generator for their details.
        h = derive(key, _SALT_EVENTS, index, utc_day)
        count = _poisson_inverse((h >> 11) * 2.0**-53, spec.per_year / 365.25)
        if not count:
            continue
        rnd = random.Random(h)
        low_us = spec.min_duration // timedelta(microseconds=1)
        high_us = spec.max_duration // timedelta(microseconds=1)
        for _ in range(count):
            start_us = utc_day * DAY_US + int(rnd.random() * DAY_US)
            duration_us = max(1, int(low_us * (high_us / low_us) ** rnd.random()))
            u_magnitude, u_split, u_phase = rnd.random(), rnd.random(), rnd.random()
            if spec.magnitude is not None:
                magnitude = spec.magnitude[0] + (spec.magnitude[1] - spec.magnitude[0]) * u_magnitude
            else:
                magnitude = spec.kind.default_magnitude or 1.0
            mask = mask_all
            if spec.kind in (EventKind.SAG, EventKind.SWELL) and n_phases > 1 and u_split < 0.5:
                mask = 1 << min(n_phases - 1, int(u_phase * n_phases))
            end_us = start_us + duration_us
            if spec.kind.affects_power:
                start_us = start_us // step_us * step_us
                end_us = -(-end_us // step_us) * step_us
            out.append(SimEvent(spec.kind, start_us, end_us, mask, magnitude))
    return out
