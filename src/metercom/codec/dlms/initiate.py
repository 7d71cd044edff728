"""xDLMS initiate service: InitiateRequest, InitiateResponse, ConfirmedServiceError (IEC 62056-5-3).

Rule: these are the xDLMS APDUs carried, A-XDR encoded, inside the user-information field of
the ACSE association APDUs (AARQ, AARE, RLRQ, RLRE; see :mod:`metercom.codec.dlms.acse`).
Decoding is bounded and only :class:`~metercom.errors.RemoteProtocolError` escapes from any
input; encoding an illegal value raises :class:`~metercom.errors.LocalProtocolError`.

Theory of operation. The client proposes an xDLMS context in the InitiateRequest (tag 0x01):

* dedicated-key ``OCTET STRING OPTIONAL`` (A-XDR presence byte, length, key),
* response-allowed ``BOOLEAN DEFAULT TRUE`` (A-XDR: ``00`` = default, else ``01`` + value),
* proposed-quality-of-service ``[0] IMPLICIT Integer8 OPTIONAL``,
* proposed-dlms-version-number ``Unsigned8`` (6 for every current implementation),
* proposed-conformance (the BER-encoded [APPLICATION 31] block, see
  :mod:`metercom.codec.dlms.conformance`),
* client-max-receive-pdu-size ``Unsigned16``.

The server answers with an InitiateResponse (tag 0x08: negotiated-quality-of-service,
negotiated-dlms-version-number, negotiated-conformance, server-max-receive-pdu-size, vaa-name)
or refuses with a ConfirmedServiceError (tag 0x0E) whose choice is initiateError and whose
ServiceError is usually ``initiate`` (dlms-version-too-low, incompatible-conformance,
pdu-size-too-short, refused-by-the-VDE-handler).

When the association is ciphered the user-information holds a glo-initiateRequest (0x21),
glo-initiateResponse (0x28) or another ciphered APDU instead. Deciphering is the security
module's job (this module imports no cryptography), so such content is kept as
:class:`CipheredUserInformation`: the complete ciphered APDU, tag included, ready to be
unprotected; the plaintext is then decoded with :func:`decode_user_information`.

The dedicated key is a secret: :class:`InitiateRequest` never shows it in ``repr``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import ClassVar, Final

from metercom.codec.dlms.axdr import decode_length, encode_length
from metercom.codec.dlms.conformance import (
    CONFORMANCE_TAG,
    Conformance,
    conformance_from_wire,
    decode_conformance,
)
from metercom.errors import LocalProtocolError, RemoteProtocolError, hexdump

__all__ = [
    "CIPHERED_REQUEST_TAGS",
    "CIPHERED_RESPONSE_TAGS",
    "DLMS_VERSION",
    "VAA_NAME_LN",
    "VAA_NAME_SN",
    "AccessError",
    "ApplicationReferenceError",
    "CipheredUserInformation",
    "CipheredUserInformationTag",
    "ConfirmedServiceError",
    "ConfirmedServiceErrorChoice",
    "DefinitionError",
    "HardwareResourceError",
    "InitiateError",
    "InitiateRequest",
    "InitiateResponse",
    "LoadDataSetError",
    "OtherError",
    "ServiceError",
    "ServiceErrorChoice",
    "TaskError",
    "UserInformation",
    "VdeStateError",
    "XdlmsApduTag",
    "decode_user_information",
    "read_length",
]

_LAYER = "xdlms"
_LN_DEFAULT: Final = Conformance.ln_default()

#: DLMS version number proposed and negotiated by current implementations.
DLMS_VERSION: Final = 6
#: vaa-name of the InitiateResponse with logical name (LN) referencing.
VAA_NAME_LN: Final = 0x0007
#: vaa-name of the InitiateResponse with short name (SN) referencing.
VAA_NAME_SN: Final = 0xFA00


class XdlmsApduTag(enum.IntEnum):
    """A-XDR tags of the plaintext xDLMS APDUs that may travel in ACSE user-information."""

    INITIATE_REQUEST = 0x01
    INITIATE_RESPONSE = 0x08
    CONFIRMED_SERVICE_ERROR = 0x0E


class CipheredUserInformationTag(enum.IntEnum):
    """Tags of ciphered xDLMS APDUs that may replace an initiate APDU in user-information."""

    GLO_INITIATE_REQUEST = 0x21  # glo-initiateRequest [33]
    GLO_INITIATE_RESPONSE = 0x28  # glo-initiateResponse [40]
    GLO_CONFIRMED_SERVICE_ERROR = 0x2E  # glo-confirmedServiceError [46]
    DED_INITIATE_REQUEST = 0x41  # ded-initiateRequest [65]
    DED_INITIATE_RESPONSE = 0x48  # ded-initiateResponse [72]
    DED_CONFIRMED_SERVICE_ERROR = 0x4E  # ded-confirmedServiceError [78]
    GENERAL_GLO_CIPHERING = 0xDB  # general-glo-ciphering [219]
    GENERAL_DED_CIPHERING = 0xDC  # general-ded-ciphering [220]
    GENERAL_CIPHERING = 0xDD  # general-ciphering [221]


_GENERAL = frozenset(
    {
        CipheredUserInformationTag.GENERAL_GLO_CIPHERING,
        CipheredUserInformationTag.GENERAL_DED_CIPHERING,
        CipheredUserInformationTag.GENERAL_CIPHERING,
    }
)
#: Ciphered tags allowed where an InitiateRequest is expected (AARQ, RLRQ).
CIPHERED_REQUEST_TAGS: Final = frozenset(
    {CipheredUserInformationTag.GLO_INITIATE_REQUEST, CipheredUserInformationTag.DED_INITIATE_REQUEST}
    | _GENERAL
)
#: Ciphered tags allowed where an InitiateResponse or its error is expected (AARE, RLRE).
CIPHERED_RESPONSE_TAGS: Final = frozenset(
    {
        CipheredUserInformationTag.GLO_INITIATE_RESPONSE,
        CipheredUserInformationTag.GLO_CONFIRMED_SERVICE_ERROR,
        CipheredUserInformationTag.DED_INITIATE_RESPONSE,
        CipheredUserInformationTag.DED_CONFIRMED_SERVICE_ERROR,
    }
    | _GENERAL
)
_CIPHERED_TAG_BY_VALUE: Final = {int(tag): tag for tag in CipheredUserInformationTag}


def _truncated(what: str, need: int, data: bytes, offset: int) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"{what}: {need} more byte(s) needed at offset {offset}, only {max(len(data) - offset, 0)} left",
        layer=_LAYER,
    )


def read_length(data: bytes, pos: int, end: int, what: str, layer: str = _LAYER) -> tuple[int, int]:
    """Read a BER/A-XDR length at ``pos`` that must fit before ``end``; return ``(length, next pos)``.

    Checks everything before calling :func:`~metercom.codec.dlms.axdr.decode_length`, so its own
    error messages (which dump the surrounding bytes) never fire: the bytes around a length in
    an association APDU may be a password or a key, and error messages must not show them.
    """
    if pos >= end:
        raise RemoteProtocolError(f"{what}: length expected at offset {pos}, input ended", layer=layer)
    first = data[pos]
    if first < 0x80:
        length = first
        pos += 1
    else:
        count = first & 0x7F
        if count == 0:
            raise RemoteProtocolError(
                f"{what}: indefinite length (0x80) at offset {pos}; DLMS uses definite lengths only",
                layer=layer,
            )
        if count > 4:
            raise RemoteProtocolError(
                f"{what}: length form 0x{first:02x} at offset {pos} announces {count} length bytes "
                "(1..4 allowed)",
                layer=layer,
            )
        if pos + 1 + count > end:
            raise RemoteProtocolError(
                f"{what}: {count} length bytes announced at offset {pos}, only {end - pos - 1} left",
                layer=layer,
            )
        length, pos = decode_length(data, pos)
    if pos + length > end:
        raise RemoteProtocolError(
            f"{what}: {length} bytes announced at offset {pos}, only {end - pos} left (truncated?)",
            layer=layer,
        )
    return length, pos


def _masked(value: bytes | None) -> str:
    return "None" if value is None else f"<{len(value)} bytes hidden>"


@dataclass(frozen=True, slots=True, repr=False)
class InitiateRequest:
    """xDLMS InitiateRequest (tag 0x01), the proposed xDLMS context of an AARQ.

    ``dedicated_key`` is secret and never shown by ``repr``.
    """

    proposed_conformance: Conformance = _LN_DEFAULT
    client_max_receive_pdu_size: int = 0xFFFF
    proposed_dlms_version_number: int = DLMS_VERSION
    proposed_quality_of_service: int | None = None
    response_allowed: bool = True
    dedicated_key: bytes | None = None

    TAG: ClassVar[XdlmsApduTag] = XdlmsApduTag.INITIATE_REQUEST

    def __repr__(self) -> str:
        return (
            f"InitiateRequest(proposed_conformance=0x{int(self.proposed_conformance):06x}, "
            f"client_max_receive_pdu_size={self.client_max_receive_pdu_size}, "
            f"proposed_dlms_version_number={self.proposed_dlms_version_number}, "
            f"proposed_quality_of_service={self.proposed_quality_of_service}, "
            f"response_allowed={self.response_allowed}, dedicated_key={_masked(self.dedicated_key)})"
        )

    def to_bytes(self) -> bytes:
        """Encode as A-XDR, tag included."""
        key = self.dedicated_key
        head = b"\x01\x00" if key is None else b"\x01\x01" + encode_length(len(key)) + bytes(key)
        if self.response_allowed:
            head += b"\x00"
        else:
            head += b"\x01\x00"
        qos = self.proposed_quality_of_service
        if qos is None:
            head += b"\x00"
        else:
            if not -128 <= qos <= 127:
                raise LocalProtocolError(
                    f"proposed-quality-of-service {qos} is not an Integer8", layer=_LAYER
                )
            head += b"\x01" + (qos & 0xFF).to_bytes(1, "big")
        version = self.proposed_dlms_version_number
        conformance = int(self.proposed_conformance)
        size = self.client_max_receive_pdu_size
        if not 0 <= version <= 0xFF:
            raise LocalProtocolError(f"DLMS version {version} is not an Unsigned8", layer=_LAYER)
        if not 0 <= conformance <= 0xFFFFFF:
            raise LocalProtocolError(f"conformance 0x{conformance:x} does not fit 24 bits", layer=_LAYER)
        if not 0 <= size <= 0xFFFF:
            raise LocalProtocolError(f"client-max-receive-pdu-size {size} is not an Unsigned16", layer=_LAYER)
        return (
            head
            + bytes((version,))
            + CONFORMANCE_TAG
            + conformance.to_bytes(3, "big")
            + size.to_bytes(2, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> InitiateRequest:
        """Decode a complete InitiateRequest; trailing bytes are an error."""
        data = bytes(data)
        n = len(data)
        if n == 0 or data[0] != 0x01:
            raise RemoteProtocolError(
                f"InitiateRequest must start with tag 0x01, got [{hexdump(data[:1])}]", layer=_LAYER
            )
        if n < 2:
            raise _truncated("InitiateRequest dedicated-key flag", 1, data, 1)
        pos = 2
        key: bytes | None = None
        if data[1]:
            length, pos = read_length(data, pos, n, "InitiateRequest dedicated-key")
            key = data[pos : pos + length]
            pos += length
        if pos >= n:
            raise _truncated("InitiateRequest response-allowed", 1, data, pos)
        response_allowed = True
        if data[pos]:
            if pos + 1 >= n:
                raise _truncated("InitiateRequest response-allowed value", 1, data, pos + 1)
            response_allowed = data[pos + 1] != 0
            pos += 2
        else:
            pos += 1
        if pos >= n:
            raise _truncated("InitiateRequest proposed-quality-of-service flag", 1, data, pos)
        qos: int | None = None
        if data[pos]:
            if pos + 1 >= n:
                raise _truncated("InitiateRequest proposed-quality-of-service", 1, data, pos + 1)
            qos = data[pos + 1] - 256 if data[pos + 1] > 127 else data[pos + 1]
            pos += 2
        else:
            pos += 1
        # version (1) + conformance block (7) + max PDU size (2)
        if pos + 10 != n:
            if pos + 10 > n:
                raise _truncated("InitiateRequest version, conformance and PDU size", 10, data, pos)
            raise RemoteProtocolError(
                f"InitiateRequest: {n - pos - 10} unexpected byte(s) after client-max-receive-pdu-size",
                layer=_LAYER,
            )
        version = data[pos]
        if data[pos + 1 : pos + 5] == CONFORMANCE_TAG:
            conformance = conformance_from_wire(int.from_bytes(data[pos + 5 : pos + 8], "big"))
            pos += 8
        else:
            conformance, pos = decode_conformance(data, pos + 1)
        size = (data[pos] << 8) | data[pos + 1]
        return cls(conformance, size, version, qos, response_allowed, key)


@dataclass(frozen=True, slots=True)
class InitiateResponse:
    """xDLMS InitiateResponse (tag 0x08), the negotiated xDLMS context of an AARE.

    ``vaa_name`` is the ObjectName of the virtual application association:
    :data:`VAA_NAME_LN` (0x0007) for logical name, :data:`VAA_NAME_SN` (0xFA00) for short
    name referencing. It is kept as the unsigned 16-bit wire value.
    """

    negotiated_conformance: Conformance = _LN_DEFAULT
    server_max_receive_pdu_size: int = 1024
    vaa_name: int = VAA_NAME_LN
    negotiated_dlms_version_number: int = DLMS_VERSION
    negotiated_quality_of_service: int | None = None

    TAG: ClassVar[XdlmsApduTag] = XdlmsApduTag.INITIATE_RESPONSE

    def to_bytes(self) -> bytes:
        """Encode as A-XDR, tag included."""
        qos = self.negotiated_quality_of_service
        if qos is None:
            head = b"\x08\x00"
        else:
            if not -128 <= qos <= 127:
                raise LocalProtocolError(
                    f"negotiated-quality-of-service {qos} is not an Integer8", layer=_LAYER
                )
            head = b"\x08\x01" + (qos & 0xFF).to_bytes(1, "big")
        version = self.negotiated_dlms_version_number
        conformance = int(self.negotiated_conformance)
        size = self.server_max_receive_pdu_size
        vaa = self.vaa_name
        if not 0 <= version <= 0xFF:
            raise LocalProtocolError(f"DLMS version {version} is not an Unsigned8", layer=_LAYER)
        if not 0 <= conformance <= 0xFFFFFF:
            raise LocalProtocolError(f"conformance 0x{conformance:x} does not fit 24 bits", layer=_LAYER)
        if not 0 <= size <= 0xFFFF:
            raise LocalProtocolError(f"server-max-receive-pdu-size {size} is not an Unsigned16", layer=_LAYER)
        if not 0 <= vaa <= 0xFFFF:
            raise LocalProtocolError(f"vaa-name {vaa} does not fit 16 bits", layer=_LAYER)
        return (
            head
            + bytes((version,))
            + CONFORMANCE_TAG
            + conformance.to_bytes(3, "big")
            + size.to_bytes(2, "big")
            + vaa.to_bytes(2, "big")
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> InitiateResponse:
        """Decode a complete InitiateResponse; trailing bytes are an error."""
        data = bytes(data)
        n = len(data)
        if n == 0 or data[0] != 0x08:
            raise RemoteProtocolError(
                f"InitiateResponse must start with tag 0x08, got [{hexdump(data[:1])}]", layer=_LAYER
            )
        if n < 2:
            raise _truncated("InitiateResponse negotiated-quality-of-service flag", 1, data, 1)
        qos: int | None = None
        if data[1]:
            if n < 3:
                raise _truncated("InitiateResponse negotiated-quality-of-service", 1, data, 2)
            qos = data[2] - 256 if data[2] > 127 else data[2]
            pos = 3
        else:
            pos = 2
        # version (1) + conformance block (7) + max PDU size (2) + vaa-name (2)
        if pos + 12 != n:
            if pos + 12 > n:
                raise _truncated(
                    "InitiateResponse version, conformance, PDU size and vaa-name", 12, data, pos
                )
            raise RemoteProtocolError(
                f"InitiateResponse: {n - pos - 12} unexpected byte(s) after vaa-name", layer=_LAYER
            )
        version = data[pos]
        if data[pos + 1 : pos + 5] == CONFORMANCE_TAG:
            conformance = conformance_from_wire(int.from_bytes(data[pos + 5 : pos + 8], "big"))
            pos += 8
        else:
            conformance, pos = decode_conformance(data, pos + 1)
        size = (data[pos] << 8) | data[pos + 1]
        vaa = (data[pos + 2] << 8) | data[pos + 3]
        return cls(conformance, size, vaa, version, qos)


class ConfirmedServiceErrorChoice(enum.IntEnum):
    """Which service failed: the outer CHOICE of ConfirmedServiceError (IEC 62056-5-3)."""

    INITIATE_ERROR = 1
    GET_STATUS = 2
    GET_NAME_LIST = 3
    GET_VARIABLE_ATTRIBUTE = 4
    READ = 5
    WRITE = 6
    GET_DATA_SET_ATTRIBUTE = 7
    GET_TI_ATTRIBUTE = 8
    CHANGE_SCOPE = 9
    START = 10
    STOP = 11
    RESUME = 12
    MAKE_USABLE = 13
    INITIATE_LOAD = 14
    LOAD_SEGMENT = 15
    TERMINATE_LOAD = 16
    INITIATE_UP_LOAD = 17
    UP_LOAD_SEGMENT = 18
    TERMINATE_UP_LOAD = 19


class ServiceErrorChoice(enum.IntEnum):
    """Kind of error: the CHOICE of ServiceError. ``[8]`` (change-scope) is reserved, unused.

    gurux-dlms 1.0.203 numbers task and other-error 8 and 9; the ASN.1 of the Green Book (and
    dlms-cosem) uses 9 and 10, which we follow.
    """

    APPLICATION_REFERENCE = 0
    HARDWARE_RESOURCE = 1
    VDE_STATE_ERROR = 2
    SERVICE = 3
    DEFINITION = 4
    ACCESS = 5
    INITIATE = 6
    LOAD_DATA_SET = 7
    CHANGE_SCOPE = 8
    TASK = 9
    OTHER_ERROR = 10


class ApplicationReferenceError(enum.IntEnum):
    """ServiceError application-reference [0]."""

    OTHER = 0
    TIME_ELAPSED = 1
    APPLICATION_UNREACHABLE = 2
    APPLICATION_REFERENCE_INVALID = 3
    APPLICATION_CONTEXT_UNSUPPORTED = 4
    PROVIDER_COMMUNICATION_ERROR = 5
    DECIPHERING_ERROR = 6


class HardwareResourceError(enum.IntEnum):
    """ServiceError hardware-resource [1]."""

    OTHER = 0
    MEMORY_UNAVAILABLE = 1
    PROCESSOR_RESOURCE_UNAVAILABLE = 2
    MASS_STORAGE_UNAVAILABLE = 3
    OTHER_RESOURCE_UNAVAILABLE = 4


class VdeStateError(enum.IntEnum):
    """ServiceError vde-state-error [2] (VDE: virtual distribution equipment)."""

    OTHER = 0
    NO_DLMS_CONTEXT = 1
    LOADING_DATA_SET = 2
    STATUS_NOCHANGE = 3
    STATUS_INOPERABLE = 4


class ServiceError(enum.IntEnum):
    """ServiceError service [3]."""

    OTHER = 0
    PDU_SIZE = 1
    SERVICE_UNSUPPORTED = 2


class DefinitionError(enum.IntEnum):
    """ServiceError definition [4]."""

    OTHER = 0
    OBJECT_UNDEFINED = 1
    OBJECT_CLASS_INCONSISTENT = 2
    OBJECT_ATTRIBUTE_INCONSISTENT = 3


class AccessError(enum.IntEnum):
    """ServiceError access [5]."""

    OTHER = 0
    SCOPE_OF_ACCESS_VIOLATED = 1
    OBJECT_ACCESS_VIOLATED = 2
    HARDWARE_FAULT = 3
    OBJECT_UNAVAILABLE = 4


class InitiateError(enum.IntEnum):
    """ServiceError initiate [6]: why the server refused the proposed xDLMS context."""

    OTHER = 0
    DLMS_VERSION_TOO_LOW = 1
    INCOMPATIBLE_CONFORMANCE = 2
    PDU_SIZE_TOO_SHORT = 3
    REFUSED_BY_THE_VDE_HANDLER = 4


class LoadDataSetError(enum.IntEnum):
    """ServiceError load-data-set [7]."""

    OTHER = 0
    PRIMITIVE_OUT_OF_SEQUENCE = 1
    NOT_LOADABLE = 2
    DATASET_SIZE_TOO_LARGE = 3
    NOT_AWAITED_SEGMENT = 4
    INTERPRETATION_FAILURE = 5
    STORAGE_FAILURE = 6
    DATA_SET_NOT_READY = 7


class TaskError(enum.IntEnum):
    """ServiceError task [9]."""

    OTHER = 0
    NO_REMOTE_CONTROL = 1
    TI_STOPPED = 2
    TI_RUNNING = 3
    TI_UNUSABLE = 4


class OtherError(enum.IntEnum):
    """ServiceError other-error [10]."""

    OTHER = 0


_VALUE_ENUMS: Final[dict[ServiceErrorChoice, type[enum.IntEnum]]] = {
    ServiceErrorChoice.APPLICATION_REFERENCE: ApplicationReferenceError,
    ServiceErrorChoice.HARDWARE_RESOURCE: HardwareResourceError,
    ServiceErrorChoice.VDE_STATE_ERROR: VdeStateError,
    ServiceErrorChoice.SERVICE: ServiceError,
    ServiceErrorChoice.DEFINITION: DefinitionError,
    ServiceErrorChoice.ACCESS: AccessError,
    ServiceErrorChoice.INITIATE: InitiateError,
    ServiceErrorChoice.LOAD_DATA_SET: LoadDataSetError,
    ServiceErrorChoice.TASK: TaskError,
    ServiceErrorChoice.OTHER_ERROR: OtherError,
}


def _spec_name(name: str) -> str:
    return name.lower().replace("_", "-")


@dataclass(frozen=True, slots=True)
class ConfirmedServiceError:
    """xDLMS ConfirmedServiceError (tag 0x0E): a confirmed service was refused.

    In an AARE it carries ``service=INITIATE_ERROR`` and usually ``error=INITIATE`` with an
    :class:`InitiateError` value. ``value`` is the ENUMERATED code as sent; unknown codes are
    kept (the ASN.1 enumerations are extensible in practice), :attr:`value_name` names known ones.
    """

    service: ConfirmedServiceErrorChoice
    error: ServiceErrorChoice
    value: int

    TAG: ClassVar[XdlmsApduTag] = XdlmsApduTag.CONFIRMED_SERVICE_ERROR

    @property
    def value_enum(self) -> enum.IntEnum | None:
        """The value as its ServiceError enumeration member, or None if unknown."""
        table = _VALUE_ENUMS.get(self.error)
        if table is None:
            return None
        try:
            return table(self.value)
        except ValueError:
            return None

    @property
    def value_name(self) -> str:
        """Spec name of the value (``"dlms-version-too-low"``), or ``"code N"`` if unknown."""
        member = self.value_enum
        return _spec_name(member.name) if member is not None else f"code {self.value}"

    def describe(self) -> str:
        """``"initiate-error / initiate / dlms-version-too-low"``."""
        return f"{_spec_name(self.service.name)} / {_spec_name(self.error.name)} / {self.value_name}"

    def to_bytes(self) -> bytes:
        """Encode as A-XDR: ``0E`` service-choice error-choice value."""
        if not 0 <= self.value <= 0xFF:
            raise LocalProtocolError(f"ServiceError value {self.value} does not fit one byte", layer=_LAYER)
        return bytes((0x0E, self.service, self.error, self.value))

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ConfirmedServiceError:
        """Decode a complete 4-byte ConfirmedServiceError."""
        data = bytes(data)
        if len(data) != 4 or data[0] != 0x0E:
            raise RemoteProtocolError(
                f"ConfirmedServiceError must be 4 bytes starting 0x0e, got {len(data)} byte(s)",
                layer=_LAYER,
                data=data[:8],
            )
        try:
            service = ConfirmedServiceErrorChoice(data[1])
        except ValueError:
            raise RemoteProtocolError(
                f"ConfirmedServiceError: unknown service choice {data[1]} (1..19 defined)", layer=_LAYER
            ) from None
        try:
            error = ServiceErrorChoice(data[2])
        except ValueError:
            raise RemoteProtocolError(
                f"ConfirmedServiceError: unknown ServiceError choice {data[2]} (0..10 defined)",
                layer=_LAYER,
            ) from None
        return cls(service, error, data[3])


@dataclass(frozen=True, slots=True, repr=False)
class CipheredUserInformation:
    """A ciphered xDLMS APDU kept opaque in user-information, tag included.

    ``apdu`` is exactly the bytes of the user-information OCTET STRING, e.g.
    ``21 30 30 01234567 ...`` for a glo-initiateRequest. The security module parses and
    unprotects it (``metercom.codec.dlms.security.parse_ciphered_apdu`` then ``unprotect``);
    the plaintext is decoded with :func:`decode_user_information`. The content is not shown
    by ``repr`` (it may hide a dedicated key, and the bytes are of no use to a reader).
    """

    apdu: bytes

    def __post_init__(self) -> None:
        if not self.apdu or self.apdu[0] not in _CIPHERED_TAG_BY_VALUE:
            first = f"0x{self.apdu[0]:02x}" if self.apdu else "nothing"
            raise LocalProtocolError(f"not a ciphered xDLMS APDU tag: {first}", layer=_LAYER)

    @property
    def tag(self) -> CipheredUserInformationTag:
        """Which ciphered APDU this is (glo-initiateRequest, general-glo-ciphering, ...)."""
        return _CIPHERED_TAG_BY_VALUE[self.apdu[0]]

    def __repr__(self) -> str:
        return f"CipheredUserInformation({self.tag.name}, {len(self.apdu)} bytes)"

    def to_bytes(self) -> bytes:
        """The ciphered APDU as carried in user-information."""
        return self.apdu


#: What the user-information of an ACSE APDU may carry.
UserInformation = InitiateRequest | InitiateResponse | ConfirmedServiceError | CipheredUserInformation


def decode_user_information(data: bytes | bytearray | memoryview) -> UserInformation:
    """Decode the xDLMS APDU of a user-information field (plaintext, or kept ciphered).

    Use it on the OCTET STRING content of user-information and again on the plaintext the
    security module returns for a :class:`CipheredUserInformation`.
    """
    data = bytes(data)
    if not data:
        raise RemoteProtocolError("user-information is empty, an xDLMS APDU was expected", layer=_LAYER)
    tag = data[0]
    if tag == 0x01:
        return InitiateRequest.from_bytes(data)
    if tag == 0x08:
        return InitiateResponse.from_bytes(data)
    if tag == 0x0E:
        return ConfirmedServiceError.from_bytes(data)
    if tag in _CIPHERED_TAG_BY_VALUE:
        return CipheredUserInformation(data)
    raise RemoteProtocolError(
        f"user-information carries xDLMS APDU tag 0x{tag:02x}; expected InitiateRequest (0x01), "
        "InitiateResponse (0x08), ConfirmedServiceError (0x0e) or a ciphered form (0x21, 0x28, ...)",
        layer=_LAYER,
    )
