"""Prepaid decisions (remind, disconnect outside protected windows, reconnect) and the cycle runner."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConnectionLost, PrepaidError
from metercom.service.prepaid import (
    Disconnect,
    NoticeKind,
    PrepaidAccount,
    PrepaidController,
    PrepaidNotice,
    PrepaidPolicy,
    PrepaidRunner,
    PrepaidTariff,
    ProtectedWindows,
    Reconnect,
    RegisterReading,
    RelayCommander,
    RelayState,
    ReminderEvent,
)

IST = ZoneInfo("Asia/Kolkata")
TABLE = PrepaidTariff.from_table({5: 500, 10: 650, 30: 900, 100: 1175}, currency="INR")
MONDAY_NOON = datetime(2026, 3, 2, 12, tzinfo=IST)
POLICY = PrepaidPolicy(windows=ProtectedWindows.indian_practice(IST, {date(2026, 3, 4): "Holi"}))


def _empty_account(at: datetime, *, overdraw_wh: int = 500_500) -> tuple[PrepaidAccount, RegisterReading]:
    """An account topped up with 500 units and then read ``overdraw_wh`` later (default: -0.5 units)."""
    acc = PrepaidAccount("acc-1", "meter-1", TABLE)
    acc.top_up("k1", 500, at - timedelta(days=2))
    acc.apply_reading(RegisterReading(at - timedelta(days=2), 0))
    for level in (Decimal(300), Decimal(200), Decimal(100)):
        acc.record_reminder(level, at - timedelta(days=1))
    reading = RegisterReading(at, overdraw_wh)
    acc.apply_reading(reading)
    return acc, reading


def test_disconnect_at_zero_outside_protected_windows() -> None:
    acc, reading = _empty_account(MONDAY_NOON)
    decision = PrepaidController(POLICY).decide(acc, MONDAY_NOON, reading, RelayState.CONNECTED)
    assert decision.balance == Decimal("-0.5")
    assert isinstance(decision.disconnect, Disconnect)
    assert "at or below 0" in decision.disconnect.reason
    assert decision.held_until is None
    # Exactly zero counts as empty too.
    acc0, reading0 = _empty_account(MONDAY_NOON, overdraw_wh=500_000)
    assert acc0.balance == 0
    assert PrepaidController(POLICY).decide(acc0, MONDAY_NOON, reading0, RelayState.UNKNOWN).disconnect


@pytest.mark.parametrize(
    ("local", "until"),
    [
        (datetime(2026, 3, 2, 19, 0, tzinfo=IST), datetime(2026, 3, 3, 8, 0, tzinfo=IST)),  # night
        (datetime(2026, 3, 3, 6, 45, tzinfo=IST), datetime(2026, 3, 3, 8, 0, tzinfo=IST)),  # early morning
        (
            datetime(2026, 3, 4, 11, 0, tzinfo=IST),
            datetime(2026, 3, 5, 8, 0, tzinfo=IST),
        ),  # Holi + night
        (
            datetime(2026, 3, 8, 11, 0, tzinfo=IST),
            datetime(2026, 3, 9, 8, 0, tzinfo=IST),
        ),  # Sunday + night
    ],
)
def test_disconnect_is_held_inside_protected_windows(local: datetime, until: datetime) -> None:
    now = local
    acc, reading = _empty_account(now)
    decision = PrepaidController(POLICY).decide(acc, now, reading, RelayState.CONNECTED)
    assert decision.disconnect is None
    assert decision.held_until == until
    assert any("disconnect held: protected" in note for note in decision.notes)
    # At the end of the window, if still empty, the disconnect goes ahead.
    later = until
    fresh = RegisterReading(later, reading.active_import_wh + 10)
    acc.apply_reading(fresh)
    assert PrepaidController(POLICY).decide(acc, later, fresh, RelayState.CONNECTED).disconnect


def test_no_disconnect_without_a_fresh_reading() -> None:
    acc, reading = _empty_account(MONDAY_NOON)
    controller = PrepaidController(POLICY)
    later = MONDAY_NOON + timedelta(hours=2)
    decision = controller.decide(acc, later, reading, RelayState.CONNECTED)
    assert decision.disconnect is None
    assert "not confirmed" in decision.notes[0]
    assert controller.decide(acc, MONDAY_NOON, None, RelayState.CONNECTED).disconnect is None
    lenient = PrepaidController(PrepaidPolicy(windows=POLICY.windows, max_reading_age=None))
    assert lenient.decide(acc, later, reading, RelayState.CONNECTED).disconnect


def test_supply_switched_off_by_someone_else_is_left_alone() -> None:
    acc, reading = _empty_account(MONDAY_NOON)
    decision = PrepaidController(POLICY).decide(acc, MONDAY_NOON, reading, RelayState.DISCONNECTED)
    assert decision.actions == ()
    acc.top_up("k2", 10000, MONDAY_NOON)
    assert PrepaidController(POLICY).decide(acc, MONDAY_NOON, reading, RelayState.DISCONNECTED).actions == ()


def test_reconnect_after_a_sufficient_top_up_even_at_night() -> None:
    acc, reading = _empty_account(MONDAY_NOON)
    acc.record_disconnect(MONDAY_NOON, "empty")
    controller = PrepaidController(POLICY)
    night = datetime(2026, 3, 2, 22, tzinfo=IST)
    acc.top_up("k2", 500, night)
    decision = controller.decide(acc, night, reading, RelayState.DISCONNECTED)
    assert isinstance(decision.reconnect, Reconnect)
    assert decision.remind is None  # 499.5 units: above every level, nothing to remind


def test_an_insufficient_top_up_keeps_the_supply_off() -> None:
    acc, reading = _empty_account(MONDAY_NOON, overdraw_wh=1_200_000)  # -700 units of debt
    acc.record_disconnect(MONDAY_NOON, "empty")
    acc.top_up("k2", 500, MONDAY_NOON)  # -200
    decision = PrepaidController(POLICY).decide(acc, MONDAY_NOON, reading, RelayState.DISCONNECTED)
    assert decision.actions == ()
    assert decision.notes == ("stays disconnected: balance -200.000 units",)


def test_a_local_reconnect_while_empty_is_undone_outside_windows() -> None:
    acc, reading = _empty_account(MONDAY_NOON)
    acc.record_disconnect(MONDAY_NOON, "empty")
    decision = PrepaidController(POLICY).decide(acc, MONDAY_NOON, reading, RelayState.CONNECTED)
    assert decision.disconnect is not None
    assert "reports connected" in decision.notes[0]


def test_only_the_lowest_crossed_level_is_sent() -> None:
    acc = PrepaidAccount("acc-1", "meter-1", TABLE)
    acc.top_up("k1", 3000, MONDAY_NOON)
    acc.apply_reading(RegisterReading(MONDAY_NOON, 0))
    reading = RegisterReading(MONDAY_NOON + timedelta(minutes=15), 750_000)
    acc.apply_reading(reading)
    decision = PrepaidController(POLICY).decide(acc, reading.at, reading, RelayState.CONNECTED)
    remind = decision.remind
    assert remind is not None
    assert (remind.level, remind.skipped) == (Decimal(200), (Decimal(300),))


def test_policy_validation() -> None:
    assert PrepaidPolicy(levels=(100, "300", Decimal(200))).levels == (
        Decimal(300),
        Decimal(200),
        Decimal(100),
    )
    with pytest.raises(PrepaidError, match="not float"):
        PrepaidPolicy(levels=(1.5,))  # type: ignore[arg-type]
    with pytest.raises(PrepaidError, match="timezone-aware"):
        PrepaidController().decide(PrepaidAccount("a", "m", TABLE), datetime(2026, 1, 1), None)  # noqa: DTZ001


# ---- runner


class FlakyRelay:
    """A relay commander that fails the first ``failures`` commands."""

    def __init__(self, failures: int = 0) -> None:
        self.failures = failures
        self.calls: list[tuple[str, str]] = []

    async def disconnect(self, meter_id: str, reason: str) -> None:  # noqa: ARG002
        self._call("disconnect", meter_id)

    async def reconnect(self, meter_id: str, reason: str) -> None:  # noqa: ARG002
        self._call("reconnect", meter_id)

    def _call(self, what: str, meter_id: str) -> None:
        self.calls.append((what, meter_id))
        if self.failures:
            self.failures -= 1
            raise ConnectionLost("meter did not answer")


class Notices:
    def __init__(self) -> None:
        self.notices: list[PrepaidNotice] = []

    async def notify(self, notice: PrepaidNotice) -> None:
        self.notices.append(notice)


async def test_runner_records_only_what_succeeded_and_retries_next_cycle() -> None:
    relay = FlakyRelay(failures=1)
    assert isinstance(relay, RelayCommander)
    notices = Notices()
    runner = PrepaidRunner(PrepaidController(POLICY), relay, notices)
    acc = PrepaidAccount("acc-1", "meter-1", TABLE)
    acc.top_up("k1", 500, MONDAY_NOON)
    await runner.run_cycle(acc, reading=RegisterReading(MONDAY_NOON, 0), now=MONDAY_NOON)
    t1 = MONDAY_NOON + timedelta(minutes=15)
    report = await runner.run_cycle(
        acc, reading=RegisterReading(t1, 500_100), relay=RelayState.CONNECTED, now=t1
    )
    # Three levels crossed at once: 100 sent, 300 and 200 recorded as passed over; disconnect failed.
    assert [type(a).__name__ for a in report.done] == ["Remind"]
    assert [type(a).__name__ for a in (f for f, _ in report.failed)] == ["Disconnect"]
    assert "did not answer" in report.failed[0][1]
    assert not acc.disconnected_by_prepaid
    reminders = [e for e in acc.events if isinstance(e, ReminderEvent)]
    assert [(e.level, e.sent) for e in reminders] == [
        (Decimal(300), False),
        (Decimal(200), False),
        (Decimal(100), True),
    ]
    t2 = t1 + timedelta(minutes=15)
    report = await runner.run_cycle(
        acc, reading=RegisterReading(t2, 500_200), relay=RelayState.CONNECTED, now=t2
    )
    assert [type(a).__name__ for a in report.done] == ["Disconnect"]
    assert acc.disconnected_by_prepaid
    # A top-up between cycles: the next cycle reconnects.
    acc.top_up("k2", 1000, t2 + timedelta(minutes=4))
    t3 = t2 + timedelta(minutes=15)
    report = await runner.run_cycle(
        acc, reading=RegisterReading(t3, 500_200), relay=RelayState.DISCONNECTED, now=t3
    )
    assert [type(a).__name__ for a in report.done] == ["Reconnect"]
    assert relay.calls == [("disconnect", "meter-1"), ("disconnect", "meter-1"), ("reconnect", "meter-1")]
    assert [n.kind for n in notices.notices] == [
        NoticeKind.REMINDER,
        NoticeKind.DISCONNECTED,
        NoticeKind.RECONNECTED,
    ]
    assert notices.notices[0].level == Decimal(100)


async def test_runner_reads_the_injected_clock() -> None:
    clock = VirtualClock(datetime(2026, 3, 2, 6, 30, tzinfo=UTC))  # 12:00 IST
    acc = PrepaidAccount("acc-1", "meter-1", TABLE)
    runner = PrepaidRunner(PrepaidController(POLICY), FlakyRelay(), clock=clock)
    report = await runner.run_cycle(acc, reading=RegisterReading(clock.now(), 0))
    assert report.decision.at == clock.now()
    assert report.decision.disconnect is not None  # a new account with no credit is empty
