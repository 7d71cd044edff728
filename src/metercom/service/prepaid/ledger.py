"""The prepaid account: an event-sourced ledger per meter.

Rule: the list of events *is* the account. Every change appends one immutable event with the
next sequence number (1, 2, 3 ...); balance, reminder state and relay state are folds over that
list and are never stored on their own. An event carries every number it contributes (the
credit a top-up bought, the charge a reading cost), so replaying the rows gives the same
account even after the tariff has changed. The head-end stores the events as rows
(:meth:`PrepaidAccount.to_records`, unique on ``(account_id, seq)`` and on
``(account_id, key)`` for top-ups) and rebuilds with :meth:`PrepaidAccount.from_records`.

Theory of operation:

* **Top-ups are idempotent by key.** The payment system's reference (or any caller-chosen key)
  identifies a top-up. Repeating a request with the same key and amount returns the first
  event and credits nothing; the same key with a different amount is a
  :class:`~metercom.errors.PrepaidError` (two different payments cannot share a key). Mutations
  hold a lock, so concurrent requests (threads or tasks) with one key credit once.
* **Consumption comes from the meter's cumulative energy register** (active import, Wh). The
  first reading is the *baseline* and charges nothing; each later reading charges the energy
  since the baseline and becomes the new baseline. A reading with the same capture time and
  value as the last one is a *duplicate*, one older than the last is *stale*: both are ignored
  and recorded nowhere, so a repeated or replayed reading is never counted twice. The same
  capture time with a different value is a conflict and raises.
* **Registers that go backwards are handled explicitly, never guessed silently:**

  - *rollover*: with ``ReadingPolicy.rollover_wh`` (the register's modulus, e.g. 10**8 Wh for
    a 6+2-digit kWh register) a decrease that is plausible as a wrap counts
    ``value + modulus - baseline``;
  - *decrease*: otherwise the reading is recorded as an anomaly, nothing is charged and the
    baseline stays. After ``confirm_reset_after`` consecutive non-decreasing anomalous readings
    the register is taken to have been reset: the first of them becomes the new baseline and
    the energy since then is charged (what was used between the last good reading and the
    reset is unknown and not charged);
  - *implausible jump*: with ``ReadingPolicy.max_power_w`` more energy than that power could
    deliver since the baseline is recorded as an anomaly and not charged;
  - *register reset or meter replacement known to an operator*: :meth:`PrepaidAccount.rebase`
    (or :meth:`~PrepaidAccount.register_reset`, :meth:`~PrepaidAccount.replace_meter`) charges
    the old register's final value if known and continues from the new register's value.

* **Balance** = credited (top-ups + adjustments) - charged.
* **Reminders** fire on threshold *crossings*: a level is armed when a credit event has lifted
  the balance above it since its last reminder, and due while armed and the balance is at or
  below it. So each level reminds once per descent, is re-armed by a top-up that lifts the
  balance above it, and a top-up that leaves the balance below a level does not remind of it.
* **Relay events** record what the head-end did (prepaid disconnect/reconnect), so the account
  knows whether *prepaid* switched the supply off.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Final

from metercom.errors import PrepaidError
from metercom.service.prepaid.tariff import PrepaidTariff

__all__ = [
    "RECORD_FIELDS",
    "AdjustmentEvent",
    "LedgerEvent",
    "PrepaidAccount",
    "ReadingEvent",
    "ReadingPolicy",
    "ReadingResult",
    "ReadingStatus",
    "RebaseCause",
    "RebaseEvent",
    "RegisterReading",
    "RelayAction",
    "RelayEvent",
    "ReminderEvent",
    "TopUpEvent",
    "TopUpResult",
]

_MAX_KEY_LENGTH: Final = 200

#: The columns of :meth:`PrepaidAccount.to_records`; a row leaves unused columns ``None``.
RECORD_FIELDS: Final = (
    "account_id",
    "meter_id",
    "seq",
    "kind",
    "at",
    "key",
    "amount_minor",
    "credit",
    "register_wh",
    "energy_wh",
    "charge",
    "status",
    "level",
    "balance",
    "sent",
    "reason",
)

RecordValue = str | int | bool | None


def _utc(at: datetime, what: str = "at") -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise PrepaidError(f"{what} must be a timezone-aware datetime, got {at!r}")
    return at.astimezone(UTC)


# ---- inputs


@dataclass(frozen=True, slots=True)
class RegisterReading:
    """A reading of the meter's cumulative active-import energy register (OBIS 1.8.0) in Wh.

    ``at`` is the meter's capture time (timezone-aware).
    """

    at: datetime
    active_import_wh: int

    def __post_init__(self) -> None:
        object.__setattr__(self, "at", _utc(self.at, "reading time"))
        if isinstance(self.active_import_wh, bool) or not isinstance(self.active_import_wh, int):
            raise PrepaidError(f"register values are integer Wh, got {self.active_import_wh!r}")
        if self.active_import_wh < 0:
            raise PrepaidError(f"a cumulative register cannot be negative ({self.active_import_wh} Wh)")


@dataclass(frozen=True, slots=True)
class ReadingPolicy:
    """How readings that do not simply increase are treated (see the module docstring).

    ``rollover_wh``: the register's modulus, or None when it never wraps in practice.
    ``max_power_w``: the largest power the supply can deliver; None disables the jump check.
    ``confirm_reset_after``: consecutive consistent lower readings that confirm a reset; None
    waits for an operator's :meth:`PrepaidAccount.rebase`.
    """

    rollover_wh: int | None = None
    max_power_w: int | None = None
    confirm_reset_after: int | None = 3

    def __post_init__(self) -> None:
        if self.rollover_wh is not None and self.rollover_wh <= 0:
            raise PrepaidError(f"rollover_wh must be positive, got {self.rollover_wh}")
        if self.max_power_w is not None and self.max_power_w <= 0:
            raise PrepaidError(f"max_power_w must be positive, got {self.max_power_w}")
        if self.confirm_reset_after is not None and self.confirm_reset_after < 1:
            raise PrepaidError(f"confirm_reset_after must be at least 1, got {self.confirm_reset_after}")


# ---- events


class ReadingStatus(enum.StrEnum):
    """What became of a register reading."""

    BASELINE = "baseline"  # first reading (or first after a rebase): the starting point, nothing charged
    COUNTED = "counted"  # energy since the baseline charged
    ROLLOVER = "rollover"  # counted across the register's wrap
    DECREASE = "decrease"  # anomaly: below the baseline; nothing charged, baseline kept
    JUMP = "jump"  # anomaly: more than max power allows; nothing charged, baseline kept
    DUPLICATE = "duplicate"  # same time and value as the last reading; not recorded
    STALE = "stale"  # older than the last reading; not recorded


class RebaseCause(enum.StrEnum):
    """Why the register baseline was moved."""

    RESET = "reset"
    REPLACEMENT = "replacement"
    RESET_DETECTED = "reset_detected"


class RelayAction(enum.StrEnum):
    """A switching action prepaid took."""

    DISCONNECT = "disconnect"
    RECONNECT = "reconnect"


@dataclass(frozen=True, slots=True)
class TopUpEvent:
    """A top-up of ``amount_minor`` that credited ``credit``; ``key`` makes it idempotent."""

    seq: int
    at: datetime
    key: str
    amount_minor: int
    credit: Decimal
    reference: str | None = None


@dataclass(frozen=True, slots=True)
class AdjustmentEvent:
    """A manual correction of the balance by ``credit`` (may be negative); idempotent by ``key``."""

    seq: int
    at: datetime
    key: str
    credit: Decimal
    reason: str


@dataclass(frozen=True, slots=True)
class ReadingEvent:
    """A register reading and what it charged (``energy_wh`` Wh for ``charge`` credit)."""

    seq: int
    at: datetime
    register_wh: int
    energy_wh: int
    charge: Decimal
    status: ReadingStatus


@dataclass(frozen=True, slots=True)
class RebaseEvent:
    """The register baseline moved to ``register_wh`` at ``at``.

    ``energy_wh`` and ``charge`` are what the old register's final value still charged.
    """

    seq: int
    at: datetime
    register_wh: int
    energy_wh: int
    charge: Decimal
    cause: RebaseCause
    reason: str = ""


@dataclass(frozen=True, slots=True)
class ReminderEvent:
    """A reminder for ``level`` (``sent=False``: passed over because a lower level was reached at once)."""

    seq: int
    at: datetime
    level: Decimal
    balance: Decimal
    sent: bool = True


@dataclass(frozen=True, slots=True)
class RelayEvent:
    """Prepaid disconnected or reconnected the supply."""

    seq: int
    at: datetime
    action: RelayAction
    reason: str


LedgerEvent = TopUpEvent | AdjustmentEvent | ReadingEvent | RebaseEvent | ReminderEvent | RelayEvent

_KINDS: Final[Mapping[type, str]] = {
    TopUpEvent: "top_up",
    AdjustmentEvent: "adjustment",
    ReadingEvent: "reading",
    RebaseEvent: "rebase",
    ReminderEvent: "reminder",
    RelayEvent: "relay",
}


# ---- results


@dataclass(frozen=True, slots=True)
class TopUpResult:
    """The top-up event for a key, and whether this call was a repeat that credited nothing."""

    event: TopUpEvent
    duplicate: bool
    balance: Decimal


@dataclass(frozen=True, slots=True)
class ReadingResult:
    """What :meth:`PrepaidAccount.apply_reading` did: the status and the events it appended."""

    status: ReadingStatus
    events: tuple[LedgerEvent, ...]
    balance: Decimal

    @property
    def energy_wh(self) -> int:
        """Energy charged by this reading."""
        return sum(e.energy_wh for e in self.events if isinstance(e, ReadingEvent | RebaseEvent))

    @property
    def charge(self) -> Decimal:
        """Credit debited by this reading."""
        return sum((e.charge for e in self.events if isinstance(e, ReadingEvent | RebaseEvent)), Decimal(0))

    @property
    def anomaly(self) -> bool:
        """True when the reading was recorded but not charged because the register misbehaved."""
        return self.status in (ReadingStatus.DECREASE, ReadingStatus.JUMP)


# ---- the account


class PrepaidAccount:
    """One meter's prepaid ledger. See the module docstring for the rules.

    Methods that change the account append events and return them; nothing else is mutable.
    One account object must have one writer at a time across processes (the store enforces
    it with its unique keys); within a process the account locks itself.
    """

    def __init__(
        self,
        account_id: str,
        meter_id: str,
        tariff: PrepaidTariff,
        *,
        policy: ReadingPolicy | None = None,
        events: Iterable[LedgerEvent] = (),
    ) -> None:
        if not account_id or not meter_id:
            raise PrepaidError("an account needs an account_id and a meter_id")
        self.account_id = account_id
        self.meter_id = meter_id
        self.tariff = tariff
        self.policy = policy or ReadingPolicy()
        self._lock = threading.RLock()
        self._events: list[LedgerEvent] = []
        self._credited = Decimal(0)
        self._charged = Decimal(0)
        self._energy_wh = 0
        self._keys: dict[str, TopUpEvent | AdjustmentEvent] = {}
        self._baseline: tuple[datetime, int] | None = None
        self._last_seen: tuple[datetime, int] | None = None
        self._pending_decrease: list[tuple[datetime, int]] = []
        self._credit_points: list[tuple[int, Decimal]] = []  # (seq, balance after) of credit events
        self._last_reminder: dict[Decimal, int] = {}
        self._last_relay: RelayEvent | None = None
        for event in events:
            if event.seq != len(self._events) + 1:
                raise PrepaidError(
                    f"account {account_id}: event sequence broken at {event.seq} "
                    f"(expected {len(self._events) + 1}); the stored ledger is incomplete"
                )
            self._fold(event)

    def __repr__(self) -> str:
        return (
            f"PrepaidAccount({self.account_id!r}, meter={self.meter_id!r}, balance={self.balance} "
            f"{self.tariff.unit_label}, events={len(self._events)})"
        )

    # ---- the fold

    def _fold(self, event: LedgerEvent) -> None:
        self._events.append(event)
        if isinstance(event, TopUpEvent | AdjustmentEvent):
            self._keys[event.key] = event
            self._credited += event.credit
            if event.credit > 0:
                self._credit_points.append((event.seq, self.balance))
        elif isinstance(event, ReadingEvent):
            self._last_seen = (event.at, event.register_wh)
            if event.status is ReadingStatus.DECREASE:
                self._note_decrease(event.at, event.register_wh)
                return
            if event.status is ReadingStatus.JUMP:
                self._pending_decrease.clear()
                return
            self._pending_decrease.clear()
            self._charged += event.charge
            self._energy_wh += event.energy_wh
            self._baseline = (event.at, event.register_wh)
        elif isinstance(event, RebaseEvent):
            self._charged += event.charge
            self._energy_wh += event.energy_wh
            self._pending_decrease.clear()
            self._baseline = (event.at, event.register_wh)
            if self._last_seen is None or event.at >= self._last_seen[0]:
                self._last_seen = (event.at, event.register_wh)
        elif isinstance(event, ReminderEvent):
            self._last_reminder[event.level] = event.seq
        else:
            self._last_relay = event

    def _note_decrease(self, at: datetime, register_wh: int) -> None:
        pending = self._pending_decrease
        if pending and register_wh < pending[-1][1]:
            pending.clear()
        pending.append((at, register_wh))

    def _append(self, event: LedgerEvent) -> LedgerEvent:
        self._fold(event)
        return event

    @property
    def _next_seq(self) -> int:
        return len(self._events) + 1

    # ---- state

    @property
    def events(self) -> tuple[LedgerEvent, ...]:
        """Every event, in sequence order."""
        with self._lock:
            return tuple(self._events)

    @property
    def balance(self) -> Decimal:
        """Credited minus charged, in the tariff's credit unit."""
        return self._credited - self._charged

    @property
    def credited(self) -> Decimal:
        return self._credited

    @property
    def charged(self) -> Decimal:
        return self._charged

    @property
    def energy_wh(self) -> int:
        """Energy charged so far (Wh)."""
        return self._energy_wh

    @property
    def last_reading(self) -> RegisterReading | None:
        """The current baseline: the last reading that counted (anomalies excluded)."""
        if self._baseline is None:
            return None
        return RegisterReading(self._baseline[0], self._baseline[1])

    @property
    def last_reading_at(self) -> datetime | None:
        """Capture time of the latest recorded reading, anomalies included."""
        return None if self._last_seen is None else self._last_seen[0]

    @property
    def pending_anomalies(self) -> int:
        """Consecutive decreased readings waiting to confirm a register reset."""
        return len(self._pending_decrease)

    @property
    def disconnected_by_prepaid(self) -> bool:
        """True when prepaid's last relay action was a disconnect."""
        return self._last_relay is not None and self._last_relay.action is RelayAction.DISCONNECT

    @property
    def last_relay_event(self) -> RelayEvent | None:
        return self._last_relay

    def top_up_for(self, key: str) -> TopUpEvent | None:
        """The top-up recorded under ``key``, if any."""
        event = self._keys.get(key)
        return event if isinstance(event, TopUpEvent) else None

    def is_armed(self, level: Decimal) -> bool:
        """True when a credit has lifted the balance above ``level`` since ``level`` last reminded."""
        since = self._last_reminder.get(level, 0)
        return any(seq > since and balance > level for seq, balance in reversed(self._credit_points))

    def due_reminders(self, levels: Iterable[Decimal]) -> list[Decimal]:
        """The armed levels the balance is at or below, highest first."""
        with self._lock:
            balance = self.balance
            return sorted({lv for lv in levels if balance <= lv and self.is_armed(lv)}, reverse=True)

    # ---- credits

    @staticmethod
    def _check_key(key: str) -> None:
        if not key.strip() or len(key) > _MAX_KEY_LENGTH:
            raise PrepaidError(f"an idempotency key must be 1..{_MAX_KEY_LENGTH} characters of text")

    def top_up(
        self, key: str, amount_minor: int, at: datetime, *, reference: str | None = None
    ) -> TopUpResult:
        """Credit a top-up once per ``key`` (see the module docstring)."""
        self._check_key(key)
        at = _utc(at)
        with self._lock:
            existing = self._keys.get(key)
            if existing is not None:
                if not isinstance(existing, TopUpEvent) or existing.amount_minor != amount_minor:
                    first = (
                        f"{self.tariff.format_minor(existing.amount_minor)} {self.tariff.currency}"
                        if isinstance(existing, TopUpEvent)
                        else "an adjustment"
                    )
                    raise PrepaidError(
                        f"account {self.account_id}: key {key!r} was already used for {first}; "
                        f"a request for {self.tariff.format_minor(amount_minor)} {self.tariff.currency} "
                        "under the same key is refused (use a new key for a new payment)"
                    )
                return TopUpResult(existing, duplicate=True, balance=self.balance)
            credit = self.tariff.credit_for(amount_minor)
            event = TopUpEvent(self._next_seq, at, key, amount_minor, credit, reference)
            self._append(event)
            return TopUpResult(event, duplicate=False, balance=self.balance)

    def adjust(self, key: str, credit: Decimal, at: datetime, *, reason: str) -> AdjustmentEvent:
        """Correct the balance by ``credit`` (credit unit, may be negative) once per ``key``."""
        self._check_key(key)
        if not credit.is_finite() or credit == 0:
            raise PrepaidError("an adjustment is a non-zero finite Decimal in the credit unit")
        if not reason:
            raise PrepaidError("an adjustment needs a reason")
        at = _utc(at)
        with self._lock:
            existing = self._keys.get(key)
            if existing is not None:
                if isinstance(existing, AdjustmentEvent) and existing.credit == credit:
                    return existing
                raise PrepaidError(f"account {self.account_id}: key {key!r} was already used differently")
            event = AdjustmentEvent(self._next_seq, at, key, credit, reason)
            self._append(event)
            return event

    # ---- readings

    def apply_reading(self, reading: RegisterReading) -> ReadingResult:
        """Charge the energy since the baseline (see the module docstring for every case)."""
        with self._lock:
            at, value = reading.at, reading.active_import_wh
            policy = self.policy
            if policy.rollover_wh is not None and value >= policy.rollover_wh:
                raise PrepaidError(
                    f"meter {self.meter_id}: register value {value} Wh is beyond its modulus "
                    f"{policy.rollover_wh} Wh"
                )
            if self._last_seen is not None:
                seen_at, seen_value = self._last_seen
                if at < seen_at:
                    return ReadingResult(ReadingStatus.STALE, (), self.balance)
                if at == seen_at:
                    if value == seen_value:
                        return ReadingResult(ReadingStatus.DUPLICATE, (), self.balance)
                    raise PrepaidError(
                        f"meter {self.meter_id}: two readings captured at {at.isoformat()} differ "
                        f"({seen_value} Wh recorded, {value} Wh now); check the meter clock"
                    )
            if self._baseline is None:
                return self._record(at, value, 0, Decimal(0), ReadingStatus.BASELINE)
            base_at, base_value = self._baseline
            delta = value - base_value
            status = ReadingStatus.COUNTED
            if delta < 0 and policy.rollover_wh is not None:
                wrapped = value + policy.rollover_wh - base_value
                if wrapped <= self._rollover_limit(base_at, at):
                    delta, status = wrapped, ReadingStatus.ROLLOVER
            if delta < 0:
                return self._decrease(at, value)
            if policy.max_power_w is not None and delta * 3600 > policy.max_power_w * _seconds(base_at, at):
                return self._record(at, value, 0, Decimal(0), ReadingStatus.JUMP)
            charge = self.tariff.charge(delta, base_at, at)
            return self._record(at, value, delta, charge, status)

    def _rollover_limit(self, since: datetime, until: datetime) -> int:
        policy = self.policy
        if policy.max_power_w is not None:
            return policy.max_power_w * _seconds(since, until) // 3600
        # Without a power limit a wrap is believed only when it moved less than a tenth of the range.
        return (policy.rollover_wh or 0) // 10

    def _record(
        self, at: datetime, value: int, energy_wh: int, charge: Decimal, status: ReadingStatus
    ) -> ReadingResult:
        event = ReadingEvent(self._next_seq, at, value, energy_wh, charge, status)
        self._append(event)
        return ReadingResult(status, (event,), self.balance)

    def _decrease(self, at: datetime, value: int) -> ReadingResult:
        anomaly = ReadingEvent(self._next_seq, at, value, 0, Decimal(0), ReadingStatus.DECREASE)
        self._append(anomaly)
        needed = self.policy.confirm_reset_after
        if needed is None or len(self._pending_decrease) < needed:
            return ReadingResult(ReadingStatus.DECREASE, (anomaly,), self.balance)
        first_at, first_value = self._pending_decrease[0]
        rebase = RebaseEvent(
            self._next_seq,
            first_at,
            first_value,
            0,
            Decimal(0),
            RebaseCause.RESET_DETECTED,
            f"{needed} consecutive readings below the baseline; energy before {first_at.isoformat()} "
            "since the last good reading is not charged",
        )
        self._append(rebase)
        energy = value - first_value
        counted = ReadingEvent(
            self._next_seq, at, value, energy, self.tariff.charge(energy, first_at, at), ReadingStatus.COUNTED
        )
        self._append(counted)
        return ReadingResult(ReadingStatus.COUNTED, (anomaly, rebase, counted), self.balance)

    def rebase(
        self,
        at: datetime,
        register_wh: int,
        cause: RebaseCause,
        *,
        final_register_wh: int | None = None,
        reason: str = "",
    ) -> RebaseEvent:
        """Continue from ``register_wh`` at ``at`` (a reset register or a new meter).

        ``final_register_wh`` is the old register's last value when known (read at removal);
        the energy from the baseline up to it is charged.
        """
        at = _utc(at)
        if register_wh < 0 or (final_register_wh is not None and final_register_wh < 0):
            raise PrepaidError("register values cannot be negative")
        with self._lock:
            energy, charge = 0, Decimal(0)
            if self._baseline is not None:
                base_at, base_value = self._baseline
                if at < base_at:
                    raise PrepaidError(
                        f"meter {self.meter_id}: a rebase at {at.isoformat()} is before the last counted "
                        f"reading ({base_at.isoformat()})"
                    )
                if final_register_wh is not None:
                    if final_register_wh < base_value:
                        raise PrepaidError(
                            f"meter {self.meter_id}: final register {final_register_wh} Wh is below the "
                            f"last counted reading {base_value} Wh"
                        )
                    energy = final_register_wh - base_value
                    charge = self.tariff.charge(energy, base_at, at)
            event = RebaseEvent(self._next_seq, at, register_wh, energy, charge, cause, reason)
            self._append(event)
            return event

    def register_reset(
        self, at: datetime, register_wh: int = 0, *, final_register_wh: int | None = None, reason: str = ""
    ) -> RebaseEvent:
        """The meter's register was reset (to ``register_wh``, usually 0) at ``at``."""
        return self.rebase(
            at, register_wh, RebaseCause.RESET, final_register_wh=final_register_wh, reason=reason
        )

    def replace_meter(
        self, at: datetime, register_wh: int, *, final_register_wh: int | None = None, reason: str = ""
    ) -> RebaseEvent:
        """A new meter reading ``register_wh`` replaced the old one at ``at``."""
        return self.rebase(
            at, register_wh, RebaseCause.REPLACEMENT, final_register_wh=final_register_wh, reason=reason
        )

    # ---- what the head-end did

    def record_reminder(self, level: Decimal, at: datetime, *, sent: bool = True) -> ReminderEvent:
        """Record that the reminder for ``level`` went out (or was passed over: ``sent=False``)."""
        at = _utc(at)
        with self._lock:
            event = ReminderEvent(self._next_seq, at, Decimal(level), self.balance, sent)
            self._append(event)
            return event

    def record_disconnect(self, at: datetime, reason: str) -> RelayEvent:
        """Record that prepaid disconnected the supply (after the meter confirmed)."""
        return self._record_relay(RelayAction.DISCONNECT, at, reason)

    def record_reconnect(self, at: datetime, reason: str) -> RelayEvent:
        """Record that prepaid reconnected the supply."""
        return self._record_relay(RelayAction.RECONNECT, at, reason)

    def _record_relay(self, action: RelayAction, at: datetime, reason: str) -> RelayEvent:
        at = _utc(at)
        with self._lock:
            event = RelayEvent(self._next_seq, at, action, reason)
            self._append(event)
            return event

    # ---- persistence

    def to_records(self, *, since_seq: int = 0) -> list[dict[str, RecordValue]]:
        """The events after ``since_seq`` as flat rows (columns :data:`RECORD_FIELDS`).

        Decimals are written as strings and times as ISO 8601 UTC, so any store keeps them exactly.
        """
        with self._lock:
            return [self._record_of(e) for e in self._events[since_seq:]]

    def _record_of(self, event: LedgerEvent) -> dict[str, RecordValue]:
        row: dict[str, RecordValue] = dict.fromkeys(RECORD_FIELDS)
        row.update(
            account_id=self.account_id,
            meter_id=self.meter_id,
            seq=event.seq,
            kind=_KINDS[type(event)],
            at=event.at.isoformat(),
        )
        if isinstance(event, TopUpEvent):
            row.update(
                key=event.key,
                amount_minor=event.amount_minor,
                credit=str(event.credit),
                reason=event.reference,
            )
        elif isinstance(event, AdjustmentEvent):
            row.update(key=event.key, credit=str(event.credit), reason=event.reason)
        elif isinstance(event, ReadingEvent):
            row.update(
                register_wh=event.register_wh,
                energy_wh=event.energy_wh,
                charge=str(event.charge),
                status=event.status.value,
            )
        elif isinstance(event, RebaseEvent):
            row.update(
                register_wh=event.register_wh,
                energy_wh=event.energy_wh,
                charge=str(event.charge),
                status=event.cause.value,
                reason=event.reason,
            )
        elif isinstance(event, ReminderEvent):
            row.update(level=str(event.level), balance=str(event.balance), sent=event.sent)
        else:
            row.update(status=event.action.value, reason=event.reason)
        return row

    @classmethod
    def from_records(
        cls,
        records: Sequence[Mapping[str, RecordValue]],
        tariff: PrepaidTariff,
        *,
        policy: ReadingPolicy | None = None,
        account_id: str | None = None,
        meter_id: str | None = None,
    ) -> PrepaidAccount:
        """Rebuild an account from :meth:`to_records` rows (any order; sequence must be complete).

        ``account_id``/``meter_id`` are required when there are no rows yet.
        """
        rows = sorted(records, key=lambda r: _int(r, "seq"))
        ids = {str(r["account_id"]) for r in rows}
        meters = {str(r["meter_id"]) for r in rows}
        if len(ids) > 1 or len(meters) > 1:
            raise PrepaidError(f"records of several accounts mixed: {sorted(ids)}")
        acc = account_id or (ids.pop() if ids else None)
        meter = meter_id or (meters.pop() if meters else None)
        if acc is None or meter is None:
            raise PrepaidError("no records: give account_id and meter_id")
        if rows and (str(rows[0]["account_id"]) != acc or str(rows[0]["meter_id"]) != meter):
            raise PrepaidError(f"records belong to account {rows[0]['account_id']}, not {acc}")
        return cls(acc, meter, tariff, policy=policy, events=[_event_of(r) for r in rows])


def _seconds(since: datetime, until: datetime) -> int:
    return max(0, int((until - since).total_seconds()))


def _str(row: Mapping[str, RecordValue], name: str) -> str:
    value = row.get(name)
    if not isinstance(value, str):
        raise PrepaidError(f"ledger record seq={row.get('seq')}: {name} must be text, got {value!r}")
    return value


def _int(row: Mapping[str, RecordValue], name: str) -> int:
    value = row.get(name)
    if isinstance(value, bool) or not isinstance(value, int):
        raise PrepaidError(f"ledger record seq={row.get('seq')}: {name} must be an integer, got {value!r}")
    return value


def _dec(row: Mapping[str, RecordValue], name: str) -> Decimal:
    text = _str(row, name)
    try:
        value = Decimal(text)
    except ArithmeticError:
        raise PrepaidError(f"ledger record seq={row.get('seq')}: {name} is not a decimal: {text!r}") from None
    if not value.is_finite():
        raise PrepaidError(f"ledger record seq={row.get('seq')}: {name} is not finite")
    return value


def _opt_str(row: Mapping[str, RecordValue], name: str) -> str | None:
    value = row.get(name)
    return None if value is None else _str(row, name)


def _event_of(row: Mapping[str, RecordValue]) -> LedgerEvent:
    seq = _int(row, "seq")
    try:
        at = _utc(datetime.fromisoformat(_str(row, "at")), "record time")
    except ValueError:
        raise PrepaidError(f"ledger record seq={seq}: bad time {row.get('at')!r}") from None
    kind = row.get("kind")
    try:
        if kind == "top_up":
            return TopUpEvent(
                seq,
                at,
                _str(row, "key"),
                _int(row, "amount_minor"),
                _dec(row, "credit"),
                _opt_str(row, "reason"),
            )
        if kind == "adjustment":
            return AdjustmentEvent(seq, at, _str(row, "key"), _dec(row, "credit"), _str(row, "reason"))
        if kind == "reading":
            return ReadingEvent(
                seq,
                at,
                _int(row, "register_wh"),
                _int(row, "energy_wh"),
                _dec(row, "charge"),
                ReadingStatus(_str(row, "status")),
            )
        if kind == "rebase":
            return RebaseEvent(
                seq,
                at,
                _int(row, "register_wh"),
                _int(row, "energy_wh"),
                _dec(row, "charge"),
                RebaseCause(_str(row, "status")),
                _opt_str(row, "reason") or "",
            )
        if kind == "reminder":
            sent = row.get("sent")
            if not isinstance(sent, bool):
                raise PrepaidError(f"ledger record seq={seq}: sent must be a boolean, got {sent!r}")
            return ReminderEvent(seq, at, _dec(row, "level"), _dec(row, "balance"), sent)
        if kind == "relay":
            return RelayEvent(seq, at, RelayAction(_str(row, "status")), _str(row, "reason"))
    except ValueError as exc:
        raise PrepaidError(f"ledger record seq={seq}: {exc}") from None
    raise PrepaidError(f"ledger record seq={seq}: unknown kind {kind!r}")
