"""The alarm centre: de-duplication and quiet period, acknowledge/clear, comm loss, routing, delivery."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConfigError, NotifyError
from metercom.service.notify import (
    Alarm,
    AlarmCenter,
    AlarmKind,
    AlarmState,
    Channel,
    DeliveryStatus,
    Notification,
    NotificationEvent,
    PermanentDeliveryError,
    PrepaidAlarms,
    RetryLater,
    RetryPolicy,
    Route,
    Severity,
)
from metercom.service.prepaid import NoticeKind, PrepaidNotice

T0 = datetime(2026, 1, 1, tzinfo=UTC)
ALL = [Route(("inbox",))]


class Inbox:
    """A channel that keeps what it is sent and can be told to fail."""

    def __init__(self, failures: list[Exception] | None = None) -> None:
        self.sent: list[Notification] = []
        self.failures = list(failures or [])
        self.attempt_times: list[float] = []
        self.gate: asyncio.Event | None = None
        self.closed = False

    async def send(self, notification: Notification) -> None:
        self.attempt_times.append(asyncio.get_running_loop().time())
        if self.gate is not None:
            await self.gate.wait()
        if self.failures:
            raise self.failures.pop(0)
        self.sent.append(notification)

    async def aclose(self) -> None:
        self.closed = True


def _tamper(minutes: float, meter: str = "m1") -> Alarm:
    return Alarm.of(AlarmKind.TAMPER, meter, T0 + timedelta(minutes=minutes), "terminal cover opened")


async def test_duplicates_within_the_quiet_period_are_counted_not_sent() -> None:
    inbox = Inbox()
    assert isinstance(inbox, Channel)
    async with AlarmCenter({"inbox": inbox}, ALL, quiet_period=timedelta(minutes=30)) as center:
        first = center.raise_alarm(_tamper(0))
        second = center.raise_alarm(_tamper(5))
        third = center.raise_alarm(_tamper(29))
        assert (first.new, first.notified) == (True, True)
        assert (second.new, second.notified, third.notified) == (False, False, False)
        assert first.record is second.record is third.record
        assert first.record.count == 3
        assert first.record.last_at == T0 + timedelta(minutes=29)
        await center.wait_idle()
        assert len(inbox.sent) == 1
        # After the quiet period the next occurrence goes out as "repeated" with the count.
        fourth = center.raise_alarm(_tamper(31))
        assert fourth.notified
        await center.wait_idle()
    assert [(n.event, n.count) for n in inbox.sent] == [
        (NotificationEvent.RAISED, 1),
        (NotificationEvent.REPEATED, 4),
    ]
    assert inbox.sent[0].severity is Severity.CRITICAL
    assert inbox.sent[1].subject() == "CRITICAL tamper on meter m1: terminal cover opened (x4)"
    assert inbox.closed


async def test_a_late_backlog_from_the_event_log_is_one_message() -> None:
    inbox = Inbox()
    async with AlarmCenter({"inbox": inbox}, ALL) as center:
        for minute in range(0, 20, 2):  # read hours later; the meter's own times count
            center.raise_alarm(Alarm.of(AlarmKind.POWER_FAILURE, "m1", T0 + timedelta(minutes=minute)))
        await center.wait_idle()
    assert len(inbox.sent) == 1
    assert center.alarms()[0].count == 10


async def test_acknowledge_and_clear_flow() -> None:
    inbox = Inbox()
    async with AlarmCenter({"inbox": inbox}, ALL, quiet_period=timedelta(minutes=10)) as center:
        record = center.raise_alarm(_tamper(0)).record
        assert record.state is AlarmState.OPEN
        acked = center.acknowledge(record.alarm_id, "asha", T0 + timedelta(minutes=1), note="crew sent")
        assert acked.state is AlarmState.ACKNOWLEDGED
        assert (acked.acknowledged_by, acked.acknowledge_note) == ("asha", "crew sent")
        center.acknowledge(record.alarm_id, "ravi")  # idempotent: the first acknowledgement stays
        assert record.acknowledged_by == "asha"
        # Acknowledged: later occurrences are counted but stay quiet, even after the quiet period.
        assert not center.raise_alarm(_tamper(60)).notified
        assert record.count == 2
        cleared = center.clear(record.alarm_id, T0 + timedelta(minutes=70), "cover closed and sealed")
        assert cleared.state is AlarmState.CLEARED
        center.clear(record.alarm_id, T0 + timedelta(minutes=80))  # idempotent
        assert center.active() == []
        assert center.alarms(state=AlarmState.CLEARED) == [record]
        # The next occurrence starts a new episode.
        again = center.raise_alarm(_tamper(120))
        assert again.new
        assert again.record.alarm_id != record.alarm_id
        await center.wait_idle()
        with pytest.raises(NotifyError, match="no alarm"):
            center.acknowledge("nope", "asha")
        with pytest.raises(NotifyError, match="user"):
            center.acknowledge(again.record.alarm_id, " ")
    assert [n.event for n in inbox.sent] == [
        NotificationEvent.RAISED,
        NotificationEvent.CLEARED,
        NotificationEvent.RAISED,
    ]
    assert inbox.sent[1].message == "cover closed and sealed"
    assert inbox.sent[1].subject().startswith("CLEARED tamper on meter m1")


async def test_flapping_within_the_quiet_period_stays_quiet_including_its_clear() -> None:
    inbox = Inbox()
    async with AlarmCenter({"inbox": inbox}, ALL, quiet_period=timedelta(minutes=30)) as center:
        center.link_down("m1", T0, "timeout")
        center.link_up("m1", T0 + timedelta(minutes=1))
        assert center.link_down("m1", T0 + timedelta(minutes=2), "timeout") is not None
        center.link_up("m1", T0 + timedelta(minutes=3))
        await center.wait_idle()
    assert [(n.kind, n.event) for n in inbox.sent] == [
        (AlarmKind.COMM_LOSS, NotificationEvent.RAISED),
        (AlarmKind.COMM_RESTORED, NotificationEvent.CLEARED),
    ]
    assert len(center.alarms(kind=AlarmKind.COMM_LOSS)) == 2  # both episodes are visible


async def test_comm_loss_is_raised_once_and_cleared_once() -> None:
    inbox = Inbox()
    async with AlarmCenter(
        {"inbox": inbox}, [Route(("inbox",), kinds=frozenset({AlarmKind.COMM_LOSS}))]
    ) as center:
        record = center.link_down("m7", T0, "TransportTimeout: no answer in 5 s")
        assert record is not None
        assert center.is_down("m7")
        for minute in (15, 30, 45):
            assert center.link_down("m7", T0 + timedelta(minutes=minute), "no answer") is None
        assert record.count == 4
        assert center.link_up("m7", T0 + timedelta(hours=2)) is record
        assert center.link_up("m7", T0 + timedelta(hours=2, minutes=15)) is None
        assert not center.is_down("m7")
        assert center.link_up("never-down", T0) is None
        await center.wait_idle()
    assert [(n.kind, n.event, n.message) for n in inbox.sent] == [
        (
            AlarmKind.COMM_LOSS,
            NotificationEvent.RAISED,
            "route to this meter is down: TransportTimeout: no answer in 5 s",
        ),
        (AlarmKind.COMM_RESTORED, NotificationEvent.CLEARED, "route to this meter is up again"),
    ]
    assert record.severity is Severity.MAJOR


async def test_routing_by_kind_severity_meter_and_event() -> None:
    ops, crew, feeder = Inbox(), Inbox(), Inbox()
    routes = [
        Route(("ops",)),
        Route(
            ("crew", "ops"),
            kinds=frozenset({AlarmKind.TAMPER, AlarmKind.COVER_OPEN}),
            min_severity=Severity.MAJOR,
        ),
        Route(("feeder",), meters=frozenset({"m2"}), events=frozenset({NotificationEvent.RAISED})),
    ]
    async with AlarmCenter({"ops": ops, "crew": crew, "feeder": feeder}, routes) as center:
        tamper = center.raise_alarm(_tamper(0, "m1")).record
        center.raise_alarm(Alarm.of(AlarmKind.TAMPER, "m3", T0, severity=Severity.WARNING))
        power = center.raise_alarm(Alarm.of(AlarmKind.POWER_FAILURE, "m2", T0)).record
        center.clear(power.alarm_id, T0 + timedelta(minutes=5), "power back")
        await center.wait_idle()
    assert len(ops.sent) == 4  # everything, once (two matching routes do not double it)
    assert [n.meter_id for n in crew.sent] == ["m1"]  # the warning-level tamper is below MAJOR
    assert [(n.kind, n.event) for n in feeder.sent] == [(AlarmKind.POWER_FAILURE, NotificationEvent.RAISED)]
    assert [d.channel for d in tamper.deliveries] == ["ops", "crew"]
    with pytest.raises(ConfigError, match="unknown channel"):
        AlarmCenter({"ops": ops}, [Route(("pager",))])


async def test_retries_back_off_on_virtual_time(vclock: VirtualClock) -> None:
    inbox = Inbox([NotifyError("connection refused")] * 3)
    retry = RetryPolicy(max_attempts=5, first_delay_s=5, factor=2, max_delay_s=600)
    async with AlarmCenter({"inbox": inbox}, ALL, retry=retry) as center:
        t = vclock.monotonic()
        record = center.raise_alarm(_tamper(0)).record
        await center.wait_idle()
        elapsed = vclock.monotonic() - t
    assert [round(a - t, 6) for a in inbox.attempt_times] == [0, 5, 15, 35]
    assert elapsed == pytest.approx(35)
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 4)
    assert delivery.last_error == "connection refused"
    assert delivery.delivered_at == vclock.now()
    assert center.delivered == 1


async def test_give_up_after_max_attempts_and_never_raise_into_the_caller(
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox = Inbox([RuntimeError("bug in a channel")] * 3)
    retry = RetryPolicy(max_attempts=3, first_delay_s=1)
    async with AlarmCenter({"inbox": inbox}, ALL, retry=retry) as center:
        record = center.raise_alarm(_tamper(0)).record  # does not raise
        await center.wait_idle()
        center.raise_alarm(_tamper(100))  # the worker survived and keeps delivering
        await center.wait_idle()
    assert len(inbox.sent) == 1
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 3)
    assert delivery.last_error == "RuntimeError: bug in a channel"
    assert center.failed == 1
    assert "failed after 3 attempts" in caplog.text


async def test_permanent_failures_are_not_retried_and_retry_after_is_honoured(vclock: VirtualClock) -> None:
    inbox = Inbox(
        [PermanentDeliveryError("535 authentication failed"), RetryLater("busy", retry_after_s=120)]
    )
    async with AlarmCenter({"inbox": inbox}, ALL, retry=RetryPolicy(first_delay_s=1)) as center:
        t = vclock.monotonic()
        failed = center.raise_alarm(_tamper(0)).record
        await center.wait_idle()
        assert failed.deliveries[0].status is DeliveryStatus.FAILED
        assert failed.deliveries[0].attempts == 1
        later = center.raise_alarm(_tamper(100)).record
        await center.wait_idle()
    assert later is failed  # the same episode, notified again after the quiet period
    assert later.deliveries[-1].status is DeliveryStatus.DELIVERED
    assert vclock.monotonic() - t == pytest.approx(120)


async def test_the_queue_is_bounded_and_overflow_is_recorded() -> None:
    inbox = Inbox()
    inbox.gate = asyncio.Event()  # the channel hangs
    async with AlarmCenter({"inbox": inbox}, ALL, queue_size=2, quiet_period=timedelta(0)) as center:
        results = [center.raise_alarm(_tamper(i, meter=f"m{i}")) for i in range(5)]
        await asyncio.sleep(0)
        # One in flight, two queued; the rest are dropped at once, without blocking the caller.
        statuses = [r.record.deliveries[0].status for r in results]
        assert statuses.count(DeliveryStatus.DROPPED) >= 2
        assert center.dropped == statuses.count(DeliveryStatus.DROPPED)
        dropped = next(
            r.record.deliveries[0] for r in results if r.record.deliveries[0].status is DeliveryStatus.DROPPED
        )
        assert dropped.last_error == "queue of channel inbox full (2)"
        inbox.gate.set()
        await center.wait_idle()
    assert len(inbox.sent) == 5 - center.dropped


async def test_alarms_raised_before_start_are_delivered_after() -> None:
    inbox = Inbox()
    center = AlarmCenter({"inbox": inbox}, ALL)
    center.raise_alarm(_tamper(0))
    assert center.pending() == 1
    await center.start()
    await center.wait_idle()
    await center.aclose()
    assert len(inbox.sent) == 1


async def test_close_leaves_undeliverable_notifications_pending(caplog: pytest.LogCaptureFixture) -> None:
    inbox = Inbox([NotifyError("down")] * 100)
    center = AlarmCenter({"inbox": inbox}, ALL, retry=RetryPolicy(max_attempts=100, first_delay_s=60))
    await center.start()
    record = center.raise_alarm(_tamper(0)).record
    with caplog.at_level(logging.WARNING):
        await center.aclose(drain_s=30)
    assert record.deliveries[0].status is DeliveryStatus.PENDING
    assert "undelivered" in caplog.text


async def test_prepaid_notices_become_alarms() -> None:
    inbox = Inbox()
    async with AlarmCenter({"inbox": inbox}, ALL) as center:
        bridge = PrepaidAlarms(center)

        def notice(kind: NoticeKind, minutes: int, level: int | None = None) -> PrepaidNotice:
            at = T0 + timedelta(minutes=minutes)
            lvl = None if level is None else Decimal(level)
            return PrepaidNotice(kind, "acc", "m1", at, Decimal("-1.5"), "units", "why", lvl)

        for i, level in enumerate((300, 200, 100)):
            await bridge.notify(notice(NoticeKind.REMINDER, i, level))
        await bridge.notify(notice(NoticeKind.DISCONNECTED, 10))
        await bridge.notify(notice(NoticeKind.RECONNECTED, 20))
        await center.wait_idle()
    assert [(n.kind.value, n.event.value) for n in inbox.sent] == [
        ("prepaid_level", "raised"),
        ("prepaid_level", "raised"),
        ("prepaid_level", "raised"),
        ("prepaid_disconnect", "raised"),
        ("prepaid_disconnect", "cleared"),
    ]
    assert inbox.sent[0].details["level"] == "300"
    assert center.active() == []  # reminders close at once; the reconnect cleared the disconnect
    assert len(center.alarms(kind=AlarmKind.PREPAID_LEVEL)) == 3  # kept in the history


def test_alarm_validation() -> None:
    with pytest.raises(NotifyError, match="timezone-aware"):
        Alarm.of(AlarmKind.TAMPER, "m1", datetime(2026, 1, 1))  # noqa: DTZ001
    with pytest.raises(NotifyError, match="JSON scalar"):
        Alarm.of(AlarmKind.RULE, "m1", T0, details={"x": Decimal(1)})  # type: ignore[dict-item]
    alarm = Alarm.of(AlarmKind.RULE, "m1", T0, "overvoltage", dedup_key="rule:overvoltage:m1")
    assert (alarm.severity, alarm.dedup_key) == (Severity.WARNING, "rule:overvoltage:m1")
    assert Severity.parse("Major") is Severity.MAJOR
    with pytest.raises(ConfigError, match="unknown severity"):
        Severity.parse("loud")
    with pytest.raises(ConfigError, match="invalid retry"):
        RetryPolicy(max_attempts=0)
