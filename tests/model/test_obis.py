from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.errors import InputError, MetercomError
from metercom.model.obis import Obis


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1-0:1.8.0*255", Obis(1, 0, 1, 8, 0, 255)),
        ("1.0.1.8.0.255", Obis(1, 0, 1, 8, 0, 255)),
        ("1.8.0", Obis(1, 0, 1, 8, 0, 255)),
        ("1.8.1*12", Obis(1, 0, 1, 8, 1, 12)),
        ("1.8.1&12", Obis(1, 0, 1, 8, 1, 12)),
        ("1-0:1.8.0", Obis(1, 0, 1, 8, 0, 255)),
        ("0-0:C.1.0", Obis(0, 0, 96, 1, 0, 255)),
        ("C.1.0", Obis(1, 0, 96, 1, 0, 255)),
        ("F.F", Obis(1, 0, 97, 97, 0, 255)),
        ("0.9.1", Obis(1, 0, 0, 9, 1, 255)),
        ("1.20", Obis(1, 0, 1, 20, 0, 255)),
        ("1-0:1.8.1*255", Obis(1, 0, 1, 8, 1, 255)),
        ("1.8.0*00", Obis(1, 0, 1, 8, 0, 0)),
        ("0100010800FF", Obis(1, 0, 1, 8, 0, 255)),
        ("  32.7.0 ", Obis(1, 0, 32, 7, 0, 255)),
        ("0.0.1.0.0.255", Obis(0, 0, 1, 0, 0, 255)),
    ],
)
def test_parse_forms(text: str, expected: Obis) -> None:
    assert Obis.parse(text) == expected


@pytest.mark.parametrize(
    "text",
    ["", "1", "1.8.0.", "1-0:1.8.0*256", "256.8.0", "1.8.X", "a-b:c.d.e", "1.8.0*", "1..8", "1.0.1.8.0.999"],
)
def test_parse_rejects(text: str) -> None:
    with pytest.raises(InputError, match="OBIS"):
        Obis.parse(text)
    with pytest.raises(MetercomError):
        Obis.parse(text)


def test_canonical_forms() -> None:
    code = Obis.parse("1.8.0")
    assert str(code) == "1-0:1.8.0*255"
    assert code.dotted == "1.0.1.8.0.255"
    assert code.short == "1.8.0"
    assert Obis.parse("C.1.0").short == "C.1.0"
    assert Obis.parse("F.F").short == "F.F.0"
    assert Obis.parse("0-0:1.0.0").short == "0-0:1.0.0"
    assert Obis.parse("1.8.1*12").short == "1.8.1*12"


def test_bytes_round_trip() -> None:
    code = Obis.from_bytes(bytes.fromhex("0100010800ff"))
    assert code.to_bytes() == bytes.fromhex("0100010800ff")
    with pytest.raises(InputError, match="6 bytes"):
        Obis.from_bytes(b"\x01\x02")


def test_names() -> None:
    assert Obis.parse("1.8.0").name == "Active energy import (+A) total"
    assert Obis.parse("1.8.2").name == "Active energy import (+A) total, tariff 2"
    assert Obis.parse("32.7.0").name == "Voltage L1 instantaneous"
    assert Obis.parse("1.7.0").name == "Active power import (+A) instantaneous"
    assert Obis.parse("0-0:1.0.0*255").name == "Clock"
    assert Obis.parse("F.F").name == "Error register"
    assert Obis.parse("0.9.1").name == "Local time"
    assert Obis.parse("1-0:200.0.0").name is None


def test_value_group_range_checked() -> None:
    with pytest.raises(InputError):
        Obis(1, 0, 1, 8, 0, 256)


groups = st.integers(0, 255)


@given(st.tuples(groups, groups, groups, groups, groups, groups))
def test_str_round_trips(values: tuple[int, int, int, int, int, int]) -> None:
    code = Obis(*values)
    a, b = values[:2]
    assert Obis.parse(str(code)) == code
    assert Obis.parse(code.dotted) == code
    assert Obis.parse(code.short, default_a=a, default_b=b) == code
    assert Obis.from_bytes(code.to_bytes()) == code


@given(st.text(max_size=40))
def test_parse_only_raises_input_error(text: str) -> None:
    with contextlib.suppress(InputError):
        Obis.parse(text)
