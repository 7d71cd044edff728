"""Security setup (class 64) and Push setup (class 40) attributes as Python values.

Rule: like :mod:`.clock`, each ``decode_*`` function checks the given attribute values
against the table of the requested class version, then returns a frozen dataclass of typed
fields (``None`` for attributes not given). Interpretation depends on the version:

* Security setup version 0: ``security_policy`` is the enum :class:`SecurityPolicy` (0 nothing,
  1 authenticated, 2 encrypted, 3 both); version 1: a bit map :class:`SecurityPolicyFlags`
  (authenticated/encrypted/signed request and response, bits 2..7). ``security_suite`` is
  :class:`SecuritySuite` (0 AES-GCM-128, 1 ECDH-ECDSA-AES-GCM-128-SHA-256, 2 ...-256-SHA-384).
  Version 1 adds ``certificates`` (:class:`CertificateInfo`).
* Push setup version 0: ``push_object_list`` elements are capture object definitions and
  ``repetition_delay`` is seconds; version 2 adds a restriction and columns to each element,
  turns ``repetition_delay`` into (min, exponent, max) and adds port reference, client SAP,
  protection parameters, operation method and confirmation attributes.

Enumerated values outside the enums (manufacturer ranges) are kept as ``int``. System titles
are 8 bytes in the Green Book, but are kept as sent (some meters send an empty one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from metercom.errors import InputError
from metercom.model.cosem.classes import lookup
from metercom.model.cosem.enums import (
    CertificateEntity,
    CertificateType,
    PushMessageType,
    PushOperationMethod,
    SecurityPolicy,
    SecurityPolicyFlags,
    SecuritySuite,
    TransportService,
)
from metercom.model.cosem.profile_generic import CaptureObject
from metercom.model.cosem.validate import AttributeValues, check_attributes
from metercom.model.dlms_data import CosemDateTime, Data, DlmsType
from metercom.model.obis import Obis

__all__ = [
    "CertificateInfo",
    "PushDestination",
    "PushObject",
    "PushSetupAttributes",
    "RepetitionDelay",
    "SecuritySetupAttributes",
    "decode_push_setup",
    "decode_security_setup",
    "security_policy",
]

E = TypeVar("E", bound=enum.IntEnum)


def _member(enum_type: type[E], value: int) -> E | int:
    try:
        return enum_type(value)
    except ValueError:
        return value


def security_policy(value: int, version: int) -> SecurityPolicy | SecurityPolicyFlags:
    """Interpret a ``security_policy`` value for a Security setup of ``version``.

    Raises :class:`InputError` for a version 0 value outside 0..3, or a version 1 value using
    the unused bits 0 and 1.
    """
    if version == 0:
        try:
            return SecurityPolicy(value)
        except ValueError:
            raise InputError(f"security_policy {value} is not a version 0 SecurityPolicy (0..3)") from None
    if value & 0x03 or not 0 <= value <= 0xFF:
        raise InputError(
            f"security_policy 0x{value:02X} uses bits not defined for version 1 (only bits 2..7)"
        )
    return SecurityPolicyFlags(value)


class CertificateInfo(NamedTuple):
    """One ``certificate_info`` of Security setup version 1."""

    entity: CertificateEntity | int
    type: CertificateType | int
    serial_number: bytes
    issuer: bytes
    subject: bytes
    subject_alt_name: bytes


@dataclass(frozen=True, slots=True)
class SecuritySetupAttributes:
    """Decoded Security setup attributes (``None`` = not given)."""

    version: int
    security_policy: SecurityPolicy | SecurityPolicyFlags | None = None
    security_suite: SecuritySuite | int | None = None
    client_system_title: bytes | None = None
    server_system_title: bytes | None = None
    certificates: tuple[CertificateInfo, ...] | None = None

    @property
    def authenticated(self) -> bool | None:
        """True if requests must be authenticated (None if the policy was not read)."""
        policy = self.security_policy
        if policy is None:
            return None
        if isinstance(policy, SecurityPolicyFlags):
            return bool(policy & SecurityPolicyFlags.AUTHENTICATED_REQUEST)
        return policy in (
            SecurityPolicy.ALL_MESSAGES_AUTHENTICATED,
            SecurityPolicy.ALL_MESSAGES_AUTHENTICATED_AND_ENCRYPTED,
        )

    @property
    def encrypted(self) -> bool | None:
        """True if requests must be encrypted (None if the policy was not read)."""
        policy = self.security_policy
        if policy is None:
            return None
        if isinstance(policy, SecurityPolicyFlags):
            return bool(policy & SecurityPolicyFlags.ENCRYPTED_REQUEST)
        return policy in (
            SecurityPolicy.ALL_MESSAGES_ENCRYPTED,
            SecurityPolicy.ALL_MESSAGES_AUTHENTICATED_AND_ENCRYPTED,
        )


def decode_security_setup(values: AttributeValues, *, version: int = 1) -> SecuritySetupAttributes:
    """Decode Security setup attribute values (by index or name) of that class version."""
    ic = lookup(64, version)
    checked = check_attributes(ic, values)
    policy = checked.get(2)
    suite = checked.get(3)
    certificates = checked.get(6)
    return SecuritySetupAttributes(
        version=version,
        security_policy=None if policy is None else security_policy(policy.as_int(), version),
        security_suite=None if suite is None else _member(SecuritySuite, suite.as_int()),
        client_system_title=None if 4 not in checked else checked[4].as_bytes(),
        server_system_title=None if 5 not in checked else checked[5].as_bytes(),
        certificates=None
        if certificates is None
        else tuple(
            CertificateInfo(
                _member(CertificateEntity, c[0].as_int()),
                _member(CertificateType, c[1].as_int()),
                c[2].as_bytes(),
                c[3].as_bytes(),
                c[4].as_bytes(),
                c[5].as_bytes(),
            )
            for c in (item.as_items() for item in certificates.as_items())
        ),
    )


class PushDestination(NamedTuple):
    """``send_destination_and_method``: transport service, destination (``b"10.0.0.1:4059"``), message."""

    transport_service: TransportService | int
    destination: bytes
    message: PushMessageType | int


class RepetitionDelay(NamedTuple):
    """Push setup version 2 ``repetition_delay``: delay_n = min(min * exponent^(n-1) ... , max), seconds."""

    minimum: int
    exponent: int
    maximum: int


class PushObject(NamedTuple):
    """One element of ``push_object_list``; version 2 adds ``restriction`` and ``columns``."""

    capture: CaptureObject
    restriction: Data | None = None
    columns: tuple[CaptureObject, ...] = ()


@dataclass(frozen=True, slots=True)
class PushSetupAttributes:
    """Decoded Push setup attributes (``None`` = not given)."""

    version: int
    push_object_list: tuple[PushObject, ...] | None = None
    send_destination_and_method: PushDestination | None = None
    communication_window: tuple[tuple[CosemDateTime, CosemDateTime], ...] | None = None
    randomisation_start_interval: int | None = None
    number_of_retries: int | None = None
    repetition_delay: int | RepetitionDelay | None = None
    port_reference: Obis | None = None
    push_client_sap: int | None = None
    push_protection_parameters: Data | None = None
    push_operation_method: PushOperationMethod | int | None = None
    confirmation_parameters: tuple[CosemDateTime, int] | None = None
    last_confirmation_date_time: CosemDateTime | None = None


def _capture(item: Data) -> CaptureObject:
    class_id, name, attribute, index = item.as_items()[:4]
    return CaptureObject(
        class_id.as_int(), Obis.from_bytes(name.as_bytes()), attribute.as_int(), index.as_int()
    )


def decode_push_setup(values: AttributeValues, *, version: int = 0) -> PushSetupAttributes:
    """Decode Push setup attribute values (by index or name) of that class version."""
    ic = lookup(40, version)
    c = check_attributes(ic, values)

    def integer(index: int) -> int | None:
        return c[index].as_int() if index in c else None

    def date_time(index: int) -> CosemDateTime | None:
        return c[index].as_date_time() if index in c else None

    objects: tuple[PushObject, ...] | None = None
    if 2 in c:
        objects = tuple(_push_object(item) for item in c[2].as_items())
    destination: PushDestination | None = None
    if 3 in c:
        service, target, message = c[3].as_items()
        destination = PushDestination(
            _member(TransportService, service.as_int()),
            target.as_bytes(),
            _member(PushMessageType, message.as_int()),
        )
    window: tuple[tuple[CosemDateTime, CosemDateTime], ...] | None = None
    if 4 in c:
        window = tuple(
            (w.as_items()[0].as_date_time(), w.as_items()[1].as_date_time()) for w in c[4].as_items()
        )
    delay: int | RepetitionDelay | None = None
    if 7 in c:
        raw_delay = c[7]
        if raw_delay.type == DlmsType.STRUCTURE:
            low, exponent, high = (m.as_int() for m in raw_delay.as_items())
            delay = RepetitionDelay(low, exponent, high)
        else:
            delay = raw_delay.as_int()
    port: Obis | None = None
    if 8 in c and any(raw := c[8].as_bytes()):
        port = Obis.from_bytes(raw)
    method = integer(11)
    confirmation: tuple[CosemDateTime, int] | None = None
    if 12 in c:
        start, interval = c[12].as_items()
        confirmation = (start.as_date_time(), interval.as_int())
    return PushSetupAttributes(
        version=version,
        push_object_list=objects,
        send_destination_and_method=destination,
        communication_window=window,
        randomisation_start_interval=integer(5),
        number_of_retries=integer(6),
        repetition_delay=delay,
        port_reference=port,
        push_client_sap=integer(9),
        push_protection_parameters=c.get(10),
        push_operation_method=None if method is None else _member(PushOperationMethod, method),
        confirmation_parameters=confirmation,
        last_confirmation_date_time=date_time(13),
    )


def _push_object(item: Data) -> PushObject:
    members = item.as_items()
    if len(members) == 4:
        return PushObject(_capture(item))
    return PushObject(_capture(item), members[4], tuple(_capture(col) for col in members[5].as_items()))
