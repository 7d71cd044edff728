"""The head-end's side of rules: acting on them, and broken-neutral detection.

* :mod:`.engine` - the :class:`~metercom.service.rules.engine.Actuator` protocol the head-end
  implements with its commands, and the :class:`~metercom.service.rules.engine.RuleRunner`;
* :mod:`.neutral` - the broken-neutral detector on three phase voltages.

The expression language, the rule engine (slots, time-weighted averages, hysteresis, dry run)
and the slot images pushed to meters are shared with relay meters and live in
:mod:`metercom.model.rules`. See ``docs/rules.md``.
"""

from __future__ import annotations

from metercom.service.rules.engine import Actuator, RuleAction, RuleRunner
from metercom.service.rules.neutral import (
    BrokenNeutralDetector,
    NeutralAssessment,
    NeutralConfig,
    NeutralEvent,
    NeutralEventKind,
)

__all__ = [
    "Actuator",
    "BrokenNeutralDetector",
    "NeutralAssessment",
    "NeutralConfig",
    "NeutralEvent",
    "NeutralEventKind",
    "RuleAction",
    "RuleRunner",
]
