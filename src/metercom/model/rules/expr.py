"""Rule expressions: a small, safe, typed language over a meter's named quantities.

Rule: pure code (``model``) shared by the head-end and the relay meters that evaluate pushed rules (the
pmtr3 simulator), so both read the same language and the same program bytes. An expression is
text a user typed, so it is parsed by a bounded recursive-descent parser
(never ``eval``), checked for types before it is accepted, and evaluated by walking its syntax
tree. Every mistake raises :class:`RuleSyntaxError` (a :class:`~metercom.errors.RuleError`)
that names the column and shows it with a caret::

    L1U > > 253
          ^ expected a number or quantity, found '>' at column 7

The language (see ``docs/rules.md`` for the full reference):

* **Quantities** come from a :class:`Vocabulary`; :data:`STANDARD_VOCABULARY` has the per-phase
  ``L1U L2U L3U`` (voltage, V), ``LnI`` (current, A), ``Lnp`` (active power, W), ``Lnq``
  (reactive power, var), ``Lns`` (apparent power, VA), ``Lne`` (active import energy, kWh),
  ``Lnf`` (frequency, Hz), ``Lnpf`` (power factor) for n = 1..3, and the totals with a ``T``
  prefix: ``TU`` (mean phase voltage), ``TI`` (sum of phase currents), ``Tp Tq Ts`` (sums),
  ``Te`` (total import energy), ``Tf`` (system frequency), ``Tpf`` (Tp / Ts). Names are
  case-insensitive (every suffix is a different letter, so nothing is ambiguous); the canonical
  spelling above is what :meth:`Expression.to_text` writes. An unknown name is an error at its
  column, with a "did you mean" suggestion.
* **Numbers** are decimal: ``253``, ``49.1``, ``.5``, with an optional sign (``-5``); no
  exponents; at most :data:`MAX_SIGNIFICANT_DIGITS` significant digits, so every literal fits
  the relay-meter program format exactly.
* **Operators**, loosest first: ``||``; ``&&``; ``!``; comparisons ``< <= > >= == !=``
  (non-associative: ``1 < L1U < 3`` is an error); ``+ -``; ``* /``; unary ``-`` and ``+``.
  Arithmetic is supported so that sums and differences can be compared
  (``(L1p + L2p + L3p) > 11000``, ``L1U - L2U > 20``). ``!`` binds looser than a comparison,
  so ``!L1U > 253`` means ``!(L1U > 253)`` (the only meaning that type-checks), and tighter
  than ``&&``: ``!a && b`` is ``(!a) && b``. Binary operators associate to the left.
* **Types**: an expression is a *condition* (true/false). ``&&``, ``||`` and ``!`` take
  conditions; comparisons and arithmetic take numbers. ``L1U && L2U`` or ``(L1U > 1) + 2`` are
  refused at parse time, pointing at the offending operand.
* **Bounds**: at most :data:`MAX_LENGTH` characters and :data:`MAX_DEPTH` levels of nesting
  (parentheses, ``!`` and unary signs), so parsing is linear and recursion is bounded.

Evaluation (:meth:`Expression.evaluate`) runs on :class:`~decimal.Decimal` (floats are taken at
their shortest ``repr``, so ``230.1`` is exactly 230.1), ``&&`` and ``||`` short-circuit, and
the two run-time failures - a quantity without a value, division by zero - raise
:class:`RuleEvaluationError` with the column of the quantity or the ``/``. Short-circuiting is
part of the semantics: ``(L1I > 0) && (L1p / L1I > 200)`` never divides by zero.

Relay meters that evaluate rules themselves receive :meth:`Expression.to_bytes`: a reverse
Polish program (header ``"MR"``, version, maximum stack depth, code length; opcodes listed at
:data:`OPCODES` and in ``docs/rules.md``) with forward jumps for ``&&``/``||`` so the firmware
short-circuits exactly as the head-end does. :meth:`Expression.from_bytes` validates such a
program (bounded, types, jump structure) and turns it back into the same syntax tree, and
:func:`run_program` is a reference interpreter of the byte form (the tests check it against the
tree evaluator).
"""

from __future__ import annotations

import difflib
import math
import struct
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from decimal import Context, Decimal, DecimalException, DivisionByZero, InvalidOperation, Overflow
from typing import Final, Literal, TypeAlias

from metercom.errors import RuleError

__all__ = [
    "MAX_DEPTH",
    "MAX_LENGTH",
    "MAX_PROGRAM_BYTES",
    "MAX_SIGNIFICANT_DIGITS",
    "OPCODES",
    "STANDARD_VOCABULARY",
    "And",
    "Arith",
    "Compare",
    "Expression",
    "Neg",
    "Node",
    "Not",
    "Number",
    "Or",
    "Quantity",
    "QuantitySpec",
    "RuleEvaluationError",
    "RuleSyntaxError",
    "Vocabulary",
    "parse",
    "run_program",
    "to_decimal",
]

#: Longest expression text accepted, in characters.
MAX_LENGTH: Final = 512
#: Deepest nesting of parentheses, ``!`` and unary signs.
MAX_DEPTH: Final = 32
#: Significant digits of a number literal (the program format stores a signed 32-bit mantissa).
MAX_SIGNIFICANT_DIGITS: Final = 9
#: Largest program :meth:`Expression.from_bytes` accepts (header included).
MAX_PROGRAM_BYTES: Final = 8192

# Arithmetic context: wide enough that sums of measured values stay exact; traps turn the two
# undefined operations into exceptions we translate.
_CTX: Final = Context(
    prec=50, Emax=999_999, Emin=-999_999, traps=[DivisionByZero, InvalidOperation, Overflow]
)


# --------------------------------------------------------------------------------------------
# Errors


class RuleSyntaxError(RuleError):
    """An expression could not be parsed (or a program decoded); ``column`` is 1-based.

    ``str()`` shows the expression, a caret under the column and the message, e.g.::

        L1U > > 253
              ^ expected a number or quantity, found '>' at column 7
    """

    def __init__(self, message: str, text: str, column: int) -> None:
        self.message = message
        self.text = text
        self.column = column
        super().__init__(_caret(message, text, column))


class RuleEvaluationError(RuleError):
    """An expression could not be evaluated: a quantity has no value, or a division by zero."""

    def __init__(self, message: str, column: int = 0) -> None:
        self.message = message
        self.column = column
        super().__init__(f"{message} (at column {column})" if column else message)


def _caret(message: str, text: str, column: int) -> str:
    # Tabs, newlines and other control characters are shown as spaces so the caret lines up.
    shown = "".join(c if c.isprintable() else " " for c in text[: MAX_LENGTH + 20])
    if len(text) > MAX_LENGTH + 20:
        shown += "..."
    return f"{shown}\n{' ' * (column - 1)}^ {message} at column {column}"


# --------------------------------------------------------------------------------------------
# Vocabulary


@dataclass(frozen=True, slots=True)
class QuantitySpec:
    """A quantity rules may name.

    ``phase`` is 1..3 for a per-phase quantity and 0 for a total; ``averaged`` False means the
    engine never averages it (cumulative energy registers); ``code`` is its byte in the relay
    meter program format (None: such rules cannot be pushed to a meter).
    """

    name: str
    description: str
    unit: str
    phase: int = 0
    averaged: bool = True
    code: int | None = None

    def __post_init__(self) -> None:
        if not self.name or not (self.name[0].isascii() and self.name[0].isalpha()):
            raise RuleError(f"quantity name {self.name!r} must start with a letter")
        if not all(c.isascii() and (c.isalnum() or c == "_") for c in self.name):
            raise RuleError(f"quantity name {self.name!r} may hold only letters, digits and '_'")
        if self.code is not None and not 0 <= self.code <= 255:
            raise RuleError(f"quantity code of {self.name} must be a byte, got {self.code}")


class Vocabulary:
    """The quantities rules may name; lookups are case-insensitive."""

    __slots__ = ("_by_code", "_by_lower", "_specs")

    def __init__(self, specs: Iterable[QuantitySpec]) -> None:
        self._specs = tuple(specs)
        self._by_lower: dict[str, QuantitySpec] = {}
        self._by_code: dict[int, QuantitySpec] = {}
        for spec in self._specs:
            key = spec.name.lower()
            if key in self._by_lower:
                raise RuleError(f"quantity {spec.name} is declared twice (names are case-insensitive)")
            self._by_lower[key] = spec
            if spec.code is not None:
                if spec.code in self._by_code:
                    raise RuleError(f"quantity code 0x{spec.code:02x} is used twice")
                self._by_code[spec.code] = spec

    def get(self, name: str) -> QuantitySpec | None:
        """The quantity called ``name`` (any case), or None."""
        return self._by_lower.get(name.lower())

    def __getitem__(self, name: str) -> QuantitySpec:
        spec = self.get(name)
        if spec is None:
            raise KeyError(name)
        return spec

    def by_code(self, code: int) -> QuantitySpec | None:
        return self._by_code.get(code)

    def canonical(self, name: str) -> str | None:
        """The canonical spelling of ``name``, or None when it is not a known quantity."""
        spec = self.get(name)
        return None if spec is None else spec.name

    def suggest(self, name: str) -> list[str]:
        """Known names that look like ``name``, best first (for "did you mean")."""
        close = difflib.get_close_matches(name.lower(), list(self._by_lower), n=3, cutoff=0.5)
        return [self._by_lower[c].name for c in close]

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._by_lower

    def __iter__(self) -> Iterator[QuantitySpec]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __repr__(self) -> str:
        return f"Vocabulary({len(self._specs)} quantities)"


# (suffix, description, unit, averaged, kind code)
_KINDS: Final = (
    ("U", "voltage", "V", True, 0),
    ("I", "current", "A", True, 1),
    ("p", "active power", "W", True, 2),
    ("q", "reactive power", "var", True, 3),
    ("s", "apparent power", "VA", True, 4),
    ("e", "active import energy", "kWh", False, 5),
    ("f", "frequency", "Hz", True, 6),
    ("pf", "power factor", "1", True, 7),
)
_TOTAL_MEANING: Final = {
    "U": "mean phase voltage",
    "I": "sum of phase currents",
    "p": "total active power",
    "q": "total reactive power",
    "s": "total apparent power",
    "e": "total active import energy",
    "f": "system frequency",
    "pf": "total power factor (Tp / Ts)",
}


def _standard() -> Vocabulary:
    specs = [
        QuantitySpec(f"L{n}{suffix}", f"L{n} {what}", unit, n, averaged, n << 4 | kind)
        for n in (1, 2, 3)
        for suffix, what, unit, averaged, kind in _KINDS
    ]
    specs += [
        QuantitySpec(f"T{suffix}", _TOTAL_MEANING[suffix], unit, 0, averaged, kind)
        for suffix, _, unit, averaged, kind in _KINDS
    ]
    return Vocabulary(specs)


#: The quantities of a three-phase relay meter (module docstring); program code = phase << 4 | kind.
STANDARD_VOCABULARY: Final = _standard()


# --------------------------------------------------------------------------------------------
# Syntax tree
#
# Nodes are frozen dataclasses; ``column`` (1-based, 0 when unknown) is excluded from equality
# so a tree printed and parsed again compares equal.

ArithOp: TypeAlias = Literal["+", "-", "*", "/"]
CompareOp: TypeAlias = Literal["<", "<=", ">", ">=", "==", "!="]


@dataclass(frozen=True, slots=True)
class Number:
    """A decimal constant."""

    value: Decimal
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A measured quantity, by canonical name."""

    name: str
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Neg:
    """Unary minus of a number-valued node (never of a :class:`Number`: the parser folds signs)."""

    operand: NumNode
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Arith:
    """``left op right`` with op in ``+ - * /``."""

    op: ArithOp
    left: NumNode
    right: NumNode
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Compare:
    """``left op right``: numbers in, a condition out."""

    op: CompareOp
    left: NumNode
    right: NumNode
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Not:
    """``!operand``."""

    operand: BoolNode
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    """``left && right`` (short-circuit)."""

    left: BoolNode
    right: BoolNode
    column: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class Or:
    """``left || right`` (short-circuit)."""

    left: BoolNode
    right: BoolNode
    column: int = field(default=0, compare=False)


NumNode: TypeAlias = Number | Quantity | Neg | Arith
BoolNode: TypeAlias = Compare | Not | And | Or
Node: TypeAlias = NumNode | BoolNode

_NUM_TYPES: Final = (Number, Quantity, Neg, Arith)
_BOOL_TYPES: Final = (Compare, Not, And, Or)


# --------------------------------------------------------------------------------------------
# Tokenizer

_TWO_CHAR: Final = frozenset({"<=", ">=", "==", "!=", "&&", "||"})
_ONE_CHAR: Final = frozenset("<>!+-*/()")
_DIGITS: Final = frozenset("0123456789")
_NAME_START: Final = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_")
_NAME_CHARS: Final = _NAME_START | _DIGITS
_SPACE: Final = frozenset(" \t\r\n")
_WORD_HINTS: Final = {"and": "&&", "or": "||", "not": "!"}

TokenKind: TypeAlias = Literal["num", "name", "op", "end"]


@dataclass(frozen=True, slots=True)
class _Token:
    kind: TokenKind
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens: list[_Token] = []
    i = 0
    n = len(text)
    while i < n:
        c = text[i]
        col = i + 1
        if c in _SPACE:
            i += 1
            continue
        if c in _DIGITS or (c == "." and i + 1 < n and text[i + 1] in _DIGITS):
            j = i
            while j < n and text[j] in _DIGITS:
                j += 1
            if j < n and text[j] == ".":
                j += 1
                if j >= n or text[j] not in _DIGITS:
                    raise RuleSyntaxError("a decimal point must be followed by digits", text, j + 1)
                while j < n and text[j] in _DIGITS:
                    j += 1
            if j < n and (text[j] in _NAME_CHARS or text[j] == "."):
                what = "exponents are not supported" if text[j] in "eE" else "malformed number"
                raise RuleSyntaxError(what, text, j + 1)
            tokens.append(_Token("num", text[i:j], col))
            i = j
            continue
        if c in _NAME_START:
            j = i + 1
            while j < n and text[j] in _NAME_CHARS:
                j += 1
            tokens.append(_Token("name", text[i:j], col))
            i = j
            continue
        pair = text[i : i + 2]
        if pair in _TWO_CHAR:
            tokens.append(_Token("op", pair, col))
            i += 2
            continue
        if c in _ONE_CHAR:
            tokens.append(_Token("op", c, col))
            i += 1
            continue
        hints = {"&": "expected '&&'", "|": "expected '||'", "=": "expected '==' (comparison)"}
        if c in hints:
            raise RuleSyntaxError(hints[c], text, col)
        shown = c if c.isprintable() else f"U+{ord(c):04X}"
        raise RuleSyntaxError(f"unexpected character {shown!r}", text, col)
    tokens.append(_Token("end", "", n + 1))
    return tokens


# --------------------------------------------------------------------------------------------
# Parser


def _literal(token: _Token, text: str, negative: bool) -> Number:
    value = Decimal(token.text)
    digits = value.normalize().as_tuple().digits if value else (0,)
    if len(digits) > MAX_SIGNIFICANT_DIGITS:
        raise RuleSyntaxError(
            f"number has {len(digits)} significant digits, at most {MAX_SIGNIFICANT_DIGITS} are allowed",
            text,
            token.column,
        )
    return Number(-value if negative else value, token.column)


def _describe(token: _Token) -> str:
    return "the end of the expression" if token.kind == "end" else repr(token.text)


class _Parser:
    __slots__ = ("depth", "pos", "text", "tokens", "vocabulary")

    def __init__(self, text: str, vocabulary: Vocabulary) -> None:
        self.text = text
        self.vocabulary = vocabulary
        self.tokens = _tokenize(text)
        self.pos = 0
        self.depth = 0

    # -- helpers

    @property
    def tok(self) -> _Token:
        return self.tokens[self.pos]

    def error(self, message: str, column: int) -> RuleSyntaxError:
        return RuleSyntaxError(message, self.text, column)

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def nest(self, column: int) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise self.error(f"nested too deeply (at most {MAX_DEPTH} levels)", column)

    def need_bool(self, node: Node, what: str, column: int) -> BoolNode:
        """``node`` (which starts at ``column``) as a condition, else an error pointing at it."""
        if isinstance(node, _BOOL_TYPES):
            return node
        raise self.error(f"{what} needs a condition (e.g. L1U > 253), found a number", column)

    def need_num(self, node: Node, what: str, column: int) -> NumNode:
        if isinstance(node, _NUM_TYPES):
            return node
        raise self.error(f"{what} needs a number, found a condition", column)

    # -- grammar

    def parse(self) -> BoolNode:
        node = self.or_expr()
        token = self.tok
        if token.kind != "end":
            if token.text == ")":
                raise self.error("unbalanced ')'", token.column)
            raise self.error(f"expected an operator or the end, found {_describe(token)}", token.column)
        if not isinstance(node, _BOOL_TYPES):
            raise self.error(
                "a rule must be a condition: compare with <, <=, >, >=, == or !=", self.tokens[0].column
            )
        return node

    def or_expr(self) -> Node:
        start = self.tok.column
        node = self.and_expr()
        while self.tok.text == "||" and self.tok.kind == "op":
            op = self.take()
            left = self.need_bool(node, "'||'", start)
            start = self.tok.column
            right = self.need_bool(self.and_expr(), "'||'", start)
            node = Or(left, right, op.column)
        return node

    def and_expr(self) -> Node:
        start = self.tok.column
        node = self.not_expr()
        while self.tok.text == "&&" and self.tok.kind == "op":
            op = self.take()
            left = self.need_bool(node, "'&&'", start)
            start = self.tok.column
            right = self.need_bool(self.not_expr(), "'&&'", start)
            node = And(left, right, op.column)
        return node

    def not_expr(self) -> Node:
        if self.tok.kind == "op" and self.tok.text == "!":
            op = self.take()
            self.nest(op.column)
            start = self.tok.column
            operand = self.need_bool(self.not_expr(), "'!'", start)
            self.depth -= 1
            return Not(operand, op.column)
        return self.comparison()

    def comparison(self) -> Node:
        start = self.tok.column
        node = self.sum()
        token = self.tok
        if token.kind == "op" and token.text in ("<", "<=", ">", ">=", "==", "!="):
            op = self.take()
            left = self.need_num(node, f"the left side of {op.text!r}", start)
            start = self.tok.column
            right = self.need_num(self.sum(), f"the right side of {op.text!r}", start)
            after = self.tok
            if after.kind == "op" and after.text in ("<", "<=", ">", ">=", "==", "!="):
                raise self.error("comparisons do not chain; join them with && instead", after.column)
            op_text: CompareOp = op.text  # type: ignore[assignment]
            return Compare(op_text, left, right, op.column)
        return node

    def sum(self) -> Node:
        start = self.tok.column
        node = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            op = self.take()
            left = self.need_num(node, f"{op.text!r}", start)
            start = self.tok.column
            right = self.need_num(self.product(), f"{op.text!r}", start)
            op_text: ArithOp = op.text  # type: ignore[assignment]
            node = Arith(op_text, left, right, op.column)
        return node

    def product(self) -> Node:
        start = self.tok.column
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            op = self.take()
            left = self.need_num(node, f"{op.text!r}", start)
            start = self.tok.column
            right = self.need_num(self.unary(), f"{op.text!r}", start)
            op_text: ArithOp = op.text  # type: ignore[assignment]
            node = Arith(op_text, left, right, op.column)
        return node

    def unary(self) -> Node:
        token = self.tok
        if token.kind == "op" and token.text in ("-", "+"):
            self.take()
            self.nest(token.column)
            nxt = self.tok
            if nxt.kind == "num":  # a signed literal: fold the sign into the number
                self.take()
                self.depth -= 1
                return _literal(nxt, self.text, token.text == "-")
            operand = self.need_num(self.unary(), f"unary {token.text!r}", nxt.column)
            self.depth -= 1
            if token.text == "+":
                return operand
            if isinstance(operand, Number):
                return Number(-operand.value, token.column)
            return Neg(operand, token.column)
        return self.primary()

    def primary(self) -> Node:
        token = self.take()
        if token.kind == "num":
            return _literal(token, self.text, False)
        if token.kind == "name":
            canonical = self.vocabulary.canonical(token.text)
            if canonical is not None:
                return Quantity(canonical, token.column)
            word = _WORD_HINTS.get(token.text.lower())
            if word is not None:
                raise self.error(f"unknown word {token.text!r}; write {word!r}", token.column)
            message = f"unknown quantity {token.text!r}"
            suggestions = self.vocabulary.suggest(token.text)
            if suggestions:
                message += f"; did you mean {' or '.join(repr(s) for s in suggestions)}?"
            raise self.error(message, token.column)
        if token.kind == "op" and token.text == "(":
            self.nest(token.column)
            node = self.or_expr()
            close = self.tok
            if close.kind != "op" or close.text != ")":
                raise self.error(
                    f"expected ')' to close the '(' at column {token.column}, found {_describe(close)}",
                    close.column,
                )
            self.take()
            self.depth -= 1
            return node
        raise self.error(f"expected a number or quantity, found {_describe(token)}", token.column)


def parse(text: str, vocabulary: Vocabulary = STANDARD_VOCABULARY) -> Expression:
    """Parse and type-check ``text``; raises :class:`RuleSyntaxError` with the column."""
    if not isinstance(text, str):
        raise RuleError(f"an expression is text, got {type(text).__name__}")
    if len(text) > MAX_LENGTH:
        raise RuleSyntaxError(f"expression is longer than {MAX_LENGTH} characters", text, MAX_LENGTH + 1)
    if not text.strip():
        raise RuleSyntaxError("empty expression", text, 1)
    root = _Parser(text, vocabulary).parse()
    return Expression(root, source=text)


# --------------------------------------------------------------------------------------------
# Printing

_PREC_OR: Final = 1
_PREC_AND: Final = 2
_PREC_NOT: Final = 3
_PREC_CMP: Final = 4
_PREC_ADD: Final = 5
_PREC_MUL: Final = 6
_PREC_NEG: Final = 7
_PREC_ATOM: Final = 8


def _prec(node: Node) -> int:
    if isinstance(node, Or):
        return _PREC_OR
    if isinstance(node, And):
        return _PREC_AND
    if isinstance(node, Not):
        return _PREC_NOT
    if isinstance(node, Compare):
        return _PREC_CMP
    if isinstance(node, Arith):
        return _PREC_ADD if node.op in ("+", "-") else _PREC_MUL
    if isinstance(node, Neg):
        return _PREC_NEG
    return _PREC_ATOM


def _number_text(value: Decimal) -> str:
    return format(value, "f")


def _to_text(node: Node) -> str:
    """Canonical text: minimal parentheses, plus parentheses around every comparison that is an
    operand of ``!``, ``&&`` or ``||`` and around an ``&&`` inside an ``||`` (as rules are
    usually written)."""

    def wrap(child: Node, parens: bool) -> str:
        inner = _to_text(child)
        return f"({inner})" if parens else inner

    if isinstance(node, Number):
        return _number_text(node.value)
    if isinstance(node, Quantity):
        return node.name
    if isinstance(node, Neg):
        return "-" + wrap(node.operand, _prec(node.operand) < _PREC_NEG)
    if isinstance(node, Arith):
        p = _prec(node)
        left = wrap(node.left, _prec(node.left) < p)
        right = wrap(node.right, _prec(node.right) <= p)
        return f"{left} {node.op} {right}"
    if isinstance(node, Compare):
        return f"{_to_text(node.left)} {node.op} {_to_text(node.right)}"
    if isinstance(node, Not):
        return "!" + wrap(node.operand, not isinstance(node.operand, Not))
    p = _prec(node)
    op = "&&" if isinstance(node, And) else "||"
    # Comparisons, and an && inside an ||, are parenthesised although precedence does not need it.
    always = (Compare, And) if isinstance(node, Or) else (Compare,)
    left = wrap(node.left, isinstance(node.left, always) or _prec(node.left) < p)
    right = wrap(node.right, isinstance(node.right, always) or _prec(node.right) <= p)
    return f"{left} {op} {right}"


# --------------------------------------------------------------------------------------------
# Evaluation


def to_decimal(value: Decimal | float | int, name: str = "value") -> Decimal:
    """A finite Decimal from a measured value; floats are read at their shortest repr."""
    if isinstance(value, bool):
        raise RuleEvaluationError(f"{name} is a bool, not a number")
    if isinstance(value, Decimal):
        result = value
    elif isinstance(value, int):
        result = Decimal(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise RuleEvaluationError(f"{name} is not a finite number ({value!r})")
        result = Decimal(repr(value))
    else:
        raise RuleEvaluationError(f"{name} is a {type(value).__name__}, not a number")
    if not result.is_finite():
        raise RuleEvaluationError(f"{name} is not a finite number ({value!r})")
    return result


def _eval_num(node: NumNode, values: Mapping[str, Decimal | float | int]) -> Decimal:
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Quantity):
        try:
            raw = values[node.name]
        except KeyError:
            raise RuleEvaluationError(f"quantity {node.name} has no value", node.column) from None
        return to_decimal(raw, node.name)
    if isinstance(node, Neg):
        return _CTX.minus(_eval_num(node.operand, values))
    left = _eval_num(node.left, values)
    right = _eval_num(node.right, values)
    try:
        if node.op == "+":
            return _CTX.add(left, right)
        if node.op == "-":
            return _CTX.subtract(left, right)
        if node.op == "*":
            return _CTX.multiply(left, right)
        return _CTX.divide(left, right)
    except (DivisionByZero, InvalidOperation):
        raise RuleEvaluationError("division by zero", node.column) from None
    except DecimalException as exc:  # overflow of absurd values
        raise RuleEvaluationError(f"arithmetic failed: {type(exc).__name__}", node.column) from None


_COMPARE: Final[dict[str, Callable[[Decimal, Decimal], bool]]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "==": lambda a, b: a == b,
    "!=": lambda a, b: a != b,
}


def _eval_bool(node: BoolNode, values: Mapping[str, Decimal | float | int]) -> bool:
    if isinstance(node, Compare):
        return _COMPARE[node.op](_eval_num(node.left, values), _eval_num(node.right, values))
    if isinstance(node, Not):
        return not _eval_bool(node.operand, values)
    if isinstance(node, And):
        return _eval_bool(node.left, values) and _eval_bool(node.right, values)
    return _eval_bool(node.left, values) or _eval_bool(node.right, values)


# --------------------------------------------------------------------------------------------
# The expression

#: Opcodes of the relay-meter program format (see the module docstring and docs/rules.md).
OPCODES: Final = {
    "QTY": 0x01,  # + 1 byte quantity code: push the quantity's value
    "NUM": 0x02,  # + int8 exponent, int32 mantissa (big-endian): push mantissa * 10**exponent
    "ADD": 0x10,
    "SUB": 0x11,
    "MUL": 0x12,
    "DIV": 0x13,
    "NEG": 0x14,
    "LT": 0x20,
    "LE": 0x21,
    "GT": 0x22,
    "GE": 0x23,
    "EQ": 0x24,
    "NE": 0x25,
    "NOT": 0x30,
    "AND": 0x31,  # + uint16 offset: top false -> jump forward keeping it, else pop it
    "OR": 0x32,  # + uint16 offset: top true -> jump forward keeping it, else pop it
}
_MAGIC: Final = b"MR"
_VERSION: Final = 1
_HEADER: Final = struct.Struct(">2sBBH")  # magic, version, max stack depth, code length
_ARITH_CODE: Final = {"+": 0x10, "-": 0x11, "*": 0x12, "/": 0x13}
_CODE_ARITH: Final[dict[int, ArithOp]] = {0x10: "+", 0x11: "-", 0x12: "*", 0x13: "/"}
_CMP_CODE: Final = {"<": 0x20, "<=": 0x21, ">": 0x22, ">=": 0x23, "==": 0x24, "!=": 0x25}
_CODE_CMP: Final[dict[int, CompareOp]] = {
    0x20: "<",
    0x21: "<=",
    0x22: ">",
    0x23: ">=",
    0x24: "==",
    0x25: "!=",
}
_INT32: Final = (-(2**31), 2**31 - 1)


def _mantissa_exponent(value: Decimal) -> tuple[int, int]:
    if not value:
        return 0, 0
    sign, digits, exponent = value.normalize().as_tuple()
    if not isinstance(exponent, int):  # NaN/Infinity never get this far
        raise RuleError(f"number {value} is not finite")
    mantissa = int("".join(map(str, digits)))
    return (-mantissa if sign else mantissa), exponent


@dataclass(frozen=True, slots=True)
class Expression:
    """A parsed, type-checked condition. Build it with :func:`parse` (or :meth:`from_bytes`).

    Two expressions are equal when their syntax trees are, whatever their spelling.
    """

    root: BoolNode
    source: str = field(default="", compare=False)
    #: The canonical names of every quantity the expression mentions.
    quantities: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        found: set[str] = set()
        stack: list[Node] = [self.root]
        while stack:
            node = stack.pop()
            if isinstance(node, Quantity):
                found.add(node.name)
            elif isinstance(node, Neg | Not):
                stack.append(node.operand)
            elif isinstance(node, Arith | Compare | And | Or):
                stack.extend((node.left, node.right))
        object.__setattr__(self, "quantities", frozenset(found))

    @classmethod
    def parse(cls, text: str, vocabulary: Vocabulary = STANDARD_VOCABULARY) -> Expression:
        return parse(text, vocabulary)

    def to_text(self) -> str:
        """The canonical text; :func:`parse` of it gives an equal expression."""
        return _to_text(self.root)

    def __str__(self) -> str:
        return self.to_text()

    def evaluate(self, values: Mapping[str, Decimal | float | int]) -> bool:
        """The expression's truth for ``values`` (canonical quantity name -> value).

        Raises :class:`RuleEvaluationError` when a quantity the evaluation reaches has no value
        (or is not finite) or on division by zero; ``&&`` and ``||`` short-circuit.
        """
        return _eval_bool(self.root, values)

    # -- relay meter program

    def to_bytes(self, vocabulary: Vocabulary = STANDARD_VOCABULARY) -> bytes:
        """The relay-meter program (reverse Polish with short-circuit jumps); see docs/rules.md."""
        code = bytearray()
        max_depth = 0

        def emit(node: Node, depth: int) -> None:
            # ``depth`` is the stack height before this node runs; it leaves one value more.
            nonlocal max_depth
            max_depth = max(max_depth, depth + 1)
            if isinstance(node, Number):
                mantissa, exponent = _mantissa_exponent(node.value)
                if not (_INT32[0] <= mantissa <= _INT32[1] and -128 <= exponent <= 127):
                    raise RuleError(f"number {node.value} does not fit the program format")
                code.append(0x02)
                code.extend(struct.pack(">bi", exponent, mantissa))
            elif isinstance(node, Quantity):
                spec = vocabulary.get(node.name)
                if spec is None or spec.code is None:
                    raise RuleError(f"quantity {node.name} has no code in the program format")
                code.extend((0x01, spec.code))
            elif isinstance(node, Neg | Not):
                emit(node.operand, depth)
                code.append(0x14 if isinstance(node, Neg) else 0x30)
            elif isinstance(node, Arith | Compare):
                emit(node.left, depth)
                emit(node.right, depth + 1)
                code.append(_ARITH_CODE[node.op] if isinstance(node, Arith) else _CMP_CODE[node.op])
            else:
                emit(node.left, depth)
                code.extend((0x31 if isinstance(node, And) else 0x32, 0, 0))
                at = len(code)
                emit(node.right, depth)
                offset = len(code) - at
                if offset > 0xFFFF:
                    raise RuleError("expression too large for the program format")
                code[at - 2 : at] = offset.to_bytes(2, "big")

        emit(self.root, 0)
        if len(code) + _HEADER.size > MAX_PROGRAM_BYTES or max_depth > 255:
            raise RuleError("expression too large for the program format")
        return _HEADER.pack(_MAGIC, _VERSION, max_depth, len(code)) + bytes(code)

    @classmethod
    def from_bytes(cls, data: bytes, vocabulary: Vocabulary = STANDARD_VOCABULARY) -> Expression:
        """Decode and validate a program; raises :class:`RuleSyntaxError` (column = byte offset + 1)."""
        return _decode(bytes(data), vocabulary)


# --------------------------------------------------------------------------------------------
# Program decoding and the reference interpreter


def _program_error(message: str, data: bytes, offset: int) -> RuleSyntaxError:
    return RuleSyntaxError(f"program: {message}", data[:64].hex(" "), 1 + 3 * min(offset, 64))


def _check_header(data: bytes) -> tuple[int, bytes]:
    if len(data) > MAX_PROGRAM_BYTES:
        raise _program_error(f"longer than {MAX_PROGRAM_BYTES} bytes", data, 0)
    if len(data) < _HEADER.size:
        raise _program_error("shorter than its header", data, len(data))
    magic, version, max_stack, length = _HEADER.unpack_from(data)
    if magic != _MAGIC:
        raise _program_error(f"bad magic {magic!r}, expected {_MAGIC!r}", data, 0)
    if version != _VERSION:
        raise _program_error(f"unsupported version {version}", data, 2)
    if length != len(data) - _HEADER.size:
        raise _program_error(
            f"code length field says {length}, {len(data) - _HEADER.size} bytes follow", data, 4
        )
    return max_stack, data[_HEADER.size :]


def _decode(data: bytes, vocabulary: Vocabulary) -> Expression:
    max_stack, code = _check_header(data)
    base = _HEADER.size
    stack: list[Node] = []
    # Open && / || jumps: (target offset, is_and, left operand, stack height below it).
    pending: list[tuple[int, bool, BoolNode, int]] = []
    deepest = 0
    pc = 0

    def fail(message: str) -> RuleSyntaxError:
        return _program_error(message, data, base + pc)

    def pop_num() -> NumNode:
        if not stack or (pending and len(stack) <= pending[-1][3]):
            raise fail("stack underflow")
        node = stack.pop()
        if not isinstance(node, _NUM_TYPES):
            raise fail("operator needs a number, found a condition")
        return node

    def pop_bool() -> BoolNode:
        if not stack or (pending and len(stack) <= pending[-1][3]):
            raise fail("stack underflow")
        node = stack.pop()
        if not isinstance(node, _BOOL_TYPES):
            raise fail("operator needs a condition, found a number")
        return node

    def close_jumps() -> None:
        while pending and pending[-1][0] == pc:
            _, is_and, left, height = pending.pop()
            if len(stack) != height + 1:
                raise fail("jump target does not end one operand")
            right = pop_bool()
            stack.append(And(left, right) if is_and else Or(left, right))

    while pc < len(code):
        close_jumps()
        op = code[pc]
        if op == 0x01:
            if pc + 2 > len(code):
                raise fail("truncated QTY")
            spec = vocabulary.by_code(code[pc + 1])
            if spec is None:
                raise fail(f"unknown quantity code 0x{code[pc + 1]:02x}")
            stack.append(Quantity(spec.name))
            pc += 2
        elif op == 0x02:
            if pc + 6 > len(code):
                raise fail("truncated NUM")
            exponent, mantissa = struct.unpack_from(">bi", code, pc + 1)
            stack.append(Number(Decimal(mantissa).scaleb(exponent)))
            pc += 6
        elif op in _CODE_ARITH or op in _CODE_CMP:
            right_n = pop_num()
            left_n = pop_num()
            if op in _CODE_ARITH:
                stack.append(Arith(_CODE_ARITH[op], left_n, right_n))
            else:
                stack.append(Compare(_CODE_CMP[op], left_n, right_n))
            pc += 1
        elif op == 0x14:
            stack.append(Neg(pop_num()))
            pc += 1
        elif op == 0x30:
            stack.append(Not(pop_bool()))
            pc += 1
        elif op in (0x31, 0x32):
            if pc + 3 > len(code):
                raise fail("truncated jump")
            offset = int.from_bytes(code[pc + 1 : pc + 3], "big")
            target = pc + 3 + offset
            if offset == 0 or target > len(code):
                raise fail("jump outside the program")
            if pending and target > pending[-1][0]:
                raise fail("jump crosses the end of an enclosing operand")
            left_b = pop_bool()
            pending.append((target, op == 0x31, left_b, len(stack)))
            pc += 3
        else:
            raise fail(f"unknown opcode 0x{op:02x}")
        deepest = max(deepest, len(stack))
    close_jumps()
    if pending:
        raise fail("unclosed jump")
    if len(stack) != 1:
        raise fail(f"program leaves {len(stack)} values, expected one")
    root = stack[0]
    if not isinstance(root, _BOOL_TYPES):
        raise fail("program computes a number, not a condition")
    # The header's stack depth must be what the program needs, so firmware can trust it.
    if max_stack != deepest:
        raise _program_error(f"header says stack depth {max_stack}, the program needs {deepest}", data, 3)
    return Expression(root)


def run_program(
    data: bytes,
    values: Mapping[str, Decimal | float | int],
    vocabulary: Vocabulary = STANDARD_VOCABULARY,
    *,
    validated: bool = False,
) -> bool:
    """Run a program as relay-meter firmware would: a value stack and forward jumps.

    A reference for firmware authors, the tests' check that the byte form means what the tree
    means, and the evaluator of the simulated relay meter. The program is validated first
    (:meth:`Expression.from_bytes`) unless ``validated`` says the caller already did (a meter
    validates a program once, when it is written, then runs it on every sample).
    """
    if not validated:
        Expression.from_bytes(data, vocabulary)
    _, code = _check_header(data)
    stack: list[Decimal | bool] = []
    pc = 0
    while pc < len(code):
        op = code[pc]
        if op == 0x01:
            spec = vocabulary.by_code(code[pc + 1])
            if spec is None:  # pragma: no cover - validated above
                raise RuleError("program: unknown quantity")
            if spec.name not in values:
                raise RuleEvaluationError(f"quantity {spec.name} has no value")
            stack.append(to_decimal(values[spec.name], spec.name))
            pc += 2
        elif op == 0x02:
            exponent, mantissa = struct.unpack_from(">bi", code, pc + 1)
            stack.append(Decimal(mantissa).scaleb(exponent))
            pc += 6
        elif op in _CODE_ARITH:
            b, a = _number(stack.pop()), _number(stack.pop())
            stack.append(_eval_num(Arith(_CODE_ARITH[op], Number(a), Number(b)), {}))
            pc += 1
        elif op in _CODE_CMP:
            b, a = _number(stack.pop()), _number(stack.pop())
            stack.append(_COMPARE[_CODE_CMP[op]](a, b))
            pc += 1
        elif op == 0x14:
            stack.append(_CTX.minus(_number(stack.pop())))
            pc += 1
        elif op == 0x30:
            stack.append(not stack.pop())
            pc += 1
        else:  # 0x31 AND / 0x32 OR
            offset = int.from_bytes(code[pc + 1 : pc + 3], "big")
            pc += 3
            if bool(stack[-1]) == (op == 0x32):
                pc += offset  # short-circuit: keep the deciding value
            else:
                stack.pop()
    result = stack.pop()
    if not isinstance(result, bool):  # pragma: no cover - validated above
        raise RuleError("program: result is not a condition")
    return result


def _number(value: Decimal | bool) -> Decimal:
    if isinstance(value, Decimal):
        return value
    raise RuleError("program: a condition where a number was expected")  # pragma: no cover
