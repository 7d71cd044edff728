"""Rules shared by the head-end and relay meters that evaluate them themselves.

* :mod:`.expr` - the expression language (safe parser, typed evaluation) and its byte program
  with the reference interpreter :func:`~metercom.model.rules.expr.run_program`;
* :mod:`.engine` - rules, time-weighted moving averages, hysteresis: the state machine both the
  head-end and a meter run on their samples;
* :mod:`.slots` - a rule as a slot image for a meter, and its Modbus register form.

The head-end's acting side (actuators, the runner, broken-neutral detection) is
:mod:`metercom.service.rules`. See ``docs/rules.md``.
"""

from __future__ import annotations

from metercom.model.rules.engine import (
    DEFAULT_MAX_SLOTS,
    Command,
    Rule,
    RuleEngine,
    RuleState,
    RuleStatus,
    RuleTransition,
)
from metercom.model.rules.expr import (
    STANDARD_VOCABULARY,
    Expression,
    QuantitySpec,
    RuleEvaluationError,
    RuleSyntaxError,
    Vocabulary,
    parse,
    run_program,
)
from metercom.model.rules.slots import RuleSlotError, decode_slot, encode_slot, parse_image, slot_crc

__all__ = [
    "DEFAULT_MAX_SLOTS",
    "STANDARD_VOCABULARY",
    "Command",
    "Expression",
    "QuantitySpec",
    "Rule",
    "RuleEngine",
    "RuleEvaluationError",
    "RuleSlotError",
    "RuleState",
    "RuleStatus",
    "RuleSyntaxError",
    "RuleTransition",
    "Vocabulary",
    "decode_slot",
    "encode_slot",
    "parse",
    "parse_image",
    "run_program",
    "slot_crc",
]
