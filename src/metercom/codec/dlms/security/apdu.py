"""Framing of ciphered xDLMS APDUs (IEC 62056-5-3 / Green Book: the ``XDLMS-APDU`` ASN.1 module and
"Protecting xDLMS APDUs").

Rule: framing only. These types carry the *ciphered content* (SC || IC || information, see
:mod:`.protection`) untouched; they never decide on keys or counters. Every length is an A-XDR
length (``encode_length``/``decode_length``), so contents above 127, 255 and 65,535 bytes use
the long forms ``81 xx``, ``82 xx xx``, ``83 xx xx xx``. Parsers are bounded: each length is
checked against the bytes available before anything is sliced, and the whole input must be
consumed.

The three framings:

* service-specific ciphering, one tag per service (``glo-`` with the global key, ``ded-`` with
  the dedicated key)::

      tag || length || ciphered content

  ========================  ====  ====  ====
  service (unciphered tag)  tag   glo   ded
  ========================  ====  ====  ====
  initiateRequest           0x01  0x21  0x41
  readRequest               0x05  0x25  0x45
  writeRequest              0x06  0x26  0x46
  initiateResponse          0x08  0x28  0x48
  readResponse              0x0C  0x2C  0x4C
  writeResponse             0x0D  0x2D  0x4D
  confirmedServiceError     0x0E  0x2E  0x4E
  unconfirmedWriteRequest   0x16  0x36  0x56
  informationReportRequest  0x18  0x38  0x58
  get-request               0xC0  0xC8  0xD0
  set-request               0xC1  0xC9  0xD1
  event-notification-req.   0xC2  0xCA  0xD2
  action-request            0xC3  0xCB  0xD3
  get-response              0xC4  0xCC  0xD4
  set-response              0xC5  0xCD  0xD5
  action-response           0xC7  0xCF  0xD7
  ========================  ====  ====  ====

  (the table of the Green Book ``XDLMS-APDU`` CHOICE, cross-checked against the tag lists of
  gurux-dlms ``Command`` and of published ASN.1 transcriptions). data-notification (0x0F) and
  the other newer services have no service-specific form; they travel in general-glo-ciphering.

* general-glo-ciphering (0xDB) and general-ded-ciphering (0xDC)::

      tag || system-title (octet string) || ciphered content (octet string)

  The system title may be empty (a Pietro Fiorentini meter omits it on its local port); the
  receiver then needs it out of band.

* general-ciphering (0xDD)::

      tag || transaction-id || originator-system-title || recipient-system-title || date-time
          || other-information (five octet strings) || key-info OPTIONAL || ciphered content

  key-info is a CHOICE of identified-key [0] (key-id), wrapped-key [1] (kek-id, key-ciphered-data)
  and agreed-key [2] (key-parameters, key-ciphered-data). Only the framing is implemented: the
  suite 1/2 key agreement and the extended AAD it needs are not (see
  :meth:`SecurityContext.decode_apdu`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import TypeAlias, TypeVar

from metercom.codec.dlms.axdr import decode_length, encode_length
from metercom.errors import LocalProtocolError, RemoteProtocolError

from .control import SecurityControl
from .protection import HEADER_LENGTH

__all__ = [
    "AgreedKey",
    "CipheredApdu",
    "CipheredApduTag",
    "GeneralCipheredApdu",
    "GeneralCiphering",
    "IdentifiedKey",
    "KeyInfo",
    "ServiceCipheredApdu",
    "ciphered_tag_for",
    "is_ciphered_apdu",
    "parse_ciphered_apdu",
]

_LAYER = "dlms-security"
_T = TypeVar("_T", bound="ServiceCipheredApdu | GeneralCipheredApdu | GeneralCiphering")


class CipheredApduTag(enum.IntEnum):
    """Tags of the ciphered xDLMS APDUs (the ``XDLMS-APDU`` CHOICE of IEC 62056-5-3)."""

    GLO_INITIATE_REQUEST = 0x21
    GLO_READ_REQUEST = 0x25
    GLO_WRITE_REQUEST = 0x26
    GLO_INITIATE_RESPONSE = 0x28
    GLO_READ_RESPONSE = 0x2C
    GLO_WRITE_RESPONSE = 0x2D
    GLO_CONFIRMED_SERVICE_ERROR = 0x2E
    GLO_UNCONFIRMED_WRITE_REQUEST = 0x36
    GLO_INFORMATION_REPORT_REQUEST = 0x38
    DED_INITIATE_REQUEST = 0x41
    DED_READ_REQUEST = 0x45
    DED_WRITE_REQUEST = 0x46
    DED_INITIATE_RESPONSE = 0x48
    DED_READ_RESPONSE = 0x4C
    DED_WRITE_RESPONSE = 0x4D
    DED_CONFIRMED_SERVICE_ERROR = 0x4E
    DED_UNCONFIRMED_WRITE_REQUEST = 0x56
    DED_INFORMATION_REPORT_REQUEST = 0x58
    GLO_GET_REQUEST = 0xC8
    GLO_SET_REQUEST = 0xC9
    GLO_EVENT_NOTIFICATION_REQUEST = 0xCA
    GLO_ACTION_REQUEST = 0xCB
    GLO_GET_RESPONSE = 0xCC
    GLO_SET_RESPONSE = 0xCD
    GLO_ACTION_RESPONSE = 0xCF
    DED_GET_REQUEST = 0xD0
    DED_SET_REQUEST = 0xD1
    DED_EVENT_NOTIFICATION_REQUEST = 0xD2
    DED_ACTION_REQUEST = 0xD3
    DED_GET_RESPONSE = 0xD4
    DED_SET_RESPONSE = 0xD5
    DED_ACTION_RESPONSE = 0xD7
    GENERAL_GLO_CIPHERING = 0xDB
    GENERAL_DED_CIPHERING = 0xDC
    GENERAL_CIPHERING = 0xDD


# unciphered tag -> (glo- tag, ded- tag)
_SERVICE_TABLE: dict[int, tuple[CipheredApduTag, CipheredApduTag]] = {
    0x01: (CipheredApduTag.GLO_INITIATE_REQUEST, CipheredApduTag.DED_INITIATE_REQUEST),
    0x05: (CipheredApduTag.GLO_READ_REQUEST, CipheredApduTag.DED_READ_REQUEST),
    0x06: (CipheredApduTag.GLO_WRITE_REQUEST, CipheredApduTag.DED_WRITE_REQUEST),
    0x08: (CipheredApduTag.GLO_INITIATE_RESPONSE, CipheredApduTag.DED_INITIATE_RESPONSE),
    0x0C: (CipheredApduTag.GLO_READ_RESPONSE, CipheredApduTag.DED_READ_RESPONSE),
    0x0D: (CipheredApduTag.GLO_WRITE_RESPONSE, CipheredApduTag.DED_WRITE_RESPONSE),
    0x0E: (CipheredApduTag.GLO_CONFIRMED_SERVICE_ERROR, CipheredApduTag.DED_CONFIRMED_SERVICE_ERROR),
    0x16: (CipheredApduTag.GLO_UNCONFIRMED_WRITE_REQUEST, CipheredApduTag.DED_UNCONFIRMED_WRITE_REQUEST),
    0x18: (CipheredApduTag.GLO_INFORMATION_REPORT_REQUEST, CipheredApduTag.DED_INFORMATION_REPORT_REQUEST),
    0xC0: (CipheredApduTag.GLO_GET_REQUEST, CipheredApduTag.DED_GET_REQUEST),
    0xC1: (CipheredApduTag.GLO_SET_REQUEST, CipheredApduTag.DED_SET_REQUEST),
    0xC2: (CipheredApduTag.GLO_EVENT_NOTIFICATION_REQUEST, CipheredApduTag.DED_EVENT_NOTIFICATION_REQUEST),
    0xC3: (CipheredApduTag.GLO_ACTION_REQUEST, CipheredApduTag.DED_ACTION_REQUEST),
    0xC4: (CipheredApduTag.GLO_GET_RESPONSE, CipheredApduTag.DED_GET_RESPONSE),
    0xC5: (CipheredApduTag.GLO_SET_RESPONSE, CipheredApduTag.DED_SET_RESPONSE),
    0xC7: (CipheredApduTag.GLO_ACTION_RESPONSE, CipheredApduTag.DED_ACTION_RESPONSE),
}
# ciphered tag -> (unciphered tag, dedicated)
_SERVICE_REVERSE: dict[int, tuple[int, bool]] = {}
for _plain, (_glo, _ded) in _SERVICE_TABLE.items():
    _SERVICE_REVERSE[_glo] = (_plain, False)
    _SERVICE_REVERSE[_ded] = (_plain, True)
del _plain, _glo, _ded

_GENERAL_TAGS = frozenset(
    (
        CipheredApduTag.GENERAL_GLO_CIPHERING,
        CipheredApduTag.GENERAL_DED_CIPHERING,
        CipheredApduTag.GENERAL_CIPHERING,
    )
)


def ciphered_tag_for(plain_tag: int, *, dedicated: bool = False) -> CipheredApduTag | None:
    """The service-specific ciphered tag (glo- or ded-) for an unciphered APDU tag, or ``None``."""
    pair = _SERVICE_TABLE.get(plain_tag)
    if pair is None:
        return None
    return pair[1] if dedicated else pair[0]


def is_ciphered_apdu(data: bytes | memoryview) -> bool:
    """Whether ``data`` starts with the tag of a ciphered APDU (any of the three framings)."""
    return len(data) > 0 and (data[0] in _SERVICE_REVERSE or data[0] in _GENERAL_TAGS)


class _CipheredContent:
    """Accessors shared by the framings for SC || IC || information."""

    __slots__ = ()
    content: bytes

    @property
    def security_control(self) -> SecurityControl:
        return SecurityControl.from_byte(self.content[0])

    @property
    def invocation_counter(self) -> int:
        return int.from_bytes(self.content[1:HEADER_LENGTH], "big")

    @property
    def information(self) -> bytes:
        """Ciphertext and tag (or plaintext and tag) after SC and IC."""
        return self.content[HEADER_LENGTH:]


def _check_content(content: bytes) -> None:
    if len(content) < HEADER_LENGTH:
        raise LocalProtocolError(
            f"ciphered content must hold at least SC and IC ({HEADER_LENGTH} bytes), got {len(content)}",
            layer=_LAYER,
        )


def _check_system_title(system_title: bytes, what: str) -> None:
    if len(system_title) not in (0, 8):
        raise LocalProtocolError(f"{what} must be 8 bytes (or empty), got {len(system_title)}", layer=_LAYER)


def _octet_string(value: bytes) -> bytes:
    return encode_length(len(value)) + value


@dataclass(frozen=True, slots=True)
class ServiceCipheredApdu(_CipheredContent):
    """A glo-xxx or ded-xxx APDU: ``tag || length || ciphered content``."""

    tag: CipheredApduTag
    content: bytes

    def __post_init__(self) -> None:
        if self.tag not in _SERVICE_REVERSE:
            raise LocalProtocolError(f"0x{self.tag:02x} is not a service-specific ciphered tag", layer=_LAYER)
        _check_content(self.content)

    @property
    def dedicated(self) -> bool:
        """True for the ded- variants (dedicated key)."""
        return _SERVICE_REVERSE[self.tag][1]

    @property
    def plain_tag(self) -> int:
        """Tag of the unciphered APDU this one must contain (0xC0 for glo-get-request...)."""
        return _SERVICE_REVERSE[self.tag][0]

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ServiceCipheredApdu:
        """Parse a complete APDU of this framing; :class:`RemoteProtocolError` otherwise."""
        return _expect(cls, parse_ciphered_apdu(data))

    def to_bytes(self) -> bytes:
        return bytes((self.tag,)) + encode_length(len(self.content)) + self.content


@dataclass(frozen=True, slots=True)
class GeneralCipheredApdu(_CipheredContent):
    """general-glo-ciphering (0xDB) or general-ded-ciphering (0xDC).

    ``system_title`` is the sender's; empty when the sender omitted it (Pietro Fiorentini quirk).
    """

    dedicated: bool
    system_title: bytes
    content: bytes

    def __post_init__(self) -> None:
        _check_system_title(self.system_title, "system title")
        _check_content(self.content)

    @property
    def tag(self) -> CipheredApduTag:
        return (
            CipheredApduTag.GENERAL_DED_CIPHERING if self.dedicated else CipheredApduTag.GENERAL_GLO_CIPHERING
        )

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> GeneralCipheredApdu:
        """Parse a complete APDU of this framing; :class:`RemoteProtocolError` otherwise."""
        return _expect(cls, parse_ciphered_apdu(data))

    def to_bytes(self) -> bytes:
        return b"".join((bytes((self.tag,)), _octet_string(self.system_title), _octet_string(self.content)))


@dataclass(frozen=True, slots=True)
class IdentifiedKey:
    """key-info identified-key [0]: 0 = global unicast encryption key, 1 = global broadcast encryption key."""

    key_id: int


@dataclass(frozen=True, slots=True)
class WrappedKey:
    """key-info wrapped-key [1]: the key wrapped (RFC 3394) with the KEK ``kek_id`` (0 = master key)."""

    kek_id: int
    key_ciphered_data: bytes


@dataclass(frozen=True, slots=True)
class AgreedKey:
    """key-info agreed-key [2]: key-agreement parameters and data (suites 1 and 2)."""

    key_parameters: bytes
    key_ciphered_data: bytes


KeyInfo: TypeAlias = IdentifiedKey | WrappedKey | AgreedKey


def _encode_key_info(key_info: KeyInfo | None) -> bytes:
    if key_info is None:
        return b"\x00"
    if isinstance(key_info, IdentifiedKey):
        return bytes((1, 0, key_info.key_id))
    if isinstance(key_info, WrappedKey):
        return bytes((1, 1, key_info.kek_id)) + _octet_string(key_info.key_ciphered_data)
    return b"\x01\x02" + _octet_string(key_info.key_parameters) + _octet_string(key_info.key_ciphered_data)


@dataclass(frozen=True, slots=True)
class GeneralCiphering(_CipheredContent):
    """general-ciphering (0xDD): framing only (see the module docstring)."""

    transaction_id: bytes
    originator_system_title: bytes
    recipient_system_title: bytes
    date_time: bytes
    other_information: bytes
    key_info: KeyInfo | None
    content: bytes

    def __post_init__(self) -> None:
        _check_system_title(self.originator_system_title, "originator system title")
        _check_system_title(self.recipient_system_title, "recipient system title")
        _check_content(self.content)

    @property
    def tag(self) -> CipheredApduTag:
        return CipheredApduTag.GENERAL_CIPHERING

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> GeneralCiphering:
        """Parse a complete APDU of this framing; :class:`RemoteProtocolError` otherwise."""
        return _expect(cls, parse_ciphered_apdu(data))

    def to_bytes(self) -> bytes:
        return b"".join(
            (
                bytes((self.tag,)),
                _octet_string(self.transaction_id),
                _octet_string(self.originator_system_title),
                _octet_string(self.recipient_system_title),
                _octet_string(self.date_time),
                _octet_string(self.other_information),
                _encode_key_info(self.key_info),
                _octet_string(self.content),
            )
        )


CipheredApdu: TypeAlias = ServiceCipheredApdu | GeneralCipheredApdu | GeneralCiphering


class _Reader:
    """Bounded cursor over a received APDU; every failure is a RemoteProtocolError."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def byte(self, what: str) -> int:
        if self.pos >= len(self.data):
            raise RemoteProtocolError(f"input ended where {what} was expected", layer=_LAYER, data=self.data)
        value = self.data[self.pos]
        self.pos += 1
        return value

    def octet_string(self, what: str) -> bytes:
        length, start = decode_length(self.data, self.pos)
        end = start + length
        if end > len(self.data):
            raise RemoteProtocolError(
                f"{what}: {length} bytes announced, only {len(self.data) - start} available",
                layer=_LAYER,
                data=self.data,
            )
        self.pos = end
        return self.data[start:end]

    def system_title(self, what: str) -> bytes:
        value = self.octet_string(what)
        if len(value) not in (0, 8):
            raise RemoteProtocolError(f"{what} must be 8 bytes (or empty), got {len(value)}", layer=_LAYER)
        return value

    def content(self) -> bytes:
        value = self.octet_string("ciphered content")
        if len(value) < HEADER_LENGTH:
            raise RemoteProtocolError(
                f"ciphered content of {len(value)} bytes cannot hold SC and IC ({HEADER_LENGTH} bytes)",
                layer=_LAYER,
                data=self.data,
            )
        return value

    def end(self) -> None:
        if self.pos != len(self.data):
            raise RemoteProtocolError(
                f"{len(self.data) - self.pos} unexpected bytes after the ciphered APDU",
                layer=_LAYER,
                data=self.data[self.pos :],
            )


def _parse_key_info(reader: _Reader) -> KeyInfo | None:
    present = reader.byte("key-info presence flag")
    if present == 0:
        return None
    if present != 1:
        raise RemoteProtocolError(f"key-info presence flag must be 0 or 1, got {present}", layer=_LAYER)
    choice = reader.byte("key-info choice")
    if choice == 0:
        return IdentifiedKey(reader.byte("key-id"))
    if choice == 1:
        kek_id = reader.byte("kek-id")
        return WrappedKey(kek_id, reader.octet_string("key-ciphered-data"))
    if choice == 2:
        parameters = reader.octet_string("key-parameters")
        return AgreedKey(parameters, reader.octet_string("key-ciphered-data"))
    raise RemoteProtocolError(f"key-info choice must be 0, 1 or 2, got {choice}", layer=_LAYER)


def _expect(cls: type[_T], apdu: CipheredApdu) -> _T:
    if not isinstance(apdu, cls):
        raise RemoteProtocolError(f"expected {cls.__name__}, got {apdu.tag.name}", layer=_LAYER)
    return apdu


_TAG_MEMBERS: dict[int, CipheredApduTag] = {int(member): member for member in CipheredApduTag}


def parse_ciphered_apdu(data: bytes | bytearray | memoryview) -> CipheredApdu:
    """Parse one complete ciphered APDU (any framing). Raises only :class:`RemoteProtocolError`."""
    raw = data if type(data) is bytes else bytes(data)
    reader = _Reader(raw)
    tag = reader.byte("APDU tag")
    result: CipheredApdu
    if tag in _SERVICE_REVERSE:
        result = ServiceCipheredApdu(_TAG_MEMBERS[tag], reader.content())
    elif tag in (CipheredApduTag.GENERAL_GLO_CIPHERING, CipheredApduTag.GENERAL_DED_CIPHERING):
        system_title = reader.system_title("system title")
        result = GeneralCipheredApdu(
            tag == CipheredApduTag.GENERAL_DED_CIPHERING, system_title, reader.content()
        )
    elif tag == CipheredApduTag.GENERAL_CIPHERING:
        transaction_id = reader.octet_string("transaction-id")
        originator = reader.system_title("originator-system-title")
        recipient = reader.system_title("recipient-system-title")
        date_time = reader.octet_string("date-time")
        other = reader.octet_string("other-information")
        key_info = _parse_key_info(reader)
        result = GeneralCiphering(
            transaction_id, originator, recipient, date_time, other, key_info, reader.content()
        )
    else:
        raise RemoteProtocolError(f"0x{tag:02x} is not a ciphered APDU tag", layer=_LAYER, data=raw[:16])
    reader.end()
    return result
