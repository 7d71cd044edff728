"""Enumerated attribute values of the COSEM interface classes (DLMS UA 1000-1 "Blue Book").

Rule: one ``IntEnum`` per Blue Book enumeration, named as the attribute it belongs to, member
names as the Blue Book writes them. The class tables (:mod:`.classes`) reference these enums,
so a value is named the same way in validation messages, in device profiles (``sort_method =
"fifo"``) and in client code. Values outside an enum (manufacturer ranges, later editions) are
kept as plain ``int`` by the interpretation helpers unless the table marks the enum closed.
"""

from __future__ import annotations

import enum

__all__ = [
    "AssociationStatus",
    "AuthenticationMechanism",
    "BaudRate",
    "CertificateEntity",
    "CertificateType",
    "ClockBase",
    "ControlMode",
    "ControlState",
    "IecProtocolMode",
    "ImageTransferStatus",
    "KeyId",
    "PushMessageType",
    "PushOperationMethod",
    "ResponseTime",
    "ScriptServiceId",
    "SecurityPolicy",
    "SecurityPolicyFlags",
    "SecuritySuite",
    "SingleActionScheduleType",
    "SortMethod",
    "TransportService",
]


class ClockBase(enum.IntEnum):
    """Clock attribute 9 ``clock_base``."""

    NOT_DEFINED = 0
    INTERNAL_CRYSTAL = 1
    MAINS_50_HZ = 2
    MAINS_60_HZ = 3
    GPS = 4
    RADIO_CONTROLLED = 5


class SortMethod(enum.IntEnum):
    """Profile generic attribute 5 ``sort_method``."""

    FIFO = 1
    LIFO = 2
    LARGEST = 3
    SMALLEST = 4
    NEAREST_TO_ZERO = 5
    FARTHEST_FROM_ZERO = 6


class ControlState(enum.IntEnum):
    """Disconnect control attribute 3 ``control_state`` (Blue Book table "Disconnect control
    states"): output_state is TRUE only in ``CONNECTED``."""

    DISCONNECTED = 0
    CONNECTED = 1
    READY_FOR_RECONNECTION = 2


class ControlMode(enum.IntEnum):
    """Disconnect control attribute 4 ``control_mode``: which triggers may move the state
    (see :mod:`.disconnect` for the transitions each mode allows)."""

    NONE = 0
    MODE_1 = 1
    MODE_2 = 2
    MODE_3 = 3
    MODE_4 = 4
    MODE_5 = 5
    MODE_6 = 6


class ImageTransferStatus(enum.IntEnum):
    """Image transfer attribute 6 ``image_transfer_status``."""

    NOT_INITIATED = 0
    INITIATED = 1
    VERIFICATION_INITIATED = 2
    VERIFICATION_SUCCESSFUL = 3
    VERIFICATION_FAILED = 4
    ACTIVATION_INITIATED = 5
    ACTIVATION_SUCCESSFUL = 6
    ACTIVATION_FAILED = 7


class AssociationStatus(enum.IntEnum):
    """Association LN attribute 8 ``association_status``."""

    NON_ASSOCIATED = 0
    ASSOCIATION_PENDING = 1
    ASSOCIATED = 2


class AuthenticationMechanism(enum.IntEnum):
    """Authentication mechanism ids (Green Book: ``mechanism_id`` of the mechanism name OID
    2.16.756.5.8.2.x), as named in device profiles (``authentication = "high-gmac"``)."""

    NONE = 0
    LOW = 1
    HIGH = 2
    HIGH_MD5 = 3
    HIGH_SHA1 = 4
    HIGH_GMAC = 5
    HIGH_SHA256 = 6
    HIGH_ECDSA = 7


class SecurityPolicy(enum.IntEnum):
    """Security setup version 0 attribute 2 ``security_policy``."""

    NOTHING = 0
    ALL_MESSAGES_AUTHENTICATED = 1
    ALL_MESSAGES_ENCRYPTED = 2
    ALL_MESSAGES_AUTHENTICATED_AND_ENCRYPTED = 3


class SecurityPolicyFlags(enum.IntFlag):
    """Security setup version 1 attribute 2 ``security_policy``: a bit map (bits 0 and 1 unused)."""

    NOTHING = 0
    AUTHENTICATED_REQUEST = 0x04
    ENCRYPTED_REQUEST = 0x08
    DIGITALLY_SIGNED_REQUEST = 0x10
    AUTHENTICATED_RESPONSE = 0x20
    ENCRYPTED_RESPONSE = 0x40
    DIGITALLY_SIGNED_RESPONSE = 0x80


class SecuritySuite(enum.IntEnum):
    """Security setup attribute 3 ``security_suite`` (Green Book security suites)."""

    AES_GCM_128 = 0
    ECDH_ECDSA_AES_GCM_128_SHA_256 = 1
    ECDH_ECDSA_AES_GCM_256_SHA_384 = 2


class KeyId(enum.IntEnum):
    """``key_id`` of Security setup ``global_key_transfer``/``key_transfer``."""

    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1
    AUTHENTICATION_KEY = 2
    MASTER_KEY = 3


class CertificateEntity(enum.IntEnum):
    """``certificate_entity`` of Security setup version 1 ``certificates``."""

    SERVER = 0
    CLIENT = 1
    CERTIFICATION_AUTHORITY = 2
    OTHER = 3


class CertificateType(enum.IntEnum):
    """``certificate_type`` of Security setup version 1 ``certificates``."""

    DIGITAL_SIGNATURE = 0
    KEY_AGREEMENT = 1
    TLS = 2
    OTHER = 3


class TransportService(enum.IntEnum):
    """Push setup ``send_destination_and_method.transport_service`` (200..255 manufacturer)."""

    TCP = 0
    UDP = 1
    FTP = 2
    SMTP = 3
    SMS = 4
    HDLC = 5
    M_BUS = 6
    ZIGBEE = 7
    DLMS_GATEWAY = 8


class PushMessageType(enum.IntEnum):
    """Push setup ``send_destination_and_method.message`` (128..255 manufacturer)."""

    A_XDR_ENCODED_APDU = 0
    XML_ENCODED_APDU = 1


class PushOperationMethod(enum.IntEnum):
    """Push setup version 2 attribute 11 ``push_operation_method``."""

    UNCONFIRMED_RETRY_ON_FAILURE = 0
    UNCONFIRMED_RETRY_ON_MISSING_CONFIRMATION = 1
    CONFIRMED = 2


class SingleActionScheduleType(enum.IntEnum):
    """Single action schedule attribute 3 ``type``: how ``execution_time`` is read.

    1: one entry, date may use wildcards; 2: n entries, same time, dates all different;
    3: n entries, same time, wildcards in date allowed; 4: n entries, different times, same
    date; 5: n entries, different times, wildcards allowed.
    """

    TYPE_1 = 1
    TYPE_2 = 2
    TYPE_3 = 3
    TYPE_4 = 4
    TYPE_5 = 5


class ScriptServiceId(enum.IntEnum):
    """``service_id`` of a Script table action."""

    WRITE_ATTRIBUTE = 1
    EXECUTE_METHOD = 2


class IecProtocolMode(enum.IntEnum):
    """IEC local port setup attribute 2 ``default_mode``."""

    IEC_62056_21 = 0
    DLMS_COSEM = 1
    NOT_SPECIFIED = 2


class BaudRate(enum.IntEnum):
    """Baud-rate enum of IEC local port setup (attributes 3, 4) and IEC HDLC setup (attribute 2)."""

    BAUD_300 = 0
    BAUD_600 = 1
    BAUD_1200 = 2
    BAUD_2400 = 3
    BAUD_4800 = 4
    BAUD_9600 = 5
    BAUD_19200 = 6
    BAUD_38400 = 7
    BAUD_57600 = 8
    BAUD_115200 = 9

    @property
    def baud(self) -> int:
        """The rate in bit/s."""
        return int(self.name.removeprefix("BAUD_"))


class ResponseTime(enum.IntEnum):
    """IEC local port setup attribute 5 ``response_time`` (minimum t_r)."""

    MS_20 = 0
    MS_200 = 1
