"""Cron expressions, interval triggers and durations.

The DST rule (module docstring of metercom.service.cron) is checked with hand-made vectors in
Europe/Berlin and, with Hypothesis, against a brute-force scan that walks real time minute by
minute and applies the rule literally.
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.errors import InputError
from metercom.service.cron import CronExpr, CronTrigger, IntervalTrigger, format_duration, parse_duration

BERLIN = ZoneInfo("Europe/Berlin")


def berlin(*args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=BERLIN, fold=fold)  # type: ignore[misc]


def fires(expr: str, after: datetime, count: int, tz: tzinfo = BERLIN) -> list[str]:
    cron = CronExpr.parse(expr)
    out: list[str] = []
    for _ in range(count):
        after = cron.next_fire(after, tz)
        assert after.tzinfo is UTC
        out.append(after.astimezone(tz).isoformat())
    return out


# -- parsing --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field", "expected"),
    [
        ("*/15 * * * *", "minutes", {0, 15, 30, 45}),
        ("0-10/5 * * * *", "minutes", {0, 5, 10}),
        ("7/20 * * * *", "minutes", {7, 27, 47}),
        ("1,2,5-6 * * * *", "minutes", {1, 2, 5, 6}),
        ("0 9-17/4 * * *", "hours", {9, 13, 17}),
        ("0 0 1,15 * *", "days", {1, 15}),
        ("0 0 * jan,JUL *", "months", {1, 7}),
        ("0 0 * mar-may *", "months", {3, 4, 5}),
        ("0 0 * */3 *", "months", {1, 4, 7, 10}),
        ("0 0 * * mon-fri", "weekdays", {1, 2, 3, 4, 5}),
        ("0 0 * * 7", "weekdays", {0}),
        ("0 0 * * 0,7", "weekdays", {0}),
    ],
)
def test_fields(text: str, field: str, expected: set[int]) -> None:
    assert getattr(CronExpr.parse(text), field) == frozenset(expected)


@pytest.mark.parametrize(
    ("macro", "same_as"),
    [
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
        ("@monthly", "0 0 1 * *"),
        ("@weekly", "0 0 * * 0"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@hourly", "0 * * * *"),
    ],
)
def test_macros(macro: str, same_as: str) -> None:
    a, b = CronExpr.parse(macro), CronExpr.parse(same_as)
    assert (a.minutes, a.hours, a.days, a.months, a.weekdays) == (
        b.minutes,
        b.hours,
        b.days,
        b.months,
        b.weekdays,
    )
    assert repr(a) == f"CronExpr({macro!r})"


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("60 * * * *", "minute 60 is out of range 0-59"),
        ("* 24 * * *", "hour 24 is out of range"),
        ("* * 0 * *", "day of month 0 is out of range 1-31"),
        ("* * * 13 *", "month 13 is out of range"),
        ("* * * * 8", "day of week 8 is out of range"),
        ("* * * *", "expected 5 fields"),
        ("* * * * * *", "expected 5 fields"),
        ("", "expected 5 fields"),
        ("5-1 * * * *", "runs backwards"),
        ("0 0 * * sat-sun", "runs backwards"),
        ("*/0 * * * *", "step 0"),
        ("*/61 * * * *", "step 61"),
        ("0 0 31 2 *", "never fires"),
        ("0 0 30,31 feb *", "never fires"),
        ("0 0 * * mon-xyz", "not a number"),
        ("0 0 * foo *", "not a number"),
        ("0 0 * * 1-", "cannot read"),
        ("a b c d e", "cannot read|not a number"),
        ("@reboot", "unknown macro"),
        ("1," * 70 + "2 * * * *", "more than 64 items|at most 200"),
        ("*" * 201, "at most 200 characters"),
    ],
)
def test_refused(text: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason):
        CronExpr.parse(text)


def test_refused_types() -> None:
    with pytest.raises(InputError):
        CronExpr.parse(5)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="timezone-aware"):
        CronExpr.parse("* * * * *").next_fire(datetime(2026, 1, 1), BERLIN)  # noqa: DTZ001


# -- vectors --------------------------------------------------------------------------------------


def test_steps_ranges_names() -> None:
    after = berlin(2026, 1, 5, 8, 0)  # a Monday
    assert fires("0 9-17/4 * * mon-fri", after, 4) == [
        "2026-01-05T09:00:00+01:00",
        "2026-01-05T13:00:00+01:00",
        "2026-01-05T17:00:00+01:00",
        "2026-01-06T09:00:00+01:00",
    ]
    assert fires("30 8 * * sat,sun", after, 3) == [
        "2026-01-10T08:30:00+01:00",
        "2026-01-11T08:30:00+01:00",
        "2026-01-17T08:30:00+01:00",
    ]
    assert fires("0 0 1 jan,jul *", after, 2) == ["2026-07-01T00:00:00+02:00", "2027-01-01T00:00:00+01:00"]
    assert fires("0 0 */10 * *", after, 4) == [
        "2026-01-11T00:00:00+01:00",
        "2026-01-21T00:00:00+01:00",
        "2026-01-31T00:00:00+01:00",
        "2026-02-01T00:00:00+01:00",
    ]


def test_day_fields_or_when_both_restricted() -> None:
    # Vixie cron: the 13th of the month OR any Friday.
    assert fires("0 0 13 * fri", berlin(2026, 2, 1), 4) == [
        "2026-02-06T00:00:00+01:00",
        "2026-02-13T00:00:00+01:00",
        "2026-02-20T00:00:00+01:00",
        "2026-02-27T00:00:00+01:00",
    ]
    # With a day field led by "*", both must match: Friday the 13th only.
    assert fires("0 0 13 * */1", berlin(2026, 2, 1), 1) == ["2026-02-13T00:00:00+01:00"]
    assert fires("0 0 13 * */1", berlin(2026, 2, 1), 2)[1] == "2026-03-13T00:00:00+01:00"


def test_leap_day_and_strictly_after() -> None:
    assert fires("0 12 29 2 *", berlin(2026, 1, 1), 2) == [
        "2028-02-29T12:00:00+01:00",
        "2032-02-29T12:00:00+01:00",
    ]
    # Across 2100, which is not a leap year.
    assert fires("0 0 29 2 *", datetime(2097, 1, 1, tzinfo=UTC), 1, UTC) == ["2104-02-29T00:00:00+00:00"]
    cron = CronExpr.parse("*/5 * * * *")
    at = berlin(2026, 5, 1, 10, 5)
    assert cron.next_fire(at, BERLIN) == berlin(2026, 5, 1, 10, 10)
    assert cron.next_fire(at - timedelta(microseconds=1), BERLIN) == at
    assert cron.next_fire(at.astimezone(UTC), BERLIN) == at + timedelta(minutes=5)


def test_dst_spring_forward_berlin() -> None:
    # 2026-03-29: 02:00 CET -> 03:00 CEST; wall times 02:00..02:59 do not exist.
    after = berlin(2026, 3, 28, 23, 0)
    # A fixed-hour job in the gap fires once, at the end of the gap.
    assert fires("30 2 * * *", after, 2) == ["2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"]
    assert fires("0 2 * * *", after, 1) == ["2026-03-29T03:00:00+02:00"]
    assert fires("0 2,3 * * *", after, 3) == [
        "2026-03-29T03:00:00+02:00",
        "2026-03-30T02:00:00+02:00",
        "2026-03-30T03:00:00+02:00",
    ]
    assert fires("15 2 * * sun", after, 2) == ["2026-03-29T03:00:00+02:00", "2026-04-05T02:15:00+02:00"]
    # Jobs whose hour field is * follow real time: the skipped hour simply does not fire.
    assert fires("0 * * * *", berlin(2026, 3, 29, 0, 30), 3) == [
        "2026-03-29T01:00:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T04:00:00+02:00",
    ]
    assert fires("*/20 * * * *", berlin(2026, 3, 29, 1, 30), 3) == [
        "2026-03-29T01:40:00+01:00",
        "2026-03-29T03:00:00+02:00",
        "2026-03-29T03:20:00+02:00",
    ]


def test_dst_fall_back_berlin() -> None:
    # 2026-10-25: 03:00 CEST -> 02:00 CET; wall times 02:00..02:59 happen twice.
    after = berlin(2026, 10, 24, 23, 0)
    # A fixed-hour job runs once, at the first occurrence.
    assert fires("30 2 * * *", after, 2) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"]
    # Starting inside the repeated hour (second pass): the daily job does not fire again.
    second = berlin(2026, 10, 25, 2, 10, fold=1)
    assert fires("30 2 * * *", second, 1) == ["2026-10-26T02:30:00+01:00"]
    # Star-hour jobs run in both passes: real time keeps its rhythm.
    assert fires("*/30 * * * *", berlin(2026, 10, 25, 1, 45), 6) == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
        "2026-10-25T03:30:00+01:00",
    ]
    utc_times = [datetime.fromisoformat(t).astimezone(UTC) for t in fires("0 * * * *", after, 5)]
    assert [b - a for a, b in itertools.pairwise(utc_times)] == [timedelta(hours=1)] * 4


def test_other_zones() -> None:
    # America/Santiago falls back at midnight: 2026-04-05 00:00 -03 becomes 04-04 23:00 -04,
    # so 23:30 of April 4 happens twice; a fixed-hour job runs at the first.
    santiago = ZoneInfo("America/Santiago")
    out = fires("30 23 * * *", datetime(2026, 4, 4, 12, tzinfo=santiago), 2, santiago)
    assert out == ["2026-04-04T23:30:00-03:00", "2026-04-05T23:30:00-04:00"]
    # Lord Howe Island moves its clocks by 30 minutes.
    howe = ZoneInfo("Australia/Lord_Howe")
    out = fires("45 1 * * *", datetime(2026, 4, 4, 12, tzinfo=howe), 2, howe)
    assert out == ["2026-04-05T01:45:00+11:00", "2026-04-06T01:45:00+10:30"]


# -- against a brute-force minute scan --------------------------------------------------------------

ZONES = [
    ZoneInfo(n) for n in ("Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Santiago")
]
_WINDOW = timedelta(days=3)


def _transitions(tz: ZoneInfo) -> list[datetime]:
    """UTC instants around which the offset of ``tz`` changes, 2025..2027 (found hour by hour)."""
    out: list[datetime] = []
    t = datetime(2025, 1, 1, tzinfo=UTC)
    prev = t.astimezone(tz).utcoffset()
    while t.year < 2028:
        t += timedelta(hours=1)
        off = t.astimezone(tz).utcoffset()
        if off != prev:
            out.append(t)
            prev = off
    return out


TRANSITIONS = {tz.key: _transitions(tz) for tz in ZONES}


def brute_force(cron: CronExpr, after: datetime, tz: ZoneInfo) -> datetime | None:
    """The rule of the cron module docstring, applied literally to every real minute."""
    t = after.astimezone(UTC).replace(second=0, microsecond=0) + timedelta(minutes=1)
    end = after + _WINDOW
    while t <= end:
        local = t.astimezone(tz)
        wall = local.replace(tzinfo=None)
        if cron.matches(wall) and (local.fold == 0 or cron.hour_star):
            return t
        if not cron.hour_star:
            prev = (t - timedelta(minutes=1)).astimezone(tz).replace(tzinfo=None)
            skipped = prev + timedelta(minutes=1)
            while skipped < wall:  # wall times a spring-forward change jumped over
                if cron.matches(skipped):
                    return t
                skipped += timedelta(minutes=1)
        t += timedelta(minutes=1)
    return None


def _field(low: int, high: int, dense: bool) -> st.SearchStrategy[str]:
    number = st.integers(low, high)
    item = st.one_of(
        number.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.integers(1, (high - low + 1) if not dense else 4).map(lambda s: f"*/{s}"),
        st.tuples(number, number, st.integers(1, 5)).map(
            lambda abs_: f"{min(abs_[:2])}-{max(abs_[:2])}/{abs_[2]}"
        ),
    )
    items = st.lists(item, min_size=1, max_size=3).map(",".join)
    return st.one_of(st.just("*"), items) if dense else st.one_of(st.just("*"), st.just("*"), items)


expressions = st.tuples(
    _field(0, 59, dense=False),
    _field(0, 23, dense=False),
    st.one_of(st.just("*"), st.just("*"), _field(1, 31, dense=True)),
    st.one_of(st.just("*"), st.just("*"), st.just("*"), _field(1, 12, dense=True)),
    st.one_of(st.just("*"), st.just("*"), _field(0, 7, dense=True)),
).map(" ".join)


@st.composite
def moments(draw: st.DrawFn) -> tuple[datetime, ZoneInfo]:
    tz = draw(st.sampled_from(ZONES))
    base = draw(st.sampled_from(TRANSITIONS[tz.key]))
    shift = draw(st.integers(-36 * 3600, 36 * 3600))
    return base + timedelta(seconds=shift, microseconds=draw(st.sampled_from([0, 1, 999_999]))), tz


@settings(max_examples=150, deadline=None)
@given(text=expressions, moment=moments())
def test_next_fire_matches_brute_force(text: str, moment: tuple[datetime, ZoneInfo]) -> None:
    try:
        cron = CronExpr.parse(text)
    except InputError:
        return  # e.g. "0 0 31 2 *": refused as never firing
    after, tz = moment
    expected = brute_force(cron, after, tz)
    actual = cron.next_fire(after, tz)
    assert actual > after
    if expected is None:
        assert actual > after + _WINDOW
    else:
        assert actual == expected, (text, after.isoformat(), tz.key)


@settings(max_examples=40, deadline=None)
@given(text=expressions, moment=moments())
def test_next_fire_sequences_increase(text: str, moment: tuple[datetime, ZoneInfo]) -> None:
    try:
        cron = CronExpr.parse(text)
    except InputError:
        return
    after, tz = moment
    previous = after
    for _ in range(5):
        nxt = cron.next_fire(previous, tz)
        assert nxt > previous
        previous = nxt


# -- intervals and durations ------------------------------------------------------------------------


def test_interval_trigger() -> None:
    trigger = IntervalTrigger(timedelta(minutes=15), timedelta(minutes=2))
    at = datetime(2026, 3, 29, 1, 59, tzinfo=BERLIN)
    assert trigger.next_fire(at) == datetime(2026, 3, 29, 1, 2, tzinfo=UTC)  # 00:59 UTC -> 01:02
    assert trigger.next_fire(datetime(2026, 3, 29, 0, 2, tzinfo=UTC)) == datetime(
        2026, 3, 29, 0, 17, tzinfo=UTC
    )
    assert trigger.next_fire(at).tzinfo is UTC
    assert str(trigger) == "every 15m + 2m"
    with pytest.raises(InputError):
        IntervalTrigger(timedelta(0))
    with pytest.raises(InputError):
        IntervalTrigger(timedelta(minutes=5), timedelta(minutes=5))
    with pytest.raises(InputError):
        trigger.next_fire(datetime(2026, 1, 1))  # noqa: DTZ001
    cron = CronTrigger(CronExpr.parse("0 6 * * *"), BERLIN)
    assert cron.next_fire(datetime(2026, 7, 1, tzinfo=UTC)) == datetime(2026, 7, 1, 6, tzinfo=BERLIN)
    assert str(cron) == "cron '0 6 * * *' (Europe/Berlin)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15m", timedelta(minutes=15)),
        ("1h30m", timedelta(hours=1, minutes=30)),
        ("2d", timedelta(days=2)),
        ("1w 2d", timedelta(days=9)),
        ("90s", timedelta(seconds=90)),
        ("500ms", timedelta(milliseconds=500)),
        (3600, timedelta(hours=1)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text: str | int, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "15", "15 minutes", "m", "-5m", "1.5h", -3, True, 2.5, "99999999d"])
def test_bad_durations(text: object) -> None:
    with pytest.raises(InputError):
        parse_duration(text)  # type: ignore[arg-type]


def test_day_matches() -> None:
    cron = CronExpr.parse("0 0 * feb mon")
    assert cron.day_matches(date(2026, 2, 2))
    assert not cron.day_matches(date(2026, 2, 3))
    assert not cron.day_matches(date(2026, 3, 2))
