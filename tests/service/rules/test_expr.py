"""Rule expressions: parser vectors, error columns, evaluation semantics, the program format."""

from __future__ import annotations

import contextlib
import string
import time
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.errors import RuleError, ServiceError
from metercom.model.rules.expr import (
    MAX_DEPTH,
    MAX_LENGTH,
    STANDARD_VOCABULARY,
    And,
    Arith,
    Compare,
    Expression,
    Neg,
    Node,
    Not,
    Number,
    Or,
    Quantity,
    QuantitySpec,
    RuleEvaluationError,
    RuleSyntaxError,
    Vocabulary,
    parse,
    run_program,
)


def q(name: str) -> Quantity:
    return Quantity(name)


def n(text: str) -> Number:
    return Number(Decimal(text))


def gt(left: Node, right: Node) -> Compare:
    assert isinstance(left, Number | Quantity | Neg | Arith)
    assert isinstance(right, Number | Quantity | Neg | Arith)
    return Compare(">", left, right)


# ---------------------------------------------------------------------------------------------
# Vectors: the issue's examples and the grammar


ISSUE_EXAMPLES = [
    (
        "(L1U > 253) || (L2U > 253) || (L3U > 253)",
        Or(Or(gt(q("L1U"), n("253")), gt(q("L2U"), n("253"))), gt(q("L3U"), n("253"))),
    ),
    ("L1I > 16", gt(q("L1I"), n("16"))),
    (
        "(L1f < 49.1) && (L2f < 49.1) && (L3f < 49.1)",
        And(
            And(Compare("<", q("L1f"), n("49.1")), Compare("<", q("L2f"), n("49.1"))),
            Compare("<", q("L3f"), n("49.1")),
        ),
    ),
]


@pytest.mark.parametrize(("text", "tree"), ISSUE_EXAMPLES)
def test_issue_examples(text: str, tree: Node) -> None:
    expression = parse(text)
    assert expression.root == tree
    assert expression.to_text() == text  # already canonical
    assert Expression.from_bytes(expression.to_bytes()) == expression


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ("l1u>253", "L1U > 253"),
        ("L1PF < 0.9 && tp > 5000", "(L1pf < 0.9) && (Tp > 5000)"),
        ("!L1U > 253", "!(L1U > 253)"),  # ! is looser than a comparison
        ("!L1U > 253 && L2U > 1", "!(L1U > 253) && (L2U > 1)"),  # and tighter than &&
        ("!(L1U > 1 && L2U > 1)", "!((L1U > 1) && (L2U > 1))"),
        ("!!(L1U > 1)", "!!(L1U > 1)"),
        ("L1U > 1 || L2U > 1 && L3U > 1", "(L1U > 1) || ((L2U > 1) && (L3U > 1))"),
        ("(L1U > 1 || L2U > 1) && L3U > 1", "((L1U > 1) || (L2U > 1)) && (L3U > 1)"),
        ("L1p + L2p + L3p > 11000", "L1p + L2p + L3p > 11000"),
        ("L1U - (L2U - L3U) > 1", "L1U - (L2U - L3U) > 1"),
        ("(L1U - L2U) - L3U > 1", "L1U - L2U - L3U > 1"),
        ("1 + 2 * L1I > 3", "1 + 2 * L1I > 3"),
        ("(1 + 2) * L1I > 3", "(1 + 2) * L1I > 3"),
        ("L1p / L1I / 2 >= 1", "L1p / L1I / 2 >= 1"),
        ("L1p / (L1I / 2) >= 1", "L1p / (L1I / 2) >= 1"),
        ("-L1p > -5", "-L1p > -5"),
        ("- 5 < +L1p", "-5 < L1p"),
        ("--L1p > 0", "--L1p > 0"),
        ("-(5) < -(-L1p)", "-5 < --L1p"),
        ("-(L1p + 1) < 0", "-(L1p + 1) < 0"),
        ("L1U - -5 == 1", "L1U - -5 == 1"),
        ("TU != .5", "TU != 0.5"),
        ("Te >= 1000.250", "Te >= 1000.250"),
        ("  L1U\t>\n253  ", "L1U > 253"),
    ],
)
def test_canonical_text(text: str, canonical: str) -> None:
    expression = parse(text)
    assert expression.to_text() == canonical
    assert parse(canonical) == expression


def test_precedence_trees() -> None:
    a, b, c = (gt(q(x), n("1")) for x in ("L1U", "L2U", "L3U"))
    assert parse("!L1U > 1 && L2U > 1").root == And(Not(a), b)
    assert parse("L1U > 1 || L2U > 1 && L3U > 1").root == Or(a, And(b, c))
    assert parse("L1U > 1 && L2U > 1 || L3U > 1").root == Or(And(a, b), c)
    assert parse("1 + 2 * L1I > 3").root == gt(Arith("+", n("1"), Arith("*", n("2"), q("L1I"))), n("3"))
    assert parse("L1U - 1 - 2 > 0").root == gt(Arith("-", Arith("-", q("L1U"), n("1")), n("2")), n("0"))
    assert parse("-5 * L1U > 0").root == gt(Arith("*", n("-5"), q("L1U")), n("0"))
    assert parse("-L1U * 2 > 0").root == gt(Arith("*", Neg(q("L1U")), n("2")), n("0"))


def test_every_standard_quantity_parses_in_any_case() -> None:
    names = [spec.name for spec in STANDARD_VOCABULARY]
    assert len(names) == 32
    for name in names:
        for spelling in (name, name.lower(), name.upper()):
            assert parse(f"{spelling} > 0").quantities == {name}
    assert not STANDARD_VOCABULARY["L1e"].averaged
    assert not STANDARD_VOCABULARY["Te"].averaged
    assert STANDARD_VOCABULARY["L2U"].averaged
    assert STANDARD_VOCABULARY["L2U"].phase == 2


# ---------------------------------------------------------------------------------------------
# Errors: message, column, caret


def test_caret_line_matches_the_issue() -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse("L1U > > 253")
    assert info.value.column == 7
    assert str(info.value) == "L1U > > 253\n      ^ expected a number or quantity, found '>' at column 7"
    assert isinstance(info.value, RuleError)
    assert isinstance(info.value, ServiceError)


@pytest.mark.parametrize(
    ("text", "column", "fragment"),
    [
        ("L1U > > 253", 7, "expected a number or quantity"),
        ("L1V > 253", 1, "did you mean 'L1U'"),
        ("(L1U > 253) || (L2X > 253)", 17, "unknown quantity 'L2X'"),
        ("L1U > 253 and L2U > 1", 11, "expected an operator or the end"),
        ("and > 1", 1, "write '&&'"),
        ("L1U & 3", 5, "expected '&&'"),
        ("L1U > 1 | L2U > 1", 9, "expected '||'"),
        ("L1U = 253", 5, "expected '=='"),
        ("(L1U > 253", 11, "expected ')' to close the '(' at column 1"),
        ("L1U > 253)", 10, "unbalanced ')'"),
        ("1 < L1U < 3", 9, "comparisons do not chain"),
        ("L1U", 1, "a rule must be a condition"),
        ("  L1U + 1", 3, "a rule must be a condition"),
        ("L1U && L2U > 1", 1, "'&&' needs a condition"),
        ("L2U > 1 || 5", 12, "'||' needs a condition"),
        ("L2U > 1 || (5 + L1U) && L1U > 2", 12, "'&&' needs a condition"),
        ("!L1U", 2, "'!' needs a condition"),
        ("(L1U > 1) + 2 > 3", 1, "'+' needs a number"),
        ("1 + (L1U > 1) > 3", 5, "'+' needs a number"),
        ("-(L1U > 1) > 3", 2, "unary '-' needs a number"),
        ("(L1U > 1) > 3", 1, "the left side of '>' needs a number"),
        ("3 > !(L1U > 1)", 5, "expected a number or quantity"),
        ("L2U > 1 && !L1U", 13, "'!' needs a condition"),
        ("L1U > 2.", 9, "decimal point must be followed by digits"),
        ("L1U > 2.5.1", 10, "malformed number"),
        ("L1U > 1e3", 8, "exponents are not supported"),
        ("L1U > 12abc", 9, "malformed number"),
        ("L1U > 1234567891", 7, "10 significant digits"),
        ("L1U > 253 #", 11, "unexpected character '#'"),
        ("L1U > 253 \x00", 11, "unexpected character 'U+0000'"),
        ("L1U > ", 7, "found the end of the expression"),
        ("", 1, "empty expression"),
        ("   ", 1, "empty expression"),
        ("L1U > (", 8, "expected a number or quantity"),
        ("L1U > 3 3", 9, "expected an operator or the end, found '3'"),
    ],
)
def test_error_columns(text: str, column: int, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError) as info:
        parse(text)
    error = info.value
    assert error.column == column, str(error)
    assert fragment in error.message, str(error)
    _, caret = str(error).split("\n")
    assert caret.index("^") == column - 1
    assert caret.endswith(f"at column {column}")


def test_bounds() -> None:
    long_text = "L1U > " + "1 + " * 200 + "1"
    assert len(long_text) > MAX_LENGTH
    with pytest.raises(RuleSyntaxError, match="longer than"):
        parse(long_text)
    deep = "(" * MAX_DEPTH + "L1U > 1" + ")" * MAX_DEPTH
    assert parse(deep) == parse("L1U > 1")
    with pytest.raises(RuleSyntaxError, match="nested too deeply") as info:
        parse("(" * (MAX_DEPTH + 1) + "L1U > 1" + ")" * (MAX_DEPTH + 1))
    assert info.value.column == MAX_DEPTH + 1
    with pytest.raises(RuleSyntaxError, match="nested too deeply"):
        parse("!" * (MAX_DEPTH + 1) + "(L1U > 1)")
    with pytest.raises(RuleSyntaxError, match="nested too deeply"):
        parse("L1U > " + "-" * (MAX_DEPTH + 1) + "L2U")
    with pytest.raises(RuleError):
        parse(b"L1U > 1")  # type: ignore[arg-type]


def test_a_custom_vocabulary() -> None:
    vocabulary = Vocabulary([QuantitySpec("Temp", "transformer temperature", "degC", code=0x80)])
    expression = parse("temp > 80", vocabulary)
    assert expression.to_text() == "Temp > 80"
    assert Expression.from_bytes(expression.to_bytes(vocabulary), vocabulary) == expression
    with pytest.raises(RuleSyntaxError, match="unknown quantity 'L1U'"):
        parse("L1U > 1", vocabulary)
    with pytest.raises(RuleError, match="declared twice"):
        Vocabulary([QuantitySpec("a", "", ""), QuantitySpec("A", "", "")])
    with pytest.raises(RuleError, match="no code"):
        parse("x > 1", Vocabulary([QuantitySpec("x", "", "")])).to_bytes(
            Vocabulary([QuantitySpec("x", "", "")])
        )
    with pytest.raises(RuleError):
        QuantitySpec("1x", "", "")


# ---------------------------------------------------------------------------------------------
# Evaluation


def test_evaluation_basics() -> None:
    rule = parse("(L1U > 253) || (L2U > 253) || (L3U > 253)")
    assert not rule.evaluate({"L1U": Decimal(230), "L2U": Decimal(253), "L3U": Decimal(240)})
    assert rule.evaluate({"L1U": Decimal(230), "L2U": Decimal("253.01"), "L3U": Decimal(240)})
    assert parse("L1U >= 253").evaluate({"L1U": 253})
    assert parse("L1U == 230.1").evaluate({"L1U": 230.1})  # floats at their shortest repr
    assert parse("L1p + L2p + L3p > 11000").evaluate({"L1p": 4000, "L2p": 4000, "L3p": 3000.5})
    assert parse("L1p / 4 * 4 == L1p").evaluate({"L1p": Decimal(10)})
    assert not parse("L1p / 3 * 3 == L1p").evaluate({"L1p": Decimal(10)})  # 50 digits, rounded
    assert parse("-L1p < 0").evaluate({"L1p": 1})
    assert parse("!(L1U > 253)").evaluate({"L1U": 1})


def test_short_circuit() -> None:
    guarded = parse("(L1I > 0) && (L1p / L1I > 200)")
    assert guarded.evaluate({"L1I": 0, "L1p": 5}) is False  # never divides by zero
    assert guarded.evaluate({"L1I": 2, "L1p": 500}) is True
    assert guarded.evaluate({"L1I": 0}) is False  # L1p never read
    either = parse("(L1I == 0) || (L1p / L1I > 200)")
    assert either.evaluate({"L1I": 0}) is True
    with pytest.raises(RuleEvaluationError, match="division by zero") as info:
        parse("L1p / L1I > 200").evaluate({"L1I": 0, "L1p": 1})
    assert info.value.column == 5
    with pytest.raises(RuleEvaluationError, match="division by zero"):
        parse("0 / L1I > 200").evaluate({"L1I": 0})  # 0/0 too
    with pytest.raises(RuleEvaluationError, match="L2U has no value") as missing:
        parse("(L1U > 1) || (L2U > 1)").evaluate({"L1U": 0})
    assert missing.value.column == 15
    for bad in (float("nan"), float("inf"), Decimal("NaN"), True, "230"):
        with pytest.raises(RuleEvaluationError):
            parse("L1U > 1").evaluate({"L1U": bad})  # type: ignore[dict-item]


# ---------------------------------------------------------------------------------------------
# Hypothesis: random trees round-trip through text and bytes; random input only raises RuleError

QUANTITY_NAMES = [spec.name for spec in STANDARD_VOCABULARY]
numbers = st.builds(
    lambda m, e: Number(Decimal(m).scaleb(e)),
    st.integers(-999_999_999, 999_999_999),
    st.integers(-6, 3),
)
quantities = st.sampled_from(QUANTITY_NAMES).map(Quantity)


def _neg(node: Node) -> Node:
    assert isinstance(node, Quantity | Neg | Arith)
    return Neg(node)


num_trees: st.SearchStrategy[Node] = st.recursive(
    st.one_of(numbers, quantities),
    lambda inner: st.one_of(
        inner.filter(lambda x: not isinstance(x, Number)).map(_neg),
        st.builds(Arith, st.sampled_from(["+", "-", "*", "/"]), inner, inner),
    ),
    max_leaves=8,
)
comparisons = st.builds(Compare, st.sampled_from(["<", "<=", ">", ">=", "==", "!="]), num_trees, num_trees)
bool_trees: st.SearchStrategy[Node] = st.recursive(
    comparisons,
    lambda inner: st.one_of(inner.map(Not), st.builds(And, inner, inner), st.builds(Or, inner, inner)),
    max_leaves=6,
)


def _fits(expression: Expression) -> bool:
    text = expression.to_text()
    if len(text) > MAX_LENGTH:
        return False
    depth = 0
    deepest = 0
    for c in text:
        if c in "(!-":
            depth += 1
        elif c == ")":
            depth -= 1
        deepest = max(deepest, depth)
    return deepest <= MAX_DEPTH


@given(bool_trees)
def test_random_trees_round_trip_through_text_and_bytes(root: Node) -> None:
    assert isinstance(root, Compare | Not | And | Or)
    expression = Expression(root)
    if not _fits(expression):
        return
    text = expression.to_text()
    assert parse(text) == expression, text
    assert parse(text).to_text() == text
    assert Expression.from_bytes(expression.to_bytes()) == expression


values_strategy = st.dictionaries(
    st.sampled_from(QUANTITY_NAMES),
    st.one_of(
        st.integers(-5, 5).map(Decimal),
        st.decimals(min_value=-1000, max_value=1000, allow_nan=False, allow_infinity=False, places=2),
    ),
)


@given(bool_trees, values_strategy)
def test_the_program_means_what_the_tree_means(root: Node, values: dict[str, Decimal]) -> None:
    assert isinstance(root, Compare | Not | And | Or)
    expression = Expression(root)
    program = expression.to_bytes()
    try:
        expected: bool | str = expression.evaluate(values)
    except RuleEvaluationError as exc:
        expected = type(exc).__name__
    try:
        got: bool | str = run_program(program, values)
    except RuleEvaluationError as exc:
        got = type(exc).__name__
    assert got == expected


ALPHABET = string.ascii_letters + string.digits + " ()<>=!&|+-*/._\t\n"


@settings(max_examples=400)
@given(st.one_of(st.text(alphabet=ALPHABET, max_size=600), st.text(max_size=100)))
def test_random_text_only_raises_rule_errors_and_is_fast(text: str) -> None:
    began = time.perf_counter()
    error: RuleSyntaxError | None = None
    try:
        expression = parse(text)
    except RuleSyntaxError as exc:
        error = exc
    else:
        assert parse(expression.to_text()) == expression
    assert time.perf_counter() - began < 0.1
    if error is not None:
        assert 1 <= error.column <= len(text) + 1
        assert str(error).split("\n")[1].index("^") == error.column - 1


@given(
    st.lists(
        st.sampled_from(["L1U", "L2I", ">", "<=", "253", "-", "(", ")", "&&", "||", "!", "*", "1.5"]),
        max_size=60,
    )
)
def test_random_token_soup_only_raises_rule_errors(tokens: list[str]) -> None:
    text = " ".join(tokens)
    try:
        expression = parse(text)
    except RuleSyntaxError:
        return
    assert parse(expression.to_text()) == expression


# ---------------------------------------------------------------------------------------------
# The relay-meter program


def test_program_layout() -> None:
    program = parse("(L1U > 253) || (L2U > 253)").to_bytes()
    assert program.hex(" ") == (
        "4d 52 01 02 00 15"  # "MR", version 1, stack depth 2, 21 bytes of code
        " 01 10 02 00 00 00 00 fd 22"  # QTY L1U, NUM 253 * 10**0, GT
        " 32 00 09"  # OR: if true jump 9 bytes forward keeping it, else pop
        " 01 20 02 00 00 00 00 fd 22"  # QTY L2U, NUM 253, GT
    )
    assert parse("L1f < 49.1").to_bytes().hex(" ") == "4d 52 01 02 00 09 01 16 02 ff 00 00 01 eb 20"


@pytest.mark.parametrize(
    ("program", "fragment"),
    [
        (b"", "shorter than its header"),
        (b"XX\x01\x01\x00\x00", "bad magic"),
        (b"MR\x02\x01\x00\x00", "unsupported version"),
        (b"MR\x01\x01\x00\x05\x01", "code length field"),
        (b"MR\x01\x01\x00\x02\x01\x99", "unknown quantity code"),
        (b"MR\x01\x01\x00\x02\x01\x10", "computes a number"),
        (b"MR\x01\x01\x00\x01\x22", "stack underflow"),
        (b"MR\x01\x01\x00\x01\x77", "unknown opcode"),
        (b"MR\x01\x02\x00\x04\x01\x10\x01\x10", "leaves 2 values"),
        (b"MR\x01\x01\x00\x03\x31\x00\x00", "jump outside"),
        (b"MR\x01\x05\x00\x09\x01\x10\x02\x00\x00\x00\x00\xfd\x22", "header says stack depth 5"),
    ],
)
def test_bad_programs(program: bytes, fragment: str) -> None:
    with pytest.raises(RuleSyntaxError, match=fragment):
        Expression.from_bytes(program)


@given(st.binary(max_size=80))
def test_random_programs_only_raise_rule_errors(data: bytes) -> None:
    try:
        expression = Expression.from_bytes(b"MR\x01" + data[:1] + len(data[1:]).to_bytes(2, "big") + data[1:])
    except RuleSyntaxError:
        return
    assert Expression.from_bytes(expression.to_bytes()) == expression


@given(bool_trees, st.data())
def test_mutated_programs_only_raise_rule_errors(root: Node, data: st.DataObject) -> None:
    assert isinstance(root, Compare | Not | And | Or)
    program = bytearray(Expression(root).to_bytes())
    position = data.draw(st.integers(0, len(program) - 1))
    program[position] = data.draw(st.integers(0, 255))
    with contextlib.suppress(RuleSyntaxError):
        Expression.from_bytes(bytes(program))
