# ruff: noqa: ARG002, ARG005 - gurux calls these hooks with arguments they do not need
"""A gurux-dlms 1.0.203 server (GPL-2.0, dev-only peer) run in-process as a meter for interop tests.

Rule: only test code imports gurux; nothing of gurux is copied. The server classes of gurux-dlms
are driven through their public ``handleRequest`` with bytes, and bridged to any metercom
:class:`~metercom.transport.base.Transport` (a TCP connection from :func:`metercom.transport.serve`,
an end of a :class:`~metercom.transport.SimulatedLine`), so our client talks to it over real
wrapper or HDLC framing.

gurux's server is broken in places as shipped (field-notes.md). The shims this harness needs,
each the smallest change that lets the exchange happen; every one sits on the server side:

==========================================  ============================================================
exchange                                    shim
==========================================  ============================================================
every response                              ``GXDLMSSettings.updateInvokeId`` stores the request's
                                            invoke-id as ``invokeID`` while responses read
                                            ``invokeId``, so every answer carries invoke-id 1:
                                            :class:`_Settings` aliases the two.
every request                               ``GXServerReply`` lacks ``setReply`` and
                                            ``getConnectionInfo``, which ``handleRequest`` calls:
                                            :class:`_Reply` adds both.
every GET                                   ``handleGetRequest`` calls ``server.notifyRead()`` and
                                            ``server.onPostRead()`` (no arguments), neither exists
                                            with that signature: :class:`GuruxMeter` defines them.
GET with block transfer                     the command handler calls ``server.getTransaction()`` /
                                            ``setTransaction()``, which do not exist; without them
                                            the first datablock is followed, in the same frame, by
                                            a get-response-normal hardware-fault: defined here.
                                            get-request-next then reads ``settings.gbtWndowSize``
                                            (sic), which does not exist: set to 1; from the third
                                            block on it calls ``GXDLMSLongTransaction.setData``,
                                            which does not exist: added to each transaction.
object list (Association LN attribute 2)    ``getObjects`` reads ``ValueEventArgs.isSkipMaxPduSize``,
                                            which does not exist: set to False on the class.
association (AARQ)                          ``initialize()`` appends the whole object collection as
                                            one element of the Association LN object list and
                                            raises: the harness fills ``objectList`` itself first.
HDLC SNRM -> UA                             ``handleSnrmRequest`` calls ``GXHdlcSettings.update``,
                                            which does not exist (with itself as argument): added
                                            as a no-op. It then reads ``self.hdlc.maxInfoTX``
                                            and friends from an object gurux never creates: the
                                            harness sets ``hdlc`` to a :class:`_HdlcLimits`. (The
                                            UA it then writes has its group length clobbered, which
                                            our HDLC codec tolerates by design; no shim.)
profile buffer with selective access        ``ProfileGeneric.getValue`` filters range rows with
                                            ``tm >= start >= 0`` and returns rows without values
                                            for selected columns: :class:`ShimProfileGeneric`
                                            selects the rows (range by capture time, entry) and
                                            encodes them itself (with metercom's A-XDR encoder).
HLS-GMAC pass 3/4 (ACTION)                  ``GXDLMSSecureServer`` builds its ciphering with a
                                            placeholder title and the Association's
                                            reply_to_HLS_authentication answers hardware-fault
                                            (field-notes: ACTION and ciphered associations are
                                            broken): HLS-GMAC runs only where gurux gets it right,
                                            see the interop tests' skips.
HDLC frames split across reads             gurux reports "Invalid HDLC Frame" for a frame that
                                            arrives in pieces (any real serial line): the harness
                                            hands it whole frames only.
HDLC frames longer than 255 bytes           gurux writes only the low 8 bits of the 11-bit frame
                                            length (so 262 bytes say 6): the harness puts the
                                            high bits back and recomputes HCS and FCS.
RLRQ -> RLRE                                none: the RLRE's length byte is wrong (14 for 21), our
                                            client accepts any RLRE as the end of the association.
                                            Over HDLC the RLRE also lacks the LLC header, so our
                                            HDLC layer refuses it and the (best effort) release
                                            ends unconfirmed; gurux has released all the same.
GET with list naming an undefined object    none, not exercised: gurux writes the
                                            Data-Access-Result choice without its code byte.
SET with datablocks                         none, not exercised: gurux's set handler fails on
                                            ``p.data.position`` (hardware-fault); our SET blocks
                                            are tested against the scripted meter.
==========================================  ============================================================
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from gurux_dlms import GXDateTime, GXDLMSServer, GXDLMSSettings, GXServerReply
from gurux_dlms.enums import AccessMode, InterfaceType, MethodAccessMode, SourceDiagnostic, Unit
from gurux_dlms.enums.Authentication import Authentication
from gurux_dlms.GXHdlcSettings import GXHdlcSettings
from gurux_dlms.objects import (
    GXDLMSAssociationLogicalName,
    GXDLMSClock,
    GXDLMSData,
    GXDLMSProfileGeneric,
    GXDLMSRegister,
)
from gurux_dlms.objects.GXDLMSCaptureObject import GXDLMSCaptureObject
from gurux_dlms.ValueEventArgs import ValueEventArgs

from metercom.codec.dlms.axdr import encode_data
from metercom.codec.hdlc.fcs import fcs16_bytes
from metercom.errors import TransportError
from metercom.model.dlms_data import CosemDateTime, Data
from metercom.transport.base import Transport

__all__ = ["PROFILE_START", "GuruxMeter", "ShimProfileGeneric", "serve_gurux"]

#: First capture time of the harness's load profile (15-minute rows, UTC).
PROFILE_START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


# Association LN reads ``e.isSkipMaxPduSize``, which ValueEventArgs never defines (shim table).
ValueEventArgs.isSkipMaxPduSize = False
# handleSnrmRequest calls ``settings.hdlc.update(server.hdlcSettings)``, the same object: no-op.
GXHdlcSettings.update = lambda self, other: None


class _Reply(GXServerReply):  # type: ignore[misc]
    def setReply(self, value: Any) -> None:  # noqa: N802 - gurux's name
        self.reply = value

    def getConnectionInfo(self) -> Any:  # noqa: N802 - gurux's name
        return self.connectionInfo


class _Settings(GXDLMSSettings):  # type: ignore[misc]
    """``updateInvokeId`` stores ``invokeID``, the responses read ``invokeId``: alias them."""

    @property
    def invokeID(self) -> int:  # noqa: N802 - gurux's name
        return int(self.invokeId)

    @invokeID.setter
    def invokeID(self, value: int) -> None:  # noqa: N802 - gurux's name
        self.invokeId = value


class _HdlcLimits:
    """What ``handleSnrmRequest`` reads from ``server.hdlc`` (gurux never creates it)."""

    def __init__(self, max_info: int, window: int = 1) -> None:
        self.maxInfoTX = self.maxInfoRX = max_info
        self.maximumInfoLengthReceive = self.maximumInfoLengthTransmit = max_info
        self.windowSizeTX = self.windowSizeRX = window
        self.windowSizeReceive = self.windowSizeTransmit = window
        self.inactivityTimeout = 0


class ShimProfileGeneric(GXDLMSProfileGeneric):  # type: ignore[misc]
    """Profile generic whose buffer honours range (by capture time) and entry selective access.

    ``rows`` are metercom ``Data`` rows (the first column the capture time); the buffer read is
    encoded here, so what gurux adds is only the GET response framing and the block transfer.
    """

    def __init__(self, ln: str, rows: Sequence[tuple[Data, ...]]) -> None:
        super().__init__(ln)
        self.rows = list(rows)
        self.entriesInUse = self.profileEntries = len(self.rows)
        self.last_selector = 0

    def getValue(self, settings: Any, e: Any) -> Any:  # noqa: N802 - gurux's name
        if e.index != 2:
            return super().getValue(settings, e)
        self.last_selector = e.selector
        rows = self.rows
        if e.selector == 1 and e.parameters:
            start = CosemDateTime.from_bytes(bytes(e.parameters[1])).to_datetime()
            end = CosemDateTime.from_bytes(bytes(e.parameters[2])).to_datetime()
            rows = [r for r in rows if start <= r[0].as_date_time().to_datetime() <= end]
        elif e.selector == 2 and e.parameters:
            first, last = int(e.parameters[0]), int(e.parameters[1])
            rows = rows[max(first, 1) - 1 : (last or len(rows))]
        e.byteArray = True
        return encode_data(Data.array(Data.structure(*row) for row in rows))


class GuruxMeter(GXDLMSServer):  # type: ignore[misc]
    """A gurux-dlms server with a small meter's objects, fed bytes by :meth:`handle`.

    ``hdlc`` selects HDLC framing (else the wrapper). ``authentication`` is a gurux
    ``Authentication`` value; ``password`` the LLS secret it accepts.
    """

    def __init__(
        self,
        *,
        hdlc: bool = False,
        authentication: int = Authentication.NONE,
        password: bytes | None = None,
        max_info: int = 128,
        rows: int = 96,
        columns: int = 8,
    ) -> None:
        super().__init__(True, InterfaceType.HDLC if hdlc else InterfaceType.WRAPPER)
        self.settings.__class__ = _Settings
        self.settings.gbtWndowSize = 1  # sic: get-request-next reads this misspelt name
        self.expected_authentication = authentication
        self.expected_password = password
        self.requests = 0
        self._hdlc = hdlc
        self._pending = bytearray()
        if hdlc:
            self.hdlc = _HdlcLimits(max_info)
        register = GXDLMSRegister("1.0.1.8.0.255")
        register.value = 1234567
        register.scaler = 0.01  # gurux stores 10**scaler
        register.unit = Unit.ACTIVE_ENERGY
        serial = GXDLMSData("0.0.96.1.0.255")
        serial.value = "GRX0001"
        clock = GXDLMSClock("0.0.1.0.0.255")
        clock.time = GXDateTime(PROFILE_START + dt.timedelta(hours=5))
        profile = ShimProfileGeneric("1.0.99.1.0.255", _profile_rows(rows, columns))
        profile.capturePeriod = 900
        profile.captureObjects.append((clock, GXDLMSCaptureObject(2, 0)))
        for n in range(columns - 1):
            value_register = register if n == 0 else GXDLMSRegister(f"1.0.{n + 1}.8.0.255")
            if n:
                value_register.scaler = 0.01
                value_register.unit = Unit.ACTIVE_ENERGY
                self.items.append(value_register)
            profile.captureObjects.append((value_register, GXDLMSCaptureObject(2, 0)))
        self.profile = profile
        for item in (register, serial, clock, profile):
            self.items.append(item)
        association = GXDLMSAssociationLogicalName()
        self.items.append(association)
        for item in list(self.items):
            association.objectList.append(item)
        self.initialize()

    # -- bytes in, bytes out ------------------------------------------------------------------

    def handle(self, data: bytes) -> bytes:
        """Feed received bytes; return the reply (empty until a request is complete)."""
        if not self._hdlc:
            return self._handle(data)
        # gurux parses an HDLC frame split across reads as invalid: hand it whole frames only.
        self._pending += data
        out = b""
        while len(self._pending) >= 3 and self._pending[0] == 0x7E:
            size = (((self._pending[1] & 0x07) << 8) | self._pending[2]) + 2
            if len(self._pending) < size:
                break
            frame, self._pending = self._pending[:size], self._pending[size:]
            out += self._handle(bytes(frame))
        if self._pending and self._pending[0] != 0x7E:
            self._pending = bytearray()  # noise between frames
        return out

    def _handle(self, data: bytes) -> bytes:
        reply = _Reply(data)
        self.handleRequest(reply)
        out = bytes(reply.reply) if reply.reply else b""
        if out:
            self.requests += 1
        if self._hdlc and len(out) > 257:
            out = _fix_frame_length(out)
        return out

    # -- gurux's abstract hooks and the ones it calls but never defines -----------------------

    def isTarget(self, serverAddress: int, clientAddress: int) -> bool:  # noqa: N802, N803
        return True

    def onValidateAuthentication(self, authentication: int, password: Any) -> int:  # noqa: N802
        if authentication != self.expected_authentication:
            return SourceDiagnostic.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED
        if authentication == Authentication.LOW and bytes(password or b"") != self.expected_password:
            return SourceDiagnostic.AUTHENTICATION_FAILURE
        return SourceDiagnostic.NONE

    def notifyRead(self, *args: Any) -> None:  # noqa: N802
        pass

    def notifyConnected(self, *args: Any) -> None:  # noqa: N802
        pass

    def getTransaction(self) -> Any:  # noqa: N802
        return self.transaction

    def setTransaction(self, value: Any) -> None:  # noqa: N802
        if value is not None and not hasattr(value, "setData"):
            value.setData = lambda data: setattr(value, "data", data)
        self.transaction = value

    def onPreGet(self, args: Any) -> None:  # noqa: N802
        pass

    def onPostGet(self, args: Any) -> None:  # noqa: N802
        pass

    def onFindObject(self, objectType: Any, sn: Any, ln: Any) -> None:  # noqa: N802, N803
        return None

    def onPreRead(self, args: Any = None) -> None:  # noqa: N802
        pass

    def onPostRead(self, args: Any = None) -> None:  # noqa: N802
        pass

    def onPreWrite(self, args: Any) -> None:  # noqa: N802
        pass

    def onPostWrite(self, args: Any) -> None:  # noqa: N802
        pass

    def onConnected(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass

    def onInvalidConnection(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass

    def onDisconnected(self, connectionInfo: Any) -> None:  # noqa: N802, N803
        pass

    def onGetAttributeAccess(self, arg: Any) -> int:  # noqa: N802
        return int(AccessMode.READ_WRITE)

    def onGetMethodAccess(self, arg: Any) -> int:  # noqa: N802
        return int(MethodAccessMode.ACCESS)

    def onPreAction(self, args: Any) -> None:  # noqa: N802
        pass

    def onPostAction(self, args: Any) -> None:  # noqa: N802
        pass


def _fix_frame_length(frame: bytes) -> bytes:
    """gurux writes only the low 8 bits of an HDLC frame's 11-bit length: put the rest back and
    recompute HCS and FCS (one frame per reply, window 1)."""
    if frame[0] != 0x7E or frame[-1] != 0x7E:
        return frame
    body = bytearray(frame[1:-3])  # format .. information, without FCS
    length = len(frame) - 2
    body[0] = (body[0] & 0xF8) | (length >> 8)
    body[1] = length & 0xFF
    pos = 2
    for _ in range(2):  # destination and source address, extension bit ends each
        while not body[pos] & 1:
            pos += 1
        pos += 1
    pos += 1  # control
    body[pos : pos + 2] = fcs16_bytes(bytes(body[:pos]))
    return b"\x7e" + bytes(body) + fcs16_bytes(bytes(body)) + b"\x7e"


def _profile_rows(count: int, columns: int) -> list[tuple[Data, ...]]:
    rows: list[tuple[Data, ...]] = []
    for i in range(count):
        when = PROFILE_START + dt.timedelta(minutes=15 * i)
        values = tuple(Data.double_long_unsigned(100_000 * c + i) for c in range(1, columns))
        rows.append((Data.octet_date_time(when), *values))
    return rows


async def serve_gurux(transport: Transport, meter: GuruxMeter) -> None:
    """Answer everything that arrives on ``transport`` with ``meter`` until the link closes."""
    try:
        while True:
            data = await transport.read(4096)
            reply = meter.handle(data)
            if reply:
                await transport.write(reply)
    except TransportError:
        return
