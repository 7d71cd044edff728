"""Validating the automation sections of a fleet configuration: ``[[rules]]``, ``[prepaid]``, ``[notify]``.

Rule: these sections are checked by the same whole-document checker as the rest of the file
(:mod:`.config_validate` calls the functions here with its checker), so every problem is
reported with its file, line and key, together with the problems of the other sections, and a
configuration with any problem changes nothing. A rule's expression is parsed here with the
rules engine's own parser; a syntax error names the column inside the expression::

    fleet.toml:88: rules[0].expression: column 7: expected a number or quantity, found '>' (in "L1U > > 253")

Theory of operation: each function walks its section of the parsed TOML document, reports
problems through the checker and returns the model objects (``None`` or nothing for an
invalid section). References are checked against the meters and groups already validated;
a reference to an entry that was itself invalid is not reported a second time.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import date, time, timedelta
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final

from metercom.errors import RuleError
from metercom.model.modbus_profile import RuleSlotSpec
from metercom.model.obis import Obis
from metercom.model.rules.engine import DEFAULT_MAX_SLOTS, MAX_RECOVERY, MAX_WINDOW, Command, Rule
from metercom.model.rules.expr import RuleSyntaxError, parse
from metercom.model.rules.slots import encode_slot
from metercom.service.config_model import (
    GroupConfig,
    MeterConfig,
    NeutralDetectorConfig,
    NotifyChannelConfig,
    NotifyConfig,
    NotifyRouteConfig,
    PrepaidAccountConfig,
    PrepaidConfig,
    PrepaidWindowConfig,
    RuleConfig,
)
from metercom.service.config_positions import KeyPath
from metercom.service.config_profiles import modbus_profile, supply_problem
from metercom.service.rules.neutral import NeutralConfig

if TYPE_CHECKING:
    from metercom.service.config_validate import _Checker

__all__ = [
    "ALARM_KINDS",
    "EVALUATORS",
    "NEUTRAL_DURATIONS",
    "NEUTRAL_RANGES",
    "SEVERITIES",
    "SUPPLY_TARGETS",
    "check_neutral",
    "check_notify",
    "check_prepaid",
    "check_rules",
    "meter_outputs",
    "rule_slot_spec",
]

_RULE_KEYS: Final = (
    "name",
    "meters",
    "group",
    "groups",
    "expression",
    "window",
    "recovery",
    "action",
    "targets",
    "dry_run",
    "enabled",
    "slot",
    "description",
    "evaluate",
)
#: Who evaluates a rule (``evaluate``): the head-end on collected readings, or the meter itself.
EVALUATORS: Final = ("head-end", "meter")
#: Rule targets that name the supply relay (DLMS disconnect control, a Modbus meter's load relay).
SUPPLY_TARGETS: Final = frozenset({"relay1", "supply"})
_TARGET: Final = re.compile(r"^relay([1-9][0-9]?)$")
_NEUTRAL_KEYS: Final = (
    "meters",
    "group",
    "groups",
    "enabled",
    "nominal_voltage_v",
    "deviation",
    "bound_margin",
    "angle_tolerance_deg",
    "line_tolerance",
    "time_constant",
    "alarm_score",
    "clear_score",
    "min_duration",
    "reference_time_constant",
)
#: ``[[neutral]]`` number settings: (low, high) accepted, inclusive.
NEUTRAL_RANGES: Final[Mapping[str, tuple[float, float]]] = {
    "nominal_voltage_v": (50.0, 1000.0),
    "deviation": (0.01, 0.45),
    "bound_margin": (0.0, 0.2),
    "angle_tolerance_deg": (1.0, 90.0),
    "line_tolerance": (0.005, 0.2),
    "alarm_score": (0.05, 1.0),
    "clear_score": (0.0, 0.95),
}
#: ``[[neutral]]`` duration settings: (shortest, longest).
NEUTRAL_DURATIONS: Final[Mapping[str, tuple[timedelta, timedelta]]] = {
    "time_constant": (timedelta(seconds=1), timedelta(hours=6)),
    "min_duration": (timedelta(0), timedelta(hours=6)),
    "reference_time_constant": (timedelta(minutes=1), timedelta(days=7)),
}
_ACTIONS: Final = tuple(c.value for c in Command)
_PREPAID_KEYS: Final = (
    "currency",
    "timezone",
    "minor_digits",
    "table",
    "between_rows",
    "unit_wh",
    "price_minor_per_kwh",
    "tou",
    "reminder_levels",
    "disconnect_at",
    "max_reading_age",
    "protected",
    "accounts",
)
_PROTECTED_KEYS: Final = ("windows", "weekdays", "holidays")
_WINDOW_KEYS: Final = ("start", "end", "weekdays", "name")
_TOU_KEYS: Final = ("start", "end", "weekdays", "name", "price_minor_per_kwh")
_ACCOUNT_KEYS: Final = ("account", "meter", "register")
_NOTIFY_KEYS: Final = ("channels", "routes", "quiet_period")
_SMTP_KEYS: Final = (
    "id",
    "type",
    "host",
    "port",
    "tls",
    "from",
    "to",
    "user",
    "password",
    "verify",
    "ca_file",
    "allow_plain_auth",
    "timeout_s",
)
_WEBHOOK_KEYS: Final = ("id", "type", "url", "secret", "verify", "ca_file", "timeout_s")
_ROUTE_KEYS: Final = ("channels", "kinds", "min_severity", "meters", "events")
_TLS: Final = ("starttls", "implicit", "none")
#: Alarm kinds a route may name (``metercom.service.notify.AlarmKind`` values).
ALARM_KINDS: Final = (
    "power_failure",
    "tamper",
    "cover_open",
    "rule",
    "broken_neutral",
    "prepaid_level",
    "prepaid_disconnect",
    "comm_loss",
    "comm_restored",
    "auth_failure",
)
SEVERITIES: Final = ("info", "warning", "major", "critical")
_EVENTS: Final = ("raised", "repeated", "cleared")
_DAYS: Final = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CURRENCY: Final = re.compile(r"^[A-Z]{3}$")
_ACCOUNT_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,63}$")
_MAX_LEVELS: Final = 16


def check_rules(
    checker: _Checker, doc: Mapping[str, Any], meters: Sequence[MeterConfig], groups: Sequence[GroupConfig]
) -> list[RuleConfig]:
    """The ``[[rules]]`` entries (see the module docstring)."""
    out: list[RuleConfig] = []
    names: dict[str, KeyPath] = {}
    meter_ids = {m.id for m in meters}
    by_id = {m.id: m for m in meters}
    members = {g.id: g.meters for g in groups}
    slots: dict[tuple[str, int], str] = {}
    per_meter: dict[str, int] = {}
    for path, table in checker.entries(doc, "rules"):
        checker.keys(table, path, _RULE_KEYS, ("name", "expression"))
        name = checker.text(table, path, "name", "", 100)
        if name and name in names:
            first = checker.positions.line_of((*names[name], "name"))
            checker.problem((*path, "name"), f"duplicate rule name {name!r} (first defined at line {first})")
            name = ""
        elif name:
            names[name] = path
        wanted: list[str] = []
        for item_path, meter_id in checker.str_list(table, path, "meters"):
            if meter_id in meter_ids:
                wanted.append(meter_id)
            elif not checker.invalid("meters", meter_id):
                checker.problem(item_path, f"unknown meter {meter_id!r}")
        group_refs = checker.str_list(table, path, "groups")
        if "group" in table:
            group = checker.typed(table, path, "group", str, "")
            group_refs.append(((*path, "group"), group))
        for item_path, group_id in group_refs:
            if group_id in members:
                wanted.extend(members[group_id])
            elif not checker.invalid("groups", group_id):
                checker.problem(
                    item_path, f"unknown group {group_id!r}; groups: {', '.join(members) or 'none'}"
                )
        if not any(k in table for k in ("meters", "group", "groups")):
            checker.problem(path, "missing 'meters' or 'group': the meters this rule runs on")
        expression = checker.text(table, path, "expression", "", 2000)
        parsed_ok = False
        if expression:
            try:
                parse(expression)
                parsed_ok = True
            except RuleSyntaxError as exc:
                checker.problem(
                    (*path, "expression"), f"column {exc.column}: {exc.message} (in {expression!r})"
                )
        window = _duration(checker, table, path, "window", MAX_WINDOW)
        recovery = _duration(checker, table, path, "recovery", MAX_RECOVERY)
        action = checker.typed(table, path, "action", str, "disconnect").lower()
        if action not in _ACTIONS:
            checker.problem(
                (*path, "action"), f"unknown action {action!r}; choose one of {', '.join(_ACTIONS)}"
            )
            action = "disconnect"
        targets = tuple(t for _, t in checker.str_list(table, path, "targets")) or ("relay1",)
        slot = checker.opt_integer(table, path, "slot", 1, DEFAULT_MAX_SLOTS)
        dry_run = checker.typed(table, path, "dry_run", bool, False)
        enabled = checker.typed(table, path, "enabled", bool, True)
        evaluate = checker.typed(table, path, "evaluate", str, "head-end").lower()
        if evaluate not in EVALUATORS:
            checker.problem(
                (*path, "evaluate"), f"evaluate is {' or '.join(map(repr, EVALUATORS))}, got {evaluate!r}"
            )
            evaluate = "head-end"
        rule: Rule | None = None
        if name and parsed_ok:
            try:
                rule = Rule.from_text(
                    name,
                    expression,
                    window=window,
                    recovery=recovery,
                    action=Command(action),
                    targets=targets,
                    dry_run=dry_run,
                    enabled=enabled,
                )
            except RuleError as exc:
                checker.problem(path, str(exc))
                continue
        if not name or not expression or not parsed_ok:
            continue
        chosen = tuple(dict.fromkeys(wanted))
        target_path: KeyPath = (*path, "targets") if "targets" in table else path
        _check_targets(checker, target_path, action, targets, [by_id[m] for m in chosen if m in by_id])
        if evaluate == "meter" and rule is not None:
            _check_meter_evaluation(checker, path, rule, [by_id[m] for m in chosen if m in by_id])
        for meter_id in chosen:
            per_meter[meter_id] = per_meter.get(meter_id, 0) + 1
            if per_meter[meter_id] == DEFAULT_MAX_SLOTS + 1:
                checker.problem(path, f"meter {meter_id!r} has more than {DEFAULT_MAX_SLOTS} rules")
            if slot is not None:
                other = slots.get((meter_id, slot))
                if other is not None:
                    checker.problem(
                        (*path, "slot"), f"slot {slot} of meter {meter_id!r} is taken by rule {other!r}"
                    )
                slots[(meter_id, slot)] = name
        out.append(
            RuleConfig(
                name=name,
                meters=chosen,
                expression=expression,
                window=window,
                recovery=recovery,
                action=action,
                targets=targets,
                dry_run=dry_run,
                enabled=enabled,
                slot=slot,
                groups=tuple(g for _, g in group_refs),
                description=checker.text(table, path, "description"),
                evaluate=evaluate,
            )
        )
    return out


def meter_outputs(meter: MeterConfig) -> int:
    """Relay outputs a meter has (a Modbus profile's relay count; 1, the supply, for others)."""
    profile = modbus_profile(meter)
    if profile is not None:
        return profile.relays.count if profile.relays is not None else 0
    return 1


def rule_slot_spec(meter: MeterConfig) -> RuleSlotSpec | None:
    """The rule slots of a meter that evaluates rules itself, or None."""
    profile = modbus_profile(meter)
    return profile.relays.rules if profile is not None and profile.relays is not None else None


def _check_targets(
    checker: _Checker, path: KeyPath, action: str, targets: Sequence[str], meters: Sequence[MeterConfig]
) -> None:
    """``supply``/``relay1`` take connect/disconnect and need meters that can switch their supply
    (:func:`.config_profiles.supply_problem`); ``relay2``.. (auxiliary outputs) high/low."""
    supply_action = action in ("connect", "disconnect")
    for i, target in enumerate(targets):
        where: KeyPath = (*path, i) if path and path[-1] == "targets" else path
        match = _TARGET.match(target)
        if target not in SUPPLY_TARGETS and match is None:
            checker.problem(
                where, f"unknown target {target!r}: use 'supply' (or 'relay1') or relay2, relay3 ..."
            )
            continue
        if target in SUPPLY_TARGETS and not supply_action:
            checker.problem(
                where, f"the supply relay {target!r} is switched with connect/disconnect, not {action}"
            )
            continue
        if target in SUPPLY_TARGETS:
            for meter in meters if checker.check_profiles else ():
                problem = supply_problem(meter)
                if problem is not None:
                    checker.problem(where, f"target {target!r}: {problem}")
            continue
        if supply_action:
            checker.problem(where, f"auxiliary output {target!r} is switched with high/low, not {action}")
            continue
        number = int(match.group(1)) if match is not None else 0
        for meter in meters:
            if meter_outputs(meter) < number:
                checker.problem(
                    where,
                    f"meter {meter.id!r} ({meter.device_profile or meter.protocol.value}) "
                    f"has no output {target!r}",
                )


def _check_meter_evaluation(
    checker: _Checker, path: KeyPath, rule: Rule, meters: Sequence[MeterConfig]
) -> None:
    """``evaluate = "meter"``: every meter must be a relay meter with rule slots the image fits."""
    where: KeyPath = (*path, "evaluate")
    for meter in meters:
        spec = rule_slot_spec(meter)
        if spec is None:
            checker.problem(
                where,
                f"meter {meter.id!r} ({meter.device_profile or meter.protocol.value}) cannot evaluate rules "
                'itself; evaluate = "meter" needs a relay meter with rule slots (pmtr3)',
            )
            continue
        relays = meter_outputs(meter)
        outputs = {f"relay{n}": n for n in range(1, relays + 1)} | {"supply": 1}
        try:
            image = encode_slot(rule, outputs)
        except RuleError as exc:
            checker.problem(where, f"meter {meter.id!r}: {exc}")
            continue
        if len(image) > spec.image_bytes:
            checker.problem(
                where,
                f"meter {meter.id!r}: the rule needs {len(image)} bytes, a rule slot holds "
                f"{spec.image_bytes} (shorten the expression or the name)",
            )


def check_neutral(
    checker: _Checker, doc: Mapping[str, Any], meters: Sequence[MeterConfig], groups: Sequence[GroupConfig]
) -> list[NeutralDetectorConfig]:
    """The ``[[neutral]]`` entries: detector settings for meters/groups, or the default for all.

    Every setting is range-checked (:data:`NEUTRAL_RANGES`, :data:`NEUTRAL_DURATIONS`) and the
    whole set is validated by :class:`~metercom.service.rules.neutral.NeutralConfig` itself
    (``clear_score < alarm_score``); a meter may be covered by one entry only, and there is at
    most one default (an entry without ``meters`` and ``group``).
    """
    out: list[NeutralDetectorConfig] = []
    meter_ids = {m.id for m in meters}
    members = {g.id: g.meters for g in groups}
    covered: dict[str, KeyPath] = {}
    default_at: KeyPath | None = None
    for path, table in checker.entries(doc, "neutral"):
        checker.keys(table, path, _NEUTRAL_KEYS)
        before = len(checker.problems)
        wanted: list[str] = []
        for item_path, meter_id in checker.str_list(table, path, "meters"):
            if meter_id in meter_ids:
                wanted.append(meter_id)
            elif not checker.invalid("meters", meter_id):
                checker.problem(item_path, f"unknown meter {meter_id!r}")
        group_refs = checker.str_list(table, path, "groups")
        if "group" in table:
            group_refs.append(((*path, "group"), checker.typed(table, path, "group", str, "")))
        for item_path, group_id in group_refs:
            if group_id in members:
                wanted.extend(members[group_id])
            elif not checker.invalid("groups", group_id):
                checker.problem(item_path, f"unknown group {group_id!r}")
        default = not any(k in table for k in ("meters", "group", "groups"))
        if default:
            if default_at is not None:
                checker.problem(
                    path,
                    "a second [[neutral]] default (no meters or group); the first is at line "
                    f"{checker.positions.line_of(default_at)}",
                )
            default_at = path
        chosen = tuple(dict.fromkeys(wanted))
        for meter_id in chosen:
            if meter_id in covered:
                checker.problem(
                    path,
                    f"meter {meter_id!r} is already covered by the [[neutral]] entry at line "
                    f"{checker.positions.line_of(covered[meter_id])}",
                )
            covered[meter_id] = path
        settings: dict[str, float | timedelta] = {}
        for key, (low, high) in NEUTRAL_RANGES.items():
            if key in table:
                value = checker.typed(table, path, key, float, low)
                if not low <= value <= high:
                    checker.problem((*path, key), f"{value:g} is out of range {low:g}..{high:g}")
                settings[key] = value
        for key, (shortest, longest) in NEUTRAL_DURATIONS.items():
            if key in table:
                duration = checker.duration(table, path, key)
                if duration is not None and not shortest <= duration <= longest:
                    checker.problem((*path, key), f"{duration} is out of range {shortest}..{longest}")
                elif duration is not None:
                    settings[key] = duration
        enabled = checker.typed(table, path, "enabled", bool, True)
        if len(checker.problems) == before:
            try:
                NeutralConfig(**settings)  # type: ignore[arg-type]
            except RuleError as exc:
                checker.problem(path, str(exc))
        if len(checker.problems) == before:
            out.append(
                NeutralDetectorConfig(
                    meters=chosen,
                    groups=tuple(g for _, g in group_refs),
                    default=default,
                    enabled=enabled,
                    settings=MappingProxyType(settings),
                )
            )
    return out


def _duration(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str, high: timedelta
) -> timedelta:
    value = checker.duration(table, path, key)
    if value is None:
        return timedelta(0)
    if not timedelta(0) <= value <= high:
        checker.problem((*path, key), f"{value} is out of range 0..{high}")
        return timedelta(0)
    return value


def _decimal(checker: _Checker, value: object, path: KeyPath, *, positive: bool = False) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        checker.problem(path, 'expected a number (write decimals as text: "7.50")')
        return None
    if isinstance(value, float):
        checker.problem(path, f'write the decimal {value!r} as text ("{value}") so it stays exact')
        return None
    try:
        number = Decimal(value)
    except InvalidOperation:
        checker.problem(path, f"not a decimal number: {value!r}")
        return None
    if not number.is_finite() or (positive and number <= 0) or number < 0:
        checker.problem(path, f"{value!r} must be {'positive' if positive else 'zero or more'}")
        return None
    return str(number)


def _time(checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str) -> time | None:
    if key not in table:
        checker.problem(path, f'missing required key {key!r} (a local time such as "18:00")')
        return None
    value = table[key]
    if isinstance(value, time):
        return value
    if isinstance(value, str) and re.match(r"^\d{1,2}:\d{2}(:\d{2})?$", value):
        try:
            return time.fromisoformat(value.zfill(5) if len(value) == 4 else value)
        except ValueError:
            pass
    checker.problem((*path, key), f'expected a local time such as "18:00", got {value!r}')
    return None


def _weekdays(checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str) -> frozenset[int] | None:
    if key not in table:
        return None
    days: set[int] = set()
    for item_path, name in checker.str_list(table, path, key):
        short = name.strip().lower()[:3]
        if short in _DAYS and isinstance(name, str):
            days.add(_DAYS.index(short))
        else:
            checker.problem(item_path, f"unknown weekday {name!r}; use mon, tue, wed, thu, fri, sat, sun")
    return frozenset(days)


def _window(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, *, tou: bool
) -> PrepaidWindowConfig | None:
    checker.keys(table, path, _TOU_KEYS if tou else _WINDOW_KEYS)
    start, end = _time(checker, table, path, "start"), _time(checker, table, path, "end")
    weekdays = _weekdays(checker, table, path, "weekdays")
    price = None
    if tou:
        if "price_minor_per_kwh" not in table:
            checker.problem(path, "missing required key 'price_minor_per_kwh'")
        else:
            price = _decimal(checker, table["price_minor_per_kwh"], (*path, "price_minor_per_kwh"))
    if start is None or end is None or (tou and price is None):
        return None
    return PrepaidWindowConfig(
        start, end, weekdays or frozenset(range(7)), checker.text(table, path, "name", "", 64), price
    )


def _windows(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str, *, tou: bool
) -> list[PrepaidWindowConfig]:
    if key not in table:
        return []
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        checker.problem((*path, key), 'expected an array of tables like { start = "18:00", end = "08:00" }')
        return []
    return [
        w for i, v in enumerate(value) if (w := _window(checker, v, (*path, key, i), tou=tou)) is not None
    ]


def check_prepaid(
    checker: _Checker, doc: Mapping[str, Any], meters: Sequence[MeterConfig]
) -> PrepaidConfig | None:
    """The ``[prepaid]`` table (see the module docstring)."""
    if "prepaid" not in doc:
        return None
    path: KeyPath = ("prepaid",)
    table = checker.table(doc["prepaid"], path, "[prepaid]")
    if table is None:
        return None
    before = len(checker.problems)
    checker.keys(table, path, _PREPAID_KEYS, ("currency", "accounts"))
    currency = checker.text(table, path, "currency", "", 3)
    if currency and not _CURRENCY.match(currency):
        checker.problem((*path, "currency"), f"currency must be an ISO 4217 code like INR, got {currency!r}")
    zone = checker.timezone(table, path, "timezone") or "UTC"
    minor_digits = checker.integer(table, path, "minor_digits", 0, 4, default=2)
    unit_wh = checker.integer(table, path, "unit_wh", 1, 1_000_000, default=1000)
    rows: dict[str, str] = {}
    if "table" in table and (spec := checker.table(table["table"], (*path, "table"), "table")) is not None:
        for amount, units in spec.items():
            amount_text = _decimal(checker, amount, (*path, "table", amount), positive=True)
            units_text = _decimal(checker, units, (*path, "table", amount), positive=True)
            if amount_text is not None and units_text is not None:
                if Decimal(amount_text).as_tuple().exponent < -minor_digits:  # type: ignore[operator]
                    checker.problem(
                        (*path, "table", amount), f"{amount} has more than {minor_digits} decimals"
                    )
                rows[amount_text] = units_text
        if not spec:
            checker.problem((*path, "table"), "a top-up table needs at least one row")
    price = None
    if "price_minor_per_kwh" in table:
        price = _decimal(checker, table["price_minor_per_kwh"], (*path, "price_minor_per_kwh"))
    if ("table" in table) == ("price_minor_per_kwh" in table):
        checker.problem(path, "give either a top-up 'table' or 'price_minor_per_kwh', exactly one")
    between = checker.typed(table, path, "between_rows", str, "exact")
    if between not in ("exact", "interpolate"):
        checker.problem((*path, "between_rows"), f"between_rows is exact or interpolate, got {between!r}")
    tou = _windows(checker, table, path, "tou", tou=True)
    if tou and "table" in table:
        checker.problem(
            (*path, "tou"), "time-of-use prices go with price_minor_per_kwh, not with a top-up table"
        )
    levels: list[str] = []
    if "reminder_levels" in table:
        raw = table["reminder_levels"]
        if not isinstance(raw, list) or len(raw) > _MAX_LEVELS:
            checker.problem((*path, "reminder_levels"), f"expected an array of at most {_MAX_LEVELS} numbers")
        else:
            levels = [
                lv
                for i, v in enumerate(raw)
                if (lv := _decimal(checker, v, (*path, "reminder_levels", i))) is not None
            ]
    disconnect_at = "0"
    if "disconnect_at" in table:
        disconnect_at = _decimal(checker, table["disconnect_at"], (*path, "disconnect_at")) or "0"
    max_age: timedelta | None = timedelta(hours=1)
    if table.get("max_reading_age") in ("none", "off"):
        max_age = None
    elif "max_reading_age" in table:
        max_age = checker.duration(table, path, "max_reading_age") or timedelta(hours=1)
    protected: list[PrepaidWindowConfig] = []
    weekdays: frozenset[int] = frozenset()
    holidays: dict[date, str] = {}
    ppath: KeyPath = (*path, "protected")
    if "protected" in table and (ptable := checker.table(table["protected"], ppath, "protected")) is not None:
        checker.keys(ptable, ppath, _PROTECTED_KEYS)
        protected = _windows(checker, ptable, ppath, "windows", tou=False)
        weekdays = _weekdays(checker, ptable, ppath, "weekdays") or frozenset()
        holidays = _holidays(checker, ptable, ppath)
    accounts = _accounts(checker, table, path, meters)
    if len(checker.problems) > before:
        return None
    return PrepaidConfig(
        currency=currency,
        timezone=zone,
        minor_digits=minor_digits,
        table=MappingProxyType(rows),
        between_rows=between,
        unit_wh=unit_wh,
        price_minor_per_kwh=price,
        tou=tuple(tou),
        levels=tuple(levels) if "reminder_levels" in table else ("300", "200", "100"),
        disconnect_at=disconnect_at,
        max_reading_age=max_age,
        protected=tuple(protected),
        protected_weekdays=weekdays,
        holidays=MappingProxyType(holidays),
        accounts=tuple(accounts),
    )


def _holidays(checker: _Checker, table: Mapping[str, Any], path: KeyPath) -> dict[date, str]:
    if "holidays" not in table:
        return {}
    value = table["holidays"]
    out: dict[date, str] = {}
    items: list[tuple[KeyPath, object, str]] = []
    if isinstance(value, dict):
        items = [
            ((*path, "holidays", k), k, v if isinstance(v, str) else "holiday") for k, v in value.items()
        ]
    elif isinstance(value, list):
        items = [((*path, "holidays", i), v, "holiday") for i, v in enumerate(value)]
    else:
        checker.problem((*path, "holidays"), 'expected { 2026-03-04 = "Holi" } or an array of dates')
    for item_path, when, name in items:
        day: date | None = None
        if isinstance(when, date):
            day = when
        elif isinstance(when, str):
            try:
                day = date.fromisoformat(when)
            except ValueError:
                day = None
        if day is None:
            checker.problem(item_path, f"expected a date like 2026-03-04, got {when!r}")
        else:
            out[day] = name
    return out


def _accounts(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, meters: Sequence[MeterConfig]
) -> list[PrepaidAccountConfig]:
    if "accounts" not in table:
        return []
    value = table["accounts"]
    apath: KeyPath = (*path, "accounts")
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        checker.problem(apath, "write each account as a [[prepaid.accounts]] table")
        return []
    by_id = {m.id: m for m in meters}
    out: list[PrepaidAccountConfig] = []
    seen_accounts: set[str] = set()
    seen_meters: set[str] = set()
    for i, entry in enumerate(value):
        epath: KeyPath = (*apath, i)
        checker.keys(entry, epath, _ACCOUNT_KEYS, ("account", "meter"))
        account = checker.text(entry, epath, "account", "", 64)
        meter = checker.text(entry, epath, "meter", "", 64)
        if account and not _ACCOUNT_ID.match(account):
            checker.problem((*epath, "account"), f"invalid account id {account!r}")
        elif account in seen_accounts:
            checker.problem((*epath, "account"), f"duplicate account {account!r}")
        if meter and meter not in by_id and not checker.invalid("meters", meter):
            checker.problem((*epath, "meter"), f"unknown meter {meter!r}")
        elif meter in seen_meters:
            checker.problem((*epath, "meter"), f"meter {meter!r} already has a prepaid account")
        elif meter in by_id and checker.check_profiles:
            # prepaid cuts the supply at zero credit: the meter must be able to switch it
            problem = supply_problem(by_id[meter])
            if problem is not None:
                checker.problem((*epath, "meter"), f"prepaid cuts the supply at zero credit: {problem}")
        register = checker.text(entry, epath, "register", "1.8.0", 64)
        try:
            register = str(Obis.parse(register))
        except ValueError as exc:
            checker.problem((*epath, "register"), str(exc))
        seen_accounts.add(account)
        seen_meters.add(meter)
        if account and meter:
            out.append(PrepaidAccountConfig(account, meter, register))
    return out


def check_notify(
    checker: _Checker, doc: Mapping[str, Any], meters: Sequence[MeterConfig]
) -> NotifyConfig | None:
    """The ``[notify]`` table (see the module docstring)."""
    if "notify" not in doc:
        return None
    path: KeyPath = ("notify",)
    table = checker.table(doc["notify"], path, "[notify]")
    if table is None:
        return None
    before = len(checker.problems)
    checker.keys(table, path, _NOTIFY_KEYS)
    quiet = checker.duration(table, path, "quiet_period")
    channels: list[NotifyChannelConfig] = []
    seen: dict[str, KeyPath] = {}
    for cpath, entry in _array(checker, table, path, "channels"):
        channel_id = checker.ident(entry, cpath, seen, "channel")
        kind = checker.typed(entry, cpath, "type", str, "")
        if kind == "smtp":
            channel = _smtp(checker, entry, cpath, channel_id or "")
        elif kind == "webhook":
            channel = _webhook(checker, entry, cpath, channel_id or "")
        else:
            checker.problem(
                (*cpath, "type") if "type" in entry else cpath, "a channel's type is smtp or webhook"
            )
            continue
        if channel is not None and channel_id is not None:
            channels.append(channel)
    known = {c.id for c in channels} | set(seen)
    meter_ids = {m.id for m in meters}
    routes: list[NotifyRouteConfig] = []
    for rpath, entry in _array(checker, table, path, "routes"):
        checker.keys(entry, rpath, _ROUTE_KEYS, ("channels",))
        names = tuple(n for _, n in checker.str_list(entry, rpath, "channels"))
        for item_path, name in checker.str_list(entry, rpath, "channels"):
            if name not in known:
                checker.problem(
                    item_path, f"unknown channel {name!r}; channels: {', '.join(sorted(known)) or 'none'}"
                )
        if "channels" in entry and not names:
            checker.problem((*rpath, "channels"), "a route needs at least one channel")
        kinds = _choices(checker, entry, rpath, "kinds", ALARM_KINDS)
        events = _choices(checker, entry, rpath, "events", _EVENTS)
        severity = checker.typed(entry, rpath, "min_severity", str, "info").lower()
        if severity not in SEVERITIES:
            checker.problem(
                (*rpath, "min_severity"), f"unknown severity {severity!r}; one of {', '.join(SEVERITIES)}"
            )
        route_meters = None
        if "meters" in entry:
            route_meters = tuple(n for _, n in checker.str_list(entry, rpath, "meters"))
            for item_path, name in checker.str_list(entry, rpath, "meters"):
                if name not in meter_ids and not checker.invalid("meters", name):
                    checker.problem(item_path, f"unknown meter {name!r}")
        routes.append(NotifyRouteConfig(names, kinds, severity, route_meters, events))
    if len(checker.problems) > before:
        return None
    return NotifyConfig(tuple(channels), tuple(routes), quiet if quiet is not None else timedelta(minutes=30))


def _array(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str
) -> list[tuple[KeyPath, dict[str, Any]]]:
    if key not in table:
        return []
    value = table[key]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        checker.problem((*path, key), f"write each entry as a [[{'.'.join(map(str, (*path, key)))}]] table")
        return []
    return [((*path, key, i), v) for i, v in enumerate(value)]


def _choices(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str, allowed: tuple[str, ...]
) -> tuple[str, ...] | None:
    if key not in table:
        return None
    out: list[str] = []
    for item_path, name in checker.str_list(table, path, key):
        if name not in allowed:
            checker.problem(item_path, f"unknown {key[:-1]} {name!r}; one of {', '.join(allowed)}")
        else:
            out.append(name)
    return tuple(out)


def _smtp(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, channel_id: str
) -> NotifyChannelConfig | None:
    checker.keys(table, path, _SMTP_KEYS, ("host", "from", "to"))
    host = checker.text(table, path, "host", "", 255)
    port = checker.opt_integer(table, path, "port", 1, 65535)
    tls = checker.typed(table, path, "tls", str, "starttls")
    if tls not in _TLS:
        checker.problem((*path, "tls"), f"tls is one of {', '.join(_TLS)}, got {tls!r}")
    sender = checker.text(table, path, "from", "", 255)
    if sender and "@" not in sender:
        checker.problem((*path, "from"), f"not an e-mail address: {sender!r}")
    recipients = checker.str_list(table, path, "to")
    for item_path, address in recipients:
        if "@" not in address:
            checker.problem(item_path, f"not an e-mail address: {address!r}")
    if "to" in table and not recipients:
        checker.problem((*path, "to"), "an e-mail channel needs at least one recipient")
    user = checker.opt_text(table, path, "user", 255)
    password = checker.secret_ref(table, path, "password")
    if password is not None:
        checker.check_secret(password, (*path, "password"), key=False)
    if (user is None) != ("password" not in table):
        checker.problem(path, "give user and password together (or neither)")
    plain = checker.typed(table, path, "allow_plain_auth", bool, False)
    if user is not None and tls == "none" and not plain:
        checker.problem(
            (*path, "tls"), "logging in over an unencrypted connection: use tls, or allow_plain_auth = true"
        )
    return NotifyChannelConfig(
        id=channel_id,
        kind="smtp",
        host=host,
        port=port,
        tls=tls,
        sender=sender,
        recipients=tuple(a for _, a in recipients),
        username=user,
        password=password,
        verify=checker.typed(table, path, "verify", bool, True),
        ca_file=checker.opt_text(table, path, "ca_file", 1000),
        allow_plain_auth=plain,
        timeout_s=checker.seconds(table, path, "timeout_s", 30.0),
    )


def _webhook(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, channel_id: str
) -> NotifyChannelConfig | None:
    checker.keys(table, path, _WEBHOOK_KEYS, ("url", "secret"))
    url = checker.text(table, path, "url", "", 2000)
    if url and not re.match(r"^https?://[^\s/@]+(/\S*)?$", url):
        checker.problem((*path, "url"), "expected an http:// or https:// URL without credentials")
    secret = checker.secret_ref(table, path, "secret")
    if secret is not None:
        checker.check_secret(secret, (*path, "secret"), key=False)
    return NotifyChannelConfig(
        id=channel_id,
        kind="webhook",
        url=url,
        secret=secret,
        verify=checker.typed(table, path, "verify", bool, True),
        ca_file=checker.opt_text(table, path, "ca_file", 1000),
        timeout_s=checker.seconds(table, path, "timeout_s", 30.0),
    )
