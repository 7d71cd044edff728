"""Simulator layer (DESIGN.md section 1): meters built from the codec in the SERVER role, over any transport.

Rule: a simulator holds no protocol code of its own; the codec decides what is legal and when,
the simulator is the meter application (identification, data, registers, faults) and the async
shell that serves one link, on a :class:`~metercom.transport.SimulatedLine` (virtual time), TCP
or a pty.

* :mod:`metercom.sim.iec21`: :class:`Iec21Meter` (IEC 62056-21 modes A, B, C, E with fault
  injection) and :func:`serve_iec21`; :mod:`metercom.sim.iec21_live` feeds it from the load model.
* :mod:`metercom.sim.dlms`: simulated DLMS/COSEM meters and DLMS fleets; :mod:`metercom.sim.modbus`:
  PZEM-004T and pmtr3 units on a bus.
* Fleets: :mod:`metercom.sim.fleet` (the shared fault syntax :class:`Faults`, fault injection,
  drifting clocks and :func:`fleet_config_toml`, the one head-end configuration writer),
  :mod:`metercom.sim.iec21_fleet` and :mod:`metercom.sim.modbus_fleet`; docs/simulators.md.
"""

from __future__ import annotations

from metercom.sim.fleet import Faults, FleetExport, MeterFaults, fleet_config_toml
from metercom.sim.iec21 import (
    Iec21Faults,
    Iec21Meter,
    Iec21MeterConfig,
    Iec21MeterServer,
    serve_iec21,
)

__all__ = [
    "Faults",
    "FleetExport",
    "Iec21Faults",
    "Iec21Meter",
    "Iec21MeterConfig",
    "Iec21MeterServer",
    "MeterFaults",
    "fleet_config_toml",
    "serve_iec21",
]
