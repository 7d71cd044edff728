"""Fleets of simulated Modbus meters: N units on one bus behind one TCP port (the default), or
one unit per port.

Rule: a fleet is only :class:`~metercom.sim.modbus.SimulatedModbusDevice` units on
:class:`~metercom.sim.modbus.ModbusBus` objects, with values from the household load model
(:class:`~metercom.sim.modbus.LoadModelValues`, seed ``seed + i``); faults and the
configuration export come from :mod:`metercom.sim.fleet`, shared with the DLMS and IEC
62056-21 fleets.

Why one port: Modbus addresses units on a bus, and real installations put many meters behind
one gateway (Modbus TCP) or one RS-485 converter (RTU over TCP). So by default unit
``first_unit + i`` (1..247) sits on the one bus served at the listen URL, and the export has
one ``[[lines]]`` entry (``tcp`` for Modbus TCP, ``converter`` for RTU) that every meter
names. ``one_port=False`` serves each meter as unit ``first_unit`` on a port of its own
(``port + i``), exported with a ``url`` per meter.

Faults (:class:`~.fleet.Faults`): an ``unreachable`` unit is left off the bus (a gateway
answers exception 0x0B, "target device failed to respond", on Modbus TCP; RTU stays silent),
or does not listen on its own port; ``drop`` and ``corrupt`` act on that unit's replies
(:attr:`ModbusBus.unit_faults`): the reply that reaches the drop count is cut and the
connection closed; ``drift`` moves and speeds up the device clock (units with a clock, such
as pmtr3); ``wrong_keys`` does not apply (Modbus has no passwords or keys).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError
from metercom.model.modbus_profile import load_modbus_profile
from metercom.session.modbus import Framing
from metercom.sim.fleet import (
    Faults,
    FleetExport,
    FleetLine,
    FleetMeterEntry,
    LinkFaults,
    MeterFaults,
    ServedFleet,
    closed_port_url,
    parse_listen,
)
from metercom.sim.modbus import LoadModelValues, ModbusBus, SimulatedModbusDevice
from metercom.transport import TransportServer

__all__ = ["ModbusFleet", "ModbusFleetMeter", "serve_modbus_fleet"]


@dataclass(slots=True)
class ModbusFleetMeter:
    """One unit of a Modbus fleet."""

    index: int
    id: str
    unit: int
    device: SimulatedModbusDevice
    url: str = ""
    faults: MeterFaults = field(default_factory=MeterFaults)

    @property
    def reachable(self) -> bool:
        return not self.faults.unreachable


@dataclass(slots=True)
class ModbusFleet(ServedFleet):
    """Running simulated Modbus units; close with :meth:`close` and :meth:`wait_closed`."""

    meters: list[ModbusFleetMeter]
    profile: str
    framing: Framing
    buses: list[ModbusBus] = field(default_factory=list)
    servers: list[TransportServer] = field(default_factory=list)
    shared_url: str | None = None
    line_id: str = "sim-modbus-bus"

    def addresses(self) -> list[str]:
        """One line per unit: id, protocol, URL, unit (and its faults)."""
        out = []
        for m in self.meters:
            flags = f" ({m.faults.describe()})" if m.faults.any else ""
            out.append(f"{m.id} modbus-{self.framing} {m.url} unit={m.unit} {self.profile}{flags}")
        return out

    def export(self, *, client: int = 16) -> FleetExport:
        """The fleet for :func:`~metercom.sim.fleet.fleet_config_toml` (``client``: DLMS only)."""
        del client
        kind = "tcp" if self.framing == "tcp" else "converter"
        lines: tuple[FleetLine, ...] = ()
        if self.shared_url is not None:
            description = f"simulated Modbus {'TCP gateway' if kind == 'tcp' else 'RTU bus behind TCP'}"
            lines = (FleetLine(self.line_id, self.shared_url, kind, description),)
        entries = tuple(
            FleetMeterEntry(
                m.id,
                "modbus",
                {"unit": m.unit},
                url=None if self.shared_url is not None else m.url,
                line=self.line_id if self.shared_url is not None else None,
                settings={"device_profile": self.profile},
                description=f"simulated {self.profile} unit {m.unit}",
            )
            for m in self.meters
        )
        comment = "Simulated meters exported by `metercom simulate` (docs/simulators.md)."
        return FleetExport(entries, lines, comments=(comment,))


async def serve_modbus_fleet(
    n: int,
    listen: str = "tcp://127.0.0.1:0",
    *,
    profile: str = "pzem004t",
    seed: int = 0,
    latency_ms: float = 0.0,
    faults: Faults | None = None,
    framing: Framing = "tcp",
    one_port: bool = True,
    first_unit: int = 1,
    clock: Clock | None = None,
    announce: Callable[[str], None] | None = None,
    id_prefix: str = "modbus",
) -> ModbusFleet:
    """Start ``n`` simulated Modbus units (see the module docstring for the port layout)."""
    if n < 1:
        raise ConfigError(f"a fleet needs at least one meter, got {n}")
    if one_port and not 1 <= first_unit <= first_unit + n - 1 <= 247:
        raise ConfigError(f"one bus holds units 1..247; {n} units from {first_unit} do not fit")
    faults = faults or Faults()
    clock = clock or current_clock()
    scheme, host, base_port = parse_listen(listen, ("tcp",))
    if not one_port and base_port and base_port + n - 1 > 65535:
        raise ConfigError(f"{n} meters from port {base_port} run past port 65535")
    loaded = load_modbus_profile(profile)
    rng = random.Random(seed)
    delay_s = latency_ms / 1000.0
    fleet = ModbusFleet([], loaded.name, framing, line_id=f"sim-{id_prefix}-bus")
    shared = ModbusBus(response_delay_s=delay_s)
    for i in range(n):
        unit = first_unit + i if one_port else first_unit
        chosen = faults.choose(rng)
        start = clock.now()
        values = LoadModelValues.household(loaded.phases, seed=seed + i, start=start)
        device = SimulatedModbusDevice(loaded, unit, values=values, start=start)
        if chosen.drift:
            device.set_clock_drift(chosen.drift_ppm, chosen.clock_offset_s)
        fleet.meters.append(ModbusFleetMeter(i, f"{id_prefix}-{i + 1:04d}", unit, device, faults=chosen))
        if chosen.unreachable:
            continue
        bus = shared if one_port else ModbusBus(response_delay_s=delay_s)
        bus.add(device)
        state = LinkFaults.of(chosen)
        if state.active:
            bus.unit_faults[unit] = (state, random.Random(seed * 7919 + i))
        if not one_port:
            fleet.buses.append(bus)
    try:
        if one_port:
            fleet.buses.append(shared)
            server = await shared.serve_url(f"{scheme}://{host}:{base_port}", framing)
            fleet.servers.append(server)
            fleet.shared_url = server.url
            for m in fleet.meters:
                m.url = server.url
        else:
            buses = iter(fleet.buses)
            for m in fleet.meters:
                if not m.reachable:
                    m.url = closed_port_url(scheme, host, base_port, m.index)
                    continue
                port = base_port + m.index if base_port else 0
                server = await next(buses).serve_url(f"{scheme}://{host}:{port}", framing)
                fleet.servers.append(server)
                m.url = server.url
    except BaseException:
        fleet.close()
        await fleet.wait_closed()
        raise
    if announce is not None:
        for line in fleet.addresses():
            announce(line)
    return fleet
