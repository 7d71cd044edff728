"""The sans-I/O DLMS server (codec/dlms/server.py) paired in memory with our own client.

The object model is the simulated meter (generic and india profiles), so these are also the
"client and simulator paired in memory" tests of DESIGN.md section 7.4. Fuzzing: random and
mutated APDUs only ever give bytes back (never an exception).
"""

from __future__ import annotations

import datetime as dt
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.clock import VirtualClock
from metercom.codec.base import NEED_DATA
from metercom.codec.dlms.acse import (
    AssociationResponse,
    AuthenticationMechanism,
    ClientAssociationSettings,
    ReleaseResponse,
    build_aarq,
)
from metercom.codec.dlms.axdr import decode_data_exact
from metercom.codec.dlms.client import (
    Action,
    Associate,
    AssociationEstablished,
    ClientRequest,
    DlmsClientConnection,
    Get,
    GetCompleted,
    GetMany,
    Release,
    Released,
    RequestFailed,
    Set,
    SetCompleted,
    Transmit,
)
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.codec.dlms.security import Protection, SecurityContext
from metercom.codec.dlms.server import DlmsServer, ListProfileBuffer, select_buffer
from metercom.codec.dlms.xdlms import (
    CLOCK_TIME,
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    ExceptionResponse,
    ExceptionServiceError,
    GetRequestNext,
    GetRequestNormal,
    RangeDescriptor,
    decode_xdlms_apdu,
)
from metercom.model.dlms_data import Data
from metercom.model.obis import Obis
from metercom.sim.dlms import (
    DEFAULT_AUTHENTICATION_KEY,
    DEFAULT_ENCRYPTION_KEY,
    DEFAULT_LLS_PASSWORD,
    DlmsMeterDevice,
    Quirks,
    build_meter,
)

START = dt.datetime(2026, 3, 10, 12, 7, tzinfo=dt.UTC)
TITLE = b"MTCTEST1"
A = CosemAttributeDescriptor.parse


def _device(profile: str = "generic", **kw: object) -> DlmsMeterDevice:
    clock = VirtualClock(START)
    return DlmsMeterDevice(build_meter(profile, clock=clock, seed=3, serial="00000042"), **kw)  # type: ignore[arg-type]


def run(client: DlmsClientConnection, server: DlmsServer, request: ClientRequest, sap: int) -> object:
    apdu: bytes | None = client.send(request)
    while apdu is not None:
        reply = server.handle(apdu, client_sap=sap)
        assert reply is not None
        client.receive_data(reply)
        apdu = None
        while (event := client.next_event()) is not NEED_DATA:
            if isinstance(event, Transmit):
                apdu = event.apdu
            else:
                return event
    raise AssertionError("the exchange stalled")


def _public(max_pdu: int = 0xFFFF) -> DlmsClientConnection:
    return DlmsClientConnection(ClientAssociationSettings(max_receive_pdu_size=max_pdu))


def _hls(
    *, ciphered: bool, keys: bytes = DEFAULT_ENCRYPTION_KEY, max_pdu: int = 0xFFFF, **kw: object
) -> DlmsClientConnection:
    security = SecurityContext(
        system_title=TITLE, encryption_key=keys, authentication_key=DEFAULT_AUTHENTICATION_KEY
    )
    settings = ClientAssociationSettings(
        mechanism=AuthenticationMechanism.HIGH_GMAC,
        system_title=TITLE,
        ciphered=ciphered,
        max_receive_pdu_size=max_pdu,
    )
    return DlmsClientConnection(settings, security=security, **kw)  # type: ignore[arg-type]


def _associate(client: DlmsClientConnection, server: DlmsServer, sap: int) -> None:
    event = run(client, server, Associate(client_challenge=b"0123456789abcdef"), sap)
    assert isinstance(event, AssociationEstablished), event


def _value(event: object, index: int = 0) -> Data:
    assert isinstance(event, GetCompleted), event
    return decode_data_exact(event.raw(index))


# -- associations ---------------------------------------------------------------------------


def test_public_client_reads_what_its_object_list_shows_and_nothing_else() -> None:
    device = _device()
    server = device.new_server()
    client = _public()
    _associate(client, server, 16)
    assert _value(run(client, server, Get(A(1, "0.0.96.1.0.255", 2)), 16)) == Data.octet_string(b"00000042")
    objects = _value(run(client, server, Get(A(15, "0.0.40.0.0.255", 2)), 16))
    listed = {bytes(item.value[2].value) for item in objects.value}  # type: ignore[union-attr,index]
    assert Obis.parse("0.0.96.1.0.255").to_bytes() in listed
    assert Obis.parse("1.0.1.8.0.255").to_bytes() not in listed
    denied = run(client, server, Get(A(3, "1.0.1.8.0.255", 2)), 16)
    assert isinstance(denied, GetCompleted)
    assert denied.results[0] is DataAccessResult.OBJECT_UNDEFINED
    written = run(client, server, Set(A(1, "0.0.96.1.0.255", 2), Data.octet_string(b"x")), 16)
    assert isinstance(written, SetCompleted)
    assert written.result is DataAccessResult.READ_WRITE_DENIED
    assert isinstance(run(client, server, Release(), 16), Released)
    assert not server.associated(16)


def test_lls_reader_needs_the_password() -> None:
    device = _device("india")
    server = device.new_server()
    good = DlmsClientConnection(
        ClientAssociationSettings(mechanism=AuthenticationMechanism.LOW, password=DEFAULT_LLS_PASSWORD)
    )
    _associate(good, server, 32)
    value = _value(run(good, server, Get(A(3, "1.0.1.8.0.255", 2)), 32))
    assert isinstance(value.value, int)
    assert value.value > 0
    bad = DlmsClientConnection(
        ClientAssociationSettings(mechanism=AuthenticationMechanism.LOW, password=b"nope")
    )
    failed = run(bad, device.new_server(), Associate(), 32)
    assert isinstance(failed, RequestFailed)


@pytest.mark.parametrize("ciphered", [False, True], ids=["plain", "ciphered"])
def test_hls_gmac_management_reads_and_acts(ciphered: bool) -> None:
    device = _device()
    server = device.new_server()
    client = _hls(ciphered=ciphered)
    _associate(client, server, 1)
    assert isinstance(_value(run(client, server, Get(A(3, "1.0.1.8.0.255", 2)), 1)).value, int)
    event = run(
        client, server, Action(CosemMethodDescriptor.parse(70, "0.0.96.3.10.255", 1), Data.integer(0)), 1
    )
    assert getattr(event, "result", None) is ActionResult.SUCCESS
    assert not device.meter.connected


def test_hls_gmac_with_wrong_keys_fails_and_leaves_no_association() -> None:
    server = _device().new_server()
    client = _hls(ciphered=False, keys=bytes(16))
    event = run(client, server, Associate(client_challenge=b"0123456789abcdef"), 1)
    assert isinstance(event, RequestFailed)
    assert not server.associated(1)


def test_ciphered_hls_with_wrong_keys_is_refused_at_the_aarq() -> None:
    server = _device().new_server()
    event = run(
        _hls(ciphered=True, keys=bytes(16)), server, Associate(client_challenge=b"0123456789abcdef"), 1
    )
    assert isinstance(event, RequestFailed)


def test_general_glo_ciphering_is_answered_in_kind() -> None:
    server = _device().new_server()
    client = _hls(ciphered=True, protection=Protection.GENERAL_GLOBAL)
    _associate(client, server, 1)
    assert isinstance(_value(run(client, server, Get(A(8, "0.0.1.0.0.255", 2)), 1)).value, bytes)


def test_unknown_client_and_requests_before_association() -> None:
    server = _device().new_server()
    aare = AssociationResponse.from_bytes(
        server.handle(build_aarq(ClientAssociationSettings()).to_bytes(), client_sap=99) or b""
    )
    assert not aare.accepted
    answer = server.handle(GetRequestNormal(A(8, "0.0.1.0.0.255", 2)).to_bytes(), client_sap=16)
    assert isinstance(decode_xdlms_apdu(answer or b""), ExceptionResponse)
    assert ReleaseResponse.from_bytes(server.handle(bytes.fromhex("6203800100"), client_sap=16) or b"")


def test_pending_hls_serves_only_pass_three() -> None:
    server = _device().new_server()
    client = _hls(ciphered=False)
    aarq = client.send(Associate(client_challenge=b"0123456789abcdef"))
    assert AssociationResponse.from_bytes(server.handle(aarq, client_sap=1) or b"").authentication_pending
    answer = decode_xdlms_apdu(
        server.handle(GetRequestNormal(A(8, "0.0.1.0.0.255", 2)).to_bytes(), client_sap=1) or b""
    )
    assert isinstance(answer, ExceptionResponse)
    assert answer.service_error is ExceptionServiceError.OPERATION_NOT_POSSIBLE


# -- block transfer, PDU sizes, lists -----------------------------------------------------------


def test_long_object_list_comes_in_blocks_that_fit_the_client_pdu() -> None:
    server = _device().new_server()
    client = _hls(ciphered=True, max_pdu=128)
    _associate(client, server, 1)
    sizes: list[int] = []
    apdu: bytes | None = client.send(Get(A(15, "0.0.40.0.0.255", 2)))
    event: object = None
    while apdu is not None:
        reply = server.handle(apdu, client_sap=1) or b""
        sizes.append(len(reply))
        client.receive_data(reply)
        apdu = None
        while (e := client.next_event()) is not NEED_DATA:
            if isinstance(e, Transmit):
                apdu = e.apdu
            else:
                event = e
    assert isinstance(event, GetCompleted)
    assert event.blocks > 3
    assert max(sizes) <= 128
    assert len(decode_data_exact(event.raw()).value) > 30  # type: ignore[arg-type]


def test_small_pdu_quirk_limits_what_the_meter_sends() -> None:
    server = _device(quirks=Quirks(max_pdu_size=96)).new_server()
    client = _public()
    _associate(client, server, 16)
    event = run(client, server, Get(A(15, "0.0.40.0.0.255", 2)), 16)
    assert isinstance(event, GetCompleted)
    assert event.blocks > 3


def test_get_next_without_transfer_and_with_wrong_block_number() -> None:
    server = _device().new_server()
    client = _public()
    _associate(client, server, 16)
    answer = server.handle(GetRequestNext(5).to_bytes(), client_sap=16)
    block = decode_xdlms_apdu(answer or b"")
    assert getattr(block, "result", None) is DataAccessResult.NO_LONG_GET_IN_PROGRESS


def test_get_with_list_mixes_values_and_refusals() -> None:
    server = _device().new_server()
    client = _public()
    _associate(client, server, 16)
    event = run(client, server, GetMany([A(1, "0.0.96.1.0.255", 2), A(3, "1.0.1.8.0.255", 2)]), 16)
    assert isinstance(event, GetCompleted)
    assert isinstance(event.results[0], bytes)
    assert event.results[1] is DataAccessResult.OBJECT_UNDEFINED


def test_set_in_datablocks_and_type_check() -> None:
    device = _device(quirks=Quirks(max_pdu_size=64))  # the meter receives 64-byte APDUs at most
    server = device.new_server()
    client = _hls(ciphered=False)
    _associate(client, server, 1)
    scripts = Data.array(Data.structure(Data.long_unsigned(i), Data.array([])) for i in range(1, 30))
    event = run(client, server, Set(A(9, "0.0.10.0.106.255", 2), scripts), 1)
    assert isinstance(event, SetCompleted)
    assert event.result is DataAccessResult.SUCCESS
    assert event.blocks > 1
    assert _value(run(client, server, Get(A(9, "0.0.10.0.106.255", 2)), 1)) == scripts
    wrong = run(client, server, Set(A(9, "0.0.10.0.106.255", 2), Data.octet_string(b"x")), 1)
    assert isinstance(wrong, SetCompleted)
    assert wrong.result is DataAccessResult.TYPE_UNMATCHED
    # The management association may set the clock's time (Blue Book: dynamic but writable).
    target = START - dt.timedelta(hours=2)
    done = run(client, server, Set(A(8, "0.0.1.0.0.255", 2), Data.octet_date_time(target)), 1)
    assert isinstance(done, SetCompleted)
    assert done.result is DataAccessResult.SUCCESS
    assert abs(device.meter.meter_now() - target) < dt.timedelta(seconds=1)
    before = device.meter.meter_now()
    shifted = run(
        client, server, Action(CosemMethodDescriptor.parse(8, "0.0.1.0.0.255", 6), Data.long(-600)), 1
    )
    assert getattr(shifted, "result", None) is ActionResult.SUCCESS
    assert device.meter.meter_now() - before == dt.timedelta(seconds=-600)


def test_long_form_quirk_changes_only_the_aare_length_form() -> None:
    device = _device(quirks=Quirks(long_form_lengths=True))
    aare = device.answer(device.new_server(), build_aarq(ClientAssociationSettings()).to_bytes(), 16) or b""
    assert aare[:2] == b"\x61\x82"
    assert AssociationResponse.from_bytes(aare).accepted


# -- selective access -----------------------------------------------------------------------------

COLUMNS = [
    CLOCK_TIME,
    CaptureObjectDefinition(3, Obis.parse("1.0.1.8.0.255"), 2),
    CaptureObjectDefinition(1, Obis.parse("0.0.96.10.1.255"), 2),
]


def _rows() -> ListProfileBuffer:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    rows = [
        (
            Data.octet_date_time(base + dt.timedelta(minutes=15 * i)),
            Data.double_long_unsigned(1000 + i),
            Data.unsigned(0),
        )
        for i in range(10)
    ]
    return ListProfileBuffer(COLUMNS, rows)


def test_select_buffer_by_range_with_columns() -> None:
    base = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    selection = RangeDescriptor.by_time(
        base + dt.timedelta(minutes=20), base + dt.timedelta(minutes=60), selected_values=[COLUMNS[1]]
    ).to_selective_access()
    table = select_buffer(_rows(), selection)
    assert isinstance(table, Data)
    assert [row.value for row in table.value] == [
        (Data.double_long_unsigned(1002),),
        (Data.double_long_unsigned(1003),),
        (Data.double_long_unsigned(1004),),
    ]  # type: ignore[union-attr]


def test_select_buffer_by_entry_and_errors() -> None:
    table = select_buffer(_rows(), EntryDescriptor(9, 0, 2, 3).to_selective_access())
    assert isinstance(table, Data)
    assert [len(row.value) for row in table.value] == [2, 2]  # type: ignore[union-attr,arg-type]
    assert (
        select_buffer(_rows(), EntryDescriptor(1, 2, 3, 9).to_selective_access())
        is DataAccessResult.OTHER_REASON
    )
    unknown = RangeDescriptor(
        CaptureObjectDefinition(3, Obis.parse("1.0.99.99.0.255"), 2), Data.null(), Data.null()
    )
    assert select_buffer(_rows(), unknown.to_selective_access()) is DataAccessResult.OTHER_REASON
    empty = RangeDescriptor.by_time(
        dt.datetime(2030, 1, 1, tzinfo=dt.UTC), dt.datetime(2030, 1, 2, tzinfo=dt.UTC)
    )
    assert select_buffer(_rows(), empty.to_selective_access()) == Data.array([])


# -- fuzz -----------------------------------------------------------------------------------------


def _associated_servers() -> list[tuple[DlmsServer, int, list[bytes]]]:
    """Servers with an open association and the valid requests that opened/used it."""
    out = []
    for profile, sap, client in (("generic", 16, _public()), ("generic", 1, _hls(ciphered=True))):
        device = _device(profile)
        server = device.new_server()
        _associate(client, server, sap)
        samples = [
            client.send(Get(A(8, "0.0.1.0.0.255", 2))),
        ]
        client.abandon()
        out.append((server, sap, samples))
    return out


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_random_apdus_only_ever_get_bytes(data: bytes) -> None:
    server = _device().new_server()
    for sap in (16, 1, 99):
        answer = server.handle(data, client_sap=sap)
        assert answer is None or isinstance(answer, bytes)
    _associate(_public(), server, 16)
    answer = server.handle(data, client_sap=16)
    assert answer is None or isinstance(answer, bytes)


def test_fuzz_mutated_valid_apdus() -> None:
    rng = random.Random(1)
    servers = _associated_servers()
    aarq = build_aarq(ClientAssociationSettings()).to_bytes()
    for server, sap, samples in servers:
        seeds = [
            aarq,
            *samples,
            GetRequestNormal(
                A(7, "1.0.99.1.0.255", 2), RangeDescriptor.by_time(START, START).to_selective_access()
            ).to_bytes(),
        ]
        for _ in range(400):
            data = bytearray(rng.choice(seeds))
            for _ in range(rng.randint(1, 4)):
                kind = rng.randrange(3)
                if kind == 0 and data:
                    data[rng.randrange(len(data))] = rng.randrange(256)
                elif kind == 1 and data:
                    del data[rng.randrange(len(data)) :]
                else:
                    data.insert(rng.randrange(len(data) + 1), rng.randrange(256))
            answer = server.handle(bytes(data), client_sap=sap)
            assert answer is None or isinstance(answer, bytes)
