"""Sans-I/O DLMS/COSEM application-layer server (the meter side of IEC 62056-5-3; Green Book DLMS
UA 1000-2 clause 9: ACSE association, xDLMS GET/SET/ACTION with block transfer, security).

Rule: :class:`DlmsServer` turns one request APDU into at most one response APDU
(:meth:`DlmsServer.handle`) and never raises on what a client sends: malformed, out-of-state,
undecipherable or oversized requests are answered the way the Green Book asks (a rejected
AARE, a Data-Access-Result, an exception-response), so a fuzzer can only ever get bytes back.
It does no I/O, reads no clock and draws randomness only from the injected ``random_bytes``.
What the objects *are* lives behind the :class:`CosemObjectModel` protocol (the simulator's
object model, a test double, a CMRI's virtual meter); access rights come from the same model,
per association. Misuse by the caller raises :class:`~metercom.errors.LocalProtocolError`.

Theory of operation:

* One :class:`DlmsServer` serves one link (a TCP connection, an HDLC link, a UDP peer). The
  lower layer hands it each APDU with the client SAP it came from (wrapper source wPort, HDLC
  client address); every client SAP has its own association state, so one link can switch
  clients. :meth:`DlmsServer.release` drops associations when the link goes (HDLC DISC, TCP
  close).
* Associations come from :class:`AssociationConfig` (one per client SAP): the ACSE policy
  (:class:`~metercom.codec.dlms.acse.ServerAssociationPolicy`: context, mechanisms, LLS
  password, PDU size), the Association LN instance that names it, and for HLS-GMAC or ciphered
  contexts the keys (:class:`ServerKeys`). An AARQ is decided by
  :func:`~metercom.codec.dlms.acse.accept_aarq`; a ciphered AARQ's InitiateRequest is first
  unprotected with a fresh :class:`~metercom.codec.dlms.security.SecurityContext` (peer
  system title = calling-AP-title) and the InitiateResponse goes back in the same framing.
* HLS (mechanism 5, HLS-GMAC; 6, HLS-SHA256): the AARE carries StoC and the association stays
  pending; only ``reply_to_HLS_authentication`` (class 15 method 1) is then served. Its
  parameter f(StoC) is verified and the server answers f(CtoS); any failure leaves the
  association closed (the client must start again with an AARQ).
* Services: GET normal / next / with-list, SET normal / with-list / datablocks, ACTION normal /
  with-list / pblocks (:mod:`metercom.codec.dlms.blocks` does the block bookkeeping). Long GET
  and ACTION results are cut to the client's max receive PDU size (and to ``max_send_pdu_size``,
  a meter quirk), less the ciphering overhead. Requests longer than our max receive PDU size
  get exception-response pdu-too-long.
* Access rights are checked here, before the model is asked: an object the association does
  not list is object-undefined; an attribute without read (write) access is read-write-denied,
  a method without access likewise; ``authenticated_*`` modes need an authenticated (LLS or
  HLS) association. ``0.0.40.0.0.255`` (current association) is mapped to the instance of the
  association in use before anything else.
* Ciphered contexts: every request must be ciphered (glo-, ded-, general-glo-, general-ded-);
  the response uses the framing of the request. A frame that does not verify gets
  exception-response deciphering-error, a replayed counter invocation-counter-error carrying
  the lowest counter we accept.
* Profile Generic selective access is a pure function here too (:func:`select_buffer` over a
  :class:`ProfileBuffer`), so a simulator can compute only the rows asked for (range by capture
  time with column selection, entry ranges).
"""

from __future__ import annotations

import datetime as _dt
import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from metercom.codec.dlms.acse import (
    AcseServiceUserDiagnostic,
    ApplicationContextName,
    AssociationRequest,
    AssociationResponse,
    AssociationResult,
    AuthenticationMechanism,
    ReleaseRequest,
    ReleaseResponse,
    ReleaseResponseReason,
    ServerAssociationPolicy,
    accept_aarq,
)
from metercom.codec.dlms.blocks import (
    ActionRequestReceiver,
    ActionResponseSender,
    GetResponseSender,
    SetRequestReceiver,
)
from metercom.codec.dlms.conformance import Conformance
from metercom.codec.dlms.initiate import (
    CipheredUserInformation,
    InitiateRequest,
    InitiateResponse,
    decode_user_information,
)
from metercom.codec.dlms.results import ActionResult, DataAccessResult
from metercom.codec.dlms.security import (
    OWN_COUNTER,
    CipheredApduTag,
    CounterStore,
    Protection,
    ReplayError,
    SecurityContext,
    hls_gmac,
    hls_sha256,
    is_ciphered_apdu,
    make_challenge,
    verify_hls_gmac,
)
from metercom.codec.dlms.xdlms import (
    ActionRequestNextPblock,
    ActionRequestNormal,
    ActionRequestWithFirstPblock,
    ActionRequestWithList,
    ActionRequestWithPblock,
    ActionResponseNormal,
    ActionResponseWithList,
    ActionResponseWithOptionalData,
    CaptureObjectDefinition,
    CosemAttributeDescriptor,
    CosemMethodDescriptor,
    EntryDescriptor,
    ExceptionResponse,
    ExceptionServiceError,
    ExceptionStateError,
    GetRequestNext,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InvokeIdAndPriority,
    RangeDescriptor,
    SelectiveAccessDescriptor,
    SetRequestNormal,
    SetRequestWithDatablock,
    SetRequestWithFirstDatablock,
    SetRequestWithList,
    SetResponseNormal,
    SetResponseWithList,
    decode_xdlms_apdu,
)
from metercom.errors import AuthenticationError, LocalProtocolError, MetercomError, RemoteProtocolError
from metercom.model.cosem.types import AccessMode, MethodAccessMode
from metercom.model.dlms_data import Data, DlmsType, DlmsValueError
from metercom.model.obis import Obis

__all__ = [
    "CURRENT_ASSOCIATION",
    "AssociationConfig",
    "AssociationState",
    "CosemObjectModel",
    "DlmsServer",
    "ListProfileBuffer",
    "ProfileBuffer",
    "RequestContext",
    "ServerKeys",
    "select_buffer",
]

_LAYER = "dlms-server"

#: Association LN "current association" (Blue Book 4.4.4): answered from the instance in use.
CURRENT_ASSOCIATION: Final = Obis(0, 0, 40, 0, 0, 255)
_ASSOCIATION_LN_CLASS: Final = 15
_REPLY_TO_HLS: Final = 1

# Ciphering overhead per APDU: tag 1 + length <= 3 + SC 1 + IC 4 + GCM tag 12 (service-specific);
# general-glo/ded-ciphering adds the system title (length 1 + 8).
_OVERHEAD_SERVICE: Final = 21
_OVERHEAD_GENERAL: Final = 30
_DEDICATED_TAGS: Final = frozenset(t for t in CipheredApduTag if t.name.startswith("DED_"))


# --------------------------------------------------------------------------------------------
# Configuration and the object-model interface
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ServerKeys:
    """The meter's security material for one association (secrets masked in ``repr``).

        ``system_title`` is the server's (8 bytes); ``encryption_key`` / ``authentication_key`` the
        global unicast EK and AK (suite 0: 16 bytes); ``hls_secret`` the HLS-SHA256 secret.
        ``invocation_counter`` the first own counter to use (1: some clients take 0 as "none
    seen yet" and refuse it).
    """

    system_title: bytes
    encryption_key: bytes
    authentication_key: bytes
    hls_secret: bytes | None = None
    invocation_counter: int = 1

    def __repr__(self) -> str:
        return f"ServerKeys(system_title={self.system_title.hex()}, keys=<hidden>)"


@dataclass(frozen=True, slots=True)
class AssociationConfig:
    """One client the server accepts: its SAP, the Association LN instance naming it, the ACSE
    policy, and the keys when the policy asks for HLS-GMAC/SHA256 or a ciphered context."""

    name: str
    client_sap: int
    logical_name: Obis
    policy: ServerAssociationPolicy
    keys: ServerKeys | None = None

    def __post_init__(self) -> None:
        needs_keys = any(c.ciphered for c in self.policy.application_context_names) or any(
            m in (AuthenticationMechanism.HIGH_GMAC, AuthenticationMechanism.HIGH_SHA256)
            for m in self.policy.mechanisms
        )
        if needs_keys and self.keys is None:
            raise LocalProtocolError(
                f"association {self.name!r} (client {self.client_sap}) uses HLS or ciphering: give keys=",
                layer=_LAYER,
            )


@dataclass(frozen=True, slots=True)
class RequestContext:
    """Who asks: the association (by name and SAP), whether it authenticated (LLS or HLS) and
    whether the request came ciphered."""

    association: str
    client_sap: int
    association_ln: Obis
    authenticated: bool
    ciphered: bool


class CosemObjectModel(Protocol):
    """What a server serves. Access rights are asked first; the value methods are only called
    for accesses the association is allowed. ``None`` from the access methods means the object
    is not in that association's object list (object-undefined)."""

    def attribute_access(
        self, context: RequestContext, class_id: int, obis: Obis, attribute: int
    ) -> AccessMode | None: ...

    def method_access(
        self, context: RequestContext, class_id: int, obis: Obis, method: int
    ) -> MethodAccessMode | None: ...

    def get_attribute(
        self,
        descriptor: CosemAttributeDescriptor,
        selection: SelectiveAccessDescriptor | None,
        *,
        context: RequestContext,
    ) -> Data | DataAccessResult: ...

    def set_attribute(
        self,
        descriptor: CosemAttributeDescriptor,
        value: Data,
        selection: SelectiveAccessDescriptor | None,
        *,
        context: RequestContext,
    ) -> DataAccessResult: ...

    def invoke_method(
        self, descriptor: CosemMethodDescriptor, parameters: Data | None, *, context: RequestContext
    ) -> tuple[ActionResult, Data | None]: ...


# --------------------------------------------------------------------------------------------
# Per-association state
# --------------------------------------------------------------------------------------------


@dataclass(slots=True)
class AssociationState:
    """The state of one client's association on this link (read-only for callers)."""

    config: AssociationConfig
    context_name: ApplicationContextName
    mechanism: AuthenticationMechanism
    conformance: Conformance
    client_max_pdu_size: int
    security: SecurityContext | None
    pending_hls: bool
    server_challenge: bytes | None = None
    client_challenge: bytes | None = None
    client_system_title: bytes | None = None
    get_sender: GetResponseSender | None = None
    set_receiver: SetRequestReceiver | None = None
    action_receiver: ActionRequestReceiver | None = None
    action_sender: ActionResponseSender | None = None
    requests: int = field(default=0)
    #: HLS-GMAC in a ciphered context: f(CtoS) used the counter after the response frame's.
    skip_counter: bool = False

    @property
    def associated(self) -> bool:
        return not self.pending_hls

    @property
    def ciphered(self) -> bool:
        return self.context_name.ciphered


def _exception(
    service: ExceptionServiceError, state: ExceptionStateError = ExceptionStateError.SERVICE_NOT_ALLOWED
) -> bytes:
    return ExceptionResponse(state, service).to_bytes()


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class DlmsServer:
    """The DLMS application layer of one link, server role. See the module docstring."""

    def __init__(
        self,
        model: CosemObjectModel,
        associations: Iterable[AssociationConfig],
        *,
        random_bytes: Callable[[int], bytes] = os.urandom,
        max_send_pdu_size: int | None = None,
        challenge_length: int = 16,
        counter_store: CounterStore | None = None,
    ) -> None:
        self.model = model
        #: Keeps the meter's own invocation counter across associations and links (only the
        #: own counter: a client's counter is checked per association, as most meters do).
        self.counter_store = _OwnCounter(counter_store) if counter_store is not None else None
        self.configs: dict[int, AssociationConfig] = {}
        for config in associations:
            if config.client_sap in self.configs:
                raise LocalProtocolError(f"client SAP {config.client_sap} configured twice", layer=_LAYER)
            self.configs[config.client_sap] = config
        self.random_bytes = random_bytes
        self.max_send_pdu_size = max_send_pdu_size
        self.challenge_length = challenge_length
        self.associations: dict[int, AssociationState] = {}

    # -- public verbs -------------------------------------------------------------------------

    def associated(self, client_sap: int) -> bool:
        """True when ``client_sap`` holds a fully established association on this link."""
        state = self.associations.get(client_sap)
        return state is not None and state.associated

    def release(self, client_sap: int | None = None) -> None:
        """Forget the association of ``client_sap`` (all of them with ``None``): the link went."""
        if client_sap is None:
            self.associations.clear()
        else:
            self.associations.pop(client_sap, None)

    def handle(self, apdu: bytes | bytearray | memoryview, *, client_sap: int) -> bytes | None:
        """Answer one request APDU from ``client_sap``; ``None`` when nothing is to be sent."""
        data = bytes(apdu)
        if not data:
            return None
        tag = data[0]
        if tag == AssociationRequest.TAG:
            return self._aarq(data, client_sap)
        if tag == ReleaseRequest.TAG:
            return self._rlrq(client_sap)
        state = self.associations.get(client_sap)
        if state is None:
            return _exception(ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        state.requests += 1
        if len(data) > state.config.policy.max_receive_pdu_size > 0:
            return _exception(ExceptionServiceError.PDU_TOO_LONG)
        protection: Protection | None = None
        if is_ciphered_apdu(data):
            if state.security is None:
                return _exception(ExceptionServiceError.DECIPHERING_ERROR)
            protection = _protection_of(tag)
            try:
                data = state.security.decode_apdu(data)
            except ReplayError:
                last = state.security.peer_invocation_counter() or 0
                return ExceptionResponse(
                    ExceptionStateError.SERVICE_NOT_ALLOWED,
                    ExceptionServiceError.INVOCATION_COUNTER_ERROR,
                    min(last + 1, 0xFFFFFFFF),
                ).to_bytes()
            except (AuthenticationError, RemoteProtocolError, LocalProtocolError):
                return _exception(ExceptionServiceError.DECIPHERING_ERROR)
            if not data:
                return _exception(ExceptionServiceError.DECIPHERING_ERROR)
        elif state.ciphered:
            # A ciphered context accepts only protected requests.
            return _exception(ExceptionServiceError.DECIPHERING_ERROR)
        response = self._service(state, data, protection is not None)
        if response is None:
            return None
        if protection is not None and state.security is not None:
            try:
                wire = state.security.encode_apdu(response, protection=protection)
                if state.skip_counter:
                    state.skip_counter = False
                    state.security.next_counter()
            except LocalProtocolError:
                return _exception(ExceptionServiceError.OTHER_REASON)
            return wire
        return response

    # -- ACSE ---------------------------------------------------------------------------------

    def _reject(self, diagnostic: AcseServiceUserDiagnostic) -> bytes:
        return AssociationResponse(
            result=AssociationResult.REJECTED_PERMANENT, result_source_diagnostic=diagnostic
        ).to_bytes()

    def _aarq(self, data: bytes, client_sap: int) -> bytes:
        self.associations.pop(client_sap, None)
        try:
            aarq = AssociationRequest.from_bytes(data)
        except RemoteProtocolError:
            return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
        config = self.configs.get(client_sap)
        if config is None:
            return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
        policy = config.policy
        security: SecurityContext | None = None
        initiate: InitiateRequest | None = None
        info = aarq.user_information
        keys = config.keys
        if keys is not None and aarq.calling_ap_title is not None and len(aarq.calling_ap_title) == 8:
            try:
                security = SecurityContext(
                    system_title=keys.system_title,
                    encryption_key=keys.encryption_key,
                    authentication_key=keys.authentication_key,
                    peer_system_title=aarq.calling_ap_title,
                    invocation_counter=keys.invocation_counter,
                    counter_store=self.counter_store,
                )
            except LocalProtocolError:
                return self._reject(AcseServiceUserDiagnostic.CALLING_AP_TITLE_NOT_RECOGNIZED)
        if isinstance(info, CipheredUserInformation):
            context = aarq.application_context_name
            if security is None or not (isinstance(context, ApplicationContextName) and context.ciphered):
                return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
            try:
                plain = decode_user_information(security.decode_apdu(info.apdu))
            except (AuthenticationError, RemoteProtocolError, LocalProtocolError):
                return self._reject(AcseServiceUserDiagnostic.AUTHENTICATION_FAILURE)
            if not isinstance(plain, InitiateRequest):
                return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
            initiate = plain
        challenge = make_challenge(self.challenge_length, random_bytes=self.random_bytes)
        try:
            aare = accept_aarq(aarq, policy, server_challenge=challenge, initiate_request=initiate)
        except LocalProtocolError:
            return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
        if policy.system_title is None and keys is not None and aare.responding_ap_title is None:
            aare = _replace_aare(aare, responding_ap_title=keys.system_title)
        if not aare.accepted:
            return aare.to_bytes()
        request = initiate if initiate is not None else info
        response_info = aare.user_information
        context = aarq.application_context_name
        mechanism = aarq.mechanism
        if not (
            isinstance(request, InitiateRequest)  # accept_aarq accepted, so these all hold
            and isinstance(response_info, InitiateResponse)
            and isinstance(context, ApplicationContextName)
            and isinstance(mechanism, AuthenticationMechanism)
        ):
            return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
        if context.ciphered:
            if security is None or not isinstance(info, CipheredUserInformation):
                return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
            if request.dedicated_key is not None:
                try:
                    security.set_dedicated_key(request.dedicated_key)
                except LocalProtocolError:
                    return self._reject(AcseServiceUserDiagnostic.NO_REASON_GIVEN)
            protection = (
                Protection.GENERAL_GLOBAL
                if info.apdu[0]
                in (CipheredApduTag.GENERAL_GLO_CIPHERING, CipheredApduTag.GENERAL_DED_CIPHERING)
                else Protection.GLOBAL
            )
            ciphered = security.encode_apdu(response_info.to_bytes(), protection=protection)
            aare = _replace_aare(aare, user_information=CipheredUserInformation(ciphered))
        self.associations[client_sap] = AssociationState(
            config=config,
            context_name=context,
            mechanism=mechanism,
            conformance=response_info.negotiated_conformance,
            client_max_pdu_size=request.client_max_receive_pdu_size or 0xFFFF,
            security=security,
            pending_hls=mechanism.is_high_level,
            server_challenge=challenge if mechanism.is_high_level else None,
            client_challenge=aarq.client_challenge,
            client_system_title=aarq.calling_ap_title,
        )
        return aare.to_bytes()

    def _rlrq(self, client_sap: int) -> bytes:
        # The association is over whatever the RLRQ says, so it is not even decoded.
        self.associations.pop(client_sap, None)
        return ReleaseResponse(ReleaseResponseReason.NORMAL).to_bytes()

    # -- xDLMS services -----------------------------------------------------------------------

    def _context(self, state: AssociationState, ciphered: bool) -> RequestContext:
        return RequestContext(
            association=state.config.name,
            client_sap=state.config.client_sap,
            association_ln=state.config.logical_name,
            authenticated=state.mechanism is not AuthenticationMechanism.NONE and not state.pending_hls,
            ciphered=ciphered,
        )

    def _send_limit(self, state: AssociationState) -> int:
        limit = state.client_max_pdu_size
        if self.max_send_pdu_size is not None:
            limit = min(limit, self.max_send_pdu_size)
        return limit

    def _overhead(self, state: AssociationState, ciphered: bool) -> int:
        return _OVERHEAD_GENERAL if ciphered and state.security is not None else 0

    def _service(self, state: AssociationState, data: bytes, ciphered: bool) -> bytes | None:
        try:
            request = decode_xdlms_apdu(data)
        except RemoteProtocolError:
            return _exception(
                ExceptionServiceError.SERVICE_NOT_SUPPORTED, ExceptionStateError.SERVICE_UNKNOWN
            )
        context = self._context(state, ciphered)
        if state.pending_hls:
            if isinstance(request, ActionRequestNormal):
                return self._hls_pass_3(state, request)
            return _exception(ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        limit = self._send_limit(state)
        overhead = self._overhead(state, ciphered)
        conformance = state.conformance
        if isinstance(request, GetRequestNormal):
            value = self._get(context, request.attribute, request.access_selection)
            return self._get_response(
                state,
                GetResponseNormal(value, invoke_id_and_priority=request.invoke_id_and_priority),
                limit,
                overhead,
            )
        if isinstance(request, GetRequestNext):
            sender = state.get_sender
            if sender is None:
                return GetResponseWithDatablock(
                    True,
                    request.block_number,
                    DataAccessResult.NO_LONG_GET_IN_PROGRESS,
                    invoke_id_and_priority=request.invoke_id_and_priority,
                ).to_bytes()
            block = sender.next_response(request)
            if sender.done:
                state.get_sender = None
            return block.to_bytes()
        if isinstance(request, GetRequestWithList):
            if not conformance & Conformance.MULTIPLE_REFERENCES:
                return _exception(ExceptionServiceError.SERVICE_NOT_SUPPORTED)
            values = [
                self._get(context, item.attribute, item.access_selection) for item in request.attributes
            ]
            return self._get_response(
                state,
                GetResponseWithList(values, invoke_id_and_priority=request.invoke_id_and_priority),
                limit,
                overhead,
            )
        if isinstance(request, SetRequestNormal):
            set_result = self._set(context, request.attribute, request.value, request.access_selection)
            return SetResponseNormal(
                set_result, invoke_id_and_priority=request.invoke_id_and_priority
            ).to_bytes()
        if isinstance(request, SetRequestWithList):
            set_results = [
                self._set(context, item.attribute, value, item.access_selection)
                for item, value in zip(request.attributes, request.values, strict=False)
            ]
            if len(request.attributes) != len(request.values):
                set_results = [DataAccessResult.TYPE_UNMATCHED] * len(request.attributes)
            return SetResponseWithList(
                set_results, invoke_id_and_priority=request.invoke_id_and_priority
            ).to_bytes()
        if isinstance(request, SetRequestWithFirstDatablock | SetRequestWithDatablock):
            return self._set_block(state, context, request)
        if isinstance(request, ActionRequestNormal):
            if _is_hls_reply(request.method, state):
                # A second pass 3 on an established association: not allowed.
                return ActionResponseNormal(
                    ActionResult.READ_WRITE_DENIED, invoke_id_and_priority=request.invoke_id_and_priority
                ).to_bytes()
            action_result, ret = self._action(context, request.method, request.parameters)
            return self._action_response(
                state,
                ActionResponseNormal(
                    action_result, ret, invoke_id_and_priority=request.invoke_id_and_priority
                ),
                limit,
                overhead,
            )
        if isinstance(request, ActionRequestWithList):
            if len(request.methods) != len(request.parameters):
                return _exception(ExceptionServiceError.OTHER_REASON)
            outcomes = []
            for method, parameters in zip(request.methods, request.parameters, strict=True):
                item_result, ret = self._action(context, method, parameters)
                outcomes.append(ActionResponseWithOptionalData(item_result, ret))
            return ActionResponseWithList(
                outcomes, invoke_id_and_priority=request.invoke_id_and_priority
            ).to_bytes()
        if isinstance(request, ActionRequestWithFirstPblock | ActionRequestWithPblock):
            return self._action_block(state, context, request, limit, overhead)
        if isinstance(request, ActionRequestNextPblock):
            action_sender = state.action_sender
            if action_sender is None:
                return ActionResponseNormal(
                    ActionResult.NO_LONG_ACTION_IN_PROGRESS,
                    invoke_id_and_priority=request.invoke_id_and_priority,
                ).to_bytes()
            answer = action_sender.next_response(request)
            if action_sender.done:
                state.action_sender = None
            return answer.to_bytes()
        return _exception(ExceptionServiceError.SERVICE_NOT_SUPPORTED, ExceptionStateError.SERVICE_UNKNOWN)

    # -- GET ----------------------------------------------------------------------------------

    def _resolve(self, context: RequestContext, class_id: int, obis: Obis) -> Obis:
        if class_id == _ASSOCIATION_LN_CLASS and obis == CURRENT_ASSOCIATION:
            return context.association_ln
        return obis

    def _get(
        self,
        context: RequestContext,
        attribute: CosemAttributeDescriptor,
        selection: SelectiveAccessDescriptor | None,
    ) -> Data | DataAccessResult:
        obis = self._resolve(context, attribute.class_id, attribute.instance_id)
        if obis != attribute.instance_id:
            attribute = CosemAttributeDescriptor(attribute.class_id, obis, attribute.attribute_id)
        try:
            mode = self.model.attribute_access(context, attribute.class_id, obis, attribute.attribute_id)
            if mode is None:
                return DataAccessResult.OBJECT_UNDEFINED
            if not mode.readable or (mode.authenticated and not context.authenticated):
                return DataAccessResult.READ_WRITE_DENIED
            return self.model.get_attribute(attribute, selection, context=context)
        except (MetercomError, ValueError):
            return DataAccessResult.OTHER_REASON

    def _get_response(
        self,
        state: AssociationState,
        response: GetResponseNormal | GetResponseWithList,
        limit: int,
        overhead: int,
    ) -> bytes:
        state.get_sender = None
        try:
            sender = GetResponseSender(response, max_pdu_size=limit, overhead=overhead)
        except LocalProtocolError:
            return _exception(ExceptionServiceError.PDU_TOO_LONG)
        if sender.block_count and not state.conformance & Conformance.BLOCK_TRANSFER_WITH_GET_OR_READ:
            # Too long and no block transfer negotiated: nothing better than a refusal fits.
            if isinstance(response, GetResponseNormal):
                return GetResponseNormal(
                    DataAccessResult.OTHER_REASON, invoke_id_and_priority=response.invoke_id_and_priority
                ).to_bytes()
            return _exception(ExceptionServiceError.PDU_TOO_LONG)
        first = sender.first_response()
        if not sender.done:
            state.get_sender = sender
        return first.to_bytes()

    # -- SET ----------------------------------------------------------------------------------

    def _set(
        self,
        context: RequestContext,
        attribute: CosemAttributeDescriptor,
        value: Data,
        selection: SelectiveAccessDescriptor | None,
    ) -> DataAccessResult:
        obis = self._resolve(context, attribute.class_id, attribute.instance_id)
        if obis != attribute.instance_id:
            attribute = CosemAttributeDescriptor(attribute.class_id, obis, attribute.attribute_id)
        try:
            mode = self.model.attribute_access(context, attribute.class_id, obis, attribute.attribute_id)
            if mode is None:
                return DataAccessResult.OBJECT_UNDEFINED
            if not mode.writable or (mode.authenticated and not context.authenticated):
                return DataAccessResult.READ_WRITE_DENIED
            return self.model.set_attribute(attribute, value, selection, context=context)
        except (MetercomError, ValueError):
            return DataAccessResult.OTHER_REASON

    def _set_block(
        self,
        state: AssociationState,
        context: RequestContext,
        request: SetRequestWithFirstDatablock | SetRequestWithDatablock,
    ) -> bytes:
        if not state.conformance & Conformance.BLOCK_TRANSFER_WITH_SET_OR_WRITE:
            return _exception(ExceptionServiceError.SERVICE_NOT_SUPPORTED)
        if isinstance(request, SetRequestWithFirstDatablock) or state.set_receiver is None:
            state.set_receiver = SetRequestReceiver()
        receiver = state.set_receiver
        answer = receiver.receive(request)
        if answer is not None:
            if receiver.done:
                state.set_receiver = None
            return answer.to_bytes()
        state.set_receiver = None
        try:
            value = receiver.value()
        except RemoteProtocolError:
            return receiver.finish(DataAccessResult.TYPE_UNMATCHED).to_bytes()
        if receiver.attribute is None:
            return receiver.finish(DataAccessResult.OTHER_REASON).to_bytes()
        result = self._set(context, receiver.attribute, value, receiver.access_selection)
        return receiver.finish(result).to_bytes()

    # -- ACTION -------------------------------------------------------------------------------

    def _action(
        self, context: RequestContext, method: CosemMethodDescriptor, parameters: Data | None
    ) -> tuple[ActionResult, Data | None]:
        obis = self._resolve(context, method.class_id, method.instance_id)
        if obis != method.instance_id:
            method = CosemMethodDescriptor(method.class_id, obis, method.method_id)
        try:
            mode = self.model.method_access(context, method.class_id, obis, method.method_id)
            if mode is None:
                return ActionResult.OBJECT_UNDEFINED, None
            if mode is MethodAccessMode.NO_ACCESS or (
                mode is MethodAccessMode.AUTHENTICATED_ACCESS and not context.authenticated
            ):
                return ActionResult.READ_WRITE_DENIED, None
            return self.model.invoke_method(method, parameters, context=context)
        except (MetercomError, ValueError):
            return ActionResult.OTHER_REASON, None

    def _action_response(
        self, state: AssociationState, response: ActionResponseNormal, limit: int, overhead: int
    ) -> bytes:
        state.action_sender = None
        try:
            sender = ActionResponseSender(response, max_pdu_size=limit, overhead=overhead)
        except LocalProtocolError:
            return ActionResponseNormal(
                ActionResult.OTHER_REASON, invoke_id_and_priority=response.invoke_id_and_priority
            ).to_bytes()
        first = sender.first_response()
        if not sender.done:
            state.action_sender = sender
        return first.to_bytes()

    def _action_block(
        self,
        state: AssociationState,
        context: RequestContext,
        request: ActionRequestWithFirstPblock | ActionRequestWithPblock,
        limit: int,
        overhead: int,
    ) -> bytes:
        if not state.conformance & Conformance.BLOCK_TRANSFER_WITH_ACTION:
            return _exception(ExceptionServiceError.SERVICE_NOT_SUPPORTED)
        if isinstance(request, ActionRequestWithFirstPblock) or state.action_receiver is None:
            state.action_receiver = ActionRequestReceiver()
        receiver = state.action_receiver
        answer = receiver.receive(request)
        if answer is not None:
            if receiver.done:
                state.action_receiver = None
            return answer.to_bytes()
        state.action_receiver = None
        iid = receiver.invoke_id_and_priority or request.invoke_id_and_priority
        try:
            parameters: Data | None = receiver.parameters()
        except RemoteProtocolError:
            return ActionResponseNormal(ActionResult.TYPE_UNMATCHED, invoke_id_and_priority=iid).to_bytes()
        if receiver.method is None:
            return ActionResponseNormal(ActionResult.OTHER_REASON, invoke_id_and_priority=iid).to_bytes()
        result, ret = self._action(context, receiver.method, parameters)
        return self._action_response(
            state, ActionResponseNormal(result, ret, invoke_id_and_priority=iid), limit, overhead
        )

    # -- HLS pass 3 and 4 ---------------------------------------------------------------------

    def _hls_pass_3(self, state: AssociationState, request: ActionRequestNormal) -> bytes:
        iid: InvokeIdAndPriority = request.invoke_id_and_priority
        denied = ActionResponseNormal(ActionResult.READ_WRITE_DENIED, invoke_id_and_priority=iid).to_bytes()
        if not _is_hls_reply(request.method, state):
            return _exception(ExceptionServiceError.OPERATION_NOT_POSSIBLE)
        parameters = request.parameters
        if (
            parameters is None
            or parameters.type != DlmsType.OCTET_STRING
            or not isinstance(parameters.value, bytes)
            or state.server_challenge is None
            or state.client_challenge is None
        ):
            self.associations.pop(state.config.client_sap, None)
            return denied
        reply = self._hls_reply(state, parameters.value)
        if reply is None:
            self.associations.pop(state.config.client_sap, None)
            return denied
        state.pending_hls = False
        return ActionResponseNormal(
            ActionResult.SUCCESS, Data.octet_string(reply), invoke_id_and_priority=iid
        ).to_bytes()

    def _hls_reply(self, state: AssociationState, response: bytes) -> bytes | None:
        """Verify f(StoC); return f(CtoS), or None when the client failed."""
        stoc = state.server_challenge
        ctos = state.client_challenge
        keys = state.config.keys
        if stoc is None or ctos is None:
            return None
        if state.mechanism is AuthenticationMechanism.HIGH_GMAC:
            security = state.security
            if security is None:
                return None
            client_title = state.client_system_title
            if keys is None or client_title is None:
                return None
            try:
                # The association's own keys and the client's AP title (from the AARQ) check f(StoC).
                verify_hls_gmac(
                    response,
                    stoc,
                    system_title=client_title,
                    encryption_key=keys.encryption_key,
                    authentication_key=keys.authentication_key,
                    suite_id=security.security_control.suite_id,
                )
            except (AuthenticationError, RemoteProtocolError, LocalProtocolError):
                return None
            if not state.ciphered:
                return security.hls_gmac_response(ctos)
            # A client deciphers our response (counter n) before it checks f(CtoS); a client that
            # runs f(CtoS) through its replay check needs it above n, so f(CtoS) takes n + 1 and
            # our counter skips it once the frame is sent.
            counter = security.invocation_counter + 1
            state.skip_counter = True
            try:
                return hls_gmac(
                    ctos,
                    system_title=keys.system_title,
                    invocation_counter=counter,
                    encryption_key=keys.encryption_key,
                    authentication_key=keys.authentication_key,
                    suite_id=security.security_control.suite_id,
                )
            except (AuthenticationError, RemoteProtocolError, LocalProtocolError):
                return None
        if state.mechanism is AuthenticationMechanism.HIGH_SHA256:
            client_title = state.client_system_title
            if keys is None or keys.hls_secret is None or client_title is None:
                return None
            expected = hls_sha256(
                keys.hls_secret,
                own_system_title=client_title,
                peer_system_title=keys.system_title,
                received_challenge=stoc,
                sent_challenge=ctos,
            )
            if expected != response:
                return None
            return hls_sha256(
                keys.hls_secret,
                own_system_title=keys.system_title,
                peer_system_title=client_title,
                received_challenge=ctos,
                sent_challenge=stoc,
            )
        return None


class _OwnCounter:
    """A :class:`CounterStore` view that keeps only the own invocation counter."""

    def __init__(self, store: CounterStore) -> None:
        self.store = store

    def load(self, name: str) -> int | None:
        return self.store.load(name) if name == OWN_COUNTER else None

    def save(self, name: str, value: int) -> None:
        if name == OWN_COUNTER:
            self.store.save(name, value)


def _is_hls_reply(method: CosemMethodDescriptor, state: AssociationState) -> bool:
    return (
        method.class_id == _ASSOCIATION_LN_CLASS
        and method.method_id == _REPLY_TO_HLS
        and method.instance_id in (CURRENT_ASSOCIATION, state.config.logical_name)
    )


def _protection_of(tag: int) -> Protection:
    if tag == CipheredApduTag.GENERAL_GLO_CIPHERING:
        return Protection.GENERAL_GLOBAL
    if tag == CipheredApduTag.GENERAL_DED_CIPHERING:
        return Protection.GENERAL_DEDICATED
    if tag in _DEDICATED_TAGS:
        return Protection.DEDICATED
    return Protection.GLOBAL


def _replace_aare(aare: AssociationResponse, **changes: object) -> AssociationResponse:
    from dataclasses import replace

    return replace(aare, **changes)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# Profile Generic selective access
# --------------------------------------------------------------------------------------------


class ProfileBuffer(Protocol):
    """A Profile Generic buffer as the server sees it: rows computed on demand.

    Entries are numbered 1..:meth:`entries_in_use`, oldest first. :meth:`entry_range` maps a
    range on one column (the restricting object, usually the clock) to the entries whose value
    lies in ``[low, high]``, or ``None`` when this buffer cannot restrict on that column.
    """

    def capture_objects(self) -> Sequence[CaptureObjectDefinition]: ...

    def entries_in_use(self) -> int: ...

    def rows(self, first: int, last: int) -> Iterable[Sequence[Data]]: ...

    def entry_range(self, column: int, low: Data, high: Data) -> tuple[int, int] | None: ...


def _columns_for(
    capture: Sequence[CaptureObjectDefinition], selected: Sequence[CaptureObjectDefinition]
) -> list[int] | None:
    if not selected:
        return list(range(len(capture)))
    out: list[int] = []
    for column in selected:
        for i, c in enumerate(capture):
            if (
                c.class_id == column.class_id
                and c.logical_name == column.logical_name
                and c.attribute_index == column.attribute_index
                and c.data_index == column.data_index
            ):
                out.append(i)
                break
        else:
            return None
    return out


def select_buffer(
    buffer: ProfileBuffer, selection: SelectiveAccessDescriptor | None
) -> Data | DataAccessResult:
    """The ``buffer`` attribute value for a (selective) GET: every row, a range
    (access-selector 1, with column selection) or an entry range (access-selector 2)."""
    capture = buffer.capture_objects()
    count = buffer.entries_in_use()
    if selection is None:
        return _table(buffer.rows(1, count), None) if count else Data.array([])
    try:
        typed = selection.typed()
    except RemoteProtocolError:
        return DataAccessResult.OTHER_REASON
    if isinstance(typed, RangeDescriptor):
        restricting = _columns_for(capture, (typed.restricting_object,))
        columns = _columns_for(capture, typed.selected_values)
        if restricting is None or columns is None:
            return DataAccessResult.OTHER_REASON
        found = buffer.entry_range(restricting[0], typed.from_value, typed.to_value)
        if found is None:
            return DataAccessResult.OTHER_REASON
        first, last = found
        if first > last or count == 0:
            return Data.array([])
        keep = None if not typed.selected_values else columns
        return _table(buffer.rows(max(first, 1), min(last, count)), keep)
    if isinstance(typed, EntryDescriptor):
        first = typed.from_entry
        last = count if typed.to_entry == 0 else min(typed.to_entry, count)
        width = len(capture)
        first_col = typed.from_selected_value
        last_col = width if typed.to_selected_value == 0 else typed.to_selected_value
        if first < 1 or first_col < 1 or last_col > width or first_col > last_col:
            return DataAccessResult.OTHER_REASON
        keep_cols = None if (first_col, last_col) == (1, width) else list(range(first_col - 1, last_col))
        if first > last:
            return Data.array([])
        return _table(buffer.rows(first, last), keep_cols)
    return DataAccessResult.OTHER_REASON


def _table(rows: Iterable[Sequence[Data]], columns: Sequence[int] | None) -> Data:
    if columns is None:
        return Data.array([Data.structure(*row) for row in rows])
    return Data.array([Data.structure(*(row[i] for i in columns)) for row in rows])


def comparable(value: Data, default_tz: _dt.tzinfo = _dt.UTC) -> object:
    """A value usable in range comparisons: date-times (as octet-string(12) or date-time) as
    aware datetimes, numbers as numbers, anything else as itself; ``None`` if not comparable."""
    raw = value.value
    if value.type == DlmsType.OCTET_STRING and isinstance(raw, bytes) and len(raw) == 12:
        try:
            return value.as_date_time().to_datetime(default_tz=default_tz)
        except (DlmsValueError, MetercomError):
            return None
    if value.type == DlmsType.DATE_TIME:
        try:
            return value.as_date_time().to_datetime(default_tz=default_tz)
        except (DlmsValueError, MetercomError):
            return None
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        return raw
    return None


@dataclass(slots=True)
class ListProfileBuffer:
    """A :class:`ProfileBuffer` over stored rows (event logs, billing history, tests)."""

    columns: Sequence[CaptureObjectDefinition]
    stored: Sequence[Sequence[Data]]
    default_tz: _dt.tzinfo = _dt.UTC

    def capture_objects(self) -> Sequence[CaptureObjectDefinition]:
        return self.columns

    def entries_in_use(self) -> int:
        return len(self.stored)

    def rows(self, first: int, last: int) -> Iterable[Sequence[Data]]:
        return self.stored[first - 1 : last]

    def entry_range(self, column: int, low: Data, high: Data) -> tuple[int, int] | None:
        lo = comparable(low, self.default_tz)
        hi = comparable(high, self.default_tz)
        if lo is None or hi is None:
            return None
        hits = []
        for i, row in enumerate(self.stored, start=1):
            v = comparable(row[column], self.default_tz)
            try:
                if v is not None and lo <= v <= hi:  # type: ignore[operator]
                    hits.append(i)
            except TypeError:
                return None
        return (hits[0], hits[-1]) if hits else (1, 0)
