"""Alarms through the real head-end: a simulated pmtr3 meter on Modbus TCP (loopback) whose link
is cut and restored, its event log (the power-on entry becomes a power-failure alarm), e-mail to
a local SMTP server (aiosmtpd on 127.0.0.1 in the test's loop), and an acknowledgement that
survives a restart of the head-end. Plus one store-level test of the new tables on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
import email
import email.policy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP

from metercom.clock import VirtualClock
from metercom.errors import StoreError
from metercom.service.adapters import MeterSessionFactory
from metercom.service.collector import RetryPolicy
from metercom.service.config_store import ConfigStore
from metercom.service.headend import HeadEnd
from metercom.service.notify import AlarmKind, AlarmState
from metercom.service.prepaid import PrepaidAccount, PrepaidTariff, RegisterReading
from metercom.service.store import Store
from metercom.service.store.automation import AutomationStore
from metercom.sim.modbus import build_bus

START = datetime(2026, 3, 2, tzinfo=UTC)
M = timedelta(minutes=1)


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(START, real_grace_s=0.005)


@dataclass
class Mailbox:
    subjects: list[str] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        self.subjects.append(" ".join(str(message["Subject"]).split()))
        return "250 OK"


def fleet(port: int, smtp_port: int) -> str:
    return f"""
[[lines]]
id = "gw"
url = "tcp://127.0.0.1:{port}"
type = "tcp"
connect_timeout_s = 2
response_timeout_s = 1

[[meters]]
id = "p3"
protocol = "modbus"
line = "gw"
address = {{ unit = 1 }}
device_profile = "pmtr3"
groups = ["all"]

[[groups]]
id = "all"

[[plans]]
id = "billing"
objects = ["21.8.0"]
events = [{{ obis = "0-0:99.98.0*255", history = "1d" }}]

[[schedules]]
id = "minutely"
group = "all"
plan = "billing"
every = "1m"

[notify]
quiet_period = "30m"

[[notify.channels]]
id = "ops"
type = "smtp"
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "headend@utility.test"
to = ["ops@utility.test"]

[[notify.routes]]
channels = ["ops"]
min_severity = "major"
"""


async def until(clock: VirtualClock, minutes: float) -> None:
    await asyncio.sleep(max(0.0, (START + minutes * M - clock.now()).total_seconds()))


async def test_comm_loss_once_down_once_up_and_acknowledge_survives_a_restart(
    store_url: str, tmp_path: Path, vclock: VirtualClock
) -> None:
    bus = build_bus({1: "pmtr3"}, start=START)
    server = await bus.serve_url("tcp://127.0.0.1:0", "tcp")
    port = int(server.url.rsplit(":", 1)[1])
    mailbox = Mailbox()
    loop = asyncio.get_running_loop()
    smtp = await loop.create_server(lambda: SMTP(mailbox, hostname="mail.test", loop=loop), "127.0.0.1", 0)
    store = await Store.open(store_url)
    configs = ConfigStore(store)
    await configs.apply(fleet(port, smtp.sockets[0].getsockname()[1]), actor="test")

    def make() -> HeadEnd:
        return HeadEnd(
            store,
            configs,
            session_factory=MeterSessionFactory(state_dir=tmp_path / "state"),
            retry=RetryPolicy(transport_retries=1, transport_backoff_s=5.0),
        )

    servers = [server]
    try:
        headend = make()
        await headend.start()
        await until(vclock, 5.5)
        server.close()  # the link is cut: connections are refused
        await server.wait_closed()
        await until(vclock, 12.5)
        server = await bus.serve_url(f"tcp://127.0.0.1:{port}", "tcp")
        servers.append(server)
        await until(vclock, 15.5)
        await headend.schedules.stop()
        await headend.wait_idle()
        await headend.automation.center.wait_idle()

        (loss,) = await headend.alarms(kind=AlarmKind.COMM_LOSS)
        # Down at the first read after the cut (06:00; its retry at 06:05 fails too), once; up again
        # at the first read after the restore (13:00), once. (The collector stamps "available" after
        # storing the read; the store works in real time, so the virtual clock may have moved on.)
        assert loss.first_at == START + 6 * M + 5 * timedelta(seconds=1)
        assert loss.count == 1
        assert loss.cleared_at is not None
        assert START + 13 * M <= loss.cleared_at < START + 14 * M + 1 * timedelta(seconds=1)
        assert loss.state is AlarmState.CLEARED
        comm = [s for s in mailbox.subjects if "comm_loss" in s or "comm_restored" in s]
        assert len(comm) == 2, mailbox.subjects
        assert comm[0].startswith("[metercom] MAJOR comm_loss on meter p3: route to this meter is down")
        assert comm[1].startswith("[metercom] CLEARED comm_restored on meter p3")

        # The meter's event log: its power-on entry (at start) is a power-failure alarm, raised once
        # although the log is read every minute.
        (power,) = await headend.alarms(kind=AlarmKind.POWER_FAILURE, active=True)
        assert power.first_at == START
        assert power.count == 1
        acked = await headend.acknowledge(power.alarm_id, "asha", note="crew sent")
        assert acked.state is AlarmState.ACKNOWLEDGED
        await headend.stop()

        # After a restart the acknowledgement is still there, and the episode is active again in
        # the alarm centre (a new occurrence counts on it, quietly).
        headend = make()
        await headend.start()
        (again,) = await headend.alarms(kind=AlarmKind.POWER_FAILURE)
        assert (again.alarm_id, again.acknowledged_by, again.acknowledge_note) == (
            power.alarm_id,
            "asha",
            "crew sent",
        )
        assert again.state is AlarmState.ACKNOWLEDGED
        assert headend.automation.center.get(power.alarm_id).acknowledged_by == "asha"
        assert [a.state for a in await headend.alarms(state="acknowledged")] == [AlarmState.ACKNOWLEDGED]
        await headend.stop()

    finally:
        for each in servers:
            each.close()
            await each.wait_closed()
        smtp.close()
        await smtp.wait_closed()
        await store.close()


async def test_ledger_and_alarm_tables(store_url: str, vclock: VirtualClock) -> None:
    async with await Store.open(store_url) as store:
        tables = AutomationStore(store)
        tariff = PrepaidTariff.from_table({5: 500, 10: 650}, currency="INR")
        account = PrepaidAccount("acc-1", "m-1", tariff)
        account.top_up("UPI-1", 500, START)
        account.apply_reading(RegisterReading(START, 1000))
        account.apply_reading(RegisterReading(START + M, 3500))
        assert await tables.save_ledger(account.to_records()) == 3
        assert await tables.save_ledger(account.to_records()) == 0  # a retried write is a no-op
        rows = await tables.ledger("acc-1")
        rebuilt = PrepaidAccount.from_records(rows, tariff)
        assert rebuilt.events == account.events
        assert rebuilt.balance == account.balance
        # The same key for another top-up under the next sequence number is refused by the store.
        forged = dict(account.to_records()[0], seq=4)
        with pytest.raises(StoreError):
            await tables.save_ledger([forged])
        changed = dict(account.to_records()[1], register_wh=999)
        with pytest.raises(StoreError, match="different content"):
            await tables.save_ledger([changed])

        row = {
            "alarm_id": "a1",
            "dedup_key": "tamper:m-1",
            "kind": "tamper",
            "meter_id": "m-1",
            "severity": "critical",
            "state": "open",
            "first_at": START,
            "last_at": START,
            "count": 1,
            "message": "cover",
            "first_alarm": "{}",
            "last_alarm": "{}",
            "notifications": 0,
            "deliveries": "[]",
        }
        await tables.save_alarms([row])
        await tables.save_alarms(
            [dict(row, state="acknowledged", acknowledged_by="asha", acknowledged_at=START)]
        )
        (stored,) = await tables.alarm_rows(meter_id="m-1")
        assert (stored["state"], stored["acknowledged_by"], stored["acknowledged_at"]) == (
            "acknowledged",
            "asha",
            START,
        )
        assert await tables.alarm_rows(active=False) == []
