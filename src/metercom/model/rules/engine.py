"""The rule engine: relay actions driven by expressions over averaged measurements.

Rule: the engine is a pure state machine over *sample timestamps*. It reads no clock and does
no I/O; :meth:`RuleEngine.observe` takes a meter's timestamped values and returns the
transitions they cause, so the same samples always give the same transitions at the same
instants. It lives in ``model`` (pure, importable by ``service`` and ``sim`` alike) because
both sides run it: the head-end (:mod:`metercom.service.rules`, which adds acting through
commands) and a relay meter that evaluates pushed rules itself (the pmtr3 simulator,
:mod:`metercom.sim.modbus`), so both decide at exactly the same samples.

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

``evaluate`` (optional) replaces how an expression is decided: a relay meter runs the rule's
byte program (:func:`~metercom.model.rules.expr.run_program`) instead of walking the tree; both
mean the same (the tests check it). Pushing to a relay meter: :mod:`.slots`.
"""

from __future__ import annotations

import enum
import logging
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Context, Decimal
from typing import Final

from metercom.errors import RuleError
from metercom.model.rules.expr import (
    STANDARD_VOCABULARY,
    Expression,
    RuleEvaluationError,
    Vocabulary,
    parse,
    to_decimal,
)

__all__ = [
    "DEFAULT_MAX_SLOTS",
    "MAX_NAME_BYTES",
    "MAX_RECOVERY",
    "MAX_WINDOW",
    "Command",
    "Evaluator",
    "Rule",
    "RuleEngine",
    "RuleState",
    "RuleStatus",
    "RuleTransition",
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


#: Decides a rule on its (averaged) values; raises RuleEvaluationError when it cannot.
Evaluator = Callable[["Rule", Mapping[str, Decimal]], bool]


def _tree(rule: Rule, values: Mapping[str, Decimal]) -> bool:
    return rule.expression.evaluate(values)


class RuleEngine:
    """Evaluates each meter's rules on its samples; see the module docstring for the semantics."""

    def __init__(
        self,
        *,
        max_slots: int = DEFAULT_MAX_SLOTS,
        vocabulary: Vocabulary = STANDARD_VOCABULARY,
        evaluate: Evaluator | None = None,
    ) -> None:
        if not 1 <= max_slots <= 255:
            raise RuleError(f"max_slots must be 1..255, got {max_slots}")
        self.max_slots = max_slots
        self.vocabulary = vocabulary
        self._evaluate: Evaluator = evaluate or _tree
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
            result: bool | None = self._evaluate(rule, seen)
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
