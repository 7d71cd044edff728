"""Protected windows: nights 18:00-08:00, Sundays, holidays, merged stretches and DST days in real zones."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from metercom.errors import ConfigError, PrepaidError
from metercom.service.prepaid import DailyWindow, ProtectedWindows, local_instant

IST = ZoneInfo("Asia/Kolkata")
BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
HOLI = date(2026, 3, 4)  # a Wednesday


def _india() -> ProtectedWindows:
    return ProtectedWindows.indian_practice(IST, {HOLI: "Holi"})


@pytest.mark.parametrize(
    ("local", "protected"),
    [
        (datetime(2026, 3, 2, 7, 59, tzinfo=IST), True),  # Monday before 08:00
        (datetime(2026, 3, 2, 8, 0, tzinfo=IST), False),
        (datetime(2026, 3, 2, 17, 59, tzinfo=IST), False),
        (datetime(2026, 3, 2, 18, 0, tzinfo=IST), True),
        (datetime(2026, 3, 2, 23, 30, tzinfo=IST), True),
        (datetime(2026, 3, 3, 3, 0, tzinfo=IST), True),
        (datetime(2026, 3, 4, 12, 0, tzinfo=IST), True),  # Holi
        (datetime(2026, 3, 7, 12, 0, tzinfo=IST), False),  # Saturday
        (datetime(2026, 3, 8, 12, 0, tzinfo=IST), True),  # Sunday
        (datetime(2026, 3, 9, 9, 0, tzinfo=IST), False),  # Monday
    ],
)
def test_nights_sundays_and_holidays(local: datetime, protected: bool) -> None:
    assert _india().is_protected(local) is protected


def test_reasons_name_the_window() -> None:
    windows = _india()
    assert windows.why(datetime(2026, 3, 2, 20, tzinfo=IST)) == "night 18:00-08:00"
    assert windows.why(datetime(2026, 3, 4, 12, tzinfo=IST)) == "holiday 2026-03-04 (Holi)"
    assert windows.why(datetime(2026, 3, 8, 20, tzinfo=IST)) == "night 18:00-08:00, Sunday"
    assert windows.why(datetime(2026, 3, 2, 12, tzinfo=IST)) is None


def test_protected_stretches_merge_until_the_first_free_instant() -> None:
    windows = _india()
    # Tuesday night -> Holi -> Wednesday night: free at Thursday 08:00.
    assert windows.protected_until(datetime(2026, 3, 3, 19, tzinfo=IST)) == datetime(
        2026, 3, 5, 8, tzinfo=IST
    )
    # Saturday night -> Sunday -> Sunday night: free at Monday 08:00.
    assert windows.protected_until(datetime(2026, 3, 7, 18, tzinfo=IST)) == datetime(
        2026, 3, 9, 8, tzinfo=IST
    )
    assert windows.protected_until(datetime(2026, 3, 2, 12, tzinfo=IST)) is None
    result = windows.protected_until(datetime(2026, 3, 2, 19, tzinfo=IST))
    assert result is not None
    assert result.tzinfo is UTC


def test_spring_forward_night_is_an_hour_shorter_in_berlin() -> None:
    windows = ProtectedWindows(zone=BERLIN, daily=(DailyWindow(time(22), time(6)),))
    start = datetime(2026, 3, 28, 22, tzinfo=BERLIN)  # CET, UTC+1; clocks go 02:00 -> 03:00 on 29 March
    end = windows.protected_until(start)
    assert end == datetime(2026, 3, 29, 4, tzinfo=UTC)  # 06:00 CEST
    assert end - start == timedelta(hours=7)
    assert not windows.is_protected(datetime(2026, 3, 29, 6, tzinfo=BERLIN))
    assert windows.is_protected(datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN))


def test_fall_back_night_is_an_hour_longer_in_berlin() -> None:
    windows = ProtectedWindows(zone=BERLIN, daily=(DailyWindow(time(22), time(6)),))
    start = datetime(2026, 10, 24, 22, tzinfo=BERLIN)  # CEST; clocks go 03:00 -> 02:00 on 25 October
    end = windows.protected_until(start)
    assert end is not None
    assert end - start == timedelta(hours=9)
    # The repeated hour (both 02:30s) is inside the night.
    first = datetime(2026, 10, 25, 0, 30, tzinfo=UTC)  # 02:30 CEST
    second = datetime(2026, 10, 25, 1, 30, tzinfo=UTC)  # 02:30 CET
    assert windows.is_protected(first)
    assert windows.is_protected(second)


def test_a_window_edge_inside_the_skipped_hour_takes_effect_at_the_transition() -> None:
    # New York springs forward 02:00 -> 03:00 on 8 March 2026; 02:30 does not exist that night.
    assert local_instant(date(2026, 3, 8), time(2, 30), NEW_YORK) == datetime(2026, 3, 8, 7, tzinfo=UTC)
    windows = ProtectedWindows(zone=NEW_YORK, daily=(DailyWindow(time(22), time(2, 30)),))
    end = windows.protected_until(datetime(2026, 3, 7, 23, tzinfo=NEW_YORK))
    assert end == datetime(2026, 3, 8, 7, tzinfo=UTC)  # 03:00 EDT, the first wall time after 02:30
    # A repeated wall time maps to its first occurrence (1 November 2026, 01:30 EDT).
    assert local_instant(date(2026, 11, 1), time(1, 30), NEW_YORK) == datetime(2026, 11, 1, 5, 30, tzinfo=UTC)


def test_sunday_in_a_dst_zone_is_the_whole_local_day() -> None:
    windows = ProtectedWindows(zone=BERLIN, weekdays=frozenset({6}))
    sunday = datetime(2026, 3, 29, 0, tzinfo=BERLIN)  # the spring-forward Sunday has 23 hours
    end = windows.protected_until(sunday)
    assert end is not None
    assert end - sunday == timedelta(hours=23)


def test_weekday_limited_window_starts_on_its_day_only() -> None:
    friday_nights = DailyWindow(time(22), time(6), weekdays=frozenset({4}))
    windows = ProtectedWindows(zone=IST, daily=(friday_nights,))
    assert windows.is_protected(datetime(2026, 3, 7, 5, tzinfo=IST))  # Saturday morning, from Friday
    assert not windows.is_protected(datetime(2026, 3, 8, 5, tzinfo=IST))  # Sunday morning
    full_day = DailyWindow(time(0), time(0))
    assert ProtectedWindows(zone=IST, daily=(full_day,)).is_protected(datetime(2026, 3, 2, 13, tzinfo=IST))


def test_a_policy_that_protects_everything_is_reported() -> None:
    windows = ProtectedWindows(zone=IST, weekdays=frozenset(range(7)))
    with pytest.raises(PrepaidError, match="never end"):
        windows.protected_until(datetime(2026, 3, 2, tzinfo=IST))


def test_window_validation() -> None:
    with pytest.raises(ConfigError, match="local wall time"):
        DailyWindow(time(18, tzinfo=UTC), time(8))
    with pytest.raises(ConfigError, match="weekdays"):
        DailyWindow(time(18), time(8), weekdays=frozenset({7}))
    with pytest.raises(PrepaidError, match="timezone-aware"):
        _india().is_protected(datetime(2026, 3, 2, 12))  # noqa: DTZ001
