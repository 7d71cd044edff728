"""HdlcConnection: client and server paired in memory, recovery from lost frames, every
(state, input) pair, chunking invariance, peers' byte sequences, fuzz.

Vector provenance: /work/shared/reference/dlms-vectors.json (names in the test ids): frames of
u9n/dlms-cosem tests (commit c52e9d44), a Kamstrup OMNIA capture (dlms-cosem issue #116) and
loopback captures of gurux-dlms 1.0.203.
"""

from __future__ import annotations

import itertools
import json
import random
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

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
    FrameKind,
    FrameRejectReceived,
    FrameRejectSent,
    HdlcAddress,
    HdlcCommand,
    HdlcConnection,
    HdlcEvent,
    HdlcFrame,
    HdlcFrameSplitter,
    HdlcParameters,
    HdlcState,
    SendApdu,
    SendUnnumberedInformation,
    Transmit,
    UnnumberedInformationReceived,
)
from metercom.errors import LocalProtocolError, RemoteProtocolError

CLIENT = HdlcAddress(16)
SERVER = HdlcAddress(1, 17)


def frames_of(data: bytes) -> list[bytes]:
    splitter = HdlcFrameSplitter()
    splitter.feed(data)
    return [item for item in splitter if isinstance(item, bytes)]


def drain(conn: HdlcConnection) -> list[HdlcEvent]:
    events = []
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
    return events


def response_for(apdu: bytes) -> bytes:
    """What the test server answers: same length, different content."""
    return bytes((b + 1) & 0xFF for b in apdu)


class Link:
    """A client and a server on an in-memory half-duplex line with a virtual clock.

    ``drop(direction, index, frame)`` decides per frame whether the line loses it
    (direction "c2s" or "s2c", index counts that direction's frames from 0). The server
    application answers every APDU with :func:`response_for` unless ``respond`` is None.
    """

    def __init__(
        self,
        client: HdlcConnection,
        server: HdlcConnection,
        *,
        drop: Callable[[str, int, bytes], bool] | None = None,
        respond: Callable[[bytes], bytes] | None = response_for,
    ) -> None:
        self.client, self.server = client, server
        self.now = 0.0
        self.wire: dict[str, deque[bytes]] = {"c2s": deque(), "s2c": deque()}
        self.count = {"c2s": 0, "s2c": 0}
        self.sent: dict[str, list[bytes]] = {"c2s": [], "s2c": []}
        self.client_events: list[HdlcEvent] = []
        self.server_events: list[HdlcEvent] = []
        self.drop = drop or (lambda _direction, _index, _frame: False)
        self.respond = respond

    def put(self, direction: str, data: bytes) -> None:
        for frame in frames_of(data):
            index = self.count[direction]
            self.count[direction] += 1
            self.sent[direction].append(frame)
            if not self.drop(direction, index, frame):
                self.wire[direction].append(frame)

    def client_send(self, command: HdlcCommand) -> None:
        self.put("c2s", self.client.send(command, now=self.now))

    def _drain(self, side: str) -> None:
        conn = self.client if side == "client" else self.server
        log = self.client_events if side == "client" else self.server_events
        direction = "c2s" if side == "client" else "s2c"
        while (event := conn.next_event()) is not NEED_DATA:
            log.append(event)
            if isinstance(event, Transmit):
                self.put(direction, event.data)
            elif side == "server" and isinstance(event, ApduReceived) and self.respond is not None:
                self.put("s2c", self.server.send(SendApdu(self.respond(event.apdu)), now=self.now))

    def run(self, until: Callable[[], bool], *, max_time: float = 1000.0) -> None:
        while not until():
            if self.wire["c2s"] or self.wire["s2c"]:
                if self.wire["c2s"]:
                    self.server.receive_data(self.wire["c2s"].popleft(), now=self.now)
                    self._drain("server")
                if self.wire["s2c"]:
                    self.client.receive_data(self.wire["s2c"].popleft(), now=self.now)
                    self._drain("client")
                continue
            deadlines = [
                d for d in (self.client.next_deadline(), self.server.next_deadline()) if d is not None
            ]
            if not deadlines or self.now > max_time:
                return
            self.now = max(self.now, min(deadlines))
            self.client.handle_timeout(self.now)
            self._drain("client")
            self.server.handle_timeout(self.now)
            self._drain("server")

    def received(self, side: str) -> list[bytes]:
        log = self.client_events if side == "client" else self.server_events
        return [e.apdu for e in log if isinstance(e, ApduReceived)]

    def connect(self) -> None:
        start = len(self.client_events)
        self.client_send(Connect())
        self.run(
            lambda: any(
                isinstance(e, Connected | ConnectionRejected | Disconnected)
                for e in self.client_events[start:]
            )
        )

    def exchange(self, apdu: bytes) -> None:
        want = len(self.received("client")) + 1
        self.client_send(SendApdu(apdu))
        self.run(lambda: len(self.received("client")) >= want or self.client.state is not HdlcState.CONNECTED)

    def disconnect(self) -> None:
        self.client_send(Disconnect())
        self.run(lambda: self.client.state is HdlcState.DISCONNECTED)


def make_pair(
    *,
    max_info: int = 128,
    window: int = 1,
    client_params: HdlcParameters | None = None,
    max_retries: int = 3,
    **link_kwargs: object,
) -> Link:
    proposal = (
        client_params if client_params is not None else HdlcParameters(max_info, max_info, window, window)
    )
    client = HdlcConnection(
        Role.CLIENT, CLIENT, SERVER, parameters=proposal, response_timeout_s=1.0, max_retries=max_retries
    )
    server = HdlcConnection(
        Role.SERVER, None, SERVER, parameters=HdlcParameters(2030, 2030, 7, 7), inactivity_timeout_s=120.0
    )
    return Link(client, server, **link_kwargs)  # type: ignore[arg-type]


def payload(size: int, seed: int = 0) -> bytes:
    rng = random.Random(size * 31 + seed)
    return bytes(rng.randrange(256) for _ in range(size))


# --- connect, exchange, disconnect -------------------------------------------------------------


def test_connect_negotiates_and_disconnects() -> None:
    link = make_pair(max_info=256, window=3)
    link.connect()
    assert link.client.state is HdlcState.CONNECTED is link.server.state
    assert link.client_events == [Connected(HdlcParameters(256, 256, 3, 3))]
    assert link.server_events[-1] == Connected(HdlcParameters(256, 256, 3, 3))
    assert link.server.client_address == CLIENT
    link.disconnect()
    assert link.client_events[-1] == Disconnected(DisconnectReason.LOCAL_REQUEST)
    assert link.server_events[-1] == Disconnected(DisconnectReason.REMOTE_REQUEST)
    assert link.server.state is HdlcState.DISCONNECTED
    assert link.client.next_deadline() is None


@pytest.mark.parametrize("window", [1, 7])
@pytest.mark.parametrize("size", [10, 1000, 10_000])
def test_exchange_apdus(size: int, window: int) -> None:
    link = make_pair(max_info=128, window=window)
    link.connect()
    for seed in range(2):
        request = payload(size, seed)
        link.exchange(request)
        assert link.received("server")[-1] == request
        assert link.received("client")[-1] == response_for(request)
    # Segmentation: every I frame but the last of an APDU is full and has the segmentation bit.
    i_frames = [HdlcFrame.from_bytes(f) for f in link.sent["c2s"]]
    i_frames = [f for f in i_frames if f.kind is FrameKind.I]
    assert all(len(f.information) <= 128 for f in i_frames)
    assert sum(not f.segmented for f in i_frames) == 2
    # The window bounds the frames between polls.
    burst = 0
    for f in i_frames:
        burst += 1
        assert burst <= window
        if f.poll_final:
            burst = 0
    link.disconnect()
    assert link.server.state is HdlcState.DISCONNECTED
    assert not any(isinstance(e, FrameDiscarded) for e in link.client_events + link.server_events)


def test_window_reduces_turnarounds() -> None:
    counts = {}
    for window in (1, 7):
        link = make_pair(max_info=128, window=window)
        link.connect()
        link.exchange(payload(10_000))
        counts[window] = sum(HdlcFrame.from_bytes(f).poll_final for f in link.sent["c2s"])
    assert counts[7] * 5 < counts[1]


def test_client_queues_apdu_until_the_poll_returns() -> None:
    link = make_pair(window=2)
    link.connect()
    link.client_send(SendApdu(b"\x01" * 300))
    assert link.client.send(SendApdu(b"\x02" * 10), now=link.now) == b""  # queued
    link.run(lambda: len(link.received("client")) >= 2)
    assert link.received("server") == [b"\x01" * 300, b"\x02" * 10]
    assert link.received("client") == [response_for(b"\x01" * 300), response_for(b"\x02" * 10)]


def test_server_answer_is_queued_until_polled_and_rnr_while_busy() -> None:
    link = make_pair(respond=None)
    link.connect()
    link.client_send(SendApdu(b"\xc0\x01"))
    link.run(lambda: bool(link.received("server")))
    assert link.server.next_deadline() is not None  # inactivity timer
    # The application is slow: the client's timer repeats the request, the server says RNR.
    link.run(lambda: any(HdlcFrame.from_bytes(f).kind is FrameKind.RNR for f in link.sent["s2c"]), max_time=5)
    link.put("s2c", link.server.send(SendApdu(b"\xc4\x01"), now=link.now))  # no poll: queued
    assert link.wire["s2c"] == deque()
    link.run(lambda: bool(link.received("client")))
    assert link.received("client") == [b"\xc4\x01"]


def test_connection_rejected_with_dm() -> None:
    link = make_pair()
    link.server.accept_connections = False
    link.connect()
    assert link.client_events == [ConnectionRejected()]
    assert link.client.state is HdlcState.DISCONNECTED is link.server.state


def test_no_response_gives_up_after_retries() -> None:
    link = make_pair(drop=lambda direction, _index, _frame: direction == "s2c", max_retries=3)
    link.connect()
    assert link.client_events[-1] == Disconnected(DisconnectReason.NO_RESPONSE)
    assert link.now == pytest.approx(4.0)  # timeouts at 1, 2, 3 (retransmissions) and 4 (give up)
    assert len(link.sent["c2s"]) == 4
    assert all(f == link.sent["c2s"][0] for f in link.sent["c2s"])


def test_lost_link_during_transfer_gives_up() -> None:
    link = make_pair(drop=lambda direction, index, _frame: direction == "s2c" and index >= 1)
    link.connect()
    link.exchange(payload(1000))
    assert link.client_events[-1] == Disconnected(DisconnectReason.NO_RESPONSE)
    assert link.client.state is HdlcState.DISCONNECTED


def test_server_inactivity_timeout() -> None:
    link = make_pair()
    link.connect()
    assert link.server.next_deadline() == pytest.approx(120.0)
    link.server.handle_timeout(119.0)
    assert drain(link.server) == []
    link.server.handle_timeout(120.0)
    assert drain(link.server) == [Disconnected(DisconnectReason.INACTIVITY)]
    assert link.server.state is HdlcState.DISCONNECTED
    assert link.server.next_deadline() is None


def test_server_local_disconnect_then_dm() -> None:
    link = make_pair()
    link.connect()
    assert link.server.send(Disconnect()) == b""
    assert link.server.state is HdlcState.DISCONNECTED
    link.exchange(b"\xc0\x01")
    assert link.client_events[-1] == Disconnected(DisconnectReason.REMOTE_DISCONNECTED_MODE)


# --- lost frames: drop each frame in turn --------------------------------------------------------


def _frames_in_clean_run(window: int, size: int) -> dict[str, int]:
    link = make_pair(window=window)
    link.connect()
    link.exchange(payload(size))
    link.disconnect()
    return dict(link.count)


@pytest.mark.parametrize("window", [1, 7])
def test_every_single_lost_frame_is_recovered(window: int) -> None:
    size = 1000
    counts = _frames_in_clean_run(window, size)
    for direction in ("c2s", "s2c"):
        for lost in range(counts[direction]):
            link = make_pair(
                window=window,
                drop=lambda d, i, _f, lost=lost, direction=direction: (d, i) == (direction, lost),
            )
            link.connect()
            assert link.client.state is HdlcState.CONNECTED, (direction, lost)
            request = payload(size)
            link.exchange(request)
            assert link.received("client") == [response_for(request)], (direction, lost)
            assert link.received("server") == [request], (direction, lost)
            link.disconnect()
            assert link.client_events[-1] == Disconnected(DisconnectReason.LOCAL_REQUEST), (direction, lost)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    window=st.integers(1, 7),
    max_info=st.sampled_from([32, 128, 512]),
    sizes=st.lists(st.integers(1, 5000), min_size=1, max_size=3),
    loss=st.sampled_from([0.0, 0.05, 0.15]),
)
def test_random_loss_delivers_everything_in_order(
    seed: int, window: int, max_info: int, sizes: list[int], loss: float
) -> None:
    rng = random.Random(seed)
    link = make_pair(
        window=window, max_info=max_info, max_retries=12, drop=lambda _d, _i, _f: rng.random() < loss
    )
    # With 12 retries, giving up needs 13 losses in a row (p < 0.3**13): the link must survive.
    link.connect()
    assert link.client.state is HdlcState.CONNECTED
    requests = [payload(size, seed) for size in sizes]
    for request in requests:
        link.exchange(request)
        assert link.client.state is HdlcState.CONNECTED
    assert link.received("server") == requests
    assert link.received("client") == [response_for(r) for r in requests]


# --- unnumbered information ---------------------------------------------------------------------

HAN_PUSH_NAME = "HDLC UI frame with push DataNotification (long frame, 11-bit length)"
_LONG = json.loads(Path(__file__).with_name("hdlc_vectors.json").read_text(encoding="utf-8"))
HAN_PUSH = bytes.fromhex(next(v["hex"] for v in _LONG if v["name"] == HAN_PUSH_NAME))


def test_unnumbered_information_both_ways() -> None:
    link = make_pair()
    push = payload(3000)
    # A server without client pushes to the all-station client address, in segments.
    data = link.server.send(SendUnnumberedInformation(push))
    frames = [HdlcFrame.from_bytes(f) for f in frames_of(data)]
    assert [f.segmented for f in frames] == [True, False]
    assert frames[0].destination == HdlcAddress(0x7F)
    link.client.receive_data(data)
    assert drain(link.client) == [UnnumberedInformationReceived(push, SERVER, HdlcAddress(0x7F))]
    link.connect()
    link.client.receive_data(link.server.send(SendUnnumberedInformation(b"\x0f\x01")))
    assert drain(link.client) == [UnnumberedInformationReceived(b"\x0f\x01", SERVER, CLIENT)]
    link.server.receive_data(link.client.send(SendUnnumberedInformation(b"\xc0\x02")))
    assert drain(link.server) == [UnnumberedInformationReceived(b"\xc0\x02", CLIENT, SERVER)]
    # to somebody else: ignored
    other = HdlcFrame(FrameKind.UI, HdlcAddress(17), SERVER, True, 0, 0, b"\xe6\xe7\x00\x0f").to_bytes()
    link.client.receive_data(other)
    assert drain(link.client) == []


@pytest.mark.parametrize("name", [HAN_PUSH_NAME])
def test_han_push_vector(name: str) -> None:
    listener = HdlcConnection(Role.CLIENT, 0x20, HdlcAddress(4, 65))
    listener.receive_data(HAN_PUSH)
    (event,) = drain(listener)
    assert isinstance(event, UnnumberedInformationReceived)
    assert event.apdu.startswith(bytes.fromhex("0f4000000000011b"))
    assert (event.source, event.destination) == (HdlcAddress(4, 65), HdlcAddress(0x20))


def test_oversized_and_malformed_ui_raise_after_handling() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, max_apdu_size=100)
    big = HdlcConnection(Role.SERVER, None, SERVER).send(SendUnnumberedInformation(bytes(250)))
    client.receive_data(big)
    with pytest.raises(RemoteProtocolError, match="longer than max_apdu_size"):
        drain(client)
    assert drain(client) == []
    client.receive_data(HdlcFrame(FrameKind.UI, CLIENT, SERVER, True, 0, 0, b"\x01\x02\x03\x04").to_bytes())
    with pytest.raises(RemoteProtocolError, match="LLC"):
        drain(client)
    client.receive_data(HdlcConnection(Role.SERVER, None, SERVER).send(SendUnnumberedInformation(b"ok")))
    assert drain(client) == [UnnumberedInformationReceived(b"ok", SERVER, HdlcAddress(0x7F))]


# --- addresses ------------------------------------------------------------------------------------


def test_frames_for_other_addresses_are_ignored() -> None:
    link = make_pair()
    link.connect()
    strangers = [
        HdlcFrame(FrameKind.I, CLIENT, HdlcAddress(1, 18), True, 0, 0, b"\xe6\xe7\x00x"),  # other meter
        HdlcFrame(FrameKind.I, HdlcAddress(17), SERVER, True, 0, 0, b"\xe6\xe7\x00x"),  # other client
        HdlcFrame(FrameKind.DM, HdlcAddress(1, 17), CLIENT, True),  # a command-direction frame
        HdlcFrame(FrameKind.DM, CLIENT, HdlcAddress(2, 17), True),
    ]
    for frame in strangers:
        link.client.receive_data(frame.to_bytes())
    assert drain(link.client) == []
    assert link.client.state is HdlcState.CONNECTED
    to_server = [
        HdlcFrame(FrameKind.DISC, HdlcAddress(1, 18), CLIENT, True),  # other meter
        HdlcFrame(FrameKind.DISC, SERVER, HdlcAddress(17), True),  # other client while connected
        HdlcFrame(FrameKind.SNRM, SERVER, HdlcAddress(1, 2, 2), True),  # a source that is no client address
    ]
    for frame in to_server:
        link.server.receive_data(frame.to_bytes())
    assert drain(link.server) == []
    assert link.server.state is HdlcState.CONNECTED


def test_server_with_fixed_client_ignores_others_and_4_byte_addressing_is_echoed() -> None:
    server = HdlcConnection(Role.SERVER, 16, HdlcAddress(1, 17))
    server.receive_data(HdlcFrame(FrameKind.SNRM, HdlcAddress(1, 17), HdlcAddress(32), True).to_bytes())
    assert drain(server) == []
    server.receive_data(HdlcFrame(FrameKind.SNRM, HdlcAddress(1, 17, 4), CLIENT, True).to_bytes())
    transmit, connected = drain(server)
    assert isinstance(transmit, Transmit)
    assert isinstance(connected, Connected)
    ua = HdlcFrame.from_bytes(transmit.data)
    assert ua.kind is FrameKind.UA
    assert ua.source == HdlcAddress(1, 17, 4)


def test_server_in_ndm_answers_dm() -> None:
    server = HdlcConnection(Role.SERVER, None, SERVER)
    for kind, pf, answer in [
        (FrameKind.DISC, True, FrameKind.DM),
        (FrameKind.RR, True, FrameKind.DM),
        (FrameKind.I, True, FrameKind.DM),
        (FrameKind.RR, False, None),
        (FrameKind.UA, True, None),
    ]:
        info = b"\xe6\xe6\x00x" if kind is FrameKind.I else b""
        server.receive_data(HdlcFrame(kind, SERVER, CLIENT, pf, 0, 0, info).to_bytes())
        events = drain(server)
        if answer is None:
            assert events == []
        else:
            (event,) = events
            assert isinstance(event, Transmit)
            assert HdlcFrame.from_bytes(event.data).kind is answer
        assert server.state is HdlcState.DISCONNECTED


# --- protocol violations ------------------------------------------------------------------------


def test_server_frame_rejects_invalid_nr_and_recovers_with_disc() -> None:
    link = make_pair()
    link.connect()
    bad = HdlcFrame(
        FrameKind.I, SERVER, CLIENT, True, 0, 5, b"\xe6\xe6\x00\xc0"
    ).to_bytes()  # N(R)=5: never sent
    link.server.receive_data(bad)
    transmit, rejected = drain(link.server)
    assert isinstance(transmit, Transmit)
    assert isinstance(rejected, FrameRejectSent)
    frmr = HdlcFrame.from_bytes(transmit.data)
    assert frmr.kind is FrameKind.FRMR
    assert frmr.information == bytes((0xB0, 0x00, 0x08))
    assert link.server.state is HdlcState.FRAME_REJECT
    # every poll is answered with FRMR again
    link.server.receive_data(HdlcFrame(FrameKind.RR, SERVER, CLIENT, True, 0, 0).to_bytes())
    (again,) = drain(link.server)
    assert isinstance(again, Transmit)
    assert again.data == transmit.data
    # the client learns it
    link.client.receive_data(transmit.data)
    assert drain(link.client) == [FrameRejectReceived(bytes((0xB0, 0x00, 0x08)))]
    assert link.client.state is HdlcState.ERROR
    with pytest.raises(LocalProtocolError):
        link.client.send(SendApdu(b"x"))
    link.disconnect()
    assert link.server_events[-1] == Disconnected(DisconnectReason.REMOTE_REQUEST)
    link.connect()
    link.exchange(b"\xc0\x01")
    assert link.received("client")[-1] == response_for(b"\xc0\x01")


def test_client_raises_on_invalid_nr() -> None:
    link = make_pair()
    link.connect()
    link.client.receive_data(HdlcFrame(FrameKind.RR, CLIENT, SERVER, True, 0, 3).to_bytes())
    with pytest.raises(RemoteProtocolError, match="N\\(R\\)=3"):
        link.client.next_event()
    assert link.client.state is HdlcState.ERROR
    assert link.client.next_event() is NEED_DATA
    link.disconnect()
    assert link.client.state is HdlcState.DISCONNECTED


def test_oversized_apdu_is_dropped_link_stays_up() -> None:
    link = make_pair()
    link.server.max_apdu_size = 500
    link.connect()
    link.client_send(SendApdu(payload(2000)))
    with pytest.raises(RemoteProtocolError, match="max_apdu_size"):
        link.run(lambda: False)
    link.run(lambda: link.client.state is HdlcState.CONNECTED and not link.client.next_deadline())
    assert link.received("server") == []
    link.exchange(b"\xc0\x01")
    assert link.received("client") == [response_for(b"\xc0\x01")]


def test_bad_ua_parameters_raise_and_leave_error_state() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER)
    client.send(Connect())
    client.receive_data(HdlcFrame(FrameKind.UA, CLIENT, SERVER, True, 0, 0, b"\x82\x80\x00").to_bytes())
    with pytest.raises(RemoteProtocolError, match="format identifier"):
        drain(client)
    assert client.state is HdlcState.ERROR
    strict = HdlcConnection(Role.SERVER, None, SERVER, strict_parameters=True)
    strict.receive_data(
        HdlcFrame(FrameKind.SNRM, SERVER, CLIENT, True, 0, 0, b"\x81\x80\x03\x09\x01\x01").to_bytes()
    )
    (event,) = drain(strict)
    assert isinstance(event, FrameDiscarded)
    assert "SNRM ignored" in event.reason


def test_corrupt_frames_are_discarded_not_raised() -> None:
    link = make_pair()
    link.connect()
    good = HdlcFrame(FrameKind.RR, CLIENT, SERVER, True, 0, 0).to_bytes()
    corrupt = good[:-3] + bytes([good[-3] ^ 1]) + good[-2:]
    link.client.receive_data(b"noise" + corrupt)
    events = drain(link.client)
    assert [type(e) for e in events] == [FrameDiscarded, FrameDiscarded]
    assert isinstance(events[1], FrameDiscarded)
    assert "FCS" in events[1].reason


# --- commands in every state ----------------------------------------------------------------------


COMMANDS: list[HdlcCommand] = [
    Connect(),
    SendApdu(b"\xc0\x01"),
    SendUnnumberedInformation(b"\x0f"),
    Disconnect(),
]


def client_in(state: str) -> HdlcConnection:
    link = make_pair(window=2)
    client = link.client
    if state == "DISCONNECTED":
        return client
    if state == "CONNECTING":
        client.send(Connect())
        return client
    link.connect()
    if state == "CONNECTED":
        return client
    if state == "AWAITING":
        client.send(SendApdu(payload(400)))
        return client
    if state == "RECEIVING":  # a segmented response half received
        link.client_send(SendApdu(b"\xc0\x01"))
        link.server.receive_data(link.wire["c2s"].popleft())
        link.respond = None
        drain(link.server)
        data = link.server.send(SendApdu(payload(1000)))
        client.receive_data(frames_of(data)[0] + frames_of(data)[1])
        drain(client)
        return client
    if state == "DISCONNECTING":
        client.send(Disconnect())
        return client
    if state == "ERROR":
        client.receive_data(HdlcFrame(FrameKind.FRMR, CLIENT, SERVER, True, 0, 0, b"\x10\x00\x08").to_bytes())
        drain(client)
        return client
    raise AssertionError(state)


def server_in(state: str) -> HdlcConnection:
    link = make_pair(window=2, respond=None)
    server = link.server
    if state == "DISCONNECTED":
        return server
    link.connect()
    if state == "CONNECTED":
        return server
    if state == "POLLED":  # a request delivered, the answer not yet sent
        link.exchange(b"\xc0\x01")
        return server
    if state == "SENDING":  # a segmented answer half sent
        link.exchange(b"\xc0\x01")
        link.put("s2c", server.send(SendApdu(payload(1000))))
        return server
    if state == "FRAME_REJECT":
        server.receive_data(HdlcFrame(FrameKind.RR, SERVER, CLIENT, True, 0, 6).to_bytes())
        drain(server)
        return server
    raise AssertionError(state)


CLIENT_STATES = ["DISCONNECTED", "CONNECTING", "CONNECTED", "AWAITING", "RECEIVING", "DISCONNECTING", "ERROR"]
SERVER_STATES = ["DISCONNECTED", "CONNECTED", "POLLED", "SENDING", "FRAME_REJECT"]


@pytest.mark.parametrize("state", CLIENT_STATES)
def test_client_commands_in_every_state(state: str) -> None:
    for command in COMMANDS:
        client = client_in(state)
        try:
            data = client.send(command, now=1.0)
        except LocalProtocolError:
            continue
        assert all(HdlcFrame.from_bytes(f) for f in frames_of(data))


@pytest.mark.parametrize("state", SERVER_STATES)
def test_server_commands_in_every_state(state: str) -> None:
    for command in COMMANDS:
        server = server_in(state)
        try:
            server.send(command, now=1.0)
        except LocalProtocolError:
            assert not isinstance(command, SendUnnumberedInformation)


def _inputs(destination: HdlcAddress, source: HdlcAddress) -> list[HdlcFrame]:
    frames = []
    for kind in FrameKind:
        for pf in (False, True):
            for ns, nr in ((0, 0), (0, 1), (1, 1), (2, 0), (3, 5), (7, 7)):
                if kind in (FrameKind.I, FrameKind.UI):
                    for seg in (False, True):
                        frames.append(
                            HdlcFrame(kind, destination, source, pf, ns, nr, b"\xe6\xe7\x00\xc4\x01", seg)
                        )
                        frames.append(HdlcFrame(kind, destination, source, pf, ns, nr, b"\x00", seg))
                elif kind in (FrameKind.UA, FrameKind.SNRM):
                    frames.append(HdlcFrame(kind, destination, source, pf))
                    frames.append(
                        HdlcFrame(
                            kind, destination, source, pf, 0, 0, HdlcParameters(64, 64, 2, 2).to_bytes()
                        )
                    )
                    frames.append(HdlcFrame(kind, destination, source, pf, 0, 0, b"\x81\x80\x03\x07\x01\x00"))
                elif kind is FrameKind.FRMR:
                    frames.append(HdlcFrame(kind, destination, source, pf, 0, 0, b"\x10\x00\x08"))
                else:
                    frames.append(HdlcFrame(kind, destination, source, pf, ns, nr))
    return list(dict.fromkeys(frames))


# Documented transitions of the state table (module docstring of connection.py).
CLIENT_EXPECTED = {
    ("CONNECTING", FrameKind.UA): {HdlcState.CONNECTED, HdlcState.ERROR},
    ("CONNECTING", FrameKind.DM): {HdlcState.DISCONNECTED},
    ("CONNECTED", FrameKind.DM): {HdlcState.DISCONNECTED},
    ("AWAITING", FrameKind.DM): {HdlcState.DISCONNECTED},
    ("DISCONNECTING", FrameKind.UA): {HdlcState.DISCONNECTED},
    ("DISCONNECTING", FrameKind.DM): {HdlcState.DISCONNECTED},
    ("DISCONNECTING", FrameKind.FRMR): {HdlcState.DISCONNECTED},
    ("CONNECTED", FrameKind.FRMR): {HdlcState.ERROR},
    ("CONNECTING", FrameKind.FRMR): {HdlcState.ERROR},
    ("DISCONNECTED", FrameKind.UA): {HdlcState.DISCONNECTED},
    ("ERROR", FrameKind.UA): {HdlcState.ERROR},
    ("CONNECTED", FrameKind.SNRM): {HdlcState.CONNECTED},
}
SERVER_EXPECTED = {
    ("DISCONNECTED", FrameKind.SNRM): {HdlcState.CONNECTED, HdlcState.DISCONNECTED},
    ("DISCONNECTED", FrameKind.I): {HdlcState.DISCONNECTED},
    ("CONNECTED", FrameKind.DISC): {HdlcState.DISCONNECTED},
    ("CONNECTED", FrameKind.SNRM): {HdlcState.CONNECTED},
    ("FRAME_REJECT", FrameKind.DISC): {HdlcState.DISCONNECTED},
    ("FRAME_REJECT", FrameKind.SNRM): {HdlcState.CONNECTED, HdlcState.FRAME_REJECT},  # malformed: ignored
    ("FRAME_REJECT", FrameKind.I): {HdlcState.FRAME_REJECT},
    ("CONNECTED", FrameKind.UA): {HdlcState.CONNECTED},
    ("POLLED", FrameKind.RR): {HdlcState.CONNECTED, HdlcState.FRAME_REJECT},
}


def _feed_all(conn: HdlcConnection, data: bytes) -> None:
    conn.receive_data(data, now=2.0)
    while True:
        try:
            if conn.next_event() is NEED_DATA:
                return
        except RemoteProtocolError:
            continue


@pytest.mark.parametrize("state", CLIENT_STATES)
def test_client_every_state_and_input(state: str) -> None:
    for frame in _inputs(CLIENT, SERVER) + _inputs(HdlcAddress(17), SERVER)[:20]:
        client = client_in(state)
        before = client.state
        _feed_all(client, frame.to_bytes())
        expected = CLIENT_EXPECTED.get((state, frame.kind))
        if expected is not None and frame.destination == CLIENT:
            assert client.state in expected, (state, frame)
        if frame.destination != CLIENT:
            assert client.state is before
        # the connection still obeys: a timeout, then DISC, never anything but our own errors
        client.handle_timeout(10.0)
        _feed_all(client, b"")
        client.send(Disconnect()) if client.state is not HdlcState.DISCONNECTING else None


@pytest.mark.parametrize("state", SERVER_STATES)
def test_server_every_state_and_input(state: str) -> None:
    for frame in _inputs(SERVER, CLIENT) + _inputs(HdlcAddress(1, 18), CLIENT)[:20]:
        server = server_in(state)
        before = server.state
        _feed_all(server, frame.to_bytes())
        expected = SERVER_EXPECTED.get((state, frame.kind))
        if (
            expected is not None
            and frame.destination == SERVER
            and (frame.kind is not FrameKind.I or frame.poll_final)
        ):
            assert server.state in expected, (state, frame)
        if frame.destination != SERVER:
            assert server.state is before
        server.handle_timeout(1000.0)
        _feed_all(server, b"")


# --- chunking invariance --------------------------------------------------------------------------


def _recorded_session() -> tuple[Link, bytes, bytes]:
    link = make_pair(window=3)
    link.connect()
    link.exchange(payload(700))
    link.exchange(payload(20))
    link.disconnect()
    noise = b"\x00\x7e\x7e\xa0\x55junk"
    c2s = noise.join(link.sent["c2s"]) + noise
    s2c = noise.join(link.sent["s2c"])
    return link, c2s, s2c


LINK, C2S, S2C = _recorded_session()


def _replay_server(chunks: list[bytes]) -> list[HdlcEvent]:
    server = HdlcConnection(Role.SERVER, None, SERVER, parameters=HdlcParameters(2030, 2030, 7, 7))
    events: list[HdlcEvent] = []
    for chunk in chunks:
        server.receive_data(chunk)
        while (event := server.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, ApduReceived):
                server.send(SendApdu(response_for(event.apdu)))
    return events


def _replay_client(chunks: list[bytes]) -> list[HdlcEvent]:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, parameters=HdlcParameters(128, 128, 3, 3))
    client.send(Connect())
    requests = deque([payload(700), payload(20)])
    events: list[HdlcEvent] = []
    for chunk in chunks:
        client.receive_data(chunk)
        while (event := client.next_event()) is not NEED_DATA:
            events.append(event)
            if isinstance(event, Connected | ApduReceived) and requests:
                client.send(SendApdu(requests.popleft()))
            elif isinstance(event, ApduReceived):
                client.send(Disconnect())
    return events


def _split(data: bytes, cuts: list[int]) -> list[bytes]:
    bounds = [0, *sorted(set(cuts)), len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


SERVER_WHOLE = _replay_server([C2S])
CLIENT_WHOLE = _replay_client([S2C])


def test_replays_match_the_live_session() -> None:
    live = [e for e in LINK.server_events if not isinstance(e, FrameDiscarded)]
    assert [e for e in SERVER_WHOLE if not isinstance(e, FrameDiscarded)] == live
    assert [e for e in CLIENT_WHOLE if not isinstance(e, FrameDiscarded)] == LINK.client_events
    assert _replay_server([bytes((b,)) for b in C2S]) == SERVER_WHOLE
    assert _replay_client([bytes((b,)) for b in S2C]) == CLIENT_WHOLE


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_chunking_invariance(data: st.DataObject) -> None:
    cuts = data.draw(st.lists(st.integers(1, len(C2S) - 1), max_size=60))
    assert _replay_server(_split(C2S, cuts)) == SERVER_WHOLE
    cuts = data.draw(st.lists(st.integers(1, len(S2C) - 1), max_size=60))
    assert _replay_client(_split(S2C, cuts)) == CLIENT_WHOLE


# --- the peers' byte sequences ---------------------------------------------------------------------


def _expect_transmit(conn: HdlcConnection) -> list[HdlcEvent]:
    return drain(conn)


@pytest.mark.parametrize(
    "names",
    [
        (
            "HDLC SNRM (2-byte server address) + HDLC UA with negotiated parameters + "
            "HDLC I-frame carrying AARQ (no security) + HDLC I-frame carrying AARE (accepted)"
        ),
    ],
    ids=str,
)
def test_client_speaks_like_dlms_cosem(names: str) -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, parameters=None)
    assert client.send(Connect()).hex() == "7ea00802232193bd647e"
    client.receive_data(bytes.fromhex("7ea01f21022373e6c781801205019a06019a070400000001080400000001cca27e"))
    assert drain(client) == [Connected(HdlcParameters(128, 128, 1, 1))]  # 154 offered, 128 proposed (default)
    aarq = bytes.fromhex("601da109060760857405080101be10040e01000000065f1f0400001e1dffff")
    assert client.send(SendApdu(aarq)).hex() == (
        "7ea02c02232110af9fe6e600601da109060760857405080101be10040e01000000065f1f0400001e1dffffc5e47e"
    )
    client.receive_data(
        bytes.fromhex(
            "7ea0382102233034e7e6e7006129a109060760857405080101a203020100a305a103020100be10040e0800065f1f"
            "0400001e1d04c80007b86a7e"
        )
    )
    (event,) = drain(client)
    assert isinstance(event, ApduReceived)
    assert event.apdu.startswith(b"\x61\x29")
    assert client.next_deadline() is None  # idle: our turn


GURUX = {
    "snrm": "7ea0070321930f017e",
    "ua": "7ea01e210373c37a81800005018006018007040000000108040002000161dc7e",
    "aarq": "7ea02b032110fbafe6e600601da109060760857405080101be10040e01000000065f1f0400401e5dffff91237e",
    "aare": "7ea0372103306c7ce6e7006129a109060760857405080101a203020100a305a103020100be10040e0800065f1f"
    "0400401e5dffff000709d17e",
    "get": "7ea0190321326fd8e6e600c001c1000100002a0000ff020012807e",
    "response": "7ea0222103528e91e6e700c401c10009104752583030303030303030303030303184d87e",
}


@pytest.mark.parametrize(
    "names",
    [
        (
            "HDLC SNRM without parameters (gurux-dlms client) + "
            "NEGATIVE: malformed UA from gurux-dlms 1.0.203 server + "
            "HDLC I-frame AARQ (gurux-dlms client, no security) + "
            "HDLC I-frame AARE (gurux-dlms server, accepted) + "
            "HDLC I-frame GET-Request (gurux-dlms client) + HDLC I-frame GET-Response (gurux-dlms server)"
        )
    ],
    ids=str,
)
def test_client_against_gurux_server_bytes(names: str) -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, HdlcAddress(1), parameters=None)
    assert client.send(Connect()).hex() == GURUX["snrm"]
    client.receive_data(bytes.fromhex(GURUX["ua"]))  # malformed: tolerated
    assert drain(client) == [Connected(HdlcParameters())]
    aarq = HdlcFrame.from_bytes(bytes.fromhex(GURUX["aarq"])).information[3:]
    assert client.send(SendApdu(aarq)).hex() == GURUX["aarq"]
    client.receive_data(bytes.fromhex(GURUX["aare"]))
    assert [type(e) for e in drain(client)] == [ApduReceived]
    get = HdlcFrame.from_bytes(bytes.fromhex(GURUX["get"])).information[3:]
    assert client.send(SendApdu(get)).hex() == GURUX["get"]
    client.receive_data(bytes.fromhex(GURUX["response"]))
    (event,) = drain(client)
    assert event == ApduReceived(bytes.fromhex("c401c1000910") + b"GRX0000000000001")


def test_client_rejects_gurux_ua_when_strict() -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, HdlcAddress(1), parameters=None, strict_parameters=True)
    client.send(Connect())
    client.receive_data(bytes.fromhex(GURUX["ua"]))
    with pytest.raises(RemoteProtocolError):
        drain(client)


@pytest.mark.parametrize(
    "names",
    [
        (
            "HDLC SNRM without parameters (gurux-dlms client) + "
            "HDLC I-frame AARQ (gurux-dlms client, no security) + "
            "HDLC I-frame AARE (gurux-dlms server, accepted) + "
            "HDLC I-frame GET-Request (gurux-dlms client) + "
            "HDLC I-frame GET-Response (gurux-dlms server)"
        )
    ],
    ids=str,
)
def test_server_answers_gurux_client_bytes(names: str) -> None:
    server = HdlcConnection(Role.SERVER, None, HdlcAddress(1))
    server.receive_data(bytes.fromhex(GURUX["snrm"]))
    ua, connected = drain(server)
    assert isinstance(ua, Transmit)
    assert connected == Connected(HdlcParameters())
    assert (
        HdlcParameters.from_bytes(HdlcFrame.from_bytes(ua.data).information, strict=True) == HdlcParameters()
    )
    server.receive_data(bytes.fromhex(GURUX["aarq"]))
    (request,) = drain(server)
    assert isinstance(request, ApduReceived)
    assert request.apdu.startswith(b"\x60\x1d")
    aare = HdlcFrame.from_bytes(bytes.fromhex(GURUX["aare"])).information[3:]
    assert server.send(SendApdu(aare)).hex() == GURUX["aare"]
    server.receive_data(bytes.fromhex(GURUX["get"]))
    assert [type(e) for e in drain(server)] == [ApduReceived]
    response = HdlcFrame.from_bytes(bytes.fromhex(GURUX["response"])).information[3:]
    assert server.send(SendApdu(response)).hex() == GURUX["response"]


@pytest.mark.parametrize(
    "names",
    [
        (
            "Kamstrup OMNIA public-client AARQ (HDLC) + Kamstrup OMNIA public-client AARE with BER long-form "
            "length (HDLC) + Kamstrup OMNIA GET-Request (HDLC) + Kamstrup OMNIA GET-Response (HDLC)"
        )
    ],
    ids=str,
)
def test_client_against_kamstrup_capture(names: str) -> None:
    meter = HdlcAddress(1, 866)
    client = HdlcConnection(Role.CLIENT, CLIENT, meter)
    client.send(Connect())
    client.receive_data(HdlcFrame(FrameKind.UA, CLIENT, meter, True).to_bytes())
    assert drain(client) == [Connected(HdlcParameters())]
    aarq_frame = bytes.fromhex(
        "7ea03a00020cc521108d59e6e6006029a109060760857405080101a60a04080000000000000001be10040e0100000006"
        "5f1f040020525fffffae2c7e"
    )
    assert client.send(SendApdu(HdlcFrame.from_bytes(aarq_frame).information[3:])) == aarq_frame
    client.receive_data(
        bytes.fromhex(
            "7ea0482100020cc530847fe6e70061820035a109060760857405080101a203020100a305a103020100a40a04084b41"
            "4d450235cb3abe10040e0800065f1f040000101d07eb000711677e"
        )
    )
    (aare,) = drain(client)
    assert isinstance(aare, ApduReceived)
    assert aare.apdu.startswith(b"\x61\x82\x00\x35")
    get_frame = bytes.fromhex("7ea01c00020cc52132d360e6e600c001c0000100022b0108ff02008f087e")
    assert client.send(SendApdu(HdlcFrame.from_bytes(get_frame).information[3:])) == get_frame
    client.receive_data(bytes.fromhex("7ea0182100020cc5525f4de6e700c401c000068d0dc2d71e857e"))
    assert drain(client) == [ApduReceived(bytes.fromhex("c401c000068d0dc2d7"))]


@pytest.mark.parametrize("names", ["HDLC UA without information field (Pietro Fiorentini local port)"])
def test_ua_without_information_means_defaults(names: str) -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, HdlcAddress(1), parameters=HdlcParameters(512, 512, 7, 7))
    client.send(Connect())
    client.receive_data(bytes.fromhex("7ea00721037301407e"))
    assert drain(client) == [Connected(HdlcParameters())]
    assert client.parameters == HdlcParameters(128, 128, 1, 1)


@pytest.mark.parametrize("names", ["HDLC segmented I-frame (first segment, format A8)"])
def test_segmented_vector_makes_client_poll(names: str) -> None:
    client = HdlcConnection(Role.CLIENT, CLIENT, HdlcAddress(1), parameters=None)
    client.send(Connect())
    client.receive_data(bytes.fromhex("7ea00721037301407e"))
    drain(client)
    client.send(SendApdu(b"\xc0\x01\xc1\x00\x07\x01\x00\x63\x01\x00\xff\x02\x00"))
    client.receive_data(
        bytes.fromhex(
            "7ea8862103306b5be6e700c401c10001080202090c07e80101ff0000000000000006000186a00202090c07e801"
            "01ff000f0000000000060001879a0202090c07e80101ff001e000000000006000188940202090c07e80101ff00"
            "2d0000000000060001898e0202090c07e80101ff010000000000000600018a880202090c07e80101ff010fc0ae7e"
        )
    )
    (poll,) = drain(client)
    assert isinstance(poll, Transmit)
    rr = HdlcFrame.from_bytes(poll.data)
    assert (rr.kind, rr.receive_sequence_number, rr.poll_final) == (FrameKind.RR, 1, True)
    assert rr.to_bytes().hex() == HdlcFrame(FrameKind.RR, HdlcAddress(1), CLIENT, True, 0, 1).to_bytes().hex()


# --- fuzz --------------------------------------------------------------------------------------------


@pytest.mark.fuzz
def test_fuzz_connections_raise_only_remote_protocol_error() -> None:
    rng = random.Random(4646)
    valid_c2s = LINK.sent["c2s"]
    valid_s2c = LINK.sent["s2c"]
    for round_ in range(300):
        source = valid_c2s if round_ % 2 else valid_s2c
        data = bytearray(b"".join(rng.sample(source, k=min(len(source), rng.randint(1, 6)))))
        for _ in range(rng.randint(0, 6)):
            pos = rng.randrange(len(data))
            op = rng.randrange(3)
            if op == 0:
                data[pos] ^= 1 << rng.randrange(8)
            elif op == 1:
                del data[pos]
            else:
                data.insert(pos, rng.choice((0x7E, 0xA0, rng.randrange(256))))
        if round_ % 5 == 0:
            data = bytearray(rng.randbytes(rng.randint(0, 400)))
        conn = server_in("CONNECTED") if round_ % 2 else client_in("AWAITING")
        assert_fast(lambda conn=conn, data=bytes(data): _fuzz_one(conn, data))


def _fuzz_one(conn: HdlcConnection, data: bytes) -> None:
    conn.receive_data(data, now=0.5)
    while _safe_next(conn) is not None:
        pass
    conn.handle_timeout(5.0)
    while _safe_next(conn) is not None:
        pass


def assert_fast(work: Callable[[], object], limit_s: float = 0.1) -> None:
    """One fuzz input must be handled within ``limit_s``. A slow run is repeated (twice at most)
    so a scheduler or GC pause on a busy machine does not count; a slow code path still fails."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
        if best < limit_s:
            return
    raise AssertionError(f"fuzz input took {best * 1000:.0f} ms (limit {limit_s * 1000:.0f} ms)")


def _safe_next(conn: HdlcConnection) -> HdlcEvent | None:
    while True:
        try:
            event = conn.next_event()
        except RemoteProtocolError:
            continue
        return None if event is NEED_DATA else event


def test_a_server_that_never_acknowledges_is_given_up() -> None:
    """RR with an N(R) that acknowledges nothing: retransmissions are bounded like time-outs."""
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, max_retries=2)
    client.send(Connect())
    client.receive_data(HdlcFrame(FrameKind.UA, CLIENT, SERVER, True).to_bytes())
    drain(client)
    first = client.send(SendApdu(b"\xc0\x01"))
    nak = HdlcFrame(FrameKind.RR, CLIENT, SERVER, True, 0, 0).to_bytes()
    for _ in range(2):
        client.receive_data(nak)
        assert drain(client) == [Transmit(first)]  # go back to N(R)=0: the same frame again
    client.receive_data(nak)
    assert drain(client) == [Disconnected(DisconnectReason.NO_RESPONSE)]


def test_constructor_and_command_checks() -> None:
    with pytest.raises(LocalProtocolError, match="one byte"):
        HdlcConnection(Role.CLIENT, HdlcAddress(1, 17), SERVER)
    with pytest.raises(LocalProtocolError, match="needs its own address"):
        HdlcConnection(Role.CLIENT, None, SERVER)
    with pytest.raises(LocalProtocolError, match="positive"):
        HdlcConnection(Role.CLIENT, 16, SERVER, response_timeout_s=0)
    conn = HdlcConnection(Role.SERVER, None, 1)
    assert conn.server_address == HdlcAddress(1)
    assert conn.client_address is None
    with pytest.raises(LocalProtocolError, match="cannot send"):
        conn.send("SNRM")  # type: ignore[arg-type]
    with pytest.raises(LocalProtocolError, match="only a client"):
        conn.send(Connect())


def test_ui_to_another_server_and_oversized_segmented_ui() -> None:
    server = HdlcConnection(Role.SERVER, None, SERVER, max_apdu_size=50)
    server.receive_data(
        HdlcFrame(FrameKind.UI, HdlcAddress(1, 18), CLIENT, True, 0, 0, b"\xe6\xe6\x00x").to_bytes()
    )
    assert drain(server) == []
    client = HdlcConnection(Role.CLIENT, CLIENT, SERVER, parameters=HdlcParameters(32, 32, 1, 1))
    client.send(Connect())
    client.receive_data(HdlcFrame(FrameKind.UA, CLIENT, SERVER, True).to_bytes())
    drain(client)
    server.receive_data(client.send(SendUnnumberedInformation(bytes(150))))  # 5 segments of 32 bytes
    with pytest.raises(RemoteProtocolError, match="longer than max_apdu_size"):
        drain(server)
    assert drain(server) == []  # the rest of the oversized push is skipped silently
    server.receive_data(client.send(SendUnnumberedInformation(b"ok")))
    assert drain(server) == [UnnumberedInformationReceived(b"ok", CLIENT, SERVER)]


# --- Hypothesis stateful: client <-> server sequences with lost frames ------------------------------


class LinkMachine(RuleBasedStateMachine):
    """Connect, exchange, lose frames and disconnect in any order; nothing is lost or duplicated."""

    def __init__(self) -> None:
        super().__init__()
        self.lose = 0
        self.link = make_pair(window=3, max_info=64, max_retries=30, drop=self._drop)
        self.requests: list[bytes] = []

    def _drop(self, _direction: str, _index: int, _frame: bytes) -> bool:
        if self.lose:
            self.lose -= 1
            return True
        return False

    def _connected(self) -> bool:
        return self.link.client.state is HdlcState.CONNECTED

    @rule()
    def connect(self) -> None:
        if self.link.client.state is HdlcState.DISCONNECTED:
            self.link.connect()
            assert self.link.client.state is HdlcState.CONNECTED
            assert self.link.server.state is HdlcState.CONNECTED

    @precondition(lambda self: self.link.client.state is HdlcState.CONNECTED)
    @rule(size=st.integers(1, 700), seed=st.integers(0, 9))
    def exchange(self, size: int, seed: int) -> None:
        request = payload(size, seed)
        self.requests.append(request)
        self.link.exchange(request)

    @rule(count=st.integers(1, 3))
    def lose_next_frames(self, count: int) -> None:
        self.lose = count

    @precondition(lambda self: self.link.client.state is HdlcState.CONNECTED)
    @rule()
    def disconnect(self) -> None:
        self.link.disconnect()
        assert self.link.server.state is HdlcState.DISCONNECTED

    @invariant()
    def everything_delivered_once_in_order(self) -> None:
        assert self.link.received("server") == self.requests
        assert self.link.received("client") == [response_for(r) for r in self.requests]
        assert self.link.client.state in (HdlcState.DISCONNECTED, HdlcState.CONNECTED)


LinkMachine.TestCase.settings = settings(max_examples=40, stateful_step_count=15, deadline=None)
test_link_state_machine = LinkMachine.TestCase
