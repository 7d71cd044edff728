"""The DLMS value model (metercom.model.dlms_data): builders, date/time, bit strings, access.

Vectors: "DateTime with deviation -120" and "DateTime unspecified deviation" from
/work/shared/reference/dlms-vectors.json (dlms-cosem tests/test_time.py).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metercom.errors import MetercomError
from metercom.model.dlms_data import (
    DEVIATION_NOT_SPECIFIED,
    NOT_SPECIFIED,
    YEAR_NOT_SPECIFIED,
    BitString,
    ClockStatus,
    CompactArray,
    CosemDate,
    CosemDateTime,
    CosemTime,
    Data,
    DlmsType,
    DlmsValueError,
    TypeDescription,
)

BERLIN = ZoneInfo("Europe/Berlin")


# --- date-time ----------------------------------------------------------------------------------


def test_vector_deviation_minus_120() -> None:
    value = CosemDateTime.from_bytes(bytes.fromhex("07e40101ff00030000ff8800"))
    assert value == CosemDateTime(2020, 1, 1, NOT_SPECIFIED, 0, 3, 0, 0, -120, 0)
    assert value.is_fully_specified
    assert value.status == ClockStatus.OK
    # Blue Book sign: deviation = minutes from local time to UTC, so -120 is UTC+02:00
    assert value.to_datetime() == dt.datetime(2020, 1, 1, 0, 3, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert value.to_datetime(invert_deviation=True).utcoffset() == dt.timedelta(hours=-2)
    assert str(value) == "2020-01-01 00:03:00.00 dev=-120 status=0x00"


def test_vector_unspecified_deviation() -> None:
    raw = bytes.fromhex("07e2020cff00000000800000")
    value = CosemDateTime.from_bytes(raw)
    assert value.deviation == DEVIATION_NOT_SPECIFIED
    assert not value.is_fully_specified
    with pytest.raises(DlmsValueError, match="no deviation"):
        value.to_datetime()
    assert value.to_datetime(default_tz=BERLIN) == dt.datetime(2018, 2, 12, tzinfo=BERLIN)
    assert value.to_bytes() == raw
    assert str(value) == "2018-02-12 00:00:00.00 dev=* status=0x00"


def test_all_fields_not_specified() -> None:
    value = CosemDateTime()
    assert value.to_bytes() == bytes.fromhex("ffffffffffffffffff8000ff")
    assert value.year == YEAR_NOT_SPECIFIED
    assert value.status is None
    assert str(value) == "****-**-** **:**:**.** dev=* status=*"
    with pytest.raises(DlmsValueError, match="not fully specified"):
        value.to_datetime(default_tz=dt.UTC)
    # repeating schedules: every day at 06:00 (date not specified)
    daily = CosemDateTime(hour=6, minute=0, second=0, hundredths=0)
    assert daily.time.to_time() == dt.time(6, 0)
    assert not daily.date.is_specified


def test_special_month_and_day_values_survive() -> None:
    raw = bytes.fromhex("fffffefd07020000008000ff")  # last Sunday of DST begin... raw
    value = CosemDateTime.from_bytes(raw)
    assert (value.month, value.day, value.day_of_week) == (0xFE, 0xFD, 7)
    assert value.to_bytes() == raw
    with pytest.raises(DlmsValueError):
        value.to_datetime(default_tz=dt.UTC)


def test_invalid_calendar_values() -> None:
    with pytest.raises(DlmsValueError, match="invalid date-time"):
        CosemDateTime(2023, 2, 30, 0xFF, 0, 0, 0, 0, 0, 0).to_datetime()
    with pytest.raises(DlmsValueError, match="out of range"):
        CosemDateTime(2023, 1, 1, 0xFF, 0, 0, 0, 0, 2000, 0).to_datetime()
    with pytest.raises(DlmsValueError, match="not fully specified"):
        CosemDateTime(2023, 1, 1, 0xFF, 24, 0, 0, 0, 0, 0).to_datetime()
    with pytest.raises(DlmsValueError, match="out of range"):
        CosemDateTime(70000).to_bytes()
    with pytest.raises(DlmsValueError, match="12 bytes"):
        CosemDateTime.from_bytes(b"\x00" * 11)
    assert isinstance(DlmsValueError("x"), MetercomError)
    assert isinstance(DlmsValueError("x"), ValueError)


def test_hundredths_not_specified_counts_as_zero() -> None:
    value = CosemDateTime(2024, 5, 1, 3, 12, 0, 0, NOT_SPECIFIED, 0, 0)
    assert value.to_datetime() == dt.datetime(2024, 5, 1, 12, tzinfo=dt.UTC)


def test_from_datetime_summer_and_winter() -> None:
    summer = dt.datetime(2024, 7, 1, 12, 30, 15, 250_000, tzinfo=BERLIN)
    value = CosemDateTime.from_datetime(summer)
    assert value == CosemDateTime(2024, 7, 1, 1, 12, 30, 15, 25, -120, ClockStatus.DAYLIGHT_SAVING_ACTIVE)
    assert value.to_datetime() == summer
    winter = CosemDateTime.from_datetime(dt.datetime(2024, 1, 7, 0, 0, tzinfo=BERLIN), with_day_of_week=False)
    assert (winter.deviation, winter.clock_status, winter.day_of_week) == (-60, 0, NOT_SPECIFIED)
    with pytest.raises(DlmsValueError, match="aware"):
        CosemDateTime.from_datetime(dt.datetime(2024, 1, 1))  # noqa: DTZ001 - naive on purpose
    odd = dt.timezone(dt.timedelta(seconds=30))
    with pytest.raises(DlmsValueError, match="whole number of minutes"):
        CosemDateTime.from_datetime(dt.datetime(2024, 1, 1, tzinfo=odd))


def test_dst_flag_resolves_the_repeated_hour() -> None:
    """2024-10-27 02:30 happens twice in Berlin; the meter's DST bit says which."""
    first = CosemDateTime(2024, 10, 27, 7, 2, 30, 0, 0, DEVIATION_NOT_SPECIFIED, 0x80)
    second = first._replace(clock_status=0x00)
    assert first.to_datetime(default_tz=BERLIN).utcoffset() == dt.timedelta(hours=2)
    assert second.to_datetime(default_tz=BERLIN).utcoffset() == dt.timedelta(hours=1)


@given(
    st.datetimes(
        min_value=dt.datetime(2000, 1, 1),  # noqa: DTZ001 - hypothesis bounds are naive
        max_value=dt.datetime(2099, 12, 31),  # noqa: DTZ001
        timezones=st.just(BERLIN),
    )
)
def test_datetime_round_trip(value: dt.datetime) -> None:
    # a wall time in the spring-forward gap does not exist: take the real instant it names
    value = (
        value.replace(microsecond=value.microsecond // 10_000 * 10_000).astimezone(dt.UTC).astimezone(BERLIN)
    )
    cosem = CosemDateTime.from_datetime(value)
    back = cosem.to_datetime()
    # compare instants: PEP 495 makes ambiguous wall times unequal across zones
    assert back.timestamp() == value.timestamp()
    assert back.utcoffset() == value.utcoffset()
    assert back.replace(tzinfo=None) == value.replace(tzinfo=None)
    # without a deviation, the zone plus the DST bit still name the instant (repeated hour too)
    local = cosem._replace(deviation=DEVIATION_NOT_SPECIFIED).to_datetime(default_tz=BERLIN)
    assert local.timestamp() == value.timestamp()
    assert CosemDateTime.from_bytes(cosem.to_bytes()) == cosem


def test_date_and_time_parts() -> None:
    value = CosemDateTime(2024, 2, 29, 4, 23, 59, 58, 99, -60, 0)
    assert value.date == CosemDate(2024, 2, 29, 4)
    assert value.time == CosemTime(23, 59, 58, 99)
    assert value.date.to_date() == dt.date(2024, 2, 29)
    assert value.time.to_time() == dt.time(23, 59, 58, 990_000)
    assert CosemDate.from_date(dt.date(2024, 2, 29)) == CosemDate(2024, 2, 29, 4)
    assert CosemTime.from_time(dt.time(1, 2, 3, 456_789)) == CosemTime(1, 2, 3, 45)
    assert CosemDate.from_bytes(CosemDate(2024, 2, 29, 4).to_bytes()) == CosemDate(2024, 2, 29, 4)
    assert CosemTime.from_bytes(bytes.fromhex("0102ffff")) == CosemTime(1, 2, 0xFF, 0xFF)
    assert str(CosemDate(year=YEAR_NOT_SPECIFIED, month=12, day=25)) == "****-12-25"
    assert str(CosemTime(1, 2)) == "01:02:**.**"
    with pytest.raises(DlmsValueError):
        CosemDate(2023, 2, 29).to_date()
    with pytest.raises(DlmsValueError):
        CosemDate(2023, 13, 1).to_date()
    with pytest.raises(DlmsValueError):
        CosemTime(1, 2).to_time()
    with pytest.raises(DlmsValueError):
        CosemDate.from_bytes(b"\x00")
    with pytest.raises(DlmsValueError):
        CosemTime.from_bytes(b"\x00")
    with pytest.raises(DlmsValueError):
        CosemDate(-1).to_bytes()
    with pytest.raises(DlmsValueError):
        CosemTime(256).to_bytes()


# --- builders -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "low", "high"),
    [
        (Data.integer, -128, 127),
        (Data.long, -32768, 32767),
        (Data.double_long, -(2**31), 2**31 - 1),
        (Data.long64, -(2**63), 2**63 - 1),
        (Data.unsigned, 0, 255),
        (Data.long_unsigned, 0, 65535),
        (Data.double_long_unsigned, 0, 2**32 - 1),
        (Data.long64_unsigned, 0, 2**64 - 1),
        (Data.enum, 0, 255),
        (Data.bcd, 0, 255),
    ],
)
def test_integer_builders_check_ranges(builder: Callable[[int], Data], low: int, high: int) -> None:
    assert builder(low).value == low
    assert builder(high).value == high
    for bad in (low - 1, high + 1):
        with pytest.raises(DlmsValueError, match="must be in"):
            builder(bad)
    with pytest.raises(DlmsValueError, match="needs an int"):
        builder(True)
    with pytest.raises(DlmsValueError, match="needs an int"):
        builder(1.0)  # type: ignore[arg-type]


def test_builders_and_tags() -> None:
    assert Data.unsigned(5) == Data(DlmsType.UNSIGNED, 5)
    assert Data.unsigned(5) != Data.long_unsigned(5)
    assert Data.null() == Data(DlmsType.NULL_DATA, None)
    assert Data.dont_care().type == DlmsType.DONT_CARE
    assert Data.boolean(1).value is True  # type: ignore[arg-type]
    assert Data.octet_string(bytearray(b"ab")).value == b"ab"
    assert Data.visible_string("ÿ").value == "ÿ"
    assert Data.utf8_string("€").value == "€"
    assert Data.float64(1).value == 1.0
    assert Data.float32(0.1).value == pytest.approx(0.1, rel=1e-7)
    assert Data.float32(float("inf")).value == float("inf")
    assert Data.bit_string("101").value == BitString(b"\xa0", 3)
    assert Data.structure(Data.unsigned(1)).value == (Data.unsigned(1),)
    assert Data.array(iter([Data.unsigned(1)])).value == [Data.unsigned(1)]
    stamp = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert Data.date_time(stamp).value == CosemDateTime(2024, 1, 1, 1, 0, 0, 0, 0, 0, 0)
    assert Data.octet_date_time(stamp).value == CosemDateTime(2024, 1, 1, 1, 0, 0, 0, 0, 0, 0).to_bytes()
    assert Data.date(dt.date(2024, 1, 1)).value == CosemDate(2024, 1, 1, 1)
    assert Data.time(dt.time(1, 2)).value == CosemTime(1, 2, 0, 0)
    assert repr(Data.unsigned(5)) == "Data(UNSIGNED, 5)"
    bad: Callable[[], object]
    for bad in (
        lambda: Data.octet_string("ab"),  # type: ignore[arg-type]
        lambda: Data.visible_string("€"),
        lambda: Data.visible_string(5),  # type: ignore[arg-type]
        lambda: Data.utf8_string(b"x"),  # type: ignore[arg-type]
        lambda: Data.float32(1e300),
        lambda: Data.float32("x"),  # type: ignore[arg-type]
        lambda: Data.float64(True),
        lambda: Data.structure(5),  # type: ignore[arg-type]
        lambda: Data.array([Data.unsigned(1), 2]),  # type: ignore[list-item]
        lambda: Data.bit_string("102"),
    ):
        with pytest.raises(DlmsValueError):
            bad()


def test_accessors() -> None:
    value = Data.structure(
        Data.unsigned(7),
        Data.octet_string(b"x"),
        Data.visible_string("v"),
        Data(DlmsType.UTF8_STRING, b"\xff"),
    )
    items = value.as_items()
    assert items[0].as_int() == 7
    assert items[1].as_bytes() == b"x"
    assert items[2].as_str() == "v"
    assert items[3].as_str() == "\ufffd"
    assert Data.array([Data.enum(1)]).as_items() == [Data.enum(1)]
    compact = Data.compact_array(CompactArray(TypeDescription.simple(DlmsType.UNSIGNED), [Data.unsigned(1)]))
    assert compact.as_items() == [Data.unsigned(1)]
    assert compact.to_python() == [1]
    assert Data.octet_string(bytes(12)).as_date_time() == CosemDateTime(0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
    for call in (
        items[1].as_int,
        Data.boolean(True).as_int,
        items[0].as_bytes,
        items[0].as_str,
        Data(DlmsType.UTF8_STRING, 5).as_str,
        items[0].as_items,
        items[1].as_date_time,
        Data.octet_string(b"short").as_date_time,
    ):
        with pytest.raises(DlmsValueError):
            call()


def test_to_python_drops_tags() -> None:
    value = Data.array(
        [
            Data.structure(Data.octet_string(b"\x01"), Data.array([Data.long(-1)]), Data.null()),
            Data.boolean(False),
        ]
    )
    assert value.to_python() == [(b"\x01", [-1], None), False]


# --- bit strings and type descriptions ----------------------------------------------------------


def test_bit_string() -> None:
    bits = BitString.from_str("1011000011")
    assert bits == BitString(b"\xb0\xc0", 10)
    assert len(bits) == 10
    assert str(bits) == "1011000011"
    assert list(bits)[:4] == [True, False, True, True]
    assert bits.bit(9) is True
    assert BitString.from_bools([False] * 9).bits == b"\x00\x00"
    with pytest.raises(IndexError):
        bits.bit(10)
    with pytest.raises(DlmsValueError):
        BitString(b"\x00", 9)
    with pytest.raises(DlmsValueError):
        BitString(b"", -1)
    # unused trailing bits are kept as received (lossless)
    assert str(BitString(b"\xff", 3)) == "111"
    assert BitString(b"\xff", 3) != BitString(b"\xe0", 3)


@given(st.lists(st.booleans(), max_size=40))
def test_bit_string_round_trip(flags: list[bool]) -> None:
    bits = BitString.from_bools(flags)
    assert list(bits) == flags
    assert BitString.from_str(str(bits)) == bits


def test_type_descriptions() -> None:
    row = TypeDescription.structure(
        TypeDescription.simple(DlmsType.OCTET_STRING),
        TypeDescription.array(3, TypeDescription.simple(DlmsType.LONG_UNSIGNED)),
    )
    assert str(row) == "structure(octet-string, array[3](long-unsigned))"
    assert row.size == 2
    with pytest.raises(DlmsValueError):
        TypeDescription.simple(DlmsType.ARRAY)
    with pytest.raises(DlmsValueError):
        TypeDescription.array(70000, TypeDescription.simple(DlmsType.UNSIGNED))


def test_clock_status_bits() -> None:
    value = CosemDateTime(clock_status=0x85)
    status = value.status
    assert status is not None
    assert ClockStatus.INVALID_VALUE in status
    assert ClockStatus.DIFFERENT_CLOCK_BASE in status
    assert ClockStatus.DAYLIGHT_SAVING_ACTIVE in status
    assert ClockStatus.DOUBTFUL_VALUE not in status
