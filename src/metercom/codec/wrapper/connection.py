"""Sans-I/O IEC 62056-47 wrapper connection for the client and the server role, TCP or UDP.

Rule (IEC 62056-47:2006, the COSEM transport layers for IPv4 networks; Green Book clause 7.3):
the wrapper adds no handshake, no acknowledgement and no timer of its own. TCP provides the
connection and the reliability; on UDP a lost datagram is recovered, if at all, by the DLMS
application layer. A frame whose destination wPort is not ours is not for us.

Theory of operation: the same verbs as every metercom connection (DESIGN.md section 2).
``send(SendApdu(apdu))`` returns one frame from our wPort to the peer's. ``receive_data``
buffers a TCP byte stream (frames may be split across or packed into reads) or, with
``transport=WrapperTransport.UDP``, takes each call as one datagram. ``next_event`` returns
:class:`ApduReceived` or :class:`FrameDiscarded` (a datagram that is not one well-formed frame,
or a frame for other wPorts), and raises :class:`RemoteProtocolError` only when a TCP stream is
corrupt, which is final: a stream without flags cannot be resynchronised, close the socket.

A server may be built with ``client_wport=None`` (answer whichever client wPort asked last,
so one TCP connection can switch client SAPs) and ``server_wport=None`` (serve every logical
device; replies come from the wPort the request was addressed to).
``next_deadline`` is always None and ``handle_timeout`` does nothing: time-outs belong to the
TCP stack and to the DLMS layer above.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.wrapper.frame import MAX_LENGTH, WrapperFrame, WrapperStreamDecoder
from metercom.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "ApduReceived",
    "FrameDiscarded",
    "SendApdu",
    "WrapperConnection",
    "WrapperEvent",
    "WrapperTransport",
]

_LAYER = "wrapper"


class WrapperTransport(enum.Enum):
    TCP = "tcp"
    UDP = "udp"


@dataclass(frozen=True, slots=True)
class SendApdu:
    """Command: send ``apdu`` in one wrapper frame (``destination_wport`` overrides the peer)."""

    apdu: bytes
    destination_wport: int | None = None


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """An APDU arrived for us."""

    apdu: bytes
    source_wport: int
    destination_wport: int


@dataclass(frozen=True, slots=True)
class FrameDiscarded:
    """Diagnostic: a datagram that was not one well-formed frame, or a frame for other wPorts."""

    data: bytes
    reason: str


WrapperEvent = ApduReceived | FrameDiscarded


class WrapperConnection:
    """The wrapper between ``client_wport`` and ``server_wport``, seen from ``role``."""

    def __init__(
        self,
        role: Role,
        client_wport: int | None,
        server_wport: int | None,
        *,
        transport: WrapperTransport = WrapperTransport.TCP,
        max_length: int = MAX_LENGTH,
    ) -> None:
        for name, value in (("client_wport", client_wport), ("server_wport", server_wport)):
            if value is None:
                if role is Role.CLIENT:
                    raise LocalProtocolError(f"a client needs {name}", layer=_LAYER)
            elif not 0 <= value <= 0xFFFF:
                raise LocalProtocolError(f"{name} must fit in 16 bits, got {value}", layer=_LAYER)
        self.role = role
        self.transport = transport
        self.client_wport = client_wport
        self.server_wport = server_wport
        self.max_length = max_length
        self._decoder = WrapperStreamDecoder(max_length=max_length)
        self._datagrams: deque[bytes] = deque()
        # Server: where the last request came from and went to, for the reply.
        self._last_client = client_wport
        self._last_server = server_wport

    def send(self, command: SendApdu, *, now: float | None = None) -> bytes:
        """Return the frame carrying ``command.apdu`` (``now`` is accepted for symmetry, unused)."""
        del now
        if not isinstance(command, SendApdu):
            raise LocalProtocolError(f"WrapperConnection cannot send {command!r}", layer=_LAYER)
        if len(command.apdu) > self.max_length:
            raise LocalProtocolError(
                f"APDU of {len(command.apdu)} bytes exceeds max_length={self.max_length}", layer=_LAYER
            )
        if self.role is Role.CLIENT:
            source, destination = self.client_wport, self.server_wport
        else:
            source, destination = self._last_server, self._last_client
        if command.destination_wport is not None:
            destination = command.destination_wport
        if source is None or destination is None:
            raise LocalProtocolError(
                "no peer wPort known yet: pass destination_wport or configure both wPorts", layer=_LAYER
            )
        return WrapperFrame(source, destination, command.apdu).to_bytes()

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float | None = None) -> None:
        """TCP: append stream bytes. UDP: one call is one datagram."""
        del now
        if self.transport is WrapperTransport.UDP:
            self._datagrams.append(bytes(data))
        elif data:
            self._decoder.feed(data)

    def next_event(self) -> WrapperEvent | NeedData:
        """Return the next event or NEED_DATA; raises :class:`RemoteProtocolError` on a corrupt TCP stream."""
        if self.transport is WrapperTransport.UDP:
            if not self._datagrams:
                return NEED_DATA
            datagram = self._datagrams.popleft()
            try:
                frame = WrapperFrame.from_bytes(datagram, max_length=self.max_length)
            except RemoteProtocolError as exc:
                return FrameDiscarded(datagram, str(exc))
        else:
            item = self._decoder.next()
            if item is NEED_DATA:
                return NEED_DATA
            frame = item
        return self._accept(frame)

    def next_deadline(self) -> float | None:
        """The wrapper runs no timers."""
        return None

    def handle_timeout(self, now: float) -> None:
        """Nothing to do: the wrapper runs no timers."""

    def _accept(self, frame: WrapperFrame) -> WrapperEvent:
        if self.role is Role.CLIENT:
            mine, theirs = self.client_wport, self.server_wport
            ours = frame.destination_wport == mine and frame.source_wport == theirs
        else:
            ours = (self.server_wport is None or frame.destination_wport == self.server_wport) and (
                self.client_wport is None or frame.source_wport == self.client_wport
            )
            if ours:
                self._last_client = frame.source_wport
                self._last_server = frame.destination_wport
        if not ours:
            return FrameDiscarded(
                frame.to_bytes(),
                f"frame from wPort {frame.source_wport} to wPort {frame.destination_wport} is not for this "
                f"connection (client {self.client_wport}, server {self.server_wport})",
            )
        return ApduReceived(frame.apdu, frame.source_wport, frame.destination_wport)
