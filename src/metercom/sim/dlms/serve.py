"""Serving simulated DLMS meters: the IP wrapper (TCP, UDP), HDLC (TCP, serial/pty, the simulated
line), mode E behind the IEC 62056-21 sign-on, and fleets of meters in one process.

Rule (DESIGN.md: "the simulator is the same codec run from the other side"): nothing here
parses or builds a protocol byte itself. Each link runs the codec's own state machines in the
server role (:class:`~metercom.codec.wrapper.WrapperConnection`,
:class:`~metercom.codec.hdlc.HdlcConnection`, :class:`~metercom.codec.iec62056_21.Iec21Connection`
through :class:`~metercom.sim.iec21.Iec21Meter`) and hands APDUs to one
:class:`~metercom.codec.dlms.server.DlmsServer` per link over the meter's object model
(:class:`~metercom.sim.dlms.meter.SimulatedDlmsMeter`). Links are
:class:`~metercom.transport.Transport` objects, so the same loop serves TCP, UDP, a pty or the
:class:`~metercom.transport.SimulatedLine`; all waiting uses the event loop's clock (virtual in
tests).

Theory of operation:

* :class:`DlmsMeterDevice` is one meter: object model, associations (from the device profile:
  public client without security, LLS reader, HLS-GMAC utility/management client offered
  with and without ciphering), secrets, quirks and faults. :meth:`DlmsMeterDevice.serve_wrapper`,
  :meth:`~DlmsMeterDevice.serve_hdlc` and :meth:`~DlmsMeterDevice.serve_mode_e` are
  transport handlers (``transport.serve(url, device.serve_wrapper)``).
* Quirks (:class:`Quirks`) change what the meter sends, never what the codec accepts:
  long-form BER lengths on the AARE/RLRE, a small PDU size, a reaction delay before every
  answer, a UA without information field, a clock without deviation.
* Faults (:class:`Faults`) make chosen meters of a fleet misbehave on purpose: unreachable (not
  listening, or silent on a shared port), dropped links, corrupted bytes, wrong keys and
  passwords, clock drift. Which meters is decided by the fleet seed.
* Push: a DataNotification the object model queued (Push setup method 1) is sent over the
  wrapper to its ``host:port`` destination in a TCP connection of its own, from wPort 1 to
  wPort 1 (the Push setup version 0 names no client SAP).
* :func:`serve_fleet` starts N meters on consecutive ports (or one port, HDLC-addressed by
  physical address), :func:`~metercom.sim.fleet.fleet_config_toml` (shared with the IEC 62056-21 and Modbus
  fleets) exports them as a head-end configuration.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as _dt
import logging
import random
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field, replace

from metercom.clock import Clock, current_clock
from metercom.codec.base import NEED_DATA, Role
from metercom.codec.dlms.acse import ApplicationContextName, AuthenticationMechanism, ServerAssociationPolicy
from metercom.codec.dlms.security import OWN_COUNTER, MemoryCounterStore
from metercom.codec.dlms.server import AssociationConfig, DlmsServer, ServerKeys
from metercom.codec.hdlc import (
    ApduReceived as HdlcApdu,
)
from metercom.codec.hdlc import (
    Connected,
    Disconnected,
    FrameKind,
    HdlcAddress,
    HdlcConnection,
    HdlcFrame,
    HdlcFrameSplitter,
    HdlcParameters,
    Transmit,
)
from metercom.codec.hdlc import SendApdu as HdlcSendApdu
from metercom.codec.hdlc.frame import DiscardedBytes
from metercom.codec.iec62056_21 import ProtocolMode
from metercom.codec.wrapper import ApduReceived, SendApdu, WrapperConnection, WrapperTransport
from metercom.errors import ConfigError, InputError, RemoteProtocolError, TransportError, TransportTimeout
from metercom.model.profiles import DeviceProfile
from metercom.sim.dlms.meter import SimulatedDlmsMeter, build_meter
from metercom.sim.fleet import (
    Faults,
    FleetExport,
    FleetLine,
    FleetMeterEntry,
    LinkFaults,
    MeterFaults,
    ServedFleet,
    TomlValue,
    closed_port_url,
    fleet_config_toml,
    parse_listen,
)
from metercom.transport import Transport
from metercom.transport.server import TransportServer, serve

__all__ = [
    "DEFAULT_AUTHENTICATION_KEY",
    "DEFAULT_ENCRYPTION_KEY",
    "DEFAULT_LLS_PASSWORD",
    "DlmsFleet",
    "DlmsMeterDevice",
    "Faults",
    "FleetMeter",
    "Quirks",
    "association_configs",
    "fleet_config_toml",
    "push_over_wrapper",
    "secret_environment",
    "serve_fleet",
]

log = logging.getLogger(__name__)

#: Well-known *test* secrets (the values the DLMS UA examples and the peers' samples use).
DEFAULT_LLS_PASSWORD = b"12345678"
DEFAULT_ENCRYPTION_KEY = bytes(range(16))
DEFAULT_AUTHENTICATION_KEY = bytes(range(0xD0, 0xE0))
DEFAULT_CLIENT_SYSTEM_TITLE = b"MTCHE001"
_LOGICAL_DEVICE = 1
_WRONG = bytes(16 * [0x55])


@dataclass(frozen=True, slots=True)
class Quirks:
    """Vendor deviations a simulated meter shows (see the module docstring)."""

    long_form_lengths: bool = False
    max_pdu_size: int | None = None
    reaction_delay_s: float = 0.0
    ua_without_info: bool = False
    no_clock_deviation: bool = False

    @classmethod
    def parse(cls, specs: Iterable[str]) -> Quirks:
        """``["long-form", "pdu=128", "delay=0.5", "ua-no-info", "no-deviation"]``."""
        quirks = cls()
        for spec in specs:
            name, _, value = spec.strip().partition("=")
            key = name.strip().lower().replace("_", "-")
            try:
                if key in ("long-form", "long-form-lengths"):
                    quirks = replace(quirks, long_form_lengths=True)
                elif key in ("pdu", "max-pdu", "small-pdu"):
                    quirks = replace(quirks, max_pdu_size=int(value or 128))
                elif key in ("delay", "slow", "reaction-delay"):
                    quirks = replace(quirks, reaction_delay_s=float(value or 0.5))
                elif key in ("ua-no-info", "ua-without-info"):
                    quirks = replace(quirks, ua_without_info=True)
                elif key in ("no-deviation", "no-clock-deviation"):
                    quirks = replace(quirks, no_clock_deviation=True)
                else:
                    raise InputError(
                        f"unknown quirk {name!r}; known: long-form, pdu=N, delay=S, ua-no-info, no-deviation"
                    )
            except ValueError as exc:
                raise InputError(f"quirk {spec!r}: {exc}") from exc
        return quirks


def association_configs(
    profile: DeviceProfile,
    *,
    system_title: bytes,
    lls_password: bytes = DEFAULT_LLS_PASSWORD,
    encryption_key: bytes = DEFAULT_ENCRYPTION_KEY,
    authentication_key: bytes = DEFAULT_AUTHENTICATION_KEY,
    max_pdu_size: int = 1024,
) -> list[AssociationConfig]:
    """The server's associations for a device profile's ``[[associations]]``."""
    keys = ServerKeys(system_title, encryption_key, authentication_key, hls_secret=lls_password)
    out = []
    for spec in profile.associations:
        mechanism = AuthenticationMechanism(int(spec.authentication))
        contexts: tuple[ApplicationContextName, ...] = (ApplicationContextName.LOGICAL_NAME,)
        if mechanism.is_high_level:
            contexts = (
                ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,
                ApplicationContextName.LOGICAL_NAME,
            )
        policy = ServerAssociationPolicy(
            application_context_names=contexts,
            mechanisms=frozenset({mechanism}),
            lls_password=lls_password if mechanism is AuthenticationMechanism.LOW else None,
            max_receive_pdu_size=max_pdu_size,
            system_title=system_title,
        )
        out.append(
            AssociationConfig(
                spec.name,
                spec.client_sap,
                spec.logical_name,
                policy,
                keys if mechanism.is_high_level else None,
            )
        )
    return out


def _long_form(apdu: bytes) -> bytes:
    """Re-encode the outer BER length of an AARE/RLRE in the 2-byte long form (Kamstrup)."""
    if len(apdu) < 2 or apdu[0] not in (0x61, 0x63) or apdu[1] >= 0x80:
        return apdu
    return bytes((apdu[0], 0x82)) + apdu[1].to_bytes(2, "big") + apdu[2:]


def _strip_ua_info(data: bytes) -> bytes:
    """Quirk: send UA frames without their information field (parameters)."""
    splitter = HdlcFrameSplitter()
    splitter.feed(data)
    out = b""
    while True:
        item = splitter.next()
        if item is NEED_DATA:
            break
        if isinstance(item, DiscardedBytes):
            out += item.data
            continue
        try:
            frame = HdlcFrame.from_bytes(item)
        except RemoteProtocolError:
            out += item
            continue
        if frame.kind is FrameKind.UA and frame.information:
            out += HdlcFrame(FrameKind.UA, frame.destination, frame.source, frame.poll_final).to_bytes()
        else:
            out += item
    return out


class DlmsMeterDevice:
    """One simulated meter with its secrets, quirks and faults; see the module docstring."""

    def __init__(
        self,
        meter: SimulatedDlmsMeter,
        *,
        physical_address: int = 17,
        lls_password: bytes = DEFAULT_LLS_PASSWORD,
        encryption_key: bytes = DEFAULT_ENCRYPTION_KEY,
        authentication_key: bytes = DEFAULT_AUTHENTICATION_KEY,
        system_title: bytes | None = None,
        quirks: Quirks | None = None,
        seed: int = 0,
        latency_s: float = 0.0,
    ) -> None:
        self.meter = meter
        self.quirks = quirks or Quirks()
        self.physical_address = physical_address
        self.latency_s = latency_s
        self.faults = LinkFaults()
        self.rng = random.Random(seed)  # fault timing only, never secrets
        if self.quirks.no_clock_deviation:
            meter.no_deviation = True
        if system_title is None:
            security_setup = next((o for o in meter.profile.objects if o.class_id == 64), None)
            raw = security_setup.value("server_system_title").value if security_setup is not None else b""
            system_title = raw if isinstance(raw, bytes) and len(raw) == 8 else b"MTC" + bytes(5)
            if meter.serial is not None:
                system_title = system_title[:3] + meter.serial.encode()[-5:].rjust(5, b"0")
        self.system_title = system_title
        self.lls_password = lls_password
        self.encryption_key = encryption_key
        self.authentication_key = authentication_key
        self.random_bytes: Callable[[int], bytes] = self.rng.randbytes
        self.links = 0
        self.requests = 0
        #: The meter's own invocation counter survives associations and links.
        self.counters = MemoryCounterStore({OWN_COUNTER: 1})

    @property
    def associations(self) -> list[AssociationConfig]:
        return association_configs(
            self.meter.profile,
            system_title=self.system_title,
            lls_password=self.lls_password,
            encryption_key=self.encryption_key,
            authentication_key=self.authentication_key,
            max_pdu_size=self.quirks.max_pdu_size or 1024,
        )

    def new_server(self) -> DlmsServer:
        """A fresh application layer for one link."""
        return DlmsServer(
            self.meter,
            self.associations,
            random_bytes=self.random_bytes,
            max_send_pdu_size=self.quirks.max_pdu_size,
            counter_store=self.counters,
        )

    def answer(self, server: DlmsServer, apdu: bytes, client_sap: int) -> bytes | None:
        """One request through the application layer, quirks applied to the answer."""
        self.requests += 1
        reply = server.handle(apdu, client_sap=client_sap)
        if reply is not None and self.quirks.long_form_lengths:
            reply = _long_form(reply)
        return reply

    async def _pause(self) -> None:
        delay = self.quirks.reaction_delay_s + self.latency_s
        if delay > 0:
            await asyncio.sleep(delay)

    async def _write(self, transport: Transport, data: bytes) -> None:
        await transport.write(self.faults.outgoing(data, self.rng))

    async def _flush_pushes(self) -> None:
        while self.meter.outbox:
            message = self.meter.outbox.pop(0)
            task = asyncio.get_running_loop().create_task(
                push_over_wrapper(message.destination, message.apdu)
            )
            _background.add(task)
            task.add_done_callback(_background.discard)

    # -- the IP wrapper -------------------------------------------------------------------------

    async def serve_wrapper(self, transport: Transport) -> None:
        """Serve one TCP connection or UDP peer with the IEC 62056-47 wrapper."""
        if self.faults.unreachable:
            await _swallow(transport)
            return
        self.links += 1
        conn = WrapperConnection(
            Role.SERVER,
            None,
            _LOGICAL_DEVICE,
            transport=WrapperTransport.UDP if transport.datagram else WrapperTransport.TCP,
        )
        server = self.new_server()
        try:
            while True:
                data = await transport.read(65536)
                conn.receive_data(data)
                while True:
                    try:
                        event = conn.next_event()
                    except RemoteProtocolError:
                        return  # a corrupt TCP stream cannot be resynchronised
                    if event is NEED_DATA:
                        break
                    if not isinstance(event, ApduReceived):
                        continue
                    reply = self.answer(server, event.apdu, event.source_wport)
                    await self._flush_pushes()
                    if reply is None:
                        continue
                    await self._pause()
                    await self._write(
                        transport, conn.send(SendApdu(reply, destination_wport=event.source_wport))
                    )
                    if self.faults.should_drop():
                        self.faults.answers = 0
                        return
        except TransportError:
            return

    # -- HDLC -----------------------------------------------------------------------------------

    def hdlc_connection(self) -> HdlcConnection:
        address = HdlcAddress(_LOGICAL_DEVICE, self.physical_address)
        return HdlcConnection(
            Role.SERVER,
            None,
            address,
            parameters=HdlcParameters(),
            inactivity_timeout_s=120.0,
        )

    async def serve_hdlc(self, transport: Transport, initial: bytes = b"") -> None:
        """Serve HDLC (IEC 62056-46) on a byte stream: TCP, a serial port, a pty, a simulated line."""
        if self.faults.unreachable:
            await _swallow(transport)
            return
        self.links += 1
        conn = self.hdlc_connection()
        server = self.new_server()
        loop = asyncio.get_running_loop()
        pending = initial
        try:
            while True:
                if pending:
                    conn.receive_data(pending, now=loop.time())
                    pending = b""
                while True:
                    event = _hdlc_event(conn)
                    if event is NEED_DATA:
                        break
                    if isinstance(event, Transmit):
                        data = event.data
                        if self.quirks.ua_without_info:
                            data = _strip_ua_info(data)
                        await self._pause()
                        await self._write(transport, data)
                    elif isinstance(event, Connected | Disconnected):
                        server.release()
                    elif isinstance(event, HdlcApdu):
                        client = conn.client_address
                        reply = self.answer(server, event.apdu, client.logical if client is not None else 0)
                        await self._flush_pushes()
                        if reply is not None:
                            out = conn.send(HdlcSendApdu(reply), now=loop.time())
                            if out:
                                await self._pause()
                                await self._write(transport, out)
                        if self.faults.should_drop():
                            self.faults.answers = 0
                            return
                deadline = conn.next_deadline()
                timeout = None if deadline is None else max(deadline - loop.time(), 0.0)
                try:
                    pending = await transport.read(4096, timeout_s=timeout)
                except TransportTimeout:
                    conn.handle_timeout(loop.time())
        except TransportError:
            return

    # -- mode E ---------------------------------------------------------------------------------

    def mode_e_meter(self) -> object:
        """An :class:`~metercom.sim.iec21.Iec21Meter` in mode E whose binary phase is our HDLC."""
        from metercom.sim.iec21 import Iec21Meter, Iec21MeterConfig

        serial = self.meter.serial or "00000001"
        config = Iec21MeterConfig(
            manufacturer="MTC", ident=f"DLMS{serial}"[-16:], baud_max=9600, mode=ProtocolMode.E
        )

        async def binary(transport: Transport, baud_rate: int, trailing: bytes) -> None:
            del baud_rate
            await self.serve_hdlc(transport, trailing)

        return Iec21Meter(config, binary_handler=binary)

    async def serve_mode_e(self, transport: Transport) -> None:
        """IEC 62056-21 sign-on at 300 Bd 7E1 (identification with ``\\2``), then HDLC at 8N1."""
        from metercom.sim.iec21 import Iec21Meter

        meter = self.mode_e_meter()
        if not isinstance(meter, Iec21Meter):  # pragma: no cover - type narrowing only
            return
        await meter.serve(transport)


def _hdlc_event(conn: HdlcConnection) -> object:
    try:
        return conn.next_event()
    except RemoteProtocolError:
        return None  # an APDU too long or without LLC header was dropped; the link stays up


async def _swallow(transport: Transport) -> None:
    """An unreachable meter on a shared medium: read and never answer."""
    with contextlib.suppress(TransportError):
        while True:
            await transport.read(4096)


_background: set[asyncio.Task[bool]] = set()


async def push_over_wrapper(destination: str, apdu: bytes, *, timeout_s: float = 10.0) -> bool:
    """Send one push APDU over the wrapper to ``host:port`` (TCP); True when it was delivered."""
    from metercom.transport import open_transport

    url = destination if "://" in destination else f"tcp://{destination}"
    frame = WrapperConnection(Role.SERVER, _LOGICAL_DEVICE, _LOGICAL_DEVICE).send(
        SendApdu(apdu, destination_wport=_LOGICAL_DEVICE)
    )
    try:
        async with asyncio.timeout(timeout_s):
            link = await open_transport(url)
            try:
                await link.write(frame)
                await link.drain()
            finally:
                await link.close()
    except (TransportError, TimeoutError, OSError) as exc:
        log.debug("push to %s failed: %s", destination, exc)
        return False
    return True


# --------------------------------------------------------------------------------------------
# Fleets
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class FleetMeter:
    """One meter of a fleet: where it listens and how it is addressed."""

    index: int
    id: str
    serial: str
    device: DlmsMeterDevice
    url: str = ""
    physical_address: int = 17
    reachable: bool = True
    wrong_keys: bool = False
    faults: MeterFaults = field(default_factory=MeterFaults)


@dataclass(slots=True)
class DlmsFleet(ServedFleet):
    """Running simulated meters; close with :meth:`close` and :meth:`wait_closed`."""

    meters: list[FleetMeter]
    hdlc: bool
    profile: str
    servers: list[TransportServer] = field(default_factory=list)
    shared_url: str | None = None
    line_id: str = "sim-dlms-bus"

    def addresses(self) -> list[str]:
        """One line per meter: id, URL and address (and its faults)."""
        out = []
        for m in self.meters:
            where = self.shared_url or m.url
            if self.hdlc:
                where = f"hdlc+{where}"
            extra = f" physical={m.physical_address}" if self.hdlc else ""
            flags = f" ({m.faults.describe()})" if m.faults.any else ""
            out.append(f"{m.id} dlms {where}{extra}{flags}")
        return out

    def export(self, *, client: int = 16) -> FleetExport:
        """The fleet for :func:`~metercom.sim.fleet.fleet_config_toml`.

        Meters are read by the public client (``client`` 16) without security; 32 is the LLS
        reader (password ``secret:sim_lls``), any other SAP the HLS-GMAC management client
        (authenticated and encrypted, ``secret:sim_guek``/``secret:sim_gak``).
        """
        authentication = {16: "none"}.get(client, "low" if client == 32 else "high-gmac")
        settings: dict[str, TomlValue] = {"authentication": authentication}
        if authentication == "low":
            settings["password"] = "secret:sim_lls"  # noqa: S105 - a secret reference
        elif authentication == "high-gmac":
            settings["security"] = "authenticated-encrypted"
            settings["keys"] = {"encryption": "secret:sim_guek", "authentication": "secret:sim_gak"}
        settings["device_profile"] = self.profile
        lines: tuple[FleetLine, ...] = ()
        if self.shared_url is not None:
            lines = (FleetLine(self.line_id, self.shared_url, "converter", "simulated DLMS meters, HDLC"),)
        entries = []
        for m in self.meters:
            address: dict[str, TomlValue] = {"client": client, "logical": _LOGICAL_DEVICE}
            if self.hdlc:
                address["physical"] = m.physical_address
            # A transport URL: the head-end takes HDLC from the physical address (configuration.md).
            url = m.url if self.shared_url is None else None
            entries.append(
                FleetMeterEntry(
                    m.id,
                    "dlms",
                    address,
                    url=url,
                    line=self.line_id if self.shared_url is not None else None,
                    settings=settings,
                    description=f"simulated DLMS meter {m.serial}",
                )
            )
        return FleetExport(
            tuple(entries),
            lines,
            secrets={
                "sim_lls": "env:METERCOM_SIM_LLS",
                "sim_guek": "env:METERCOM_SIM_GUEK",
                "sim_gak": "env:METERCOM_SIM_GAK",
            },
            comments=(
                "Simulated meters exported by `metercom simulate` (docs/simulators.md).",
                "DLMS secrets: METERCOM_SIM_LLS (LLS password), METERCOM_SIM_GUEK / _GAK (hex keys).",
            ),
            environment=secret_environment(),
        )

    def config_toml(self, *, client: int = 16) -> str:
        return fleet_config_toml(self, client=client)


async def serve_fleet(
    n: int,
    listen: str = "tcp://127.0.0.1:0",
    *,
    profile: str = "generic",
    seed: int = 0,
    latency_ms: float = 0.0,
    faults: Faults | None = None,
    quirks: Quirks | None = None,
    hdlc: bool = False,
    one_port: bool = False,
    clock: Clock | None = None,
    announce: Callable[[str], None] | None = None,
    id_prefix: str = "dlms",
) -> DlmsFleet:
    """Start ``n`` simulated DLMS meters in this process.

    ``listen`` is the base URL: meter *i* listens on ``port + i`` (port 0: any free port each),
    with the wrapper, or HDLC with ``hdlc``. ``one_port`` puts every meter behind the one port,
    addressed by HDLC physical address 17 + i (it implies ``hdlc``; a frame's destination picks
    the meter, as on an RS-485 bus behind a TCP converter). Meter *i* runs the load model with
    seed ``seed + i``; ``faults`` are drawn from ``seed`` (see :class:`Faults`).
    """
    if n < 1:
        raise ConfigError(f"a fleet needs at least one meter, got {n}")
    faults = faults or Faults()
    clock = clock or current_clock()
    scheme, host, base_port = parse_listen(listen)
    if base_port and base_port + n - 1 > 65535 and not one_port:
        raise ConfigError(f"{n} meters from port {base_port} run past port 65535")
    rng = random.Random(seed)
    meters: list[FleetMeter] = []
    hdlc = hdlc or one_port
    for i in range(n):
        serial = f"{seed % 1000:03d}{i + 1:05d}"
        meter = build_meter(profile, clock=clock, seed=seed + i, serial=serial)
        chosen = faults.choose(rng)
        wrong = chosen.wrong_keys
        device = DlmsMeterDevice(
            meter,
            physical_address=17 + i,
            lls_password=b"wrong-pw" if wrong else DEFAULT_LLS_PASSWORD,
            encryption_key=_WRONG if wrong else DEFAULT_ENCRYPTION_KEY,
            authentication_key=_WRONG if wrong else DEFAULT_AUTHENTICATION_KEY,
            quirks=quirks,
            seed=seed * 7919 + i,
            latency_s=latency_ms / 1000.0,
        )
        device.faults = LinkFaults.of(chosen)
        if chosen.drift:
            meter.set_meter_time(meter.meter_now() + _seconds(chosen.clock_offset_s))
            meter.set_drift(chosen.drift_ppm)
            meter.programming_count = 0
        meters.append(
            FleetMeter(
                i,
                f"{id_prefix}-{i + 1:04d}",
                serial,
                device,
                physical_address=17 + i,
                reachable=not chosen.unreachable,
                wrong_keys=wrong,
                faults=chosen,
            )
        )
    fleet = DlmsFleet(meters, hdlc, profile, line_id=f"sim-{id_prefix}-bus")
    try:
        if one_port:
            by_address = {m.physical_address: m.device for m in meters}
            server = await serve(f"{scheme}://{host}:{base_port}", _router(by_address))
            fleet.servers.append(server)
            fleet.shared_url = server.url
            for m in meters:
                m.url = server.url
        else:
            for m in meters:
                if not m.reachable:
                    m.url = closed_port_url(scheme, host, base_port, m.index)
                    continue
                handler = m.device.serve_hdlc if hdlc else m.device.serve_wrapper
                port = base_port + m.index if base_port else 0
                server = await serve(f"{scheme}://{host}:{port}", handler)
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


def _seconds(value: float) -> _dt.timedelta:
    return _dt.timedelta(seconds=value)


def _router(devices: dict[int, DlmsMeterDevice]) -> Callable[[Transport], Awaitable[None]]:
    """One shared port: the first frame's destination address picks the meter."""

    async def handler(transport: Transport) -> None:
        buffered = b""
        splitter = HdlcFrameSplitter()
        with contextlib.suppress(TransportError):
            while True:
                data = await transport.read(4096)
                buffered += data
                splitter.feed(data)
                while True:
                    item = splitter.next()
                    if item is NEED_DATA:
                        break
                    if isinstance(item, DiscardedBytes):
                        continue
                    try:
                        frame = HdlcFrame.from_bytes(item)
                    except RemoteProtocolError:
                        continue
                    device = devices.get(frame.destination.physical or -1)
                    if device is not None:
                        await device.serve_hdlc(transport, buffered)
                        return

    return handler


def secret_environment() -> dict[str, str]:
    """The environment a head-end needs to read an exported simulated fleet (test secrets)."""
    return {
        "METERCOM_SIM_LLS": DEFAULT_LLS_PASSWORD.decode(),
        "METERCOM_SIM_GUEK": DEFAULT_ENCRYPTION_KEY.hex(),
        "METERCOM_SIM_GAK": DEFAULT_AUTHENTICATION_KEY.hex(),
    }
