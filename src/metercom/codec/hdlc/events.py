"""What an :class:`~metercom.codec.hdlc.connection.HdlcConnection` is told to do, and what it reports.

Rule: commands go in through ``send(command) -> bytes``; events come out of ``next_event()``.
Events are frozen values, so a test can compare the event lists of two runs (chunking
invariance, DESIGN.md section 2).

Theory of operation: HDLC sends frames of its own accord (a UA to an SNRM, an RR to ask for
the next segment, a retransmission when the response timer runs out). Those leave the state
machine as :class:`Transmit` instructions in the event stream, like IEC 62056-21's
``ChangeBaudRate``: the shell writes ``event.data`` to the line, in order, as soon as it sees it.
Bytes returned by ``send()`` are never repeated as a :class:`Transmit` event.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from metercom.codec.hdlc.address import HdlcAddress
from metercom.codec.hdlc.parameters import HdlcParameters

__all__ = [
    "ApduReceived",
    "Connect",
    "Connected",
    "ConnectionRejected",
    "Disconnect",
    "DisconnectReason",
    "Disconnected",
    "FrameDiscarded",
    "FrameRejectReceived",
    "FrameRejectSent",
    "HdlcCommand",
    "HdlcEvent",
    "SendApdu",
    "SendUnnumberedInformation",
    "Transmit",
    "UnnumberedInformationReceived",
]


# --- commands (argument of send) -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Connect:
    """Client: send SNRM (set normal response mode) with the parameter proposal."""


@dataclass(frozen=True, slots=True)
class SendApdu:
    """Send one APDU in I frames (information), segmented to the negotiated length and window."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class SendUnnumberedInformation:
    """Send an APDU in UI frames (unnumbered information), e.g. a push DataNotification.

    ``destination`` defaults to the peer (the server, or the connected client; a server with
    no client sends to the all-station client address 0x7F).
    """

    apdu: bytes
    destination: HdlcAddress | None = None


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Client: send DISC (disconnect). Server: drop to disconnected mode locally, sending nothing."""


HdlcCommand = Connect | SendApdu | SendUnnumberedInformation | Disconnect


# --- events (results of next_event) ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transmit:
    """Instruction: write ``data`` (one or more frames) to the line now."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Connected:
    """The link is in normal response mode with these parameters, stated from our side
    (``max_info_transmit`` is what we send)."""

    parameters: HdlcParameters


@dataclass(frozen=True, slots=True)
class ConnectionRejected:
    """Client: the server answered SNRM with DM (disconnected mode)."""


@dataclass(frozen=True, slots=True)
class ApduReceived:
    """A complete APDU arrived in I frames (reassembled, LLC header removed)."""

    apdu: bytes


@dataclass(frozen=True, slots=True)
class UnnumberedInformationReceived:
    """A complete APDU arrived in UI frames (typically a push DataNotification)."""

    apdu: bytes
    source: HdlcAddress
    destination: HdlcAddress


class DisconnectReason(enum.Enum):
    LOCAL_REQUEST = "local-request"  # our DISC was answered (UA or DM), or a server dropped locally
    REMOTE_REQUEST = "remote-request"  # server: the client sent DISC
    REMOTE_DISCONNECTED_MODE = "remote-disconnected-mode"  # client: the server sent DM while connected
    NO_RESPONSE = "no-response"  # client: retries exhausted
    INACTIVITY = "inactivity"  # server: inactivity time-out


@dataclass(frozen=True, slots=True)
class Disconnected:
    """The link is back in disconnected mode."""

    reason: DisconnectReason


@dataclass(frozen=True, slots=True)
class FrameRejectReceived:
    """Client: the server sent FRMR (frame reject); the link needs SNRM or DISC.

    ``information`` is the FRMR information field: rejected control byte, V(S)/V(R), flags
    W (undefined control), X (information not allowed), Y (information too long), Z (bad N(R)).
    """

    information: bytes


@dataclass(frozen=True, slots=True)
class FrameRejectSent:
    """Server: we sent FRMR; until SNRM or DISC every poll is answered with FRMR again."""

    information: bytes
    reason: str


@dataclass(frozen=True, slots=True)
class FrameDiscarded:
    """Diagnostic: bytes that were not a usable frame (noise, bad HCS/FCS, malformed)."""

    data: bytes
    reason: str


HdlcEvent = (
    Transmit
    | Connected
    | ConnectionRejected
    | ApduReceived
    | UnnumberedInformationReceived
    | Disconnected
    | FrameRejectReceived
    | FrameRejectSent
    | FrameDiscarded
)
