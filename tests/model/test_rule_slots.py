"""Slot images of rules pushed to a meter (metercom.model.rules.slots): register packing, CRC, and
a decoder that raises only RuleSlotError (a RemoteProtocolError) on anything a peer sends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.errors import RemoteProtocolError
from metercom.model.rules import Command, Rule, RuleSlotError, encode_slot, parse_image
from metercom.model.rules.slots import (
    image_of_registers,
    image_registers,
    program_of_image,
    relay_outputs,
    slot_crc,
)

OUTPUTS = relay_outputs(4)
RULE = Rule.from_text(
    "ov", "(L1U > 253) || (L2U > 253)", window=timedelta(seconds=10), recovery=timedelta(seconds=60),
    action=Command.DISCONNECT, targets=("relay1", "relay3"),
)  # fmt: skip


def test_an_image_survives_registers_and_keeps_its_program() -> None:
    image = encode_slot(RULE, OUTPUTS)
    registers = image_registers(image)
    assert len(registers) == (len(image) + 1) // 2
    assert image_of_registers(registers, len(image)) == image
    assert parse_image(image, OUTPUTS) == RULE
    assert program_of_image(image) == RULE.expression.to_bytes()
    assert slot_crc(b"") == 0
    assert slot_crc(image) != 0
    assert image_registers(b"\x12\x34\x56") == [0x1234, 0x5600]


def test_parse_image_reports_a_remote_protocol_error() -> None:
    image = encode_slot(RULE, OUTPUTS)
    with pytest.raises(RuleSlotError, match="output 3 has no target id") as info:
        parse_image(image, relay_outputs(2))
    assert isinstance(info.value, RemoteProtocolError)
    with pytest.raises(RuleSlotError):
        image_of_registers([1, 2], 5)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.builds(lambda cut, tail: encode_slot(RULE, OUTPUTS)[:cut] + tail,
                                           st.integers(0, 80), st.binary(max_size=6)))  # fmt: skip
def test_parse_image_raises_only_rule_slot_errors(data: bytes) -> None:
    try:
        rule = parse_image(data, OUTPUTS)
    except RuleSlotError:
        return
    assert encode_slot(rule, OUTPUTS) == data or parse_image(encode_slot(rule, OUTPUTS), OUTPUTS) == rule


def _pmtr3_text() -> str:
    from importlib import resources

    return (resources.files("metercom.model.profiles.modbus") / "pmtr3.toml").read_text(encoding="utf-8")


def test_the_pmtr3_profile_describes_its_rule_slots() -> None:
    from metercom.model.modbus_profile import load_modbus_profile

    relays = load_modbus_profile("pmtr3").relays
    assert relays is not None
    spec = relays.rules
    assert spec is not None
    assert (spec.slots.base, spec.slots.size, spec.slots.count, spec.image_offset) == (0x0300, 120, 8, 4)
    assert spec.image_bytes == 232
    assert spec.status.base == 0x0210
    assert spec.status.count == 8


@pytest.mark.parametrize(
    ("old", "new", "fragment"),
    [
        ('    { name = "crc", offset = 1, type = "uint32" },\n]\n\n[relays.rules.status]',
         "]\n\n[relays.rules.status]", "slot fields missing: crc"),
        ("image_offset = 4", "image_offset = 2", "slot fields must lie before 'image_offset'"),
        ("base = 0x0210", "base = 0x0300", "overlap"),
        ("image_offset = 4", "image_offset = 4\nwindow = 3", "unknown key(s) 'window'"),
    ],
)  # fmt: skip
def test_a_profile_with_a_broken_rule_area_is_refused(old: str, new: str, fragment: str) -> None:
    from metercom.errors import ConfigError
    from metercom.model.modbus_profile import profile_from_toml

    text = _pmtr3_text()
    assert old in text
    with pytest.raises(ConfigError, match="rules") as info:
        profile_from_toml(text.replace(old, new, 1), where="broken.toml")
    assert fragment in str(info.value)
