"""HDLC frame format type 3 of DLMS/COSEM: one frame to and from bytes, and a stream splitter.

Rule (IEC 62056-46:2002+A1:2006 clause 6.4 "MAC sublayer"; Green Book clause 8.4)::

    7E | format (2) | destination (1,2,4) | source (1,2,4) | control | HCS (2) | information | FCS (2) | 7E

* Flag 0x7E opens and closes a frame; consecutive frames may share one flag (the closing
  flag of one is the opening flag of the next), and idle flags may repeat. Async lines carry
  no byte stuffing: a 0x7E inside a frame is data, found by the length, not by scanning.
* Frame format: ``1010 S LLL LLLLLLLL``: the type 3 identifier 0xA in the top four bits, the
  segmentation bit S (more segments of the same information follow), and an 11-bit frame
  length counting every byte between the flags (so a frame can be at most 2047 + 2 bytes).
* Addresses: see :mod:`metercom.codec.hdlc.address`. On the wire the destination comes
  first: a client's command frame is addressed to the server, the response to the client.
* Control: I (information, ``RRR P SSS 0``, N(R) and N(S) modulo 8); S frames
  ``RRR P/F TT 01``: RR (receive ready), RNR (receive not ready), REJ (reject); U frames
  ``MMM P/F MM 11``: SNRM (set normal response mode), DISC (disconnect), UA (unnumbered
  acknowledge), DM (disconnected mode), FRMR (frame reject), UI (unnumbered information).
* HCS: FCS-16 over format, addresses and control; present only when an information field
  follows. FCS: FCS-16 over everything between the flags except itself
  (:mod:`metercom.codec.hdlc.fcs`).

Theory of operation. :meth:`HdlcFrame.from_bytes` checks one complete frame (flags, format
type, length, addresses, control, HCS, FCS) and raises :class:`FrameError` for integrity
failures and :class:`RemoteProtocolError` for well-formed nonsense (an undefined control
field). It is the hot path of every DLMS reader, so it avoids per-byte Python: the control
field is one table lookup, addresses are cached, and both checks are two calls into C
(:func:`binascii.crc_hqx` over bit-reversed bytes, see :mod:`~metercom.codec.hdlc.fcs`).

:class:`HdlcFrameSplitter` turns a byte stream into candidate frames. It is bounded (garbage
is reported in pieces of at most ``max_garbage`` bytes, frames longer than ``max_frame_length``
are refused) and deterministic: a decision is only taken once the bytes it depends on are
there, so whole input, single bytes and random splits give identical results (DESIGN.md
section 2). A false start (a 0x7E in noise followed by something that looks like a frame
format) is detected by the format type, the address extension bits, the HCS once the header
is complete, the length bound and finally the closing flag; the splitter then drops that flag
and resynchronises on the next one.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData
from metercom.codec.hdlc.address import HdlcAddress, decode_address
from metercom.codec.hdlc.fcs import GOOD_RESIDUE, REVERSE_BITS, fcs16_bytes, fcs_residue
from metercom.errors import FrameError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "FLAG",
    "MAX_FRAME_LENGTH",
    "DiscardedBytes",
    "FrameKind",
    "HdlcFrame",
    "HdlcFrameSplitter",
]

_LAYER = "hdlc"

FLAG: Final = 0x7E
#: Largest value of the 11-bit frame length subfield (bytes between the flags).
MAX_FRAME_LENGTH: Final = 0x7FF
#: Smallest frame: format (2) + destination (1) + source (1) + control (1) + FCS (2).
MIN_FRAME_LENGTH: Final = 7


class FrameKind(enum.Enum):
    """Frame types of IEC 62056-46; the value is the control byte with P/F, N(R), N(S) zero."""

    I = 0x00  # noqa: E741 - the spec's name: information frame
    RR = 0x01
    RNR = 0x05
    REJ = 0x09
    SNRM = 0x83
    DISC = 0x43
    UA = 0x63
    DM = 0x0F
    FRMR = 0x87
    UI = 0x03

    @property
    def is_information(self) -> bool:
        return self is FrameKind.I

    @property
    def is_supervisory(self) -> bool:
        return self in _SUPERVISORY

    @property
    def carries_receive_sequence(self) -> bool:
        """True for frames with an N(R) field: I, RR, RNR, REJ."""
        return self is FrameKind.I or self in _SUPERVISORY


_SUPERVISORY: Final = frozenset({FrameKind.RR, FrameKind.RNR, FrameKind.REJ})


def _control_table() -> tuple[tuple[FrameKind, bool, int, int] | None, ...]:
    """Index: control byte; value: (kind, poll/final, N(S), N(R)) or None for undefined codes."""
    table: list[tuple[FrameKind, bool, int, int] | None] = []
    unnumbered = {k.value: k for k in FrameKind if k.value & 0x03 == 0x03}
    supervisory = {k.value: k for k in _SUPERVISORY}
    for control in range(256):
        pf = bool(control & 0x10)
        if control & 0x01 == 0:
            table.append((FrameKind.I, pf, (control >> 1) & 7, control >> 5))
        elif control & 0x03 == 0x01:
            kind = supervisory.get(control & 0x0F)
            table.append((kind, pf, 0, control >> 5) if kind is not None else None)
        else:
            kind = unnumbered.get(control & 0xEF)
            table.append((kind, pf, 0, 0) if kind is not None else None)
    return tuple(table)


_CONTROL: Final = _control_table()


@dataclass(frozen=True, slots=True)
class HdlcFrame:
    """One HDLC frame format type 3.

    ``send_sequence_number`` N(S) is used by I frames only, ``receive_sequence_number`` N(R)
    by I, RR, RNR and REJ frames. ``poll_final`` is the P bit in a command (client to
    server) and the F bit in a response. ``segmented`` is the frame format's segmentation
    bit: more of the same information field follows in the next frame.
    """

    kind: FrameKind
    destination: HdlcAddress
    source: HdlcAddress
    poll_final: bool = True
    send_sequence_number: int = 0
    receive_sequence_number: int = 0
    information: bytes = b""
    segmented: bool = False

    @property
    def control(self) -> int:
        """The control byte."""
        value = self.kind.value | (0x10 if self.poll_final else 0)
        if self.kind is FrameKind.I:
            value |= (self.receive_sequence_number << 5) | (self.send_sequence_number << 1)
        elif self.kind in _SUPERVISORY:
            value |= self.receive_sequence_number << 5
        return value

    def to_bytes(self) -> bytes:
        """Encode the frame, flags included. Raises :class:`LocalProtocolError` on bad fields."""
        if not (0 <= self.send_sequence_number <= 7 and 0 <= self.receive_sequence_number <= 7):
            raise LocalProtocolError(
                f"sequence numbers are modulo 8, got N(S)={self.send_sequence_number} "
                f"N(R)={self.receive_sequence_number}",
                layer=_LAYER,
            )
        header = self.destination.to_bytes() + self.source.to_bytes() + bytes((self.control,))
        info = self.information
        length = 2 + len(header) + 2 + (len(info) + 2 if info else 0)
        if length > MAX_FRAME_LENGTH:
            raise LocalProtocolError(
                f"frame of {length} bytes exceeds the 11-bit length field ({MAX_FRAME_LENGTH}); "
                "segment the information field",
                layer=_LAYER,
            )
        fmt = 0xA000 | (0x0800 if self.segmented else 0) | length
        body = bytes((fmt >> 8, fmt & 0xFF)) + header
        if info:
            body += fcs16_bytes(body)
            body += info
        return b"\x7e" + body + fcs16_bytes(body) + b"\x7e"

    @classmethod
    def from_bytes(cls, data: bytes) -> HdlcFrame:
        """Decode exactly one frame, opening and closing flags included.

        Raises :class:`FrameError` on a missing flag, wrong format type, length mismatch,
        malformed address, bad HCS or bad FCS, and :class:`RemoteProtocolError` on an
        undefined control field.
        """
        n = len(data)
        if n < MIN_FRAME_LENGTH + 2:
            raise FrameError(f"truncated frame: {n} bytes, at least 9 needed", layer=_LAYER, data=data)
        if data[0] != FLAG or data[n - 1] != FLAG:
            raise FrameError("frame not enclosed in 0x7E flags", layer=_LAYER, data=data)
        fmt = data[1]
        if fmt & 0xF0 != 0xA0:
            raise FrameError(
                f"frame format type {fmt >> 4:#x}, only type 3 (0xA) is defined for DLMS",
                layer=_LAYER,
                data=data,
            )
        length = ((fmt & 0x07) << 8) | data[2]
        if length != n - 2:
            raise FrameError(
                f"frame length field says {length} bytes, {n - 2} are between the flags",
                layer=_LAYER,
                data=data,
            )
        destination, pos = decode_address(data, 3)
        source, pos = decode_address(data, pos)
        if pos >= n - 3:
            raise FrameError("frame ends before its control field and FCS", layer=_LAYER, data=data)
        entry = _CONTROL[data[pos]]
        if entry is None:
            raise RemoteProtocolError(
                f"undefined HDLC control field 0x{data[pos]:02x}", layer=_LAYER, data=data
            )
        pos += 1
        reversed_bits = data.translate(REVERSE_BITS)
        if pos == n - 3:
            information = b""
            if fcs_residue(reversed_bits[1 : n - 1]) != GOOD_RESIDUE:
                raise FrameError("FCS mismatch", layer=_LAYER, data=data)
        else:
            if pos + 2 >= n - 3:
                raise FrameError(
                    "information field missing after the HCS (or a partial HCS)", layer=_LAYER, data=data
                )
            if fcs_residue(reversed_bits[1 : pos + 2]) != GOOD_RESIDUE:
                raise FrameError("HCS mismatch", layer=_LAYER, data=data)
            if fcs_residue(reversed_bits[pos + 2 : n - 1], GOOD_RESIDUE) != GOOD_RESIDUE:
                raise FrameError("FCS mismatch", layer=_LAYER, data=data)
            information = data[pos + 2 : n - 3]
        kind, pf, ns, nr = entry
        return cls(kind, destination, source, pf, ns, nr, information, bool(fmt & 0x08))


@dataclass(frozen=True, slots=True)
class DiscardedBytes:
    """Bytes the splitter skipped while looking for a frame (noise, a false start, a partial frame)."""

    data: bytes


class HdlcFrameSplitter:
    """Cut a byte stream into candidate HDLC frames (flags included), bounded and deterministic.

    ``feed(data)`` appends bytes; ``next()`` returns the next candidate frame as ``bytes``,
    a :class:`DiscardedBytes` report, or :data:`NEED_DATA`. Frames are not FCS-checked here;
    pass them to :meth:`HdlcFrame.from_bytes`. The header check sequence is checked, because
    it tells a real frame start from noise before the whole claimed length has arrived.
    """

    def __init__(self, *, max_frame_length: int = MAX_FRAME_LENGTH, max_garbage: int = 256) -> None:
        if not MIN_FRAME_LENGTH <= max_frame_length <= MAX_FRAME_LENGTH:
            raise LocalProtocolError(
                f"max_frame_length must be {MIN_FRAME_LENGTH}..{MAX_FRAME_LENGTH}", layer=_LAYER
            )
        if max_garbage < 1:
            raise LocalProtocolError("max_garbage must be at least 1", layer=_LAYER)
        self.max_frame_length = max_frame_length
        self.max_garbage = max_garbage
        self._buffer = bytearray()

    @property
    def buffered(self) -> int:
        """Number of bytes held, waiting for the rest of a frame."""
        return len(self._buffer)

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        self._buffer += data

    def __iter__(self) -> Iterator[bytes | DiscardedBytes]:
        while (item := self.next()) is not NEED_DATA:
            yield item

    def next(self) -> bytes | DiscardedBytes | NeedData:
        buf = self._buffer
        while buf:
            if buf[0] != FLAG:
                end = buf.find(FLAG)
                if end < 0:
                    if len(buf) < self.max_garbage:
                        return NEED_DATA
                    end = self.max_garbage
                end = min(end, self.max_garbage)
                garbage = bytes(buf[:end])
                del buf[:end]
                return DiscardedBytes(garbage)
            # buf[0] is a flag: an opening flag, an idle flag, or a false start.
            if len(buf) < 2:
                return NEED_DATA
            if buf[1] == FLAG:
                del buf[0]  # idle (time fill) flag
                continue
            if len(buf) < 3:
                return NEED_DATA
            verdict = self._check_start(buf)
            if verdict is NEED_DATA:
                return NEED_DATA
            if verdict is False:
                del buf[0]  # false start: what follows is reported as garbage up to the next flag
                continue
            length = verdict
            if len(buf) < length + 2:
                return NEED_DATA
            if buf[length + 1] != FLAG:
                del buf[0]
                continue
            frame = bytes(buf[: length + 2])
            del buf[: length + 1]  # keep the closing flag: it may open the next frame
            return frame
        return NEED_DATA

    def _check_start(self, buf: bytearray) -> int | bool | NeedData:
        """Is the flag at ``buf[0]`` the start of a frame? Return its length, False, or NEED_DATA."""
        fmt = buf[1]
        if fmt & 0xF0 != 0xA0:
            return False
        length = ((fmt & 0x07) << 8) | buf[2]
        if length < MIN_FRAME_LENGTH or length > self.max_frame_length:
            return False
        # Walk the two addresses (extension bits) as far as the bytes go.
        pos = 3
        for _ in range(2):
            start = pos
            while True:
                if pos - start >= 4:
                    return False
                if pos >= len(buf):
                    return NEED_DATA
                byte = buf[pos]
                pos += 1
                if byte & 1:
                    break
            if pos - start == 3:
                return False
        # buf[pos] is the control field; the header (format to control) is ``pos`` bytes long.
        # Without an information field the frame is header + FCS; with one it is header + HCS
        # + at least one byte + FCS.
        if length == pos + 2:
            return length
        if length < pos + 5:
            return False
        if len(buf) < pos + 3:
            return NEED_DATA
        if fcs_residue(bytes(buf[1 : pos + 3]).translate(REVERSE_BITS)) != GOOD_RESIDUE:
            return False
        return length
