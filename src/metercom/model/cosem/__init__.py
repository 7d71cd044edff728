"""COSEM interface classes as declarative tables, and the helpers that interpret their values.

Rule (DESIGN.md section 3): every interface class is declared once, as data
(:mod:`.classes`), and used by the client to interpret, by the simulator to serve and by the
device-profile loader to validate. Scaling and units are applied here (:mod:`.registers`),
never in the codec. This package is model layer: standard library, ``metercom.model`` and
``metercom.errors`` only; no I/O.

Theory of operation:

* :mod:`.types`: the table vocabulary: :class:`InterfaceClass`, :class:`AttributeSpec`,
  :class:`MethodSpec`, access-mode enums and the type descriptions (:class:`Simple`,
  :class:`Struct`, :class:`ArrayOf`, :class:`Choice`, :class:`OneOf`) that check a
  :class:`~metercom.model.dlms_data.Data` value, describe it, give a default and build one from
  the plain notation of profiles.
* :mod:`.classes`: the tables and the registry (:data:`INTERFACE_CLASSES`,
  :data:`CLASS_VERSIONS`, :func:`lookup`).
* :mod:`.validate`: :func:`check_value` / :func:`check_parameter`.
* Interpretation, shared by client and simulator: :mod:`.registers` (scaler_unit),
  :mod:`.clock`, :mod:`.profile_generic` (capture objects, buffers, scaler profiles),
  :mod:`.association` (object lists), :mod:`.disconnect` (states and transitions),
  :mod:`.security` (Security setup and Push setup shapes).

Errors: a value that does not fit its table raises :class:`~metercom.errors.InputError` with
``where`` naming the class, attribute and member path. That is a stand-in: the values come
from meters as often as from users, and a dedicated ``CosemTypeError(MetercomError)`` in
``errors.py`` is the intended home (proposed, not yet added).
"""

from __future__ import annotations

from metercom.model.cosem.association import (
    AttributeAccess,
    MethodAccess,
    ObjectListElement,
    SnObjectListElement,
    object_list_to_data,
    parse_object_list,
    parse_sn_object_list,
)
from metercom.model.cosem.classes import (
    CLASS_VERSIONS,
    INTERFACE_CLASSES,
    class_name,
    find_class,
    lookup,
)
from metercom.model.cosem.clock import ClockAttributes, decode_clock
from metercom.model.cosem.disconnect import (
    MODE_TRANSITIONS,
    TRANSITIONS,
    DisconnectTrigger,
    next_state,
    output_state,
)
from metercom.model.cosem.enums import (
    AssociationStatus,
    AuthenticationMechanism,
    BaudRate,
    ClockBase,
    ControlMode,
    ControlState,
    ImageTransferStatus,
    PushOperationMethod,
    SecurityPolicy,
    SecurityPolicyFlags,
    SecuritySuite,
    SortMethod,
    TransportService,
)
from metercom.model.cosem.profile_generic import (
    CaptureObject,
    ProfileTable,
    capture_objects_to_data,
    parse_buffer,
    parse_capture_objects,
    scalers_from_profile,
)
from metercom.model.cosem.registers import Quantity, raw_value, register_quantity, scale, scaler_attribute
from metercom.model.cosem.security import (
    PushSetupAttributes,
    SecuritySetupAttributes,
    decode_push_setup,
    decode_security_setup,
    security_policy,
)
from metercom.model.cosem.types import (
    AccessFlags,
    AccessMode,
    ArrayOf,
    AttributeSpec,
    Choice,
    Field,
    InterfaceClass,
    MethodAccessFlags,
    MethodAccessMode,
    MethodSpec,
    OneOf,
    Simple,
    Struct,
    TypeSpec,
)
from metercom.model.cosem.validate import attribute_spec, check_parameter, check_value, method_spec

__all__ = [
    "CLASS_VERSIONS",
    "INTERFACE_CLASSES",
    "MODE_TRANSITIONS",
    "TRANSITIONS",
    "AccessFlags",
    "AccessMode",
    "ArrayOf",
    "AssociationStatus",
    "AttributeAccess",
    "AttributeSpec",
    "AuthenticationMechanism",
    "BaudRate",
    "CaptureObject",
    "Choice",
    "ClockAttributes",
    "ClockBase",
    "ControlMode",
    "ControlState",
    "DisconnectTrigger",
    "Field",
    "ImageTransferStatus",
    "InterfaceClass",
    "MethodAccess",
    "MethodAccessFlags",
    "MethodAccessMode",
    "MethodSpec",
    "ObjectListElement",
    "OneOf",
    "ProfileTable",
    "PushOperationMethod",
    "PushSetupAttributes",
    "Quantity",
    "SecurityPolicy",
    "SecurityPolicyFlags",
    "SecuritySetupAttributes",
    "SecuritySuite",
    "Simple",
    "SnObjectListElement",
    "SortMethod",
    "Struct",
    "TransportService",
    "TypeSpec",
    "attribute_spec",
    "capture_objects_to_data",
    "check_parameter",
    "check_value",
    "class_name",
    "decode_clock",
    "decode_push_setup",
    "decode_security_setup",
    "find_class",
    "lookup",
    "method_spec",
    "next_state",
    "object_list_to_data",
    "output_state",
    "parse_buffer",
    "parse_capture_objects",
    "parse_object_list",
    "parse_sn_object_list",
    "raw_value",
    "register_quantity",
    "scale",
    "scaler_attribute",
    "scalers_from_profile",
    "security_policy",
]
