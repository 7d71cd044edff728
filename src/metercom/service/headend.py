"""The head-end: configuration, store, scheduler, collector and commands as one service.

Rule: :class:`HeadEnd` owns nothing but the wiring and the lifecycle. ``start()`` loads the
configuration in force from the :class:`~metercom.service.config_store.ConfigStore`, subscribes
to new versions (meters added, removed or changed take effect without a restart; running
conversations finish), resumes commands left by a previous run and starts the schedule timers.
``stop()`` is bounded: no new work is accepted, queued conversations are dropped, running ones
get ``stop_timeout_s`` to end and are then cancelled, and the links are closed.

Everything runs on the injected clock (``clock``; by default the running loop's), so the whole
service runs on virtual time in tests.

Automation (:mod:`.automation`): every successful read feeds the rules engine, the
broken-neutral detector, meter-event alarms and the prepaid accounts; relay actions and
top-ups are commands like any other (recorded, at most once, read back, audited). The alarm
centre built from ``[notify]`` is the collector's availability listener (the ``listener``
given here is told too); alarm episodes and the prepaid ledger live in the store.

Forwarding (:mod:`.forward`): the ``[[upstreams]]`` of the configuration in force are run by a
:class:`~metercom.service.forward.runner.ForwardingRunner`; their sinks are registered in the
store before collection starts (and before a new version is applied), so nothing collected
misses the outbox. ``forwarding_status()`` gives the backlog size and age per sink.

Usage::

    headend = HeadEnd(store, ConfigStore(store), listener=notifier)
    await headend.start()
    record = await headend.command("time_sync", "m-0003", {}, requested_by="alice",
                                   idempotency_key="ticket-4711")
    await headend.top_up("acc-42", 1000, "UPI-8731", requested_by="payments")
    alarms = await headend.alarms(active=True)
    await headend.acknowledge(alarms[0].alarm_id, "asha")
    rows = headend.status()                   # per meter: last/next read, errors, quarantine
    await headend.stop()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final

from metercom.clock import Clock, current_clock
from metercom.errors import InputError, MetercomError, ServiceError
from metercom.service.automation import Automation
from metercom.service.collector import AvailabilityListener, Collector, CollectOutcome, RetryPolicy
from metercom.service.commands import DEFAULT_TIME_SYNC_THRESHOLD_S, CommandExecutor, CommandKind
from metercom.service.config_model import FleetConfig
from metercom.service.config_store import ConfigChange, ConfigStore
from metercom.service.forward import SinkStatus
from metercom.service.forward.runner import ForwardingRunner
from metercom.service.gaps import GapRecovery
from metercom.service.meters import LinkPool, SessionFactory
from metercom.service.notify import AlarmKind, AlarmRecord, AlarmState
from metercom.service.prepaid import MonthlyStatement, PrepaidAccount
from metercom.service.rules import RuleAction
from metercom.service.scheduler import ConversationScheduler, Priority, ScheduleRunner
from metercom.service.status import LineStatus, MeterStatus, StatusBoard
from metercom.service.store import CommandRecord, Store

__all__ = ["HeadEnd"]

log = logging.getLogger(__name__)

_DEFAULT_STOP_TIMEOUT_S: Final = 10.0


class HeadEnd:
    """The head-end service; see the module docstring.

    ``links`` and ``session_factory`` replace how links are opened and sessions built (tests
    use simulated lines); ``env`` is the environment secrets are resolved in.
    ``refresh_interval_s`` polls the store for versions applied by another process.
    """

    def __init__(
        self,
        store: Store,
        configs: ConfigStore,
        *,
        clock: Clock | None = None,
        links: LinkPool | None = None,
        session_factory: SessionFactory | None = None,
        listener: AvailabilityListener | None = None,
        retry: RetryPolicy | None = None,
        max_conversations: int = 64,
        time_sync_threshold_s: float = DEFAULT_TIME_SYNC_THRESHOLD_S,
        stop_timeout_s: float = _DEFAULT_STOP_TIMEOUT_S,
        refresh_interval_s: float | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.store = store
        self.configs = configs
        self._clock = clock
        self.stop_timeout_s = stop_timeout_s
        self.refresh_interval_s = refresh_interval_s
        self.status_board = StatusBoard()
        self.scheduler = ConversationScheduler(
            links=links, session_factory=session_factory, max_conversations=max_conversations, env=env
        )
        self.collector = Collector(
            store, self.scheduler, self.status_board, clock=clock, retry=retry, listener=listener
        )
        #: Load-profile gap recovery, run after every profile save (see :mod:`.gaps`).
        self.gaps = GapRecovery(store, self.scheduler, clock=clock)
        self.collector.on_profile_saved = self.gaps.on_profile_saved
        self.commands = CommandExecutor(
            store, self.scheduler, self.collector, clock=clock, time_sync_threshold_s=time_sync_threshold_s
        )
        #: Rules, neutral detection, prepaid and alarms (see :mod:`.automation`).
        self.automation = Automation(store, self.commands, clock=clock, env=env, listener=listener)
        #: Store-and-forward to the ``[[upstreams]]`` (see :mod:`.forward`).
        self.forwarding = ForwardingRunner(store, clock=clock, env=env)
        self.collector.listener = self.automation
        self.collector.on_collected = self.automation.on_collected
        self.schedules = ScheduleRunner(self._fire, clock=clock)
        self._config: FleetConfig | None = None
        self._version: int | None = None
        self._unsubscribe: Any = None
        self._refresher: asyncio.Task[None] | None = None
        self._started = False
        self._stopped = False

    @property
    def clock(self) -> Clock:
        return self._clock or current_clock()

    @property
    def config(self) -> FleetConfig:
        if self._config is None:
            raise ServiceError("the head-end has no configuration: apply one first")
        return self._config

    @property
    def config_version(self) -> int | None:
        return self._version

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Load the configuration in force and start collecting."""
        if self._started:
            raise ServiceError("the head-end was already started")
        self._started = True
        applied = await self.configs.current()
        if applied is None:
            raise ServiceError("there is no configuration in the store: apply one before starting")
        await self.automation.start(applied.config)
        # Sinks are registered before collection starts: nothing collected misses the outbox.
        await self.forwarding.configure(applied.config)
        self._apply(applied.config, applied.version)
        self._unsubscribe = self.configs.subscribe(self._on_change)
        await self.commands.resume()
        if self.refresh_interval_s:
            self._refresher = asyncio.create_task(self._refresh_loop(self.refresh_interval_s))
        log.info("head-end started with configuration version %d", applied.version)

    async def stop(self) -> None:
        """Stop within about ``stop_timeout_s``: see the module docstring."""
        if self._stopped or not self._started:
            self._stopped = True
            return
        self._stopped = True
        if self._unsubscribe is not None:
            self._unsubscribe()
        if self._refresher is not None:
            self._refresher.cancel()
        self.collector.close_intake()
        await self.schedules.stop()
        await self.gaps.stop()
        await self.scheduler.stop(timeout_s=self.stop_timeout_s)
        await self.collector.stop()
        await self.commands.wait_idle()
        await self.automation.stop()
        await self.forwarding.stop()
        log.info("head-end stopped")

    async def __aenter__(self) -> HeadEnd:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_change(self, change: ConfigChange) -> None:
        if self._stopped:
            return
        await self.automation.configure(change.config)
        try:
            await self.forwarding.configure(change.config)
        except MetercomError as exc:  # the store failed: the old forwarder stays, retried next change
            log.error("head-end: forwarding not reconfigured for version %d: %s", change.version, exc)
        self._apply(change.config, change.version)
        log.info("head-end: configuration version %d in force (%s)", change.version, change.diff.summary())

    def _apply(self, config: FleetConfig, version: int) -> None:
        self._config = config
        self._version = version
        self.scheduler.configure(config)
        self.collector.configure(config)
        self.gaps.configure(config)
        self.schedules.configure(config)

    async def _refresh_loop(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.configs.refresh()
            except Exception:
                log.exception("looking for a new configuration version failed")

    def _fire(self, schedule_id: str, at: datetime) -> None:
        config = self.config
        try:
            schedule = config.schedule(schedule_id)
        except KeyError:
            return
        for meter in config.schedule_meters(schedule_id):
            self.collector.request(meter.id, schedule.plan, priority=Priority.SCHEDULED)
        log.debug("schedule %s fired at %s", schedule_id, at.isoformat())

    # -- API -------------------------------------------------------------------------------------

    async def command(
        self,
        kind: CommandKind | str,
        meter_id: str,
        args: Mapping[str, Any] | None = None,
        *,
        requested_by: str,
        idempotency_key: str | None = None,
    ) -> CommandRecord:
        """Record and run a command at most once; see :mod:`metercom.service.commands`."""
        return await self.commands.command(
            kind, meter_id, args, requested_by=requested_by, idempotency_key=idempotency_key
        )

    async def submit_command(
        self,
        kind: CommandKind | str,
        meter_id: str,
        args: Mapping[str, Any] | None = None,
        *,
        requested_by: str,
        idempotency_key: str | None = None,
    ) -> CommandRecord:
        """Record a command and start it without waiting for its end (what the REST API answers
        202 with); read its progress back with ``store.command(id)``."""
        if self._stopped:
            raise ServiceError("the head-end is stopping: no new commands")
        return await self.commands.submit(
            kind, meter_id, args, requested_by=requested_by, idempotency_key=idempotency_key
        )

    def prepaid_accounts(self) -> list[PrepaidAccount]:
        """Every prepaid account, by account id."""
        return [self.automation.accounts[k] for k in sorted(self.automation.accounts)]

    def prepaid_account_of_meter(self, meter_id: str) -> PrepaidAccount | None:
        """The prepaid account of a meter, or ``None``."""
        try:
            return self.automation.account_of_meter(meter_id)
        except InputError:
            return None

    async def top_up(
        self, account_id: str, amount_minor: int, idempotency_key: str, *, requested_by: str
    ) -> CommandRecord:
        """Credit a prepaid account once per ``idempotency_key`` (the payment's reference), as a
        recorded, audited ``top_up`` command; the supply comes back at once when the credit lifts
        the balance above zero. Asking again with the same key returns the first command."""
        if not idempotency_key or len(idempotency_key) > 100:
            raise InputError("a top-up needs an idempotency key of 1..100 characters (the payment reference)")
        account = self.automation.account(account_id)
        return await self.commands.command(
            "top_up",
            account.meter_id,
            {"account_id": account_id, "amount_minor": amount_minor, "key": idempotency_key},
            requested_by=requested_by,
            idempotency_key=f"top_up:{account_id}:{idempotency_key}",
        )

    def prepaid_account(self, account_id: str) -> PrepaidAccount:
        """The prepaid account (balance, events); raises InputError for an unknown id."""
        return self.automation.account(account_id)

    def prepaid_statement(self, meter_id: str, year: int, month: int) -> MonthlyStatement:
        """The monthly statement of a prepaid meter's account, in the prepaid time zone."""
        return self.automation.statement(meter_id, year, month)

    async def alarms(
        self,
        *,
        state: AlarmState | str | None = None,
        meter_id: str | None = None,
        kind: AlarmKind | str | None = None,
        active: bool | None = None,
        limit: int = 1000,
    ) -> list[AlarmRecord]:
        """Alarm episodes from the store, most recent first (survive restarts)."""
        return await self.automation.alarms(
            state=state, meter_id=meter_id, kind=kind, active=active, limit=limit
        )

    async def acknowledge(self, alarm_id: str, user: str, note: str = "") -> AlarmRecord:
        """Acknowledge an alarm episode (stored before this returns)."""
        return await self.automation.acknowledge(alarm_id, user, note)

    async def forwarding_status(self) -> list[SinkStatus]:
        """Per upstream sink: backlog size and age, confirmations, failures, rate."""
        return await self.forwarding.status()

    def rule_actions(self) -> tuple[RuleAction, ...]:
        """The latest rule transitions and what was done about them (dry runs included)."""
        return self.automation.rules.history

    async def read_now(self, meter_id: str, plan_id: str) -> CollectOutcome:
        """Read a plan of a meter now, ahead of scheduled work, with the collector's rules."""
        return await self.collector.collect(meter_id, plan_id)

    def release(self, meter_id: str) -> bool:
        """Lift a meter's quarantine; True if it was quarantined."""
        return self.collector.release(meter_id)

    def status(self) -> list[MeterStatus]:
        """Per meter: last and next read, last error, consecutive failures, quarantine."""
        config = self._config
        rows = self.status_board.snapshot()
        if config is None:
            return rows
        known = {m.id for m in config.meters}
        rows = [row for row in rows if row.meter_id in known]
        next_fire: dict[str, datetime] = {}
        for schedule in config.schedules:
            fire = self.schedules.next_fire(schedule.id)
            if fire is None:
                continue
            for meter in config.schedule_meters(schedule.id):
                if meter.id not in next_fire or fire < next_fire[meter.id]:
                    next_fire[meter.id] = fire
        for row in rows:
            candidates = [
                t for t in (next_fire.get(row.meter_id), self.collector.retry_at(row.meter_id)) if t
            ]
            row.next_read_at = min(candidates) if candidates else None
        return rows

    def line_status(self) -> list[LineStatus]:
        return self.scheduler.line_status()

    async def wait_idle(self) -> None:
        """Wait until no read cycle, command or conversation is active (for tests and tools)."""
        while True:
            await self.collector.wait_idle()
            await self.commands.wait_idle()
            await self.gaps.wait_idle()
            if self.scheduler.idle and self.collector.active_cycles == 0 and self.gaps.active == 0:
                return
            await asyncio.sleep(0)
