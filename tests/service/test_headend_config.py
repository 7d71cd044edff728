"""The automation sections of the fleet configuration: ``[[rules]]``, ``[prepaid]``, ``[notify]``,
validated with the rest of the file (file:line, key, and the expression's column)."""

from __future__ import annotations

from datetime import date, time, timedelta

import pytest

from metercom.service.config import ConfigValidationError, diff_configs, parse_config

BASE = """
[secrets]
smtp = "env:SMTP_PASSWORD"

[[lines]]
id = "gw"
url = "tcp://127.0.0.1:502"

[[meters]]
id = "m1"
protocol = "modbus"
line = "gw"
address = { unit = 1 }
device_profile = "pmtr3"
groups = ["relays"]

[[meters]]
id = "m2"
protocol = "modbus"
line = "gw"
address = { unit = 2 }
device_profile = "pmtr3"

[[groups]]
id = "relays"
"""

GOOD = (
    BASE
    + """
[[rules]]
name = "over-voltage"
group = "relays"
expression = "(L1U > 253) || (L2U > 253) || (L3U > 253)"
window = "10s"
recovery = "1m"
action = "DISCONNECT"
targets = ["relay1"]

[[rules]]
name = "overload"
meters = ["m1", "m2"]
expression = "L1I > 16"
slot = 1
dry_run = true

[prepaid]
currency = "INR"
timezone = "Asia/Kolkata"
table = { 5 = 500, 10 = 650, 30 = 900, 100 = 1175 }
reminder_levels = [300, 200, 100]
max_reading_age = "2h"

[prepaid.protected]
windows = [{ start = "18:00", end = "08:00", name = "night" }]
weekdays = ["sunday"]
holidays = { 2026-03-04 = "Holi" }

[[prepaid.accounts]]
account = "acc-1"
meter = "m1"

[notify]
quiet_period = "15m"

[[notify.channels]]
id = "ops-mail"
type = "smtp"
host = "smtp.utility.example"
port = 587
tls = "starttls"
from = "headend@utility.example"
to = ["ops@utility.example"]
user = "headend"
password = "secret:smtp"

[[notify.channels]]
id = "scada"
type = "webhook"
url = "https://scada.utility.example/hooks/metercom"
secret = "file:/etc/metercom/webhook.key"

[[notify.routes]]
channels = ["scada"]

[[notify.routes]]
channels = ["ops-mail"]
min_severity = "major"
kinds = ["comm_loss", "tamper"]
"""
)


def test_a_complete_automation_configuration() -> None:
    config = parse_config(GOOD, source="fleet.toml")
    over, overload = config.rules
    assert over.meters == ("m1",)
    assert (over.window, over.recovery, over.action) == (
        timedelta(seconds=10),
        timedelta(minutes=1),
        "disconnect",
    )
    assert overload.meters == ("m1", "m2")
    assert overload.dry_run
    assert overload.slot == 1
    assert [r.name for r in config.rules_of("m1")] == ["overload", "over-voltage"]  # slot 1 first
    prepaid = config.prepaid
    assert prepaid is not None
    assert dict(prepaid.table) == {"5": "500", "10": "650", "30": "900", "100": "1175"}
    assert prepaid.levels == ("300", "200", "100")
    assert prepaid.max_reading_age == timedelta(hours=2)
    (night,) = prepaid.protected
    assert (night.start, night.end, night.name) == (time(18), time(8), "night")
    assert prepaid.protected_weekdays == frozenset({6})
    assert dict(prepaid.holidays) == {date(2026, 3, 4): "Holi"}
    assert prepaid.account_of_meter("m1") is not None
    assert prepaid.account_of_meter("m2") is None
    notify = config.notify
    assert notify is not None
    assert notify.quiet_period == timedelta(minutes=15)
    mail, hook = notify.channels
    assert (mail.kind, mail.username, str(mail.password)) == ("smtp", "headend", "secret:smtp")
    assert (hook.kind, str(hook.secret)) == ("webhook", "file:/etc/metercom/webhook.key")
    assert notify.routes[1].kinds == ("comm_loss", "tamper")
    assert diff_configs(parse_config(BASE), config).settings == ("rules", "prepaid", "notify")


def test_every_problem_is_reported_with_its_line() -> None:
    text = (
        BASE
        + """
[[rules]]
name = "bad"
group = "relays"
expression = "L1U > > 253"

[[rules]]
name = "typo"
meters = ["m9"]
expression = "L1V > 253"
action = "explode"
window = "2d"

[prepaid]
currency = "inr"
table = { 5 = 500 }
price_minor_per_kwh = 650
protected = { windows = [{ start = "25:00", end = "08:00" }], weekdays = ["someday"] }

[[prepaid.accounts]]
account = "acc-1"
meter = "m7"

[notify]
[[notify.channels]]
id = "mail"
type = "smtp"
host = "x"
from = "nobody"
to = []
user = "u"
password = "hunter2"

[[notify.routes]]
channels = ["pager"]
kinds = ["fire"]
min_severity = "huge"
"""
    )
    with pytest.raises(ConfigValidationError) as caught:
        parse_config(text, source="fleet.toml")
    problems = [str(p) for p in caught.value.problems]
    lines = text.splitlines()

    def line_of(fragment: str) -> int:
        return next(i for i, line in enumerate(lines, start=1) if fragment in line)

    expected = [
        (line_of('"L1U > > 253"'), "rules[0].expression: column 7: expected a number or quantity, found '>'"),
        (line_of('"m9"'), "rules[1].meters[0]: unknown meter 'm9'"),
        (line_of('"L1V > 253"'), "rules[1].expression: column 1: unknown quantity 'L1V'"),
        (line_of('"2d"'), "rules[1].window: 2 days, 0:00:00 is out of range"),
        (line_of('"explode"'), "rules[1].action: unknown action 'explode'"),
        (line_of('"inr"'), "prepaid.currency: currency must be an ISO 4217 code"),
        (line_of('"25:00"'), "prepaid.protected.windows[0].start: expected a local time"),
        (line_of('"m7"'), "prepaid.accounts[0].meter: unknown meter 'm7'"),
        (line_of('"nobody"'), "notify.channels[0].from: not an e-mail address"),
        (line_of('"hunter2"'), "notify.channels[0].password:"),
        (line_of('"pager"'), "notify.routes[0].channels[0]: unknown channel 'pager'"),
        (line_of('"fire"'), "notify.routes[0].kinds[0]: unknown kind 'fire'"),
        (line_of('"huge"'), "notify.routes[0].min_severity: unknown severity 'huge'"),
    ]
    for line, message in expected:
        assert any(p.startswith(f"fleet.toml:{line}: {message}") for p in problems), (line, message, problems)
    assert any("give either a top-up 'table' or 'price_minor_per_kwh'" in p for p in problems)
    assert any("unknown weekday 'someday'" in p for p in problems)
    assert any("notify.channels[0].to: an e-mail channel needs at least one recipient" in p for p in problems)
    assert all("hunter2" not in p for p in problems)  # a literal password is never echoed
