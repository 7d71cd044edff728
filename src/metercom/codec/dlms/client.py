"""Sans-I/O DLMS/COSEM application-layer client connection (Role.CLIENT; IEC 62056-5-3, Green
Book DLMS UA 1000-2 clause 9: association, xDLMS services with logical-name referencing).

Rule: :class:`DlmsClientConnection` decides every APDU the client sends and interprets every
APDU it receives, and does nothing else: no I/O, no clock reads, no random numbers (the HLS
client challenge comes from the caller), no logging. APDUs go in and out as complete byte
strings; the session puts them on HDLC or the IP wrapper, which frame and segment them.
``next_event()`` raises only :class:`~metercom.errors.RemoteProtocolError` (the peer broke the
protocol); refusals by the meter, authentication failures and time-outs come out as a
:class:`RequestFailed` event carrying the exception of the error tree, for the session to raise.
Keys, passwords and challenges never appear in an event's ``repr`` or an error message.

Theory of operation. The caller sends one *request* at a time with ``send(request, now=...)``,
which returns the APDU to write. Then it feeds each APDU that arrives with
``receive_data(apdu, now=...)`` and drains ``next_event()`` until it returns ``NEED_DATA``:

* :class:`Transmit` -- an APDU the connection needs sent to go on (get-request-next of a block
  transfer, the next SET datablock or ACTION pblock, HLS pass 3). Write it, keep reading.
* a completion event -- :class:`AssociationEstablished`, :class:`GetCompleted`,
  :class:`SetCompleted`, :class:`ActionCompleted`, :class:`Released` -- or
  :class:`RequestFailed`. Either ends the request; the next one may be sent.
* :class:`NotificationReceived` (an unsolicited data-notification or event-notification) and
  :class:`ApduDiscarded` (a late answer to an abandoned request: its invoke-id is not the
  current one) may come at any time and change nothing.

Association (Green Book 9.2): ``send(Associate())`` gives the AARQ (:func:`build_aarq`). In a
ciphered context the InitiateRequest travels as glo-initiateRequest, protected by the
:class:`SecurityContext`, and the AARE's glo-initiateResponse is verified and deciphered with
the server system title the AARE names. :func:`evaluate_aare` turns a refusal into the exact
:class:`~metercom.errors.DeviceRejectedError` or :class:`~metercom.errors.AuthenticationError`
subclass. For HLS (mechanisms 5 HLS-GMAC and 6 HLS-SHA256) the accepted AARE carries the
server challenge StoC; pass 3 is an ACTION ``reply_to_HLS_authentication`` (Association LN,
class 15, method 1) on the current association 0.0.40.0.0.255 with f(StoC), and pass 4 is the
meter's f(CtoS) in the action result, which we verify before the association counts as
established. A meter that refuses f(StoC), or whose f(CtoS) does not verify, fails the
association with :class:`~metercom.errors.AuthenticationError`.

Services: GET normal, with-list and with-block (reassembled by
:class:`~metercom.codec.dlms.blocks.GetResponseReceiver`, the value kept as raw A-XDR so profile
buffers can go to :class:`~metercom.codec.dlms.axdr.ProfileDecoder`), SET normal and
with-datablock, ACTION normal and with-pblock (:class:`SetRequestSender`,
:class:`ActionRequestSender` cut against the negotiated server-max-receive-pdu-size minus the
ciphering overhead). A request that cannot fit raises :class:`LocalProtocolError` from ``send``.
Invoke-ids count 0..15 and wrap; every response must carry the current request's
invoke-id-and-priority. ExceptionResponse and ConfirmedServiceError answers become
:class:`~metercom.codec.dlms.results.ServiceRejectedError`; result codes stay values in the
completion events (with-list results may mix data and errors) and :meth:`GetCompleted.value`
and friends raise the :func:`~metercom.codec.dlms.results.raise_for_result` class.

Release: ``send(Release())`` gives an RLRQ (reason normal); any RLRE ends the association,
even one whose lengths contradict themselves (gurux-dlms 1.0.203 sends such RLREs: the
release is over whatever its body says).

Timers: ``send`` starts the response timer (``response_timeout_s``) when given ``now``;
``next_deadline()`` says when it runs out and ``handle_timeout(now)`` then ends the request with
:class:`RequestFailed` carrying :class:`~metercom.errors.TransportTimeout`. Its invoke-id is
abandoned: a late answer comes out as :class:`ApduDiscarded`, so a retried GET (new invoke-id)
is never confused with the old one.
"""

from __future__ import annotations

import enum
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final

from metercom.codec.base import NEED_DATA, NeedData, Role
from metercom.codec.dlms.acse import (
    AssociationRequest,
    AssociationResponse,
    AuthenticationMechanism,
    ClientAssociationSettings,
    NegotiatedAssociation,
    ReleaseRequest,
    ReleaseRequestReason,
    ReleaseResponse,
    build_aarq,
    evaluate_aare,
)
from metercom.codec.dlms.axdr import decode_data_exact, encode_data
from metercom.codec.dlms.blocks import (
    DEFAULT_MAX_TRANSFER_SIZE,
    ActionRequestSender,
    GetResponseReceiver,
    SetRequestSender,
)
from metercom.codec.dlms.initiate import (
    CipheredUserInformation,
    ConfirmedServiceError,
    InitiateResponse,
    decode_user_information,
)
from metercom.codec.dlms.results import ActionResult, DataAccessResult, raise_for_result
from metercom.codec.dlms.security import (
    HLS_GMAC_RESPONSE_LENGTH,
    Protection,
    SecurityContext,
    hls_sha256,
    is_ciphered_apdu,
    verify_hls_sha256,
)
from metercom.codec.dlms.xdlms import (
    DEFAULT_INVOKE_ID_AND_PRIORITY,
    ActionRequestNormal,
    ActionResponseNextPblock,
    ActionResponseNormal,
    ActionResponseWithPblock,
    CosemAttributeDescriptor,
    CosemAttributeDescriptorWithSelection,
    CosemMethodDescriptor,
    DataNotification,
    EntryDescriptor,
    EventNotificationRequest,
    ExceptionResponse,
    GetRequestNormal,
    GetRequestWithList,
    GetResponseNormal,
    GetResponseWithDatablock,
    GetResponseWithList,
    InvokeIdAndPriority,
    RangeDescriptor,
    SelectiveAccessDescriptor,
    SetRequestNormal,
    SetResponseDatablock,
    SetResponseLastDatablock,
    SetResponseNormal,
    decode_get_data_result_list,
    decode_xdlms_apdu,
    rejection_error,
)
from metercom.errors import (
    AuthenticationError,
    LocalProtocolError,
    MetercomError,
    RemoteProtocolError,
    TransportTimeout,
)
from metercom.model.dlms_data import Data, DlmsType
from metercom.model.obis import Obis

__all__ = [
    "CURRENT_ASSOCIATION",
    "Action",
    "ActionCompleted",
    "ApduDiscarded",
    "Associate",
    "AssociationEstablished",
    "ClientEvent",
    "ClientRequest",
    "ClientState",
    "DlmsClientConnection",
    "Get",
    "GetCompleted",
    "GetMany",
    "NotificationReceived",
    "Release",
    "Released",
    "RequestFailed",
    "Set",
    "SetCompleted",
    "Transmit",
    "ciphering_overhead",
]

_LAYER = "dlms-client"

#: The current association (Association LN, class 15), whose method 1 carries HLS pass 3/4.
CURRENT_ASSOCIATION: Final = Obis(0, 0, 40, 0, 0, 255)
_REPLY_TO_HLS = CosemMethodDescriptor(15, CURRENT_ASSOCIATION, 1)

# glo-/ded- framing: tag 1 + length (up to 3 for 65535) + SC 1 + IC 4 + GCM tag 12.
_SERVICE_CIPHERING_OVERHEAD: Final = 1 + 3 + 1 + 4 + 12
# general-glo/ded-ciphering adds the system title with its length byte.
_GENERAL_CIPHERING_OVERHEAD: Final = _SERVICE_CIPHERING_OVERHEAD + 1 + 8


def ciphering_overhead(protection: Protection | None) -> int:
    """Bytes a protection framing adds around one APDU (0 for none)."""
    if protection is None:
        return 0
    if protection in (Protection.GLOBAL, Protection.DEDICATED):
        return _SERVICE_CIPHERING_OVERHEAD
    return _GENERAL_CIPHERING_OVERHEAD


class ClientState(enum.Enum):
    IDLE = "idle"  # nothing sent yet, or released: send Associate
    ASSOCIATING = "associating"  # AARQ sent, waiting for the AARE
    AUTHENTICATING = "authenticating"  # HLS pass 3 sent, waiting for pass 4
    ASSOCIATED = "associated"  # services allowed
    RELEASING = "releasing"  # RLRQ sent


# --- requests (what the caller sends) ----------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Associate:
    """Open the association. ``client_challenge`` (CtoS, 8..64 random bytes) is needed for HLS."""

    client_challenge: bytes | None = None

    def __repr__(self) -> str:
        hidden = "None" if self.client_challenge is None else f"<{len(self.client_challenge)} bytes>"
        return f"Associate(client_challenge={hidden})"


@dataclass(frozen=True, slots=True)
class Get:
    """GET one attribute (get-request-normal), with optional selective access."""

    attribute: CosemAttributeDescriptor
    access_selection: SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor | None = None


@dataclass(frozen=True, slots=True)
class GetMany:
    """GET several attributes in one get-request-with-list (split them first to fit the PDU)."""

    attributes: Sequence[CosemAttributeDescriptor | CosemAttributeDescriptorWithSelection]


@dataclass(frozen=True, slots=True, repr=False)
class Set:
    """SET one attribute (normal, or in datablocks when it does not fit). Values not shown."""

    attribute: CosemAttributeDescriptor
    value: Data
    access_selection: SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor | None = None

    def __repr__(self) -> str:
        return f"Set({self.attribute.describe()})"


@dataclass(frozen=True, slots=True, repr=False)
class Action:
    """ACTION one method (normal, or in pblocks). Parameters not shown (they may be secrets)."""

    method: CosemMethodDescriptor
    parameters: Data | None = None

    def __repr__(self) -> str:
        return f"Action({self.method.describe()})"


@dataclass(frozen=True, slots=True)
class Release:
    """Release the association with an RLRQ."""

    reason: ReleaseRequestReason | None = ReleaseRequestReason.NORMAL


ClientRequest = Associate | Get | GetMany | Set | Action | Release


# --- events (what next_event returns) ----------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class Transmit:
    """Send this APDU to continue the current request."""

    apdu: bytes

    def __repr__(self) -> str:
        return f"Transmit(<{len(self.apdu)} bytes, tag 0x{self.apdu[0]:02x}>)"


@dataclass(frozen=True, slots=True)
class AssociationEstablished:
    """The association is open (HLS passes 3 and 4 done when the mechanism needs them)."""

    association: NegotiatedAssociation


@dataclass(frozen=True, slots=True, repr=False)
class GetCompleted:
    """The answer to a GET: ``results[i]`` is the raw A-XDR bytes of attribute i's value, or the
    Data-Access-Result that refused it. ``blocks`` counts the datablocks (0: one response)."""

    attributes: tuple[CosemAttributeDescriptor, ...]
    results: tuple[bytes | DataAccessResult, ...]
    blocks: int = 0

    def __repr__(self) -> str:
        parts = [
            r.spec_name if isinstance(r, DataAccessResult) else f"<{len(r)} bytes>" for r in self.results
        ]
        return f"GetCompleted({', '.join(parts)}, blocks={self.blocks})"

    def raw(self, index: int = 0) -> bytes:
        """The raw A-XDR value of attribute ``index``; raises its DlmsResultError if refused."""
        result = self.results[index]
        if isinstance(result, DataAccessResult):
            raise_for_result(result, self.attributes[index], service="GET")
            raise LocalProtocolError("success without data", layer=_LAYER)  # pragma: no cover
        return result

    def value(self, index: int = 0) -> Data:
        """The decoded value of attribute ``index``; raises its DlmsResultError if refused."""
        return decode_data_exact(self.raw(index))


@dataclass(frozen=True, slots=True)
class SetCompleted:
    """The answer to a SET."""

    attribute: CosemAttributeDescriptor
    result: DataAccessResult
    blocks: int = 0

    def raise_for_result(self) -> None:
        raise_for_result(self.result, self.attribute, service="SET")


@dataclass(frozen=True, slots=True, repr=False)
class ActionCompleted:
    """The answer to an ACTION: the Action-Result and the return parameters, if any."""

    method: CosemMethodDescriptor
    result: ActionResult
    return_parameters: Data | DataAccessResult | None = None

    def __repr__(self) -> str:
        return f"ActionCompleted({self.method.describe()}, {self.result.spec_name})"

    def raise_for_result(self) -> None:
        raise_for_result(self.result, self.method, service="ACTION")
        if isinstance(self.return_parameters, DataAccessResult):
            raise_for_result(self.return_parameters, self.method, service="ACTION")


@dataclass(frozen=True, slots=True)
class Released:
    """The association is released (``response`` is None when the RLRE could not be decoded)."""

    response: ReleaseResponse | None


@dataclass(frozen=True, slots=True)
class RequestFailed:
    """The current request ended with ``error`` (a refusal, an authentication failure, a time-out)."""

    error: MetercomError


@dataclass(frozen=True, slots=True, repr=False)
class NotificationReceived:
    """An unsolicited data-notification or event-notification-request."""

    apdu: DataNotification | EventNotificationRequest

    def __repr__(self) -> str:
        return f"NotificationReceived({type(self.apdu).__name__})"


@dataclass(frozen=True, slots=True, repr=False)
class ApduDiscarded:
    """An APDU that belongs to no current request (e.g. the late answer to a timed-out GET)."""

    apdu: bytes
    reason: str

    def __repr__(self) -> str:
        return f"ApduDiscarded(<{len(self.apdu)} bytes>, {self.reason!r})"


ClientEvent = (
    Transmit
    | AssociationEstablished
    | GetCompleted
    | SetCompleted
    | ActionCompleted
    | Released
    | RequestFailed
    | NotificationReceived
    | ApduDiscarded
)


def _selection(
    value: SelectiveAccessDescriptor | RangeDescriptor | EntryDescriptor | None,
) -> SelectiveAccessDescriptor | None:
    if value is None or isinstance(value, SelectiveAccessDescriptor):
        return value
    return value.to_selective_access()


# --- the connection ----------------------------------------------------------------------------


class DlmsClientConnection:
    """The client side of one DLMS association (see the module docstring).

    ``settings`` says what to propose (mechanism, secret, system title, ciphering, PDU size).
    ``security`` is required for a ciphered context and for HLS-GMAC; ``protection`` selects
    the framing of ciphered service APDUs (glo-, ded- or general-glo-ciphering).
    ``max_transfer_size`` bounds a reassembled block transfer.
    """

    role: Final = Role.CLIENT

    def __init__(
        self,
        settings: ClientAssociationSettings,
        *,
        security: SecurityContext | None = None,
        protection: Protection = Protection.GLOBAL,
        response_timeout_s: float | None = None,
        max_transfer_size: int = DEFAULT_MAX_TRANSFER_SIZE,
    ) -> None:
        mechanism = settings.mechanism
        if (settings.ciphered or mechanism is AuthenticationMechanism.HIGH_GMAC) and security is None:
            raise LocalProtocolError(
                "a ciphered context and HLS-GMAC need a SecurityContext (keys and system title)",
                layer=_LAYER,
            )
        if mechanism.is_high_level and mechanism not in (
            AuthenticationMechanism.HIGH_GMAC,
            AuthenticationMechanism.HIGH_SHA256,
        ):
            raise LocalProtocolError(
                f"HLS mechanism {mechanism.name} is not implemented (use HIGH_GMAC or HIGH_SHA256)",
                layer=_LAYER,
            )
        if mechanism is AuthenticationMechanism.HIGH_SHA256 and (
            not settings.password or settings.system_title is None
        ):
            raise LocalProtocolError(
                "HLS-SHA256 needs the HLS secret (password) and the client system title", layer=_LAYER
            )
        dedicated = protection in (Protection.DEDICATED, Protection.GENERAL_DEDICATED)
        if dedicated and settings.dedicated_key is None:
            raise LocalProtocolError(
                "dedicated ciphering needs a dedicated key in the settings", layer=_LAYER
            )
        if response_timeout_s is not None and response_timeout_s <= 0:
            raise LocalProtocolError("response_timeout_s must be positive", layer=_LAYER)
        self.settings = settings
        self.security = security
        self.protection = protection
        self.response_timeout_s = response_timeout_s
        self.max_transfer_size = max_transfer_size
        self.state = ClientState.IDLE
        #: What the AARE established (None before).
        self.association: NegotiatedAssociation | None = None
        # Each request takes the next invoke-id, so the first one goes out as 0xC1.
        self._iid = InvokeIdAndPriority.from_byte(DEFAULT_INVOKE_ID_AND_PRIORITY.to_byte() & 0xF0)
        self._events: deque[ClientEvent] = deque()
        self._pending: _Pending | None = None
        self._deadline: float | None = None
        self._aarq: AssociationRequest | None = None
        if security is not None and settings.dedicated_key is not None:
            security.set_dedicated_key(settings.dedicated_key)

    # --- properties ------------------------------------------------------------------------

    @property
    def ciphered(self) -> bool:
        """True once a ciphered context is agreed (or proposed, before the AARE)."""
        if self.association is not None:
            return self.association.ciphered
        return self.settings.ciphered

    @property
    def overhead(self) -> int:
        """Bytes the protection adds around each service APDU we send."""
        return ciphering_overhead(self.protection if self.ciphered else None)

    @property
    def max_pdu_size(self) -> int:
        """The server's max receive PDU size (what one APDU we send may be, ciphering included)."""
        if self.association is None:
            return 0xFFFF
        size = self.association.server_max_receive_pdu_size
        return size or 0xFFFF  # 0 means "no limit" in the InitiateResponse

    @property
    def busy(self) -> bool:
        """True while a request waits for its answer."""
        return self._pending is not None

    @property
    def invoke_id_and_priority(self) -> InvokeIdAndPriority:
        """The invoke-id-and-priority of the last request sent."""
        return self._iid

    # --- verbs -----------------------------------------------------------------------------

    def send(self, request: ClientRequest, *, now: float | None = None) -> bytes:
        """Start ``request``; return the APDU to write. Raises :class:`LocalProtocolError` when
        the request is not allowed now or cannot fit the negotiated PDU size."""
        if self._pending is not None:
            raise LocalProtocolError(
                f"a {self._pending.what} is still waiting for its answer; one request at a time",
                layer=_LAYER,
            )
        if isinstance(request, Associate):
            apdu = self._send_associate(request)
        elif isinstance(request, Release):
            apdu = self._send_release(request)
        else:
            if self.state is not ClientState.ASSOCIATED:
                raise LocalProtocolError(
                    f"cannot send {type(request).__name__}: the association is {self.state.value}",
                    layer=_LAYER,
                )
            self._iid = self._iid.next()
            if isinstance(request, Get):
                apdu = self._send_get(request)
            elif isinstance(request, GetMany):
                apdu = self._send_get_many(request)
            elif isinstance(request, Set):
                apdu = self._send_set(request)
            elif isinstance(request, Action):
                apdu = self._send_action(request)
            else:
                raise LocalProtocolError(f"not a DLMS client request: {request!r}", layer=_LAYER)
        if now is not None and self.response_timeout_s is not None:
            self._deadline = now + self.response_timeout_s
        return apdu

    def receive_data(self, data: bytes | bytearray | memoryview, *, now: float | None = None) -> None:
        """Take one complete APDU as delivered by HDLC or the wrapper; events follow."""
        apdu = bytes(data)
        if not apdu:
            return
        try:
            self._on_apdu(apdu, now)
        except RemoteProtocolError:
            self._pending = None
            self._deadline = None
            if self.state in (ClientState.ASSOCIATING, ClientState.AUTHENTICATING):
                self.state = ClientState.IDLE
            raise

    def next_event(self) -> ClientEvent | NeedData:
        """The next event, or NEED_DATA."""
        return self._events.popleft() if self._events else NEED_DATA

    def next_deadline(self) -> float | None:
        """When the current request's response timer runs out (None: no timer)."""
        return self._deadline

    def handle_timeout(self, now: float) -> None:
        """End the current request with a TransportTimeout if its timer has run out."""
        if self._deadline is None or now < self._deadline or self._pending is None:
            return
        what = self._pending.what
        self._fail(
            TransportTimeout(
                f"no answer to the {what} within {self.response_timeout_s:g} s "
                f"(invoke-id {self._iid.invoke_id}); check the client/server addresses and the link"
            )
        )
        if self.state in (ClientState.ASSOCIATING, ClientState.AUTHENTICATING, ClientState.RELEASING):
            self.state = ClientState.IDLE

    def abandon(self) -> None:
        """Forget the current request (the session gave up on it); a late answer is discarded."""
        self._pending = None
        self._deadline = None
        if self.state in (ClientState.ASSOCIATING, ClientState.AUTHENTICATING, ClientState.RELEASING):
            self.state = ClientState.IDLE

    # --- sending ---------------------------------------------------------------------------

    def _protect(self, apdu: bytes) -> bytes:
        if not self.ciphered:
            return apdu
        assert self.security is not None  # noqa: S101 - checked in __init__
        return self.security.encode_apdu(apdu, protection=self.protection)

    def _check_fits(self, apdu: bytes, what: str) -> None:
        limit = self.max_pdu_size - self.overhead
        if len(apdu) > limit:
            raise LocalProtocolError(
                f"{what} needs a {len(apdu)}-byte APDU but the meter accepts {self.max_pdu_size} bytes"
                + (f" ({self.overhead} of them for ciphering)" if self.overhead else "")
                + "; split the request",
                layer=_LAYER,
            )

    def _send_associate(self, request: Associate) -> bytes:
        if self.state is not ClientState.IDLE:
            raise LocalProtocolError(f"cannot associate: the association is {self.state.value}", layer=_LAYER)
        challenge = request.client_challenge if self.settings.mechanism.is_high_level else None
        aarq = build_aarq(self.settings, client_challenge=challenge)
        if self.settings.ciphered:
            assert self.security is not None  # noqa: S101 - checked in __init__
            initiate = aarq.user_information
            assert initiate is not None  # noqa: S101 - build_aarq always sets it
            ciphered = self.security.encode_apdu(initiate.to_bytes(), protection=Protection.GLOBAL)
            aarq = replace(aarq, user_information=CipheredUserInformation(ciphered))
        self._aarq = aarq
        self.association = None
        self.state = ClientState.ASSOCIATING
        self._pending = _Pending("association request (AARQ)")
        return aarq.to_bytes()

    def _send_release(self, request: Release) -> bytes:
        if self.state not in (ClientState.ASSOCIATED, ClientState.AUTHENTICATING):
            raise LocalProtocolError(f"cannot release: the association is {self.state.value}", layer=_LAYER)
        self.state = ClientState.RELEASING
        self._pending = _Pending("release request (RLRQ)")
        return ReleaseRequest(request.reason).to_bytes()

    def _send_get(self, request: Get) -> bytes:
        apdu = GetRequestNormal(
            request.attribute, _selection(request.access_selection), invoke_id_and_priority=self._iid
        ).to_bytes()
        self._check_fits(apdu, f"GET {request.attribute.describe()}")
        self._pending = _Pending(
            f"GET {request.attribute.describe()}",
            attributes=(request.attribute,),
            receiver=self._receiver(request.attribute),
        )
        return self._protect(apdu)

    def _receiver(self, context: CosemAttributeDescriptor | str) -> GetResponseReceiver:
        return GetResponseReceiver(
            invoke_id_and_priority=self._iid, max_size=self.max_transfer_size, context=context
        )

    def _send_get_many(self, request: GetMany) -> bytes:
        with_selection = CosemAttributeDescriptorWithSelection
        items = [a if isinstance(a, with_selection) else with_selection(a) for a in request.attributes]
        if not items:
            raise LocalProtocolError("GetMany needs at least one attribute", layer=_LAYER)
        apdu = GetRequestWithList(items, invoke_id_and_priority=self._iid).to_bytes()
        what = f"GET with list of {len(items)} attributes"
        self._check_fits(apdu, what)
        self._pending = _Pending(
            what,
            attributes=tuple(i.attribute for i in items),
            receiver=self._receiver(what),
            with_list=True,
        )
        return self._protect(apdu)

    def _send_set(self, request: Set) -> bytes:
        normal = SetRequestNormal(
            request.attribute,
            request.value,
            _selection(request.access_selection),
            invoke_id_and_priority=self._iid,
        )
        sender = SetRequestSender(normal, max_pdu_size=self.max_pdu_size, overhead=self.overhead)
        self._pending = _Pending(f"SET {request.attribute.describe()}", set_sender=sender)
        return self._protect(sender.first_request().to_bytes())

    def _send_action(self, request: Action) -> bytes:
        normal = ActionRequestNormal(request.method, request.parameters, invoke_id_and_priority=self._iid)
        sender = ActionRequestSender(
            normal,
            max_pdu_size=self.max_pdu_size,
            overhead=self.overhead,
            max_response_size=self.max_transfer_size,
        )
        self._pending = _Pending(f"ACTION {request.method.describe()}", action_sender=sender)
        return self._protect(sender.first_request().to_bytes())

    # --- receiving -------------------------------------------------------------------------

    def _fail(self, error: MetercomError) -> None:
        self._pending = None
        self._deadline = None
        self._events.append(RequestFailed(error))

    def _complete(self, event: ClientEvent) -> None:
        self._pending = None
        self._deadline = None
        self._events.append(event)

    def _continue(self, apdu: bytes, now: float | None) -> None:
        if now is not None and self.response_timeout_s is not None:
            self._deadline = now + self.response_timeout_s
        self._events.append(Transmit(self._protect(apdu)))

    def _on_apdu(self, apdu: bytes, now: float | None) -> None:
        tag = apdu[0]
        if tag == 0x61:
            self._on_aare(apdu)
            return
        if tag == 0x63:
            self._on_rlre(apdu)
            return
        if is_ciphered_apdu(apdu):
            if self.security is None:
                self._events.append(ApduDiscarded(apdu, "a ciphered APDU, but no security context"))
                return
            try:
                apdu = self.security.decode_apdu(apdu)
            except AuthenticationError as exc:
                if self._pending is not None:
                    self._fail(exc)
                else:
                    self._events.append(ApduDiscarded(apdu, f"not authentic: {exc}"))
                return
        elif self.ciphered and apdu[0] not in (0xD8, 0x0E, 0x0F) and self._pending is not None:
            # A ciphered association accepts only ciphered answers (a plain refusal is harmless).
            self._fail(
                AuthenticationError(
                    f"the meter answered in plain text (tag 0x{apdu[0]:02x}) in a ciphered association"
                )
            )
            return
        self._on_plain(apdu, now)

    def _on_plain(self, apdu: bytes, now: float | None) -> None:
        tag = apdu[0]
        pending = self._pending
        if tag == 0xC4 and len(apdu) > 1 and apdu[1] == 0x01:
            iid, raw = GetResponseNormal.raw_result_from_bytes(apdu)
            if not self._ours(iid, apdu, pending) or pending is None:
                return
            if not pending.attributes or pending.with_list:
                raise RemoteProtocolError(f"get-response-normal answers a {pending.what}", layer=_LAYER)
            self._complete(GetCompleted(pending.attributes, (raw,)))
            return
        decoded = decode_xdlms_apdu(apdu)
        if isinstance(decoded, DataNotification | EventNotificationRequest):
            self._events.append(NotificationReceived(decoded))
            return
        if isinstance(decoded, ExceptionResponse | ConfirmedServiceError):
            if pending is None:
                reason = f"a refusal with no request waiting: {decoded.describe()}"
                self._events.append(ApduDiscarded(apdu, reason))
                return
            if self.state is ClientState.AUTHENTICATING:
                self.state = ClientState.IDLE
            self._fail(rejection_error(decoded, pending.what))
            return
        if not isinstance(decoded, _RESPONSE_TYPES):
            reason = f"{type(decoded).__name__} is not an answer to a request"
            self._events.append(ApduDiscarded(apdu, reason))
            return
        if not self._ours(decoded.invoke_id_and_priority, apdu, pending) or pending is None:
            return
        if isinstance(decoded, GetResponseWithDatablock | GetResponseWithList):
            self._on_get(pending, decoded, now)
        elif isinstance(decoded, SetResponseNormal | SetResponseDatablock | SetResponseLastDatablock):
            self._on_set(pending, decoded, now)
        else:
            self._on_action(pending, decoded, now)

    def _ours(self, iid: InvokeIdAndPriority, apdu: bytes, pending: _Pending | None) -> bool:
        if pending is None or iid.invoke_id != self._iid.invoke_id:
            waiting = f"the {pending.what} has {self._iid.invoke_id}" if pending else "no request is waiting"
            self._events.append(ApduDiscarded(apdu, f"answer with invoke-id {iid.invoke_id} but {waiting}"))
            return False
        return True

    def _on_get(
        self, pending: _Pending, response: GetResponseWithDatablock | GetResponseWithList, now: float | None
    ) -> None:
        if pending.receiver is None:
            raise RemoteProtocolError(f"a GET response answers a {pending.what}", layer=_LAYER)
        if isinstance(response, GetResponseWithList):
            if not pending.with_list or len(response.results) != len(pending.attributes):
                raise RemoteProtocolError(
                    f"get-response-with-list with {len(response.results)} results answers a {pending.what}",
                    layer=_LAYER,
                )
            self._complete(GetCompleted(pending.attributes, _raw_results(response.results)))
            return
        receiver = pending.receiver
        following = receiver.receive(response)
        if following is not None:
            self._continue(following.to_bytes(), now)
            return
        blocks = receiver.block_count
        if receiver.result != DataAccessResult.SUCCESS:
            if pending.with_list:
                self._fail(_result_error(receiver.result, pending.what, "GET"))
            else:
                self._complete(GetCompleted(pending.attributes, (receiver.result,), blocks))
            return
        raw = receiver.raw_data()
        if pending.with_list:
            results = decode_get_data_result_list(raw)
            if len(results) != len(pending.attributes):
                raise RemoteProtocolError(
                    f"{len(results)} results in the datablocks answer a {pending.what}", layer=_LAYER
                )
            self._complete(GetCompleted(pending.attributes, _raw_results(results), blocks))
        else:
            self._complete(GetCompleted(pending.attributes, (raw,), blocks))

    def _on_set(
        self,
        pending: _Pending,
        response: SetResponseNormal | SetResponseDatablock | SetResponseLastDatablock,
        now: float | None,
    ) -> None:
        sender = pending.set_sender
        if sender is None:
            raise RemoteProtocolError(f"a SET response answers a {pending.what}", layer=_LAYER)
        following = sender.receive(response)
        if following is not None:
            self._continue(following.to_bytes(), now)
            return
        assert sender.result is not None  # noqa: S101 - set by receive() when done
        self._complete(SetCompleted(sender.attribute, sender.result, sender.block_count))

    def _on_action(
        self,
        pending: _Pending,
        response: ActionResponseNormal | ActionResponseNextPblock | ActionResponseWithPblock,
        now: float | None,
    ) -> None:
        sender = pending.action_sender
        if sender is None:
            raise RemoteProtocolError(f"an ACTION response answers a {pending.what}", layer=_LAYER)
        following = sender.receive(response)
        if following is not None:
            self._continue(following.to_bytes(), now)
            return
        assert sender.result is not None  # noqa: S101 - set by receive() when done
        if pending.hls:
            self._on_hls_pass4(sender.result, sender.return_parameters)
            return
        self._complete(ActionCompleted(sender.method, sender.result, sender.return_parameters))

    # --- association -----------------------------------------------------------------------

    def _on_aare(self, apdu: bytes) -> None:
        if self.state is not ClientState.ASSOCIATING or self._aarq is None:
            self._events.append(ApduDiscarded(apdu, f"an AARE while the association is {self.state.value}"))
            return
        aare = AssociationResponse.from_bytes(apdu)
        info = aare.user_information
        initiate: InitiateResponse | ConfirmedServiceError | None = None
        if isinstance(info, CipheredUserInformation):
            security = self.security
            if security is None:
                raise RemoteProtocolError("the AARE is ciphered but we proposed no ciphering", layer=_LAYER)
            if security.peer_system_title is None and aare.responding_ap_title:
                security.peer_system_title = aare.responding_ap_title
            try:
                plain = decode_user_information(security.decode_apdu(info.apdu))
            except AuthenticationError as exc:
                self.state = ClientState.IDLE
                self._fail(exc)
                return
            if not isinstance(plain, InitiateResponse | ConfirmedServiceError):
                raise RemoteProtocolError(
                    f"the AARE's ciphered user-information holds a {type(plain).__name__}", layer=_LAYER
                )
            initiate = plain
        try:
            negotiated = evaluate_aare(aare, self._aarq, initiate_response=initiate)
        except MetercomError as exc:
            if isinstance(exc, RemoteProtocolError):
                raise
            self.state = ClientState.IDLE
            self._fail(exc)
            return
        self.association = negotiated
        security = self.security
        if security is not None and negotiated.server_system_title and security.peer_system_title is None:
            security.peer_system_title = negotiated.server_system_title
        if not negotiated.authentication_pending:
            if negotiated.mechanism.is_high_level:
                raise RemoteProtocolError(
                    "the AARE accepts an HLS association without asking for authentication "
                    "(diagnostic authentication-required expected)",
                    layer=_LAYER,
                )
            self.state = ClientState.ASSOCIATED
            self._complete(AssociationEstablished(negotiated))
            return
        self._start_hls(negotiated)

    def _start_hls(self, negotiated: NegotiatedAssociation) -> None:
        stoc = negotiated.server_challenge
        assert stoc is not None  # noqa: S101 - evaluate_aare checks it
        mechanism = negotiated.mechanism
        if mechanism is AuthenticationMechanism.HIGH_GMAC:
            assert self.security is not None  # noqa: S101 - checked in __init__
            if self.security.peer_system_title is None:
                raise RemoteProtocolError(
                    "HLS-GMAC: the AARE names no server system title (responding-AP-title)", layer=_LAYER
                )
            answer = self.security.hls_gmac_response(stoc)
        else:
            server_title = negotiated.server_system_title
            if server_title is None:
                raise RemoteProtocolError(
                    "HLS-SHA256: the AARE names no server system title (responding-AP-title)", layer=_LAYER
                )
            answer = hls_sha256(
                self._secret(),
                own_system_title=self._own_title(),
                peer_system_title=server_title,
                received_challenge=stoc,
                sent_challenge=negotiated.client_challenge or b"",
            )
        self.state = ClientState.AUTHENTICATING
        self._iid = self._iid.next()
        normal = ActionRequestNormal(
            _REPLY_TO_HLS, Data.octet_string(answer), invoke_id_and_priority=self._iid
        )
        sender = ActionRequestSender(normal, max_pdu_size=self.max_pdu_size, overhead=self.overhead)
        self._pending = _Pending("HLS reply_to_HLS_authentication (pass 3)", action_sender=sender, hls=True)
        self._events.append(Transmit(self._protect(sender.first_request().to_bytes())))

    def _on_hls_pass4(self, result: ActionResult, returned: Data | DataAccessResult | None) -> None:
        negotiated = self.association
        assert negotiated is not None  # noqa: S101 - set before pass 3
        name = "HLS-GMAC" if negotiated.mechanism is AuthenticationMechanism.HIGH_GMAC else "HLS-SHA256"
        if result != ActionResult.SUCCESS:
            self.state = ClientState.IDLE
            self._fail(
                AuthenticationError(
                    f"{name}: the meter refused our answer to its challenge (pass 3, action result "
                    f"{result.spec_name}); check the keys or HLS secret configured for this client address"
                )
            )
            return
        if not isinstance(returned, Data) or returned.type != DlmsType.OCTET_STRING:
            self.state = ClientState.IDLE
            self._fail(
                AuthenticationError(
                    f"{name}: the meter accepted pass 3 but returned no f(CtoS) octet-string to verify "
                    "(pass 4), so it has not proven it holds the keys"
                )
            )
            return
        response = returned.as_bytes()
        ctos = negotiated.client_challenge or b""
        try:
            if negotiated.mechanism is AuthenticationMechanism.HIGH_GMAC:
                assert self.security is not None  # noqa: S101
                if len(response) != HLS_GMAC_RESPONSE_LENGTH:
                    raise AuthenticationError(
                        f"HLS-GMAC: f(CtoS) must be {HLS_GMAC_RESPONSE_LENGTH} bytes, got {len(response)}"
                    )
                self.security.verify_hls_gmac_response(response, ctos)
            else:
                verify_hls_sha256(
                    response,
                    self._secret(),
                    own_system_title=self._own_title(),
                    peer_system_title=negotiated.server_system_title or b"",
                    sent_challenge=ctos,
                    received_challenge=negotiated.server_challenge or b"",
                )
        except (AuthenticationError, RemoteProtocolError) as exc:
            self.state = ClientState.IDLE
            self._fail(exc if isinstance(exc, AuthenticationError) else AuthenticationError(f"{name}: {exc}"))
            return
        self.state = ClientState.ASSOCIATED
        self.association = replace(negotiated, authentication_pending=False)
        self._complete(AssociationEstablished(self.association))

    def _secret(self) -> bytes:
        if not self.settings.password:  # pragma: no cover - checked in __init__
            raise LocalProtocolError("no HLS secret configured", layer=_LAYER)
        return self.settings.password

    def _own_title(self) -> bytes:
        if self.settings.system_title is None:  # pragma: no cover - checked in __init__
            raise LocalProtocolError("no client system title configured", layer=_LAYER)
        return self.settings.system_title

    def _on_rlre(self, apdu: bytes) -> None:
        if self.state is not ClientState.RELEASING:
            self._events.append(ApduDiscarded(apdu, f"an RLRE while the association is {self.state.value}"))
            return
        try:
            response: ReleaseResponse | None = ReleaseResponse.from_bytes(apdu)
        except RemoteProtocolError:
            response = None  # the release is over whatever a malformed RLRE says
        self.state = ClientState.IDLE
        self.association = None
        self._complete(Released(response))


@dataclass(slots=True)
class _Pending:
    what: str
    attributes: tuple[CosemAttributeDescriptor, ...] = ()
    receiver: GetResponseReceiver | None = None
    with_list: bool = False
    set_sender: SetRequestSender | None = None
    action_sender: ActionRequestSender | None = None
    hls: bool = False


_RESPONSE_TYPES: Final = (
    GetResponseWithDatablock,
    GetResponseWithList,
    SetResponseNormal,
    SetResponseDatablock,
    SetResponseLastDatablock,
    ActionResponseNormal,
    ActionResponseNextPblock,
    ActionResponseWithPblock,
)


def _raw_results(results: Sequence[Data | DataAccessResult]) -> tuple[bytes | DataAccessResult, ...]:
    return tuple(r if isinstance(r, DataAccessResult) else encode_data(r) for r in results)


def _result_error(result: DataAccessResult, what: str, service: str) -> MetercomError:
    try:
        raise_for_result(result, what, service=service)
    except MetercomError as exc:
        return exc
    return RemoteProtocolError(f"{what}: transfer ended without data", layer=_LAYER)  # pragma: no cover
