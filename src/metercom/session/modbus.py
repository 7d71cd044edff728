"""Modbus client session: pymodbus PDUs over metercom transports, RTU or TCP, one bus at a time.

Rule: :class:`ModbusSession` owns one link (an RS-485 bus, a serial port, a TCP connection to
a gateway or a device) and every unit on it. It encodes and decodes PDUs with pymodbus's PDU
classes, frames them with metercom's own RTU or MBAP framer (``metercom.codec.modbus``), and
drives a :class:`~metercom.transport.base.Transport`, so RTU works over the simulated line with
exact t3.5 timing, over ptys and pyserial URLs, and over TCP. Every conversation runs under a
:class:`~metercom.session.bus.BusScheduler`: one at a time, fair round-robin between units,
a reply timeout and bounded retries, so a dead unit costs its timeouts and never the bus.
:class:`ModbusDevice` adds a device profile (``metercom.model.modbus_profile``) to a unit:
readings with OBIS codes and units, clock, energy reset, address change, relays, event log.

Theory of operation of one conversation (``_transact``):

1. Drop stale input (a late reply of an earlier, timed-out request) from the transport and the
   framer. On RTU wait until the bus has been silent for t3.5 since the last frame, which is
   the inter-frame gap the spec requires of a master.
2. Write the ADU and drain it; the reply timeout starts when the last byte has left.
3. Feed received bytes to the framer with their arrival time; wake at the framer's deadline so
   a t3.5 silence ends frames of unknown length. Frames from another unit, with another
   function or (TCP) another transaction id are ignored: that is how a late reply is told from
   the right one. A corrupt frame (CRC) is remembered, and raised only if no valid reply follows
   before the deadline.
4. An exception response raises the :class:`~metercom.codec.modbus.exceptions.ModbusExceptionResponse`
   subclass of its code (never retried); a reply whose length or echo is wrong raises
   :class:`~metercom.errors.RemoteProtocolError` (retried). pymodbus decoders accept some
   malformed replies silently (an odd byte count), so lengths are checked here first.

Silence on RTU: exact t3.5 of the line on the simulated line; at least 20 ms elsewhere,
because USB adapters deliver bytes in bursts (FTDI's latency timer is 16 ms) and ptys or TCP
tunnels have no timing at all. Frames of known function codes end by length anyway.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any, Final, Literal

from pymodbus.client.mixin import ModbusClientMixin
from pymodbus.pdu import DecodePDU, ModbusPDU
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    WriteMultipleRegistersRequest,
    WriteMultipleRegistersResponse,
    WriteSingleRegisterRequest,
    WriteSingleRegisterResponse,
)

from metercom.clock import current_clock
from metercom.codec.base import NEED_DATA, Role
from metercom.codec.modbus import (
    MAX_RTU_FRAME,
    RESET_ENERGY_FUNCTION,
    Adu,
    GatewayPathUnavailable,
    GatewayTargetFailedToRespond,
    MbapFramer,
    ModbusExceptionResponse,
    Noise,
    RtuFramer,
    check_reset_energy_reply,
    exception_for,
    rtu_silence_s,
)
from metercom.errors import (
    ConfigError,
    InputError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.modbus_profile import (
    ActionSlot,
    DeviceEvent,
    Field,
    ModbusProfile,
    Point,
    Probe,
    RegisterTable,
    RelaySpec,
    RuleSlotSpec,
    VoltageModeSpec,
    load_modbus_profile,
)
from metercom.model.reading import Reading, ReadingValue
from metercom.model.rules.slots import RuleSlotError, image_of_registers, image_registers, slot_crc
from metercom.session.bus import BusScheduler
from metercom.transport import LineSettings, SimulatedEnd, Transport, open_transport

__all__ = [
    "Framing",
    "ModbusDevice",
    "ModbusSession",
    "ResetEnergyPdu",
    "RuleSlotStatus",
    "ScanResult",
    "decode_field",
    "encode_field",
    "encode_request",
    "line_silence_s",
    "open_modbus",
]

log = logging.getLogger(__name__)

Framing = Literal["rtu", "tcp"]

#: Smallest inter-frame silence trusted on links other than the simulated line (see module docstring).
OS_SILENCE_FLOOR_S: Final = 0.02
#: Time a broadcast (unit 0) is given before the next request (devices execute it silently).
DEFAULT_BROADCAST_DELAY_S: Final = 0.1
_LAYER: Final = "modbus"

_DATATYPES: Final = {
    "uint16": ModbusClientMixin.DATATYPE.UINT16,
    "int16": ModbusClientMixin.DATATYPE.INT16,
    "uint32": ModbusClientMixin.DATATYPE.UINT32,
    "int32": ModbusClientMixin.DATATYPE.INT32,
}


class ResetEnergyPdu(ModbusPDU):
    """PZEM-004T vendor function 0x42, reset energy: request and reply are the bare function code.

    Registered with pymodbus decoders (clients: ``client.register(ResetEnergyPdu)``; servers:
    ``custom_pdu=[ResetEnergyPdu]``). On a pymodbus server it only answers; it has no energy
    counter to reset.
    """

    function_code = RESET_ENERGY_FUNCTION
    rtu_frame_size = 4

    def encode(self) -> bytes:
        return b""

    def decode(self, data: bytes) -> None:
        del data

    async def datastore_update(self, context: Any, device_id: int) -> ModbusPDU:
        del context
        return ResetEnergyPdu(dev_id=device_id, transaction_id=self.transaction_id)


def encode_request(request: ModbusPDU) -> bytes:
    """The PDU bytes of a pymodbus request; raises :class:`LocalProtocolError` when it cannot be encoded."""
    try:
        return bytes((request.function_code,)) + request.encode()
    except (ValueError, TypeError, OverflowError, IndexError, struct.error) as exc:
        raise LocalProtocolError(f"cannot encode {type(request).__name__}: {exc}", layer=_LAYER) from exc


def decode_field(registers: Sequence[int], item: Field | Point) -> int:
    """The integer a point or field holds in ``registers`` (pymodbus ``convert_from_registers``)."""
    value = ModbusClientMixin.convert_from_registers(
        list(registers), _DATATYPES[item.datatype], word_order=item.word_order
    )
    if not isinstance(value, int):  # pragma: no cover - pymodbus returns int for integer types
        raise LocalProtocolError(
            f"{item.name}: pymodbus returned {value!r} for {item.datatype}", layer=_LAYER
        )
    return value


def encode_field(value: int, item: Field | Point) -> list[int]:
    """The registers holding integer ``value`` as ``item`` lays it out."""
    return ModbusClientMixin.convert_to_registers(
        value, _DATATYPES[item.datatype], word_order=item.word_order
    )


def line_silence_s(transport: Transport) -> float:
    """The silence that ends an RTU frame on ``transport`` (see the module docstring)."""
    line = transport.line or LineSettings()
    t35 = rtu_silence_s(line.baud_rate, line.bits_per_char)
    return t35 if isinstance(transport, SimulatedEnd) else max(t35, OS_SILENCE_FLOOR_S)


@dataclass(frozen=True, slots=True)
class ScanResult:
    """A unit that answered during a scan, and the profile it matched (``None``: unknown device)."""

    unit: int
    profile: str | None
    detail: str = ""

    def to_json(self) -> dict[str, object]:
        return {"unit": self.unit, "profile": self.profile, "detail": self.detail}


@dataclass
class SessionStats:
    """Counters of one session."""

    requests: int = 0
    #: Valid frames ignored while waiting for a reply (late replies, other units).
    ignored_frames: int = 0
    #: Corrupt frames received (CRC, truncated).
    corrupt_frames: int = 0
    #: Bytes reported as noise in front of frames.
    noise_bytes: int = 0
    #: Per request kind: completed conversations.
    by_function: dict[int, int] = field(default_factory=dict)


class ModbusSession:
    """A Modbus client on one link; see the module docstring.

    ``timeout_s`` is the reply timeout per attempt: from the end of the request to the first
    byte of the reply (an RTU reply that has started then gets the wire time of a 256-byte frame
    on top, so a long reply at a low baud rate is not cut off); ``retries`` the retries after a
    transport error or a corrupt reply. Pass a ``scheduler`` to share one with other users of
    the same physical link.
    """

    def __init__(
        self,
        transport: Transport,
        *,
        framing: Framing = "rtu",
        timeout_s: float = 1.0,
        retries: int = 2,
        scheduler: BusScheduler | None = None,
        silence_s: float | None = None,
        turnaround_s: float | None = None,
        broadcast_delay_s: float = DEFAULT_BROADCAST_DELAY_S,
    ) -> None:
        if framing not in ("rtu", "tcp"):
            raise InputError(f"framing must be 'rtu' or 'tcp', got {framing!r}")
        if timeout_s <= 0:
            raise InputError(f"timeout_s must be positive, got {timeout_s}")
        self.transport = transport
        self.framing: Framing = framing
        self.timeout_s = timeout_s
        self.retries = retries
        self.scheduler = scheduler or BusScheduler(
            f"modbus {transport.url}", timeout_s=2 * timeout_s + 1.0, retries=retries
        )
        self.broadcast_delay_s = broadcast_delay_s
        self._framer: RtuFramer | MbapFramer
        if framing == "rtu":
            self.silence_s = line_silence_s(transport) if silence_s is None else silence_s
            self._framer = RtuFramer(Role.CLIENT, silence_s=self.silence_s)
            line = transport.line
            # The master's own inter-frame gap: t3.5 of the line before each request.
            default_gap = rtu_silence_s(line.baud_rate, line.bits_per_char) if line is not None else 0.0
            self.turnaround_s = default_gap if turnaround_s is None else turnaround_s
            # Once a reply has started, it gets the wire time of the longest frame on top.
            self.max_frame_s = MAX_RTU_FRAME * (line or LineSettings()).char_time_s
        else:
            self.silence_s = 0.0
            self.max_frame_s = 0.0
            self._framer = MbapFramer(Role.CLIENT)
            self.turnaround_s = 0.0 if turnaround_s is None else turnaround_s
        self._decoder = DecodePDU(False)
        self._decoder.register(ResetEnergyPdu)
        self._transaction_id = 0
        self._idle_at = float("-inf")
        self.stats = SessionStats()

    def __repr__(self) -> str:
        return f"<ModbusSession {self.framing} {self.transport.url}>"

    async def close(self) -> None:
        await self.transport.close()

    async def __aenter__(self) -> ModbusSession:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- one conversation ----------------------------------------------------------------------

    async def execute(
        self,
        unit: int,
        request: ModbusPDU,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
        what: str | None = None,
    ) -> ModbusPDU:
        """Send ``request`` to ``unit`` and return the decoded reply.

        Raises the exception class of a Modbus exception response, ``TransportTimeout`` when no
        valid reply came in any attempt, ``RemoteProtocolError`` for a corrupt one.
        """
        if not 1 <= unit <= 255:
            raise InputError(f"unit must be 1..255 (0 is broadcast: use broadcast()), got {unit}")
        pdu = encode_request(request)
        reply_timeout_s = self.timeout_s if timeout_s is None else timeout_s
        label = what or f"function 0x{request.function_code:02X}"

        async def conversation() -> ModbusPDU:
            adu = await self._transact(unit, pdu, reply_timeout_s)
            return self.decode_reply(adu, request)

        self.stats.requests += 1
        reply = await self.scheduler.run(
            unit,
            conversation,
            timeout_s=2 * reply_timeout_s + self.max_frame_s + 1.0,
            retries=self.retries if retries is None else retries,
            what=label,
        )
        self.stats.by_function[request.function_code] = (
            self.stats.by_function.get(request.function_code, 0) + 1
        )
        return reply

    async def broadcast(self, request: ModbusPDU) -> None:
        """Send ``request`` to unit 0: every device executes it and none answers (writes only)."""
        if request.function_code in (0x01, 0x02, 0x03, 0x04):
            raise LocalProtocolError("a read cannot be broadcast: no device answers unit 0", layer=_LAYER)
        pdu = encode_request(request)
        async with self.scheduler.turn("broadcast"):
            await self._send(0, pdu)
            await asyncio.sleep(self.broadcast_delay_s)

    async def _send(self, unit: int, pdu: bytes) -> None:
        transport = self.transport
        loop = asyncio.get_running_loop()
        transport.discard_input()
        self._framer.discard()
        if self.framing == "rtu":
            wait_s = self._idle_at - loop.time()
            if wait_s > 0:
                await asyncio.sleep(wait_s)
        self._transaction_id = (self._transaction_id + 1) & 0xFFFF
        await transport.write(self._framer.send(Adu(unit, pdu, self._transaction_id)))
        await transport.drain()
        self._idle_at = loop.time() + self.turnaround_s

    async def _transact(self, unit: int, pdu: bytes, reply_timeout_s: float) -> Adu:
        loop = asyncio.get_running_loop()
        try:
            await self._send(unit, pdu)
            deadline = loop.time() + reply_timeout_s
            return await self._receive(unit, pdu[0], self._transaction_id, deadline, reply_timeout_s)
        finally:
            self._idle_at = loop.time() + self.turnaround_s

    async def _receive(
        self, unit: int, function: int, transaction_id: int, deadline: float, timeout_s: float
    ) -> Adu:
        framer = self._framer
        transport = self.transport
        loop = asyncio.get_running_loop()
        corrupt: RemoteProtocolError | None = None
        flushed = False
        started = False
        while True:
            try:
                event = framer.next_event()
            except RemoteProtocolError as exc:
                self.stats.corrupt_frames += 1
                if isinstance(framer, MbapFramer):
                    raise
                log.debug("%s: unit %d: corrupt frame while waiting: %s", transport.url, unit, exc)
                corrupt = exc
                continue
            if event is NEED_DATA:
                now = loop.time()
                if now >= deadline:
                    if not flushed and framer.buffered:
                        flushed = True
                        framer.flush()
                        continue
                    if corrupt is not None:
                        raise corrupt
                    raise TransportTimeout(
                        f"{transport.url}: unit {unit}: no reply to function 0x{function:02X} "
                        f"within {timeout_s:g} s"
                    )
                wait_s = deadline - now
                frame_deadline = framer.next_deadline()
                silence_due = frame_deadline is not None and frame_deadline - now < wait_s
                if frame_deadline is not None and silence_due:
                    wait_s = frame_deadline - now
                try:
                    data = await transport.read(512, timeout_s=max(wait_s, 0.0))
                except TransportTimeout:
                    if frame_deadline is not None and silence_due:
                        framer.handle_timeout(max(loop.time(), frame_deadline))
                    continue
                now = loop.time()
                if not started:
                    started = True
                    deadline = max(deadline, now + self.max_frame_s + timeout_s)
                framer.receive_data(data, now)
                continue
            if isinstance(event, Noise):
                self.stats.noise_bytes += len(event.data)
                log.debug("%s: noise before a frame: %s", transport.url, event.data.hex(" "))
                continue
            if (
                event.unit != unit
                or (event.function & 0x7F) != function
                or (event.transaction_id is not None and event.transaction_id != transaction_id)
            ):
                self.stats.ignored_frames += 1
                log.debug(
                    "%s: waiting for unit %d function 0x%02X, ignored a frame of unit %d function 0x%02X",
                    transport.url,
                    unit,
                    function,
                    event.unit,
                    event.function,
                )
                continue
            return event

    def decode_reply(self, adu: Adu, request: ModbusPDU) -> ModbusPDU:
        """Check and decode the reply ``adu`` to ``request`` (sans-I/O; see the module docstring)."""
        pdu = adu.pdu
        function = request.function_code
        if pdu[0] & 0x80:
            if len(pdu) != 2:
                raise RemoteProtocolError(
                    f"unit {adu.unit}: an exception response has 2 bytes, got {len(pdu)}",
                    layer=_LAYER,
                    data=pdu,
                )
            raise exception_for(pdu[1], unit=adu.unit, function=function)
        if function in (0x03, 0x04):
            expected = 2 + 2 * request.count
            if len(pdu) != expected or pdu[1] != 2 * request.count:
                raise RemoteProtocolError(
                    f"unit {adu.unit}: reply to a read of {request.count} registers must have "
                    f"{expected} bytes with byte count {2 * request.count}; "
                    f"got {len(pdu)} bytes, count {pdu[1]}",
                    layer=_LAYER,
                    data=pdu,
                )
        elif function in (0x06, 0x10) and len(pdu) != 5:
            raise RemoteProtocolError(
                f"unit {adu.unit}: reply to function 0x{function:02X} must have 5 bytes, got {len(pdu)}",
                layer=_LAYER,
                data=pdu,
            )
        elif function == RESET_ENERGY_FUNCTION:
            check_reset_energy_reply(pdu)
        reply = self._decoder.decode(pdu)
        if reply is None:
            raise RemoteProtocolError(
                f"unit {adu.unit}: pymodbus cannot decode the reply", layer=_LAYER, data=pdu
            )
        reply.dev_id = adu.unit
        if isinstance(request, WriteSingleRegisterRequest):
            if not isinstance(reply, WriteSingleRegisterResponse) or (
                reply.address,
                list(reply.registers),
            ) != (request.address, list(request.registers)):
                raise RemoteProtocolError(
                    f"unit {adu.unit}: write-register reply does not echo the request", layer=_LAYER, data=pdu
                )
        elif isinstance(request, WriteMultipleRegistersRequest) and (
            not isinstance(reply, WriteMultipleRegistersResponse)
            or (reply.address, reply.count) != (request.address, request.count)
        ):
            raise RemoteProtocolError(
                f"unit {adu.unit}: write-registers reply does not echo address and count",
                layer=_LAYER,
                data=pdu,
            )
        return reply

    # -- register access -------------------------------------------------------------------------

    async def read_registers(
        self,
        unit: int,
        table: RegisterTable | str,
        address: int,
        count: int = 1,
        *,
        timeout_s: float | None = None,
        retries: int | None = None,
    ) -> list[int]:
        """Read ``count`` registers of ``table`` (``input``: 0x04, ``holding``: 0x03)."""
        table = RegisterTable(table)
        request: ModbusPDU
        if table is RegisterTable.INPUT:
            request = ReadInputRegistersRequest(address=address, count=count, dev_id=unit)
        else:
            request = ReadHoldingRegistersRequest(address=address, count=count, dev_id=unit)
        reply = await self.execute(
            unit, request, timeout_s=timeout_s, retries=retries, what=f"read {table} 0x{address:04X}+{count}"
        )
        if not isinstance(reply, ReadHoldingRegistersResponse):  # pragma: no cover - checked by function code
            raise RemoteProtocolError(f"unit {unit}: unexpected reply {reply}", layer=_LAYER)
        return list(reply.registers)

    async def read_input_registers(self, unit: int, address: int, count: int = 1) -> list[int]:
        return await self.read_registers(unit, RegisterTable.INPUT, address, count)

    async def read_holding_registers(self, unit: int, address: int, count: int = 1) -> list[int]:
        return await self.read_registers(unit, RegisterTable.HOLDING, address, count)

    async def write_register(self, unit: int, address: int, value: int) -> None:
        """Write one holding register (function 0x06); the device must echo it."""
        request = WriteSingleRegisterRequest(address=address, registers=[value], dev_id=unit)
        if not 0 <= value <= 0xFFFF:
            raise InputError(f"a register holds 0..65535, got {value}")
        await self.execute(unit, request, what=f"write 0x{address:04X}={value}")

    async def write_registers(self, unit: int, address: int, values: Sequence[int]) -> None:
        """Write consecutive holding registers in one request (function 0x10)."""
        if not 1 <= len(values) <= 123 or not all(0 <= v <= 0xFFFF for v in values):
            raise InputError(f"write 1..123 registers of 0..65535, got {list(values)}")
        request = WriteMultipleRegistersRequest(address=address, registers=list(values), dev_id=unit)
        await self.execute(unit, request, what=f"write 0x{address:04X}+{len(values)}")

    async def reset_energy(self, unit: int) -> None:
        """PZEM vendor function 0x42: reset the energy counter(s)."""
        await self.execute(unit, ResetEnergyPdu(dev_id=unit), what="reset energy")

    # -- devices ---------------------------------------------------------------------------------

    def device(self, unit: int, profile: ModbusProfile | str) -> ModbusDevice:
        """The device at ``unit`` with ``profile`` (a profile or a profile name)."""
        return ModbusDevice(self, unit, load_modbus_profile(profile) if isinstance(profile, str) else profile)

    async def probe(self, unit: int, probe: Probe, *, timeout_s: float | None = None) -> list[int]:
        """Run a profile's identification request (no retries)."""
        return await self.read_registers(
            unit, probe.table, probe.address, probe.count, timeout_s=timeout_s, retries=0
        )

    async def scan(
        self,
        units: Iterable[int] = range(1, 248),
        *,
        profiles: Sequence[ModbusProfile] | None = None,
        timeout_s: float = 0.2,
        on_result: Callable[[ScanResult], None] | None = None,
    ) -> list[ScanResult]:
        """Find the units that answer on this link, and the profile each matches.

        Each unit is asked the identification request of each profile in turn, most specific
        first (profiles that expect given register values). No answer within ``timeout_s`` to
        the first request means nothing is there; an exception response or an unexpected value
        means a device is there and the next profile is tried.
        """
        if profiles is None:
            profiles = [load_modbus_profile(name) for name in ("pmtr3", "pzem004t")]
        candidates = list(profiles)
        candidates.sort(key=lambda p: p.identify.expect is None)
        found: list[ScanResult] = []
        for unit in units:
            result = await self._identify(unit, candidates, timeout_s)
            if result is not None:
                found.append(result)
                if on_result is not None:
                    on_result(result)
        return found

    async def _identify(
        self, unit: int, profiles: Sequence[ModbusProfile], timeout_s: float
    ) -> ScanResult | None:
        present = False
        notes: list[str] = []
        for profile in profiles:
            try:
                registers = await self.probe(unit, profile.identify, timeout_s=timeout_s)
            except TransportTimeout:
                if not present:
                    return None
                notes.append(f"{profile.name}: no answer")
                continue
            except (GatewayPathUnavailable, GatewayTargetFailedToRespond):
                return None  # a Modbus TCP gateway saying nobody is behind that unit id
            except ModbusExceptionResponse as exc:
                present = True
                notes.append(f"{profile.name}: exception 0x{int(exc.code or 0):02X}")
                continue
            except RemoteProtocolError as exc:
                present = True
                notes.append(f"{profile.name}: corrupt reply ({exc})")
                continue
            present = True
            expect = profile.identify.expect
            if expect is None or tuple(registers[: len(expect)]) == expect:
                return ScanResult(unit, profile.name)
            notes.append(f"{profile.name}: registers {registers} do not match")
        return ScanResult(unit, None, "; ".join(notes))


@dataclass(frozen=True, slots=True)
class RuleSlotStatus:
    """The status registers of one rule slot a device evaluates itself (``[relays.rules]``).

    ``state`` 1 = triggered; ``result`` of the last evaluation: 0 false, 1 true, 2 undecided,
    3 idle (empty slot or not yet evaluated); ``crc`` of the image the slot holds (0: empty).
    """

    index: int
    state: int
    result: int
    triggered_count: int
    changed_at: int
    crc: int


class ModbusDevice:
    """One unit on a :class:`ModbusSession`, read and commanded through its profile."""

    def __init__(self, session: ModbusSession, unit: int, profile: ModbusProfile) -> None:
        self.session = session
        self.unit = unit
        self.profile = profile

    def __repr__(self) -> str:
        return f"<ModbusDevice unit {self.unit} {self.profile.name} on {self.session.transport.url}>"

    # -- values ----------------------------------------------------------------------------------

    async def read_raw(self) -> dict[str, int]:
        """Raw integers of every polled point, by name (one request per ``[[read]]`` block)."""
        raw: dict[str, int] = {}
        for block in self.profile.read_blocks:
            registers = await self.session.read_registers(self.unit, block.table, block.address, block.count)
            for point in self.profile.points_in(block):
                offset = point.address - block.address
                raw[point.name] = decode_field(registers[offset : offset + point.width], point)
        return raw

    async def read(self) -> list[Reading]:
        """Every polled value as a :class:`Reading` (scaled, with unit and OBIS code)."""
        return self.profile.readings(await self.read_raw())

    async def read_point(self, name: str) -> ReadingValue:
        """One point's value, read on its own."""
        point = self.profile.point(name)
        registers = await self.session.read_registers(self.unit, point.table, point.address, point.width)
        return point.decode(decode_field(registers, point))

    async def write_point(self, name: str, value: ReadingValue | int | float) -> None:
        """Write a writable holding point (0x06 for one register, 0x10 for two)."""
        point = self.profile.point(name)
        if not point.writable:
            raise InputError(f"{self.profile.name}: point {name!r} is not writable")
        registers = encode_field(point.encode(value), point)
        if len(registers) == 1 and 0x06 in self.profile.functions:
            await self.session.write_register(self.unit, point.address, registers[0])
        else:
            await self.session.write_registers(self.unit, point.address, registers)

    # -- commands ----------------------------------------------------------------------------------

    async def reset_energy(self) -> None:
        """Reset the energy counter(s) with the profile's vendor function."""
        if self.profile.reset_energy_function is None:
            raise ConfigError(f"profile {self.profile.name} has no energy reset")
        await self.session.reset_energy(self.unit)

    async def change_address(self, new_unit: int, *, confirm: bool = True) -> ModbusDevice:
        """Give the device a new address; returns the device at the new address.

        The device answers the write from its old address and then listens on the new one;
        with ``confirm`` the new address is read back from there.
        """
        if self.profile.address_point is None:
            raise ConfigError(f"profile {self.profile.name} has no address register")
        if not 1 <= new_unit <= 247:
            raise InputError(f"a Modbus slave address is 1..247, got {new_unit}")
        await self.write_point(self.profile.address_point, new_unit)
        moved = ModbusDevice(self.session, new_unit, self.profile)
        if confirm:
            value = await moved.read_point(self.profile.address_point)
            read_back = _as_decimal(value, self.profile.address_point)
            if read_back != new_unit:
                raise RemoteProtocolError(
                    f"unit {new_unit}: address register reads {read_back} after setting it to {new_unit}",
                    layer=_LAYER,
                )
        return moved

    async def read_alarm_threshold(self) -> Decimal:
        name = self._need(self.profile.alarm_threshold_point, "alarm threshold")
        return _as_decimal(await self.read_point(name), name)

    async def set_alarm_threshold(self, watts: int | Decimal) -> None:
        await self.write_point(self._need(self.profile.alarm_threshold_point, "alarm threshold"), watts)

    def _need(self, name: str | None, what: str) -> str:
        if name is None:
            raise ConfigError(f"profile {self.profile.name} has no {what}")
        return name

    # -- clock -----------------------------------------------------------------------------------

    async def read_clock(self) -> datetime:
        """The device clock (UTC)."""
        clock = self.profile.clock
        if clock is None:
            raise ConfigError(f"profile {self.profile.name} has no clock (a PZEM-004T keeps no time)")
        value = await self.read_point(clock.point)
        if not isinstance(value, datetime):  # pragma: no cover - the profile loader checks the kind
            raise ConfigError(f"profile {self.profile.name}: clock point {clock.point!r} is not a unix_time")
        return value

    async def set_clock(self, when: datetime | None = None, *, tolerance_s: float = 2.0) -> datetime:
        """Set the device clock to ``when`` (default: now on the running clock); confirmed by reading back.

        Returns the device time read back. The clock registers are written in one request.
        """
        clock = self.profile.clock
        if clock is None:
            raise ConfigError(f"profile {self.profile.name} has no clock (a PZEM-004T keeps no time)")
        target = when if when is not None else current_clock().now()
        loop = asyncio.get_running_loop()
        started = loop.time()
        point = self.profile.point(clock.point)
        await self.session.write_registers(
            self.unit, point.address, encode_field(point.encode(target), point)
        )
        device_time = await self.read_clock()
        elapsed_s = loop.time() - started
        if abs((device_time - target).total_seconds()) > tolerance_s + elapsed_s:
            raise RemoteProtocolError(
                f"unit {self.unit}: device clock reads {device_time.isoformat()} after setting it to "
                f"{target.isoformat()}",
                layer=_LAYER,
            )
        return device_time

    # -- voltage mode ----------------------------------------------------------------------------

    async def read_voltage_mode(self) -> str:
        mode = self._voltage_mode()
        value = await self.read_point(mode.setting)
        return str(value)

    async def set_voltage_mode(self, mode: str) -> None:
        """``"LN"`` (line-to-neutral) or ``"LL"`` (line-to-line)."""
        await self.write_point(self._voltage_mode().setting, mode)

    def _voltage_mode(self) -> VoltageModeSpec:
        if self.profile.voltage_mode is None:
            raise ConfigError(f"profile {self.profile.name} has no voltage mode")
        return self.profile.voltage_mode

    # -- relays ----------------------------------------------------------------------------------

    async def read_relays(self) -> tuple[bool, ...]:
        """Relay states, relay 1 first (True = closed)."""
        relays = self._relays()
        mask = await self._relay_mask()
        return tuple(bool(mask >> i & 1) for i in range(relays.count))

    async def set_relay(self, relay: int, closed: bool) -> tuple[bool, ...]:
        """Close or open one relay (read-modify-write of the mask); returns the new states."""
        relays = self._relays()
        if not 1 <= relay <= relays.count:
            raise InputError(f"relay must be 1..{relays.count}, got {relay}")
        mask = await self._relay_mask()
        mask = mask | (1 << (relay - 1)) if closed else mask & ~(1 << (relay - 1))
        await self.write_point(relays.state, mask)
        return await self.read_relays()

    async def _relay_mask(self) -> int:
        name = self._relays().state
        return int(_as_decimal(await self.read_point(name), name))

    def _relays(self) -> RelaySpec:
        if self.profile.relays is None:
            raise ConfigError(f"profile {self.profile.name} has no relays")
        return self.profile.relays

    async def read_action_slots(self) -> list[ActionSlot]:
        """Every relay action slot (one request)."""
        relays = self._relays()
        layout = relays.slots
        if layout is None:
            raise ConfigError(f"profile {self.profile.name} has no relay action slots")
        registers = await self.session.read_holding_registers(
            self.unit, layout.base, layout.size * layout.count
        )
        slots = []
        for index in range(layout.count):
            record = registers[index * layout.size : (index + 1) * layout.size]
            slots.append(self.profile.decode_slot(index, _record_fields(record, layout.fields)))
        return slots

    async def write_action_slot(self, slot: ActionSlot) -> None:
        """Program one slot (all its registers in one request; the device re-arms it)."""
        layout = self._relays().slots
        if layout is None:
            raise ConfigError(f"profile {self.profile.name} has no relay action slots")
        fields = self.profile.encode_slot(slot)
        registers = [0] * layout.size
        for item in layout.fields:
            registers[item.offset : item.offset + item.width] = encode_field(fields[item.name], item)
        await self.session.write_registers(self.unit, layout.address(slot.index), registers)

    # -- rule slots (rules the device evaluates itself) -------------------------------------------

    def _rule_slots(self) -> RuleSlotSpec:
        relays = self._relays()
        if relays.rules is None:
            raise ConfigError(f"profile {self.profile.name} has no rule slots")
        return relays.rules

    async def read_rule_status(self) -> list[RuleSlotStatus]:
        """The status of every rule slot (one request)."""
        layout = self._rule_slots().status
        registers = await self.session.read_holding_registers(
            self.unit, layout.base, layout.size * layout.count
        )
        out = []
        for index in range(layout.count):
            fields = _record_fields(registers[index * layout.size : (index + 1) * layout.size], layout.fields)
            out.append(
                RuleSlotStatus(
                    index,
                    fields["state"],
                    fields["result"],
                    fields["triggered_count"],
                    fields["changed_at"],
                    fields["crc"],
                )
            )
        return out

    async def read_rule_image(self, index: int) -> bytes:
        """The image rule slot ``index`` holds (b"" when empty); its length and CRC are checked.

        Raises :class:`~metercom.model.rules.slots.RuleSlotError` (a RemoteProtocolError) when the
        registers are inconsistent.
        """
        spec = self._rule_slots()
        layout = spec.slots
        registers = await self.session.read_holding_registers(self.unit, layout.address(index), layout.size)
        fields = _record_fields(registers, layout.fields)
        image = image_of_registers(registers[spec.image_offset :], min(fields["length"], spec.image_bytes))
        if len(image) != fields["length"] or slot_crc(image) != fields["crc"]:
            raise RuleSlotError(
                f"unit {self.unit} rule slot {index}: length {fields['length']} / CRC 0x{fields['crc']:08X} "
                f"do not match the image it holds"
            )
        return image

    async def write_rule_image(self, index: int, image: bytes) -> None:
        """Write rule slot ``index`` whole in one 0x10 request (``b""`` empties it).

        The device checks the CRC and the image and refuses an invalid one with exception 0x03
        (IllegalDataValue), changing nothing.
        """
        spec = self._rule_slots()
        layout = spec.slots
        if len(image) > spec.image_bytes:
            raise InputError(
                f"{self.profile.name}: a rule slot holds at most {spec.image_bytes} bytes, "
                f"the image has {len(image)}"
            )
        registers = [0] * spec.image_offset
        header = {"length": len(image), "crc": slot_crc(image)}
        for item in layout.fields:
            registers[item.offset : item.offset + item.width] = encode_field(header[item.name], item)
        await self.session.write_registers(
            self.unit, layout.address(index), [*registers, *image_registers(image)]
        )

    # -- event log -------------------------------------------------------------------------------

    async def read_events(self, since_seq: int = 0) -> list[DeviceEvent]:
        """Events newer than sequence number ``since_seq`` still in the ring, oldest first.

        Entries overwritten while they were being read are skipped (their ``seq`` no longer
        matches); read again with the last ``seq`` to continue.
        """
        log_spec = self.profile.event_log
        if log_spec is None:
            raise ConfigError(f"profile {self.profile.name} has no event log")
        newest = int(_as_decimal(await self.read_point(log_spec.count), log_spec.count))
        first = max(since_seq + 1, newest - log_spec.capacity + 1, 1)
        if first > newest:
            return []
        layout = log_spec.entries
        per_request = max(1, 125 // layout.size)
        wanted = list(range(first, newest + 1))
        by_index: dict[int, list[int]] = {}
        indices = sorted({log_spec.index_of(seq) for seq in wanted})
        # Read runs of consecutive ring indices, at most 125 registers per request.
        run: list[int] = []
        for index in [*indices, -1]:
            if run and (index != run[-1] + 1 or len(run) == per_request or index < 0):
                registers = await self.session.read_holding_registers(
                    self.unit, layout.address(run[0]), layout.size * len(run)
                )
                for i, ring_index in enumerate(run):
                    by_index[ring_index] = registers[i * layout.size : (i + 1) * layout.size]
                run = []
            if index >= 0:
                run.append(index)
        events = []
        for seq in wanted:
            event = self.profile.decode_event(_record_fields(by_index[log_spec.index_of(seq)], layout.fields))
            if event.seq == seq:
                events.append(event)
        return events


def _as_decimal(value: ReadingValue, name: str) -> Decimal:
    if not isinstance(value, Decimal):
        raise ConfigError(f"point {name!r} must be a number point, it gave {value!r}")
    return value


def _record_fields(record: Sequence[int], fields: Iterable[Field]) -> dict[str, int]:
    return {item.name: decode_field(record[item.offset : item.offset + item.width], item) for item in fields}


async def open_modbus(
    url: str,
    *,
    framing: Framing | None = None,
    line: LineSettings | None = None,
    connect_timeout_s: float = 10.0,
    **options: Any,
) -> ModbusSession:
    """Open a Modbus session on the link ``url`` names (see ``metercom.transport.url``).

    ``framing`` defaults to ``tcp`` (MBAP) for ``tcp://`` URLs and to ``rtu`` for everything
    else; pass ``framing="rtu"`` for RTU tunnelled through a transparent TCP gateway. Serial
    links default to 9600 Bd 8N1 (the PZEM's settings) unless the URL or ``line`` says otherwise.
    ``options`` go to :class:`ModbusSession`.
    """
    if framing is None:
        framing = "tcp" if url.strip().lower().startswith("tcp://") else "rtu"
    is_serial = not url.strip().lower().startswith(("tcp://", "udp://"))
    if line is None and is_serial and "baud=" not in url and "format=" not in url:
        line = LineSettings(9600)
    transport = await open_transport(url, line=line, connect_timeout_s=connect_timeout_s)
    return ModbusSession(transport, framing=framing, **options)
