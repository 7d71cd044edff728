"""Prepaid policy: what to do about an account now, and a runner that does it each collection cycle.

Rule: deciding is pure and doing is separate. :meth:`PrepaidController.decide` looks at an
account, the time, the last reading and the relay state and returns a :class:`Decision`
(actions with reasons); it changes nothing. :class:`PrepaidRunner` carries a decision out
through a :class:`RelayCommander` (implemented by the head-end's command service) and a
:class:`PrepaidNotifier`, and records in the ledger only what succeeded, so a failed command
is simply decided again next cycle.

Theory of operation (one call per collection cycle, after the cycle's reading is applied):

* **Remind** when the balance has crossed a configured level (``PrepaidPolicy.levels``, e.g.
  300, 200, 100 units; see the ledger for arming). If a single reading crosses several levels
  only the lowest is sent; the higher ones are recorded as passed over. Reminders are not
  subject to protected windows.
* **Disconnect** when the balance is at or below ``disconnect_at`` (zero), the supply is not
  already off, a fresh reading (no older than ``max_reading_age``) confirms the balance, and
  ``now`` is outside the protected windows (nights, Sundays, holidays). Inside a window the
  disconnect is *held*: the decision says until when (``held_until``, the end of the merged
  protected stretch) so the head-end may schedule an extra check exactly then; otherwise the
  first cycle after the window disconnects if the balance is still empty.
* **Reconnect** when prepaid itself disconnected the supply (the ledger's last relay action)
  and a top-up has lifted the balance above ``disconnect_at``. Reconnecting is allowed at any
  time. A supply switched off by someone else (an operator, the meter's own limiter) is never
  reconnected by prepaid, and never recorded as prepaid's.
* If the meter reports *connected* although prepaid disconnected it and the balance is still
  empty (a local reconnect), the disconnect is decided again, under the same window rules.

The head-end should also run a cycle right after crediting a top-up: the supply then comes
back at once instead of at the next scheduled collection.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Protocol, runtime_checkable

from metercom.clock import Clock, current_clock
from metercom.errors import MetercomError, PrepaidError
from metercom.service.prepaid.ledger import PrepaidAccount, ReadingResult, RegisterReading
from metercom.service.prepaid.windows import ProtectedWindows

__all__ = [
    "CycleReport",
    "Decision",
    "Disconnect",
    "NoticeKind",
    "PrepaidAction",
    "PrepaidController",
    "PrepaidNotice",
    "PrepaidNotifier",
    "PrepaidPolicy",
    "PrepaidRunner",
    "Reconnect",
    "RelayCommander",
    "RelayState",
    "Remind",
]

log = logging.getLogger(__name__)


class RelayState(enum.StrEnum):
    """The supply relay as the meter reported it this cycle (disconnect control, class 70)."""

    CONNECTED = "connected"
    DISCONNECTED = "disconnected"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Remind:
    """Send the reminder for ``level``; ``skipped`` higher levels crossed in the same step."""

    level: Decimal
    balance: Decimal
    skipped: tuple[Decimal, ...]
    reason: str


@dataclass(frozen=True, slots=True)
class Disconnect:
    """Switch the supply off."""

    reason: str


@dataclass(frozen=True, slots=True)
class Reconnect:
    """Switch the supply back on."""

    reason: str


PrepaidAction = Remind | Disconnect | Reconnect


@dataclass(frozen=True, slots=True)
class Decision:
    """What to do about one account at ``at``, and why.

    ``held_until`` is set when a disconnect is due but a protected window holds it.
    """

    account_id: str
    meter_id: str
    at: datetime
    balance: Decimal
    actions: tuple[PrepaidAction, ...]
    held_until: datetime | None = None
    notes: tuple[str, ...] = ()

    @property
    def disconnect(self) -> Disconnect | None:
        return next((a for a in self.actions if isinstance(a, Disconnect)), None)

    @property
    def reconnect(self) -> Reconnect | None:
        return next((a for a in self.actions if isinstance(a, Reconnect)), None)

    @property
    def remind(self) -> Remind | None:
        return next((a for a in self.actions if isinstance(a, Remind)), None)


def _levels(levels: Iterable[Decimal | int | str]) -> tuple[Decimal, ...]:
    out: set[Decimal] = set()
    for level in levels:
        if isinstance(level, bool | float):
            raise PrepaidError(f"reminder levels are Decimal, int or str, not {type(level).__name__}")
        value = Decimal(level)
        if not value.is_finite():
            raise PrepaidError(f"reminder level {level!r} is not finite")
        out.add(value)
    return tuple(sorted(out, reverse=True))


@dataclass(frozen=True)
class PrepaidPolicy:
    """Reminder levels, protected windows and the disconnect rules (see the module docstring).

    Levels and ``disconnect_at`` are in the tariff's credit unit (energy units or minor units).
    ``max_reading_age=None`` disconnects on the balance whatever the reading's age.
    """

    levels: tuple[Decimal, ...] = (Decimal(300), Decimal(200), Decimal(100))
    windows: ProtectedWindows = field(default_factory=ProtectedWindows)
    disconnect_at: Decimal = Decimal(0)
    max_reading_age: timedelta | None = timedelta(hours=1)

    def __post_init__(self) -> None:
        object.__setattr__(self, "levels", _levels(self.levels))
        if self.max_reading_age is not None and self.max_reading_age <= timedelta(0):
            raise PrepaidError("max_reading_age must be positive (or None)")


def _utc_now(now: datetime) -> datetime:
    if now.tzinfo is None or now.utcoffset() is None:
        raise PrepaidError(f"now must be timezone-aware, got {now!r}")
    return now


class PrepaidController:
    """Decides reminders, disconnects and reconnects; pure (see the module docstring)."""

    def __init__(self, policy: PrepaidPolicy | None = None) -> None:
        self.policy = policy or PrepaidPolicy()

    def decide(
        self,
        account: PrepaidAccount,
        now: datetime,
        last_reading: RegisterReading | None,
        relay: RelayState = RelayState.UNKNOWN,
    ) -> Decision:
        """The actions due for ``account`` at ``now``.

        ``last_reading`` is the latest reading collected from the meter (already applied to the
        account); ``relay`` what the meter reported about its relay this cycle.
        """
        now = _utc_now(now)
        policy = self.policy
        unit = account.tariff.unit_label
        balance = account.balance
        actions: list[PrepaidAction] = []
        notes: list[str] = []
        held_until: datetime | None = None

        due = account.due_reminders(policy.levels)
        if due:
            level = due[-1]
            actions.append(
                Remind(level, balance, tuple(due[:-1]), f"balance {balance} {unit} is at or below {level}")
            )

        empty = balance <= policy.disconnect_at
        ours = account.disconnected_by_prepaid
        wants_off = False
        if ours and not empty:
            actions.append(
                Reconnect(f"balance {balance} {unit} is above {policy.disconnect_at} after a top-up")
            )
        elif ours:
            if relay is RelayState.CONNECTED:
                notes.append("the meter reports connected although prepaid disconnected it")
                wants_off = True
            else:
                notes.append(f"stays disconnected: balance {balance} {unit}")
        elif empty:
            if relay is RelayState.DISCONNECTED:
                notes.append("balance is empty but the supply is already off (not by prepaid); nothing to do")
            else:
                wants_off = True

        if wants_off:
            stale = self._stale(now, last_reading)
            protected_until = policy.windows.protected_until(now)
            if stale is not None:
                notes.append(f"disconnect due but not confirmed: {stale}")
            elif protected_until is not None:
                held_until = protected_until
                why = policy.windows.why(now)
                notes.append(f"disconnect held: protected ({why}) until {protected_until.isoformat()}")
            else:
                actions.append(
                    Disconnect(
                        f"balance {balance} {unit} is at or below {policy.disconnect_at} "
                        "(prepaid credit exhausted)"
                    )
                )
        return Decision(
            account.account_id, account.meter_id, now, balance, tuple(actions), held_until, tuple(notes)
        )

    def _stale(self, now: datetime, reading: RegisterReading | None) -> str | None:
        if self.policy.max_reading_age is None:
            return None
        if reading is None:
            return "no reading from the meter yet"
        age = now - reading.at
        if age > self.policy.max_reading_age:
            return f"the last reading is {age} old (limit {self.policy.max_reading_age})"
        return None


# ---- doing it


@runtime_checkable
class RelayCommander(Protocol):
    """Switches a meter's supply relay; the head-end's command service implements it.

    Return once the meter confirmed (read back); raise a :class:`~metercom.errors.MetercomError`
    (TransportError, DeviceRejectedError ...) when it did not.
    """

    async def disconnect(self, meter_id: str, reason: str) -> None: ...

    async def reconnect(self, meter_id: str, reason: str) -> None: ...


class NoticeKind(enum.StrEnum):
    """What a :class:`PrepaidNotice` tells."""

    REMINDER = "reminder"
    DISCONNECTED = "disconnected"
    RECONNECTED = "reconnected"


@dataclass(frozen=True, slots=True)
class PrepaidNotice:
    """A prepaid event worth telling someone about (customer reminder, utility alarm)."""

    kind: NoticeKind
    account_id: str
    meter_id: str
    at: datetime
    balance: Decimal
    unit: str
    reason: str
    level: Decimal | None = None


@runtime_checkable
class PrepaidNotifier(Protocol):
    """Receives prepaid notices (the notification service's adapter implements it)."""

    async def notify(self, notice: PrepaidNotice) -> None: ...


@dataclass(frozen=True, slots=True)
class CycleReport:
    """What one :meth:`PrepaidRunner.run_cycle` did."""

    decision: Decision
    reading: ReadingResult | None
    done: tuple[PrepaidAction, ...]
    failed: tuple[tuple[PrepaidAction, str], ...]


class PrepaidRunner:
    """Runs the prepaid cycle of an account: apply the reading, decide, act, record."""

    def __init__(
        self,
        controller: PrepaidController,
        relay: RelayCommander,
        notifier: PrepaidNotifier | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.controller = controller
        self.relay = relay
        self.notifier = notifier
        self._clock = clock
        self._locks: dict[str, asyncio.Lock] = {}

    async def run_cycle(
        self,
        account: PrepaidAccount,
        *,
        reading: RegisterReading | None = None,
        relay: RelayState = RelayState.UNKNOWN,
        now: datetime | None = None,
    ) -> CycleReport:
        """One cycle. ``reading`` is this cycle's register reading (None: none collected)."""
        lock = self._locks.setdefault(account.account_id, asyncio.Lock())
        async with lock:
            now = now or (self._clock or current_clock()).now()
            applied = account.apply_reading(reading) if reading is not None else None
            decision = self.controller.decide(account, now, reading or account.last_reading, relay)
            done: list[PrepaidAction] = []
            failed: list[tuple[PrepaidAction, str]] = []
            ordered = sorted(
                decision.actions, key=lambda a: 0 if isinstance(a, Reconnect | Disconnect) else 1
            )
            for action in ordered:
                try:
                    await self._execute(account, action, now)
                except MetercomError as exc:
                    log.warning(
                        "meter %s: prepaid %s failed: %s", account.meter_id, type(action).__name__, exc
                    )
                    failed.append((action, str(exc)))
                else:
                    done.append(action)
            return CycleReport(decision, applied, tuple(done), tuple(failed))

    async def _execute(self, account: PrepaidAccount, action: PrepaidAction, now: datetime) -> None:
        unit = account.tariff.unit_label
        if isinstance(action, Disconnect):
            await self.relay.disconnect(account.meter_id, action.reason)
            account.record_disconnect(now, action.reason)
            log.info("meter %s: disconnected by prepaid (%s)", account.meter_id, action.reason)
            await self._notify(account, NoticeKind.DISCONNECTED, now, action.reason)
        elif isinstance(action, Reconnect):
            await self.relay.reconnect(account.meter_id, action.reason)
            account.record_reconnect(now, action.reason)
            log.info("meter %s: reconnected by prepaid (%s)", account.meter_id, action.reason)
            await self._notify(account, NoticeKind.RECONNECTED, now, action.reason)
        else:
            if self.notifier is not None:
                await self.notifier.notify(
                    PrepaidNotice(
                        NoticeKind.REMINDER,
                        account.account_id,
                        account.meter_id,
                        now,
                        account.balance,
                        unit,
                        action.reason,
                        action.level,
                    )
                )
            for skipped in action.skipped:
                account.record_reminder(skipped, now, sent=False)
            account.record_reminder(action.level, now)

    async def _notify(self, account: PrepaidAccount, kind: NoticeKind, now: datetime, reason: str) -> None:
        if self.notifier is None:
            return
        notice = PrepaidNotice(
            kind,
            account.account_id,
            account.meter_id,
            now,
            account.balance,
            account.tariff.unit_label,
            reason,
        )
        try:
            await self.notifier.notify(notice)
        except MetercomError as exc:
            # The relay already switched and is recorded; a lost notice must not undo or repeat that.
            log.warning("meter %s: prepaid %s notice failed: %s", account.meter_id, kind.value, exc)
