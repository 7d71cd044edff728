"""Simulated DLMS/COSEM meters: the DLMS server codec over a device profile and the load model.

Rule: the simulator is the same codec run from the other side (DESIGN.md section 1). The object
model (:mod:`.meter`) computes every value on demand from the device profile, the injected clock
and the load model; the serving shells (:mod:`.serve`) run the codec's wrapper, HDLC and
IEC 62056-21 state machines in the server role over any transport, alone or as a fleet.
"""

from __future__ import annotations

from metercom.sim.dlms.meter import (
    ClockState,
    Metrology,
    SimulatedDlmsMeter,
    build_meter,
    default_load_config,
)
from metercom.sim.dlms.serve import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DEFAULT_LLS_PASSWORD,
    DlmsFleet,
    DlmsMeterDevice,
    Faults,
    FleetMeter,
    Quirks,
    association_configs,
    fleet_config_toml,
    push_over_wrapper,
    secret_environment,
    serve_fleet,
)

__all__ = [
    "DEFAULT_AUTHENTICATION_KEY",
    "DEFAULT_ENCRYPTION_KEY",
    "DEFAULT_LLS_PASSWORD",
    "ClockState",
    "DlmsFleet",
    "DlmsMeterDevice",
    "Faults",
    "FleetMeter",
    "Metrology",
    "Quirks",
    "SimulatedDlmsMeter",
    "association_configs",
    "build_meter",
    "default_load_config",
    "fleet_config_toml",
    "push_over_wrapper",
    "secret_environment",
    "serve_fleet",
]
