"""Fleet configuration: the example, every kind of validation problem with its line and key,
whole-file problem collection, key positions, diffs, and robustness against mangled files."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from metercom.errors import ConfigError
from metercom.model.obis import Obis
from metercom.service.config import (
    ConfigProblem,
    ConfigValidationError,
    DlmsAddress,
    FleetConfig,
    Iec21Address,
    IntervalTrigger,
    LineKind,
    ModbusAddress,
    Protocol,
    RetentionPolicy,
    diff_configs,
    load_config,
    parse_config,
)
from metercom.service.config_positions import format_path, scan_positions
from metercom.service.cron import CronTrigger

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"


def problems(text: str, **kwargs: object) -> tuple[ConfigProblem, ...]:
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text, source="t.toml", **kwargs)  # type: ignore[arg-type]
    return info.value.problems


def only_problem(text: str, **kwargs: object) -> ConfigProblem:
    found = problems(text, **kwargs)
    assert len(found) == 1, "\n".join(map(str, found))
    return found[0]


# -- the example ----------------------------------------------------------------------------------


def test_example_parses() -> None:
    config = load_config(EXAMPLE)
    assert config.source == str(EXAMPLE)
    assert len(config.sha256) == 64
    assert config.service.name == "north-substation"
    assert config.service.timezone == "Europe/Berlin"
    assert config.service.retention == RetentionPolicy(760, 760, 1100, 3650)
    assert [line.id for line in config.lines] == ["bus-a", "optical-1", "moxa-b", "modbus-gw", "meter:m-0006"]
    bus = config.line("bus-a")
    assert bus.kind is LineKind.RS485
    assert bus.max_conversations == 1
    assert bus.settings is not None
    assert (bus.settings.baud_rate, bus.settings.frame_format) == (9600, "8N1")
    assert bus.response_timeout_s == 2.0
    optical = config.line("optical-1")
    assert optical.settings is not None
    assert optical.settings.frame_format == "7E1"
    assert config.line("moxa-b").kind is LineKind.CONVERTER
    assert config.line("modbus-gw").max_conversations == 4
    own = config.line("meter:m-0006")
    assert own.implicit
    assert own.kind is LineKind.TCP
    assert own.url == "tcp://192.0.2.41:4059"

    m1 = config.meter("m-0001")
    assert m1.protocol is Protocol.DLMS
    assert m1.address == DlmsAddress(client=1, logical=1, physical=17)
    assert m1.authentication == "high-gmac"
    assert m1.security == "authenticated-encrypted"
    assert str(m1.keys["encryption"]) == "secret:fleet_guek"
    assert m1.keys["encryption"].via is not None
    assert str(m1.keys["encryption"].via) == "env:METERCOM_FLEET_GUEK"
    assert m1.device_profile == "generic"
    assert m1.tariff == "H0"
    m3 = config.meter("m-0003")
    assert m3.address == Iec21Address("71234567")
    assert m3.timezone == "Europe/Berlin"
    assert m3.password is not None
    assert str(m3.password) == "env:METERCOM_FEEDER_P1"
    assert config.meter("m-0004").quirks == {"long_form_ber": True, "max_pdu": 512}
    assert config.meter("m-0005").address == ModbusAddress(5)
    assert config.meter("m-0006").line == "meter:m-0006"

    assert config.group("residential").meters == ("m-0001", "m-0002")
    assert config.group("all").meters == tuple(f"m-000{i}" for i in range(1, 7))
    assert config.plan("billing").objects[0] == Obis.parse("1-0:1.8.0*255")
    load = config.plan("load-profile")
    assert load.profiles[0].obis == Obis.parse("1-0:99.1.0*255")
    assert load.profiles[0].history == timedelta(days=2)
    assert load.events[0].history == timedelta(days=7)

    daily = config.schedule("daily-billing")
    assert isinstance(daily.trigger, CronTrigger)
    assert str(daily.trigger.tz) == "Europe/Berlin"
    profiles = config.schedule("profiles").trigger
    assert profiles == IntervalTrigger(timedelta(minutes=15), timedelta(minutes=2))
    assert config.schedule("feeder-workdays").groups == ("feeders",)
    assert [m.id for m in config.schedule_meters("profiles")] == [
        "m-0001",
        "m-0002",
        "m-0004",
        "m-0005",
        "m-0006",
    ]
    assert [m.id for m in config.meters_on_line("bus-a")] == ["m-0001", "m-0002"]


def test_example_repr_shows_references_only(example_text: str) -> None:
    config = parse_config(example_text)
    text = repr(config)
    assert "secret:fleet_guek" in text
    assert "env:METERCOM_FEEDER_P1" in text


def test_minimal_config() -> None:
    config = parse_config("")
    assert config.lines == ()
    assert config.meters == ()
    assert config.service.timezone == "UTC"
    assert isinstance(config, FleetConfig)


# -- one test per kind of problem -----------------------------------------------------------------

BASE = """\
[[lines]]
id = "bus"
url = "serial:///dev/ttyUSB0"
type = "rs485"

[[meters]]
id = "m1"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 17 }

[[groups]]
id = "g"
meters = ["m1"]

[[plans]]
id = "p"
objects = ["1.8.0"]

[[schedules]]
id = "s"
groups = ["g"]
plan = "p"
cron = "0 * * * *"
"""


def test_base_is_valid() -> None:
    parse_config(BASE)


def line_of(text: str, needle: str) -> int:
    """The 1-based line where ``needle`` first starts in ``text``."""
    index = text.find(needle)
    assert index >= 0, f"{needle!r} not in text"
    return text.count("\n", 0, index) + 1


#: name -> (replace this, with this, the line (text on it) at fault, key, message pattern)
CASES: dict[str, tuple[str, str, str, str, str]] = {
    "toml syntax": ('id = "bus"', 'id = "bus', 'id = "bus', "", "TOML syntax"),
    "unknown top-level key": (
        "[[lines]]",
        "colour = 1\n[[lines]]",
        "colour",
        "colour",
        "unknown key 'colour'",
    ),
    "unknown key with suggestion": (
        "protocol = ",
        'protocoll = "x"\nprotocol = ',
        "protocoll",
        "meters[0].protocoll",
        "did you mean 'protocol'",
    ),
    "missing required key": (
        'url = "serial:///dev/ttyUSB0"\n',
        "",
        "[[lines]]",
        "lines[0]",
        "missing required key 'url'",
    ),
    "wrong type": (
        'type = "rs485"',
        'type = "rs485"\nresponse_timeout_s = "fast"',
        "response_timeout_s",
        "lines[0].response_timeout_s",
        "expected a number, got text",
    ),
    "duplicate meter id": (
        "[[groups]]",
        (
            '[[meters]]\nid = "m1"\nprotocol = "modbus"\nline = "bus"\naddress = { unit = 3 }\n'
            'device_profile = "pzem004t"\n\n[[groups]]'
        ),
        'id = "m1"\nprotocol = "modbus"',
        "meters[1].id",
        r"duplicate meter id 'm1' \(first defined at line 7\)",
    ),
    "invalid id": (
        "[[plans]]",
        '[[groups]]\nid = "g g"\n\n[[plans]]',
        'id = "g g"',
        "groups[1].id",
        "invalid group id 'g g'",
    ),
    "unknown line": (
        'line = "bus"',
        'line = "bsu"',
        'line = "bsu"',
        "meters[0].line",
        "unknown line 'bsu' \\(did you mean 'bus'\\?\\)",
    ),
    "unknown group in schedule": (
        'groups = ["g"]',
        'groups = ["g", "h"]',
        'groups = ["g", "h"]',
        "schedules[0].groups[1]",
        "unknown group 'h'",
    ),
    "unknown group in meter": (
        "address = { client = 1, physical = 17 }",
        'address = { client = 1, physical = 17 }\ngroups = ["nope"]',
        'groups = ["nope"]',
        "meters[0].groups[0]",
        "unknown group 'nope'",
    ),
    "unknown meter in group": (
        'meters = ["m1"]',
        'meters = ["m1", "m9"]',
        'meters = ["m1", "m9"]',
        "groups[0].meters[1]",
        "unknown meter 'm9'",
    ),
    "unknown plan": ('plan = "p"', 'plan = "q"', 'plan = "q"', "schedules[0].plan", "unknown plan 'q'"),
    "bad obis": (
        'objects = ["1.8.0"]',
        'objects = ["1.8.0", "1.8.x"]',
        "objects",
        "plans[0].objects[1]",
        "not an OBIS code: '1.8.x'",
    ),
    "duplicate obis": (
        'objects = ["1.8.0"]',
        'objects = ["1.8.0", "1-0:1.8.0*255"]',
        "objects",
        "plans[0].objects[1]",
        "listed twice",
    ),
    "bad cron": (
        'cron = "0 * * * *"',
        'cron = "0 25 * * *"',
        "cron",
        "schedules[0].cron",
        "hour 25 is out of range",
    ),
    "cron and every": (
        'cron = "0 * * * *"',
        'cron = "0 * * * *"\nevery = "5m"',
        "every",
        "schedules[0].every",
        "either cron or every",
    ),
    "bad duration": (
        'cron = "0 * * * *"',
        'every = "5 minutes"',
        "every",
        "schedules[0].every",
        "cannot read the duration",
    ),
    "bad url": (
        'url = "serial:///dev/ttyUSB0"',
        'url = "tcp://192.0.2.1"',
        "url",
        "lines[0].url",
        "port is missing",
    ),
    "url against type": (
        'url = "serial:///dev/ttyUSB0"',
        'url = "udp://192.0.2.1:4059"',
        'type = "rs485"',
        "lines[0].type",
        "cannot use the udp URL",
    ),
    "bad line type": (
        'type = "rs485"',
        'type = "rs-485"',
        "type",
        "lines[0].type",
        "unknown line type 'rs-485' \\(did you mean 'rs485'\\?\\)",
    ),
    "bus with parallel conversations": (
        'type = "rs485"',
        'type = "rs485"\nmax_conversations = 3',
        "max_conversations",
        "lines[0].max_conversations",
        "one conversation at a time",
    ),
    "bad line format": (
        'type = "rs485"',
        'type = "rs485"\nformat = "9X1"',
        "format",
        "lines[0].format",
        "not a character format",
    ),
    "same address on one bus": (
        "[[groups]]",
        (
            '[[meters]]\nid = "m2"\nprotocol = "dlms"\nline = "bus"\n'
            "address = { physical = 17, client = 16 }\n\n[[groups]]"
        ),
        "physical = 17, client = 16",
        "meters[1].address",
        "both have address .* on line 'bus'",
    ),
    "address out of range": (
        "client = 1, physical = 17",
        "client = 200, physical = 17",
        "client = 200",
        "meters[0].address.client",
        "200 is out of range 1..127",
    ),
    "address key of another protocol": (
        "client = 1, physical = 17",
        "client = 1, unit = 17",
        "unit = 17",
        "meters[0].address.unit",
        "unknown key 'unit'",
    ),
    "missing address": (
        "address = { client = 1, physical = 17 }",
        "",
        "[[meters]]",
        "meters[0].address",
        "needs address.client",
    ),
    "unknown protocol": (
        'protocol = "dlms"',
        'protocol = "dlsm"',
        "dlsm",
        "meters[0].protocol",
        "unknown protocol 'dlsm' \\(did you mean 'dlms'\\?\\)",
    ),
    "line and url": (
        'line = "bus"',
        'line = "bus"\nurl = "tcp://192.0.2.1:4059"',
        'url = "tcp',
        "meters[0].url",
        "either line .* or url",
    ),
    "two lines on one link": (
        "[[meters]]",
        '[[lines]]\nid = "bus2"\nurl = "/dev/ttyUSB0?baud=300"\n\n[[meters]]',
        '"/dev/ttyUSB0?baud=300"',
        "lines[1].url",
        "uses the same link as line 'bus'",
    ),
    "unknown device profile": (
        'line = "bus"',
        'line = "bus"\ndevice_profile = "generik"',
        "device_profile",
        "meters[0].device_profile",
        r"unknown DLMS device profile 'generik' \(did you mean 'generic'\?\); known: generic, india or ",
    ),
    "unknown modbus device profile": (
        "[[groups]]",
        (
            '[[meters]]\nid = "m5"\nprotocol = "modbus"\nline = "bus"\naddress = { unit = 5 }\n'
            'device_profile = "landis-gyr-e450"\n\n[[groups]]'
        ),
        'device_profile = "landis',
        "meters[1].device_profile",
        "unknown Modbus device profile 'landis-gyr-e450'; known: pmtr3, pzem004t or a register-map file",
    ),
    "modbus meter without device profile": (
        "[[groups]]",
        '[[meters]]\nid = "m5"\nprotocol = "modbus"\nline = "bus"\naddress = { unit = 5 }\n\n[[groups]]',
        '[[meters]]\nid = "m5"',
        "meters[1]",
        r"missing 'device_profile': a Modbus meter is read through its device profile \(known: pmtr3, ",
    ),
    "device profile on an iec21 meter": (
        "[[groups]]",
        '[[meters]]\nid = "m3"\nprotocol = "iec21"\nline = "bus"\ndevice_profile = "generic"\n\n[[groups]]',
        'device_profile = "generic"',
        "meters[1].device_profile",
        "IEC 62056-21 meters have no device profiles .*; remove device_profile",
    ),
    "auth needs password": (
        'line = "bus"',
        'line = "bus"\nauthentication = "low"',
        "[[meters]]",
        "meters[0]",
        "authentication 'low' needs a password",
    ),
    "security needs keys": (
        'line = "bus"',
        'line = "bus"\nsecurity = "encrypted"',
        "[[meters]]",
        "meters[0].keys",
        "security 'encrypted' needs keys.encryption",
    ),
    "unknown authentication": (
        'line = "bus"',
        'line = "bus"\nauthentication = "hls"',
        "authentication",
        "meters[0].authentication",
        "unknown authentication 'hls'",
    ),
    "literal secret": (
        'line = "bus"',
        'line = "bus"\nauthentication = "low"\npassword = "12345678"',
        "password",
        "meters[0].password",
        "a literal value is not accepted",
    ),
    "unknown secret name": (
        'line = "bus"',
        'line = "bus"\nauthentication = "low"\npassword = "secret:pw"',
        "password",
        "meters[0].password",
        "unknown secret 'pw'",
    ),
    "relative secret file": (
        'line = "bus"',
        'line = "bus"\nauthentication = "low"\npassword = "file:pw.txt"',
        "password",
        "meters[0].password",
        "absolute path",
    ),
    "keys on modbus": (
        "[[groups]]",
        (
            '[[meters]]\nid = "m5"\nprotocol = "modbus"\nline = "bus"\naddress = { unit = 5 }\n'
            'device_profile = "pzem004t"\nkeys = { encryption = "env:K" }\n\n[[groups]]'
        ),
        "keys = ",
        "meters[1].keys",
        "modbus meters have no keys",
    ),
    "bad timezone": (
        'cron = "0 * * * *"',
        'cron = "0 * * * *"\ntimezone = "Mars/Olympus"',
        "Mars",
        "schedules[0].timezone",
        "unknown time zone 'Mars/Olympus'",
    ),
    "bad quirk": (
        'line = "bus"',
        'line = "bus"\nquirks = { LongForm = true }',
        "quirks",
        "meters[0].quirks.LongForm",
        "lower_snake_case",
    ),
    "entries must be arrays": (
        '[[plans]]\nid = "p"',
        '[plans]\nid = "p"',
        "[plans]",
        "plans",
        "write each entry as a \\[\\[plans\\]\\] table",
    ),
    "format version": (
        "[[lines]]",
        "format_version = 2\n[[lines]]",
        "format_version",
        "format_version",
        "reads format_version 1",
    ),
    "retention range": (
        "[[lines]]",
        "[retention]\nreadings_days = 0\n\n[[lines]]",
        "readings_days",
        "retention.readings_days",
        "out of range 1..36600",
    ),
    "profile history": (
        'objects = ["1.8.0"]',
        'profiles = [\n  { obis = "99.1.0", history = "1d" },\n  { obis = "99.2.0", history = "30s" },\n]',
        '"99.2.0"',
        "plans[0].profiles[1].history",
        "between 1 minute and 3660 days",
    ),
    "schedule without groups": ('groups = ["g"]\n', "", "[[schedules]]", "schedules[0]", "missing 'groups'"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_problem_kinds(name: str) -> None:
    old, new, at, key, pattern = CASES[name]
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    problem = only_problem(text)
    assert problem.source == "t.toml"
    assert problem.line == line_of(text, at), str(problem)
    assert problem.key == key, str(problem)
    assert re.search(pattern, problem.message), str(problem)
    assert str(problem).startswith(f"t.toml:{problem.line}: ")


# -- device profiles and what a meter can switch -------------------------------------------------

FLEET = """\
[[lines]]
id = "bus"
url = "serial:///dev/ttyUSB0"
type = "rs485"

[[meters]]
id = "dl"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 17 }
device_profile = "generic"

[[meters]]
id = "dx"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 18 }

[[meters]]
id = "ie"
protocol = "iec21"
line = "bus"
address = { device = "7" }

[[meters]]
id = "pz"
protocol = "modbus"
line = "bus"
address = { unit = 3 }
device_profile = "pzem004t"

[[meters]]
id = "pm"
protocol = "modbus"
line = "bus"
address = { unit = 4 }
device_profile = "pmtr3"

[[rules]]
name = "r"
meters = ["dl", "dx", "pm"]
expression = "L1U > 253"
"""


def test_supply_targets_on_meters_that_can_switch() -> None:
    config = parse_config(FLEET)
    assert config.rules[0].targets == ("relay1",)
    # a quirk naming the profile's own disconnect control is fine
    parse_config(
        FLEET.replace(
            'device_profile = "generic"',
            'device_profile = "generic"\nquirks = { disconnect_control = "0-0:96.3.10*255" }',
        )
    )


@pytest.mark.parametrize(
    ("meters", "meter", "why"),
    [
        (
            '["dl", "ie"]',
            "ie",
            "meter 'ie' \\(IEC 62056-21\\) cannot switch its supply: IEC 62056-21 meters ",
        ),
        (
            '["pz"]',
            "pz",
            "meter 'pz' \\(pzem004t\\) cannot switch its supply: its register map has no load relay",
        ),
    ],
)
def test_supply_target_on_a_meter_that_cannot_switch(meters: str, meter: str, why: str) -> None:
    # without `targets` the default (relay1) is at fault: the rule's own line
    text = FLEET.replace('meters = ["dl", "dx", "pm"]', f"meters = {meters}")
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "[[rules]]"), "rules[0]"), str(problem)
    assert re.search(f"^target 'relay1': {why}", problem.message), str(problem)
    # with `targets`, the target itself
    text = text.replace('expression = "L1U', 'targets = ["supply"]\nexpression = "L1U')
    problem = only_problem(text)
    assert f"meter '{meter}'" in problem.message
    assert str(problem).startswith(
        f"t.toml:{line_of(text, 'targets')}: rules[0].targets[0]: target 'supply': "
    )


def test_supply_target_through_a_group_names_the_meter() -> None:
    text = FLEET.replace('meters = ["dl", "dx", "pm"]', 'group = "feeders"').replace(
        "[[rules]]", '[[groups]]\nid = "feeders"\nmeters = ["dl", "ie"]\n\n[[rules]]'
    )
    problem = only_problem(text)
    assert str(problem) == (
        f"t.toml:{line_of(text, '[[rules]]')}: rules[0]: target 'relay1': meter 'ie' (IEC 62056-21) cannot "
        "switch its supply: IEC 62056-21 meters have no remote disconnect"
    )


def test_dlms_disconnect_control_must_be_in_the_profile() -> None:
    text = FLEET.replace(
        'device_profile = "generic"',
        'device_profile = "generic"\nquirks = { disconnect_control = "0-0:96.3.11*255" }',
    )
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "[[rules]]"), "rules[0]")
    assert problem.message == (
        "target 'relay1': meter 'dl' (generic) cannot switch its supply: device profile 'generic' has no "
        "Disconnect control (class 70) at 0-0:96.3.11*255"
    )


def test_unknown_profile_is_reported_once_with_the_meter() -> None:
    """A rule on a meter whose profile is unknown does not add a second problem."""
    text = FLEET.replace('device_profile = "pmtr3"', 'device_profile = "pmtr4"')
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "pmtr4"), "meters[4].device_profile")
    assert "did you mean 'pmtr3'?" in problem.message


def test_modbus_profile_file(tmp_path: Path) -> None:
    from importlib import resources

    mine = tmp_path / "my-meter.toml"
    mine.write_text(
        (resources.files("metercom.model.profiles.modbus") / "pzem004t.toml").read_text(encoding="utf-8"),
        encoding="utf-8",
    )
    text = FLEET.replace('device_profile = "pzem004t"', f'device_profile = "{mine}"')
    assert parse_config(text).meter("pz").device_profile == str(mine)
    text = FLEET.replace('device_profile = "pzem004t"', f'device_profile = "{tmp_path / "gone.toml"}"')
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "gone.toml"), "meters[3].device_profile")
    assert problem.message.startswith(
        f"cannot load the Modbus device profile file '{tmp_path / 'gone.toml'}': "
    )


def test_dlms_profile_file(tmp_path: Path) -> None:
    """A DLMS object-list file (as `metercom simulate dlms --profile FILE` exports it) is loaded
    and validated; one without a disconnect control cannot take a supply rule."""
    from importlib import resources

    generic = (resources.files("metercom.model.profiles") / "generic.toml").read_text(encoding="utf-8")
    full = tmp_path / "full.toml"
    full.write_text(generic, encoding="utf-8")
    assert parse_config(FLEET.replace('"generic"', f'"{full}"')).meter("dl").device_profile == str(full)
    blocks = generic.split("\n[[objects]]\n")
    meterless = tmp_path / "no-switch.toml"
    meterless.write_text(
        "\n[[objects]]\n".join(b for b in blocks if '"0.0.96.3.10.255"' not in b), encoding="utf-8"
    )
    text = FLEET.replace('"generic"', f'"{meterless}"')
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "[[rules]]"), "rules[0]")
    assert problem.message.endswith("has no Disconnect control (class 70) at 0-0:96.3.10*255")
    broken = tmp_path / "broken.json"
    broken.write_text("{", encoding="utf-8")
    text = FLEET.replace('"generic"', f'"{broken}"')
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "broken.json"), "meters[0].device_profile")
    assert problem.message.startswith(f"cannot load the DLMS device profile file '{broken}': ")


def _prepaid(*meters: str) -> str:
    accounts = "".join(f'\n[[prepaid.accounts]]\naccount = "acc-{m}"\nmeter = "{m}"\n' for m in meters)
    return FLEET + '\n[prepaid]\ncurrency = "INR"\ntable = { 10 = 650 }\n' + accounts


def test_prepaid_accounts_on_meters_that_can_switch() -> None:
    """A DLMS meter whose profile has a disconnect control, one without a profile (nothing says
    it cannot) and a Modbus meter whose register map has a load relay take prepaid accounts."""
    config = parse_config(_prepaid("dl", "dx", "pm"))
    assert config.prepaid is not None
    assert [a.meter for a in config.prepaid.accounts] == ["dl", "dx", "pm"]


@pytest.mark.parametrize(
    ("meter", "label", "reason"),
    [
        ("ie", "IEC 62056-21", "IEC 62056-21 meters have no remote disconnect"),
        ("pz", "pzem004t", "its register map has no load relay"),
    ],
)
def test_prepaid_account_on_a_meter_that_cannot_switch(meter: str, label: str, reason: str) -> None:
    """Prepaid cuts the supply at zero credit: an account on a meter that cannot switch is refused
    at the account's meter; a configuration stored before this check still loads."""
    why = f"meter '{meter}' ({label}) cannot switch its supply: {reason}"
    text = _prepaid("dl", meter)
    problem = only_problem(text)
    at = line_of(text, f'meter = "{meter}"')
    assert str(problem) == (
        f"t.toml:{at}: prepaid.accounts[1].meter: prepaid cuts the supply at zero credit: {why}"
    )
    assert parse_config(text, check_profiles=False).prepaid is not None


def test_prepaid_account_on_a_dlms_profile_without_disconnect_control() -> None:
    text = _prepaid("dl").replace(
        'device_profile = "generic"',
        'device_profile = "generic"\nquirks = { disconnect_control = "0-0:96.3.11*255" }',
    )
    found = problems(text)
    # the rule on "dl" and the account on it, each at its own line
    assert [(p.line, p.key) for p in found] == [
        (line_of(text, "[[rules]]"), "rules[0]"),
        (line_of(text, 'meter = "dl"'), "prepaid.accounts[0].meter"),
    ], "\n".join(map(str, found))
    assert found[1].message.endswith("has no Disconnect control (class 70) at 0-0:96.3.11*255")


_READER = (
    "meter 'dl' (india) cannot switch its supply: its association 'reader' (client 32) may not "
    "invoke remote_disconnect/remote_reconnect of the Disconnect control at 0-0:96.3.10*255; "
    "association 'utility' (client 48) may"
)


_PREPAID = "prepaid cuts the supply at zero credit: "


def _india(text: str, client: int) -> str:
    """``dl`` on the india profile, read through the association of ``client``."""
    return text.replace(
        'address = { client = 1, physical = 17 }\ndevice_profile = "generic"',
        f'address = {{ client = {client}, physical = 17 }}\ndevice_profile = "india"',
    )


def test_supply_target_needs_an_association_that_may_switch() -> None:
    """The india reader login (client 32) may read the load switch but not operate it: a supply
    rule is refused at the rule (or its targets) and names the association that may; the
    utility login (client 48) may."""
    assert parse_config(_india(FLEET, 48)).rules[0].targets == ("relay1",)
    text = _india(FLEET, 32)
    problem = only_problem(text)
    assert str(problem) == f"t.toml:{line_of(text, '[[rules]]')}: rules[0]: target 'relay1': {_READER}"
    text = text.replace('expression = "L1U', 'targets = ["supply"]\nexpression = "L1U')
    problem = only_problem(text)
    assert str(problem) == (
        f"t.toml:{line_of(text, 'targets')}: rules[0].targets[0]: target 'supply': {_READER}"
    )
    # generic: the public client (16) may not, the management client (1) may
    problem = only_problem(FLEET.replace("client = 1, physical = 17", "client = 16, physical = 17"))
    assert problem.message == (
        "target 'relay1': meter 'dl' (generic) cannot switch its supply: its association 'public' "
        "(client 16) may not invoke remote_disconnect/remote_reconnect of the Disconnect control at "
        "0-0:96.3.10*255; association 'management' (client 1) may"
    )


def test_prepaid_account_needs_an_association_that_may_switch() -> None:
    text = _india(_prepaid("dl"), 32)
    account = 'meter = "dl"'
    found = problems(text)
    assert [str(p) for p in found] == [
        f"t.toml:{line_of(text, '[[rules]]')}: rules[0]: target 'relay1': {_READER}",
        f"t.toml:{line_of(text, account)}: prepaid.accounts[0].meter: {_PREPAID}{_READER}",
    ]
    assert parse_config(_india(_prepaid("dl"), 48)).prepaid is not None
    # a configuration stored before this check still loads
    assert parse_config(text, check_profiles=False).prepaid is not None


def test_client_address_without_association_cannot_switch() -> None:
    """A client address the profile has no association for (the meter refuses it: so does the
    simulator) may still read, but cannot take a supply rule or a prepaid account."""
    reading = FLEET.split("\n[[rules]]", maxsplit=1)[0]
    assert parse_config(_india(reading, 7)).meter("dl").device_profile == "india"
    text = _india(_prepaid("dl"), 7)
    account = 'meter = "dl"'
    found = problems(text)
    why = (
        "meter 'dl' (india) cannot switch its supply: its client address 7 matches no association "
        "of device profile 'india' (it has 'public' (client 16), 'reader' (client 32), "
        "'utility' (client 48))"
    )
    assert [str(p) for p in found] == [
        f"t.toml:{line_of(text, '[[rules]]')}: rules[0]: target 'relay1': {why}",
        f"t.toml:{line_of(text, account)}: prepaid.accounts[0].meter: {_PREPAID}{why}",
    ]


def test_profile_file_where_no_association_may_switch(tmp_path: Path) -> None:
    """An object list whose disconnect control no association may operate says so."""
    from importlib import resources

    generic = (resources.files("metercom.model.profiles") / "generic.toml").read_text(encoding="utf-8")
    marker = 'name = "Disconnect control"\n'
    assert generic.count(marker) == 1
    locked = tmp_path / "locked.toml"
    locked.write_text(
        generic.replace(marker, marker + 'access = { management = "read" }\n'), encoding="utf-8"
    )
    text = FLEET.replace('"generic"', f'"{locked}"')
    problem = only_problem(text)
    assert (problem.line, problem.key) == (line_of(text, "[[rules]]"), "rules[0]")
    assert problem.message.endswith(
        "its association 'management' (client 1) may not invoke remote_disconnect/remote_reconnect "
        "of the Disconnect control at 0-0:96.3.10*255; no association of the profile may"
    )


def test_example_rule_on_the_feeder_meter_is_refused(example_text: str) -> None:
    """The feeder meter (IEC 62056-21) has no relay: a supply rule on it is refused at its line."""
    text = example_text.replace(
        'group = "residential"                 # meters that can', 'group = "feeders" #'
    )
    problem = only_problem(text)
    assert problem.line == line_of(text, 'targets = ["relay1"]')
    assert problem.key == "rules[0].targets[0]"
    assert "meter 'm-0003' (IEC 62056-21) cannot switch its supply" in problem.message


def test_whole_file_collects_every_problem() -> None:
    text = (
        BASE.replace('line = "bus"', 'line = "bsu"')
        .replace('objects = ["1.8.0"]', 'objects = ["1.8.x"]')
        .replace('cron = "0 * * * *"', 'cron = "0 24 * * *"')
        .replace('type = "rs485"', 'type = "rs485"\nmax_conversations = 2')
        .replace('meters = ["m1"]', 'meters = ["m1", "m7"]')
    )
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text, source="fleet.toml")
    found = info.value.problems
    assert [p.key for p in found] == [
        "lines[0].max_conversations",
        "meters[0].line",
        "groups[0].meters[1]",
        "plans[0].objects[0]",
        "schedules[0].cron",
    ]
    assert [p.line for p in found] == sorted(p.line or 0 for p in found)
    message = str(info.value)
    assert message.startswith("fleet.toml: 5 problems in the configuration:\n")
    assert all(str(p) in message for p in found)
    assert isinstance(info.value, ConfigError)
    assert info.value.where == "fleet.toml"


def test_reference_to_invalid_entry_is_not_reported_twice() -> None:
    text = BASE.replace('url = "serial:///dev/ttyUSB0"', 'url = "ftp://nowhere"')
    # The line is still defined (its URL is what is wrong): meters may refer to it.
    assert [p.key for p in problems(text)] == ["lines[0].url"]
    text = BASE.replace(
        '[[plans]]\nid = "p"\nobjects = ["1.8.0"]', '[[plans]]\nid = "p p"\nobjects = ["1.8.0"]'
    )
    text = text.replace('plan = "p"', 'plan = "p p"')
    assert [p.key for p in problems(text)] == ["plans[0].id"]


def test_unreadable_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the configuration"):
        load_config(tmp_path / "missing.toml")
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b'name = "\xe9"')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(bad)


# -- positions --------------------------------------------------------------------------------------


def test_positions() -> None:
    text = '''\
title = """
[not.a.table]
fake = 1
"""
[server]
"quoted key" = 'x'
a.b.c = 1   # dotted

[[meters]]
id = "a"
address = { client = 1,
  physical = 2 }

[[meters]]
id = "b"
list = [
  "one",
  { x = 1, y = [1,
     2] },
]
[meters.sub]
z = 3

[[meters.nested]]
q = 1
[[meters.nested]]
q = 2
'''
    pos = scan_positions(text)
    assert pos.line_of(("title",)) == 1
    assert ("not",) not in pos
    assert ("fake",) not in pos
    assert pos.line_of(("server", "quoted key")) == 6
    assert pos.line_of(("server", "a", "b", "c")) == 7
    assert pos.line_of(("meters", 0)) == 9
    assert pos.line_of(("meters", 0, "address", "client")) == 11
    assert pos.line_of(("meters", 0, "address", "physical")) == 12
    assert pos.line_of(("meters", 1, "id")) == 15
    assert pos.line_of(("meters", 1, "list", 0)) == 17
    assert pos.line_of(("meters", 1, "list", 1, "y", 1)) == 19
    assert pos.line_of(("meters", 1, "sub", "z")) == 22
    assert pos.line_of(("meters", 1, "nested", 0, "q")) == 25
    assert pos.line_of(("meters", 1, "nested", 1, "q")) == 27
    assert pos.line_of(("meters", 1, "unknown", "deeper")) == 14  # falls back to the table
    assert pos.line_of(("nothing",)) is None
    assert format_path(("meters", 1, "list", 0)) == "meters[1].list[0]"
    assert format_path(("secrets", "a key")) == 'secrets."a key"'


# -- diffs ------------------------------------------------------------------------------------------


def test_diff_summary(example_text: str) -> None:
    old = parse_config(example_text)
    new_text = (
        example_text.replace('id = "m-0005"', 'id = "m-0007"')
        .replace('"m-0004", "m-0005"', '"m-0004", "m-0007"')
        .replace("physical = 18", "physical = 19")
        .replace('name = "north-substation"', 'name = "north"')
    )
    new = parse_config(new_text)
    diff = diff_configs(old, new)
    assert diff.sections["meters"].added == ("m-0007",)
    assert diff.sections["meters"].removed == ("m-0005",)
    assert diff.sections["meters"].changed == {"m-0002": ("address",)}
    assert diff.sections["groups"].changed["all"] == ("meters",)
    assert diff.settings == ("service",)
    summary = diff.summary()
    assert "meters +1 -1 ~1 (+m-0007; -m-0005; m-0002: address)" in summary
    assert "service changed" in summary
    assert not diff_configs(old, parse_config(example_text))
    assert diff_configs(old, parse_config(example_text)).summary() == "no changes"
    first = diff_configs(None, old)
    assert first.sections["meters"].added == tuple(m.id for m in old.meters)
    assert "+3 more" in first.summary() or "more" in first.summary()


# -- robustness -------------------------------------------------------------------------------------

_LINES = EXAMPLE.read_text(encoding="utf-8").splitlines()


@settings(max_examples=120, deadline=None)
@given(
    edits=st.lists(
        st.tuples(
            st.integers(0, len(_LINES) - 1),
            st.sampled_from(["drop", "dup", "swap", "garble", "num", "empty"]),
        ),
        min_size=1,
        max_size=4,
    )
)
def test_mangled_files_raise_only_config_errors(edits: list[tuple[int, str]]) -> None:
    lines = list(_LINES)
    for position, action in edits:
        index = position % len(lines)
        if action == "drop":
            del lines[index]
        elif action == "dup":
            lines.insert(index, lines[index])
        elif action == "swap":
            lines[index], lines[-1 - index] = lines[-1 - index], lines[index]
        elif action == "garble":
            lines[index] = lines[index].replace('"', "", 1)
        elif action == "num":
            lines[index] = re.sub(r'"[^"]*"', "42", lines[index], count=1)
        else:
            lines[index] = re.sub(r'"[^"]*"', '""', lines[index], count=1)
        if not lines:
            break
    found: tuple[ConfigProblem, ...] = ()
    try:
        parse_config("\n".join(lines))
    except ConfigValidationError as exc:
        found = exc.problems
        assert found, "a ConfigValidationError lists at least one problem"
    assert all(p.line is None or 1 <= p.line <= len(lines) + 1 for p in found)
