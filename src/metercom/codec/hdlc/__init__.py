"""HDLC data link layer of DLMS/COSEM (IEC 62056-46, frame format type 3), sans-I/O.

* :mod:`.fcs`: FCS-16 / HCS (CRC-16/X.25) at C speed.
* :mod:`.address`: client and server HDLC addresses (1, 2, 4 bytes).
* :mod:`.frame`: :class:`HdlcFrame` to and from bytes, :class:`HdlcFrameSplitter` for streams.
* :mod:`.parameters`: SNRM/UA parameter negotiation.
* :mod:`.llc`: the LLC header E6 E6 00 / E6 E7 00.
* :mod:`.connection`: :class:`HdlcConnection`, the link state machine for both roles.

Typical client use (the session shell owns the line and the clock)::

    conn = HdlcConnection(Role.CLIENT, 0x10, HdlcAddress(1, 17))
    line.write(conn.send(Connect(), now=clock()))
    ...  # feed replies with conn.receive_data(chunk, now=clock()), drain conn.next_event():
         # write every Transmit(data), wait for Connected, then send(SendApdu(aarq)) ...
"""

from __future__ import annotations

from metercom.codec.hdlc.address import HdlcAddress
from metercom.codec.hdlc.connection import HdlcConnection, HdlcState
from metercom.codec.hdlc.events import (
    ApduReceived,
    Connect,
    Connected,
    ConnectionRejected,
    Disconnect,
    Disconnected,
    DisconnectReason,
    FrameDiscarded,
    FrameRejectReceived,
    FrameRejectSent,
    HdlcCommand,
    HdlcEvent,
    SendApdu,
    SendUnnumberedInformation,
    Transmit,
    UnnumberedInformationReceived,
)
from metercom.codec.hdlc.fcs import fcs16
from metercom.codec.hdlc.frame import DiscardedBytes, FrameKind, HdlcFrame, HdlcFrameSplitter
from metercom.codec.hdlc.llc import LLC_REQUEST, LLC_RESPONSE, add_llc_header, strip_llc_header
from metercom.codec.hdlc.parameters import HdlcParameters

__all__ = [
    "LLC_REQUEST",
    "LLC_RESPONSE",
    "ApduReceived",
    "Connect",
    "Connected",
    "ConnectionRejected",
    "DiscardedBytes",
    "Disconnect",
    "DisconnectReason",
    "Disconnected",
    "FrameDiscarded",
    "FrameKind",
    "FrameRejectReceived",
    "FrameRejectSent",
    "HdlcAddress",
    "HdlcCommand",
    "HdlcConnection",
    "HdlcEvent",
    "HdlcFrame",
    "HdlcFrameSplitter",
    "HdlcParameters",
    "HdlcState",
    "SendApdu",
    "SendUnnumberedInformation",
    "Transmit",
    "UnnumberedInformationReceived",
    "add_llc_header",
    "fcs16",
    "strip_llc_header",
]
