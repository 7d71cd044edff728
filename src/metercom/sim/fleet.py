"""What every simulated fleet shares: fault specs, fault injection on a link, drifting meter
clocks, listen URLs and the export of running fleets as one head-end configuration file.

Rule: nothing here knows a protocol. The DLMS (:mod:`metercom.sim.dlms`), IEC 62056-21
(:mod:`metercom.sim.iec21_fleet`) and Modbus (:mod:`metercom.sim.modbus_fleet`) fleets each
describe themselves as a :class:`FleetExport` (lines, meters, secret references) and
:func:`fleet_config_toml` is the only TOML writer, so one file can hold meters of all three
protocols (``fleet_config_toml(dlms_fleet, iec21_fleet, modbus_fleet)``). Secrets are never
written: passwords and keys are ``env:`` references (docs/configuration.md).

Theory of operation:

* :class:`Faults` is the one fault syntax of ``metercom simulate dlms|iec21|modbus --faults``
  (docs/simulators.md): each fault names the fraction of a fleet's meters it affects,
  ``unreachable=0.1,drop=0.05:3,corrupt=0.2:10,wrong-keys=0.1,drift=0.2:-500:30``.
  :meth:`Faults.choose` draws one meter's share (:class:`MeterFaults`) from the fleet's seeded
  random generator, in a fixed order, so a seed always picks the same meters.
* :class:`LinkFaults` is the per-meter state the serving loops consult: ``outgoing()`` flips a
  byte in about one answer in N, ``should_drop()`` tells when the link must close.
  :class:`FaultyTransport` applies it to any :class:`~metercom.transport.Transport` by wrapping
  the one a handler gets: the answer that reaches the drop count is cut at a seeded random
  point and the link closed (the reader sees a connection lost in the middle of an answer).
* :class:`DriftingClock` is a meter's own clock: the running clock plus a fixed offset plus
  ``ppm`` parts per million of the time elapsed since it was made (negative: slow).
"""

from __future__ import annotations

import asyncio
import datetime as _dt
import json
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol, Self, TextIO

from metercom.clock import Clock
from metercom.errors import ConfigError, ConnectionLost, InputError
from metercom.transport import TransportServer
from metercom.transport.base import LineSettings, Transport

__all__ = [
    "DriftingClock",
    "Faults",
    "FaultyTransport",
    "FleetExport",
    "FleetLine",
    "FleetMeterEntry",
    "LinkFaults",
    "MeterFaults",
    "ServedFleet",
    "SimulatedFleet",
    "closed_port_url",
    "export_environment",
    "fleet_config_toml",
    "parse_listen",
    "run_fleets",
]

_FAULT_NAMES = ("unreachable", "drop", "corrupt", "wrong_keys", "drift")
_FAULT_HELP = "unreachable=F, drop=F[:N], corrupt=F[:N], wrong-keys=F, drift=F[:PPM[:OFFSET_S]]"


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


class ServedFleet:
    """The listener lifecycle every fleet shares: ``close``, ``wait_closed``, ``async with``."""

    __slots__ = ()
    servers: list[TransportServer]

    def close(self) -> None:
        for server in self.servers:
            server.close()

    async def wait_closed(self) -> None:
        for server in self.servers:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.close()
        await self.wait_closed()


@dataclass(frozen=True, slots=True)
class MeterFaults:
    """The faults one meter of a fleet shows (drawn by :meth:`Faults.choose`)."""

    unreachable: bool = False
    #: Close the link after this many answers (``None``: never).
    drop_after: int | None = None
    #: About one answer in this many has a byte flipped (``None``: never).
    corrupt_every: int | None = None
    wrong_keys: bool = False
    drift: bool = False
    drift_ppm: float = 0.0
    #: Offset of the meter's clock at start, seconds (positive: ahead).
    clock_offset_s: float = 0.0

    @property
    def any(self) -> bool:
        return (
            self.unreachable
            or self.drop_after is not None
            or self.corrupt_every is not None
            or self.wrong_keys
            or self.drift
        )

    def describe(self) -> str:
        """A short tag for the address listing, e.g. ``unreachable``, ``drop@3 corrupt/10``."""
        parts = []
        if self.unreachable:
            parts.append("unreachable")
        if self.drop_after is not None:
            parts.append(f"drop@{self.drop_after}")
        if self.corrupt_every is not None:
            parts.append(f"corrupt/{self.corrupt_every}")
        if self.wrong_keys:
            parts.append("wrong-keys")
        if self.drift:
            parts.append(f"drift {self.drift_ppm:+g}ppm {self.clock_offset_s:+.0f}s")
        return " ".join(parts)


@dataclass(frozen=True, slots=True)
class Faults:
    """Which faults a fleet injects: each fraction (0..1) is the share of meters affected.

    ``unreachable``: the meter does not listen (own port) or stays silent (shared port).
    ``drop``: the meter closes the link after 1..``drop_max`` answers. ``corrupt``: about one
    answer in ``corrupt_every`` has one byte flipped. ``wrong_keys``: the meter's passwords and
    keys differ from the exported configuration (DLMS LLS password and keys, IEC 62056-21 P1
    password; Modbus has none). ``drift``: the clock runs ``drift_ppm`` fast (negative: slow)
    and starts ``drift_offset_s`` off (``None``: a seeded offset within five minutes).
    """

    unreachable: float = 0.0
    drop: float = 0.0
    corrupt: float = 0.0
    wrong_keys: float = 0.0
    drift: float = 0.0
    drift_ppm: float = 500.0
    drift_offset_s: float | None = None
    corrupt_every: int = 20
    drop_max: int = 5

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Faults:
        """``["unreachable=0.1", "drop=0.05:3", "corrupt=1:1", "wrong-keys", "drift=0.2:-500:30"]``.

        Items may also be comma-separated in one text. A bare name affects every meter. After
        the fraction: ``drop`` takes the largest answer count before the link closes,
        ``corrupt`` the N of "one answer in N", ``drift`` the rate in ppm and a fixed offset in
        seconds.
        """
        faults = cls()
        for spec in specs:
            for item in spec.split(","):
                text = item.strip()
                if text:
                    faults = faults._with(text)
        return faults

    def _with(self, text: str) -> Faults:
        name, _, value = text.partition("=")
        key = name.strip().lower().replace("-", "_")
        if key not in _FAULT_NAMES:
            raise InputError(f"unknown fault {name.strip()!r}; known: {_FAULT_HELP}")
        fraction_text, *extra = value.split(":") if value else [""]
        try:
            fraction = float(fraction_text) if fraction_text.strip() else 1.0
            if not 0.0 <= fraction <= 1.0:
                raise InputError(f"fault {text!r}: the fraction must be within 0..1")
            faults = replace(self, **{key: fraction})  # type: ignore[arg-type]
            limit = {"drop": 1, "corrupt": 1, "drift": 2}.get(key, 0)
            if len(extra) > limit:
                raise InputError(f"fault {text!r}: too many ':' values; syntax: {_FAULT_HELP}")
            if key == "drop" and extra:
                faults = replace(faults, drop_max=_positive_int(extra[0], text))
            elif key == "corrupt" and extra:
                faults = replace(faults, corrupt_every=_positive_int(extra[0], text))
            elif key == "drift" and extra:
                if extra[0].strip():
                    faults = replace(faults, drift_ppm=float(extra[0]))
                if len(extra) > 1:
                    faults = replace(faults, drift_offset_s=float(extra[1]))
        except ValueError as exc:
            raise InputError(f"fault {text!r}: {exc}; syntax: {_FAULT_HELP}") from exc
        return faults

    def choose(self, rng: random.Random) -> MeterFaults:
        """One meter's faults, drawn in a fixed order from the fleet's generator."""
        wrong = rng.random() < self.wrong_keys
        unreachable = rng.random() < self.unreachable
        drop_after = rng.randint(1, self.drop_max) if rng.random() < self.drop else None
        corrupt_every = max(self.corrupt_every, 1) if rng.random() < self.corrupt else None
        if rng.random() < self.drift:
            offset = rng.uniform(-300, 300) if self.drift_offset_s is None else self.drift_offset_s
            return MeterFaults(unreachable, drop_after, corrupt_every, wrong, True, self.drift_ppm, offset)
        return MeterFaults(unreachable, drop_after, corrupt_every, wrong)


def _positive_int(text: str, spec: str) -> int:
    value = int(text)
    if value < 1:
        raise InputError(f"fault {spec!r}: {value} must be at least 1")
    return value


@dataclass(slots=True)
class LinkFaults:
    """One meter's fault state, shared by all its links (see the module docstring)."""

    unreachable: bool = False
    drop_after: int | None = None
    corrupt_every: int | None = None
    answers: int = 0

    @classmethod
    def of(cls, faults: MeterFaults) -> LinkFaults:
        return cls(faults.unreachable, faults.drop_after, faults.corrupt_every)

    @property
    def active(self) -> bool:
        """True when answers may be corrupted or links dropped."""
        return self.drop_after is not None or self.corrupt_every is not None

    def outgoing(self, data: bytes, rng: random.Random) -> bytes:
        """Count one answer and flip one byte of it now and then (``corrupt_every``)."""
        self.answers += 1
        if self.corrupt_every and data and rng.randrange(self.corrupt_every) == 0:
            i = rng.randrange(len(data))
            data = data[:i] + bytes((data[i] ^ 0x5A,)) + data[i + 1 :]
        return data

    def should_drop(self) -> bool:
        return self.drop_after is not None and self.answers >= self.drop_after


class FaultyTransport(Transport):
    """A served link with a meter's :class:`LinkFaults` applied to what the meter writes."""

    def __init__(self, inner: Transport, faults: LinkFaults, rng: random.Random) -> None:
        self.inner = inner
        self.faults = faults
        self.rng = rng
        self.url = inner.url
        self.datagram = inner.datagram

    @property
    def line(self) -> LineSettings | None:
        return self.inner.line

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout_s=timeout_s)

    async def write(self, data: bytes) -> None:
        data = self.faults.outgoing(data, self.rng)
        if self.faults.should_drop():
            self.faults.answers = 0
            cut = self.rng.randrange(len(data)) if data else 0
            if cut:
                await self.inner.write(data[:cut])
                await self.inner.drain()
            await self.inner.close()
            raise ConnectionLost(f"{self.url}: simulated fault: link dropped in the middle of an answer")
        await self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    async def set_line(self, settings: LineSettings) -> None:
        await self.inner.set_line(settings)

    def discard_input(self) -> None:
        self.inner.discard_input()

    async def close(self) -> None:
        await self.inner.close()


class DriftingClock:
    """A meter's own clock: ``inner`` plus ``offset_s`` plus ``ppm`` of the elapsed time."""

    def __init__(self, inner: Clock, *, offset_s: float = 0.0, ppm: float = 0.0) -> None:
        self.inner = inner
        self.offset_s = offset_s
        self.ppm = ppm
        self._since = inner.monotonic()

    @classmethod
    def of(cls, inner: Clock, faults: MeterFaults) -> Clock:
        """``inner`` itself for a meter without drift, else a drifting clock."""
        if not faults.drift:
            return inner
        return cls(inner, offset_s=faults.clock_offset_s, ppm=faults.drift_ppm)

    def monotonic(self) -> float:
        return self.inner.monotonic()

    def now(self) -> _dt.datetime:
        elapsed_s = self.inner.monotonic() - self._since
        return self.inner.now() + _dt.timedelta(seconds=self.offset_s + elapsed_s * self.ppm * 1e-6)

    def __repr__(self) -> str:
        return f"<DriftingClock {self.offset_s:+g} s {self.ppm:+g} ppm of {self.inner!r}>"


# --------------------------------------------------------------------------------------------
# Listening
# --------------------------------------------------------------------------------------------


def parse_listen(listen: str, schemes: Sequence[str] = ("tcp", "udp")) -> tuple[str, str, int]:
    """``tcp://host:port`` -> ``("tcp", host, port)``; ConfigError for anything else."""
    scheme, sep, rest = listen.partition("://")
    if not sep or scheme not in schemes:
        forms = " or ".join(f"{s}://host:port" for s in schemes)
        raise ConfigError(f"listen URL must be {forms}, got {listen!r}")
    host, _, port_text = rest.rpartition(":")
    try:
        port = int(port_text.split("?")[0].strip("/"))
    except ValueError as exc:
        raise ConfigError(f"listen URL {listen!r} has no port number") from exc
    if not 0 <= port <= 65535:
        raise ConfigError(f"listen URL {listen!r}: port {port} is out of range")
    return scheme, host or "127.0.0.1", port


def closed_port_url(scheme: str, host: str, base_port: int, index: int) -> str:
    """Where an unreachable meter "listens": its own port when ports are given, else port 9
    (discard, closed on any test machine)."""
    return f"{scheme}://{host}:{base_port + index if base_port else 9}"


# --------------------------------------------------------------------------------------------
# Export
# --------------------------------------------------------------------------------------------

TomlValue = str | int | float | bool | Sequence["TomlValue"] | Mapping[str, "TomlValue"]


@dataclass(frozen=True, slots=True)
class FleetLine:
    """A ``[[lines]]`` entry: a link several meters share."""

    id: str
    url: str
    type: str
    description: str = ""
    extra: Mapping[str, TomlValue] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FleetMeterEntry:
    """A ``[[meters]]`` entry. Exactly one of ``url`` and ``line`` is set."""

    id: str
    protocol: str
    address: Mapping[str, TomlValue]
    url: str | None = None
    line: str | None = None
    settings: Mapping[str, TomlValue] = field(default_factory=dict)
    description: str = ""


@dataclass(frozen=True, slots=True)
class FleetExport:
    """One fleet as the head-end sees it; ``secrets`` maps ``[secrets]`` names to references."""

    meters: tuple[FleetMeterEntry, ...]
    lines: tuple[FleetLine, ...] = ()
    secrets: Mapping[str, str] = field(default_factory=dict)
    comments: tuple[str, ...] = ()
    environment: Mapping[str, str] = field(default_factory=dict)


class SimulatedFleet(Protocol):
    """What every running fleet offers (DLMS, IEC 62056-21, Modbus)."""

    def addresses(self) -> list[str]: ...

    def export(self, *, client: int = 16) -> FleetExport: ...

    def close(self) -> None: ...

    async def wait_closed(self) -> None: ...


def _toml(value: TomlValue) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are TOML basic strings
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, Mapping):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return "[" + ", ".join(_toml(v) for v in value) + "]"


def _table(header: str, items: Mapping[str, TomlValue | None]) -> list[str]:
    lines = [header]
    lines += [f"{key} = {_toml(value)}" for key, value in items.items() if value not in (None, "")]
    return [*lines, ""]


def fleet_config_toml(
    *fleets: SimulatedFleet | FleetExport,
    client: int = 16,
    name: str = "simulated-fleet",
    group: str = "simulated",
) -> str:
    """Running fleets (any protocols, any number) as one head-end configuration
    (docs/configuration.md, ``format_version = 1``) that
    :func:`metercom.service.config.parse_config` accepts.

    ``client`` is the DLMS client SAP the head-end reads with (16 public, 32 LLS reader,
    1 HLS-GMAC management); the other protocols ignore it. Every meter joins ``group``.
    Raises ConfigError when two fleets use the same meter or line id.
    """
    exports = [f if isinstance(f, FleetExport) else f.export(client=client) for f in fleets]
    if not exports:
        raise ConfigError("nothing to export: no fleet given")
    seen: set[str] = set()
    for export in exports:
        for item_id in [m.id for m in export.meters] + [line.id for line in export.lines]:
            if item_id in seen:
                raise ConfigError(f"two simulated meters or lines are called {item_id!r}; use distinct ids")
            seen.add(item_id)
    comments = dict.fromkeys(c for e in exports for c in e.comments)
    out = [f"# {c}" for c in comments]
    out += ["format_version = 1", ""]
    out += _table("[service]", {"name": name, "timezone": "UTC"})
    secrets = {k: v for e in exports for k, v in e.secrets.items()}
    if secrets:
        out += _table("[secrets]", secrets)
    for export in exports:
        for line in export.lines:
            items: dict[str, TomlValue | None] = {"id": line.id, "url": line.url, "type": line.type}
            items.update(line.extra)
            items["description"] = line.description
            out += _table("[[lines]]", items)
    for export in exports:
        for meter in export.meters:
            items = {"id": meter.id, "protocol": meter.protocol}
            items["line" if meter.line is not None else "url"] = meter.line or meter.url
            items["address"] = meter.address
            items.update(meter.settings)
            items["groups"] = [group]
            items["description"] = meter.description
            out += _table("[[meters]]", items)
    out += _table("[[groups]]", {"id": group})
    return "\n".join(out)


def export_environment(*fleets: SimulatedFleet | FleetExport, client: int = 16) -> dict[str, str]:
    """The environment variables (test secrets) a head-end needs to read exported fleets."""
    exports = [f if isinstance(f, FleetExport) else f.export(client=client) for f in fleets]
    return {k: v for e in exports for k, v in e.environment.items()}


async def run_fleets(
    fleets: Sequence[SimulatedFleet],
    *,
    out: TextIO,
    export_path: str | None = None,
    client: int = 16,
    stop: asyncio.Event | None = None,
    ready: Callable[[list[str]], None] | None = None,
) -> int:
    """What ``metercom simulate ... --meters N`` does once its fleets run: print their
    addresses, write the configuration to ``export_path`` (with the environment its secrets
    need), call ``ready`` with the printed lines, serve until ``stop`` is set (or forever),
    and close them."""
    try:
        lines = [line for fleet in fleets for line in fleet.addresses()]
        for line in lines:
            print(line, file=out)
        if export_path:
            text = fleet_config_toml(*fleets, client=client)
            await asyncio.to_thread(Path(export_path).write_text, text, encoding="utf-8")
            env = " ".join(f"{k}={v}" for k, v in export_environment(*fleets, client=client).items())
            print(f"config written to {export_path}" + (f"; test secrets: {env}" if env else ""), file=out)
        out.flush()
        if ready is not None:
            ready(lines)
        await (stop.wait() if stop is not None else asyncio.Event().wait())
    finally:
        for fleet in fleets:
            fleet.close()
        for fleet in fleets:
            await fleet.wait_closed()
    return 0
