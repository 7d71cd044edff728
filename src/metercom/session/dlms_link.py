"""APDU links for the DLMS client session: the IP wrapper (TCP, UDP) and HDLC, over any Transport.

Rule: a link moves whole DLMS APDUs between :class:`~metercom.session.dlms.DlmsClient` and a
:class:`~metercom.transport.base.Transport`, driving the sans-I/O wrapper or HDLC codec and
nothing else. It waits only through asyncio on the event loop's clock (virtual in tests) and
raises only the error tree: :class:`~metercom.errors.TransportTimeout` when nothing came in
time, :class:`~metercom.errors.ConnectionLost` when the peer closed the link (the transport's
``read`` raises it at once, so a meter that closes its socket never leaves a call hanging),
:class:`~metercom.errors.RemoteProtocolError` for garbage that cannot be resynchronised.

Theory of operation:

* :class:`WrapperLink` -- the wrapper has no handshake, no timer and no retransmission: one
  write per APDU; reads are fed to the codec until it yields an APDU for our wPorts. On UDP a
  lost datagram is recovered, if at all, by the application-level retry of idempotent GETs
  (:attr:`ApduLink.app_retry` is True).
* :class:`HdlcLink` -- the HDLC connection owns sequencing, segmentation, receive-ready polls and
  retransmission (``response_timeout_s`` per poll, ``max_retries``): the link writes every
  :class:`~metercom.codec.hdlc.Transmit` it asks for and runs its timers with the loop time.
  ``open`` sends SNRM and waits for UA; ``close`` sends DISC and waits (bounded) for UA or DM.
  When HDLC gives up (no answer after its retries) the link is down: the pending call ends with
  :class:`TransportTimeout`, a DM or DISC from the meter with :class:`ConnectionLost`.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.hdlc import (
    ApduReceived,
    Connect,
    Connected,
    ConnectionRejected,
    Disconnect,
    Disconnected,
    DisconnectReason,
    FrameDiscarded,
    FrameRejectReceived,
    HdlcAddress,
    HdlcConnection,
    HdlcParameters,
    HdlcState,
    SendApdu,
    Transmit,
    UnnumberedInformationReceived,
)
from metercom.codec.wrapper import ApduReceived as WrapperApdu
from metercom.codec.wrapper import SendApdu as WrapperSend
from metercom.codec.wrapper import WrapperConnection, WrapperTransport
from metercom.errors import ConnectionLost, DeviceRejectedError, TransportError, TransportTimeout
from metercom.transport.base import Transport

__all__ = ["ApduLink", "HdlcLink", "WrapperLink"]

log = logging.getLogger(__name__)


def _now() -> float:
    return asyncio.get_running_loop().time()


class ApduLink(ABC):
    """Whole APDUs over one transport."""

    #: True where the application may repeat an idempotent request after a time-out (no
    #: retransmission below it).
    app_retry: bool = False

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        #: False once the peer closed or the link failed.
        self.alive = True

    @abstractmethod
    async def open(self, timeout_s: float) -> None:
        """Bring the link up (HDLC: SNRM/UA)."""

    @abstractmethod
    async def send(self, apdu: bytes) -> None:
        """Send one APDU."""

    @abstractmethod
    async def receive(self, timeout_s: float) -> bytes:
        """The next APDU for us; TransportTimeout after ``timeout_s`` without one."""

    @abstractmethod
    async def close(self, timeout_s: float) -> None:
        """Take the link down (HDLC: DISC/UA), best effort and bounded."""

    async def _read(self, deadline: float, what: str) -> bytes:
        remaining = deadline - _now()
        if remaining <= 0:
            raise TransportTimeout(f"{self.transport.url or 'link'}: no {what} in time")
        try:
            return await self.transport.read(4096, timeout_s=remaining)
        except ConnectionLost:
            self.alive = False
            raise


class WrapperLink(ApduLink):
    """IEC 62056-47 wrapper over TCP or UDP (wPorts = client and server SAPs)."""

    def __init__(self, transport: Transport, client_wport: int, server_wport: int) -> None:
        super().__init__(transport)
        udp = transport.datagram
        self.app_retry = True
        self.codec = WrapperConnection(
            Role.CLIENT,
            client_wport,
            server_wport,
            transport=WrapperTransport.UDP if udp else WrapperTransport.TCP,
        )

    async def open(self, timeout_s: float) -> None:
        del timeout_s  # nothing to bring up: TCP is connected, UDP is connectionless

    async def send(self, apdu: bytes) -> None:
        try:
            await self.transport.write(self.codec.send(WrapperSend(apdu)))
        except ConnectionLost:
            self.alive = False
            raise

    async def receive(self, timeout_s: float) -> bytes:
        deadline = _now() + timeout_s
        while True:
            event = self.codec.next_event()
            if event is NEED_DATA:
                self.codec.receive_data(await self._read(deadline, "wrapper frame"))
                continue
            if isinstance(event, WrapperApdu):
                return event.apdu
            log.debug("wrapper: discarded %d bytes: %s", len(event.data), event.reason)

    async def close(self, timeout_s: float) -> None:
        del timeout_s  # nothing to take down; the transport is closed by its owner


class HdlcLink(ApduLink):
    """IEC 62056-46 HDLC over a serial line, an RS-485 bus, an optical head or a TCP converter."""

    def __init__(
        self,
        transport: Transport,
        client_address: int,
        server_address: HdlcAddress,
        *,
        parameters: HdlcParameters | None = None,
        response_timeout_s: float = 3.0,
        max_retries: int = 3,
    ) -> None:
        super().__init__(transport)
        self.codec = HdlcConnection(
            Role.CLIENT,
            client_address,
            server_address,
            parameters=parameters,
            response_timeout_s=response_timeout_s,
            max_retries=max_retries,
        )
        self._apdus: list[bytes] = []
        #: The negotiated parameters once connected.
        self.parameters: HdlcParameters | None = None

    async def _write(self, data: bytes) -> None:
        if data:
            try:
                await self.transport.write(data)
            except ConnectionLost:
                self.alive = False
                raise

    async def open(self, timeout_s: float) -> None:
        await self._write(self.codec.send(Connect(), now=_now()))
        deadline = _now() + timeout_s
        while True:
            event = await self._next(deadline, "UA answering our SNRM")
            if isinstance(event, Connected):
                self.parameters = event.parameters
                return
            if isinstance(event, ConnectionRejected):
                raise DeviceRejectedError(
                    "the meter refused the HDLC connection (DM to our SNRM); check the client and "
                    "server addresses, or another client holds the link",
                    code="hdlc-dm",
                )

    async def send(self, apdu: bytes) -> None:
        if self.codec.state is not HdlcState.CONNECTED:
            self.alive = False
            raise ConnectionLost(f"the HDLC link is {self.codec.state.value}, cannot send")
        await self._write(self.codec.send(SendApdu(apdu), now=_now()))

    async def receive(self, timeout_s: float) -> bytes:
        deadline = _now() + timeout_s
        while True:
            if self._apdus:
                return self._apdus.pop(0)
            event = await self._next(deadline, "DLMS answer")
            if isinstance(event, ApduReceived):
                return event.apdu

    async def _next(self, deadline: float, what: str) -> object:
        """Run the HDLC codec until it has an event for us (frames it sends are written)."""
        codec = self.codec
        while True:
            event = codec.next_event()
            if event is NEED_DATA:
                hdlc_deadline = codec.next_deadline()
                until = deadline if hdlc_deadline is None else min(deadline, hdlc_deadline)
                try:
                    data = await self._read(until, what) if until > _now() else b""
                except TransportTimeout:
                    data = b""
                now = _now()
                if data:
                    codec.receive_data(data, now=now)
                    continue
                if hdlc_deadline is not None and now >= hdlc_deadline:
                    codec.handle_timeout(now)
                    continue
                if now >= deadline:
                    raise TransportTimeout(f"{self.transport.url or 'HDLC link'}: no {what} in time")
                continue
            if isinstance(event, Transmit):
                await self._write(event.data)
            elif isinstance(event, Disconnected):
                self.alive = False
                if event.reason is DisconnectReason.LOCAL_REQUEST:
                    return event  # our DISC was answered
                if event.reason is DisconnectReason.NO_RESPONSE:
                    raise TransportTimeout(
                        f"{self.transport.url or 'HDLC link'}: no {what}; the meter stopped answering "
                        f"after {codec.max_retries} HDLC retransmissions"
                    )
                raise ConnectionLost(
                    f"the meter ended the HDLC link ({event.reason.value}) while we waited for {what}"
                )
            elif isinstance(event, FrameRejectReceived):
                self.alive = False
                raise ConnectionLost("the meter rejected an HDLC frame (FRMR); the link must be reset")
            elif isinstance(event, FrameDiscarded):
                log.debug("hdlc: discarded %d bytes: %s", len(event.data), event.reason)
            elif isinstance(event, UnnumberedInformationReceived):
                log.debug("hdlc: unnumbered information of %d bytes ignored", len(event.apdu))
            else:
                return event

    def _connected(self) -> bool:
        return self.codec.state is not HdlcState.DISCONNECTED

    async def close(self, timeout_s: float) -> None:
        if self.codec.state is HdlcState.DISCONNECTED or not self.alive:
            return
        try:
            await self._write(self.codec.send(Disconnect(), now=_now()))
            deadline = _now() + timeout_s
            while self._connected():
                await self._next(deadline, "UA answering our DISC")
        except (TransportError, DeviceRejectedError) as exc:
            log.debug("hdlc: disconnect not confirmed: %s", exc)
