"""Prepaid through the real head-end: a simulated DLMS household meter (HLS-GMAC over the IP
wrapper on loopback, its disconnect control cutting the load) collected every 15 minutes on the
virtual clock, the issue's top-up table with a unit of 10 Wh, reminders at 300/200/100 units
e-mailed to a local SMTP server (aiosmtpd on 127.0.0.1 in the test's loop), the Indian practice
windows (no cut-offs 18:00-08:00 IST or on Sundays).

The household empties its 500 units (5 kWh) in the evening: it receives the three reminders once
each, the disconnect is held through the night and done when the window ends at 08:00 IST, a
top-up too small for the night's debt leaves the supply off, and a sufficient one brings it back
within one collection cycle - in fact at once, since the top-up command runs a prepaid cycle.
The relay state is read back from the simulated meter.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from aiosmtpd.smtp import SMTP

from headend_support import DLMS_SECRETS, dlms_meter_toml, serve_dlms_meter
from metercom.clock import VirtualClock
from metercom.errors import InputError
from metercom.service.adapters import MeterSessionFactory
from metercom.service.automation import prepaid_policy
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.notify import AlarmKind
from metercom.service.prepaid import ReadingEvent, RelayEvent, ReminderEvent, TopUpEvent
from metercom.service.store import CommandState, Store
from metercom.service.store.automation import AutomationStore
from metercom.sim.dlms import secret_environment

START = datetime(2026, 3, 2, 10, tzinfo=UTC)  # a Monday, 15:30 IST
IST = ZoneInfo("Asia/Kolkata")


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.01)


@dataclass
class Mailbox:
    subjects: list[str] = field(default_factory=list)
    times: list[datetime] = field(default_factory=list)
    clock: VirtualClock | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.subjects.append(str(message["Subject"]))
        if self.clock is not None:
            self.times.append(self.clock.now())
        return "250 OK"


def fleet(dlms_port: int, smtp_port: int) -> str:
    return f"""
[service]
name = "prepaid"
{DLMS_SECRETS}{dlms_meter_toml("house-1", dlms_port, "prepaid")}
[[groups]]
id = "prepaid"

[[plans]]
id = "prepaid"
objects = ["1.8.0", "0.0.96.3.10.255"]

[[schedules]]
id = "quarter-hourly"
group = "prepaid"
plan = "prepaid"
every = "15m"

[prepaid]
currency = "INR"
timezone = "Asia/Kolkata"
table = {{ 5 = 500, 10 = 650, 30 = 900, 100 = 1175 }}
unit_wh = 10
reminder_levels = [300, 200, 100]

[prepaid.protected]
windows = [{{ start = "18:00", end = "08:00", name = "night" }}]
weekdays = ["sun"]

[[prepaid.accounts]]
account = "acc-1"
meter = "house-1"

[notify]
quiet_period = "30m"

[[notify.channels]]
id = "customer"
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "prepaid@utility.test"
to = ["customer@home.test"]

[[notify.routes]]
channels = ["customer"]
kinds = ["prepaid_level"]
"""


async def until(clock: VirtualClock, at: datetime) -> None:
    await asyncio.sleep(max(0.0, (at - clock.now()).total_seconds()))


async def test_household_reminders_disconnect_and_top_up(
    store_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    meter = await serve_dlms_meter(vclock, seed=7)
    device = meter.device
    mailbox = Mailbox(clock=vclock)
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(mailbox, hostname="mail.test", loop=loop), "127.0.0.1", 0)
    smtp_port = smtp.sockets[0].getsockname()[1]

    store = await Store.open(store_url)
    configs = ConfigStore(store)
    applied = await configs.apply(fleet(meter.port, smtp_port), actor="test")
    del applied
    headend = HeadEnd(
        store,
        configs,
        session_factory=MeterSessionFactory(state_dir=tmp_path / "state"),
        env=secret_environment(),
    )
    await headend.start()
    first = await headend.top_up("acc-1", 500, "UPI-0001", requested_by="payments")
    assert first.state is CommandState.SUCCEEDED
    assert first.result is not None
    assert first.result["credit"] == "500"
    again = await headend.top_up("acc-1", 500, "UPI-0001", requested_by="payments")
    assert again.id == first.id  # the same payment twice credits once
    account = headend.prepaid_account("acc-1")
    assert account.balance == Decimal(500)

    # Run until prepaid has disconnected the supply, at most two days.
    for _ in range(2 * 96):
        if account.disconnected_by_prepaid:
            break
        await asyncio.sleep(900)
    assert account.disconnected_by_prepaid
    assert not device.meter.connected  # the simulated meter's load is cut
    cut_at = vclock.now()

    # The night's debt stays on the account: a top-up that does not cover it leaves the supply
    # off; the next one, an hour later, brings it back at once (well within one collection cycle).
    await until(vclock, cut_at + timedelta(minutes=7))
    small = await headend.top_up("acc-1", 1000, "UPI-0002", requested_by="payments")
    assert small.result is not None
    assert small.result["done"] == []
    assert Decimal(small.result["balance"]) <= 0
    assert not device.meter.connected
    await until(vclock, cut_at + timedelta(hours=1, minutes=7))
    paid_at = vclock.now()
    topped = await headend.top_up("acc-1", 10000, "UPI-0003", requested_by="payments")
    assert topped.result is not None
    assert topped.result["done"] == ["reconnect"]
    assert device.meter.connected
    await headend.schedules.stop()
    await headend.wait_idle()
    commands = await store.commands(meter_id="house-1")
    ledger_rows = await AutomationStore(store).ledger("acc-1")
    await headend.stop()

    # Three reminders, once each, in order, by e-mail to the local server.
    reminders = [e for e in account.events if isinstance(e, ReminderEvent)]
    assert [(e.level, e.sent) for e in reminders] == [
        (Decimal(300), True),
        (Decimal(200), True),
        (Decimal(100), True),
    ]
    assert len(mailbox.subjects) == 3
    for level, subject in zip((300, 200, 100), mailbox.subjects, strict=True):
        assert "prepaid_level on meter house-1" in subject
        assert f"reminder level {level}" in subject

    # Disconnected at zero: at the first reading at or below zero, or when its protected
    # window ended (a re-check is scheduled for exactly then).
    readings = [e for e in account.events if isinstance(e, ReadingEvent)]
    empty_at = next(e.at for e in readings if _balance_after(account, e.seq) <= 0)
    windows = prepaid_policy(headend.config.prepaid).windows  # type: ignore[arg-type]
    expected = windows.protected_until(empty_at) or empty_at
    relay_events = [e for e in account.events if isinstance(e, RelayEvent)]
    assert [e.action.value for e in relay_events] == ["disconnect", "reconnect"]
    disconnect, reconnect = (c for c in commands if c.kind in ("disconnect", "reconnect"))
    assert disconnect.requested_by == reconnect.requested_by == "prepaid"
    # Decided in the cycle of that reading (or the re-check at the window's end) ...
    assert expected > empty_at  # emptied in the evening: held through the night until 08:00 IST
    assert expected <= relay_events[0].at < expected + timedelta(seconds=5), (empty_at, expected)
    assert not windows.is_protected(relay_events[0].at)
    # ... and carried out in it, before the next collection (the store works in real time and
    # may let the virtual clock move on meanwhile).
    assert relay_events[0].at <= disconnect.requested_at < expected + timedelta(minutes=15)
    assert disconnect.result == {"relay": "open", "confirmed": True}
    assert reconnect.result == {"relay": "closed", "confirmed": True}
    # Reconnected by the top-up's own prepaid cycle, before the next collection (15 min): store
    # work runs in real time and may let the virtual clock move a little meanwhile.
    assert paid_at <= reconnect.requested_at < paid_at + timedelta(minutes=15)
    top_ups = [c for c in commands if c.kind == "top_up"]
    assert [c.args["key"] for c in top_ups] == ["UPI-0001", "UPI-0002", "UPI-0003"]
    assert [e.amount_minor for e in account.events if isinstance(e, TopUpEvent)] == [500, 1000, 10000]
    # The ledger is in the store, complete.
    assert [r["seq"] for r in ledger_rows] == list(range(1, len(account.events) + 1))
    assert account.balance > 0

    # The monthly statement balances; the prepaid disconnect alarm was cleared by the reconnect.
    statement = headend.prepaid_statement("house-1", 2026, 3)
    assert statement.balanced
    assert statement.top_ups == 3
    assert statement.disconnections == 1
    assert statement.reconnections == 1
    assert statement.reminders == 3
    with pytest.raises(InputError):
        headend.prepaid_statement("nobody", 2026, 3)

    # A restart rebuilds the account from the stored ledger.
    headend = HeadEnd(store, configs, session_factory=MeterSessionFactory(state_dir=tmp_path / "state"))
    await headend.start()
    rebuilt = headend.prepaid_account("acc-1")
    assert rebuilt.events == account.events
    assert rebuilt.balance == account.balance
    alarms = await headend.alarms(kind=AlarmKind.PREPAID_DISCONNECT)
    assert [a.cleared_at is not None for a in alarms] == [True]
    await headend.stop()

    meter.server.close()
    await meter.server.wait_closed()
    smtp.close()
    await smtp.wait_closed()
    await store.close()


def _balance_after(account: Any, seq: int) -> Decimal:
    balance = Decimal(0)
    for event in account.events:
        if event.seq > seq:
            break
        if isinstance(event, TopUpEvent):
            balance += event.credit
        elif isinstance(event, ReadingEvent):
            balance -= event.charge
    return balance
