"""The rule engine: relay actions driven by expressions over averaged measurements.

Rule: the engine is a pure state machine over *sample timestamps*. It reads no clock and does
no I/O; :meth:`RuleEngine.observe` takes a meter's timestamped values and returns the
transitions they cause, so the same samples always give the same transitions at the same
instants (tests feed it a virtual clock's times). Acting on transitions is the
:class:`RuleRunner`'s job, through an :class:`Actuator` the head-end implements with its
commands; dry-run rules are logged and recorded there, never acted on.

Theory of operation, per meter and per rule (one of at most ``max_slots`` action slots):

* **Averaging** is time-weighted. A sample ``(t_i, v_i)`` is taken to describe the interval
  since the previous sample of the same quantity, ``(t_{i-1}, t_i]`` (a meter's RMS value or
  demand is an average over the period that ends at its timestamp), so samples arriving at
  irregular intervals weigh by the time they cover, and a sample counts the moment it arrives.
  The rule's average at ``t`` is the integral of that step function over ``(t - window, t]``
  divided by the window. Until the samples cover a whole window the rule is not evaluated
  (warm-up; a relay must not trip on the first spike after start-up); when samples are further
  apart than the window, the average is simply the latest value. A window of zero means the
  latest value. Energy quantities (``averaged`` False in the vocabulary) are never averaged.
  Values are :class:`~decimal.Decimal` and times integer microseconds, and the running sums
  carry 60 significant digits, so averages of meter readings are exact up to the final
  division (also rounded to 60 digits).
* **Triggering**: when the expression over the averages becomes true the rule emits a
  TRIGGERED transition with the rule's command (CONNECT/DISCONNECT or HIGH/LOW) for its
  targets, at the timestamp of the sample that made it true.
* **Recovery (hysteresis)**: once triggered, the rule reverts (RECOVERED, the opposite command)
  only when the expression has been false at every evaluation for the whole recovery period:
  at the first sample whose timestamp is at least ``recovery`` after the first false one. A
  true evaluation restarts the wait. Nothing happens without samples, so the protective state
  holds while a meter is silent.
* **Unknown**: an evaluation that cannot be decided (warm-up, a quantity without a value,
  division by zero) changes nothing, and restarts a pending recovery (the expression was not
  shown to be false).

Reconfiguring a meter (:meth:`RuleEngine.configure`) keeps the state and averages of rules
whose definition is unchanged; a changed or removed rule starts afresh and issues no command
(whoever changes rules decides what the outputs should be).

Pushing to a relay meter: :func:`encode_slot` packs a rule (expression program, window,
recovery, command, outputs) into the bytes of one action slot; :func:`decode_slot` reads them
back. The meter then evaluates the rule itself with the same semantics.
"""

from __future__ import annotations

import enum
import logging
import struct
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Final, Protocol

from metercom.clock import Clock, current_clock
from metercom.errors import MetercomError, RuleError
from metercom.service.rules.expr import (
    STANDARD_VOCABULARY,
    Expression,
    RuleEvaluationError,
    Vocabulary,
    parse,
    to_decimal,
)

__all__ = [
    "DEFAULT_MAX_SLOTS",
    "MAX_RECOVERY",
    "MAX_WINDOW",
    "Actuator",
    "Command",
    "Rule",
    "RuleAction",
    "RuleEngine",
    "RuleRunner",
    "RuleState",
    "RuleStatus",
    "RuleTransition",
    "decode_slot",
    "encode_slot",
]

_log = logging.getLogger(__name__)

#: Action slots per meter unless the engine is told otherwise (as on a 3-phase relay meter).
DEFAULT_MAX_SLOTS: Final = 8
#: Longest averaging window a rule may have.
MAX_WINDOW: Final = timedelta(days=1)
#: Longest recovery period a rule may have.
MAX_RECOVERY: Final = timedelta(days=7)
#: Longest rule name (bytes of UTF-8 in a slot).
MAX_NAME_BYTES: Final = 32

_US: Final = timedelta(microseconds=1)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_CTX: Final = Context(prec=60)


class Command(enum.Enum):
    """What a rule commands on its targets: a breaker (connect/disconnect) or an output level."""

    CONNECT = "connect"
    DISCONNECT = "disconnect"
    HIGH = "high"
    LOW = "low"

    @property
    def inverse(self) -> Command:
        """The command that undoes this one (sent on recovery)."""
        return _INVERSE[self]


_INVERSE: Final = {
    Command.CONNECT: Command.DISCONNECT,
    Command.DISCONNECT: Command.CONNECT,
    Command.HIGH: Command.LOW,
    Command.LOW: Command.HIGH,
}


class RuleState(enum.Enum):
    """A rule's transition: its expression became true, or stayed false for the recovery period."""

    TRIGGERED = "triggered"
    RECOVERED = "recovered"


@dataclass(frozen=True, slots=True)
class Rule:
    """One action slot's rule.

    ``window`` is the moving-average window (zero: latest value), ``recovery`` how long the
    expression must stay false before the rule reverts, ``action`` the command sent to every
    target when it triggers (its :attr:`Command.inverse` is sent on recovery), ``targets`` the
    outputs (relay or output ids) the actuator understands, ``dry_run`` logs and records
    transitions without acting, ``enabled`` False keeps the slot but never evaluates it.
    """

    name: str
    expression: Expression
    window: timedelta = timedelta(0)
    recovery: timedelta = timedelta(0)
    action: Command = Command.DISCONNECT
    targets: tuple[str, ...] = ("relay1",)
    dry_run: bool = False
    enabled: bool = True

    def __post_init__(self) -> None:
        where = f"rule {self.name!r}"
        if not self.name or len(self.name.encode()) > MAX_NAME_BYTES or not self.name.isprintable():
            raise RuleError(f"{where}: a name is 1..{MAX_NAME_BYTES} bytes of printable text")
        if not isinstance(self.expression, Expression):
            raise RuleError(f"{where}: expression must be parsed (use Rule.from_text or parse())")
        if not timedelta(0) <= self.window <= MAX_WINDOW:
            raise RuleError(f"{where}: window must be 0..{MAX_WINDOW}, got {self.window}")
        if not timedelta(0) <= self.recovery <= MAX_RECOVERY:
            raise RuleError(f"{where}: recovery must be 0..{MAX_RECOVERY}, got {self.recovery}")
        if not isinstance(self.action, Command):
            raise RuleError(f"{where}: action must be a Command, got {self.action!r}")
        if not self.targets or any(not t or not isinstance(t, str) for t in self.targets):
            raise RuleError(f"{where}: needs at least one target (an output id)")
        if len(set(self.targets)) != len(self.targets):
            raise RuleError(f"{where}: a target is listed twice")

    @classmethod
    def from_text(
        cls,
        name: str,
        expression: str,
        *,
        window: timedelta = timedelta(0),
        recovery: timedelta = timedelta(0),
        action: Command = Command.DISCONNECT,
        targets: Iterable[str] = ("relay1",),
        dry_run: bool = False,
        enabled: bool = True,
        vocabulary: Vocabulary = STANDARD_VOCABULARY,
    ) -> Rule:
        """Parse ``expression`` and build the rule (raises RuleSyntaxError with the column)."""
        return cls(
            name,
            parse(expression, vocabulary),
            window=window,
            recovery=recovery,
            action=action,
            targets=tuple(targets),
            dry_run=dry_run,
            enabled=enabled,
        )


@dataclass(frozen=True, slots=True)
class RuleTransition:
    """A rule changed state on a meter at ``at`` (the timestamp of the deciding sample).

    ``command`` is what the targets should be set to; ``values_seen`` the (averaged) values the
    deciding evaluation used, by canonical name.
    """

    rule: Rule
    slot: int
    meter_id: str
    at: datetime
    state: RuleState
    command: Command
    dry_run: bool
    values_seen: Mapping[str, Decimal] = field(hash=False)

    @property
    def targets(self) -> tuple[str, ...]:
        return self.rule.targets


@dataclass(frozen=True, slots=True)
class RuleStatus:
    """Where a rule stands: ``triggered`` since ``since``; ``false_since`` while recovering."""

    slot: int
    rule: Rule
    triggered: bool
    since: datetime | None
    false_since: datetime | None
    last_result: bool | None


# --------------------------------------------------------------------------------------------
# Time-weighted moving average


class _Average:
    """Time-weighted average of one quantity over one window (see the module docstring)."""

    __slots__ = ("first_us", "integral", "last_us", "last_value", "segments", "window_us")

    def __init__(self, window_us: int) -> None:
        self.window_us = window_us
        self.segments: deque[tuple[int, int, Decimal]] = deque()
        self.integral = Decimal(0)
        self.first_us: int | None = None
        self.last_us: int | None = None
        self.last_value: Decimal | None = None

    def add(self, t_us: int, value: Decimal) -> None:
        if self.last_us is None:
            self.first_us = self.last_us = t_us
            self.last_value = value
            return
        if t_us == self.last_us:
            # A second value for the same instant replaces the first.
            if self.segments:
                start, end, old = self.segments[-1]
                self.integral = _CTX.add(self.integral, _CTX.multiply(value - old, Decimal(end - start)))
                self.segments[-1] = (start, end, value)
            self.last_value = value
            return
        self.integral = _CTX.add(self.integral, _CTX.multiply(value, Decimal(t_us - self.last_us)))
        self.segments.append((self.last_us, t_us, value))
        self.last_us = t_us
        self.last_value = value
        horizon = t_us - self.window_us
        while self.segments and self.segments[0][1] <= horizon:
            start, end, old = self.segments.popleft()
            self.integral = _CTX.subtract(self.integral, _CTX.multiply(old, Decimal(end - start)))

    def value(self) -> Decimal | None:
        """The average over the window ending at the latest sample; None during warm-up."""
        if self.last_value is None or self.last_us is None or self.first_us is None:
            return None
        if self.window_us == 0:
            return self.last_value
        if self.last_us - self.first_us < self.window_us:
            return None
        horizon = self.last_us - self.window_us
        start, _, first_value = self.segments[0]
        total = self.integral
        if start < horizon:
            total = _CTX.subtract(total, _CTX.multiply(first_value, Decimal(horizon - start)))
        return _CTX.divide(total, Decimal(self.window_us))


# --------------------------------------------------------------------------------------------
# The engine


class _Slot:
    __slots__ = ("false_since", "last_result", "rule", "since", "triggered")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.triggered = False
        self.since: datetime | None = None
        self.false_since: datetime | None = None
        self.last_result: bool | None = None


class _Meter:
    __slots__ = ("averages", "last_at", "slots")

    def __init__(self) -> None:
        self.slots: list[_Slot] = []
        self.averages: dict[tuple[int, str], _Average] = {}
        self.last_at: datetime | None = None


class RuleEngine:
    """Evaluates each meter's rules on its samples; see the module docstring for the semantics."""

    def __init__(
        self, *, max_slots: int = DEFAULT_MAX_SLOTS, vocabulary: Vocabulary = STANDARD_VOCABULARY
    ) -> None:
        if not 1 <= max_slots <= 255:
            raise RuleError(f"max_slots must be 1..255, got {max_slots}")
        self.max_slots = max_slots
        self.vocabulary = vocabulary
        self._meters: dict[str, _Meter] = {}

    # -- configuration

    def configure(self, meter_id: str, rules: Sequence[Rule]) -> None:
        """Set a meter's rules, slot 1 first; all or nothing (an invalid list changes nothing)."""
        if len(rules) > self.max_slots:
            raise RuleError(f"meter {meter_id}: {len(rules)} rules, but only {self.max_slots} slots")
        names = [r.name for r in rules]
        if len(set(names)) != len(names):
            raise RuleError(f"meter {meter_id}: rule names must be unique")
        for rule in rules:
            for name in rule.expression.quantities:
                if name not in self.vocabulary:
                    raise RuleError(f"rule {rule.name!r}: quantity {name} is not in the engine's vocabulary")
        old = self._meters.get(meter_id)
        meter = _Meter()
        kept = {s.rule.name: s for s in old.slots} if old is not None else {}
        for rule in rules:
            previous = kept.get(rule.name)
            meter.slots.append(previous if previous is not None and previous.rule == rule else _Slot(rule))
        for key in self._average_keys(rules):
            if old is not None and key in old.averages:
                meter.averages[key] = old.averages[key]
            else:
                meter.averages[key] = _Average(key[0])
        if old is not None:
            meter.last_at = old.last_at
        self._meters[meter_id] = meter

    def _average_keys(self, rules: Sequence[Rule]) -> set[tuple[int, str]]:
        keys: set[tuple[int, str]] = set()
        for rule in rules:
            for name in rule.expression.quantities:
                spec = self.vocabulary[name]
                window_us = rule.window // _US if spec.averaged else 0
                keys.add((window_us, spec.name))
        return keys

    def remove(self, meter_id: str) -> None:
        """Forget a meter (its rules, state and averages)."""
        self._meters.pop(meter_id, None)

    def rules(self, meter_id: str) -> tuple[Rule, ...]:
        meter = self._meters.get(meter_id)
        return () if meter is None else tuple(s.rule for s in meter.slots)

    def status(self, meter_id: str) -> tuple[RuleStatus, ...]:
        """Each slot's state, slot 1 first."""
        meter = self._meters.get(meter_id)
        if meter is None:
            return ()
        return tuple(
            RuleStatus(i, s.rule, s.triggered, s.since, s.false_since, s.last_result)
            for i, s in enumerate(meter.slots, start=1)
        )

    # -- samples

    def observe(
        self, meter_id: str, at: datetime, values: Mapping[str, Decimal | float | int]
    ) -> list[RuleTransition]:
        """Feed one timestamped sample of a meter; returns the transitions it causes, slot order.

        ``values`` maps quantity names (any case) to values; names the vocabulary does not know
        and quantities no rule uses are ignored, as are non-finite values (a meter reporting
        NaN has not reported). Timestamps must be timezone-aware and must not go backwards.
        """
        if at.tzinfo is None or at.utcoffset() is None:
            raise RuleError(f"sample times must be timezone-aware, got {at!r}")
        meter = self._meters.get(meter_id)
        if meter is None:
            return []
        if meter.last_at is not None and at < meter.last_at:
            raise RuleError(
                f"meter {meter_id}: sample at {at.isoformat()} is older than the last one "
                f"({meter.last_at.isoformat()}); samples must arrive in time order"
            )
        meter.last_at = at
        t_us = (at - _EPOCH) // _US
        clean: dict[str, Decimal] = {}
        for raw_name, raw_value in values.items():
            spec = self.vocabulary.get(raw_name)
            if spec is None:
                continue
            try:
                clean[spec.name] = to_decimal(raw_value, spec.name)
            except RuleEvaluationError:
                _log.debug("meter %s: ignoring non-finite %s=%r", meter_id, spec.name, raw_value)
        for (_, name), average in meter.averages.items():
            if name in clean:
                average.add(t_us, clean[name])
        transitions: list[RuleTransition] = []
        for index, slot in enumerate(meter.slots, start=1):
            if slot.rule.enabled:
                transition = self._step(meter, meter_id, index, slot, at)
                if transition is not None:
                    transitions.append(transition)
        return transitions

    def _values(self, meter: _Meter, rule: Rule) -> dict[str, Decimal]:
        window_us = rule.window // _US
        seen: dict[str, Decimal] = {}
        for name in rule.expression.quantities:
            spec = self.vocabulary[name]
            average = meter.averages[(window_us if spec.averaged else 0, name)]
            value = average.value()
            if value is not None:
                seen[name] = value
        return seen

    def _step(
        self, meter: _Meter, meter_id: str, index: int, slot: _Slot, at: datetime
    ) -> RuleTransition | None:
        rule = slot.rule
        seen = self._values(meter, rule)
        try:
            result: bool | None = rule.expression.evaluate(seen)
        except RuleEvaluationError as exc:
            result = None
            _log.debug("meter %s rule %s undecided at %s: %s", meter_id, rule.name, at.isoformat(), exc)
        slot.last_result = result
        if result is None:
            slot.false_since = None
            return None
        if not slot.triggered:
            if not result:
                return None
            slot.triggered = True
            slot.since = at
            slot.false_since = None
            return RuleTransition(
                rule, index, meter_id, at, RuleState.TRIGGERED, rule.action, rule.dry_run, seen
            )
        if result:
            slot.false_since = None
            return None
        if slot.false_since is None:
            slot.false_since = at
        if at - slot.false_since < rule.recovery:
            return None
        slot.triggered = False
        slot.since = at
        slot.false_since = None
        return RuleTransition(
            rule, index, meter_id, at, RuleState.RECOVERED, rule.action.inverse, rule.dry_run, seen
        )


# --------------------------------------------------------------------------------------------
# Acting on transitions


class Actuator(Protocol):
    """What the head-end implements (through its recorded, audited commands) to set an output."""

    async def apply(self, meter_id: str, target: str, command: Command) -> None:
        """Set ``target`` on ``meter_id`` to ``command``; raise a MetercomError on failure."""


@dataclass(frozen=True, slots=True)
class RuleAction:
    """What the runner did with a transition, at clock time ``at``.

    ``acted`` is True when every target was commanded successfully; a dry run is never acted
    on; ``failures`` lists ``(target, message)`` for targets whose command failed.
    """

    transition: RuleTransition
    at: datetime
    acted: bool
    applied: tuple[str, ...] = ()
    failures: tuple[tuple[str, str], ...] = ()

    @property
    def dry_run(self) -> bool:
        return self.transition.dry_run


class RuleRunner:
    """Feeds samples to a :class:`RuleEngine` and applies its transitions through an :class:`Actuator`.

    Dry-run transitions are logged and recorded with ``acted`` False, and the actuator is not
    called. A failing target is logged and recorded; the engine's state still follows the
    expression (the head-end's command layer retries and confirms). ``clock`` (default: the
    running loop's clock) only stamps the records.
    """

    def __init__(
        self, engine: RuleEngine, actuator: Actuator, *, clock: Clock | None = None, history: int = 1000
    ) -> None:
        self.engine = engine
        self.actuator = actuator
        self._clock = clock
        self._history: deque[RuleAction] = deque(maxlen=history)

    @property
    def history(self) -> tuple[RuleAction, ...]:
        """The latest actions (at most ``history``), oldest first."""
        return tuple(self._history)

    async def observe(
        self, meter_id: str, at: datetime, values: Mapping[str, Decimal | float | int]
    ) -> list[RuleAction]:
        """:meth:`RuleEngine.observe`, then carry out the transitions, in slot order."""
        return [await self.execute(t) for t in self.engine.observe(meter_id, at, values)]

    async def execute(self, transition: RuleTransition) -> RuleAction:
        """Carry out one transition (or, for a dry run, only log and record it)."""
        clock = self._clock if self._clock is not None else current_clock()
        rule = transition.rule
        if transition.dry_run:
            _log.info(
                "dry run: rule %s (slot %d) on meter %s %s at %s: would %s %s",
                rule.name,
                transition.slot,
                transition.meter_id,
                transition.state.value,
                transition.at.isoformat(),
                transition.command.value,
                ", ".join(rule.targets),
            )
            action = RuleAction(transition, clock.now(), acted=False)
            self._history.append(action)
            return action
        applied: list[str] = []
        failures: list[tuple[str, str]] = []
        for target in rule.targets:
            try:
                await self.actuator.apply(transition.meter_id, target, transition.command)
            except MetercomError as exc:
                _log.warning(
                    "rule %s on meter %s: %s %s failed: %s",
                    rule.name,
                    transition.meter_id,
                    transition.command.value,
                    target,
                    exc,
                )
                failures.append((target, str(exc)))
            else:
                applied.append(target)
        _log.info(
            "rule %s (slot %d) on meter %s %s at %s: %s %s",
            rule.name,
            transition.slot,
            transition.meter_id,
            transition.state.value,
            transition.at.isoformat(),
            transition.command.value,
            ", ".join(applied) or "nothing",
        )
        action = RuleAction(
            transition, clock.now(), acted=not failures, applied=tuple(applied), failures=tuple(failures)
        )
        self._history.append(action)
        return action


# --------------------------------------------------------------------------------------------
# Relay-meter action slots

_SLOT_MAGIC: Final = b"MS"
_SLOT_VERSION: Final = 1
_SLOT_HEAD: Final = struct.Struct(
    ">2sBBBBIIB"
)  # magic, version, flags, command, outputs, window, recovery, name length
_COMMAND_CODE: Final = {Command.CONNECT: 1, Command.DISCONNECT: 2, Command.HIGH: 3, Command.LOW: 4}
_CODE_COMMAND: Final = {v: k for k, v in _COMMAND_CODE.items()}
_MS: Final = timedelta(milliseconds=1)


def encode_slot(
    rule: Rule, outputs: Mapping[str, int], vocabulary: Vocabulary = STANDARD_VOCABULARY
) -> bytes:
    """One action slot for a relay meter that evaluates rules itself.

    ``outputs`` maps the rule's target ids to the meter's output numbers 1..8. Layout
    (big-endian): ``"MS"``, version 1, flags (bit 0 enabled, bit 1 dry run), command (1
    connect, 2 disconnect, 3 high, 4 low), output bit mask (bit n-1 = output n), window in ms
    (uint32), recovery in ms (uint32), name length and UTF-8 name, then the expression program
    (:meth:`Expression.to_bytes`, self-delimiting). Window and recovery must be whole ms.
    """
    mask = 0
    for target in rule.targets:
        number = outputs.get(target)
        if number is None or not 1 <= number <= 8:
            raise RuleError(f"rule {rule.name!r}: target {target!r} has no output number 1..8")
        mask |= 1 << (number - 1)
    if rule.window % _MS or rule.recovery % _MS:
        raise RuleError(f"rule {rule.name!r}: window and recovery must be whole milliseconds for a meter")
    name = rule.name.encode()
    flags = (1 if rule.enabled else 0) | (2 if rule.dry_run else 0)
    head = _SLOT_HEAD.pack(
        _SLOT_MAGIC,
        _SLOT_VERSION,
        flags,
        _COMMAND_CODE[rule.action],
        mask,
        rule.window // _MS,
        rule.recovery // _MS,
        len(name),
    )
    return head + name + rule.expression.to_bytes(vocabulary)


def decode_slot(
    data: bytes, outputs: Mapping[str, int], vocabulary: Vocabulary = STANDARD_VOCABULARY
) -> Rule:
    """Read back an action slot written by :func:`encode_slot`; raises RuleError when invalid."""
    data = bytes(data)
    if len(data) < _SLOT_HEAD.size:
        raise RuleError(f"slot: {len(data)} bytes, shorter than its {_SLOT_HEAD.size}-byte header")
    magic, version, flags, command, mask, window_ms, recovery_ms, name_len = _SLOT_HEAD.unpack_from(data)
    if magic != _SLOT_MAGIC or version != _SLOT_VERSION:
        raise RuleError(f"slot: bad magic/version {magic!r}/{version}")
    if flags & ~3 or command not in _CODE_COMMAND:
        raise RuleError(f"slot: bad flags 0x{flags:02x} or command {command}")
    end = _SLOT_HEAD.size + name_len
    if len(data) < end:
        raise RuleError("slot: truncated name")
    try:
        name = data[_SLOT_HEAD.size : end].decode()
    except UnicodeDecodeError as exc:
        raise RuleError("slot: the name is not UTF-8") from exc
    numbers = {number: target for target, number in outputs.items()}
    targets = []
    for bit in range(8):
        if mask >> bit & 1:
            if bit + 1 not in numbers:
                raise RuleError(f"slot: output {bit + 1} has no target id")
            targets.append(numbers[bit + 1])
    expression = Expression.from_bytes(data[end:], vocabulary)
    return Rule(
        name,
        expression,
        window=window_ms * _MS,
        recovery=recovery_ms * _MS,
        action=_CODE_COMMAND[command],
        targets=tuple(targets),
        dry_run=bool(flags & 2),
        enabled=bool(flags & 1),
    )
