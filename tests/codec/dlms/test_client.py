"""DlmsClientConnection (sans-I/O DLMS client) against a scripted meter built from the codec's
server-side pieces (``test_client_kit.py``), in memory: association variants, HLS passes 3/4,
block transfer both ways, refusals mapped to the error tree, timers, invoke-id pairing."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from test_client_kit import AK, CLIENT_TITLE, EK, HLS_SECRET, SERVER_TITLE, ScriptedMeter

from metercom.codec.base import NEED_DATA
from metercom.codec.dlms.acse import (
    ApplicationContextName,
    ApplicationContextNameNotSupportedError,
    AuthenticationFailureError,
    AuthenticationMechanism,
    AuthenticationMechanismNotRecognisedError,
    ClientAssociationSettings,
    ServerAssociationPolicy,
)
from metercom.codec.dlms.axdr import ProfileDecoder
from metercom.codec.dlms.client import (
    Action,
    ActionCompleted,
    ApduDiscarded,
    Associate,
    AssociationEstablished,
    ClientEvent,
    ClientRequest,
    ClientState,
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
    ciphering_overhead,
)
from metercom.codec.dlms.results import ObjectUndefinedError, ServiceRejectedError
from metercom.codec.dlms.security import Protection, SecurityContext
from metercom.codec.dlms.xdlms import (
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    GetResponseNormal,
    InvokeIdAndPriority,
)
from metercom.errors import (
    AuthenticationError,
    DeviceRejectedError,
    LocalProtocolError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.dlms_data import Data

ENERGY = CosemAttributeDescriptor.parse(3, "1-0:1.8.0", 2)
ENERGY_SU = CosemAttributeDescriptor.parse(3, "1-0:1.8.0", 3)
SERIAL = CosemAttributeDescriptor.parse(1, "0-0:96.1.0", 2)
PROFILE = CosemAttributeDescriptor.parse(7, "1-0:99.1.0", 2)


def drain(conn: DlmsClientConnection) -> list[ClientEvent]:
    out: list[ClientEvent] = []
    while (event := conn.next_event()) is not NEED_DATA:
        out.append(event)
    return out


def exchange(conn: DlmsClientConnection, meter: ScriptedMeter, request: ClientRequest) -> ClientEvent:
    """Run one request to its end, writing every Transmit; returns the final event."""
    apdu: bytes | None = conn.send(request, now=0.0)
    while apdu is not None:
        reply = meter.handle(apdu)
        assert reply is not None, "the scripted meter stayed silent"
        conn.receive_data(reply, now=0.0)
        apdu = None
        for event in drain(conn):
            if isinstance(event, Transmit):
                apdu = event.apdu
            elif not isinstance(event, ApduDiscarded):
                return event
    raise AssertionError("no final event")


def associated(
    meter: ScriptedMeter | None = None, settings: ClientAssociationSettings | None = None, **kw: object
) -> tuple[DlmsClientConnection, ScriptedMeter]:
    meter = meter or ScriptedMeter()
    conn = DlmsClientConnection(settings or ClientAssociationSettings(), **kw)  # type: ignore[arg-type]
    event = exchange(conn, meter, Associate(b"C2S-challenge-16"))
    assert isinstance(event, AssociationEstablished), event
    return conn, meter


def gmac_pair(**meter_kw: object) -> tuple[DlmsClientConnection, ScriptedMeter]:
    policy = ServerAssociationPolicy(
        application_context_names=(ApplicationContextName.LOGICAL_NAME_WITH_CIPHERING,),
        mechanisms=frozenset({AuthenticationMechanism.HIGH_GMAC}),
        system_title=SERVER_TITLE,
        max_receive_pdu_size=1024,
    )
    meter = ScriptedMeter(policy=policy, keys=True, **meter_kw)  # type: ignore[arg-type]
    settings = ClientAssociationSettings(
        mechanism=AuthenticationMechanism.HIGH_GMAC, system_title=CLIENT_TITLE, ciphered=True
    )
    security = SecurityContext(system_title=CLIENT_TITLE, encryption_key=EK, authentication_key=AK)
    return DlmsClientConnection(settings, security=security), meter


# --- association -------------------------------------------------------------------------------


def test_association_without_authentication_and_release() -> None:
    conn, meter = associated()
    assert conn.state is ClientState.ASSOCIATED
    assert conn.association is not None
    assert conn.max_pdu_size == 1024
    event = exchange(conn, meter, Release())
    assert isinstance(event, Released)
    assert event.response is not None
    assert meter.released
    assert conn.state is ClientState.IDLE


def test_lls_accepted_and_wrong_password_is_an_authentication_error() -> None:
    policy = ServerAssociationPolicy(
        mechanisms=frozenset({AuthenticationMechanism.LOW}), lls_password=b"12345678"
    )
    good = ClientAssociationSettings(mechanism=AuthenticationMechanism.LOW, password=b"12345678")
    associated(ScriptedMeter(policy=policy), good)
    bad = ClientAssociationSettings(mechanism=AuthenticationMechanism.LOW, password=b"wrong")
    conn = DlmsClientConnection(bad)
    event = exchange(conn, ScriptedMeter(policy=policy), Associate())
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, AuthenticationFailureError)
    assert isinstance(event.error, AuthenticationError)
    assert "password" in str(event.error)
    assert "wrong" not in str(event.error)
    assert conn.state is ClientState.IDLE


def test_mechanism_not_offered_and_context_rejected() -> None:
    conn = DlmsClientConnection(
        ClientAssociationSettings(mechanism=AuthenticationMechanism.LOW, password=b"x")
    )
    event = exchange(conn, ScriptedMeter(), Associate())
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, AuthenticationMechanismNotRecognisedError)
    sn_only = ServerAssociationPolicy(application_context_names=(ApplicationContextName.SHORT_NAME,))
    conn = DlmsClientConnection(ClientAssociationSettings())
    event = exchange(conn, ScriptedMeter(policy=sn_only), Associate())
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, ApplicationContextNameNotSupportedError)
    assert isinstance(event.error, DeviceRejectedError)
    assert "application context" in str(event.error)


def test_hls_gmac_pass_3_and_4_then_ciphered_get() -> None:
    conn, meter = gmac_pair()
    event = exchange(conn, meter, Associate(b"C2S-challenge-16"))
    assert isinstance(event, AssociationEstablished)
    assert not event.association.authentication_pending
    assert event.association.ciphered
    # pass 3 was an ACTION on 0.0.40.0.0.255 method 1, ciphered (glo-action-request 0xCB)
    assert meter.requests[1][0] == 0xCB
    answer = exchange(conn, meter, Get(ENERGY))
    assert isinstance(answer, GetCompleted)
    assert answer.value() == Data.double_long_unsigned(1234567)
    assert all(r[0] in (0x60, 0xCB, 0xC8) for r in meter.requests)  # nothing in clear after the AARQ


@pytest.mark.parametrize("fault", ["refuse_pass3", "wrong_pass4"])
def test_hls_gmac_failures_are_authentication_errors(fault: str) -> None:
    conn, meter = gmac_pair(**{fault: True})
    event = exchange(conn, meter, Associate(b"C2S-challenge-16"))
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, AuthenticationError)
    assert conn.state is ClientState.IDLE
    assert ("refused" if fault == "refuse_pass3" else "verify") in str(event.error)


def test_hls_sha256() -> None:
    policy = ServerAssociationPolicy(mechanisms=frozenset({AuthenticationMechanism.HIGH_SHA256}))
    settings = ClientAssociationSettings(
        mechanism=AuthenticationMechanism.HIGH_SHA256, password=HLS_SECRET, system_title=CLIENT_TITLE
    )
    meter = ScriptedMeter(policy=policy)
    # the scripted meter names its system title only when keyed; give it the title via the AARE
    meter.keys = False
    conn = DlmsClientConnection(settings)
    apdu = conn.send(Associate(b"C2S-challenge-16"))
    aare = meter.handle(apdu)
    assert aare is not None
    from metercom.codec.dlms.acse import AssociationResponse

    patched = AssociationResponse.from_bytes(aare)
    import dataclasses

    conn.receive_data(dataclasses.replace(patched, responding_ap_title=SERVER_TITLE).to_bytes())
    (pass3,) = drain(conn)
    assert isinstance(pass3, Transmit)
    reply = meter.handle(pass3.apdu)
    assert reply is not None
    conn.receive_data(reply)
    (done,) = drain(conn)
    assert isinstance(done, AssociationEstablished)


def test_hls_needs_keys_and_secret() -> None:
    with pytest.raises(LocalProtocolError):
        DlmsClientConnection(
            ClientAssociationSettings(mechanism=AuthenticationMechanism.HIGH_GMAC, system_title=CLIENT_TITLE)
        )
    with pytest.raises(LocalProtocolError):
        DlmsClientConnection(
            ClientAssociationSettings(mechanism=AuthenticationMechanism.HIGH_SHA256, password=b"x")
        )


# --- services ----------------------------------------------------------------------------------


def test_get_normal_list_and_refused() -> None:
    conn, meter = associated()
    event = exchange(conn, meter, Get(ENERGY))
    assert isinstance(event, GetCompleted)
    assert event.value() == Data.double_long_unsigned(1234567)
    event = exchange(
        conn, meter, GetMany([ENERGY, ENERGY_SU, CosemAttributeDescriptor.parse(3, "1-0:9.9.9", 2)])
    )
    assert isinstance(event, GetCompleted)
    assert len(event.results) == 3
    assert event.value(1).as_items()[0] == Data.integer(-2)
    with pytest.raises(ObjectUndefinedError, match="object-undefined"):
        event.value(2)


def test_get_with_block_transfer_reassembles_the_profile() -> None:
    conn, meter = associated(settings=ClientAssociationSettings(max_receive_pdu_size=256))
    event = exchange(conn, meter, Get(PROFILE))
    assert isinstance(event, GetCompleted)
    assert event.blocks > 10
    rows = ProfileDecoder(date_time_columns=[0]).decode(event.raw())
    assert len(rows) == 96
    assert len(rows[0]) == 8
    event = exchange(conn, meter, Get(PROFILE, EntryDescriptor(1, 3)))
    assert isinstance(event, GetCompleted)
    assert len(ProfileDecoder().decode(event.raw())) == 3


def test_set_normal_and_with_datablocks_respect_the_server_pdu_size() -> None:
    policy = ServerAssociationPolicy(max_receive_pdu_size=128)
    conn, meter = associated(ScriptedMeter(policy=policy))
    assert conn.max_pdu_size == 128
    event = exchange(conn, meter, Set(SERIAL, Data.visible_string("short")))
    assert isinstance(event, SetCompleted)
    assert event.blocks == 0
    event.raise_for_result()
    long_value = Data.visible_string("x" * 600)
    apdu = conn.send(Set(SERIAL, long_value))
    assert len(apdu) <= 128
    reply = meter.handle(apdu)
    assert reply is not None
    conn.receive_data(reply)
    while True:
        events = drain(conn)
        final = [e for e in events if not isinstance(e, Transmit)]
        if final:
            break
        (transmit,) = events
        assert isinstance(transmit, Transmit)
        assert len(transmit.apdu) <= 128
        reply = meter.handle(transmit.apdu)
        assert reply is not None
        conn.receive_data(reply)
    (done,) = final
    assert isinstance(done, SetCompleted)
    assert done.blocks > 4
    assert meter.objects[(1, SERIAL.instance_id, 2)] == long_value


def test_action_normal_and_with_pblocks() -> None:
    policy = ServerAssociationPolicy(max_receive_pdu_size=64)
    conn, meter = associated(ScriptedMeter(policy=policy))
    disconnect = CosemMethodDescriptor.parse(70, "0-0:96.3.10", 1)
    event = exchange(conn, meter, Action(disconnect, Data.integer(0)))
    assert isinstance(event, ActionCompleted)
    event.raise_for_result()
    assert meter.control_state == 0
    event = exchange(
        conn, meter, Action(CosemMethodDescriptor.parse(70, "0-0:96.3.10", 2), Data.octet_string(bytes(200)))
    )
    assert isinstance(event, ActionCompleted)
    assert meter.control_state == 1
    assert len(meter.requests) > 4


def test_ciphered_requests_account_for_the_overhead() -> None:
    assert ciphering_overhead(None) == 0
    assert ciphering_overhead(Protection.GLOBAL) == 21
    assert ciphering_overhead(Protection.GENERAL_GLOBAL) == 30


def test_request_too_large_for_the_pdu_is_refused_locally() -> None:
    conn, _ = associated(ScriptedMeter(policy=ServerAssociationPolicy(max_receive_pdu_size=64)))
    with pytest.raises(LocalProtocolError, match="split the request"):
        conn.send(GetMany([ENERGY] * 10))
    assert not conn.busy


def test_exception_response_is_a_service_rejection() -> None:
    conn, _ = associated()
    conn.send(Get(ENERGY))
    refusal = ExceptionResponse(
        ExceptionStateError.SERVICE_NOT_ALLOWED, ExceptionServiceError.OPERATION_NOT_POSSIBLE
    )
    conn.receive_data(refusal.to_bytes())
    (event,) = drain(conn)
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, ServiceRejectedError)
    assert "service-not-allowed" in str(event.error)
    assert "GET class 3 1-0:1.8.0*255" in str(event.error)
    assert not conn.busy


def test_response_timer_and_late_answer_discarded() -> None:
    conn, meter = associated(response_timeout_s=5.0)
    conn.send(Get(ENERGY), now=100.0)
    assert conn.next_deadline() == 105.0
    conn.handle_timeout(104.9)
    assert drain(conn) == []
    conn.handle_timeout(105.0)
    (event,) = drain(conn)
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, TransportTimeout)
    assert "5 s" in str(event.error)
    late = GetResponseNormal(Data.integer(1), invoke_id_and_priority=conn.invoke_id_and_priority)
    conn.receive_data(late.to_bytes())
    (discarded,) = drain(conn)
    assert isinstance(discarded, ApduDiscarded)
    # the next request carries a new invoke-id and completes normally
    event = exchange(conn, meter, Get(ENERGY))
    assert isinstance(event, GetCompleted)


def test_answer_with_another_invoke_id_is_discarded() -> None:
    conn, _ = associated()
    conn.send(Get(ENERGY))
    other = InvokeIdAndPriority(conn.invoke_id_and_priority.invoke_id ^ 1)
    conn.receive_data(GetResponseNormal(Data.integer(7), invoke_id_and_priority=other).to_bytes())
    assert isinstance(drain(conn)[0], ApduDiscarded)
    assert conn.busy


def test_one_request_at_a_time_and_only_when_associated() -> None:
    conn = DlmsClientConnection(ClientAssociationSettings())
    with pytest.raises(LocalProtocolError, match="idle"):
        conn.send(Get(ENERGY))
    conn, _ = associated()
    conn.send(Get(ENERGY))
    with pytest.raises(LocalProtocolError, match="one request at a time"):
        conn.send(Get(ENERGY))


def test_forged_ciphered_answer_fails_the_request() -> None:
    conn, meter = gmac_pair()
    exchange(conn, meter, Associate(b"C2S-challenge-16"))
    apdu = conn.send(Get(ENERGY))
    reply = bytearray(meter.handle(apdu) or b"")
    reply[-1] ^= 0xFF  # break the GCM tag
    conn.receive_data(bytes(reply))
    (event,) = drain(conn)
    assert isinstance(event, RequestFailed)
    assert isinstance(event.error, AuthenticationError)


def test_plain_answer_in_a_ciphered_association_is_refused() -> None:
    conn, meter = gmac_pair()
    exchange(conn, meter, Associate(b"C2S-challenge-16"))
    conn.send(Get(ENERGY))
    conn.receive_data(
        GetResponseNormal(Data.integer(1), invoke_id_and_priority=conn.invoke_id_and_priority).to_bytes()
    )
    (event,) = drain(conn)
    assert isinstance(event, RequestFailed)
    assert "plain text" in str(event.error)


def test_malformed_rlre_still_ends_the_association() -> None:
    conn, _ = associated()
    conn.send(Release())
    # gurux-dlms 1.0.203: length byte 14 while 21 bytes follow
    conn.receive_data(bytes.fromhex("630e80010 0be10040e0800065f1f0400001e1dffff0007".replace(" ", "")))
    (event,) = drain(conn)
    assert isinstance(event, Released)
    assert event.response is None
    assert conn.state is ClientState.IDLE


def test_garbage_raises_remote_protocol_error_only() -> None:
    conn, _ = associated()
    conn.send(Get(ENERGY))
    with pytest.raises(RemoteProtocolError):
        conn.receive_data(b"\x00\x01\x02")
    assert not conn.busy
