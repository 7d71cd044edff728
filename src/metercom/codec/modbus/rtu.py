"""Modbus RTU framing, sans-I/O: frames cut from a byte stream by length, CRC and silence.

Rule (Modbus over Serial Line v1.02, clause 2.5.1.1): an RTU frame is the unit address, the
PDU and a CRC-16, and frames are separated by at least 3.5 character times of silence (t3.5;
a fixed 1.750 ms above 19,200 Bd). pymodbus removed this timing in 3.13 and finds frames by
CRC alone; that works for one master talking to one device, but cannot end a frame of an
unknown function code and cannot tell a truncated reply from a slow one. This module supplies
the missing piece for both roles.

Theory of operation. :class:`RtuFramer` holds the bytes of the frame being received and ends
it in one of two ways:

* **By length**, the moment its last byte arrives: the function code (and a byte count) give
  the frame length (:func:`~metercom.codec.modbus.functions.rtu_frame_length`); when that many
  bytes are in and their CRC is right, the frame is complete. This keeps framing correct where
  silence cannot be observed (USB adapters deliver bytes in bursts, ptys and RTU-over-TCP
  tunnels have no timing at all) and finds back-to-back frames in one chunk.
* **By silence**: the caller passes the arrival time with ``receive_data(data, now)``, asks
  :meth:`~RtuFramer.next_deadline` when t3.5 of silence will have passed, and calls
  :meth:`~RtuFramer.handle_timeout` then. Whatever arrived since the last silence is one frame:
  a valid frame of an unknown function code, or a corrupt or truncated frame, reported as
  :class:`~metercom.errors.FrameError`. A few stray bytes before a valid frame (an RS-485
  driver switching on often produces one) are reported as :class:`Noise` and the frame kept.

``next_event()`` returns :class:`Adu`, :class:`Noise` or :data:`NEED_DATA` and raises only
:class:`~metercom.errors.FrameError` (a :class:`~metercom.errors.RemoteProtocolError`); after
raising it goes on with the bytes that follow. Events depend only on the bytes and on where
the silences fall, never on how the bytes were chunked. More than 256 bytes without an end is
an error; the rest is dropped up to the next silence ("hunting"). Work per byte is bounded:
the CRC at the expected length is computed once, and the search for a frame behind noise at a
silence tries at most ``max_noise`` offsets.

Caveats: the inter-character limit t1.5 is not enforced (USB adapters and OS scheduling break
it routinely, and the spec allows relaxing it); a silence counts only when the caller reports it
with ``handle_timeout`` (bytes fed late, in one chunk, continue the frame). Pass ``silence_s``
larger than t3.5 for USB adapters (their latency timer, 16 ms on FTDI chips, exceeds t3.5 at
9600 Bd), or ``None`` where there is no timing at all; then only lengths end frames and
:meth:`~RtuFramer.flush` ends the rest.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.modbus.crc import crc16_modbus
from metercom.codec.modbus.functions import MAX_RTU_FRAME, UNKNOWN, rtu_frame_length
from metercom.errors import FrameError, LocalProtocolError

__all__ = [
    "MIN_RTU_FRAME",
    "Adu",
    "Noise",
    "RtuFramer",
    "encode_rtu",
    "rtu_char_time_s",
    "rtu_silence_s",
]

_LAYER: Final = "modbus-rtu"
#: Smallest RTU frame: unit, function code, CRC.
MIN_RTU_FRAME: Final = 4
#: Above this baud rate the spec fixes t3.5 at 1.750 ms and t1.5 at 0.750 ms.
_FIXED_TIMING_ABOVE_BAUD: Final = 19200


class Adu(NamedTuple):
    """One Modbus application data unit: the unit id and the PDU (function code + data).

    ``transaction_id`` is the MBAP transaction id on Modbus TCP and ``None`` on RTU.
    """

    unit: int
    pdu: bytes
    transaction_id: int | None = None

    @property
    def function(self) -> int:
        """The function code byte (bit 7 set in an exception response)."""
        return self.pdu[0]


class Noise(NamedTuple):
    """Bytes dropped in front of a valid frame (line noise, a driver's turn-on glitch)."""

    data: bytes
    reason: str


def rtu_char_time_s(baud_rate: int, bits_per_char: int = 11) -> float:
    """Seconds one character takes; the spec counts 11 bits (8 data + parity or 2 stop bits)."""
    return bits_per_char / baud_rate


def rtu_silence_s(baud_rate: int, bits_per_char: int = 11) -> float:
    """t3.5: the silence that ends a frame (1.750 ms above 19,200 Bd).

    ``bits_per_char`` is the line's real character length: PZEM modules run 8N1 (10 bits),
    which gives 3.65 ms at 9600 Bd, where the spec's 11-bit character gives 4.01 ms.
    """
    if baud_rate <= 0 or bits_per_char <= 0:
        raise LocalProtocolError(
            f"baud rate and bits per character must be positive, got {baud_rate}, {bits_per_char}",
            layer=_LAYER,
        )
    if baud_rate > _FIXED_TIMING_ABOVE_BAUD:
        return 0.00175
    return 3.5 * bits_per_char / baud_rate


def encode_rtu(unit: int, pdu: bytes) -> bytes:
    """The RTU frame for ``pdu`` to or from ``unit``: address, PDU, CRC (low byte first)."""
    if not 0 <= unit <= 255:
        raise LocalProtocolError(f"unit address must be 0..255, got {unit}", layer=_LAYER)
    if not 1 <= len(pdu) <= MAX_RTU_FRAME - 3:
        raise LocalProtocolError(f"a PDU has 1..253 bytes, got {len(pdu)}", layer=_LAYER)
    frame = bytes((unit,)) + pdu
    return frame + crc16_modbus(frame).to_bytes(2, "little")


class RtuFramer:
    """Cut a byte stream into RTU frames; see the module docstring.

    ``role`` is the receiver's: a SERVER (device, simulator) receives requests, a CLIENT
    (master) receives responses. ``silence_s`` is t3.5 (see :func:`rtu_silence_s`), or
    ``None`` when arrival times mean nothing.
    """

    def __init__(self, role: Role, *, silence_s: float | None, max_noise: int = 8) -> None:
        if silence_s is not None and silence_s <= 0:
            raise LocalProtocolError(f"silence_s must be positive, got {silence_s}", layer=_LAYER)
        if max_noise < 0:
            raise LocalProtocolError(f"max_noise must not be negative, got {max_noise}", layer=_LAYER)
        self.role = role
        self.silence_s = silence_s
        self.max_noise = max_noise
        self._buf = bytearray()
        self._events: deque[Adu | Noise | FrameError] = deque()
        self._last_rx_s: float | None = None
        # Dropping bytes until the next silence (after a frame ran past 256 bytes).
        self._hunting = False
        #: Bytes dropped while hunting.
        self.dropped = 0

    @property
    def buffered(self) -> int:
        """Bytes of a frame received so far."""
        return len(self._buf)

    # -- sending -------------------------------------------------------------------------------

    def send(self, adu: Adu) -> bytes:
        """The bytes to transmit for ``adu``."""
        return encode_rtu(adu.unit, adu.pdu)

    # -- receiving -----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Take bytes whose last one arrived at ``now``.

        A silence only counts when :meth:`handle_timeout` reports it: bytes fed without that
        call in between continue the frame, however late they are fed. (A chunk read late
        carries the time of the read, which says nothing about the gap before its first byte.)
        """
        if now is not None:
            self._last_rx_s = now
        if not data:
            return
        if self._hunting:
            self.dropped += len(data)
            return
        self._buf += data
        self._scan()

    def next_event(self) -> Adu | Noise | NeedData:
        """The next frame or noise report, or :data:`NEED_DATA`; raises :class:`FrameError`."""
        if not self._events:
            return NEED_DATA
        event = self._events.popleft()
        if isinstance(event, FrameError):
            raise event
        return event

    def next_deadline(self) -> float | None:
        """When t3.5 of silence will have passed after the last byte, if that would end a frame."""
        if self.silence_s is None or self._last_rx_s is None or not (self._buf or self._hunting):
            return None
        return self._last_rx_s + self.silence_s

    def handle_timeout(self, now: float) -> None:
        """Call at :meth:`next_deadline`: the silence ends the frame being received."""
        deadline = self.next_deadline()
        if deadline is not None and now >= deadline:
            self._end_by_silence()

    def flush(self) -> None:
        """End of input (a reply timeout where there is no timing): end the frame being received."""
        self._end_by_silence()

    def discard(self) -> int:
        """Forget the frame being received and every queued event; returns the bytes dropped."""
        dropped = len(self._buf)
        self._buf.clear()
        self._events.clear()
        self._hunting = False
        return dropped

    # -- internals -----------------------------------------------------------------------------

    def _scan(self) -> None:
        buf = self._buf
        role = self.role
        while len(buf) >= MIN_RTU_FRAME:
            length = rtu_frame_length(buf, role)
            if length < MIN_RTU_FRAME or length > MAX_RTU_FRAME or len(buf) < length:
                break  # unknown function, byte count to come, or an impossible count: wait
            if crc16_modbus(memoryview(buf)[:length]) != 0:
                break  # wrong CRC at the expected length: the silence will decide
            self._events.append(Adu(buf[0], bytes(buf[1 : length - 2])))
            del buf[:length]
        if len(buf) > MAX_RTU_FRAME:
            self._events.append(
                FrameError(
                    f"no end of frame after {MAX_RTU_FRAME} bytes (an RTU frame has at most "
                    f"{MAX_RTU_FRAME}); dropping input until the next silence",
                    layer=_LAYER,
                    data=bytes(buf[:32]),
                )
            )
            self.dropped += len(buf)
            buf.clear()
            self._hunting = True

    def _end_by_silence(self) -> None:
        self._hunting = False
        if not self._buf:
            return
        data = bytes(self._buf)
        self._buf.clear()
        if len(data) >= MIN_RTU_FRAME and crc16_modbus(data) == 0:
            self._events.append(Adu(data[0], data[1:-2]))
            return
        for skip in range(1, min(self.max_noise, len(data) - MIN_RTU_FRAME) + 1):
            candidate = data[skip:]
            if crc16_modbus(candidate) == 0 and rtu_frame_length(candidate, self.role) in (
                len(candidate),
                UNKNOWN,
            ):
                self._events.append(Noise(data[:skip], "bytes before a frame"))
                self._events.append(Adu(candidate[0], candidate[1:-2]))
                return
        if len(data) < MIN_RTU_FRAME:
            message = (
                f"{len(data)} byte(s) between silences: too short for a frame "
                f"({MIN_RTU_FRAME} bytes minimum); a truncated frame or line noise"
            )
        else:
            expected = rtu_frame_length(data, self.role)
            told = f", the function code implies {expected} bytes" if expected >= MIN_RTU_FRAME else ""
            message = (
                f"CRC mismatch in a {len(data)}-byte frame{told}: frame says "
                f"0x{int.from_bytes(data[-2:], 'little'):04X}, computed 0x{crc16_modbus(data[:-2]):04X}"
            )
        self._events.append(FrameError(message, layer=_LAYER, data=data))
