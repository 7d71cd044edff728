"""DLMS association layer: the ACSE APDUs AARQ, AARE, RLRQ, RLRE (IEC 62056-5-3, Green Book ch. 9).

Rule: every association APDU is a value with ``from_bytes(data)`` and ``to_bytes()``.
Decoding is bounded (each length is checked against the bytes that remain before anything is
taken) and only :class:`~metercom.errors.RemoteProtocolError` escapes from decoding any input;
encoding an illegal value raises :class:`~metercom.errors.LocalProtocolError`. Error messages
show offsets and tags, never the bytes of a value: an AARQ carries the LLS password.
Passwords, challenges and keys are masked in every ``repr``.

Theory of operation. The Association Control Service Element (ACSE, ISO/IEC 8650 as profiled
by the Green Book) opens and closes an application association. Its APDUs are BER-encoded
(tag, definite length, content) SEQUENCEs of context-specific elements:

============================================  =====  ==================================================
AARQ element (AARE element)                   tag    content
============================================  =====  ==================================================
protocol-version                              80     BIT STRING {version1(0)}, DEFAULT version1
application-context-name                      A1     OBJECT IDENTIFIER 2.16.756.5.8.1.x
result (AARE)                                 A2     INTEGER accepted/rejected-permanent/-transient
result-source-diagnostic (AARE)               A3     CHOICE acse-service-user [1] / -provider [2]
called-AP-title (responding-AP-title)         A2(A4) OCTET STRING (system title)
called-AE-qualifier (responding-)             A3(A5) OCTET STRING (e.g. a certificate)
called-AP-invocation-id (responding-)         A4(A6) INTEGER
called-AE-invocation-id (responding-)         A5(A7) INTEGER
calling-AP-title                              A6     OCTET STRING: the client system title
calling-AE-qualifier                          A7     OCTET STRING
calling-AP-invocation-id                      A8     INTEGER
calling-AE-invocation-id                      A9     INTEGER (the user id)
sender- (responder-) acse-requirements        8A(88) BIT STRING {authentication(0)}
mechanism-name                                8B(89) OBJECT IDENTIFIER 2.16.756.5.8.2.x
calling- (responding-) authentication-value   AC(AA) CHOICE: charstring [0] GraphicString, ...
implementation-information                    9D     GraphicString
user-information                              BE     OCTET STRING holding an xDLMS APDU
============================================  =====  ==================================================

The user-information carries the xDLMS InitiateRequest / InitiateResponse (or a
ConfirmedServiceError), see :mod:`metercom.codec.dlms.initiate`; when ciphered it is kept as
an opaque :class:`~metercom.codec.dlms.initiate.CipheredUserInformation` for the security
module. RLRQ (62) and RLRE (63) carry an optional reason ``[0]`` and optional user-information.

Decoding decisions, per tag:

* Long-form BER lengths are accepted everywhere (Kamstrup sends ``61 82 00 35``); indefinite
  lengths and lengths of more than four bytes are rejected.
* Context-specific elements we do not know (application-context-name-list [13]/[11], future
  extensions, high tag numbers) are skipped after their length is checked: ACSE is
  extensible and a server must not fail on fields DLMS does not use. Universal, application
  and private class elements inside the SEQUENCE are rejected, as are duplicated elements.
* Element order is not enforced (a field's tag identifies it).
* Mandatory elements missing (application-context-name; result and diagnostic in an AARE)
  are rejected.
* The APDU's own length must match the bytes given exactly, and every constructed element's
  inner length must fill it exactly. gurux-dlms 1.0.203 servers violate this twice: an RLRE
  whose length byte says 14 while 21 bytes follow, and an HLS AARE whose
  responding-authentication-value wrapper is two bytes short. Both are **rejected** with a
  RemoteProtocolError naming the mismatch: the length fields contradict each other, guessing
  which one is right would make the decoder accept garbage, and in both cases the peer's next
  step fails anyway (the release is over whatever the RLRE says; the gurux server then answers
  the HLS reply_to_HLS_authentication with hardware-fault).
* implementation-information is primitive ``9D`` per the ASN.1; the constructed ``BD`` some
  implementations write is read too (its content kept as bytes).

The association helpers at the end are pure functions for both roles: :func:`build_aarq`
turns :class:`ClientAssociationSettings` into an AARQ, :func:`evaluate_aare` turns the AARE
into a :class:`NegotiatedAssociation` or raises a precise exception, and on the server side
:func:`accept_aarq` applies a :class:`ServerAssociationPolicy` and returns the AARE. High level
security (HLS) passes 3 and 4 (reply_to_HLS_authentication) happen later in xDLMS; the
challenges they need are exposed here (client-to-server "CtoS" and server-to-client "StoC").
Random challenges and ciphering come from the caller: this module reads no clock, draws no
random numbers and does no cryptography.
"""

from __future__ import annotations

import enum
import hmac
from dataclasses import dataclass, field
from typing import ClassVar, Final

from metercom.codec.dlms.axdr import decode_length, encode_length
from metercom.codec.dlms.conformance import Conformance
from metercom.codec.dlms.initiate import (
    CIPHERED_REQUEST_TAGS,
    CIPHERED_RESPONSE_TAGS,
    DLMS_VERSION,
    VAA_NAME_LN,
    VAA_NAME_SN,
    CipheredUserInformation,
    ConfirmedServiceError,
    ConfirmedServiceErrorChoice,
    InitiateError,
    InitiateRequest,
    InitiateResponse,
    ServiceErrorChoice,
    UserInformation,
    decode_user_information,
    read_length,
)
from metercom.errors import (
    AuthenticationError,
    ConfigError,
    DeviceRejectedError,
    LocalProtocolError,
    RemoteProtocolError,
)

__all__ = [
    "AcseApdu",
    "AcseServiceProviderDiagnostic",
    "AcseServiceUserDiagnostic",
    "ApplicationContextName",
    "ApplicationContextNameNotSupportedError",
    "AssociationAuthenticationError",
    "AssociationRejectedError",
    "AssociationRequest",
    "AssociationResponse",
    "AssociationResult",
    "AuthenticationFailureError",
    "AuthenticationMechanism",
    "AuthenticationMechanismNameRequiredError",
    "AuthenticationMechanismNotRecognisedError",
    "AuthenticationRequiredError",
    "AuthenticationValue",
    "AuthenticationValueChoice",
    "CalledAeInvocationIdentifierNotRecognizedError",
    "CalledAeQualifierNotRecognizedError",
    "CalledApInvocationIdentifierNotRecognizedError",
    "CalledApTitleNotRecognizedError",
    "CallingAeInvocationIdentifierNotRecognizedError",
    "CallingAeQualifierNotRecognizedError",
    "CallingApInvocationIdentifierNotRecognizedError",
    "CallingApTitleNotRecognizedError",
    "ClientAssociationSettings",
    "ContextName",
    "DlmsVersionTooLowError",
    "IncompatibleConformanceError",
    "InitiateRejectedError",
    "MechanismName",
    "NegotiatedAssociation",
    "NoCommonAcseVersionError",
    "NoReasonGivenError",
    "ObjectIdentifier",
    "PduSizeTooShortError",
    "RefusedByVdeHandlerError",
    "ReleaseRequest",
    "ReleaseRequestReason",
    "ReleaseResponse",
    "ReleaseResponseReason",
    "ResultSourceDiagnostic",
    "ServerAssociationPolicy",
    "accept_aarq",
    "build_aarq",
    "decode_acse_apdu",
    "evaluate_aare",
]

_LAYER = "acse"

#: BER content of the OBJECT IDENTIFIER prefix 2.16.756.5.8 assigned to the DLMS UA.
_DLMS_OID_PREFIX: Final = b"\x60\x85\x74\x05\x08"
#: HLS challenges (CtoS, StoC) are 8 to 64 octets (Green Book, HLS authentication).
_CHALLENGE_MIN, _CHALLENGE_MAX = 8, 64


# --------------------------------------------------------------------------------------------
# Names: object identifiers, application contexts, mechanisms, results, diagnostics, reasons
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ObjectIdentifier:
    """An OBJECT IDENTIFIER that is not one of the DLMS names we know, as BER content octets."""

    content: bytes

    @property
    def arcs(self) -> tuple[int, ...]:
        """The arcs, e.g. ``(2, 16, 756, 5, 8, 1, 1)``."""
        values: list[int] = []
        acc = 0
        for byte in self.content:
            acc = (acc << 7) | (byte & 0x7F)
            if not byte & 0x80:
                values.append(acc)
                acc = 0
        if not values:
            return ()
        first = values[0]
        head = (0, first) if first < 40 else (1, first - 40) if first < 80 else (2, first - 80)
        return (*head, *values[1:])

    def __str__(self) -> str:
        return ".".join(str(arc) for arc in self.arcs)

    @classmethod
    def from_dotted(cls, text: str) -> ObjectIdentifier:
        """Build from dotted form ``"2.16.756.5.8.1.1"``."""
        try:
            arcs = [int(part) for part in text.strip().split(".")]
        except ValueError:
            raise LocalProtocolError(f"not a dotted OBJECT IDENTIFIER: {text!r}", layer=_LAYER) from None
        if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] >= 40) or min(arcs) < 0:
            raise LocalProtocolError(f"not a valid OBJECT IDENTIFIER: {text!r}", layer=_LAYER)
        out = bytearray()
        for arc in [arcs[0] * 40 + arcs[1], *arcs[2:]]:
            chunk = [arc & 0x7F]
            rest = arc >> 7
            while rest:
                chunk.append(0x80 | (rest & 0x7F))
                rest >>= 7
            out += bytes(reversed(chunk))
        return cls(bytes(out))


class ApplicationContextName(enum.IntEnum):
    """The DLMS application contexts 2.16.756.5.8.1.x (Green Book ch. 9, application context name)."""

    LOGICAL_NAME = 1  # Logical_Name_Referencing_No_Ciphering
    SHORT_NAME = 2  # Short_Name_Referencing_No_Ciphering
    LOGICAL_NAME_WITH_CIPHERING = 3  # Logical_Name_Referencing_With_Ciphering
    SHORT_NAME_WITH_CIPHERING = 4  # Short_Name_Referencing_With_Ciphering

    @property
    def object_identifier(self) -> ObjectIdentifier:
        return ObjectIdentifier(_DLMS_OID_PREFIX + bytes((1, self.value)))

    @property
    def logical_name(self) -> bool:
        """True for logical name (LN) referencing, False for short name (SN)."""
        return self.value in (1, 3)

    @property
    def ciphered(self) -> bool:
        """True if ciphered APDUs may be used in this context."""
        return self.value in (3, 4)

    @classmethod
    def select(cls, *, logical_name: bool = True, ciphered: bool = False) -> ApplicationContextName:
        """The context for a referencing method and ciphering choice."""
        return cls(1 + (0 if logical_name else 1) + (2 if ciphered else 0))


class AuthenticationMechanism(enum.IntEnum):
    """Authentication mechanism names 2.16.756.5.8.2.x (Green Book ch. 9, authentication mechanism name)."""

    NONE = 0  # lowest level security: no authentication
    LOW = 1  # low level security (LLS): password
    HIGH = 2  # high level security (HLS), method left to the manufacturer
    HIGH_MD5 = 3  # HLS with MD5
    HIGH_SHA1 = 4  # HLS with SHA-1
    HIGH_GMAC = 5  # HLS with GMAC (AES-GCM authentication only)
    HIGH_SHA256 = 6  # HLS with SHA-256
    HIGH_ECDSA = 7  # HLS with ECDSA

    @property
    def object_identifier(self) -> ObjectIdentifier:
        return ObjectIdentifier(_DLMS_OID_PREFIX + bytes((2, self.value)))

    @property
    def is_high_level(self) -> bool:
        """True for HLS mechanisms (2..7): four-pass authentication with challenges."""
        return self.value >= 2


#: An application-context-name: a known DLMS context, or any other OBJECT IDENTIFIER.
ContextName = ApplicationContextName | ObjectIdentifier
#: A mechanism-name: a known DLMS mechanism, or any other OBJECT IDENTIFIER.
MechanismName = AuthenticationMechanism | ObjectIdentifier

_CONTEXT_BY_OID: Final = {m.object_identifier.content: m for m in ApplicationContextName}
_MECHANISM_BY_OID: Final = {m.object_identifier.content: m for m in AuthenticationMechanism}


class AuthenticationValueChoice(enum.IntEnum):
    """CHOICE of Authentication-value; DLMS uses charstring (GraphicString) for all mechanisms."""

    CHARSTRING = 0  # [0] IMPLICIT GraphicString
    BITSTRING = 1  # [1] IMPLICIT BIT STRING (content kept with its unused-bits byte)
    EXTERNAL = 2  # [2] IMPLICIT EXTERNAL (content kept raw)
    OTHER = 3  # [3] IMPLICIT SEQUENCE (content kept raw)


@dataclass(frozen=True, slots=True, repr=False)
class AuthenticationValue:
    """calling- / responding-authentication-value: LLS password or HLS challenge. Never shown."""

    value: bytes
    choice: AuthenticationValueChoice = AuthenticationValueChoice.CHARSTRING

    def __repr__(self) -> str:
        return f"AuthenticationValue({self.choice.name.lower()}, <{len(self.value)} bytes hidden>)"

    def _encode(self, tag: int) -> bytes:
        choice = self.choice
        inner_tag = 0x80 | choice | (0x20 if choice >= 2 else 0)
        return _tlv(tag, _tlv(inner_tag, bytes(self.value)))


class AssociationResult(enum.IntEnum):
    """AARE result (Association-result)."""

    ACCEPTED = 0
    REJECTED_PERMANENT = 1
    REJECTED_TRANSIENT = 2


class AcseServiceUserDiagnostic(enum.Enum):
    """result-source-diagnostic given by the acse-service-user (the server application).

    A plain :class:`enum.Enum` on purpose: its codes overlap those of
    :class:`AcseServiceProviderDiagnostic` and must not compare equal to them.
    """

    NULL = 0
    NO_REASON_GIVEN = 1
    APPLICATION_CONTEXT_NAME_NOT_SUPPORTED = 2
    CALLING_AP_TITLE_NOT_RECOGNIZED = 3
    CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 4
    CALLING_AE_QUALIFIER_NOT_RECOGNIZED = 5
    CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 6
    CALLED_AP_TITLE_NOT_RECOGNIZED = 7
    CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 8
    CALLED_AE_QUALIFIER_NOT_RECOGNIZED = 9
    CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED = 10
    AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED = 11
    AUTHENTICATION_MECHANISM_NAME_REQUIRED = 12
    AUTHENTICATION_FAILURE = 13
    AUTHENTICATION_REQUIRED = 14

    @property
    def spec_name(self) -> str:
        return _spec_name(self.name)


class AcseServiceProviderDiagnostic(enum.Enum):
    """result-source-diagnostic given by the acse-service-provider (the ACSE protocol machine)."""

    NULL = 0
    NO_REASON_GIVEN = 1
    NO_COMMON_ACSE_VERSION = 2

    @property
    def spec_name(self) -> str:
        return _spec_name(self.name)


#: result-source-diagnostic: the enum type tells the source (service user or provider).
ResultSourceDiagnostic = AcseServiceUserDiagnostic | AcseServiceProviderDiagnostic

_USER_DIAGNOSTICS: Final = tuple(AcseServiceUserDiagnostic)
_PROVIDER_DIAGNOSTICS: Final = tuple(AcseServiceProviderDiagnostic)
_RESULTS: Final = tuple(AssociationResult)


class ReleaseRequestReason(enum.IntEnum):
    """RLRQ reason (Release-request-reason)."""

    NORMAL = 0
    URGENT = 1
    USER_DEFINED = 30


class ReleaseResponseReason(enum.IntEnum):
    """RLRE reason (Release-response-reason)."""

    NORMAL = 0
    NOT_FINISHED = 1
    USER_DEFINED = 30


def _spec_name(name: str) -> str:
    return name.lower().replace("_", "-")


# --------------------------------------------------------------------------------------------
# BER primitives (encode)
# --------------------------------------------------------------------------------------------


def _tlv(tag: int, content: bytes) -> bytes:
    n = len(content)
    if n < 0x80:
        return bytes((tag, n)) + content
    return bytes((tag,)) + encode_length(n) + content


def _encode_integer(value: int) -> bytes:
    """Content octets of a BER INTEGER: minimal two's complement."""
    return value.to_bytes((value + (value < 0)).bit_length() // 8 + 1, "big", signed=True)


def _encode_named_bits(value: int) -> bytes:
    """Content octets of a BIT STRING whose named bit ``n`` is ``value``'s bit ``n``."""
    if value < 0:
        raise LocalProtocolError(f"BIT STRING value must not be negative, got {value}", layer=_LAYER)
    nbits = value.bit_length()
    nbytes = (nbits + 7) // 8
    out = bytearray(nbytes)
    for n in range(nbits):
        if value >> n & 1:
            out[n >> 3] |= 0x80 >> (n & 7)
    return bytes((nbytes * 8 - nbits,)) + bytes(out)


def _encode_octet_string_element(tag: int, value: bytes) -> bytes:
    return _tlv(tag, _tlv(0x04, bytes(value)))


def _encode_integer_element(tag: int, value: int) -> bytes:
    return _tlv(tag, _tlv(0x02, _encode_integer(value)))


def _encode_context(name: ContextName) -> bytes:
    if isinstance(name, ApplicationContextName):
        return _CONTEXT_TLV[name]
    return _tlv(0xA1, _tlv(0x06, name.content))


def _encode_mechanism(tag: int, name: MechanismName) -> bytes:
    content = name.object_identifier.content if isinstance(name, AuthenticationMechanism) else name.content
    return _tlv(tag, content)


_CONTEXT_TLV: Final = {m: _tlv(0xA1, _tlv(0x06, m.object_identifier.content)) for m in ApplicationContextName}
_AUTH_REQUIREMENT: Final = b"\x02\x07\x80"  # length 2, 7 unused bits, bit 0 (authentication) set
_RESULT_TLV: Final = {r: bytes((0xA2, 0x03, 0x02, 0x01, r)) for r in AssociationResult}
_USER_DIAGNOSTIC_TLV: Final = {
    d: bytes((0xA3, 0x05, 0xA1, 0x03, 0x02, 0x01, d.value)) for d in _USER_DIAGNOSTICS
}
_PROVIDER_DIAGNOSTIC_TLV: Final = {
    d: bytes((0xA3, 0x05, 0xA2, 0x03, 0x02, 0x01, d.value)) for d in _PROVIDER_DIAGNOSTICS
}


# Whole element contents of the common cases, for dictionary look-ups while decoding.
_CONTEXT_ELEMENTS: Final[dict[bytes, ContextName]] = {
    _tlv(0x06, m.object_identifier.content): m for m in ApplicationContextName
}
_RESULT_ELEMENTS: Final = {bytes((0x02, 0x01, r)): r for r in AssociationResult}
_DIAGNOSTIC_ELEMENTS: Final[dict[bytes, ResultSourceDiagnostic]] = {
    **{tlv[2:]: d for d, tlv in _USER_DIAGNOSTIC_TLV.items()},
    **{tlv[2:]: d for d, tlv in _PROVIDER_DIAGNOSTIC_TLV.items()},
}


def _encode_user_information(info: UserInformation) -> bytes:
    return _tlv(0xBE, _tlv(0x04, info.to_bytes()))


def _check_int(value: int, what: str) -> int:
    if not -(1 << 63) <= value < (1 << 63):
        raise LocalProtocolError(f"{what} {value} does not fit a 64-bit INTEGER", layer=_LAYER)
    return value


def _wrap_apdu(tag: int, parts: list[bytes]) -> bytes:
    body = b"".join(parts)
    return _tlv(tag, body)


# --------------------------------------------------------------------------------------------
# BER primitives (decode). Every helper gets the whole buffer and a [start, end) window.
# --------------------------------------------------------------------------------------------


def _fail(apdu: str, message: str) -> RemoteProtocolError:
    return RemoteProtocolError(f"{apdu}: {message}", layer=_LAYER)


def _open_apdu(data: bytes, tag: int, apdu: str) -> tuple[int, int]:
    """Check the APDU tag and that its length matches the input exactly; return the body window."""
    n = len(data)
    if n == 0:
        raise _fail(apdu, "no bytes")
    if data[0] != tag:
        raise _fail(apdu, f"tag 0x{data[0]:02x} is not 0x{tag:02x}")
    if n < 2:
        raise _fail(apdu, "length expected after the tag, input ended")
    first = data[1]
    if first < 0x80:
        length, start = first, 2
        if start + length > n:
            raise _fail(apdu, f"length field says {length} bytes but only {n - start} follow (truncated)")
    else:
        length, start = read_length(data, 1, n, f"{apdu} length", _LAYER)
    if start + length != n:
        raise _fail(
            apdu,
            f"length field says {length} bytes but {n - start} follow "
            f"({n - start - length} unexpected trailing bytes)",
        )
    return start, n


def _read_tag(data: bytes, pos: int, end: int, apdu: str) -> tuple[int, int]:
    """Read one tag; high-tag-number forms are consumed and reported by their first byte."""
    tag = data[pos]
    pos += 1
    if tag & 0x1F == 0x1F:
        for _ in range(4):
            if pos >= end:
                raise _fail(apdu, "multi-byte tag runs past the end")
            more = data[pos] & 0x80
            pos += 1
            if not more:
                break
        else:
            raise _fail(apdu, f"tag number of tag 0x{tag:02x} longer than 4 bytes")
    return tag, pos


def _inner(data: bytes, start: int, end: int, expected: int, apdu: str, *, what: str) -> tuple[int, int]:
    """The single inner TLV of an explicitly tagged element, which must fill it exactly."""
    if start >= end:
        raise _fail(apdu, f"{what} is empty")
    if data[start] != expected:
        raise _fail(apdu, f"{what} must contain tag 0x{expected:02x}, found 0x{data[start]:02x}")
    return _inner_content(data, start + 1, end, apdu, what), end


def _inner_content(data: bytes, pos: int, end: int, apdu: str, what: str) -> int:
    """Read the inner length at ``pos``; the inner content must end exactly at ``end``."""
    if pos >= end:
        raise _fail(apdu, f"{what}: inner length missing")
    first = data[pos]
    if first < 0x80:
        length, pos = first, pos + 1
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or pos + 1 + count > end:
            read_length(data, pos, end, f"{apdu} {what}", _LAYER)  # raises the precise error
        length, pos = decode_length(data, pos)
    if pos + length != end:
        raise _fail(
            apdu,
            f"{what}: inner length {length} does not match the {end - pos} bytes its element holds; "
            "the two length fields contradict each other",
        )
    return pos


def _decode_integer(data: bytes, start: int, end: int, apdu: str, what: str) -> int:
    if start == end or end - start > 8:
        raise _fail(apdu, f"{what}: INTEGER of {end - start} bytes (1..8 allowed)")
    return int.from_bytes(data[start:end], "big", signed=True)


def _decode_named_bits(data: bytes, start: int, end: int, apdu: str, what: str) -> int:
    if start == end:
        raise _fail(apdu, f"{what}: BIT STRING without its unused-bits byte")
    unused = data[start]
    if unused > 7 or (unused and end - start == 1):
        raise _fail(apdu, f"{what}: BIT STRING with {unused} unused bits is malformed")
    value = 0
    bit = 0
    for byte in data[start + 1 : end]:
        if byte:
            for k in range(8):
                if byte & (0x80 >> k):
                    value |= 1 << (bit + k)
        bit += 8
    total = (end - start - 1) * 8 - unused
    return value & ((1 << total) - 1)


def _decode_oid(data: bytes, start: int, end: int, apdu: str, what: str) -> bytes:
    if start == end:
        raise _fail(apdu, f"{what}: empty OBJECT IDENTIFIER")
    if data[end - 1] & 0x80:
        raise _fail(apdu, f"{what}: OBJECT IDENTIFIER ends inside a sub-identifier")
    return data[start:end]


def _context_name(content: bytes) -> ContextName:
    known = _CONTEXT_BY_OID.get(content)
    return known if known is not None else ObjectIdentifier(content)


def _mechanism_name(content: bytes) -> MechanismName:
    known = _MECHANISM_BY_OID.get(content)
    return known if known is not None else ObjectIdentifier(content)


def _decode_authentication_value(
    data: bytes, start: int, end: int, apdu: str, what: str
) -> AuthenticationValue:
    if start >= end:
        raise _fail(apdu, f"{what} is empty")
    inner = data[start]
    choice = {0x80: 0, 0x81: 1, 0xA2: 2, 0xA3: 3}.get(inner)
    if choice is None:
        raise _fail(apdu, f"{what}: choice tag 0x{inner:02x} is none of 80/81/a2/a3")
    pos = _inner_content(data, start + 1, end, apdu, what)
    return AuthenticationValue(data[pos:end], AuthenticationValueChoice(choice))


def _user_information(data: bytes, start: int, end: int, apdu: str) -> UserInformation:
    pos, end = _inner(data, start, end, 0x04, apdu, what="user-information")
    return decode_user_information(data[pos:end])


def _not_allowed(apdu: str, info: UserInformation) -> RemoteProtocolError:
    what = info.tag.name.lower() if isinstance(info, CipheredUserInformation) else type(info).__name__
    return _fail(apdu, f"user-information carries {what}, which is not allowed in an {apdu}")


def _request_information(
    data: bytes, start: int, end: int, apdu: str
) -> InitiateRequest | CipheredUserInformation:
    """user-information of an AARQ or RLRQ: an InitiateRequest or its ciphered form."""
    info = _user_information(data, start, end, apdu)
    if isinstance(info, InitiateRequest) or (
        isinstance(info, CipheredUserInformation) and info.apdu[0] in CIPHERED_REQUEST_TAGS
    ):
        return info
    raise _not_allowed(apdu, info)


def _response_information(
    data: bytes, start: int, end: int, apdu: str
) -> InitiateResponse | ConfirmedServiceError | CipheredUserInformation:
    """user-information of an AARE: an InitiateResponse, a ConfirmedServiceError or a ciphered form."""
    info = _user_information(data, start, end, apdu)
    if isinstance(info, InitiateResponse | ConfirmedServiceError) or (
        isinstance(info, CipheredUserInformation) and info.apdu[0] in CIPHERED_RESPONSE_TAGS
    ):
        return info
    raise _not_allowed(apdu, info)


def _skip_unknown(tag: int, apdu: str) -> None:
    """Unknown element: context-specific ones are skipped, any other class is rejected."""
    if tag & 0xC0 != 0x80:
        raise _fail(
            apdu,
            f"element with tag 0x{tag:02x} (not context-specific) is not allowed in the SEQUENCE",
        )


def _overrun(apdu: str, tag: int, length: int, start: int, end: int) -> RemoteProtocolError:
    return _fail(
        apdu,
        f"element with tag 0x{tag:02x} announces {length} bytes at offset {start}, "
        f"only {end - start} left (truncated or inconsistent length)",
    )


def _duplicate(apdu: str, tag: int) -> RemoteProtocolError:
    return _fail(apdu, f"element with tag 0x{tag:02x} appears twice")


# --------------------------------------------------------------------------------------------
# The four APDUs
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AssociationRequest:
    """A-ASSOCIATE request, AARQ (tag 0x60, IEC 62056-5-3 ``AARQ-apdu``).

    ``sender_acse_requirements`` is the authentication functional unit bit (element 8A).
    ``protocol_version`` holds the named bits of the protocol-version BIT STRING (bit 0 =
    version1); ``None`` means absent, i.e. the DEFAULT {version1}. ``user_information`` is the
    InitiateRequest, or its ciphered form kept opaque.
    """

    application_context_name: ContextName = ApplicationContextName.LOGICAL_NAME
    calling_ap_title: bytes | None = None
    calling_ae_qualifier: bytes | None = None
    calling_ap_invocation_id: int | None = None
    calling_ae_invocation_id: int | None = None
    sender_acse_requirements: bool = False
    mechanism_name: MechanismName | None = None
    calling_authentication_value: AuthenticationValue | None = None
    user_information: InitiateRequest | CipheredUserInformation | None = None
    called_ap_title: bytes | None = None
    called_ae_qualifier: bytes | None = None
    called_ap_invocation_id: int | None = None
    called_ae_invocation_id: int | None = None
    implementation_information: bytes | None = None
    protocol_version: int | None = None

    TAG: ClassVar[int] = 0x60

    @property
    def mechanism(self) -> MechanismName:
        """The mechanism asked for: mechanism-name if present, else NONE (lowest level security)."""
        return self.mechanism_name if self.mechanism_name is not None else AuthenticationMechanism.NONE

    @property
    def client_challenge(self) -> bytes | None:
        """HLS client-to-server challenge (CtoS) if an HLS mechanism is asked for, else None."""
        mechanism = self.mechanism_name
        if isinstance(mechanism, AuthenticationMechanism) and mechanism.is_high_level:
            value = self.calling_authentication_value
            return value.value if value is not None else None
        return None

    def to_bytes(self) -> bytes:
        """Encode as BER."""
        parts: list[bytes] = []
        if self.protocol_version is not None:
            parts.append(_tlv(0x80, _encode_named_bits(self.protocol_version)))
        parts.append(_encode_context(self.application_context_name))
        if self.called_ap_title is not None:
            parts.append(_encode_octet_string_element(0xA2, self.called_ap_title))
        if self.called_ae_qualifier is not None:
            parts.append(_encode_octet_string_element(0xA3, self.called_ae_qualifier))
        if self.called_ap_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA4, _check_int(self.called_ap_invocation_id, "called-AP-invocation-id")
                )
            )
        if self.called_ae_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA5, _check_int(self.called_ae_invocation_id, "called-AE-invocation-id")
                )
            )
        if self.calling_ap_title is not None:
            parts.append(_encode_octet_string_element(0xA6, self.calling_ap_title))
        if self.calling_ae_qualifier is not None:
            parts.append(_encode_octet_string_element(0xA7, self.calling_ae_qualifier))
        if self.calling_ap_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA8, _check_int(self.calling_ap_invocation_id, "calling-AP-invocation-id")
                )
            )
        if self.calling_ae_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA9, _check_int(self.calling_ae_invocation_id, "calling-AE-invocation-id")
                )
            )
        if self.sender_acse_requirements:
            parts.append(b"\x8a" + _AUTH_REQUIREMENT)
        if self.mechanism_name is not None:
            parts.append(_encode_mechanism(0x8B, self.mechanism_name))
        if self.calling_authentication_value is not None:
            parts.append(self.calling_authentication_value._encode(0xAC))
        if self.implementation_information is not None:
            parts.append(_tlv(0x9D, bytes(self.implementation_information)))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return _wrap_apdu(0x60, parts)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> AssociationRequest:
        """Decode one complete AARQ (exactly the APDU bytes)."""
        data = bytes(data)
        apdu = "AARQ"
        pos, end = _open_apdu(data, 0x60, apdu)
        seen = 0
        context: ContextName | None = None
        called_ap_title = called_ae_qualifier = calling_ap_title = calling_ae_qualifier = None
        called_ap_id = called_ae_id = calling_ap_id = calling_ae_id = None
        requirements = False
        mechanism: MechanismName | None = None
        auth_value: AuthenticationValue | None = None
        implementation: bytes | None = None
        user_info: InitiateRequest | CipheredUserInformation | None = None
        version: int | None = None
        while pos < end:
            # One element: tag, definite length, content [start, pos). Inlined: this loop is
            # the hot path of association set-up on a head-end.
            tag = data[pos]
            if tag & 0x1F == 0x1F:
                tag, pos = _read_tag(data, pos, end, apdu)
                bit = 0  # high tag numbers: unknown to DLMS, skipped below, not tracked
            else:
                pos += 1
                bit = 1 << (tag & 0x3F)  # unique per single-byte context-specific tag
            length = data[pos] if pos < end else 0xFF
            if length < 0x80:
                pos += 1
            else:
                length, pos = read_length(data, pos, end, apdu, _LAYER)
            start = pos
            pos += length
            if pos > end:
                raise _overrun(apdu, tag, length, start, end)
            if seen & bit:
                raise _duplicate(apdu, tag)
            seen |= bit
            if tag == 0xA1:
                context = _CONTEXT_ELEMENTS.get(data[start:pos])
                if context is None:
                    s, e = _inner(data, start, pos, 0x06, apdu, what="application-context-name")
                    context = _context_name(_decode_oid(data, s, e, apdu, "application-context-name"))
            elif tag == 0xBE:
                if length > 2 and data[start] == 0x04 and data[start + 1] == length - 2 < 0x80:
                    inner = data[start + 2 : pos]  # the common case: OCTET STRING, short length
                    user_info = (
                        InitiateRequest.from_bytes(inner)
                        if inner[0] == 0x01
                        else _request_information(data, start, pos, apdu)
                    )
                else:
                    user_info = _request_information(data, start, pos, apdu)
            elif tag == 0x8A:
                requirements = bool(
                    _decode_named_bits(data, start, pos, apdu, "sender-acse-requirements") & 1
                )
            elif tag == 0x8B:
                mechanism = _mechanism_name(_decode_oid(data, start, pos, apdu, "mechanism-name"))
            elif tag == 0xAC:
                auth_value = _decode_authentication_value(
                    data, start, pos, apdu, "calling-authentication-value"
                )
            elif tag == 0xA6:
                s, e = _inner(data, start, pos, 0x04, apdu, what="calling-AP-title")
                calling_ap_title = data[s:e]
            elif tag == 0xA7:
                s, e = _inner(data, start, pos, 0x04, apdu, what="calling-AE-qualifier")
                calling_ae_qualifier = data[s:e]
            elif tag == 0xA8:
                s, e = _inner(data, start, pos, 0x02, apdu, what="calling-AP-invocation-id")
                calling_ap_id = _decode_integer(data, s, e, apdu, "calling-AP-invocation-id")
            elif tag == 0xA9:
                s, e = _inner(data, start, pos, 0x02, apdu, what="calling-AE-invocation-id")
                calling_ae_id = _decode_integer(data, s, e, apdu, "calling-AE-invocation-id")
            elif tag == 0xA2:
                s, e = _inner(data, start, pos, 0x04, apdu, what="called-AP-title")
                called_ap_title = data[s:e]
            elif tag == 0xA3:
                s, e = _inner(data, start, pos, 0x04, apdu, what="called-AE-qualifier")
                called_ae_qualifier = data[s:e]
            elif tag == 0xA4:
                s, e = _inner(data, start, pos, 0x02, apdu, what="called-AP-invocation-id")
                called_ap_id = _decode_integer(data, s, e, apdu, "called-AP-invocation-id")
            elif tag == 0xA5:
                s, e = _inner(data, start, pos, 0x02, apdu, what="called-AE-invocation-id")
                called_ae_id = _decode_integer(data, s, e, apdu, "called-AE-invocation-id")
            elif tag == 0x80:
                version = _decode_named_bits(data, start, pos, apdu, "protocol-version")
            elif tag in (0x9D, 0xBD):
                if implementation is not None:
                    raise _duplicate(apdu, tag)
                implementation = data[start:pos]
            else:
                _skip_unknown(tag, apdu)
        if context is None:
            raise _fail(apdu, "mandatory application-context-name [1] (tag 0xa1) is missing")
        return cls(
            context,
            calling_ap_title,
            calling_ae_qualifier,
            calling_ap_id,
            calling_ae_id,
            requirements,
            mechanism,
            auth_value,
            user_info,
            called_ap_title,
            called_ae_qualifier,
            called_ap_id,
            called_ae_id,
            implementation,
            version,
        )


@dataclass(frozen=True, slots=True)
class AssociationResponse:
    """A-ASSOCIATE response, AARE (tag 0x61, IEC 62056-5-3 ``AARE-apdu``).

    ``result_source_diagnostic`` is an :class:`AcseServiceUserDiagnostic` or an
    :class:`AcseServiceProviderDiagnostic`; the type says which source gave it.
    ``responding_authentication_value`` holds the HLS server-to-client challenge (StoC).
    """

    application_context_name: ContextName = ApplicationContextName.LOGICAL_NAME
    result: AssociationResult = AssociationResult.ACCEPTED
    result_source_diagnostic: ResultSourceDiagnostic = AcseServiceUserDiagnostic.NULL
    responding_ap_title: bytes | None = None
    responder_acse_requirements: bool = False
    mechanism_name: MechanismName | None = None
    responding_authentication_value: AuthenticationValue | None = None
    user_information: InitiateResponse | ConfirmedServiceError | CipheredUserInformation | None = None
    responding_ae_qualifier: bytes | None = None
    responding_ap_invocation_id: int | None = None
    responding_ae_invocation_id: int | None = None
    implementation_information: bytes | None = None
    protocol_version: int | None = None

    TAG: ClassVar[int] = 0x61

    @property
    def accepted(self) -> bool:
        return self.result is AssociationResult.ACCEPTED

    @property
    def authentication_pending(self) -> bool:
        """Accepted but HLS passes 3 and 4 still to do (diagnostic authentication-required)."""
        return (
            self.result is AssociationResult.ACCEPTED
            and self.result_source_diagnostic is AcseServiceUserDiagnostic.AUTHENTICATION_REQUIRED
        )

    @property
    def server_challenge(self) -> bytes | None:
        """HLS server-to-client challenge (StoC), if the AARE carries one."""
        value = self.responding_authentication_value
        return value.value if value is not None else None

    def to_bytes(self) -> bytes:
        """Encode as BER."""
        parts: list[bytes] = []
        if self.protocol_version is not None:
            parts.append(_tlv(0x80, _encode_named_bits(self.protocol_version)))
        parts.append(_encode_context(self.application_context_name))
        parts.append(_RESULT_TLV[self.result])
        diagnostic = self.result_source_diagnostic
        if isinstance(diagnostic, AcseServiceUserDiagnostic):
            parts.append(_USER_DIAGNOSTIC_TLV[diagnostic])
        else:
            parts.append(_PROVIDER_DIAGNOSTIC_TLV[diagnostic])
        if self.responding_ap_title is not None:
            parts.append(_encode_octet_string_element(0xA4, self.responding_ap_title))
        if self.responding_ae_qualifier is not None:
            parts.append(_encode_octet_string_element(0xA5, self.responding_ae_qualifier))
        if self.responding_ap_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA6, _check_int(self.responding_ap_invocation_id, "responding-AP-invocation-id")
                )
            )
        if self.responding_ae_invocation_id is not None:
            parts.append(
                _encode_integer_element(
                    0xA7, _check_int(self.responding_ae_invocation_id, "responding-AE-invocation-id")
                )
            )
        if self.responder_acse_requirements:
            parts.append(b"\x88" + _AUTH_REQUIREMENT)
        if self.mechanism_name is not None:
            parts.append(_encode_mechanism(0x89, self.mechanism_name))
        if self.responding_authentication_value is not None:
            parts.append(self.responding_authentication_value._encode(0xAA))
        if self.implementation_information is not None:
            parts.append(_tlv(0x9D, bytes(self.implementation_information)))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return _wrap_apdu(0x61, parts)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> AssociationResponse:
        """Decode one complete AARE (exactly the APDU bytes)."""
        data = bytes(data)
        apdu = "AARE"
        pos, end = _open_apdu(data, 0x61, apdu)
        seen = 0
        context: ContextName | None = None
        result: AssociationResult | None = None
        diagnostic: ResultSourceDiagnostic | None = None
        ap_title = ae_qualifier = None
        ap_id = ae_id = None
        requirements = False
        mechanism: MechanismName | None = None
        auth_value: AuthenticationValue | None = None
        implementation: bytes | None = None
        user_info: InitiateResponse | ConfirmedServiceError | CipheredUserInformation | None = None
        version: int | None = None
        while pos < end:
            # One element: tag, definite length, content [start, pos). Inlined: this loop is
            # the hot path of association set-up on a head-end.
            tag = data[pos]
            if tag & 0x1F == 0x1F:
                tag, pos = _read_tag(data, pos, end, apdu)
                bit = 0  # high tag numbers: unknown to DLMS, skipped below, not tracked
            else:
                pos += 1
                bit = 1 << (tag & 0x3F)  # unique per single-byte context-specific tag
            length = data[pos] if pos < end else 0xFF
            if length < 0x80:
                pos += 1
            else:
                length, pos = read_length(data, pos, end, apdu, _LAYER)
            start = pos
            pos += length
            if pos > end:
                raise _overrun(apdu, tag, length, start, end)
            if seen & bit:
                raise _duplicate(apdu, tag)
            seen |= bit
            if tag == 0xA1:
                context = _CONTEXT_ELEMENTS.get(data[start:pos])
                if context is None:
                    s, e = _inner(data, start, pos, 0x06, apdu, what="application-context-name")
                    context = _context_name(_decode_oid(data, s, e, apdu, "application-context-name"))
            elif tag == 0xA2:
                result = _RESULT_ELEMENTS.get(data[start:pos])
                if result is not None:
                    continue
                s, e = _inner(data, start, pos, 0x02, apdu, what="result")
                code = _decode_integer(data, s, e, apdu, "result")
                if not 0 <= code <= 2:
                    raise _fail(
                        apdu,
                        f"result {code} is none of accepted (0), rejected-permanent (1), "
                        "rejected-transient (2)",
                    )
                result = _RESULTS[code]
            elif tag == 0xA3:
                diagnostic = _DIAGNOSTIC_ELEMENTS.get(data[start:pos])
                if diagnostic is None:
                    diagnostic = _decode_diagnostic(data, start, pos, apdu)
            elif tag == 0xBE:
                if length > 2 and data[start] == 0x04 and data[start + 1] == length - 2 < 0x80:
                    inner = data[start + 2 : pos]  # the common case: OCTET STRING, short length
                    user_info = (
                        InitiateResponse.from_bytes(inner)
                        if inner[0] == 0x08
                        else _response_information(data, start, pos, apdu)
                    )
                else:
                    user_info = _response_information(data, start, pos, apdu)
            elif tag == 0xA4:
                s, e = _inner(data, start, pos, 0x04, apdu, what="responding-AP-title")
                ap_title = data[s:e]
            elif tag == 0x88:
                requirements = bool(
                    _decode_named_bits(data, start, pos, apdu, "responder-acse-requirements") & 1
                )
            elif tag == 0x89:
                mechanism = _mechanism_name(_decode_oid(data, start, pos, apdu, "mechanism-name"))
            elif tag == 0xAA:
                auth_value = _decode_authentication_value(
                    data, start, pos, apdu, "responding-authentication-value"
                )
            elif tag == 0xA5:
                s, e = _inner(data, start, pos, 0x04, apdu, what="responding-AE-qualifier")
                ae_qualifier = data[s:e]
            elif tag == 0xA6:
                s, e = _inner(data, start, pos, 0x02, apdu, what="responding-AP-invocation-id")
                ap_id = _decode_integer(data, s, e, apdu, "responding-AP-invocation-id")
            elif tag == 0xA7:
                s, e = _inner(data, start, pos, 0x02, apdu, what="responding-AE-invocation-id")
                ae_id = _decode_integer(data, s, e, apdu, "responding-AE-invocation-id")
            elif tag == 0x80:
                version = _decode_named_bits(data, start, pos, apdu, "protocol-version")
            elif tag in (0x9D, 0xBD):
                if implementation is not None:
                    raise _duplicate(apdu, tag)
                implementation = data[start:pos]
            else:
                _skip_unknown(tag, apdu)
        if context is None:
            raise _fail(apdu, "mandatory application-context-name [1] (tag 0xa1) is missing")
        if result is None:
            raise _fail(apdu, "mandatory result [2] (tag 0xa2) is missing")
        if diagnostic is None:
            raise _fail(apdu, "mandatory result-source-diagnostic [3] (tag 0xa3) is missing")
        return cls(
            context,
            result,
            diagnostic,
            ap_title,
            requirements,
            mechanism,
            auth_value,
            user_info,
            ae_qualifier,
            ap_id,
            ae_id,
            implementation,
            version,
        )


def _decode_diagnostic(data: bytes, start: int, end: int, apdu: str) -> ResultSourceDiagnostic:
    if start >= end:
        raise _fail(apdu, "result-source-diagnostic is empty")
    source = data[start]
    if source not in (0xA1, 0xA2):
        raise _fail(
            apdu,
            f"result-source-diagnostic choice 0x{source:02x} is neither acse-service-user (a1) "
            "nor acse-service-provider (a2)",
        )
    s, e = _inner(data, start, end, source, apdu, what="result-source-diagnostic")
    s, e = _inner(data, s, e, 0x02, apdu, what="result-source-diagnostic")
    code = _decode_integer(data, s, e, apdu, "result-source-diagnostic")
    table = _USER_DIAGNOSTICS if source == 0xA1 else _PROVIDER_DIAGNOSTICS
    if not 0 <= code < len(table):
        who = "acse-service-user" if source == 0xA1 else "acse-service-provider"
        raise _fail(apdu, f"{who} diagnostic {code} is not defined (0..{len(table) - 1})")
    return table[code]


def _decode_release(data: bytes, tag: int, apdu: str) -> tuple[int | None, int, int]:
    """Walk an RLRQ / RLRE; return ``(reason, user-information start, end)`` (start -1: absent)."""
    pos, end = _open_apdu(data, tag, apdu)
    seen: set[int] = set()
    reason: int | None = None
    info_start = info_end = -1
    while pos < end:
        element, pos = _read_tag(data, pos, end, apdu)
        length = data[pos] if pos < end else 0xFF
        if length < 0x80:
            pos += 1
        else:
            length, pos = read_length(data, pos, end, apdu, _LAYER)
        start, pos = pos, pos + length
        if pos > end:
            raise _overrun(apdu, element, length, start, end)
        if element & 0x1F != 0x1F:  # high tag numbers are unknown, skipped, not tracked
            if element in seen:
                raise _duplicate(apdu, element)
            seen.add(element)
        if element == 0x80:
            reason = _decode_integer(data, start, pos, apdu, "reason")
        elif element == 0xBE:
            info_start, info_end = start, pos
        else:
            _skip_unknown(element, apdu)
    return reason, info_start, info_end


@dataclass(frozen=True, slots=True)
class ReleaseRequest:
    """A-RELEASE request, RLRQ (tag 0x62): optional reason and user-information.

    A protected release carries an InitiateRequest (usually ciphered) so the server can check
    the client still holds the keys.
    """

    reason: ReleaseRequestReason | None = ReleaseRequestReason.NORMAL
    user_information: InitiateRequest | CipheredUserInformation | None = None

    TAG: ClassVar[int] = 0x62

    def to_bytes(self) -> bytes:
        parts: list[bytes] = []
        if self.reason is not None:
            parts.append(_tlv(0x80, _encode_integer(self.reason)))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return _wrap_apdu(0x62, parts)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ReleaseRequest:
        """Decode one complete RLRQ. An unknown reason code is rejected."""
        apdu = "RLRQ"
        data = bytes(data)
        reason, start, end = _decode_release(data, 0x62, apdu)
        info = _request_information(data, start, end, apdu) if start >= 0 else None
        if reason is None:
            return cls(None, info)
        try:
            return cls(ReleaseRequestReason(reason), info)
        except ValueError:
            raise _fail(
                apdu, f"reason {reason} is none of normal (0), urgent (1), user-defined (30)"
            ) from None


@dataclass(frozen=True, slots=True)
class ReleaseResponse:
    """A-RELEASE response, RLRE (tag 0x63): optional reason and user-information."""

    reason: ReleaseResponseReason | None = ReleaseResponseReason.NORMAL
    user_information: InitiateResponse | CipheredUserInformation | None = None

    TAG: ClassVar[int] = 0x63

    def to_bytes(self) -> bytes:
        parts: list[bytes] = []
        if self.reason is not None:
            parts.append(_tlv(0x80, _encode_integer(self.reason)))
        if self.user_information is not None:
            parts.append(_encode_user_information(self.user_information))
        return _wrap_apdu(0x63, parts)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ReleaseResponse:
        """Decode one complete RLRE. An unknown reason code is rejected."""
        apdu = "RLRE"
        data = bytes(data)
        reason, start, end = _decode_release(data, 0x63, apdu)
        info_any = _response_information(data, start, end, apdu) if start >= 0 else None
        if isinstance(info_any, ConfirmedServiceError):
            raise _not_allowed(apdu, info_any)
        info = info_any
        if reason is None:
            return cls(None, info)
        try:
            return cls(ReleaseResponseReason(reason), info)
        except ValueError:
            raise _fail(
                apdu, f"reason {reason} is none of normal (0), not-finished (1), user-defined (30)"
            ) from None


#: Any of the four ACSE APDUs.
AcseApdu = AssociationRequest | AssociationResponse | ReleaseRequest | ReleaseResponse


def decode_acse_apdu(data: bytes | bytearray | memoryview) -> AcseApdu:
    """Decode an AARQ, AARE, RLRQ or RLRE, chosen by its first byte."""
    data = bytes(data)
    if not data:
        raise RemoteProtocolError("ACSE APDU expected, got no bytes", layer=_LAYER)
    first = data[0]
    if first == 0x60:
        return AssociationRequest.from_bytes(data)
    if first == 0x61:
        return AssociationResponse.from_bytes(data)
    if first == 0x62:
        return ReleaseRequest.from_bytes(data)
    if first == 0x63:
        return ReleaseResponse.from_bytes(data)
    raise RemoteProtocolError(
        f"tag 0x{first:02x} is not an ACSE APDU (AARQ 60, AARE 61, RLRQ 62, RLRE 63)", layer=_LAYER
    )


# --------------------------------------------------------------------------------------------
# Rejections as exceptions (one class per spec code)
# --------------------------------------------------------------------------------------------


class AssociationRejectedError(DeviceRejectedError):
    """The server rejected the association: AARE result rejected-permanent / rejected-transient.

    ``code`` is the spec name of the diagnostic (or of the initiate error). ``transient`` is
    True for rejected-transient: the same request may succeed later.
    """

    def __init__(
        self,
        message: str,
        *,
        result: AssociationResult,
        diagnostic: ResultSourceDiagnostic,
        service_error: ConfirmedServiceError | None = None,
    ) -> None:
        code = service_error.value_name if service_error is not None else diagnostic.spec_name
        super().__init__(message, code=code)
        self.result = result
        self.diagnostic = diagnostic
        self.service_error = service_error

    @property
    def transient(self) -> bool:
        return self.result is AssociationResult.REJECTED_TRANSIENT


class NoReasonGivenError(AssociationRejectedError):
    """acse-service-user or -provider no-reason-given (1)."""


class ApplicationContextNameNotSupportedError(AssociationRejectedError):
    """acse-service-user application-context-name-not-supported (2)."""


class CallingApTitleNotRecognizedError(AssociationRejectedError):
    """acse-service-user calling-AP-title-not-recognized (3)."""


class CallingApInvocationIdentifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user calling-AP-invocation-identifier-not-recognized (4)."""


class CallingAeQualifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user calling-AE-qualifier-not-recognized (5)."""


class CallingAeInvocationIdentifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user calling-AE-invocation-identifier-not-recognized (6)."""


class CalledApTitleNotRecognizedError(AssociationRejectedError):
    """acse-service-user called-AP-title-not-recognized (7)."""


class CalledApInvocationIdentifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user called-AP-invocation-identifier-not-recognized (8)."""


class CalledAeQualifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user called-AE-qualifier-not-recognized (9)."""


class CalledAeInvocationIdentifierNotRecognizedError(AssociationRejectedError):
    """acse-service-user called-AE-invocation-identifier-not-recognized (10)."""


class NoCommonAcseVersionError(AssociationRejectedError):
    """acse-service-provider no-common-acse-version (2)."""


class InitiateRejectedError(AssociationRejectedError):
    """The xDLMS InitiateRequest was refused: the AARE carries a ConfirmedServiceError."""


class DlmsVersionTooLowError(InitiateRejectedError):
    """initiate error dlms-version-too-low (1)."""


class IncompatibleConformanceError(InitiateRejectedError):
    """initiate error incompatible-conformance (2)."""


class PduSizeTooShortError(InitiateRejectedError):
    """initiate error pdu-size-too-short (3)."""


class RefusedByVdeHandlerError(InitiateRejectedError):
    """initiate error refused-by-the-VDE-handler (4)."""


class AssociationAuthenticationError(AuthenticationError):
    """The server refused the association for an authentication reason (diagnostics 11..14)."""

    def __init__(
        self, message: str, *, result: AssociationResult, diagnostic: ResultSourceDiagnostic
    ) -> None:
        super().__init__(message)
        self.result = result
        self.diagnostic = diagnostic
        self.code = diagnostic.spec_name


class AuthenticationMechanismNotRecognisedError(AssociationAuthenticationError):
    """acse-service-user authentication-mechanism-name-not-recognised (11)."""


class AuthenticationMechanismNameRequiredError(AssociationAuthenticationError):
    """acse-service-user authentication-mechanism-name-required (12)."""


class AuthenticationFailureError(AssociationAuthenticationError):
    """acse-service-user authentication-failure (13): wrong password or key."""


class AuthenticationRequiredError(AssociationAuthenticationError):
    """acse-service-user authentication-required (14) with a rejected result."""


_U = AcseServiceUserDiagnostic
_REJECTION_CLASSES: Final[dict[ResultSourceDiagnostic, type[AssociationRejectedError]]] = {
    _U.NO_REASON_GIVEN: NoReasonGivenError,
    _U.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED: ApplicationContextNameNotSupportedError,
    _U.CALLING_AP_TITLE_NOT_RECOGNIZED: CallingApTitleNotRecognizedError,
    _U.CALLING_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED: CallingApInvocationIdentifierNotRecognizedError,
    _U.CALLING_AE_QUALIFIER_NOT_RECOGNIZED: CallingAeQualifierNotRecognizedError,
    _U.CALLING_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED: CallingAeInvocationIdentifierNotRecognizedError,
    _U.CALLED_AP_TITLE_NOT_RECOGNIZED: CalledApTitleNotRecognizedError,
    _U.CALLED_AP_INVOCATION_IDENTIFIER_NOT_RECOGNIZED: CalledApInvocationIdentifierNotRecognizedError,
    _U.CALLED_AE_QUALIFIER_NOT_RECOGNIZED: CalledAeQualifierNotRecognizedError,
    _U.CALLED_AE_INVOCATION_IDENTIFIER_NOT_RECOGNIZED: CalledAeInvocationIdentifierNotRecognizedError,
    AcseServiceProviderDiagnostic.NO_REASON_GIVEN: NoReasonGivenError,
    AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION: NoCommonAcseVersionError,
}
_AUTHENTICATION_CLASSES: Final[dict[ResultSourceDiagnostic, type[AssociationAuthenticationError]]] = {
    _U.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED: AuthenticationMechanismNotRecognisedError,
    _U.AUTHENTICATION_MECHANISM_NAME_REQUIRED: AuthenticationMechanismNameRequiredError,
    _U.AUTHENTICATION_FAILURE: AuthenticationFailureError,
    _U.AUTHENTICATION_REQUIRED: AuthenticationRequiredError,
}
_INITIATE_CLASSES: Final[dict[int, type[InitiateRejectedError]]] = {
    InitiateError.DLMS_VERSION_TOO_LOW: DlmsVersionTooLowError,
    InitiateError.INCOMPATIBLE_CONFORMANCE: IncompatibleConformanceError,
    InitiateError.PDU_SIZE_TOO_SHORT: PduSizeTooShortError,
    InitiateError.REFUSED_BY_THE_VDE_HANDLER: RefusedByVdeHandlerError,
}
_FIXES: Final[dict[ResultSourceDiagnostic, str]] = {
    _U.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED: (
        "use the application context the meter supports (logical or short name referencing, "
        "with or without ciphering)"
    ),
    _U.CALLING_AP_TITLE_NOT_RECOGNIZED: "check the client system title (calling-AP-title) the meter expects",
    _U.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED: (
        "the meter does not offer this authentication mechanism to this client address; "
        "configure the mechanism or client address the meter expects"
    ),
    _U.AUTHENTICATION_MECHANISM_NAME_REQUIRED: (
        "this client address needs authentication; configure a mechanism (LLS password or HLS)"
    ),
    _U.AUTHENTICATION_FAILURE: "check the password or keys configured for this meter and client address",
    _U.AUTHENTICATION_REQUIRED: "configure authentication for this client address",
    AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION: "send protocol-version version1 (or omit it)",
}
_INITIATE_FIXES: Final[dict[int, str]] = {
    InitiateError.DLMS_VERSION_TOO_LOW: f"propose DLMS version {DLMS_VERSION}",
    InitiateError.INCOMPATIBLE_CONFORMANCE: "propose the services the meter supports (conformance block)",
    InitiateError.PDU_SIZE_TOO_SHORT: "propose a larger client-max-receive-pdu-size",
    InitiateError.REFUSED_BY_THE_VDE_HANDLER: (
        "the meter refused to open the association (busy, or not allowed for this client address)"
    ),
}


def _describe_name(name: ContextName | MechanismName) -> str:
    if isinstance(name, enum.Enum):
        return f"{_spec_name(name.name)} ({name.object_identifier})"
    return str(name)


def _rejection(
    aare: AssociationResponse,
    service_error: ConfirmedServiceError | None,
    request: AssociationRequest | None,
) -> Exception:
    diagnostic = aare.result_source_diagnostic
    source = (
        "acse-service-user" if isinstance(diagnostic, AcseServiceUserDiagnostic) else "acse-service-provider"
    )
    message = f"association {_spec_name(aare.result.name)}: {source} diagnostic {diagnostic.spec_name}"
    if request is not None:
        message += (
            f"; we asked for context {_describe_name(request.application_context_name)} "
            f"with mechanism {_describe_name(request.mechanism)}"
        )
    if aare.result is AssociationResult.ACCEPTED:
        message += " (the AARE says accepted but carries a ConfirmedServiceError)"
    fix = _FIXES.get(diagnostic)
    auth_class = _AUTHENTICATION_CLASSES.get(diagnostic)
    if auth_class is not None:
        if fix:
            message += f"; fix: {fix}"
        return auth_class(message, result=aare.result, diagnostic=diagnostic)
    if service_error is not None:
        message += f"; xDLMS initiate refused: {service_error.describe()}"
        initiate_class: type[InitiateRejectedError] = InitiateRejectedError
        initiate_fix = None
        if (
            service_error.service is ConfirmedServiceErrorChoice.INITIATE_ERROR
            and service_error.error is ServiceErrorChoice.INITIATE
        ):
            initiate_class = _INITIATE_CLASSES.get(service_error.value, InitiateRejectedError)
            initiate_fix = _INITIATE_FIXES.get(service_error.value)
        if initiate_fix:
            message += f"; fix: {initiate_fix}"
        return initiate_class(message, result=aare.result, diagnostic=diagnostic, service_error=service_error)
    if fix:
        message += f"; fix: {fix}"
    if aare.result is AssociationResult.REJECTED_TRANSIENT:
        message += "; the rejection is transient, a later attempt may succeed"
    rejection_class = _REJECTION_CLASSES.get(diagnostic, AssociationRejectedError)
    return rejection_class(message, result=aare.result, diagnostic=diagnostic)


# --------------------------------------------------------------------------------------------
# Client role
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ClientAssociationSettings:
    """What a client needs to open an association. Secrets are masked in ``repr``.

    ``password`` is the LLS password, or the HLS secret of mechanisms 2, 3, 4 and 6 (used in
    pass 3, never sent in the AARQ). ``system_title`` (8 bytes) becomes the calling-AP-title;
    it is required for ciphered contexts and for HLS-GMAC / HLS-ECDSA. A ``dedicated_key``
    only travels in a ciphered InitiateRequest, so it requires ``ciphered``.
    """

    mechanism: AuthenticationMechanism = AuthenticationMechanism.NONE
    password: bytes | None = None
    system_title: bytes | None = None
    logical_name: bool = True
    ciphered: bool = False
    conformance: Conformance | None = None
    max_receive_pdu_size: int = 0xFFFF
    dlms_version: int = DLMS_VERSION
    quality_of_service: int | None = None
    response_allowed: bool = True
    dedicated_key: bytes | None = None
    user_id: int | None = None

    def __post_init__(self) -> None:
        where = "DLMS association settings"
        if self.mechanism is AuthenticationMechanism.LOW and not self.password:
            raise ConfigError("low level security (LLS) needs a password", where=where)
        if self.system_title is not None and len(self.system_title) != 8:
            raise ConfigError(f"system title must be 8 bytes, got {len(self.system_title)}", where=where)
        needs_title = self.ciphered or self.mechanism in (
            AuthenticationMechanism.HIGH_GMAC,
            AuthenticationMechanism.HIGH_ECDSA,
        )
        if needs_title and self.system_title is None:
            raise ConfigError(
                "a ciphered context, HLS-GMAC and HLS-ECDSA need the client system title", where=where
            )
        if self.dedicated_key is not None:
            if not self.ciphered:
                raise ConfigError("a dedicated key is only sent in a ciphered context", where=where)
            if len(self.dedicated_key) not in (16, 32):
                raise ConfigError(
                    f"dedicated key must be 16 or 32 bytes, got {len(self.dedicated_key)}", where=where
                )
        if not 0 <= self.max_receive_pdu_size <= 0xFFFF:
            raise ConfigError(
                f"max receive PDU size {self.max_receive_pdu_size} is not within 0..65535", where=where
            )
        if not 0 <= self.dlms_version <= 0xFF:
            raise ConfigError(f"DLMS version {self.dlms_version} is not within 0..255", where=where)
        if self.quality_of_service is not None and not -128 <= self.quality_of_service <= 127:
            raise ConfigError(f"quality of service {self.quality_of_service} is not an Integer8", where=where)

    @property
    def application_context_name(self) -> ApplicationContextName:
        return ApplicationContextName.select(logical_name=self.logical_name, ciphered=self.ciphered)

    @property
    def proposed_conformance(self) -> Conformance:
        if self.conformance is not None:
            return self.conformance
        return Conformance.ln_default() if self.logical_name else Conformance.sn_default()

    def __repr__(self) -> str:
        return (
            f"ClientAssociationSettings(mechanism={self.mechanism.name}, "
            f"password={'<hidden>' if self.password else None}, "
            f"system_title={self.system_title.hex() if self.system_title else None}, "
            f"logical_name={self.logical_name}, ciphered={self.ciphered}, "
            f"conformance=0x{int(self.proposed_conformance):06x}, "
            f"max_receive_pdu_size={self.max_receive_pdu_size}, dlms_version={self.dlms_version}, "
            f"quality_of_service={self.quality_of_service}, response_allowed={self.response_allowed}, "
            f"dedicated_key={'<hidden>' if self.dedicated_key else None}, user_id={self.user_id})"
        )


def build_aarq(
    settings: ClientAssociationSettings, *, client_challenge: bytes | None = None
) -> AssociationRequest:
    """Build the AARQ for ``settings``.

    HLS mechanisms (2..7) need ``client_challenge``: 8 to 64 fresh random bytes (CtoS) drawn
    by the caller, e.g. ``secrets.token_bytes(16)``. For a ciphered context the
    user-information returned is the plain InitiateRequest; the session protects it
    (glo-initiateRequest) and replaces it with ``dataclasses.replace(aarq,
    user_information=CipheredUserInformation(...))`` before encoding.
    """
    mechanism = settings.mechanism
    value: AuthenticationValue | None = None
    if mechanism is AuthenticationMechanism.LOW:
        assert settings.password is not None  # noqa: S101 - checked by ClientAssociationSettings
        value = AuthenticationValue(bytes(settings.password))
    elif mechanism.is_high_level:
        if client_challenge is None:
            raise LocalProtocolError(
                f"HLS mechanism {_spec_name(mechanism.name)} needs a client-to-server challenge "
                f"({_CHALLENGE_MIN}..{_CHALLENGE_MAX} random bytes)",
                layer=_LAYER,
            )
        if not _CHALLENGE_MIN <= len(client_challenge) <= _CHALLENGE_MAX:
            raise LocalProtocolError(
                f"client-to-server challenge must be {_CHALLENGE_MIN}..{_CHALLENGE_MAX} bytes, "
                f"got {len(client_challenge)}",
                layer=_LAYER,
            )
        value = AuthenticationValue(bytes(client_challenge))
    elif client_challenge is not None:
        raise LocalProtocolError("a client challenge is only sent with an HLS mechanism", layer=_LAYER)
    authenticated = mechanism is not AuthenticationMechanism.NONE
    return AssociationRequest(
        application_context_name=settings.application_context_name,
        calling_ap_title=settings.system_title,
        calling_ae_invocation_id=settings.user_id,
        sender_acse_requirements=authenticated,
        mechanism_name=mechanism if authenticated else None,
        calling_authentication_value=value,
        user_information=InitiateRequest(
            proposed_conformance=settings.proposed_conformance,
            client_max_receive_pdu_size=settings.max_receive_pdu_size,
            proposed_dlms_version_number=settings.dlms_version,
            proposed_quality_of_service=settings.quality_of_service,
            response_allowed=settings.response_allowed,
            dedicated_key=settings.dedicated_key,
        ),
    )


@dataclass(frozen=True, slots=True, repr=False)
class NegotiatedAssociation:
    """What an accepted AARE established.

    ``authentication_pending`` means HLS passes 3 and 4 (reply_to_HLS_authentication) are
    still to be done before anything else is allowed; they need ``mechanism``,
    ``client_challenge`` (CtoS, from the request), ``server_challenge`` (StoC) and for
    HLS-GMAC ``server_system_title``.
    """

    application_context_name: ApplicationContextName
    mechanism: AuthenticationMechanism
    authentication_pending: bool
    negotiated_conformance: Conformance
    server_max_receive_pdu_size: int
    negotiated_dlms_version_number: int
    vaa_name: int
    negotiated_quality_of_service: int | None = None
    server_system_title: bytes | None = None
    server_challenge: bytes | None = None
    client_challenge: bytes | None = None

    @property
    def logical_name(self) -> bool:
        return self.application_context_name.logical_name

    @property
    def ciphered(self) -> bool:
        return self.application_context_name.ciphered

    def __repr__(self) -> str:
        def hidden(value: bytes | None) -> str:
            return "None" if value is None else f"<{len(value)} bytes>"

        return (
            f"NegotiatedAssociation(context={self.application_context_name.name}, "
            f"mechanism={self.mechanism.name}, authentication_pending={self.authentication_pending}, "
            f"conformance=0x{int(self.negotiated_conformance):06x}, "
            f"server_max_receive_pdu_size={self.server_max_receive_pdu_size}, "
            f"dlms_version={self.negotiated_dlms_version_number}, vaa_name=0x{self.vaa_name:04x}, "
            f"server_system_title={self.server_system_title.hex() if self.server_system_title else None}, "
            f"server_challenge={hidden(self.server_challenge)}, "
            f"client_challenge={hidden(self.client_challenge)})"
        )


def evaluate_aare(
    aare: AssociationResponse,
    request: AssociationRequest | None = None,
    *,
    initiate_response: InitiateResponse | ConfirmedServiceError | None = None,
) -> NegotiatedAssociation:
    """Interpret the AARE the server sent in answer to ``request``.

    Raises an :class:`AssociationAuthenticationError` subclass (authentication diagnostics
    11..14), an :class:`InitiateRejectedError` subclass (the user-information carries a
    ConfirmedServiceError) or another :class:`AssociationRejectedError` subclass (one per
    diagnostic) when the association is not accepted, and
    :class:`~metercom.errors.RemoteProtocolError` when an accepted AARE contradicts itself or
    the request. When the AARE's user-information is ciphered, unprotect it first and pass the
    decoded plaintext as ``initiate_response``.
    """
    info = initiate_response if initiate_response is not None else aare.user_information
    if aare.result is not AssociationResult.ACCEPTED or isinstance(info, ConfirmedServiceError):
        raise _rejection(aare, info if isinstance(info, ConfirmedServiceError) else None, request)
    context = aare.application_context_name
    if not isinstance(context, ApplicationContextName):
        raise RemoteProtocolError(f"AARE accepted an unknown application context {context}", layer=_LAYER)
    if request is not None and request.application_context_name != context:
        raise RemoteProtocolError(
            f"AARE accepted application context {_describe_name(context)} but we asked for "
            f"{_describe_name(request.application_context_name)}",
            layer=_LAYER,
        )
    if isinstance(info, CipheredUserInformation):
        raise LocalProtocolError(
            f"AARE user-information is ciphered ({info.tag.name.lower()}); unprotect it and pass the "
            "plaintext as initiate_response=",
            layer=_LAYER,
        )
    if info is None:
        raise RemoteProtocolError("AARE accepted the association without an InitiateResponse", layer=_LAYER)
    requested = request.mechanism if request is not None else None
    answered = aare.mechanism_name
    if isinstance(requested, AuthenticationMechanism):
        mechanism = requested
        if answered is not None and answered != requested:
            raise RemoteProtocolError(
                f"AARE names mechanism {_describe_name(answered)} "
                f"but we asked for {_describe_name(requested)}",
                layer=_LAYER,
            )
    elif isinstance(answered, AuthenticationMechanism):
        mechanism = answered
    elif answered is None and requested is None:
        mechanism = AuthenticationMechanism.NONE
    else:
        raise RemoteProtocolError("AARE accepted an unknown authentication mechanism", layer=_LAYER)
    pending = aare.authentication_pending
    server_challenge = aare.server_challenge
    if pending:
        if not mechanism.is_high_level:
            raise RemoteProtocolError(
                f"AARE asks for HLS authentication (authentication-required) but the mechanism is "
                f"{_describe_name(mechanism)}",
                layer=_LAYER,
            )
        if server_challenge is None:
            raise RemoteProtocolError(
                "AARE asks for HLS authentication but carries no server-to-client challenge "
                "(responding-authentication-value)",
                layer=_LAYER,
            )
    return NegotiatedAssociation(
        application_context_name=context,
        mechanism=mechanism,
        authentication_pending=pending,
        negotiated_conformance=info.negotiated_conformance,
        server_max_receive_pdu_size=info.server_max_receive_pdu_size,
        negotiated_dlms_version_number=info.negotiated_dlms_version_number,
        vaa_name=info.vaa_name,
        negotiated_quality_of_service=info.negotiated_quality_of_service,
        server_system_title=aare.responding_ap_title,
        server_challenge=server_challenge if mechanism.is_high_level else None,
        client_challenge=request.client_challenge if request is not None else None,
    )


# --------------------------------------------------------------------------------------------
# Server role
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, repr=False)
class ServerAssociationPolicy:
    """What a server (meter, simulator) accepts for one client address. Secrets masked.

    ``application_context_names`` lists the contexts offered, the first one preferred (it is
    named in a rejection). ``min_client_max_receive_pdu_size`` is our choice, not a spec value:
    below 64 bytes no useful block fits (gurux-dlms servers use the same bound).
    """

    application_context_names: tuple[ApplicationContextName, ...] = (ApplicationContextName.LOGICAL_NAME,)
    mechanisms: frozenset[AuthenticationMechanism] = field(
        default_factory=lambda: frozenset({AuthenticationMechanism.NONE})
    )
    lls_password: bytes | None = None
    conformance: Conformance | None = None
    max_receive_pdu_size: int = 1024
    system_title: bytes | None = None
    dlms_version: int = DLMS_VERSION
    min_client_max_receive_pdu_size: int = 64

    def __post_init__(self) -> None:
        where = "DLMS server association policy"
        if not self.application_context_names:
            raise ConfigError("at least one application context must be offered", where=where)
        if AuthenticationMechanism.LOW in self.mechanisms and not self.lls_password:
            raise ConfigError("low level security (LLS) needs a password", where=where)
        if not 0 <= self.max_receive_pdu_size <= 0xFFFF:
            raise ConfigError(
                f"max receive PDU size {self.max_receive_pdu_size} is not within 0..65535", where=where
            )

    def conformance_for(self, context: ApplicationContextName) -> Conformance:
        if self.conformance is not None:
            return self.conformance
        return Conformance.ln_default() if context.logical_name else Conformance.sn_default()

    def __repr__(self) -> str:
        return (
            "ServerAssociationPolicy("
            f"application_context_names={[c.name for c in self.application_context_names]}, "
            f"mechanisms={sorted(m.name for m in self.mechanisms)}, "
            f"lls_password={'<hidden>' if self.lls_password else None}, "
            f"conformance={self.conformance!r}, max_receive_pdu_size={self.max_receive_pdu_size}, "
            f"system_title={self.system_title.hex() if self.system_title else None}, "
            f"dlms_version={self.dlms_version}, "
            f"min_client_max_receive_pdu_size={self.min_client_max_receive_pdu_size})"
        )


def accept_aarq(
    aarq: AssociationRequest,
    policy: ServerAssociationPolicy,
    *,
    server_challenge: bytes | None = None,
    initiate_request: InitiateRequest | None = None,
) -> AssociationResponse:
    """Decide on an AARQ and build the AARE (server role).

    The checks run in this order, the first failure deciding the answer:

    1. protocol-version without version1: rejected-permanent, acse-service-provider
       no-common-acse-version.
    2. application context not offered (or unknown): rejected-permanent,
       application-context-name-not-supported.
    3. ciphered context (or HLS-GMAC / HLS-ECDSA) without calling-AP-title:
       calling-AP-title-not-recognized.
    4. authentication functional unit selected without mechanism-name:
       authentication-mechanism-name-required. Unknown or not offered mechanism:
       authentication-mechanism-name-not-recognised; none asked for while the policy requires
       one: authentication-mechanism-name-required.
    5. LLS with a missing or wrong password (compared in constant time): authentication-failure.
       HLS without a calling-authentication-value of 8..64 bytes: authentication-failure.
    6. user-information: missing, or ciphered in an unciphered context: no-reason-given;
       InitiateRequest refused (DLMS version below the policy's, no common conformance bit,
       client PDU size too small): no-reason-given with a ConfirmedServiceError.
    7. Accepted. HLS mechanisms answer diagnostic authentication-required with responder
       acse-requirements, the mechanism-name and ``server_challenge`` (StoC) as
       responding-authentication-value; the association stays pending until HLS pass 3/4.
       Without authentication or with LLS the AARE carries none of these three fields.

    ``server_challenge``: 8..64 fresh random bytes from the caller; pass one on every call, it
    is used only when an HLS mechanism is accepted. ``initiate_request``: when the AARQ's
    user-information is ciphered, the plaintext InitiateRequest after the security module
    unprotected it. The AARE returned carries a plain InitiateResponse; for a ciphered
    association the session protects it (glo-initiateResponse) before sending.
    """
    preferred = policy.application_context_names[0]

    def reject(
        diagnostic: ResultSourceDiagnostic,
        *,
        context: ApplicationContextName = preferred,
        user_information: ConfirmedServiceError | None = None,
    ) -> AssociationResponse:
        return AssociationResponse(
            application_context_name=context,
            result=AssociationResult.REJECTED_PERMANENT,
            result_source_diagnostic=diagnostic,
            responding_ap_title=policy.system_title,
            user_information=user_information,
        )

    # 1. ACSE protocol version
    if aarq.protocol_version is not None and not aarq.protocol_version & 1:
        return reject(AcseServiceProviderDiagnostic.NO_COMMON_ACSE_VERSION)
    # 2. application context
    context = aarq.application_context_name
    if not isinstance(context, ApplicationContextName) or context not in policy.application_context_names:
        return reject(_U.APPLICATION_CONTEXT_NAME_NOT_SUPPORTED)
    # 3. client system title
    mechanism_name = aarq.mechanism_name
    needs_title = context.ciphered or mechanism_name in (
        AuthenticationMechanism.HIGH_GMAC,
        AuthenticationMechanism.HIGH_ECDSA,
    )
    if needs_title and not aarq.calling_ap_title:
        return reject(_U.CALLING_AP_TITLE_NOT_RECOGNIZED, context=context)
    # 4. mechanism
    if aarq.sender_acse_requirements and mechanism_name is None:
        return reject(_U.AUTHENTICATION_MECHANISM_NAME_REQUIRED, context=context)
    mechanism = aarq.mechanism
    if not isinstance(mechanism, AuthenticationMechanism) or mechanism not in policy.mechanisms:
        if mechanism is AuthenticationMechanism.NONE:
            return reject(_U.AUTHENTICATION_MECHANISM_NAME_REQUIRED, context=context)
        return reject(_U.AUTHENTICATION_MECHANISM_NAME_NOT_RECOGNISED, context=context)
    # 5. credentials
    value = aarq.calling_authentication_value
    if mechanism is AuthenticationMechanism.LOW:
        password = policy.lls_password
        if value is None or password is None or not hmac.compare_digest(value.value, password):
            return reject(_U.AUTHENTICATION_FAILURE, context=context)
    elif mechanism.is_high_level and (
        value is None or not _CHALLENGE_MIN <= len(value.value) <= _CHALLENGE_MAX
    ):
        return reject(_U.AUTHENTICATION_FAILURE, context=context)
    # 6. xDLMS InitiateRequest
    info = aarq.user_information
    if info is None:
        return reject(_U.NO_REASON_GIVEN, context=context)
    if isinstance(info, CipheredUserInformation):
        if not context.ciphered:
            return reject(_U.NO_REASON_GIVEN, context=context)
        if initiate_request is None:
            raise LocalProtocolError(
                f"AARQ user-information is ciphered ({info.tag.name.lower()}); unprotect it and pass "
                "the plaintext as initiate_request=",
                layer=_LAYER,
            )
        info = initiate_request
    supported = policy.conformance_for(context)
    negotiated = Conformance(int(info.proposed_conformance) & int(supported))
    initiate_error: int | None = None
    if info.proposed_dlms_version_number < policy.dlms_version:
        initiate_error = InitiateError.DLMS_VERSION_TOO_LOW
    elif not negotiated:
        initiate_error = InitiateError.INCOMPATIBLE_CONFORMANCE
    elif info.client_max_receive_pdu_size < policy.min_client_max_receive_pdu_size:
        initiate_error = InitiateError.PDU_SIZE_TOO_SHORT
    if initiate_error is not None:
        error = ConfirmedServiceError(
            ConfirmedServiceErrorChoice.INITIATE_ERROR, ServiceErrorChoice.INITIATE, initiate_error
        )
        return reject(_U.NO_REASON_GIVEN, context=context, user_information=error)
    # 7. accepted
    response = InitiateResponse(
        negotiated_conformance=negotiated,
        server_max_receive_pdu_size=policy.max_receive_pdu_size,
        vaa_name=VAA_NAME_LN if context.logical_name else VAA_NAME_SN,
        negotiated_dlms_version_number=policy.dlms_version,
    )
    # Only HLS answers with responder-acse-requirements, mechanism-name and the StoC challenge;
    # an LLS AARE looks like an unauthenticated one (as in the Green Book examples and the
    # peers), the password having been checked already.
    authenticated = mechanism.is_high_level
    answer: AuthenticationValue | None = None
    diagnostic = _U.NULL
    if authenticated:
        if server_challenge is None or not _CHALLENGE_MIN <= len(server_challenge) <= _CHALLENGE_MAX:
            raise LocalProtocolError(
                f"HLS needs a server-to-client challenge of {_CHALLENGE_MIN}..{_CHALLENGE_MAX} random bytes",
                layer=_LAYER,
            )
        answer = AuthenticationValue(bytes(server_challenge))
        diagnostic = _U.AUTHENTICATION_REQUIRED
    return AssociationResponse(
        application_context_name=context,
        result=AssociationResult.ACCEPTED,
        result_source_diagnostic=diagnostic,
        responding_ap_title=policy.system_title,
        responder_acse_requirements=authenticated,
        mechanism_name=mechanism if authenticated else None,
        responding_authentication_value=answer,
        user_information=response,
    )
