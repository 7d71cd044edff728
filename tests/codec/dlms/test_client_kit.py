"""A scripted DLMS meter for the client tests, built from the codec's server-side pieces.

Not a simulator: :class:`ScriptedMeter` answers APDUs with ``accept_aarq``, a server-role
:class:`SecurityContext`, ``GetResponseSender``, ``SetRequestReceiver`` and
``ActionRequestReceiver``, and can be told to misbehave (stay silent, refuse HLS pass 3, send a
wrong f(CtoS)). :func:`serve_wrapper` and :func:`serve_hdlc` put it on a Transport. The module
holds no tests; the session tests import it (the test tree has no packages).
"""

from __future__ import annotations

import asyncio
import dataclasses
from dataclasses import dataclass, field

from metercom.codec.base import NEED_DATA, Role
from metercom.codec.dlms.acse import (
    ApplicationContextName,
    AssociationRequest,
    AuthenticationMechanism,
    ReleaseResponse,
    ServerAssociationPolicy,
    accept_aarq,
)
from metercom.codec.dlms.blocks import (
    ActionRequestReceiver,
    GetResponseSender,
    SetRequestReceiver,
)
from metercom.codec.dlms.initiate import CipheredUserInformation, InitiateRequest, decode_user_information
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.codec.dlms.security import (
    SecurityContext,
    hls_sha256,
    is_ciphered_apdu,
    verify_hls_gmac,
    verify_hls_sha256,
)
from metercom.codec.dlms.xdlms import (
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithPblock,
    ActionResponseNormal,
    CosemAttributeDescriptor,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithList,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetResponseNormal,
    decode_xdlms_apdu,
)
from metercom.codec.hdlc import ApduReceived, HdlcAddress, HdlcConnection, HdlcParameters, SendApdu, Transmit
from metercom.codec.wrapper import ApduReceived as WrapperApdu
from metercom.codec.wrapper import SendApdu as WrapperSend
from metercom.codec.wrapper import WrapperConnection
from metercom.errors import AuthenticationError, TransportError
from metercom.model.dlms_data import CosemDateTime, Data
from metercom.model.obis import Obis
from metercom.transport.base import Transport

EK = bytes(range(16))
AK = bytes(range(16, 32))
CLIENT_TITLE = b"MTC00001"
SERVER_TITLE = b"SIM00001"
HLS_SECRET = b"0123456789ABCDEF"
PROFILE_START_S = 1_767_225_600  # 2026-01-01T00:00:00Z

Key = tuple[int, Obis, int]


def key(class_id: int, obis: str, attribute: int) -> Key:
    return (class_id, Obis.parse(obis), attribute)


def default_objects(rows: int = 96, columns: int = 8) -> dict[Key, Data]:
    import datetime as dt

    start = dt.datetime.fromtimestamp(PROFILE_START_S, dt.UTC)
    capture = [
        Data.structure(
            Data.long_unsigned(8),
            Data.octet_string(bytes((0, 0, 1, 0, 0, 255))),
            Data.integer(2),
            Data.long_unsigned(0),
        )
    ]
    capture.extend(
        Data.structure(
            Data.long_unsigned(3),
            Data.octet_string(bytes((1, 0, c, 8, 0, 255))),
            Data.integer(2),
            Data.long_unsigned(0),
        )
        for c in range(1, columns)
    )
    objects: dict[Key, Data] = {
        key(3, "1-0:1.8.0", 2): Data.double_long_unsigned(1234567),
        key(3, "1-0:1.8.0", 3): Data.structure(Data.integer(-2), Data.enum(30)),
        key(1, "0-0:96.1.0", 2): Data.visible_string("SIM0001"),
        key(8, "0-0:1.0.0", 2): Data.octet_date_time(start + dt.timedelta(hours=5)),
        key(70, "0-0:96.3.10", 3): Data.enum(1),
        key(7, "1-0:99.1.0", 3): Data.array(capture),
    }
    for c in range(2, columns):
        objects[key(3, f"1-0:{c}.8.0", 3)] = Data.structure(Data.integer(-3), Data.enum(30))
    buffer = []
    for i in range(rows):
        when = start + dt.timedelta(minutes=15 * i)
        buffer.append(
            Data.structure(
                Data.octet_date_time(when),
                *(Data.double_long_unsigned(1000 * c + i) for c in range(1, columns)),
            )
        )
    objects[key(7, "1-0:99.1.0", 2)] = Data.array(buffer)
    return objects


@dataclass
class ScriptedMeter:
    """A DLMS server role assembled from codec pieces (see the module docstring)."""

    policy: ServerAssociationPolicy = field(
        default_factory=lambda: ServerAssociationPolicy(max_receive_pdu_size=1024)
    )
    objects: dict[Key, Data] = field(default_factory=default_objects)
    keys: bool = False
    hls_secret: bytes = HLS_SECRET
    #: Answer nothing from the n-th request on (0: always answer).
    silent_after: int = 0
    #: Refuse HLS pass 3 / send a wrong f(CtoS).
    refuse_pass3: bool = False
    wrong_pass4: bool = False
    stoc: bytes = b"S2C-challenge-16"
    requests: list[bytes] = field(default_factory=list)
    released: bool = False

    def __post_init__(self) -> None:
        self.security: SecurityContext | None = (
            SecurityContext(system_title=SERVER_TITLE, encryption_key=EK, authentication_key=AK)
            if self.keys
            else None
        )
        self._aarq: AssociationRequest | None = None
        self._client_pdu = 0xFFFF
        self._get: GetResponseSender | None = None
        self._set: SetRequestReceiver | None = None
        self._set_target: CosemAttributeDescriptor | None = None
        self._action: ActionRequestReceiver | None = None
        self.control_state = 1
        self.ciphered = False

    # -- one APDU in, at most one APDU out -----------------------------------------------------

    def handle(self, apdu: bytes) -> bytes | None:
        self.requests.append(apdu)
        if self.silent_after and len(self.requests) >= self.silent_after:
            return None
        if apdu[0] == 0x60:
            return self._aarq_in(apdu)
        if apdu[0] == 0x62:
            self.released = True
            return ReleaseResponse().to_bytes()
        if is_ciphered_apdu(apdu):
            assert self.security is not None
            plain = self.security.decode_apdu(apdu)
            answer = self._service(plain)
            return None if answer is None else self.security.encode_apdu(answer)
        return self._service(apdu)

    def _aarq_in(self, apdu: bytes) -> bytes:
        aarq = AssociationRequest.from_bytes(apdu)
        self._aarq = aarq
        initiate: InitiateRequest | None = None
        info = aarq.user_information
        if isinstance(info, CipheredUserInformation):
            assert self.security is not None
            self.security.peer_system_title = aarq.calling_ap_title
            plain = decode_user_information(self.security.decode_apdu(info.apdu))
            assert isinstance(plain, InitiateRequest)
            initiate = plain
        elif isinstance(info, InitiateRequest):
            initiate = info
        if initiate is not None:
            self._client_pdu = initiate.client_max_receive_pdu_size or 0xFFFF
        if self.security is not None and aarq.calling_ap_title:
            self.security.peer_system_title = aarq.calling_ap_title
        aare = accept_aarq(aarq, self.policy, server_challenge=self.stoc, initiate_request=initiate)
        if self.security is not None:
            aare = dataclasses.replace(aare, responding_ap_title=SERVER_TITLE)
        context = aarq.application_context_name
        self.ciphered = isinstance(context, ApplicationContextName) and context.ciphered and aare.accepted
        if self.ciphered and aare.user_information is not None and self.security is not None:
            protected = self.security.encode_apdu(aare.user_information.to_bytes())
            aare = dataclasses.replace(aare, user_information=CipheredUserInformation(protected))
        return aare.to_bytes()

    def _service(self, apdu: bytes) -> bytes | None:
        request = decode_xdlms_apdu(apdu)
        iid = getattr(request, "invoke_id_and_priority", None)
        if isinstance(request, GetRequestNormal):
            value = self.objects.get(
                (request.attribute.class_id, request.attribute.instance_id, request.attribute.attribute_id)
            )
            response = GetResponseNormal(
                DataAccessResult.OBJECT_UNDEFINED if value is None else self._select(request, value),
                invoke_id_and_priority=request.invoke_id_and_priority,
            )
            self._get = GetResponseSender(response, max_pdu_size=self._client_pdu, overhead=self._overhead())
            return self._get.first_response().to_bytes()
        if isinstance(request, GetRequestNext):
            assert self._get is not None
            return self._get.next_response(request).to_bytes()
        if isinstance(request, GetRequestWithList):
            results: list[Data | DataAccessResult] = []
            for item in request.attributes:
                a = item.attribute
                found = self.objects.get((a.class_id, a.instance_id, a.attribute_id))
                results.append(DataAccessResult.OBJECT_UNDEFINED if found is None else found)
            self._get = GetResponseSender(
                GetResponseWithList(results, invoke_id_and_priority=request.invoke_id_and_priority),
                max_pdu_size=self._client_pdu,
                overhead=self._overhead(),
            )
            return self._get.first_response().to_bytes()
        if isinstance(request, SetRequestNormal):
            a = request.attribute
            self.objects[(a.class_id, a.instance_id, a.attribute_id)] = request.value
            return SetResponseNormal(
                DataAccessResult.SUCCESS, invoke_id_and_priority=request.invoke_id_and_priority
            ).to_bytes()
        if isinstance(request, SetRequestWithFirstDatablock | SetRequestWithDatablock):
            if isinstance(request, SetRequestWithFirstDatablock):
                self._set = SetRequestReceiver()
                self._set_target = request.attribute
            assert self._set is not None
            assert self._set_target is not None
            answer = self._set.receive(request)
            if answer is not None:
                return answer.to_bytes()
            a = self._set_target
            self.objects[(a.class_id, a.instance_id, a.attribute_id)] = self._set.value()
            return self._set.finish(DataAccessResult.SUCCESS).to_bytes()
        if isinstance(request, ActionRequestNormal):
            return self._act(
                request.method.class_id,
                request.method.instance_id,
                request.method.method_id,
                request.parameters,
                request.invoke_id_and_priority,
            )
        if isinstance(request, ActionRequestWithFirstPblock | ActionRequestWithPblock):
            if isinstance(request, ActionRequestWithFirstPblock):
                self._action = ActionRequestReceiver()
                self._action_method = request.method
            assert self._action is not None
            answer = self._action.receive(request)
            if answer is not None:
                return answer.to_bytes()
            m = self._action_method
            return self._act(
                m.class_id,
                m.instance_id,
                m.method_id,
                self._action.parameters(),
                request.invoke_id_and_priority,
            )
        raise AssertionError(f"scripted meter cannot answer {request!r} (iid {iid})")

    def _overhead(self) -> int:
        return 30 if self.ciphered else 0

    def _select(self, request: GetRequestNormal, value: Data) -> Data:
        selection = request.access_selection
        if selection is None:
            return value
        rows = list(value.as_items())
        if selection.access_selector == 2:
            params = selection.access_parameters.as_items()
            first, last = params[0].as_int(), params[1].as_int()
            return Data.array(rows[max(first, 1) - 1 : last or len(rows)])
        params = selection.access_parameters.as_items()
        start = params[1].as_date_time().to_datetime()
        end = params[2].as_date_time().to_datetime()
        chosen = [
            r
            for r in rows
            if start <= CosemDateTime.from_bytes(r.as_items()[0].as_bytes()).to_datetime() <= end
        ]
        return Data.array(chosen)

    def _act(self, class_id: int, obis: Obis, method: int, parameters: Data | None, iid: object) -> bytes:
        from metercom.codec.dlms.xdlms import InvokeIdAndPriority

        assert isinstance(iid, InvokeIdAndPriority)
        if (class_id, obis, method) == (15, Obis(0, 0, 40, 0, 0, 255), 1):
            return self._hls(parameters, iid).to_bytes()
        if class_id == 70 and method in (1, 2):
            self.control_state = 0 if method == 1 else 1
            self.objects[(70, obis, 3)] = Data.enum(self.control_state)
            return ActionResponseNormal(ActionResult.SUCCESS, invoke_id_and_priority=iid).to_bytes()
        return ActionResponseNormal(ActionResult.OBJECT_UNDEFINED, invoke_id_and_priority=iid).to_bytes()

    def _hls(self, parameters: Data | None, iid: object) -> ActionResponseNormal:
        from metercom.codec.dlms.xdlms import InvokeIdAndPriority

        assert isinstance(iid, InvokeIdAndPriority)
        assert self._aarq is not None
        assert parameters is not None
        answer = parameters.as_bytes()
        ctos = self._aarq.client_challenge or b""
        refused = ActionResponseNormal(ActionResult.OTHER_REASON, invoke_id_and_priority=iid)
        if self.refuse_pass3:
            return refused
        mechanism = self._aarq.mechanism
        try:
            if mechanism is AuthenticationMechanism.HIGH_GMAC:
                assert self.security is not None
                verify_hls_gmac(
                    answer, self.stoc, system_title=CLIENT_TITLE, encryption_key=EK, authentication_key=AK
                )
                reply = self.security.hls_gmac_response(ctos)
            else:
                verify_hls_sha256(
                    answer,
                    self.hls_secret,
                    own_system_title=SERVER_TITLE,
                    peer_system_title=CLIENT_TITLE,
                    sent_challenge=self.stoc,
                    received_challenge=ctos,
                )
                reply = hls_sha256(
                    self.hls_secret,
                    own_system_title=SERVER_TITLE,
                    peer_system_title=CLIENT_TITLE,
                    received_challenge=ctos,
                    sent_challenge=self.stoc,
                )
        except AuthenticationError:
            return refused
        if self.wrong_pass4:
            reply = reply[:-1] + bytes((reply[-1] ^ 0x01,))
        return ActionResponseNormal(
            ActionResult.SUCCESS, Data.octet_string(reply), invoke_id_and_priority=iid
        )


async def serve_wrapper(transport: Transport, meter: ScriptedMeter, *, close_after: int = 0) -> None:
    """The meter behind the IEC 62056-47 wrapper; closes the link after ``close_after`` requests."""
    conn = WrapperConnection(Role.SERVER, None, None)
    try:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(await transport.read(4096))
                continue
            if not isinstance(event, WrapperApdu):
                continue
            if close_after and len(meter.requests) + 1 >= close_after:
                await transport.close()
                return
            reply = meter.handle(event.apdu)
            if reply is not None:
                await transport.write(conn.send(WrapperSend(reply)))
    except TransportError:
        return


async def serve_hdlc(
    transport: Transport, meter: ScriptedMeter, *, server: HdlcAddress | None = None, max_info: int = 128
) -> None:
    """The meter behind HDLC (server role)."""
    conn = HdlcConnection(
        Role.SERVER,
        None,
        server or HdlcAddress(1),
        parameters=HdlcParameters(max_info, max_info, 1, 1),
    )
    loop = asyncio.get_running_loop()
    try:
        while True:
            event = conn.next_event()
            if event is NEED_DATA:
                conn.receive_data(await transport.read(4096), now=loop.time())
                continue
            if isinstance(event, Transmit):
                await transport.write(event.data)
            elif isinstance(event, ApduReceived):
                reply = meter.handle(event.apdu)
                if reply is not None:
                    await transport.write(conn.send(SendApdu(reply), now=loop.time()))
    except TransportError:
        return
