"""docs/configuration.md documents every key the validator accepts, and only those.

The validator declares its known keys as data (a tuple of names per kind of table); this test
reads them and fails when one is not written in backticks in the matching section of the
document, or when a key table (``| key | ...``) of a section names a key the validator does not
know. ``[service]`` and ``[retention]`` keys are literals inside ``_Checker.service`` rather than
data, so they are not checked here.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from metercom.service import config_automation, config_forward, config_validate, config_web

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _keys(*groups: Iterable[str]) -> frozenset[str]:
    return frozenset(key for group in groups for key in group)


#: section heading in the document -> keys the validator accepts in that kind of table
SECTIONS: dict[str, frozenset[str]] = {
    "`[[lines]]`": _keys(config_validate._LINE_KEYS),
    "`[[meters]]`": _keys(
        config_validate._METER_KEYS, *config_validate._ADDRESS_KEYS.values(), config_validate.DLMS_KEYS
    ),
    "`[[groups]]`": _keys(config_validate._GROUP_KEYS),
    "`[[plans]]`": _keys(config_validate._PLAN_KEYS, config_validate._READ_KEYS),
    "`[[schedules]]`": _keys(config_validate._SCHEDULE_KEYS),
    "`[[rules]]`": _keys(config_automation._RULE_KEYS),
    "`[[neutral]]`": _keys(config_automation._NEUTRAL_KEYS),
    "`[prepaid]`": _keys(
        config_automation._PREPAID_KEYS,
        config_automation._PROTECTED_KEYS,
        config_automation._WINDOW_KEYS,
        config_automation._TOU_KEYS,
        config_automation._ACCOUNT_KEYS,
    ),
    "`[notify]`": _keys(
        config_automation._NOTIFY_KEYS,
        config_automation._SMTP_KEYS,
        config_automation._WEBHOOK_KEYS,
        config_automation._ROUTE_KEYS,
    ),
    "`[[upstreams]]`": _keys(config_forward._COMMON, *config_forward._KIND_KEYS.values()),
    "`[web]`": _keys(config_web._WEB_KEYS),
}
#: words a section's key column may contain besides keys (table names, a channel's type value)
EXTRA_WORDS: dict[str, frozenset[str]] = {
    "`[prepaid]`": frozenset({"prepaid"}),
    "`[notify]`": frozenset({"notify", "smtp", "webhook"}),
}


def _sections(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    title = ""
    for line in text.splitlines(keepends=True):
        if line.startswith("#"):
            title = line.lstrip("#").strip()
            out[title] = ""
        elif title:
            out[title] += line
    return out


def _quoted_words(text: str) -> set[str]:
    return {word for span in re.findall(r"`([^`\n]+)`", text) for word in _WORD.findall(span)}


def _key_column(section: str) -> list[str]:
    """The first cells of the rows of the section's ``| key | ...`` tables."""
    cells: list[str] = []
    in_table = False
    for line in section.splitlines():
        if not line.startswith("|"):
            in_table = False
            continue
        first = line.split("|")[1].strip()
        if first == "key":
            in_table = True
        elif in_table and not set(first) <= {"-", ":"}:
            cells.append(first)
    return cells


def test_every_section_is_found() -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    assert set(SECTIONS) <= set(sections), set(SECTIONS) - set(sections)


def test_every_accepted_key_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    sections = _sections(text)
    missing = {
        title: sorted(keys - _quoted_words(sections[title]))
        for title, keys in SECTIONS.items()
        if keys - _quoted_words(sections[title])
    }
    top = sorted(set(config_validate._TOP_KEYS) - _quoted_words(text))
    assert not missing, f"keys the validator accepts but docs/configuration.md does not document: {missing}"
    assert not top, f"top-level keys not documented: {top}"


def test_every_documented_key_is_accepted() -> None:
    sections = _sections(DOC.read_text(encoding="utf-8"))
    unknown: dict[str, list[str]] = {}
    for title, keys in SECTIONS.items():
        cells = _key_column(sections[title])
        assert cells, f"no key table in {title}"
        allowed = keys | EXTRA_WORDS.get(title, frozenset())
        words = {word for cell in cells for word in _quoted_words(cell)}
        if words - allowed:
            unknown[title] = sorted(words - allowed)
    assert not unknown, f"documented keys the validator does not accept: {unknown}"


def test_the_check_notices_a_missing_key() -> None:
    """The checks above are not vacuous: a key mentioned nowhere in its section is noticed."""
    sections = _sections(DOC.read_text(encoding="utf-8"))
    rules = sections["`[[rules]]`"]
    without = "\n".join(line for line in rules.splitlines() if "evaluate" not in line)
    assert "evaluate" in _quoted_words(rules)
    assert "evaluate" not in _quoted_words(without)


def test_the_example_configuration_is_valid() -> None:
    """examples/fleet.toml, which docs/configuration.md calls complete, passes the validator."""
    config = config_validate.load_config(DOC.parents[1] / "examples" / "fleet.toml")
    assert {m.id for m in config.meters} >= {"m-0001", "m-0005"}
    assert config.rules
    assert config.neutral
    assert config.prepaid is not None
    assert config.notify is not None
    assert config.web is not None
