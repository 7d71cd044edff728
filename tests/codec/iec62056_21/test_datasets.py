"""Data sets ``address(value*unit)``: parsing rules and limits (protocols.md 1.9, 1.12)."""

from __future__ import annotations

import time as clock
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.codec.iec62056_21 import (
    SAMPLE_READOUT,
    DataSet,
    Value,
    parse_data_block,
    parse_data_line,
    parse_date,
    parse_time,
    parse_timestamp,
)
from metercom.model.obis import Obis


def one(line: str, **kwargs: bool) -> DataSet:
    sets = parse_data_line(line, **kwargs)
    assert len(sets) == 1, sets
    return sets[0]


def test_sample_readout_data_sets() -> None:
    sets = SAMPLE_READOUT.datasets
    assert [s.address for s in sets] == ["0.0.0", "0.9.1", "0.9.2", "1.8.0", "1.6.0"]
    assert sets[0].value == Value("EM72000656621")
    assert sets[3].obis == Obis(1, 0, 1, 8, 0, 255)
    assert sets[3].value == Value("343642.9", Decimal("343642.9"), "kWh")
    demand = sets[4]
    assert demand.values == (Value("18014", Decimal(18014), "kW"), Value("10-02-01 00:15"))
    stamp = parse_timestamp(demand.values[1].text, UTC)
    assert stamp == datetime(2010, 2, 1, 0, 15, tzinfo=UTC)
    assert parse_time(sets[1].values[0].text) == time(17, 27, 51)
    assert parse_date(sets[2].values[0].text) == date(2010, 2, 9)
    assert all(s.parsed for s in sets)
    assert [s.raw for s in sets] == SAMPLE_READOUT.data.split("\r\n")[:-1]


@pytest.mark.parametrize(
    ("line", "address", "obis", "values"),
    [
        # several values per data set
        (
            "1.6.0(18014*kW)(10-02-01 00:15)",
            "1.6.0",
            Obis(1, 0, 1, 6, 0),
            [("18014", "18014", "kW"), ("10-02-01 00:15", None, None)],
        ),
        # decimal comma and short codes (Kamstrup 685)
        ("1.6(000007,4*kW)", "1.6", Obis(1, 0, 1, 6, 0), [("000007,4", "7.4", "kW")]),
        ("1.20(0083038*kWh)", "1.20", Obis(1, 0, 1, 20, 0), [("0083038", "83038", "kWh")]),
        # unit inside the value (Iskra MT171)
        ("1-0:1.8.1*255(0000000 kWh)", "1-0:1.8.1*255", Obis(1, 0, 1, 8, 1), [("0000000", "0", "kWh")]),
        # empty unit (Itron ACE3000)
        ("1.8.0(013925.5*)", "1.8.0", Obis(1, 0, 1, 8, 0), [("013925.5", "13925.5", None)]),
        # & and * as billing-period separators (L+G ZMD405)
        ("1.8.1*12(001234.5*kWh)", "1.8.1*12", Obis(1, 0, 1, 8, 1, 12), [("001234.5", "1234.5", "kWh")]),
        ("1.8.1&12(001234.5*kWh)", "1.8.1&12", Obis(1, 0, 1, 8, 1, 12), [("001234.5", "1234.5", "kWh")]),
        ("1.8.0*00(007900.58)", "1.8.0*00", Obis(1, 0, 1, 8, 0, 0), [("007900.58", "7900.58", None)]),
        # letter codes
        ("F.F(00000000)", "F.F", Obis(1, 0, 97, 97, 0), [("00000000", "0", None)]),
        ("C.1.0(54800102)", "C.1.0", Obis(1, 0, 96, 1, 0), [("54800102", "54800102", None)]),
        ("C.90.1(1a2b)", "C.90.1", Obis(1, 0, 96, 90, 1), [("1a2b", None, None)]),
        ("0-0:C.1.0(72432595)", "0-0:C.1.0", Obis(0, 0, 96, 1, 0), [("72432595", "72432595", None)]),
        ("FF(00000000)", "FF", None, [("00000000", "0", None)]),  # not OBIS: kept by address
        # NUL and space padding (RIOT-OS capture)
        ("0.0.0(\0\0\0\0\0\0\0\0)", "0.0.0", Obis(1, 0, 0, 0, 0), [("", None, None)]),
        ("C.2.1(1234)(      )", "C.2.1", Obis(1, 0, 96, 2, 1), [("1234", "1234", None), ("", None, None)]),
        ("  1.8.0( 12.5 * kWh )", "1.8.0", Obis(1, 0, 1, 8, 0), [("12.5", "12.5", "kWh")]),
        # empty value, address-less answer, signs, '/' inside an address (Siemens TD-3511)
        ("0.0.0()", "0.0.0", Obis(1, 0, 0, 0, 0), [("", None, None)]),
        ("(343642.9*kWh)", "", None, [("343642.9", "343642.9", "kWh")]),
        ("1.7.0(-00.377*kW)", "1.7.0", Obis(1, 0, 1, 7, 0), [("-00.377", "-0.377", "kW")]),
        ("96.5/1(00)", "96.5/1", None, [("00", "0", None)]),
        ("1.8.0(12a)", "1.8.0", Obis(1, 0, 1, 8, 0), [("12a", None, None)]),  # never half a number
        ("1.8.0(1e5)", "1.8.0", Obis(1, 0, 1, 8, 0), [("1e5", None, None)]),
        ("1.8.0(12 34)", "1.8.0", Obis(1, 0, 1, 8, 0), [("12 34", None, None)]),
    ],
)
def test_data_set_forms(
    line: str, address: str, obis: Obis | None, values: list[tuple[str, str | None, str | None]]
) -> None:
    data_set = one(line)
    assert data_set.address == address
    assert data_set.obis == obis
    assert data_set.parsed
    expected = tuple(Value(t, None if n is None else Decimal(n), u) for t, n, u in values)
    assert data_set.values == expected
    assert data_set.raw == line.strip(" \x00")


def test_several_data_sets_per_line() -> None:
    sets = parse_data_line("1.8.1(1*kWh)1.8.2(2*kWh) 2.8.0(3*kWh)(4)")
    assert [s.address for s in sets] == ["1.8.1", "1.8.2", "2.8.0"]
    assert [s.raw for s in sets] == ["1.8.1(1*kWh)", "1.8.2(2*kWh)", "2.8.0(3*kWh)(4)"]
    assert sets[2].values[1].number == 4


@pytest.mark.parametrize(
    "line",
    [
        "garbage",
        "1.8.0(12",  # unbalanced
        "1.8.0)12(",
        "1.8.0(1(2))",
        "1.8.0(1)trailing",
        "1.8.0(1*k*Wh)",  # two unit separators
        "1.8.0(" + "1" * 33 + ")",  # value longer than 32
        "1.8.0(1*" + "k" * 17 + ")",  # unit longer than 16
        "a" * 17 + "(1)",  # address longer than 16
        "1.8.0(1\x0122)",  # control character inside a value
        "1.8.0(\x07)",
        "!",
    ],
)
def test_unparseable_lines_are_kept_raw(line: str) -> None:
    data_set = one(line)
    assert not data_set.parsed
    assert data_set.values == ()
    assert data_set.obis is None
    assert data_set.raw == line
    assert data_set.value is None


def test_programming_mode_allows_128_character_values() -> None:
    line = "P.01(" + "1" * 128 + ")"
    assert not one(line).parsed
    assert one(line, programming=True).values[0].text == "1" * 128
    assert not one("P.01(" + "1" * 129 + ")", programming=True).parsed


def test_block_keeps_every_line_and_skips_blank_ones() -> None:
    sets = parse_data_block("1.8.0(1)\r\n\r\nnonsense\r\n2.8.0(2)\n3.8.0(3)\r\0\0\r\n")
    assert [s.raw for s in sets] == ["1.8.0(1)", "nonsense", "2.8.0(2)", "3.8.0(3)"]
    assert [s.parsed for s in sets] == [True, False, True, True]


def test_data_set_builders() -> None:
    data_set = DataSet.of("1.8.0", Value.of(Decimal("343642.9"), "kWh"), Value.of("10-02-01 00:15"))
    assert data_set.raw == "1.8.0(343642.9*kWh)(10-02-01 00:15)"
    assert data_set.to_text() == data_set.raw
    assert one(data_set.raw) == data_set
    assert Value.of(12).number == 12
    assert Value.of("x", "").unit is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("10-02-01 00:15", (2010, 2, 1, 0, 15)),
        ("10-02-01 00:15:30", (2010, 2, 1, 0, 15, 30)),
        ("2010-02-01 00:15", (2010, 2, 1, 0, 15)),
        ("1002010015", (2010, 2, 1, 0, 15)),
        ("100201001530", (2010, 2, 1, 0, 15, 30)),
        ("101209113020W", (2010, 12, 9, 11, 30, 20)),
        ("99-12-31 23:59", (1999, 12, 31, 23, 59)),
        ("10-13-01 00:15", None),
        ("10-02-30 00:15", None),
        ("10-02-01", None),
        ("EM72000656621", None),
        ("", None),
    ],
)
def test_parse_timestamp(text: str, expected: tuple[int, ...] | None) -> None:
    zone = timezone(timedelta(hours=1))
    result = parse_timestamp(text, zone)
    assert result == (None if expected is None else datetime(*expected, tzinfo=zone))
    if result is not None:
        assert result.tzinfo is zone


def test_parse_date_and_time() -> None:
    assert parse_date("100209") == date(2010, 2, 9)
    assert parse_date("10-02-09") == date(2010, 2, 9)
    assert parse_date("2010-02-09") == date(2010, 2, 9)
    assert parse_date("101309") is None
    assert parse_date("1002") is None
    assert parse_time("172751") == time(17, 27, 51)
    assert parse_time("23:16:43") == time(23, 16, 43)
    assert parse_time("23:16") == time(23, 16)
    assert parse_time("250000") is None
    assert parse_time("x") is None


# -- properties ------------------------------------------------------------------------------------


@given(st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=400))
def test_parser_total_and_lossless(text: str) -> None:
    """Never raises; each data set is parsed or raw; no non-blank line disappears."""
    sets = parse_data_block(text)
    raws = "\n".join(s.raw for s in sets)
    for s in sets:
        if s.parsed:
            assert s.raw.endswith(")")
            for value in s.values:
                if value.number is not None:
                    assert "*" not in value.text
                    assert Decimal(value.text.replace(",", ".")) == value.number
        else:
            assert s.values == ()
            assert s.obis is None
    for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
        if line.strip(" \x00"):
            assert line.strip(" \x00")[:1] in raws


_numbers = st.builds(
    lambda whole, fraction, separator: str(whole) + ("" if fraction is None else f"{separator}{fraction}"),
    st.integers(0, 99_999_999),
    st.none() | st.integers(0, 999),
    st.sampled_from(".,"),
)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1.8.0", "C.1.0", "F.F", "1-0:2.8.1*01", "x"]),
            st.lists(st.tuples(_numbers, st.sampled_from(["", "kWh", "V"])), min_size=1, max_size=3),
        ),
        max_size=10,
    )
)
def test_generated_readouts_parse_exactly(lines: list[tuple[str, list[tuple[str, str]]]]) -> None:
    text = "".join(
        address + "".join(f"({number}*{unit})" if unit else f"({number})" for number, unit in values) + "\r\n"
        for address, values in lines
    )
    sets = parse_data_block(text)
    assert len(sets) == len(lines)
    for data_set, (address, values) in zip(sets, lines, strict=True):
        assert data_set.address == address
        assert [(v.text, v.unit) for v in data_set.values] == [(n, u or None) for n, u in values]
        assert all(
            v.number == Decimal(n.replace(",", "."))
            for v, (n, _) in zip(data_set.values, values, strict=True)
        )


def test_bounded_work_on_long_input() -> None:
    text = ("1.8.0(" * 20000) + ("(1)" * 20000) + "\r\n" + ("x" * 100000)
    started = clock.perf_counter()
    sets = parse_data_block(text)
    assert clock.perf_counter() - started < 1.0
    assert len(sets) == 2
    assert not any(s.parsed for s in sets)
