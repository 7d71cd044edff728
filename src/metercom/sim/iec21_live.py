"""Live IEC 62056-21 readouts from the load model: what a real meter's display list would show.

Rule: the simulated optical-port meter holds no values of its own once this provider is plugged
in (``Iec21MeterConfig(readout_provider=...)``); every readout integrates the load model up to
the clock's ``now()`` and formats its registers and instantaneous values as data sets, so an
IEC 62056-21 meter, a DLMS meter and a Modbus meter built on the same model and seed agree.

The display list follows common German/Austrian practice (VDEW): meter number, local time and
date, energy import/export total and per tariff, reactive energy, maximum demand with its time,
per-phase voltage/current/power, frequency, power factor and the error register ``F.F``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import tzinfo
from decimal import Decimal

from metercom.clock import Clock
from metercom.codec.iec62056_21 import DataSet, parse_data_line
from metercom.sim.load import EventKind, LoadModel

__all__ = ["live_readout"]

# Error-register bits a meter sets while an event is active (manufacturer-specific in reality).
_ERROR_BITS = {EventKind.TAMPER: 0x01, EventKind.COVER_OPEN: 0x02, EventKind.BROKEN_NEUTRAL: 0x04}
# Per-phase OBIS value group C: (voltage, current, active power import).
_PHASE_CODES = ((32, 31, 21), (52, 51, 41), (72, 71, 61))


def _kilo(value_wh: int) -> str:
    return f"{Decimal(value_wh).scaleb(-3):.3f}"


def live_readout(
    model: LoadModel,
    clock: Clock,
    *,
    meter_number: str = "EM72000656621",
    tz: tzinfo | None = None,
    meter_clock: Clock | None = None,
) -> Callable[[], tuple[DataSet, ...]]:
    """A ``readout_provider`` that reads ``model`` at ``clock.now()`` (local time in ``tz``).

    ``meter_clock`` is the meter's own clock for the time and date it shows (a drifting clock,
    :class:`~metercom.sim.fleet.DriftingClock`); the load model always follows ``clock``.
    """
    zone = tz if tz is not None else model.config.timezone

    def provide() -> tuple[DataSet, ...]:
        now = clock.now()
        model.advance(now)
        registers = model.registers
        snapshot = model.snapshot(now)
        local = (meter_clock.now() if meter_clock is not None else now).astimezone(zone)
        lines = [
            f"0.0.0({meter_number})",
            f"0.9.1({local:%H%M%S})",
            f"0.9.2({local:%y%m%d})",
            f"1.8.0({_kilo(registers.active_import_wh)}*kWh)",
        ]
        lines += [
            f"1.8.{tariff}({_kilo(wh)}*kWh)"
            for tariff, wh in enumerate(registers.active_import_tariff_wh, start=1)
            if wh
        ]
        lines += [
            f"2.8.0({_kilo(registers.active_export_wh)}*kWh)",
            f"3.8.0({_kilo(registers.reactive_import_varh)}*kvarh)",
            f"4.8.0({_kilo(registers.reactive_export_varh)}*kvarh)",
        ]
        demand = model.maximum_demand
        stamp = f"({demand.at.astimezone(zone):%y-%m-%d %H:%M})" if demand.at is not None else "()"
        lines.append(f"1.6.0({demand.demand_w.scaleb(-3):.3f}*kW){stamp}")
        for values, (c_voltage, c_current, c_power) in zip(snapshot.phases, _PHASE_CODES, strict=False):
            lines += [
                f"{c_voltage}.7.0({values.voltage_v:.1f}*V)",
                f"{c_current}.7.0({values.current_a:.2f}*A)",
                f"{c_power}.7.0({values.active_power_w / 1000:.3f}*kW)",
            ]
        lines += [
            f"1.7.0({max(snapshot.active_power_w, 0.0) / 1000:.3f}*kW)",
            f"14.7.0({snapshot.frequency_hz:.2f}*Hz)",
            f"13.7.0({snapshot.power_factor:.2f})",
        ]
        error = sum(bit for kind, bit in _ERROR_BITS.items() if kind in snapshot.events)
        lines.append(f"F.F({error:08X})")
        return tuple(dataset for line in lines for dataset in parse_data_line(line))

    return provide
