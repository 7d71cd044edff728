"""Acting on rules in the head-end: the :class:`Actuator` protocol and the :class:`RuleRunner`.

Rule: deciding is the shared, pure state machine of :mod:`metercom.model.rules` (so the head-end
and relay meters that evaluate pushed rules decide at the same samples); this module only
carries the decisions out. :class:`RuleRunner` feeds samples to a
:class:`~metercom.model.rules.engine.RuleEngine` and applies every transition to every target
through an :class:`Actuator` the head-end implements with its recorded, audited commands;
dry-run rules are logged and recorded, never acted on. The runner stamps its records with the
injected clock; it reads no other time.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Protocol

from metercom.clock import Clock, current_clock
from metercom.errors import MetercomError
from metercom.model.rules.engine import Command, RuleEngine, RuleTransition

__all__ = ["Actuator", "RuleAction", "RuleRunner"]

_log = logging.getLogger(__name__)

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
