"""Meters as the head-end sees them: one protocol-neutral session interface, adapters per protocol,
and the pool of links they run over.

Rule: the collector, the commands and gap recovery talk to every meter through
:class:`MeterSession` only, and never import a protocol module. What a protocol cannot do is
stated up front in :class:`Capabilities`; calling it anyway raises :class:`NotSupportedError`
(an :class:`~metercom.errors.InputError`: the request was wrong, not the meter), so a command
for a disconnect on an IEC 62056-21 meter fails before any byte is sent.

Theory of operation:

* The scheduler decides *when* a meter may talk (one conversation at a time per serial line or
  bus). For each conversation it borrows a link from :class:`LinkPool` (serial links stay open
  between conversations and are reopened after a transport failure; TCP and UDP links are opened
  per conversation, so several run in parallel), builds a session with a
  :data:`SessionFactory` (default :func:`open_meter_session`, which dispatches on the meter's
  protocol) and closes it when the conversation ends.
* An adapter turns its protocol's answers into :class:`CollectedData`: readings (with scaling
  applied by ``model``), profile rows and events keyed by the meter's own time stamps in UTC,
  and the meter's clock if the protocol reports it.
* Secrets are resolved only when a session is built, through the configuration
  (``FleetConfig.resolve_secret``), and go straight to the protocol session; they are never
  logged or kept here.

Adapters: IEC 62056-21 (:class:`Iec21MeterSession`: readout; clock read from ``0.9.1``/``0.9.2``
of the readout and set in programming mode with ``W1``); DLMS/COSEM and Modbus in
:mod:`metercom.service.adapters` (:class:`~metercom.service.adapters.DlmsMeterSession`,
:class:`~metercom.service.adapters.ModbusMeterSession`), built by its
:class:`~metercom.service.adapters.MeterSessionFactory`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from types import MappingProxyType
from typing import Protocol, runtime_checkable
from zoneinfo import ZoneInfo

from metercom.errors import ConfigError, InputError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.config_model import (
    FleetConfig,
    Iec21Address,
    LineConfig,
    MeterConfig,
    QuirkValue,
    ReadPlan,
)
from metercom.service.config_model import Protocol as MeterProtocol
from metercom.service.store import MeterEvent, ProfileRow
from metercom.session.iec21 import READOUT_IDLE_S, Iec21Session
from metercom.transport import LineSettings, Transport, open_transport

__all__ = [
    "Borrowed",
    "Capabilities",
    "CollectedData",
    "Iec21MeterSession",
    "LinkOpener",
    "LinkPool",
    "MeterContext",
    "MeterSession",
    "NotSupportedError",
    "SessionFactory",
    "open_meter_session",
    "same_quantity",
]

log = logging.getLogger(__name__)


class NotSupportedError(InputError):
    """The meter's protocol (or its adapter) cannot do what was asked."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a :class:`MeterSession` can do."""

    #: Read registers (``ReadPlan.objects``) and arbitrary objects on demand.
    registers: bool = True
    #: Read load profiles, with selective access by time range.
    profiles: bool = False
    #: Read event logs.
    events: bool = False
    #: Read the meter's clock.
    read_clock: bool = False
    #: Set the meter's clock.
    set_clock: bool = False
    #: Open/close the supply relay and read its state back.
    relay: bool = False


@dataclass(frozen=True, slots=True)
class CollectedData:
    """What one read of a plan brought back.

    ``profile_rows`` and ``events`` are keyed by the profile's or log's canonical OBIS text.
    ``meter_time`` is the meter's clock as it reported it (UTC), when the protocol gives it;
    ``raw`` the bytes as received where the protocol has one message for the whole read.
    """

    readings: tuple[Reading, ...] = ()
    profile_rows: Mapping[str, tuple[ProfileRow, ...]] = field(default_factory=lambda: MappingProxyType({}))
    events: Mapping[str, tuple[MeterEvent, ...]] = field(default_factory=lambda: MappingProxyType({}))
    meter_time: datetime | None = None
    raw: bytes = b""
    #: Plan items the meter did not deliver (OBIS text), for the status page.
    missing: tuple[str, ...] = ()


@runtime_checkable
class MeterSession(Protocol):
    """One conversation with one meter; see the module docstring.

    A session is built for one conversation and closed after it. Methods the
    :attr:`capabilities` do not offer raise :class:`NotSupportedError`.
    """

    @property
    def capabilities(self) -> Capabilities: ...

    async def read(self, plan: ReadPlan, *, since: Mapping[str, datetime], now: datetime) -> CollectedData:
        """Read a plan: its registers, and its profiles and logs from ``since[obis]`` (or the
        plan's history before ``now``) up to ``now``."""
        ...

    async def read_objects(self, objects: Sequence[Obis]) -> list[Reading]:
        """Read these objects now."""
        ...

    async def read_profile(self, obis: Obis, start: datetime, end: datetime) -> list[ProfileRow]:
        """Rows of a profile captured in ``start``..``end`` (both inclusive, selective access)."""
        ...

    async def read_clock(self) -> datetime:
        """The meter's clock, UTC."""
        ...

    async def set_clock(self, when: datetime) -> None:
        """Set the meter's clock to ``when``."""
        ...

    async def read_relay(self) -> bool:
        """True when the supply relay is closed (connected)."""
        ...

    async def disconnect(self) -> None:
        """Open the supply relay."""
        ...

    async def reconnect(self) -> None:
        """Close the supply relay (or arm it for the customer to close)."""
        ...

    async def close(self) -> None:
        """End the conversation (release the association); never raises."""
        ...


@dataclass(frozen=True, slots=True)
class MeterContext:
    """Everything an adapter needs to build a session for one conversation."""

    meter: MeterConfig
    line: LineConfig
    config: FleetConfig
    transport: Transport
    #: Environment secrets are resolved in (``None``: the process's).
    env: Mapping[str, str] | None = None
    #: Loop time the link's previous conversation ended (``None``: none on this link yet).
    link_idle_since_s: float | None = None

    def secret(self, ref_name: str = "password") -> str | None:
        """The meter's ``password`` revealed (``None`` when it has none)."""
        ref = self.meter.password if ref_name == "password" else self.meter.keys.get(ref_name)
        if ref is None:
            return None
        return self.config.resolve_secret(ref, env=self.env).reveal()

    def quirk(self, name: str, default: QuirkValue) -> QuirkValue:
        return self.meter.quirks.get(name, default)

    @property
    def tz(self) -> tzinfo:
        """The zone of the meter's own clock (UTC unless the configuration says otherwise)."""
        return ZoneInfo(self.meter.timezone) if self.meter.timezone else UTC


#: Builds the session of one conversation.
SessionFactory = Callable[[MeterContext], Awaitable[MeterSession]]


# -- links -----------------------------------------------------------------------------------------


class LinkOpener(Protocol):
    """Opens the link of a line for a conversation with ``meter``."""

    def __call__(self, line: LineConfig, meter: MeterConfig) -> Awaitable[Transport]: ...


async def _open_url(line: LineConfig, meter: MeterConfig) -> Transport:  # noqa: ARG001 - LinkOpener
    return await open_transport(line.url, line=line.settings, connect_timeout_s=line.connect_timeout_s)


class Borrowed(Transport):
    """A transport the head-end may use but must not close (a simulated line's end, a pty a
    simulator also holds): :meth:`close` only drops pending input."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.url = inner.url
        self.datagram = inner.datagram

    @property
    def line(self) -> LineSettings | None:
        return self.inner.line

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self.inner.read(max_bytes, timeout_s=timeout_s)

    async def write(self, data: bytes) -> None:
        await self.inner.write(data)

    async def drain(self) -> None:
        await self.inner.drain()

    async def set_line(self, settings: LineSettings) -> None:
        await self.inner.set_line(settings)

    def discard_input(self) -> None:
        self.inner.discard_input()

    async def close(self) -> None:
        self.inner.discard_input()


class LinkPool:
    """Links by line: serial links (``serial``, ``rs485``, ``converter``) stay open between
    conversations, others are opened per conversation.

    The scheduler guarantees that a serial line carries one conversation at a time, so one open
    link per serial line is enough. A link is closed and reopened after a conversation that ended
    with a transport failure (the port may have vanished) and when the line's configuration
    changed. ``opener`` defaults to opening the line's URL.
    """

    def __init__(self, opener: LinkOpener | None = None) -> None:
        self._opener: LinkOpener = opener or _open_url
        self._kept: dict[str, tuple[LineConfig, Transport]] = {}
        self._released_s: dict[str, float] = {}

    def idle_since_s(self, line_id: str) -> float | None:
        """Loop time the line's last conversation ended (``None``: none yet)."""
        return self._released_s.get(line_id)

    async def acquire(self, line: LineConfig, meter: MeterConfig) -> Transport:
        if not line.kind.is_serial:
            return await self._opener(line, meter)
        kept = self._kept.pop(line.id, None)
        if kept is not None:
            if kept[0] == line:
                kept[1].discard_input()
                return kept[1]
            await _close_quietly(kept[1])
        return await self._opener(line, meter)

    async def release(self, line: LineConfig, transport: Transport, *, healthy: bool) -> None:
        self._released_s[line.id] = asyncio.get_running_loop().time()
        if line.kind.is_serial and healthy and line.id not in self._kept:
            self._kept[line.id] = (line, transport)
            return
        await _close_quietly(transport)

    async def forget(self, line_id: str) -> None:
        """Close the kept link of a line (removed or changed)."""
        kept = self._kept.pop(line_id, None)
        if kept is not None:
            await _close_quietly(kept[1])

    async def close(self) -> None:
        for line_id in list(self._kept):
            await self.forget(line_id)


async def _close_quietly(transport: Transport) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await transport.close()


# -- IEC 62056-21 ------------------------------------------------------------------------------------

_TIME_OBIS = Obis.parse("0.9.1")
_DATE_OBIS = Obis.parse("0.9.2")
_DIGITS = re.compile(r"\D")


def same_quantity(a: Obis, b: Obis) -> bool:
    """True when two codes name the same quantity as IEC 62056-21 readouts address it: equal, or
    equal in C.D.E with equal or unspecified (255) F. Readouts leave out A and B, so ``1.8.0`` in a
    readout is ``1-0:1.8.0*255`` whatever medium the plan wrote."""
    if a == b:
        return True
    return (a.c, a.d, a.e) == (b.c, b.d, b.e) and (a.f == b.f or 255 in (a.f, b.f))


def _meter_time(readings: Sequence[Reading], tz: tzinfo) -> datetime | None:
    """The meter's clock from the readout's ``0.9.1`` (``hhmmss``) and ``0.9.2`` (``YYMMDD``)."""
    time_text = date_text = None
    for reading in readings:
        if reading.obis is None:
            continue
        if same_quantity(reading.obis, _TIME_OBIS):
            time_text = _DIGITS.sub("", str(reading.value))
        elif same_quantity(reading.obis, _DATE_OBIS):
            date_text = _DIGITS.sub("", str(reading.value))
    if time_text is None or date_text is None or len(time_text) != 6 or len(date_text) != 6:
        return None
    try:
        wall = datetime(
            2000 + int(date_text[:2]),
            int(date_text[2:4]),
            int(date_text[4:]),
            int(time_text[:2]),
            int(time_text[2:4]),
            int(time_text[4:]),
            tzinfo=tz,
        )
    except ValueError:
        return None
    return wall.astimezone(UTC)


def _matches(reading: Reading, wanted: Sequence[Obis]) -> bool:
    return reading.obis is not None and any(same_quantity(reading.obis, w) for w in wanted)


class Iec21MeterSession:
    """IEC 62056-21 meters: the readout gives the registers (and the clock, from ``0.9.1`` and
    ``0.9.2``); the clock is set in programming mode (``W1 0.9.2``, ``W1 0.9.1``, meter's zone).

    Quirks read from the meter's configuration: ``baud_max`` (int), ``settle_s``, ``wake_up``,
    ``software_parity``, ``echo_cancel``, ``retries``. Profiles, event logs and relays are not
    offered (IEC 62056-21 profile reads are vendor-specific).
    """

    capabilities = Capabilities(registers=True, read_clock=True, set_clock=True)

    def __init__(self, ctx: MeterContext) -> None:
        self._idle_since_s = ctx.link_idle_since_s
        address = ctx.meter.address
        if not isinstance(address, Iec21Address):
            raise ConfigError(f"meter {ctx.meter.id}: an IEC 62056-21 meter needs a device address")
        self._tz = ctx.tz
        baud_max = ctx.quirk("baud_max", 9600)
        self.session = Iec21Session(
            ctx.transport,
            address=address.device,
            baud_max=int(baud_max) if baud_max else None,
            password=ctx.secret(),
            settle_s=float(ctx.quirk("settle_s", 0.0)),
            retries=int(ctx.quirk("retries", 1)),
            wake_up=bool(ctx.quirk("wake_up", False)),
            software_parity=bool(ctx.quirk("software_parity", False)),
            echo_cancel=bool(ctx.quirk("echo_cancel", False)),
            tz=self._tz,
            response_timeout_s=min(ctx.line.response_timeout_s, 5.0),
        )

    async def _wait_line_quiet(self) -> None:
        # After a readout at a higher speed a meter listens for a NAK at that speed for up to
        # 1.5 s before it falls back to 300 Bd; the next meter's sign-on on the same line (a new
        # session, which does not know) must wait that out or the request is lost.
        if self._idle_since_s is None:
            return
        delay_s = self._idle_since_s + READOUT_IDLE_S - asyncio.get_running_loop().time()
        if delay_s > 0:
            await asyncio.sleep(delay_s)
        self._idle_since_s = None

    async def read(
        self,
        plan: ReadPlan,
        *,
        since: Mapping[str, datetime],  # noqa: ARG002 - no profiles over IEC 62056-21
        now: datetime,  # noqa: ARG002
    ) -> CollectedData:
        await self._wait_line_quiet()
        readout = await self.session.readout()
        readings = list(readout.readings)
        missing: list[str] = []
        if plan.objects:
            missing = [str(o) for o in plan.objects if not any(_matches(r, [o]) for r in readings)]
            readings = [r for r in readings if _matches(r, plan.objects)]
        missing += [str(p.obis) for p in (*plan.profiles, *plan.events)]
        return CollectedData(
            readings=tuple(readings),
            meter_time=_meter_time(readout.readings, self._tz),
            raw=readout.raw,
            missing=tuple(missing),
        )

    async def read_objects(self, objects: Sequence[Obis]) -> list[Reading]:
        await self._wait_line_quiet()
        readout = await self.session.readout()
        if not objects:
            return list(readout.readings)
        return [r for r in readout.readings if _matches(r, objects)]

    async def read_profile(self, obis: Obis, start: datetime, end: datetime) -> list[ProfileRow]:  # noqa: ARG002
        raise NotSupportedError("IEC 62056-21 meters: profile reads are not supported")

    async def read_clock(self) -> datetime:
        await self._wait_line_quiet()
        readout = await self.session.readout()
        when = _meter_time(readout.readings, self._tz)
        if when is None:
            raise NotSupportedError("the meter's readout carries no time (0.9.1) and date (0.9.2)")
        return when

    async def set_clock(self, when: datetime) -> None:
        # Whole seconds: round to the nearest one so a half-second late write is not a second behind.
        wall = (when + timedelta(microseconds=500_000)).astimezone(self._tz)
        await self._wait_line_quiet()
        async with self.session.programming() as prog:
            await prog.write("0.9.2", wall.strftime("%y%m%d"))
            await prog.write("0.9.1", wall.strftime("%H%M%S"))

    async def read_relay(self) -> bool:
        raise NotSupportedError("IEC 62056-21 meters: no relay control")

    async def disconnect(self) -> None:
        raise NotSupportedError("IEC 62056-21 meters: no relay control")

    async def reconnect(self) -> None:
        raise NotSupportedError("IEC 62056-21 meters: no relay control")

    async def close(self) -> None:
        return None


# -- dispatch ----------------------------------------------------------------------------------------


async def open_meter_session(ctx: MeterContext) -> MeterSession:
    """The adapter for the meter's protocol (the default :data:`SessionFactory`): IEC 62056-21
    here, DLMS and Modbus from :mod:`metercom.service.adapters` through its process-wide
    :class:`~metercom.service.adapters.MeterSessionFactory` (shared Modbus bus schedulers, DLMS
    counters under the default state directory)."""
    if ctx.meter.protocol is MeterProtocol.IEC21:
        return Iec21MeterSession(ctx)
    from metercom.service.adapters import default_factory  # the adapters import this module

    return await default_factory()(ctx)
