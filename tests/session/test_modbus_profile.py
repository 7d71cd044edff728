"""Modbus device profiles (model/modbus_profile.py): loading, validation as a whole, scaling, OBIS choice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path

import pytest

from metercom.errors import ConfigError, InputError
from metercom.model.modbus_profile import (
    ActionSlot,
    DeviceEvent,
    RegisterTable,
    load_modbus_profile,
    profile_from_toml,
    profile_names,
)
from metercom.model.obis import Obis

MINIMAL = """
name = "mini"
phases = 1
functions = [3, 4]
[identify]
table = "input"
address = 0
count = 1
[[read]]
table = "input"
address = 0
count = 2
[[point]]
name = "v"
table = "input"
address = 0
scale = "0.1"
unit = "V"
obis = "1-0:12.7.0"
"""


def test_shipped_profiles() -> None:
    assert profile_names() == ["pmtr3", "pzem004t"]
    pzem = load_modbus_profile("pzem004t")
    assert pzem.phases == 1
    assert [p.name for p in pzem.polled_points] == [
        "voltage",
        "current",
        "active_power",
        "active_energy",
        "frequency",
        "power_factor",
        "alarm",
    ]
    assert pzem.point("current").width == 2
    assert pzem.point("current").word_order == "little"
    assert pzem.reset_energy_function == 0x42
    assert (pzem.baud_rate, pzem.frame_format) == (9600, "8N1")
    pmtr3 = load_modbus_profile("pmtr3")
    assert len(pmtr3.polled_points) == 27
    assert pmtr3.read_blocks[0].count == 58
    assert pmtr3.identify.expect == (0x5033,)
    assert pmtr3.relays is not None
    assert pmtr3.relays.slots is not None
    assert pmtr3.relays.slots.address(7) == 0x0040 + 7 * 8
    assert pmtr3.event_log is not None
    assert pmtr3.event_log.entries.end == 0x0110 + 32 * 6
    assert pmtr3.event_log.index_of(33) == 0
    assert load_modbus_profile("pmtr3") is pmtr3  # cached
    assert RegisterTable.HOLDING.read_function == 0x03


def test_point_values() -> None:
    pzem = load_modbus_profile("pzem004t")
    current = pzem.point("current")
    assert current.decode(1234) == Decimal("1.234")
    assert current.encode(Decimal("1.234")) == 1234
    assert current.encode(1.2345) == 1234  # half-even at the LSB
    assert current.clamp(1e12) == 0xFFFFFFFF
    assert pzem.point("alarm").decode(0xFFFF) is True
    assert pzem.point("alarm").encode(True) == 0xFFFF
    address = pzem.point("address")
    assert address.encode(247) == 247
    for bad in (0, 248, "x", None):
        with pytest.raises(InputError):
            address.encode(bad)  # type: ignore[arg-type]
    pmtr3 = load_modbus_profile("pmtr3")
    mode = pmtr3.point("voltage_mode_setting")
    assert mode.decode(1) == "LL"
    assert mode.decode(9) == "9"
    assert mode.encode("LN") == 0
    with pytest.raises(InputError, match="is not one of"):
        mode.encode("XX")
    clock = pmtr3.point("clock")
    when = datetime(2030, 1, 1, tzinfo=UTC)
    assert clock.decode(clock.encode(when)) == when
    assert clock.encode(when.astimezone(timezone(timedelta(hours=5)))) == int(when.timestamp())
    with pytest.raises(InputError, match="timezone-aware"):
        clock.encode(datetime(2030, 1, 1))  # noqa: DTZ001 - the point of the test
    with pytest.raises(InputError):
        clock.encode(float("nan"))


def test_readings_choose_line_to_line_codes_and_the_device_time() -> None:
    pmtr3 = load_modbus_profile("pmtr3")
    raw = {p.name: 0 for p in pmtr3.polled_points}
    raw["l1.voltage"] = 3984
    raw["device_time"] = 1_800_000_000
    ln = {r.address: r for r in pmtr3.readings(raw)}
    assert ln["l1.voltage"].obis == Obis.parse("1-0:32.7.0")
    assert ln["l1.voltage"].captured_at == datetime.fromtimestamp(1_800_000_000, UTC)
    raw["voltage_mode"] = 1
    ll = {r.address: r for r in pmtr3.readings(raw)}
    assert ll["l1.voltage"].obis == Obis.parse("1-0:32.7.128")
    assert ll["l1.voltage"].value == Decimal("398.4")
    assert ll["l1.current"].obis == Obis.parse("1-0:31.7.0")  # only voltages change
    assert ll["l2.frequency"].obis is None
    assert ll["l2.frequency"].label == "l2.frequency"
    given = datetime(2026, 1, 1, tzinfo=UTC)
    assert pmtr3.readings(raw, captured_at=given)[0].captured_at == given


def test_records() -> None:
    pmtr3 = load_modbus_profile("pmtr3")
    slot = ActionSlot(3, True, 2, "open", "power_above", 5000)
    assert pmtr3.decode_slot(3, pmtr3.encode_slot(slot)) == slot
    for bad in (
        ActionSlot(0, True, 5, "open", "at_time", 0),
        ActionSlot(0, True, 1, "toggle", "at_time", 0),
        ActionSlot(0, True, 1, "open", "sunrise", 0),
        ActionSlot(0, True, 1, "open", "at_time", -1),
    ):
        with pytest.raises(InputError):
            pmtr3.encode_slot(bad)
    event = DeviceEvent(7, datetime(2030, 1, 1, tzinfo=UTC), 4, "relay_opened", 1)
    assert pmtr3.decode_event(pmtr3.encode_event(event)) == event
    assert pmtr3.decode_event({"seq": 1, "time": 0, "code": 99, "detail": 0}).name == "code_99"
    assert event.to_json()["name"] == "relay_opened"
    assert pmtr3.relays is not None
    assert pmtr3.relays.slots is not None
    with pytest.raises(InputError):
        pmtr3.relays.slots.address(8)
    with pytest.raises(KeyError):
        pmtr3.relays.slots.field("nope")
    pzem = load_modbus_profile("pzem004t")
    with pytest.raises(InputError):
        pzem.decode_event({})
    with pytest.raises(InputError):
        pzem.encode_slot(slot)
    with pytest.raises(InputError, match="has no point"):
        pzem.point("nope")


def test_a_minimal_profile_and_a_profile_file(tmp_path: Path) -> None:
    profile = profile_from_toml(MINIMAL)
    assert profile.point("v").obis == Obis.parse("12.7.0")
    path = tmp_path / "mini.toml"
    path.write_text(MINIMAL, encoding="utf-8")
    assert load_modbus_profile(path).name == "mini"
    assert load_modbus_profile(str(path)).name == "mini"
    with pytest.raises(ConfigError, match="cannot read profile"):
        load_modbus_profile(tmp_path / "missing.toml")
    with pytest.raises(InputError, match="unknown Modbus device profile 'nope'"):
        load_modbus_profile("nope")


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (("", "colour = 1\n"), "unknown key"),
        (('unit = "V"', 'unit = "V"\nfoo = 1'), "unknown key.*'foo'"),
        (('scale = "0.1"', "scale = 0.1"), "decimal string"),
        (('scale = "0.1"', 'scale = "-1"'), "must be positive"),
        (('scale = "0.1"', 'scale = "abc"'), "not a decimal"),
        (('obis = "1-0:12.7.0"', 'obis = "nonsense"'), "not an OBIS code"),
        (
            ('table = "input"\naddress = 0\nscale', 'table = "coils"\naddress = 0\nscale'),
            "'input' or 'holding'",
        ),
        (('unit = "V"', 'unit = "V"\ntype = "float32"'), "'type' must be one of"),
        (('unit = "V"', 'unit = "V"\nword_order = "middle"'), "'word_order'"),
        (('unit = "V"', 'unit = "V"\nkind = "blob"'), "'kind' must be one of"),
        (('unit = "V"', 'unit = "V"\nwritable = true'), "read-only"),
        (("count = 2", "count = 200"), "'count' must be 1..125"),
        (("functions = [3, 4]", "functions = []"), "'functions'"),
        (("functions = [3, 4]", "functions = [3, 4]\nreset_energy_function = 66"), "not in 'functions'"),
        (("phases = 1", "phases = 4"), "'phases' must be 1..3"),
        (('name = "mini"', "name = 5"), "'name' must be a string"),
        (('unit = "V"', 'unit = "V"\nphase = true'), "'phase' must be an integer"),
        (("", 'address_point = "v"\n'), "must be a holding register"),
        (("", 'alarm_threshold_point = "w"\n'), "'w', which is not defined"),
        (("+", '[clock]\npoint = "v"\n'), "kind 'unix_time'"),
        (
            (
                '[[point]]\nname = "v"',
                '[[point]]\nname = "v2"\ntable = "input"\naddress = 1\n[[point]]\nname = "v"',
            ),
            None,
        ),
    ],
)
def test_validation_errors(change: tuple[str, str], match: str | None) -> None:
    old, new = change
    if old == "":
        text = new + MINIMAL
    elif old == "+":
        text = MINIMAL + new
    else:
        text = MINIMAL.replace(old, new, 1)
    if match is None:
        assert profile_from_toml(text).has_point("v2")
        return
    with pytest.raises(ConfigError, match=match):
        profile_from_toml(text, where="test.toml")


@pytest.mark.parametrize(
    ("extra", "match"),
    [
        ('[[point]]\nname = "v"\ntable = "holding"\naddress = 5\n', "duplicate point"),
        ('[[point]]\nname = "w"\ntable = "input"\naddress = 0\n', "overlaps 'v'"),
        ('[[point]]\nname = "w"\ntable = "input"\naddress = 0xFFFF\ntype = "uint32"\n', "runs past"),
        (
            '[[point]]\nname = "e"\ntable = "input"\naddress = 1\nkind = "enum"\nvalues = { x = "a" }\n',
            "integer codes",
        ),
    ],
)
def test_validation_of_the_whole_profile(extra: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        profile_from_toml(MINIMAL + extra)


def test_validation_of_records() -> None:
    pmtr3_text = (Path(__file__).parents[2] / "src/metercom/model/profiles/modbus/pmtr3.toml").read_text()
    broken = pmtr3_text.replace('{ name = "state", offset = 6, type = "uint16" },', "")
    with pytest.raises(ConfigError, match="slot fields missing: state"):
        profile_from_toml(broken)
    broken = pmtr3_text.replace('{ name = "detail", offset = 5, type = "uint16" },', "")
    with pytest.raises(ConfigError, match="entry fields missing: detail"):
        profile_from_toml(broken)
    broken = pmtr3_text.replace(
        '{ name = "parameter", offset = 4, type = "uint32" }',
        '{ name = "parameter", offset = 7, type = "uint32" }',
    )
    with pytest.raises(ConfigError, match=r"'offset' must be 0\.\.7|runs past the record"):
        profile_from_toml(broken)
    broken = pmtr3_text.replace("base = 0x0040", "base = 0x0030")
    with pytest.raises(ConfigError, match="inside the relay slots records"):
        profile_from_toml(broken)
    broken = pmtr3_text.replace("load_relay = 1", "load_relay = 9")
    with pytest.raises(ConfigError, match=r"'load_relay' must be 1\.\.4"):
        profile_from_toml(broken)
    broken = pmtr3_text.replace(
        'names = ["main contactor", "auxiliary 1", "auxiliary 2", "auxiliary 3"]', 'names = ["x"]'
    )
    with pytest.raises(ConfigError, match="'names' has 1 entries"):
        profile_from_toml(broken)
    with pytest.raises(ConfigError, match="not valid TOML"):
        profile_from_toml("name = ")
