"""Modbus TCP framing (MBAP header), sans-I/O, with errors where pymodbus stalls silently.

Rule (Modbus Messaging on TCP/IP v1.0b, clause 3.1.3): every ADU is a 7-byte MBAP header
(transaction id 2 B, protocol id 0 2 B, length 2 B counting the unit id and the PDU, unit id
1 B) followed by the PDU; no CRC. The length is 2..254 (unit id plus a PDU of 1..253 bytes).

Theory of operation: :class:`MbapFramer` buffers bytes and returns each complete ADU. A
protocol id other than 0 or a length outside 2..254 means the stream is not Modbus TCP or has
lost its sync, and TCP offers no resynchronisation: the framer raises
:class:`~metercom.errors.RemoteProtocolError` and keeps raising it, so the session closes the
connection. (pymodbus's socket framer waits forever on such input.) The timer verbs exist for
symmetry with :class:`~metercom.codec.modbus.rtu.RtuFramer` and do nothing.
"""

from __future__ import annotations

from collections import deque
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.modbus.rtu import Adu
from metercom.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["MBAP_HEADER_LENGTH", "MbapFramer", "encode_mbap"]

_LAYER: Final = "modbus-tcp"
MBAP_HEADER_LENGTH: Final = 7
_MAX_LENGTH: Final = 254


def encode_mbap(transaction_id: int, unit: int, pdu: bytes) -> bytes:
    """MBAP header + ``pdu``."""
    if not 0 <= transaction_id <= 0xFFFF:
        raise LocalProtocolError(f"transaction id must be 0..65535, got {transaction_id}", layer=_LAYER)
    if not 0 <= unit <= 255:
        raise LocalProtocolError(f"unit id must be 0..255, got {unit}", layer=_LAYER)
    if not 1 <= len(pdu) <= _MAX_LENGTH - 1:
        raise LocalProtocolError(f"a PDU has 1..253 bytes, got {len(pdu)}", layer=_LAYER)
    header = transaction_id.to_bytes(2, "big") + b"\x00\x00" + (len(pdu) + 1).to_bytes(2, "big")
    return header + bytes((unit,)) + pdu


class MbapFramer:
    """Cut a Modbus TCP byte stream into ADUs; see the module docstring."""

    def __init__(self, role: Role) -> None:
        self.role = role
        self._buf = bytearray()
        self._events: deque[Adu] = deque()
        # (message, data) once the stream is found not to be Modbus TCP.
        self._broken: tuple[str, bytes] | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def send(self, adu: Adu) -> bytes:
        return encode_mbap(adu.transaction_id or 0, adu.unit, adu.pdu)

    def receive_data(self, data: bytes | bytearray | memoryview, now: float | None = None) -> None:
        """Take received bytes (``now`` is accepted for symmetry and ignored)."""
        del now
        if self._broken is not None or not data:
            return
        self._buf += data
        buf = self._buf
        while len(buf) >= MBAP_HEADER_LENGTH:
            protocol_id = (buf[2] << 8) | buf[3]
            length = (buf[4] << 8) | buf[5]
            if protocol_id != 0 or not 2 <= length <= _MAX_LENGTH:
                problem = (
                    f"protocol id {protocol_id} (Modbus is 0)"
                    if protocol_id != 0
                    else f"length field {length} (expected 2..{_MAX_LENGTH})"
                )
                message = (
                    f"not a Modbus TCP header: {problem}; the stream cannot be resynchronised, "
                    "reconnect (is this port really Modbus TCP, or RTU over TCP?)"
                )
                self._broken = (message, bytes(buf[:32]))
                buf.clear()
                return
            end = 6 + length
            if len(buf) < end:
                return
            self._events.append(Adu(buf[6], bytes(buf[7:end]), (buf[0] << 8) | buf[1]))
            del buf[:end]

    def next_event(self) -> Adu | NeedData:
        """The next ADU or :data:`NEED_DATA`; raises :class:`RemoteProtocolError` once broken."""
        if self._events:
            return self._events.popleft()
        if self._broken is not None:
            message, data = self._broken
            raise RemoteProtocolError(message, layer=_LAYER, data=data)
        return NEED_DATA

    def next_deadline(self) -> float | None:
        return None

    def handle_timeout(self, now: float) -> None:
        del now

    def flush(self) -> None:
        return None

    def discard(self) -> int:
        dropped = len(self._buf)
        self._buf.clear()
        self._events.clear()
        return dropped
