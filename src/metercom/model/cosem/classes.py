"""The COSEM interface classes as tables (DLMS UA 1000-1 "Blue Book" Ed. 12+, IEC 62056-6-2).

Rule: each class is declared once, here, as an :class:`InterfaceClass` value: Blue Book
attribute and method indices, names (snake_case as the Blue Book spells them, ``&`` as
``_and_``), types, static/dynamic marking, mandatory methods. Client, simulator and profile
loader all read these tables; none of them re-declares a class.

Theory of operation: the shared shapes (logical names, date-time octet strings,
``capture_object_definition``, ``scal_unit_type``, ``action_item``...) are built once at the
top and reused. :data:`CLASS_VERSIONS` holds every declared ``(class_id, version)``;
:data:`INTERFACE_CLASSES` maps each class id to its newest declared version (what
:func:`check_value` uses when no version is given). :func:`lookup` finds one version, strictly
or the nearest declared one for meters that report a version not declared here.

Versions declared (the ones meters in the field report): Data 0, Register 0, Extended register
0, Demand register 0, Register activation 0, Profile generic 1, Clock 0, Script table 0,
Schedule 0, Special days table 0, Association SN 2, Association LN 0..3, SAP assignment 0,
Image transfer 0, IEC local port setup 1, Activity calendar 0, Register monitor 0, Single action
schedule 0, IEC HDLC setup 1, Push setup 0 and 2, TCP-UDP setup 0, IPv4 setup 0, Security
setup 0 and 1, Disconnect control 0, Limiter 0.

Facts were cross-checked against gurux-dlms 1.0.203 (attribute/method counts, member order of
the structures it encodes) and the OSGP interface-class enums; known differences with gurux
are listed in the tests (``GURUX_DEVIATIONS``) with the reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType

from metercom.errors import InputError
from metercom.model.cosem.enums import (
    AssociationStatus,
    BaudRate,
    CertificateEntity,
    CertificateType,
    ClockBase,
    ControlMode,
    ControlState,
    IecProtocolMode,
    ImageTransferStatus,
    KeyId,
    PushMessageType,
    PushOperationMethod,
    ResponseTime,
    ScriptServiceId,
    SecurityPolicy,
    SecuritySuite,
    SingleActionScheduleType,
    SortMethod,
    TransportService,
)
from metercom.model.cosem.types import (
    AccessMode,
    ArrayOf,
    AttributeSpec,
    Choice,
    Field,
    InterfaceClass,
    MethodSpec,
    OneOf,
    Simple,
    Struct,
    TypeSpec,
)
from metercom.model.dlms_data import DlmsType as T
from metercom.model.units import Unit

__all__ = [
    "CAPTURE_OBJECT_DEFINITION",
    "CLASS_VERSIONS",
    "INTERFACE_CLASSES",
    "OBJECT_LIST_ELEMENT",
    "SCALER_UNIT",
    "class_name",
    "find_class",
    "lookup",
]

R = AccessMode.READ_ONLY
RW = AccessMode.READ_AND_WRITE
W = AccessMode.WRITE_ONLY

# --- shared shapes -----------------------------------------------------------------------------

LOGICAL_NAME = Simple((T.OCTET_STRING,), meaning="logical-name")
DATE_TIME = Simple((T.OCTET_STRING, T.DATE_TIME), meaning="date-time")
DATE = Simple((T.OCTET_STRING, T.DATE), meaning="date")
TIME = Simple((T.OCTET_STRING, T.TIME), meaning="time")
OCTETS = Simple((T.OCTET_STRING,))
VISIBLE = Simple((T.VISIBLE_STRING,))
BOOLEAN = Simple((T.BOOLEAN,))
BITS = Simple((T.BIT_STRING,))
INTEGER = Simple((T.INTEGER,))
LONG = Simple((T.LONG,))
UNSIGNED = Simple((T.UNSIGNED,))
LONG_UNSIGNED = Simple((T.LONG_UNSIGNED,))
DOUBLE_LONG_UNSIGNED = Simple((T.DOUBLE_LONG_UNSIGNED,))
ENUM = Simple((T.ENUM,))
#: Method parameter ``integer(0)`` of the parameterless methods (reset, capture, push...).
INTEGER_0 = Simple((T.INTEGER,))
NULL = Simple((T.NULL_DATA,))
SCRIPT_NAME = Simple((T.OCTET_STRING,), meaning="logical-name", refers_to=9)
SECURITY_SETUP_NAME = Simple((T.OCTET_STRING,), meaning="logical-name", refers_to=64)


def _enum(values: type[enum.IntEnum], *, closed: bool = False) -> Simple:
    return Simple((T.ENUM,), values=values, closed=closed)


_SIMPLE_TYPES = frozenset(t for t in T if t not in (T.ARRAY, T.STRUCTURE, T.COMPACT_ARRAY))
#: What a Register/Extended/Demand register value may be (Blue Book: simple types, no dates).
REGISTER_VALUE = Choice(
    frozenset(
        {
            T.NULL_DATA,
            T.BIT_STRING,
            T.DOUBLE_LONG,
            T.DOUBLE_LONG_UNSIGNED,
            T.OCTET_STRING,
            T.VISIBLE_STRING,
            T.UTF8_STRING,
            T.BCD,
            T.INTEGER,
            T.LONG,
            T.UNSIGNED,
            T.LONG_UNSIGNED,
            T.LONG64,
            T.LONG64_UNSIGNED,
            T.ENUM,
            T.FLOAT32,
            T.FLOAT64,
        }
    ),
    note="instance specific",
)
ANY_SIMPLE = Choice(_SIMPLE_TYPES, note="instance specific")
ANY = Choice(None, note="instance specific")

#: ``scal_unit_type``: structure{integer scaler, enum unit} (IEC 62056-6-2 clause 4.1.6.2).
SCALER_UNIT = Struct(
    (Field("scaler", INTEGER), Field("unit", Simple((T.ENUM,), values=Unit))),
    name="scal_unit_type",
)
OBJECT_DEFINITION = Struct(
    (Field("class_id", LONG_UNSIGNED), Field("logical_name", LOGICAL_NAME)),
    name="object_definition",
)
#: ``capture_object_definition`` of Profile generic (and push v0 ``push_object_definition``).
CAPTURE_OBJECT_DEFINITION = Struct(
    (
        Field("class_id", LONG_UNSIGNED),
        Field("logical_name", LOGICAL_NAME),
        Field("attribute_index", INTEGER),
        Field("data_index", LONG_UNSIGNED),
    ),
    name="capture_object_definition",
)
VALUE_DEFINITION = Struct(
    (
        Field("class_id", LONG_UNSIGNED),
        Field("logical_name", LOGICAL_NAME),
        Field("attribute_index", INTEGER),
    ),
    name="value_definition",
)
ACTION_ITEM = Struct(
    (Field("script_logical_name", SCRIPT_NAME), Field("script_selector", LONG_UNSIGNED)),
    name="action_item",
)

# Association object lists (Blue Book 4.4.4 / 4.4.3; Green Book access rights).
ATTRIBUTE_ACCESS_ITEM = Struct(
    (
        Field("attribute_id", INTEGER),
        Field("access_mode", ENUM),
        Field("access_selectors", OneOf((NULL, ArrayOf(INTEGER)))),
    ),
    name="attribute_access_item",
)
METHOD_ACCESS_ITEM_V0 = Struct(
    (Field("method_id", INTEGER), Field("access_mode", BOOLEAN)),
    name="method_access_item",
)
# Version 1+ sends an enum; a boolean (version 0 habit) is accepted too.
METHOD_ACCESS_ITEM = Struct(
    (Field("method_id", INTEGER), Field("access_mode", Simple((T.ENUM, T.BOOLEAN)))),
    name="method_access_item",
)


def _access_rights(method_item: Struct) -> Struct:
    return Struct(
        (
            Field("attribute_access", ArrayOf(ATTRIBUTE_ACCESS_ITEM, name="attribute_access_descriptor")),
            Field("method_access", ArrayOf(method_item, name="method_access_descriptor")),
        ),
        name="access_right",
    )


def _object_list_element(method_item: Struct) -> Struct:
    return Struct(
        (
            Field("class_id", LONG_UNSIGNED),
            Field("version", UNSIGNED),
            Field("logical_name", LOGICAL_NAME),
            Field("access_rights", _access_rights(method_item)),
        ),
        name="object_list_element",
    )


OBJECT_LIST_ELEMENT_V0 = _object_list_element(METHOD_ACCESS_ITEM_V0)
#: ``object_list_element`` of Association LN version 1+ (attribute 2).
OBJECT_LIST_ELEMENT = _object_list_element(METHOD_ACCESS_ITEM)
# Base names are 16-bit addresses; the Blue Book types them ``long`` (so 0xFA00 travels as a
# negative number) and some servers send ``long-unsigned``: both are accepted.
BASE_NAME = Simple((T.LONG, T.LONG_UNSIGNED))
SN_OBJECT_LIST_ELEMENT = Struct(
    (
        Field("base_name", BASE_NAME),
        Field("class_id", LONG_UNSIGNED),
        Field("version", UNSIGNED),
        Field("logical_name", LOGICAL_NAME),
    ),
    name="objlist_element",
)
SN_ACCESS_ITEM = Struct(
    (
        Field("base_name", BASE_NAME),
        Field("attribute_access", ArrayOf(ATTRIBUTE_ACCESS_ITEM)),
        Field("method_access", ArrayOf(METHOD_ACCESS_ITEM)),
    ),
    name="obj_access_item",
)
_CONTEXT_NAME = OneOf(
    (
        Struct(
            (
                Field("joint_iso_ctt_element", UNSIGNED),
                Field("country_element", UNSIGNED),
                Field("country_name_element", LONG_UNSIGNED),
                Field("identified_organization_element", UNSIGNED),
                Field("dlms_ua_element", UNSIGNED),
                Field("application_context_element", UNSIGNED),
                Field("context_id_element", UNSIGNED),
            ),
            name="context_name_type",
        ),
        OCTETS,
    )
)
_MECHANISM_NAME = OneOf(
    (
        Struct(
            (
                Field("joint_iso_ctt_element", UNSIGNED),
                Field("country_element", UNSIGNED),
                Field("country_name_element", LONG_UNSIGNED),
                Field("identified_organization_element", UNSIGNED),
                Field("dlms_ua_element", UNSIGNED),
                Field("authentication_mechanism_name_element", UNSIGNED),
                Field("mechanism_id_element", UNSIGNED),
            ),
            name="mechanism_name_type",
        ),
        OCTETS,
    )
)
_XDLMS_CONTEXT = Struct(
    (
        Field("conformance", BITS),
        Field("max_receive_pdu_size", LONG_UNSIGNED),
        Field("max_send_pdu_size", LONG_UNSIGNED),
        Field("dlms_version_number", UNSIGNED),
        Field("quality_of_service", INTEGER),
        Field("cyphering_info", OCTETS),
    ),
    name="xDLMS_context_type",
)
_USER = Struct((Field("user_id", UNSIGNED), Field("user_name", VISIBLE)), name="user_list_entry")


def _ln(index: int = 1) -> AttributeSpec:
    return AttributeSpec(index, "logical_name", LOGICAL_NAME, static=True, default_access=R)


def _a(
    index: int,
    name: str,
    type_: TypeSpec,
    *,
    static: bool = True,
    access: AccessMode | None = None,
    scaled_by: int | None = None,
    selectors: tuple[int, ...] = (),
    default: object = None,
    description: str = "",
) -> AttributeSpec:
    # Default access: static (configuration) attributes read-and-write, dynamic ones read-only;
    # an explicit access (Clock time is dynamic and writable) is kept as given.
    if access is None:
        access = RW if static else R
    return AttributeSpec(index, name, type_, static, access, scaled_by, selectors, default, description)


def _m(
    index: int, name: str, parameter: TypeSpec, *, mandatory: bool = False, description: str = ""
) -> MethodSpec:
    return MethodSpec(index, name, parameter, mandatory, description)


def _reserved(index: int) -> MethodSpec:
    return MethodSpec(
        index, f"reserved_{index}", ANY, False, "reserved from previous versions", reserved=True
    )


# --- the classes -------------------------------------------------------------------------------

DATA = InterfaceClass(
    1,
    0,
    "Data",
    (_ln(), _a(2, "value", ANY, static=False, description="instance specific; static or dynamic by use")),
    description="A value of any type: identifiers, parameters, counters without unit.",
)

REGISTER = InterfaceClass(
    3,
    0,
    "Register",
    (
        _ln(),
        _a(2, "value", REGISTER_VALUE, static=False, scaled_by=3),
        _a(3, "scaler_unit", SCALER_UNIT, access=R),
    ),
    (_m(1, "reset", INTEGER_0),),
    description="A value with a scaler and a unit.",
)

EXTENDED_REGISTER = InterfaceClass(
    4,
    0,
    "Extended register",
    (
        _ln(),
        _a(2, "value", REGISTER_VALUE, static=False, scaled_by=3),
        _a(3, "scaler_unit", SCALER_UNIT, access=R),
        _a(4, "status", ANY_SIMPLE, static=False),
        _a(5, "capture_time", DATE_TIME, static=False),
    ),
    (_m(1, "reset", INTEGER_0),),
    description="A register with a status and the time the value was captured (maximum demand).",
)

DEMAND_REGISTER = InterfaceClass(
    5,
    0,
    "Demand register",
    (
        _ln(),
        _a(2, "current_average_value", REGISTER_VALUE, static=False, scaled_by=4),
        _a(3, "last_average_value", REGISTER_VALUE, static=False, scaled_by=4),
        _a(4, "scaler_unit", SCALER_UNIT, access=R),
        _a(5, "status", ANY_SIMPLE, static=False),
        _a(6, "capture_time", DATE_TIME, static=False),
        _a(7, "start_time_current", DATE_TIME, static=False),
        _a(8, "period", DOUBLE_LONG_UNSIGNED, description="seconds"),
        _a(9, "number_of_periods", LONG_UNSIGNED),
    ),
    (_m(1, "reset", INTEGER_0), _m(2, "next_period", INTEGER_0)),
    description="Demand over a sliding window of number_of_periods x period seconds.",
)

REGISTER_ACTIVATION = InterfaceClass(
    6,
    0,
    "Register activation",
    (
        _ln(),
        _a(2, "register_assignment", ArrayOf(OBJECT_DEFINITION)),
        _a(
            3,
            "mask_list",
            ArrayOf(
                Struct(
                    (Field("mask_name", OCTETS), Field("index_list", ArrayOf(UNSIGNED))),
                    name="register_act_mask",
                )
            ),
        ),
        _a(4, "active_mask", OCTETS, static=False),
    ),
    (
        _m(1, "add_register", OBJECT_DEFINITION),
        _m(
            2,
            "add_mask",
            Struct(
                (Field("mask_name", OCTETS), Field("index_list", ArrayOf(UNSIGNED))), name="register_act_mask"
            ),
        ),
        _m(3, "delete_mask", OCTETS),
    ),
)

PROFILE_GENERIC = InterfaceClass(
    7,
    1,
    "Profile generic",
    (
        _ln(),
        _a(
            2,
            "buffer",
            ArrayOf(Choice(frozenset({T.STRUCTURE}), note="one entry per capture"), name="array"),
            static=False,
            selectors=(1, 2),
        ),
        _a(3, "capture_objects", ArrayOf(CAPTURE_OBJECT_DEFINITION), access=R),
        _a(4, "capture_period", DOUBLE_LONG_UNSIGNED, description="seconds; 0 = captured on trigger"),
        _a(5, "sort_method", _enum(SortMethod, closed=True), access=R, default="fifo"),
        _a(6, "sort_object", CAPTURE_OBJECT_DEFINITION, access=R),
        _a(7, "entries_in_use", DOUBLE_LONG_UNSIGNED, static=False),
        _a(8, "profile_entries", DOUBLE_LONG_UNSIGNED, access=R),
    ),
    (_m(1, "reset", INTEGER_0), _m(2, "capture", INTEGER_0)),
    description="A buffer of captured rows (load profiles, event logs, snapshots).",
)

CLOCK = InterfaceClass(
    8,
    0,
    "Clock",
    (
        _ln(),
        _a(2, "time", DATE_TIME, static=False, access=RW, description="local time"),
        _a(3, "time_zone", LONG, description="deviation of local normal time to UTC, minutes"),
        _a(4, "status", Simple((T.UNSIGNED,)), static=False, description="ClockStatus bits"),
        _a(5, "daylight_savings_begin", DATE_TIME),
        _a(6, "daylight_savings_end", DATE_TIME),
        _a(7, "daylight_savings_deviation", INTEGER, description="minutes, -120..120"),
        _a(8, "daylight_savings_enabled", BOOLEAN),
        _a(9, "clock_base", _enum(ClockBase), access=R),
    ),
    (
        _m(1, "adjust_to_quarter", INTEGER_0),
        _m(2, "adjust_to_measuring_period", INTEGER_0),
        _m(3, "adjust_to_minute", INTEGER_0),
        _m(4, "adjust_to_preset_time", INTEGER_0),
        _m(
            5,
            "preset_adjusting_time",
            Struct(
                (
                    Field("preset_time", DATE_TIME),
                    Field("validity_interval_start", DATE_TIME),
                    Field("validity_interval_end", DATE_TIME),
                )
            ),
        ),
        _m(6, "shift_time", LONG, description="seconds, -900..900"),
    ),
)

_SCRIPT_ACTION = Struct(
    (
        Field("service_id", _enum(ScriptServiceId, closed=True)),
        Field("class_id", LONG_UNSIGNED),
        Field("logical_name", LOGICAL_NAME),
        Field("index", INTEGER),
        Field("parameter", ANY),
    ),
    name="action_specification",
)
SCRIPT_TABLE = InterfaceClass(
    9,
    0,
    "Script table",
    (
        _ln(),
        _a(
            2,
            "scripts",
            ArrayOf(
                Struct(
                    (Field("script_identifier", LONG_UNSIGNED), Field("actions", ArrayOf(_SCRIPT_ACTION))),
                    name="script",
                )
            ),
        ),
    ),
    (_m(1, "execute", LONG_UNSIGNED, mandatory=True, description="script_identifier"),),
)

_SCHEDULE_ENTRY = Struct(
    (
        Field("index", LONG_UNSIGNED),
        Field("enable", BOOLEAN),
        Field("script_logical_name", SCRIPT_NAME),
        Field("script_selector", LONG_UNSIGNED),
        Field("switch_time", TIME),
        Field("validity_window", LONG_UNSIGNED),
        Field("exec_weekdays", BITS),
        Field("exec_specdays", BITS),
        Field("begin_date", DATE),
        Field("end_date", DATE),
    ),
    name="schedule_table_entry",
)
_INDEX_RANGE = Struct((Field("first_index", LONG_UNSIGNED), Field("last_index", LONG_UNSIGNED)))
SCHEDULE = InterfaceClass(
    10,
    0,
    "Schedule",
    (_ln(), _a(2, "entries", ArrayOf(_SCHEDULE_ENTRY))),
    (
        _m(
            1,
            "enable_disable",
            Struct(
                (
                    Field("first_index_a", LONG_UNSIGNED),
                    Field("last_index_a", LONG_UNSIGNED),
                    Field("first_index_b", LONG_UNSIGNED),
                    Field("last_index_b", LONG_UNSIGNED),
                )
            ),
            description="Blue Book 'enable/disable': two index ranges, one enabled, one disabled",
        ),
        _m(2, "insert", _SCHEDULE_ENTRY),
        _m(3, "delete", _INDEX_RANGE),
    ),
)

_SPECIAL_DAY = Struct(
    (Field("index", LONG_UNSIGNED), Field("specialday_date", DATE), Field("day_id", UNSIGNED)),
    name="spec_day_entry",
)
SPECIAL_DAYS_TABLE = InterfaceClass(
    11,
    0,
    "Special days table",
    (_ln(), _a(2, "entries", ArrayOf(_SPECIAL_DAY))),
    (_m(1, "insert", _SPECIAL_DAY), _m(2, "delete", LONG_UNSIGNED, description="index")),
)

_CLASS_AND_NAME_LIST = ArrayOf(OBJECT_DEFINITION)
ASSOCIATION_SN = InterfaceClass(
    12,
    2,
    "Association SN",
    (
        _ln(),
        _a(2, "object_list", ArrayOf(SN_OBJECT_LIST_ELEMENT), access=R),
        _a(3, "access_rights_list", ArrayOf(SN_ACCESS_ITEM), static=False),
        _a(4, "security_setup_reference", SECURITY_SETUP_NAME, access=R),
    ),
    (
        _reserved(1),
        _reserved(2),
        _m(3, "read_by_logicalname", _CLASS_AND_NAME_LIST),
        _m(4, "get_attributes_and_services", _CLASS_AND_NAME_LIST),
        _m(5, "change_lls_secret", OCTETS),
        _m(6, "change_hls_secret", OCTETS),
        _reserved(7),
        _m(8, "reply_to_hls_authentication", OCTETS),
    ),
    description="The association of short-name referencing (base names).",
)


def _association_ln(version: int) -> InterfaceClass:
    element = OBJECT_LIST_ELEMENT_V0 if version == 0 else OBJECT_LIST_ELEMENT
    attributes = [
        _ln(),
        _a(2, "object_list", ArrayOf(element), access=R),
        _a(
            3,
            "associated_partners_id",
            Struct((Field("client_sap", INTEGER), Field("server_sap", LONG_UNSIGNED))),
            access=R,
        ),
        _a(4, "application_context_name", _CONTEXT_NAME, access=R),
        _a(5, "xdlms_context_info", _XDLMS_CONTEXT, access=R),
        _a(6, "authentication_mechanism_name", _MECHANISM_NAME, access=R),
        _a(7, "secret", OCTETS, access=W),
        _a(8, "association_status", _enum(AssociationStatus, closed=True), static=False),
    ]
    methods = [
        _m(1, "reply_to_hls_authentication", OCTETS),
        _m(2, "change_hls_secret", OCTETS),
        _m(3, "add_object", element),
        _m(4, "remove_object", element),
    ]
    if version >= 1:
        attributes.append(_a(9, "security_setup_reference", SECURITY_SETUP_NAME, access=R))
    if version >= 2:
        attributes.append(_a(10, "user_list", ArrayOf(_USER), access=R))
        attributes.append(_a(11, "current_user", _USER, static=False))
        methods += [_m(5, "add_user", _USER), _m(6, "remove_user", _USER)]
    note = " Access modes in the object list are bit maps (AccessFlags)." if version >= 3 else ""
    return InterfaceClass(
        15,
        version,
        "Association LN",
        tuple(attributes),
        tuple(methods),
        description="The association of logical-name referencing: object list and access rights." + note,
    )


ASSOCIATION_LN_VERSIONS = tuple(_association_ln(v) for v in range(4))

SAP_ASSIGNMENT = InterfaceClass(
    17,
    0,
    "SAP assignment",
    (
        _ln(),
        _a(
            2,
            "sap_assignment_list",
            ArrayOf(
                Struct(
                    (Field("sap", LONG_UNSIGNED), Field("logical_device_name", OCTETS)),
                    name="asslist_element",
                )
            ),
        ),
    ),
    (
        _m(
            1,
            "connect_logical_device",
            Struct(
                (Field("sap", LONG_UNSIGNED), Field("logical_device_name", OCTETS)), name="asslist_element"
            ),
        ),
    ),
)

IMAGE_TRANSFER = InterfaceClass(
    18,
    0,
    "Image transfer",
    (
        _ln(),
        _a(2, "image_block_size", DOUBLE_LONG_UNSIGNED, access=R),
        _a(3, "image_transferred_blocks_status", BITS, static=False),
        _a(4, "image_first_not_transferred_block_number", DOUBLE_LONG_UNSIGNED, static=False),
        _a(5, "image_transfer_enabled", BOOLEAN),
        _a(6, "image_transfer_status", _enum(ImageTransferStatus, closed=True), static=False),
        _a(
            7,
            "image_to_activate_info",
            ArrayOf(
                Struct(
                    (
                        Field("image_to_activate_size", DOUBLE_LONG_UNSIGNED),
                        Field("image_to_activate_identification", OCTETS),
                        Field("image_to_activate_signature", OCTETS),
                    ),
                    name="image_to_activate_info_element",
                )
            ),
            static=False,
        ),
    ),
    (
        _m(
            1,
            "image_transfer_initiate",
            Struct((Field("image_identifier", OCTETS), Field("image_size", DOUBLE_LONG_UNSIGNED))),
            mandatory=True,
        ),
        _m(
            2,
            "image_block_transfer",
            Struct((Field("image_block_number", DOUBLE_LONG_UNSIGNED), Field("image_block_value", OCTETS))),
            mandatory=True,
        ),
        _m(3, "image_verify", INTEGER_0, mandatory=True),
        _m(4, "image_activate", INTEGER_0, mandatory=True),
    ),
)

IEC_LOCAL_PORT_SETUP = InterfaceClass(
    19,
    1,
    "IEC local port setup",
    (
        _ln(),
        _a(2, "default_mode", _enum(IecProtocolMode)),
        _a(3, "default_baud", _enum(BaudRate), default="baud_300"),
        _a(4, "prop_baud", _enum(BaudRate)),
        _a(5, "response_time", _enum(ResponseTime)),
        _a(6, "device_addr", OCTETS),
        _a(7, "pass_p1", OCTETS, access=W),
        _a(8, "pass_p2", OCTETS, access=W),
        _a(9, "pass_w5", OCTETS, access=W),
    ),
)

_SEASON = Struct(
    (Field("season_profile_name", OCTETS), Field("season_start", DATE_TIME), Field("week_name", OCTETS)),
    name="season",
)
_WEEK = Struct(
    (
        Field("week_profile_name", OCTETS),
        Field("monday", UNSIGNED),
        Field("tuesday", UNSIGNED),
        Field("wednesday", UNSIGNED),
        Field("thursday", UNSIGNED),
        Field("friday", UNSIGNED),
        Field("saturday", UNSIGNED),
        Field("sunday", UNSIGNED),
    ),
    name="week_profile",
)
_DAY = Struct(
    (
        Field("day_id", UNSIGNED),
        Field(
            "day_schedule",
            ArrayOf(
                Struct(
                    (
                        Field("start_time", TIME),
                        Field("script_logical_name", SCRIPT_NAME),
                        Field("script_selector", LONG_UNSIGNED),
                    ),
                    name="day_profile_action",
                )
            ),
        ),
    ),
    name="day_profile",
)
ACTIVITY_CALENDAR = InterfaceClass(
    20,
    0,
    "Activity calendar",
    (
        _ln(),
        _a(2, "calendar_name_active", OCTETS, access=R),
        _a(3, "season_profile_active", ArrayOf(_SEASON), access=R),
        _a(4, "week_profile_table_active", ArrayOf(_WEEK), access=R),
        _a(5, "day_profile_table_active", ArrayOf(_DAY), access=R),
        _a(6, "calendar_name_passive", OCTETS),
        _a(7, "season_profile_passive", ArrayOf(_SEASON)),
        _a(8, "week_profile_table_passive", ArrayOf(_WEEK)),
        _a(9, "day_profile_table_passive", ArrayOf(_DAY)),
        _a(10, "activate_passive_calendar_time", DATE_TIME),
    ),
    (_m(1, "activate_passive_calendar", INTEGER_0),),
)

REGISTER_MONITOR = InterfaceClass(
    21,
    0,
    "Register monitor",
    (
        _ln(),
        _a(2, "thresholds", ArrayOf(ANY_SIMPLE)),
        _a(3, "monitored_value", VALUE_DEFINITION),
        _a(
            4,
            "actions",
            ArrayOf(
                Struct(
                    (Field("action_up", ACTION_ITEM), Field("action_down", ACTION_ITEM)), name="action_set"
                )
            ),
        ),
    ),
)

SINGLE_ACTION_SCHEDULE = InterfaceClass(
    22,
    0,
    "Single action schedule",
    (
        _ln(),
        _a(
            2,
            "executed_script",
            Struct(
                (Field("script_logical_name", SCRIPT_NAME), Field("script_selector", LONG_UNSIGNED)),
                name="script",
            ),
        ),
        _a(3, "type", _enum(SingleActionScheduleType, closed=True), default="type_1"),
        _a(
            4,
            "execution_time",
            ArrayOf(Struct((Field("time", TIME), Field("date", DATE)), name="execution_time_date")),
        ),
    ),
)

IEC_HDLC_SETUP = InterfaceClass(
    23,
    1,
    "IEC HDLC setup",
    (
        _ln(),
        _a(2, "comm_speed", _enum(BaudRate), default="baud_9600"),
        _a(3, "window_size_transmit", UNSIGNED, default=1),
        _a(4, "window_size_receive", UNSIGNED, default=1),
        _a(5, "max_info_field_length_transmit", LONG_UNSIGNED, default=128),
        _a(6, "max_info_field_length_receive", LONG_UNSIGNED, default=128),
        _a(7, "inter_octet_time_out", LONG_UNSIGNED, default=25, description="milliseconds"),
        _a(8, "inactivity_time_out", LONG_UNSIGNED, default=120, description="seconds; 0 = none"),
        _a(9, "device_address", LONG_UNSIGNED),
    ),
)

_SEND_DESTINATION = Struct(
    (
        Field("transport_service", _enum(TransportService)),
        Field("destination", OCTETS),
        Field("message", _enum(PushMessageType)),
    ),
    name="send_destination_and_method",
)
_WINDOW = ArrayOf(
    Struct((Field("start_time", DATE_TIME), Field("end_time", DATE_TIME)), name="window_element")
)


def _push_setup(version: int) -> InterfaceClass:
    if version == 0:
        element: Struct = CAPTURE_OBJECT_DEFINITION
        repetition: TypeSpec = LONG_UNSIGNED
    else:
        element = Struct(
            (
                *CAPTURE_OBJECT_DEFINITION.fields,
                Field(
                    "restriction",
                    Struct(
                        (Field("restriction_type", ENUM), Field("restriction_value", ANY)),
                        name="restriction_element",
                    ),
                ),
                Field("columns", ArrayOf(CAPTURE_OBJECT_DEFINITION)),
            ),
            name="push_object_definition",
        )
        repetition = Struct(
            (
                Field("repetition_delay_min", LONG_UNSIGNED),
                Field("repetition_delay_exponent", LONG_UNSIGNED),
                Field("repetition_delay_max", LONG_UNSIGNED),
            ),
            name="repetition_delay",
        )
    attributes = [
        _ln(),
        _a(2, "push_object_list", ArrayOf(element)),
        _a(3, "send_destination_and_method", _SEND_DESTINATION),
        _a(4, "communication_window", _WINDOW),
        _a(5, "randomisation_start_interval", LONG_UNSIGNED, description="seconds"),
        _a(6, "number_of_retries", UNSIGNED),
        _a(7, "repetition_delay", repetition, description="seconds"),
    ]
    methods = [_m(1, "push", INTEGER_0, mandatory=True)]
    if version >= 2:
        attributes += [
            _a(8, "port_reference", LOGICAL_NAME),
            _a(9, "push_client_sap", INTEGER),
            _a(
                10,
                "push_protection_parameters",
                ArrayOf(
                    Struct(
                        (
                            Field("protection_type", ENUM),
                            Field(
                                "protection_options",
                                Struct(
                                    (
                                        Field("transaction_id", OCTETS),
                                        Field("originator_system_title", OCTETS),
                                        Field("recipient_system_title", OCTETS),
                                        Field("other_information", OCTETS),
                                        Field("key_info", Choice(frozenset({T.STRUCTURE}))),
                                    )
                                ),
                            ),
                        ),
                        name="protection_parameters_element",
                    )
                ),
            ),
            _a(11, "push_operation_method", _enum(PushOperationMethod)),
            _a(
                12,
                "confirmation_parameters",
                Struct(
                    (
                        Field("confirmation_start_date", DATE_TIME),
                        Field("confirmation_interval", DOUBLE_LONG_UNSIGNED),
                    )
                ),
            ),
            _a(13, "last_confirmation_date_time", DATE_TIME, static=False),
        ]
        methods.append(_m(2, "reset", INTEGER_0))
    return InterfaceClass(
        40,
        version,
        "Push setup",
        tuple(attributes),
        tuple(methods),
        description="What to push (push_object_list), where and how.",
    )


PUSH_SETUP_VERSIONS = (_push_setup(0), _push_setup(2))

TCP_UDP_SETUP = InterfaceClass(
    41,
    0,
    "TCP-UDP setup",
    (
        _ln(),
        _a(2, "tcp_udp_port", LONG_UNSIGNED, default=4059),
        _a(3, "ip_reference", LOGICAL_NAME),
        _a(4, "mss", LONG_UNSIGNED, default=576, description="maximum segment size, 40..65535"),
        _a(5, "nb_of_sim_conn", UNSIGNED, default=1),
        _a(6, "inactivity_time_out", LONG_UNSIGNED, default=180, description="seconds; 0 = none"),
    ),
)

IPV4_SETUP = InterfaceClass(
    42,
    0,
    "IPv4 setup",
    (
        _ln(),
        _a(2, "dl_reference", LOGICAL_NAME),
        _a(3, "ip_address", DOUBLE_LONG_UNSIGNED, static=False, access=RW),
        _a(4, "multicast_ip_address", ArrayOf(DOUBLE_LONG_UNSIGNED)),
        _a(
            5,
            "ip_options",
            ArrayOf(
                Struct(
                    (
                        Field("ip_option_type", UNSIGNED),
                        Field("ip_option_length", UNSIGNED),
                        Field("ip_option_data", OCTETS),
                    ),
                    name="ip_options_element",
                )
            ),
        ),
        _a(6, "subnet_mask", DOUBLE_LONG_UNSIGNED),
        _a(7, "gateway_ip_address", DOUBLE_LONG_UNSIGNED),
        _a(8, "use_dhcp_flag", BOOLEAN),
        _a(9, "primary_dns_address", DOUBLE_LONG_UNSIGNED),
        _a(10, "secondary_dns_address", DOUBLE_LONG_UNSIGNED),
    ),
    (
        _m(1, "add_mc_ip_address", DOUBLE_LONG_UNSIGNED),
        _m(2, "delete_mc_ip_address", DOUBLE_LONG_UNSIGNED),
        _m(3, "get_nbof_mc_ip_addresses", INTEGER_0),
    ),
)

_KEY_DATA = ArrayOf(Struct((Field("key_id", _enum(KeyId)), Field("key_wrapped", OCTETS)), name="key_data"))
_CERTIFICATE_IDENTIFICATION = Struct(
    (Field("certificate_identification_type", ENUM), Field("certificate_identification_options", ANY)),
    name="certificate_identification",
)


def _security_setup(version: int) -> InterfaceClass:
    policy = _enum(SecurityPolicy, closed=True) if version == 0 else ENUM
    attributes = [
        _ln(),
        _a(2, "security_policy", policy, description="v0: SecurityPolicy; v1: SecurityPolicyFlags bit map"),
        _a(3, "security_suite", _enum(SecuritySuite), access=R),
        _a(4, "client_system_title", OCTETS, static=False),
        _a(5, "server_system_title", OCTETS, access=R),
    ]
    methods = [_m(1, "security_activate", policy)]
    if version == 0:
        methods.append(_m(2, "global_key_transfer", _KEY_DATA))
    else:
        attributes.append(
            _a(
                6,
                "certificates",
                ArrayOf(
                    Struct(
                        (
                            Field("certificate_entity", _enum(CertificateEntity)),
                            Field("certificate_type", _enum(CertificateType)),
                            Field("serial_number", OCTETS),
                            Field("issuer", OCTETS),
                            Field("subject", OCTETS),
                            Field("subject_alt_name", OCTETS),
                        ),
                        name="certificate_info",
                    )
                ),
                access=R,
            )
        )
        methods += [
            _m(2, "key_transfer", _KEY_DATA),
            _m(
                3,
                "key_agreement",
                ArrayOf(
                    Struct(
                        (Field("key_id", ENUM), Field("key_ciphered_data", OCTETS)),
                        name="key_agreement_data",
                    )
                ),
            ),
            _m(4, "generate_key_pair", ENUM),
            _m(5, "generate_certificate_request", ENUM),
            _m(6, "import_certificate", OCTETS),
            _m(7, "export_certificate", _CERTIFICATE_IDENTIFICATION),
            _m(8, "remove_certificate", _CERTIFICATE_IDENTIFICATION),
        ]
    return InterfaceClass(
        64,
        version,
        "Security setup",
        tuple(attributes),
        tuple(methods),
        description="Security policy, suite and system titles of an association.",
    )


SECURITY_SETUP_VERSIONS = (_security_setup(0), _security_setup(1))

DISCONNECT_CONTROL = InterfaceClass(
    70,
    0,
    "Disconnect control",
    (
        _ln(),
        _a(2, "output_state", BOOLEAN, static=False, description="TRUE = connected"),
        _a(3, "control_state", _enum(ControlState, closed=True), static=False),
        _a(4, "control_mode", _enum(ControlMode)),
    ),
    (
        _m(1, "remote_disconnect", INTEGER_0, mandatory=True),
        _m(2, "remote_reconnect", INTEGER_0, mandatory=True),
    ),
)

LIMITER = InterfaceClass(
    71,
    0,
    "Limiter",
    (
        _ln(),
        _a(2, "monitored_value", VALUE_DEFINITION),
        _a(3, "threshold_active", ANY_SIMPLE, static=False, access=R),
        _a(4, "threshold_normal", ANY_SIMPLE),
        _a(5, "threshold_emergency", ANY_SIMPLE),
        _a(6, "min_over_threshold_duration", DOUBLE_LONG_UNSIGNED, description="seconds"),
        _a(7, "min_under_threshold_duration", DOUBLE_LONG_UNSIGNED, description="seconds"),
        _a(
            8,
            "emergency_profile",
            Struct(
                (
                    Field("emergency_profile_id", LONG_UNSIGNED),
                    Field("emergency_activation_time", DATE_TIME),
                    Field("emergency_duration", DOUBLE_LONG_UNSIGNED),
                ),
                name="emergency_profile_type",
            ),
        ),
        _a(9, "emergency_profile_group_id_list", ArrayOf(LONG_UNSIGNED)),
        _a(10, "emergency_profile_active", BOOLEAN, static=False),
        _a(
            11,
            "actions",
            Struct(
                (Field("action_over_threshold", ACTION_ITEM), Field("action_under_threshold", ACTION_ITEM)),
                name="action_type",
            ),
        ),
    ),
)


# --- registry ----------------------------------------------------------------------------------

_ALL: tuple[InterfaceClass, ...] = (
    DATA,
    REGISTER,
    EXTENDED_REGISTER,
    DEMAND_REGISTER,
    REGISTER_ACTIVATION,
    PROFILE_GENERIC,
    CLOCK,
    SCRIPT_TABLE,
    SCHEDULE,
    SPECIAL_DAYS_TABLE,
    ASSOCIATION_SN,
    *ASSOCIATION_LN_VERSIONS,
    SAP_ASSIGNMENT,
    IMAGE_TRANSFER,
    IEC_LOCAL_PORT_SETUP,
    ACTIVITY_CALENDAR,
    REGISTER_MONITOR,
    SINGLE_ACTION_SCHEDULE,
    IEC_HDLC_SETUP,
    *PUSH_SETUP_VERSIONS,
    TCP_UDP_SETUP,
    IPV4_SETUP,
    *SECURITY_SETUP_VERSIONS,
    DISCONNECT_CONTROL,
    LIMITER,
)

#: Every declared class version, by ``(class_id, version)``.
CLASS_VERSIONS: Mapping[tuple[int, int], InterfaceClass] = MappingProxyType({ic.key: ic for ic in _ALL})


def _newest() -> dict[int, InterfaceClass]:
    out: dict[int, InterfaceClass] = {}
    for ic in _ALL:
        if ic.class_id not in out or ic.version > out[ic.class_id].version:
            out[ic.class_id] = ic
    return dict(sorted(out.items()))


#: One table per class id: the newest declared version.
INTERFACE_CLASSES: Mapping[int, InterfaceClass] = MappingProxyType(_newest())


def find_class(class_id: int, version: int | None = None) -> InterfaceClass | None:
    """The table for ``(class_id, version)`` (newest version if ``version`` is None), or None."""
    if version is None:
        return INTERFACE_CLASSES.get(class_id)
    return CLASS_VERSIONS.get((class_id, version))


def lookup(class_id: int, version: int | None = None, *, exact: bool = True) -> InterfaceClass:
    """The table for ``(class_id, version)``.

    With ``exact=False`` an undeclared version falls back to the nearest declared one (the
    newest version below it, else the oldest above it): good enough to interpret the
    attributes the versions share, which is how a client copes with a meter reporting a
    version this table does not know. Raises :class:`InputError` for an unknown class.
    """
    found = find_class(class_id, version)
    if found is not None:
        return found
    versions = sorted(v for (cid, v) in CLASS_VERSIONS if cid == class_id)
    if not versions:
        known = ", ".join(f"{cid} {ic.name}" for cid, ic in INTERFACE_CLASSES.items())
        raise InputError(f"COSEM interface class {class_id} is not declared (declared: {known})")
    if version is not None and not exact:
        below = [v for v in versions if v <= version]
        return CLASS_VERSIONS[(class_id, below[-1] if below else versions[0])]
    name = INTERFACE_CLASSES[class_id].name
    raise InputError(
        f"{name} (class {class_id}) version {version} is not declared; declared versions: "
        + ", ".join(map(str, versions))
    )


def class_name(class_id: int) -> str:
    """The Blue Book name of a class id (``"Register"``), or ``"class <id>"`` if undeclared."""
    ic = INTERFACE_CLASSES.get(class_id)
    return ic.name if ic is not None else f"class {class_id}"
