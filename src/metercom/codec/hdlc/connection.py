"""Sans-I/O HDLC link of DLMS/COSEM (IEC 62056-46) for the client and the server role.

Rule (IEC 62056-46:2002+A1:2006 clause 6.4 "MAC sublayer", elements of procedure; Green Book
clause 8.4.5): the link runs in normal response mode (NRM). The client is the primary station
and the only one that may start a transmission: it sends command frames, the last of each
burst with the poll bit P = 1. The server is the secondary: it answers only when polled, and
the last frame of its answer carries the final bit F = 1, which hands the poll back.

* Connection: SNRM (with the parameter proposal, see :mod:`.parameters`) is answered by UA
  (with the server's parameters) or DM (refused). DISC is answered by UA, or DM when already
  disconnected. An SNRM on a connected link resets it.
* Data transfer: I frames carry N(S) (their own number) and N(R) (the next number expected
  from the peer), modulo 8. Up to ``window`` I frames may be outstanding. An APDU longer than
  the negotiated maximum information field length is cut into segments; every segment but
  the last has the segmentation bit of the frame format set, and the LLC header is only in
  front of the first. The receiver of a burst that ends in the middle of an APDU asks for
  more with RR (receive ready) and its N(R); RNR (receive not ready) says "busy, ask later".
* Recovery without REJ: an I frame whose N(S) is not the expected one is dropped, and when
  the poll comes back the receiver answers RR with the N(R) it still expects; the sender then
  goes back to that number and sends everything again from there (go-back-N). A polled
  secondary whose frames were not all acknowledged by the poll's N(R) retransmits them.
  The client's response timer covers lost polls and lost answers: on expiry it retransmits
  its unacknowledged I frames, or repeats its last poll as RR, at most ``max_retries`` times.
* An N(R) that acknowledges frames never sent is a protocol violation: the server answers
  FRMR (frame reject, Z bit) and then accepts only SNRM or DISC; the client raises
  :class:`RemoteProtocolError` and waits for the caller to send DISC or SNRM.
* UI frames (unnumbered information) carry unacknowledged APDUs, e.g. push
  DataNotifications, in any state.
* Frames for other addresses are ignored (an RS-485 bus carries every meter's frames, and an
  optical head may echo our own). A server serves one client at a time: while connected,
  frames from other client addresses are ignored.

Theory of operation. The object owns a :class:`~.frame.HdlcFrameSplitter`; ``receive_data``
only buffers bytes. ``next_event`` takes frames off the splitter one at a time and runs them
through the state machine until an event is ready, so the events do not depend on how the
bytes were chunked. Frames the connection sends of its own accord leave as
:class:`~.events.Transmit` events; ``send`` returns the bytes of frames the caller asked
for. Time is never read: ``send``, ``receive_data`` and ``handle_timeout`` take ``now``
(seconds on any monotonic clock), ``next_deadline`` says when ``handle_timeout`` is due.

State table (role, state, input -> action); every frame kind not named is ignored, a UI frame
to us is reported in every state, and no input raises except where marked:

=======  =============  ====================  ===============================================
role     state          input                 action
=======  =============  ====================  ===============================================
client   CONNECTING     UA                    -> CONNECTED, Connected (bad parameters: raise,
                                              -> ERROR)
client   CONNECTING     DM                    -> DISCONNECTED, ConnectionRejected
client   CONNECTING,    FRMR                  -> ERROR, FrameRejectReceived
         CONNECTED,
         ERROR
client   CONNECTED      I, RR, RNR, REJ       sequence rules above; bad N(R): raise, -> ERROR;
                                              repeats without progress count as retries
client   CONNECTED      DM                    -> DISCONNECTED, Disconnected
client   DISCONNECTING  UA, DM, FRMR          -> DISCONNECTED, Disconnected
client   CONNECTING,    timer                 repeat SNRM/DISC or the poll; after
         CONNECTED,                           ``max_retries``: -> DISCONNECTED,
         DISCONNECTING                        Disconnected(NO_RESPONSE)
client   DISCONNECTED,  send(Connect)         SNRM, -> CONNECTING
         ERROR
client   all but        send(Disconnect)      DISC, -> DISCONNECTING
         DISCONNECTING
server   DISCONNECTED   SNRM                  UA, -> CONNECTED, Connected (DM when not
                                              accepting connections)
server   DISCONNECTED   DISC; I/RR/RNR + P    DM
server   CONNECTED      SNRM                  link reset, UA, Connected
server   CONNECTED      DISC                  UA, -> DISCONNECTED, Disconnected
server   CONNECTED      I, RR, RNR, REJ       sequence rules above; bad N(R): FRMR,
                                              -> FRAME_REJECT, FrameRejectSent
server   FRAME_REJECT   SNRM / DISC           as in CONNECTED
server   FRAME_REJECT   I/RR/RNR + P          FRMR again
server   CONNECTED,     timer                 -> DISCONNECTED, Disconnected(INACTIVITY)
         FRAME_REJECT
server   any            send(Disconnect)      -> DISCONNECTED locally, nothing sent
=======  =============  ====================  ===============================================

An APDU longer than ``max_apdu_size`` or without LLC header is dropped and
:class:`RemoteProtocolError` is raised once the frame has been fully handled; the link stays
up. Frames that fail their checks never raise: they come out as
:class:`~.events.FrameDiscarded` and the timers recover.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.hdlc.address import ALL_STATION, HdlcAddress
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
from metercom.codec.hdlc.frame import DiscardedBytes, FrameKind, HdlcFrame, HdlcFrameSplitter
from metercom.codec.hdlc.llc import add_llc_header, strip_llc_header
from metercom.codec.hdlc.parameters import MAX_INFO_LENGTH, HdlcParameters
from metercom.errors import LocalProtocolError, RemoteProtocolError

__all__ = ["DEFAULT_MAX_APDU_SIZE", "DEFAULT_PARAMETERS", "HdlcConnection", "HdlcState"]

_LAYER = "hdlc"

DEFAULT_PARAMETERS: Final = HdlcParameters()
#: Largest reassembled APDU accepted: a 65535-byte xDLMS PDU plus LLC header and some slack.
DEFAULT_MAX_APDU_SIZE: Final = 0x10000 + 16

# FRMR information field (ISO/IEC 13239, modulo 8): rejected control byte, then
# V(S) << 1 | C/R << 4 | V(R) << 5, then the flags W (0x01, undefined control field),
# X (0x02, information not permitted), Y (0x04, information too long), Z (0x08, invalid N(R)).
_FRMR_Z: Final = 0x08


class HdlcState(enum.Enum):
    DISCONNECTED = "disconnected"  # NDM, normal disconnected mode
    CONNECTING = "connecting"  # client: SNRM sent, waiting for UA or DM
    CONNECTED = "connected"  # NRM, normal response mode: data transfer
    DISCONNECTING = "disconnecting"  # client: DISC sent, waiting for UA or DM
    FRAME_REJECT = "frame-reject"  # server: FRMR sent, waiting for SNRM or DISC
    ERROR = "error"  # client: the server broke the protocol; send DISC or SNRM


_Segment = tuple[int, bytes, bool]  # N(S), information, segmentation bit


class HdlcConnection:
    """One HDLC link between a client address and a server address, seen from ``role``.

    ``parameters`` is the client's proposal (None: send SNRM without information field,
    i.e. the defaults) or the server's capability. ``client_address`` may be None for a server
    that accepts any client (it locks onto the one whose SNRM it accepted).
    ``response_timeout_s`` must cover one full frame at the line's speed (2030 bytes take 68 s
    at 300 Bd); ``inactivity_timeout_s`` (server) drops an idle link.
    """

    def __init__(
        self,
        role: Role,
        client_address: int | HdlcAddress | None,
        server_address: int | HdlcAddress,
        *,
        parameters: HdlcParameters | None = DEFAULT_PARAMETERS,
        response_timeout_s: float = 3.0,
        max_retries: int = 3,
        inactivity_timeout_s: float | None = None,
        max_apdu_size: int = DEFAULT_MAX_APDU_SIZE,
        strict_parameters: bool = False,
        accept_connections: bool = True,
    ) -> None:
        if isinstance(client_address, int):
            client_address = HdlcAddress(client_address)
        if client_address is not None and client_address.length != 1:
            raise LocalProtocolError("a client address is one byte", layer=_LAYER)
        if client_address is None and role is Role.CLIENT:
            raise LocalProtocolError("a client needs its own address", layer=_LAYER)
        if isinstance(server_address, int):
            server_address = HdlcAddress(server_address)
        if response_timeout_s <= 0 or max_retries < 0 or max_apdu_size < 1:
            raise LocalProtocolError("timeouts, retries and sizes must be positive", layer=_LAYER)
        self.role = role
        self.state = HdlcState.DISCONNECTED
        self.response_timeout_s = response_timeout_s
        self.max_retries = max_retries
        self.inactivity_timeout_s = inactivity_timeout_s
        self.max_apdu_size = max_apdu_size
        self.strict_parameters = strict_parameters
        #: Server: answer SNRM with UA (True) or DM (False).
        self.accept_connections = accept_connections
        self._propose = parameters is not None
        self._own = parameters if parameters is not None else DEFAULT_PARAMETERS
        #: Negotiated parameters from our side; the defaults until connected.
        self.parameters = DEFAULT_PARAMETERS
        self._fixed_client = client_address
        # A client's own address (a server's placeholder is never used).
        self._own_client = client_address if client_address is not None else HdlcAddress(0)
        self._client = client_address  # server: the client currently served
        self._server = server_address
        self._server_wire = server_address  # server: the address form the client used
        self._splitter = HdlcFrameSplitter()
        self._events: deque[HdlcEvent] = deque()
        self._pending_error: RemoteProtocolError | None = None
        self._now = 0.0
        # Timers: the client's response timer, the server's inactivity timer.
        self._deadline: float | None = None
        self._inactivity_deadline: float | None = None
        self._retries = 0
        self._command = b""  # client: SNRM or DISC to repeat
        self._frmr = b""  # server: FRMR information to repeat
        self._reset_link()

    # --- public verbs ---------------------------------------------------------------------

    @property
    def client_address(self) -> HdlcAddress | None:
        return self._client

    @property
    def server_address(self) -> HdlcAddress:
        return self._server

    def send(self, command: HdlcCommand, *, now: float | None = None) -> bytes:
        """Carry out ``command``; return the bytes to write (possibly none, when queued)."""
        if now is not None:
            self._now = now
        if isinstance(command, SendApdu):
            return self._send_apdu(command.apdu)
        if isinstance(command, SendUnnumberedInformation):
            return self._send_unnumbered(command)
        if isinstance(command, Connect):
            return self._send_connect()
        if isinstance(command, Disconnect):
            return self._send_disconnect()
        raise LocalProtocolError(f"HdlcConnection cannot send {command!r}", layer=_LAYER)

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float | None = None) -> None:
        """Buffer received bytes; ``next_event`` processes them."""
        if now is not None:
            self._now = now
        if data:
            self._splitter.feed(data)

    def next_event(self) -> HdlcEvent | NeedData:
        """Return the next event, or NEED_DATA. Raises only :class:`RemoteProtocolError`."""
        events = self._events
        splitter = self._splitter
        while not events:
            item = splitter.next()
            if item is NEED_DATA:
                return NEED_DATA
            if isinstance(item, DiscardedBytes):
                events.append(FrameDiscarded(item.data, "bytes outside any frame"))
                continue
            try:
                frame = HdlcFrame.from_bytes(item)
            except RemoteProtocolError as exc:
                events.append(FrameDiscarded(item, str(exc)))
                continue
            self._handle_frame(frame)
            if self._pending_error is not None:
                error, self._pending_error = self._pending_error, None
                raise error
        return events.popleft()

    def next_deadline(self) -> float | None:
        """When ``handle_timeout`` must be called next, or None when no timer runs."""
        deadlines = [d for d in (self._deadline, self._inactivity_deadline) if d is not None]
        return min(deadlines) if deadlines else None

    def handle_timeout(self, now: float) -> None:
        """Run the timers that are due at ``now``; their frames and events follow from next_event."""
        self._now = now
        if self._deadline is not None and now >= self._deadline:
            self._deadline = None
            self._on_response_timeout()
        if self._inactivity_deadline is not None and now >= self._inactivity_deadline:
            self._inactivity_deadline = None
            if self.state in (HdlcState.CONNECTED, HdlcState.FRAME_REJECT):
                self._enter_disconnected()
                self._events.append(Disconnected(DisconnectReason.INACTIVITY))

    # --- link variables -------------------------------------------------------------------

    def _reset_link(self) -> None:
        self._vs = 0  # V(S): N(S) of the next new I frame
        self._vr = 0  # V(R): N(S) expected next from the peer
        self._unacked: list[_Segment] = []
        self._out: deque[tuple[bytes, bool]] = deque()
        self._rx = bytearray()
        self._rx_active = False  # a segmented APDU is being received
        self._rx_discarding = False  # the APDU being received was too long
        self._ui_rx = bytearray()
        self._ui_discarding = False
        self._seq_error = False  # an I frame came out of sequence since our last RR
        self._awaiting = False  # client: poll sent, waiting for F = 1
        self._progress = False  # client: something was acknowledged or accepted since the last poll
        self._remote_busy = False  # client: the server said RNR
        self._has_poll = False  # server: polled and not yet answered
        self._app_pending = False  # server: an APDU was delivered, its answer not yet sent
        self._retries = 0

    def _enter_disconnected(self) -> None:
        self.state = HdlcState.DISCONNECTED
        self._reset_link()
        self._deadline = None
        self._inactivity_deadline = None
        self.parameters = DEFAULT_PARAMETERS
        if self.role is Role.SERVER:
            self._client = self._fixed_client
            self._server_wire = self._server

    def _arm(self) -> None:
        self._deadline = self._now + self.response_timeout_s

    def _touch(self) -> None:
        if self.inactivity_timeout_s is not None:
            self._inactivity_deadline = self._now + self.inactivity_timeout_s

    # --- frame building -------------------------------------------------------------------

    def _peer(self) -> HdlcAddress:
        if self.role is Role.CLIENT:
            return self._server
        return self._client if self._client is not None else HdlcAddress(ALL_STATION)

    def _me(self) -> HdlcAddress:
        if self.role is Role.CLIENT:
            return self._own_client
        return self._server_wire

    def _frame(self, kind: FrameKind, *, nr: int = 0, information: bytes = b"") -> bytes:
        return HdlcFrame(kind, self._peer(), self._me(), True, 0, nr, information).to_bytes()

    def _segments(self, info: bytes, size: int) -> list[tuple[bytes, bool]]:
        chunks = [info[i : i + size] for i in range(0, len(info), size)] or [b""]
        return [(chunk, i < len(chunks) - 1) for i, chunk in enumerate(chunks)]

    def _window(self, *, retransmit: bool) -> bytes:
        """I frames for one burst: the unacknowledged ones again (go-back-N) if ``retransmit``,
        then new ones up to the window; P/F on the last."""
        burst: list[_Segment] = list(self._unacked) if retransmit else []
        window = self.parameters.window_transmit
        while len(self._unacked) < window and self._out:
            info, segmented = self._out.popleft()
            segment = (self._vs, info, segmented)
            self._vs = (self._vs + 1) & 7
            self._unacked.append(segment)
            burst.append(segment)
            if not segmented:
                break  # a burst ends with its APDU: the poll asks the peer to answer it
        if not burst:
            return b""
        peer, me, vr, last = self._peer(), self._me(), self._vr, len(burst) - 1
        return b"".join(
            HdlcFrame(FrameKind.I, peer, me, i == last, ns, vr, info, segmented).to_bytes()
            for i, (ns, info, segmented) in enumerate(burst)
        )

    # --- commands -------------------------------------------------------------------------

    def _send_connect(self) -> bytes:
        if self.role is not Role.CLIENT:
            raise LocalProtocolError("only a client sends SNRM", layer=_LAYER)
        if self.state not in (HdlcState.DISCONNECTED, HdlcState.ERROR):
            raise LocalProtocolError(f"cannot connect in state {self.state.value}", layer=_LAYER)
        self._reset_link()
        self.parameters = DEFAULT_PARAMETERS
        info = self._own.to_bytes() if self._propose else b""
        self._command = self._frame(FrameKind.SNRM, information=info)
        self.state = HdlcState.CONNECTING
        self._arm()
        return self._command

    def _send_disconnect(self) -> bytes:
        if self.role is Role.SERVER:
            if self.state is not HdlcState.DISCONNECTED:
                self._enter_disconnected()
            return b""
        if self.state is HdlcState.DISCONNECTING:
            raise LocalProtocolError("already disconnecting", layer=_LAYER)
        self._reset_link()
        self._command = self._frame(FrameKind.DISC)
        self.state = HdlcState.DISCONNECTING
        self._arm()
        return self._command

    def _send_apdu(self, apdu: bytes) -> bytes:
        if self.state is not HdlcState.CONNECTED:
            raise LocalProtocolError(f"cannot send an APDU in state {self.state.value}", layer=_LAYER)
        self._out.extend(self._segments(add_llc_header(apdu, self.role), self.parameters.max_info_transmit))
        if self.role is Role.CLIENT:
            if self._awaiting:
                return b""  # queued until the server hands the poll back
            data = self._window(retransmit=False)
            self._awaiting = True
            self._arm()
            return data
        self._app_pending = False
        if not self._has_poll:
            return b""  # queued until the client polls
        self._has_poll = False
        return self._window(retransmit=False)

    def _send_unnumbered(self, command: SendUnnumberedInformation) -> bytes:
        size = self.parameters.max_info_transmit if self.state is HdlcState.CONNECTED else MAX_INFO_LENGTH
        destination = command.destination if command.destination is not None else self._peer()
        me = self._me()
        segments = self._segments(add_llc_header(command.apdu, self.role), size)
        return b"".join(
            HdlcFrame(FrameKind.UI, destination, me, not segmented, 0, 0, info, segmented).to_bytes()
            for info, segmented in segments
        )

    # --- receiving ------------------------------------------------------------------------

    def _handle_frame(self, frame: HdlcFrame) -> None:
        if frame.kind is FrameKind.UI:
            self._on_unnumbered(frame)
        elif self.role is Role.CLIENT:
            self._client_frame(frame)
        else:
            self._server_frame(frame)

    def _reassemble(self, frame: HdlcFrame) -> bool:
        """Add an accepted I frame's information; True when it completed an APDU."""
        if self._rx_discarding:
            self._rx_discarding = self._rx_active = frame.segmented
            return False
        self._rx += frame.information
        if len(self._rx) > self.max_apdu_size:
            size = len(self._rx)
            self._rx.clear()
            self._rx_discarding = self._rx_active = frame.segmented
            self._pending_error = RemoteProtocolError(
                f"APDU longer than max_apdu_size={self.max_apdu_size} ({size} bytes so far); dropped",
                layer=_LAYER,
            )
            return False
        if frame.segmented:
            self._rx_active = True
            return False
        info = bytes(self._rx)
        self._rx.clear()
        self._rx_active = False
        try:
            apdu = strip_llc_header(info)
        except RemoteProtocolError as exc:
            self._pending_error = exc
            return False
        self._events.append(ApduReceived(apdu))
        return True

    def _on_unnumbered(self, frame: HdlcFrame) -> None:
        destination = frame.destination
        if self.role is Role.CLIENT:
            if destination.length != 1 or destination.logical not in (self._own_client.logical, ALL_STATION):
                return
        elif not (destination.matches(self._server) or destination.is_all_station):
            return
        if self._ui_discarding:
            self._ui_discarding = frame.segmented
            return
        self._ui_rx += frame.information
        if len(self._ui_rx) > self.max_apdu_size:
            self._ui_rx.clear()
            self._ui_discarding = frame.segmented
            self._pending_error = RemoteProtocolError(
                f"UI information longer than max_apdu_size={self.max_apdu_size}; dropped", layer=_LAYER
            )
            return
        if frame.segmented:
            return
        info = bytes(self._ui_rx)
        self._ui_rx.clear()
        try:
            apdu = strip_llc_header(info)
        except RemoteProtocolError as exc:
            self._pending_error = exc
            return
        self._events.append(UnnumberedInformationReceived(apdu, frame.source, destination))

    def _nr_valid(self, nr: int) -> bool:
        oldest = self._unacked[0][0] if self._unacked else self._vs
        return (nr - oldest) & 7 <= (self._vs - oldest) & 7

    def _acknowledge(self, nr: int) -> None:
        unacked = self._unacked
        while unacked and unacked[0][0] != nr:
            del unacked[0]

    # --- client ---------------------------------------------------------------------------

    def _client_frame(self, frame: HdlcFrame) -> None:
        if frame.destination.length != 1 or frame.destination.logical != self._own_client.logical:
            return
        if not frame.source.matches(self._server):
            return
        kind, state = frame.kind, self.state
        if kind is FrameKind.FRMR and state is not HdlcState.DISCONNECTED:
            if state is HdlcState.DISCONNECTING:
                self._enter_disconnected()
                self._events.append(Disconnected(DisconnectReason.LOCAL_REQUEST))
                return
            self._reset_link()
            self.state = HdlcState.ERROR
            self._deadline = None
            self._events.append(FrameRejectReceived(frame.information))
            return
        if state is HdlcState.CONNECTING:
            if kind is FrameKind.UA:
                self._on_ua(frame)
            elif kind is FrameKind.DM:
                self._enter_disconnected()
                self._events.append(ConnectionRejected())
        elif state is HdlcState.DISCONNECTING:
            if kind in (FrameKind.UA, FrameKind.DM):
                self._enter_disconnected()
                self._events.append(Disconnected(DisconnectReason.LOCAL_REQUEST))
        elif state is HdlcState.CONNECTED:
            if kind is FrameKind.DM:
                self._enter_disconnected()
                self._events.append(Disconnected(DisconnectReason.REMOTE_DISCONNECTED_MODE))
            elif kind.carries_receive_sequence:
                self._client_sequenced(frame)
        # DISCONNECTED and ERROR: stale responses are ignored.

    def _on_ua(self, frame: HdlcFrame) -> None:
        self._deadline = None
        try:
            offered = HdlcParameters.from_bytes(frame.information, strict=self.strict_parameters)
        except RemoteProtocolError as exc:
            self.state = HdlcState.ERROR
            self._pending_error = exc
            return
        self.parameters = offered.limit_to(self._own)
        self.state = HdlcState.CONNECTED
        self._retries = 0
        self._events.append(Connected(self.parameters))

    def _client_sequenced(self, frame: HdlcFrame) -> None:
        nr = frame.receive_sequence_number
        if not self._nr_valid(nr):
            self._reset_link()
            self.state = HdlcState.ERROR
            self._deadline = None
            self._pending_error = RemoteProtocolError(
                f"server acknowledged N(R)={nr}, but only frames up to V(S)={self._vs} were sent; "
                "send DISC or SNRM to reset the link",
                layer=_LAYER,
                data=frame.to_bytes(),
            )
            return
        before = len(self._unacked)
        self._acknowledge(nr)
        progress = len(self._unacked) < before
        if frame.kind is FrameKind.I:
            if frame.send_sequence_number == self._vr:
                self._vr = (self._vr + 1) & 7
                self._reassemble(frame)
                progress = True
            else:
                self._seq_error = True
            self._remote_busy = False
        else:
            self._remote_busy = frame.kind is FrameKind.RNR
        if progress:
            self._progress = True
        if frame.poll_final:
            self._client_final()
        elif self._awaiting:
            self._arm()

    def _client_final(self) -> None:
        """The server handed the poll back: decide what to send next."""
        progress, self._progress = self._progress, False
        self._awaiting = False
        self._deadline = None
        if progress:
            self._retries = 0
        if self._remote_busy:
            self._awaiting = True  # poll again with RR when the timer runs out
            self._arm()
            return
        if self._unacked:
            data = self._window(retransmit=True)
        elif self._seq_error or self._rx_active:
            self._seq_error = False
            data = self._frame(FrameKind.RR, nr=self._vr)
        elif self._out:
            data = self._window(retransmit=False)
            progress = True
        else:
            return  # idle: the turn is ours
        if not progress:
            # The same request again without anything gained since: bounded like a timeout.
            self._retries += 1
            if self._retries > self.max_retries:
                self._enter_disconnected()
                self._events.append(Disconnected(DisconnectReason.NO_RESPONSE))
                return
        self._events.append(Transmit(data))
        self._awaiting = True
        self._arm()

    def _on_response_timeout(self) -> None:
        state = self.state
        if state not in (HdlcState.CONNECTING, HdlcState.DISCONNECTING, HdlcState.CONNECTED):
            return
        if state is HdlcState.CONNECTED and not self._awaiting:
            return
        self._retries += 1
        if self._retries > self.max_retries:
            self._enter_disconnected()
            self._events.append(Disconnected(DisconnectReason.NO_RESPONSE))
            return
        if state is HdlcState.CONNECTED:
            if self._unacked and not self._remote_busy:
                data = self._window(retransmit=True)
            else:
                data = self._frame(FrameKind.RR, nr=self._vr)
        else:
            data = self._command
        self._events.append(Transmit(data))
        self._arm()

    # --- server ---------------------------------------------------------------------------

    def _server_frame(self, frame: HdlcFrame) -> None:
        if not frame.destination.matches(self._server) or frame.source.length != 1:
            return
        client = frame.source
        state, kind = self.state, frame.kind
        if state is HdlcState.DISCONNECTED:
            if self._fixed_client is not None and client.logical != self._fixed_client.logical:
                return
            if kind is FrameKind.SNRM:
                self._on_snrm(frame)
            elif kind is FrameKind.DISC or (kind.carries_receive_sequence and frame.poll_final):
                self._reply(FrameKind.DM, to=client, via=frame.destination)
            return
        if self._client is None or client.logical != self._client.logical:
            return  # another client on the bus
        self._touch()
        if kind is FrameKind.SNRM:
            self._on_snrm(frame)
        elif kind is FrameKind.DISC:
            self._reply(FrameKind.UA, to=client, via=self._server_wire)
            self._enter_disconnected()
            self._events.append(Disconnected(DisconnectReason.REMOTE_REQUEST))
        elif not kind.carries_receive_sequence:
            return  # UA, DM, FRMR are responses; a secondary never receives them
        elif state is HdlcState.FRAME_REJECT:
            if frame.poll_final:
                self._events.append(Transmit(self._frame(FrameKind.FRMR, information=self._frmr)))
        else:
            self._server_sequenced(frame)

    def _reply(self, kind: FrameKind, *, to: HdlcAddress, via: HdlcAddress) -> None:
        self._events.append(Transmit(HdlcFrame(kind, to, via, True).to_bytes()))

    def _on_snrm(self, frame: HdlcFrame) -> None:
        try:
            proposal = HdlcParameters.from_bytes(frame.information, strict=self.strict_parameters)
        except RemoteProtocolError as exc:
            self._events.append(FrameDiscarded(frame.to_bytes(), f"SNRM ignored: {exc}"))
            return
        if not self.accept_connections:
            self._reply(FrameKind.DM, to=frame.source, via=frame.destination)
            return
        agreed = self._own.negotiate(proposal)
        self._reset_link()
        self._client = frame.source
        self._server_wire = frame.destination
        self.parameters = agreed
        self.state = HdlcState.CONNECTED
        self._touch()
        self._events.append(Transmit(self._frame(FrameKind.UA, information=agreed.to_bytes())))
        self._events.append(Connected(agreed))

    def _server_sequenced(self, frame: HdlcFrame) -> None:
        nr = frame.receive_sequence_number
        if not self._nr_valid(nr):
            self._frame_reject(frame, _FRMR_Z, f"invalid N(R)={nr}, V(S)={self._vs}")
            return
        self._acknowledge(nr)
        completed = False
        if frame.kind is FrameKind.I:
            if frame.send_sequence_number == self._vr:
                self._vr = (self._vr + 1) & 7
                completed = self._reassemble(frame)
                if completed:
                    self._app_pending = True
            else:
                self._seq_error = True
        if frame.poll_final:
            self._server_polled(completed=completed)

    def _server_polled(self, *, completed: bool) -> None:
        """The client handed us the poll: answer, ending with F = 1."""
        if self._unacked:
            data = self._window(retransmit=True)  # the poll's N(R) says some of ours were lost
        elif completed:
            self._has_poll = True  # the application answers with send(SendApdu(...))
            return
        elif self._out:
            data = self._window(retransmit=False)
        elif self._app_pending:
            self._has_poll = False
            data = self._frame(FrameKind.RNR, nr=self._vr)  # still working on the answer
        else:
            data = self._frame(FrameKind.RR, nr=self._vr)
        self._seq_error = False
        self._has_poll = False
        self._events.append(Transmit(data))

    def _frame_reject(self, frame: HdlcFrame, flags: int, reason: str) -> None:
        self._frmr = bytes((frame.control, (self._vs << 1) | (self._vr << 5), flags))
        self._reset_link()
        self.state = HdlcState.FRAME_REJECT
        self._events.append(Transmit(self._frame(FrameKind.FRMR, information=self._frmr)))
        self._events.append(FrameRejectSent(self._frmr, reason))
