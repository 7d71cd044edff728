"""Simulator layer (DESIGN.md section 1): meters built from the codec in the SERVER role, over any transport.

Rule: a simulator holds no protocol code of its own; the codec decides what is legal and when,
the simulator is the meter application (identification, data, registers, faults) and the async
shell that serves one link, on a :class:`~metercom.transport.SimulatedLine` (virtual time), TCP
or a pty.

* :mod:`metercom.sim.iec21`: :class:`Iec21Meter` (IEC 62056-21 modes A, B, C, E with fault
  injection) and :func:`serve_iec21`.
"""

from __future__ import annotations

from metercom.sim.iec21 import (
    Iec21Faults,
    Iec21Meter,
    Iec21MeterConfig,
    Iec21MeterServer,
    serve_iec21,
)

__all__ = ["Iec21Faults", "Iec21Meter", "Iec21MeterConfig", "Iec21MeterServer", "serve_iec21"]
