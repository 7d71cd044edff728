"""Fleets of simulated IEC 62056-21 meters: N optical-port meters behind TCP, one port each.

Rule: a fleet is only N :class:`~metercom.sim.iec21.Iec21Meter` objects, each the codec in the
meter role with its values from the household load model
(:func:`~metercom.sim.iec21_live.live_readout`, seed ``seed + i``), served on consecutive
ports of one host (as behind N TCP modems or a terminal server); faults and the configuration
export come from :mod:`metercom.sim.fleet`, shared with the DLMS and Modbus fleets.

Theory of operation: meter *i* gets the serial number ``SSS0000i`` (``SSS``: the seed), which is
both its identification text and its device address (a reader may also send ``/?!``), and a
reaction time of the template's plus ``latency_ms``. Fleet faults (:class:`~.fleet.Faults`):
``unreachable`` meters do not listen; ``drop`` and ``corrupt`` wrap each link in a
:class:`~.fleet.FaultyTransport` (the identification and the readout are the answers counted);
``wrong_keys`` gives the meter another programming password (P1) than the exported one;
``drift`` shows time and date (``0.9.1``/``0.9.2``) from a :class:`~.fleet.DriftingClock`.
The protocol's own faults (``Iec21Faults``: wrong BCC, silence, garbage, refused speeds,
password lock-out) come with the template and apply to every meter.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError
from metercom.sim.fleet import (
    DriftingClock,
    Faults,
    FaultyTransport,
    FleetExport,
    FleetMeterEntry,
    LinkFaults,
    MeterFaults,
    ServedFleet,
    TomlValue,
    closed_port_url,
    parse_listen,
)
from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig
from metercom.sim.iec21_live import live_readout
from metercom.sim.load import Household, LoadConfig, LoadModel
from metercom.transport import Transport, TransportServer, serve
from metercom.transport.server import Handler

__all__ = ["Iec21Fleet", "Iec21FleetMeter", "serve_iec21_fleet"]

_WRONG_PASSWORD = "87654321"  # noqa: S105 - the simulated meter's "other" password


@dataclass(slots=True)
class Iec21FleetMeter:
    """One meter of an IEC 62056-21 fleet."""

    index: int
    id: str
    serial: str
    meter: Iec21Meter
    url: str = ""
    faults: MeterFaults = field(default_factory=MeterFaults)

    @property
    def reachable(self) -> bool:
        return not self.faults.unreachable


@dataclass(slots=True)
class Iec21Fleet(ServedFleet):
    """Running simulated IEC 62056-21 meters; close with :meth:`close` and :meth:`wait_closed`."""

    meters: list[Iec21FleetMeter]
    password: str | None
    servers: list[TransportServer] = field(default_factory=list)

    def addresses(self) -> list[str]:
        """One line per meter: id, protocol, URL, device address (and its faults)."""
        out = []
        for m in self.meters:
            flags = f" ({m.faults.describe()})" if m.faults.any else ""
            out.append(f"{m.id} iec21 {m.url} address={m.serial}{flags}")
        return out

    def export(self, *, client: int = 16) -> FleetExport:
        """The fleet for :func:`~metercom.sim.fleet.fleet_config_toml` (``client``: DLMS only)."""
        del client
        settings: dict[str, TomlValue] = {}
        secrets: dict[str, str] = {}
        environment: dict[str, str] = {}
        if self.password is not None:
            settings["password"] = "secret:sim_p1"  # noqa: S105 - a secret reference
            secrets["sim_p1"] = "env:METERCOM_SIM_P1"
            environment["METERCOM_SIM_P1"] = self.password
        entries = tuple(
            FleetMeterEntry(
                m.id,
                "iec21",
                {"device": m.serial},
                url=m.url,
                settings=settings,
                description=f"simulated IEC 62056-21 meter {m.meter.identification_text}",
            )
            for m in self.meters
        )
        comments = ["Simulated meters exported by `metercom simulate` (docs/simulators.md)."]
        if self.password is not None:
            comments.append("IEC 62056-21 programming password (P1): METERCOM_SIM_P1.")
        return FleetExport(entries, secrets=secrets, comments=tuple(comments), environment=environment)


async def serve_iec21_fleet(
    n: int,
    listen: str = "tcp://127.0.0.1:0",
    *,
    seed: int = 0,
    latency_ms: float = 0.0,
    faults: Faults | None = None,
    template: Iec21MeterConfig | None = None,
    clock: Clock | None = None,
    announce: Callable[[str], None] | None = None,
    id_prefix: str = "iec21",
) -> Iec21Fleet:
    """Start ``n`` simulated IEC 62056-21 meters, meter *i* on ``port + i`` (port 0: any free).

    ``template`` gives mode, speed, manufacturer, password and protocol faults of every meter;
    identification, device address and values are per meter (see the module docstring).
    """
    if n < 1:
        raise ConfigError(f"a fleet needs at least one meter, got {n}")
    faults = faults or Faults()
    clock = clock or current_clock()
    template = template or Iec21MeterConfig(manufacturer="MTC")
    scheme, host, base_port = parse_listen(listen, ("tcp",))
    if base_port and base_port + n - 1 > 65535:
        raise ConfigError(f"{n} meters from port {base_port} run past port 65535")
    reaction_s = template.reaction_time_s
    if reaction_s is None:
        reaction_s = 0.02 if template.manufacturer[2:3].islower() else 0.2
    rng = random.Random(seed)
    fleet = Iec21Fleet([], template.password)
    config = LoadConfig(Household.seed_example())
    try:
        for i in range(n):
            serial = f"{seed % 1000:03d}{i + 1:05d}"
            chosen = faults.choose(rng)
            model = LoadModel(config, seed=seed + i, start=clock.now())
            provider = live_readout(
                model, clock, meter_number=f"MTC{serial}", meter_clock=DriftingClock.of(clock, chosen)
            )
            password = template.password
            if chosen.wrong_keys and password is not None:
                password = _WRONG_PASSWORD
            meter = Iec21Meter(
                replace(
                    template,
                    ident=serial,
                    device_address=serial,
                    password=password,
                    reaction_time_s=reaction_s + latency_ms / 1000.0,
                    readout_provider=provider,
                    seed=seed * 7919 + i,
                )
            )
            entry = Iec21FleetMeter(i, f"{id_prefix}-{i + 1:04d}", serial, meter, faults=chosen)
            fleet.meters.append(entry)
            if chosen.unreachable:
                entry.url = closed_port_url(scheme, host, base_port, i)
                continue
            port = base_port + i if base_port else 0
            server = await serve(f"{scheme}://{host}:{port}", _handler(meter, chosen, seed * 7919 + i))
            fleet.servers.append(server)
            entry.url = server.url
    except BaseException:
        fleet.close()
        await fleet.wait_closed()
        raise
    if announce is not None:
        for line in fleet.addresses():
            announce(line)
    return fleet


def _handler(meter: Iec21Meter, faults: MeterFaults, seed: int) -> Handler:
    state = LinkFaults.of(faults)
    if not state.active:
        return meter.serve
    rng = random.Random(seed)

    async def handler(transport: Transport) -> None:
        await meter.serve(FaultyTransport(transport, state, rng))

    return handler
