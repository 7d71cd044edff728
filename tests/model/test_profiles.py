"""Device profiles: the bundled TOML files load, validate and serve consistent object lists;
broken files give clear errors naming the entry and field at fault."""

from __future__ import annotations

import json
import textwrap
import tomllib
from collections.abc import Callable
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any

import pytest

from metercom.codec.dlms.axdr import decode_data_exact, encode_data
from metercom.errors import ConfigError, InputError
from metercom.model.cosem import (
    AccessMode,
    AuthenticationMechanism,
    CaptureObject,
    MethodAccessMode,
    Quantity,
    check_value,
    lookup,
    object_list_to_data,
    parse_buffer,
    parse_capture_objects,
    parse_object_list,
    raw_value,
    scalers_from_profile,
)
from metercom.model.dlms_data import Data, DlmsType
from metercom.model.obis import Obis
from metercom.model.profiles import (
    SOURCE_KINDS,
    DeviceProfile,
    available_profiles,
    check_profile,
    describe_source,
    is_valid_source,
    load_profile,
    parse_profile,
)
from metercom.model.units import ScalerUnit, Unit

# IS 15959 objects of protocols.md section 4.2: OBIS -> class id.
INDIA_OBJECTS = {
    "1.0.94.91.0.255": 7,
    "1.0.94.91.3.255": 7,
    "1.0.99.1.0.255": 7,
    "1.0.94.91.4.255": 7,
    "1.0.99.2.0.255": 7,
    "1.0.94.91.5.255": 7,
    "1.0.98.1.0.255": 7,
    "1.0.94.91.6.255": 7,
    **{f"0.0.99.98.{e}.255": 7 for e in range(7)},
    "1.0.94.91.7.255": 7,
    "0.0.94.91.10.255": 7,
    "0.0.1.0.0.255": 8,
    **{f"0.0.40.0.{e}.255": 15 for e in (1, 2, 3)},
    "0.0.43.0.3.255": 64,
    "1.0.0.8.0.255": 1,
    "1.0.0.8.4.255": 1,
    "0.0.15.0.0.255": 22,
    "0.0.13.0.0.255": 20,
    "0.0.10.0.1.255": 9,
    "0.0.17.0.0.255": 71,
    "0.0.96.3.10.255": 70,
    "0.0.44.0.0.255": 18,
    "0.0.25.9.0.255": 40,
    "0.4.25.9.0.255": 40,
    **{f"0.0.96.1.{e}.255": 1 for e in (0, 1, 2, 4)},
    "1.0.0.2.0.255": 1,
    **{f"0.0.94.91.{e}.255": 1 for e in (9, 11, 12)},
    "0.0.0.1.0.255": 1,
    "0.0.94.91.0.255": 1,
    "0.0.96.2.0.255": 1,
    "0.0.94.91.14.255": 3,
    "0.0.94.91.8.255": 3,
    **{f"1.0.{c}.7.0.255": 3 for c in (12, 11, 91, 13, 14, 9, 1)},
    **{f"1.0.{c}.8.0.255": 3 for c in (1, 2, 9, 10)},
    **{f"1.0.{c}.8.{e}.255": 3 for c in (1, 9) for e in (1, 2, 3, 4)},
    **{f"1.0.{c}.29.0.255": 3 for c in (1, 2, 9, 10)},
    "1.0.1.6.0.255": 4,
    "1.0.9.6.0.255": 4,
}


@pytest.fixture(scope="module")
def generic() -> DeviceProfile:
    return load_profile("generic")


@pytest.fixture(scope="module")
def india() -> DeviceProfile:
    return load_profile("india")


# --- bundled profiles ------------------------------------------------------------------------


def test_bundled_profiles_are_package_data() -> None:
    assert available_profiles() == ["generic", "india"]
    root = resources.files("metercom.model.profiles")
    assert root.joinpath("generic.toml").is_file()
    assert root.joinpath("india.toml").is_file()


@pytest.mark.parametrize("name", ["generic", "india"])
def test_profile_values_fit_the_class_tables(name: str) -> None:
    profile = load_profile(name)
    assert profile.name == name
    assert profile.origin == f"{name}.toml"
    assert profile.description
    for obj in profile.objects:
        ic = obj.interface
        for spec in ic.attributes:
            check_value(obj.class_id, spec.index, obj.value(spec.index), version=obj.version)
        for value in obj.attributes.values():
            assert value.name == ic.attribute(value.index).name
            if value.source is not None:
                assert is_valid_source(value.source), value.source
        if ic.has_attribute("scaler_unit"):
            assert obj.scaler_unit is not None, obj
        for association in profile.associations:
            access = obj.access.get(association.name)
            if access is not None:
                assert len(access.attributes) == len(ic.attributes)
                assert len(access.methods) == len(ic.methods)
                assert access.attribute(1) == AccessMode.READ_ONLY


@pytest.mark.parametrize("name", ["generic", "india"])
def test_capture_objects_name_objects_of_the_profile(name: str) -> None:
    profile = load_profile(name)
    for obj in profile.objects:
        if obj.class_id != 7:
            continue
        columns = parse_capture_objects(obj.value("capture_objects"))
        assert columns, obj
        for column in columns:
            target = profile.object(column.logical_name)
            assert target.class_id == column.class_id
            assert target.interface.has_attribute(column.attribute_index)


@pytest.mark.parametrize("name", ["generic", "india"])
def test_object_lists_encode_and_parse_back(name: str) -> None:
    profile = load_profile(name)
    for association in profile.associations:
        elements = profile.object_list(association.name)
        version = profile.object(association.logical_name).version
        wire = encode_data(object_list_to_data(elements, association_version=version))
        parsed = parse_object_list(decode_data_exact(wire), association_version=version)
        assert parsed == elements
        assert [e.logical_name for e in parsed] == [
            o.logical_name for o in profile.visible_objects(association.name)
        ]
        assert association.logical_name in {e.logical_name for e in parsed}


def test_generic_profile(generic: DeviceProfile) -> None:
    public = generic.association("public")
    assert public.client_sap == 16
    assert public.authentication == AuthenticationMechanism.NONE
    assert generic.association(1).name == "management"
    assert (
        generic.association(Obis.parse("0.0.40.0.2.255")).authentication == AuthenticationMechanism.HIGH_GMAC
    )
    assert {str(o.logical_name) for o in generic.visible_objects("public")} == {
        "0-0:40.0.1*255",
        "0-0:42.0.0*255",
        "0-0:96.1.0*255",
        "1-0:0.2.0*255",
        "0-0:1.0.0*255",
    }
    # Registers: energies per tariff, instantaneous values per phase, with scaler_unit.
    for code in ("1.0.1.8.0.255", "1.0.1.8.1.255", "1.0.1.8.2.255", "1.0.2.8.0.255", "1.0.2.8.2.255"):
        assert generic.object(code).scaler_unit == ScalerUnit(0, Unit.WATT_HOUR)
    for phase in (32, 52, 72):
        voltage = generic.object(f"1.0.{phase}.7.0.255")
        assert voltage.scaler_unit == ScalerUnit(-1, Unit.VOLT)
        assert voltage.source("value") == f"load:voltage_l{(phase - 12) // 20}"
    assert generic.object("1.0.33.7.0.255").scaler_unit == ScalerUnit(-3, Unit.COUNT)
    assert generic.object("1.0.14.7.0.255").scaler_unit == ScalerUnit(-2, Unit.HERTZ)
    demand = generic.object("1.0.1.4.0.255")
    assert demand.class_id == 5
    assert demand.value("period") == Data.double_long_unsigned(900)
    load = generic.object("1.0.99.1.0.255")
    assert load.value("capture_period") == Data.double_long_unsigned(900)
    assert parse_capture_objects(load.value("capture_objects"))[0] == CaptureObject.parse(
        8, "0.0.1.0.0.255", 2
    )
    assert load.value("sort_method") == Data.enum(1)
    assert load.value("entries_in_use") == Data.double_long_unsigned(0)  # class default
    disconnect = generic.object("0.0.96.3.10.255")
    assert disconnect.value("control_mode") == Data.enum(2)
    management = disconnect.object_list_element("management")
    assert management is not None
    assert management.method_mode(1) == MethodAccessMode.ACCESS
    assert management.attribute_mode(4) == AccessMode.READ_AND_WRITE  # static: configuration
    assert management.attribute_mode(3) == AccessMode.READ_ONLY  # dynamic: state
    assert disconnect.object_list_element("public") is None
    buffer = load.object_list_element("management")
    assert buffer is not None
    assert buffer.attribute_access[1].access_selectors == (1, 2)
    clock = generic.object("0.0.1.0.0.255")
    assert clock.value("time_zone") == Data.long(-60)
    assert clock.source("time") == "clock:now"
    sources = generic.sources()
    assert sources[(Obis.parse("1.0.1.8.1.255"), 2)] == "energy:active_import_t1"
    assert sources[(Obis.parse("0.0.1.0.0.255"), 2)] == "clock:now"


def test_india_profile_has_the_is15959_set(india: DeviceProfile) -> None:
    for code, class_id in INDIA_OBJECTS.items():
        obj = india.find(code)
        assert obj is not None, code
        assert obj.class_id == class_id, code
    assert [a.logical_name for a in india.associations] == [
        Obis.parse(f"0.0.40.0.{e}.255") for e in (1, 2, 3)
    ]
    assert [a.authentication for a in india.associations] == [
        AuthenticationMechanism.NONE,
        AuthenticationMechanism.LOW,
        AuthenticationMechanism.HIGH_GMAC,
    ]
    assert india.object("0.0.40.0.3.255").value("security_setup_reference") == Data.octet_string(
        Obis.parse("0.0.43.0.3.255").to_bytes()
    )
    assert len(india.visible_objects("public")) == 3
    assert india.object("0.0.44.0.0.255").object_list_element("reader") is None
    assert india.object("1.0.99.1.0.255").value("capture_period") == Data.double_long_unsigned(1800)
    assert india.object("1.0.99.2.0.255").value("capture_period") == Data.double_long_unsigned(86400)


def test_india_instantaneous_profile_with_its_scaler_profile(india: DeviceProfile) -> None:
    """What a client does with an IS 15959 meter, served from the profile: read the scaler
    profile once, then scale instantaneous rows with it."""
    scaler_profile = india.object("1.0.94.91.3.255")
    scaler_columns = parse_capture_objects(scaler_profile.value("capture_objects"))
    scaler_row = Data.structure(
        *(india.object(c.logical_name).value(c.attribute_index) for c in scaler_columns)
    )
    scalers = scalers_from_profile(Data.array([scaler_row]), scaler_columns)
    assert scalers[Obis.parse("1.0.12.7.0.255")] == ScalerUnit(-2, Unit.VOLT)

    profile = india.object("1.0.94.91.0.255")
    columns = parse_capture_objects(profile.value("capture_objects"))
    physical = {"1-0:12.7.0*255/2": Decimal("231.45"), "1-0:1.7.0*255/2": Decimal(-1200)}
    cells = []
    for column in columns:
        obj = india.object(column.logical_name)
        initial = obj.value(column.attribute_index)
        if column.key in physical:
            su = obj.scaler_unit
            assert su is not None
            cells.append(raw_value(physical[column.key], su, DlmsType(initial.type)))
        else:
            cells.append(initial)
    buffer = decode_data_exact(encode_data(Data.array([Data.structure(*cells)])))
    row = parse_buffer(buffer, columns).values(scalers)[0]
    assert row["1-0:12.7.0*255/2"] == Quantity(Decimal("231.45"), Unit.VOLT)
    assert row["1-0:1.7.0*255/2"] == Quantity(Decimal(-1200), Unit.WATT)
    assert str(row["1-0:1.7.0*255/2"]) == "-1200 W"


def test_source_vocabulary() -> None:
    assert is_valid_source("load:voltage_l1")
    assert is_valid_source("energy:active_import_t4")
    assert is_valid_source("clock:now")
    assert not is_valid_source("load:voltage_l4")
    assert not is_valid_source("voltage")
    assert "unknown source kind 'lod'" in describe_source("lod:voltage")
    assert "unknown load source 'volts'" in describe_source("load:volts")
    assert describe_source("energy:active_import") == "cumulative energy register"
    assert set(SOURCE_KINDS) >= {"load", "energy", "demand", "clock", "counter", "event"}


# --- broken files ------------------------------------------------------------------------------

GOOD = """
[profile]
name = "tiny"

[[associations]]
name = "public"
logical_name = "0.0.40.0.1.255"
client_sap = 16
default_access = "read"

[[objects]]
logical_name = "0.0.40.0.1.255"
class_id = 15
version = 1

[[objects]]
logical_name = "0.0.1.0.0.255"
class_id = 8
version = 0
attributes = { time = { source = "clock:now" }, time_zone = -60 }

[[objects]]
logical_name = "1.0.1.8.0.255"
class_id = 3
version = 0
scaler = 0
unit = "Wh"
attributes = { value = { type = "double-long-unsigned", source = "energy:active_import" } }

[[objects]]
logical_name = "1.0.99.1.0.255"
class_id = 7
version = 1
[objects.attributes]
capture_objects = [[8, "0.0.1.0.0.255", 2, 0], [3, "1.0.1.8.0.255", 2, 0]]
capture_period = 900
"""


def _write(tmp_path: Path, text: str, name: str = "meter.toml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def test_a_small_file_loads(tmp_path: Path) -> None:
    profile = load_profile(_write(tmp_path, GOOD))
    assert profile.name == "tiny"
    assert len(profile.object_list("public")) == 4
    assert load_profile(str(_write(tmp_path, GOOD))).name == "tiny"  # a path given as text


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            "class_id = 8\n",
            "class_id = 2\n",
            r"objects\[1\] \(0-0:1\.0\.0\*255\)\.class_id: 2 is not a declared class id",
        ),
        (
            "class_id = 8\nversion = 0",
            "class_id = 8\nversion = 3",
            r"\.version: Clock version 3 is not declared; use one of \[0\]",
        ),
        (
            'logical_name = "0.0.1.0.0.255"',
            'logical_name = "0.0.1.0.0"',
            r"objects\[1\]\.logical_name: .*255",
        ),
        (
            "time_zone = -60",
            "timezone = -60",
            r"Clock: attributes\.timezone: Clock \(class 8 v0\) has no attribute 'timezone'",
        ),
        (
            "time_zone = -60",
            "time_zone = 99999",
            r"Clock: attributes\.time_zone: LONG must be in -32768\.\.32767",
        ),
        ('"clock:now"', '"clock:later"', r"attributes\.time\.source: unknown clock source 'later'"),
        (
            'scaler = 0\nunit = "Wh"\n',
            "",
            r"1-0:1\.8\.0\*255\) Register\.scaler: a Register needs scaler and unit",
        ),
        ('unit = "Wh"', 'unit = "kWh"', r"\.unit: unknown unit 'kWh'"),
        (
            '[3, "1.0.1.8.0.255", 2, 0]]',
            '[3, "1.0.2.8.0.255", 2, 0]]',
            r"capture_objects\[1\]: refers to 1-0:2\.8\.0\*255 \(class 3\), which is not in the profile",
        ),
        (
            '[3, "1.0.1.8.0.255", 2, 0]]',
            '[4, "1.0.1.8.0.255", 2, 0]]',
            r"refers to 1-0:1\.8\.0\*255 as class 4, but it is a Register",
        ),
        (
            '[3, "1.0.1.8.0.255", 2, 0]]',
            '[3, "1.0.1.8.0.255", 7, 0]]',
            r"Register \(class 3 v0\) has no attribute 7",
        ),
        (
            'default_access = "read"',
            'default_access = "everything"',
            r"associations\[0\] \(public\)\.default_access: unknown preset",
        ),
        ("client_sap = 16", 'client_sap = "16"', r"client_sap: must be an integer 0\.\.65535"),
        (
            '[[objects]]\nlogical_name = "0.0.40.0.1.255"\nclass_id = 15',
            '[[objects]]\nlogical_name = "0.0.40.0.9.255"\nclass_id = 15',
            r"logical_name: 0-0:40\.0\.1\*255 must be an Association LN object",
        ),
        ('name = "tiny"', 'name = "tiny"\nowner = "me"', r"profile\.owner: unknown key"),
        (
            "capture_period = 900",
            'capture_period = "900"',
            r"attributes\.capture_period: double-long-unsigned needs an integer",
        ),
    ],
)
def test_broken_profile_names_entry_and_field(tmp_path: Path, old: str, new: str, expected: str) -> None:
    assert old in GOOD
    path = _write(tmp_path, GOOD.replace(old, new, 1))
    with pytest.raises(ConfigError, match=expected) as info:
        load_profile(path)
    assert str(path) in str(info.value)
    assert not isinstance(info.value, InputError)


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("time_zone = -60", "time_zone = 1.5").replace('"clock:now"', '"clock:soon"')
    text += (
        '\n[[objects]]\nlogical_name = "1.0.1.8.0.255"\nclass_id = 3\nversion = 0\nscaler = 0\nunit = "Wh"\n'
    )
    text += (
        '\n[[objects]]\nlogical_name = "1.0.2.8.0.255"\nclass_id = 3\nversion = 0\nscaler = 0\nunit = 30\n'
        'access = { nobody = "read" }\n'
    )
    problems = check_profile(tomllib.loads(text), origin="x.toml")
    messages = [str(p) for p in problems]
    assert len(problems) == 4, messages
    assert any("time.source" in m for m in messages)
    assert any("time_zone" in m for m in messages)
    assert any("duplicate of objects[2]" in m for m in messages)
    assert any("access.nobody: no association named 'nobody'" in m for m in messages)
    with pytest.raises(ConfigError, match=r"4 problem\(s\) in the device profile"):
        load_profile(_write(tmp_path, text))


def test_access_tables(tmp_path: Path) -> None:
    text = GOOD.replace(
        "attributes = { time = ",
        'access = { public = { base = "read", attributes = { time = "authenticated-read-and-write" }, '
        'methods = { shift_time = "access" } } }\nattributes = { time = ',
    )
    clock = load_profile(_write(tmp_path, text)).object("0.0.1.0.0.255")
    access = clock.access["public"]
    assert access.attribute(2) == AccessMode.AUTHENTICATED_READ_AND_WRITE
    assert access.attribute(3) == AccessMode.READ_ONLY
    assert access.method(6) == MethodAccessMode.ACCESS
    assert access.method(1) == MethodAccessMode.NO_ACCESS
    assert access.attribute(99) == AccessMode.NO_ACCESS
    bad = text.replace('"access" }', '"sometimes" }').replace('time = "auth', 'tiem = "auth')
    problems = [str(p) for p in check_profile(tomllib.loads(bad))]
    assert any("access.public.attributes.tiem" in p for p in problems), problems
    assert any("methods.shift_time: unknown access 'sometimes'" in p for p in problems), problems


def test_file_level_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no bundled profile 'atlantis'; bundled: generic, india"):
        load_profile("atlantis")
    with pytest.raises(ConfigError, match="cannot read the profile"):
        load_profile(tmp_path / "missing.toml")
    with pytest.raises(ConfigError, match=r"ends in \.toml or \.json"):
        load_profile(_write(tmp_path, GOOD, "meter.yaml"))
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_profile(_write(tmp_path, "[profile\nname = 1"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_profile(_write(tmp_path, "{", "meter.json"))
    with pytest.raises(ConfigError, match="at top level"):
        load_profile(_write(tmp_path, "[1, 2]", "meter.json"))
    with pytest.raises(ConfigError, match=r"profile\.name: a profile needs a name"):
        parse_profile({})
    with pytest.raises(ConfigError, match=r"objects: must be an array of tables"):
        parse_profile({"profile": {"name": "x"}, "objects": {"a": 1}})


def test_json_profiles_load(tmp_path: Path) -> None:
    document = tomllib.loads(GOOD)
    document["objects"][1]["attributes"]["daylight_savings_begin"] = "2024-03-31T02:00:00+01:00"
    path = tmp_path / "meter.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    profile = load_profile(path)
    begin = profile.object("0.0.1.0.0.255").value("daylight_savings_begin").as_date_time()
    assert (begin.month, begin.day, begin.hour, begin.deviation) == (3, 31, 2, -60)


def test_lookups_on_a_profile(generic: DeviceProfile) -> None:
    assert generic.find("1.8.0") is not None  # reduced OBIS forms work too
    assert generic.find("9.9.9") is None
    with pytest.raises(InputError, match="has no object"):
        generic.object("9.9.9")
    with pytest.raises(InputError, match="has no association 'nobody'"):
        generic.association("nobody")
    register = generic.object("1.0.1.8.0.255")
    assert register.interface is lookup(3)
    assert register.value(1) == Data.octet_string(Obis.parse("1.0.1.8.0.255").to_bytes())
    assert register.name == "Active energy import (+A) total"
    assert str(register) == "1-0:1.8.0*255 (Register (class 3 v0))"
    assert generic.object("0.0.17.0.0.255").scaler_unit is None


def _doc() -> dict[str, Any]:
    return tomllib.loads(GOOD)


def _set(path: str, value: object) -> Callable[[dict[str, Any]], None]:
    """A mutation: set ``a.b.0.c`` (numbers index lists) to ``value``."""

    def apply(doc: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = doc
        for part in parents:
            node = node[int(part)] if part.isdigit() else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return apply


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set("extra", 1), "extra: unknown top-level key"),
        (_set("profile", "tiny"), "profile: must be a table"),
        (_set("objects.3", "clock"), "objects[3]: must be a table, got 'clock'"),
        (_set("associations.0.secret", "x"), "associations[0].secret: unknown key"),
        (_set("associations.0.name", ""), "associations[0].name: an association needs a name"),
        (_set("associations.0.authentication", "magic"), "authentication: unknown mechanism 'magic'"),
        (_set("associations.0.logical_name", 5), "logical_name: needs an OBIS code as text"),
        (_set("objects.1.colour", "red"), ").colour: unknown key"),
        (_set("objects.1.name", 5), "Clock.name: must be text"),
        (_set("objects.1.attributes", [1]), "Clock.attributes: must be a table"),
        (_set("objects.1.attributes.logical_name", "0.0.1.0.0.255"), "give the logical name as the object's"),
        (_set("objects.1.attributes.time", {"source": "clock:now", "unit": "s"}), "next to source"),
        (
            _set("objects.1.attributes.time", {"source": "clock:now", "type": "quad"}),
            "time.type: unknown DLMS type",
        ),
        (
            _set("objects.1.attributes.time", {"source": "clock:now", "type": "unsigned"}),
            "type unsigned does not fit",
        ),
        (_set("objects.1.attributes.time", {"source": 5}), "time.source: unknown source kind '5'"),
        (_set("objects.1.scaler", 0), "Clock has no scaler_unit; remove scaler/unit"),
        (_set("objects.2.scaler", 200), "scaler: must be an integer -128..127"),
        (_set("objects.2.unit", 300), "unit: unit code must be 0..255"),
        (_set("objects.2.attributes.scaler_unit", [0, 30]), "scaler/unit given twice"),
        (_set("objects.1.access", "read"), "Clock.access: must be a table"),
        (_set("objects.1.access", {"public": "some"}), "access.public: unknown preset 'some'"),
        (_set("objects.1.access", {"public": 5}), "access.public: must be a preset name or a table"),
        (_set("objects.1.access", {"public": {"level": 1}}), "access.public.level: unknown key"),
        (_set("objects.1.access", {"public": {"base": "none"}}), "access.public.base: base must be one of"),
        (_set("objects.1.access", {"public": {"methods": {"wind_up": "access"}}}), "methods.wind_up: Clock"),
        (
            _set("objects.1.access", {"public": {"attributes": {"time": "sometimes"}}}),
            "unknown access 'sometimes'",
        ),
        (
            _set("objects.1.access", {"public": {"attributes": [1]}}),
            "attributes: must be a table of name = access",
        ),
    ],
)
def test_document_problems(mutate: Callable[[dict[str, Any]], None], expected: str) -> None:
    doc = _doc()
    mutate(doc)
    problems = [str(p) for p in check_profile(doc, origin="t.toml")]
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("t.toml") for p in problems)


def test_duplicate_associations_and_presets(tmp_path: Path) -> None:
    doc = _doc()
    doc["associations"].append(dict(doc["associations"][0]))
    problems = [str(p) for p in check_profile(doc)]
    assert any("duplicate association name" in p for p in problems), problems
    assert any("client SAP 16 is used by another association" in p for p in problems), problems
    doc = _doc()
    doc["associations"][0]["default_access"] = "read-write"
    doc["objects"][1]["access"] = {"public": "full"}
    profile = parse_profile(doc)
    register = profile.object("1.0.1.8.0.255").access["public"]
    assert register.attribute(1) == AccessMode.READ_ONLY
    assert register.attribute(2) == AccessMode.READ_AND_WRITE
    assert register.method(1) == MethodAccessMode.NO_ACCESS
    clock = profile.object("0.0.1.0.0.255").access["public"]
    assert clock.attribute(9) == AccessMode.READ_AND_WRITE
    assert clock.method(6) == MethodAccessMode.ACCESS
    doc["objects"][2]["unit"] = "WATT_HOUR"
    assert parse_profile(doc).object("1.0.1.8.0.255").scaler_unit == ScalerUnit(0, Unit.WATT_HOUR)
    doc["objects"][2]["unit"] = 58  # a code outside the table is kept
    assert parse_profile(doc).object("1.0.1.8.0.255").scaler_unit == ScalerUnit(0, 58)


def test_references_to_scripts_and_setups_are_checked() -> None:
    doc = _doc()
    doc["objects"][0]["attributes"] = {"security_setup_reference": "0.0.1.0.0.255"}
    action = {"class_id": 8, "logical_name": "0.0.1.0.0.255", "parameter": {"type": "integer", "value": 0}}
    doc["objects"] += [
        {
            "logical_name": "0.0.10.0.1.255",
            "class_id": 9,
            "version": 0,
            "attributes": {
                "scripts": [
                    {
                        "script_identifier": 1,
                        "actions": [
                            {"service_id": "write_attribute", "index": 12, **action},
                            {"service_id": "execute_method", "index": 9, **action},
                            {"service_id": "execute_method", "index": 6, **action},  # shift_time: fine
                        ],
                    }
                ]
            },
        },
        {
            "logical_name": "0.0.15.0.0.255",
            "class_id": 22,
            "version": 0,
            "attributes": {"executed_script": ["1.0.1.8.0.255", 1]},
        },
    ]
    problems = [str(p) for p in check_profile(doc)]
    assert len(problems) == 4, problems
    assert any(
        "attributes.security_setup_reference: 0-0:1.0.0*255 must be a Security setup object (class 64)" in p
        for p in problems
    ), problems
    assert any("scripts[0].actions[0]: script writes attribute 12, but Clock" in p for p in problems), (
        problems
    )
    assert any("scripts[0].actions[1]: script executes method 9, but Clock" in p for p in problems), problems
    assert any(
        "executed_script.script_logical_name: 1-0:1.8.0*255 must be a Script table object" in p
        for p in problems
    ), problems
