"""Rules and relay actions of the head-end, and broken-neutral detection.

* :mod:`.expr` - the expression language (safe parser, typed evaluation, relay-meter programs);
* :mod:`.engine` - rules in action slots, time-weighted averages, hysteresis, dry run, the
  :class:`~metercom.service.rules.engine.Actuator` protocol and the runner;
* :mod:`.neutral` - the broken-neutral detector on three phase voltages.

See ``docs/rules.md``.
"""

from __future__ import annotations

from metercom.service.rules.engine import (
    DEFAULT_MAX_SLOTS,
    Actuator,
    Command,
    Rule,
    RuleAction,
    RuleEngine,
    RuleRunner,
    RuleState,
    RuleStatus,
    RuleTransition,
    decode_slot,
    encode_slot,
)
from metercom.service.rules.expr import (
    STANDARD_VOCABULARY,
    Expression,
    QuantitySpec,
    RuleEvaluationError,
    RuleSyntaxError,
    Vocabulary,
    parse,
)
from metercom.service.rules.neutral import (
    BrokenNeutralDetector,
    NeutralAssessment,
    NeutralConfig,
    NeutralEvent,
    NeutralEventKind,
)

__all__ = [
    "DEFAULT_MAX_SLOTS",
    "STANDARD_VOCABULARY",
    "Actuator",
    "BrokenNeutralDetector",
    "Command",
    "Expression",
    "NeutralAssessment",
    "NeutralConfig",
    "NeutralEvent",
    "NeutralEventKind",
    "QuantitySpec",
    "Rule",
    "RuleAction",
    "RuleEngine",
    "RuleEvaluationError",
    "RuleRunner",
    "RuleState",
    "RuleStatus",
    "RuleSyntaxError",
    "RuleTransition",
    "Vocabulary",
    "decode_slot",
    "encode_slot",
    "parse",
]
