"""Secret references: resolved from the environment, files and [secrets], never printed."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from metercom.errors import ConfigError, InputError
from metercom.service.config import ConfigValidationError, parse_config
from metercom.service.secrets import Secret, SecretRef, parse_secret_ref

SECRET = "S3cr3t-VALUE-do-not-print"
KEY_HEX = "000102030405060708090a0b0c0d0e0f"
KEY_HEX2 = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF"


def config_text(key_file: Path) -> str:
    return f"""
[secrets]
guek = "env:TEST_GUEK"
gak = "file:{key_file}"

[[lines]]
id = "bus"
url = "/dev/ttyUSB0"

[[meters]]
id = "m1"
protocol = "dlms"
line = "bus"
address = {{ client = 1, physical = 1 }}
authentication = "low"
password = "env:TEST_METER_PW"

[[meters]]
id = "m2"
protocol = "dlms"
line = "bus"
address = {{ client = 1, physical = 2 }}
authentication = "high-gmac"
keys = {{ encryption = "secret:guek", authentication = "secret:gak" }}
"""


def test_resolved_from_env_file_and_table(tmp_path: Path) -> None:
    key_file = tmp_path / "gak.hex"
    key_file.write_text(KEY_HEX2 + "\n")
    env = {"TEST_GUEK": KEY_HEX, "TEST_METER_PW": SECRET}
    config = parse_config(config_text(key_file), check_secrets=True, env=env)
    m1, m2 = config.meters
    assert m1.password is not None
    password = config.resolve_secret(m1.password, env=env)
    assert password.reveal() == SECRET
    assert password.origin == "env:TEST_METER_PW"
    enc = config.resolve_secret(m2.keys["encryption"], env=env)
    assert enc.reveal_key() == bytes(range(16))
    auth = config.resolve_secret(m2.keys["authentication"], env=env)
    assert auth.reveal_key() == bytes.fromhex(KEY_HEX2)
    assert auth.origin == f"secret:gak (file:{key_file})"
    # The bound reference resolves without the table too.
    assert m2.keys["encryption"].resolve(env=env).reveal() == KEY_HEX
    for shown in (repr(config), str(config), repr(password), str(password), repr(enc), f"{auth}"):
        assert SECRET not in shown
        assert KEY_HEX not in shown
        assert KEY_HEX2 not in shown
    assert repr(password) == "Secret(env:TEST_METER_PW, <hidden>)"


def test_unresolvable_secrets_are_problems_without_values(tmp_path: Path) -> None:
    key_file = tmp_path / "gak.hex"
    key_file.write_text("not hex at all " + SECRET)
    env = {"TEST_GUEK": KEY_HEX[:-2]}  # 15 bytes; the meter password is missing
    with pytest.raises(ConfigValidationError) as info:
        parse_config(config_text(key_file), check_secrets=True, env=env, source="f.toml")
    found = {p.key: p.message for p in info.value.problems}
    assert (
        found["meters[0].password"]
        == "secret env:TEST_METER_PW: environment variable TEST_METER_PW is not set"
    )
    assert "must be a key of 16 bytes (32 hex digits) or 32 bytes" in found["meters[1].keys.encryption"]
    assert "not a key written in hex digits (value not shown)" in found["meters[1].keys.authentication"]
    text = str(info.value)
    assert SECRET not in text
    assert KEY_HEX[:-2] not in text
    # Without check_secrets, references are only checked for their form.
    parse_config(config_text(key_file), env={})


def test_literal_secret_is_refused_and_not_echoed(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    text = f"""
[secrets]
shared = "{SECRET}"

[[lines]]
id = "bus"
url = "/dev/ttyUSB0"

[[meters]]
id = "m1"
protocol = "iec21"
line = "bus"
password = "{SECRET}"
"""
    with pytest.raises(ConfigValidationError) as info:
        parse_config(text)
    assert [p.key for p in info.value.problems] == ["secrets.shared", "meters[0].password"]
    assert SECRET not in str(info.value)
    assert SECRET not in repr(info.value.problems)
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("env:METER_PW", SecretRef("env", "METER_PW")),
        ("file:/etc/metercom/pw", SecretRef("file", "/etc/metercom/pw")),
        ("secret:fleet-key", SecretRef("secret", "fleet-key")),
    ],
)
def test_parse_refs(text: str, expected: SecretRef) -> None:
    ref = parse_secret_ref(text)
    assert ref == expected
    assert str(ref) == text
    assert repr(ref) == f"SecretRef({text!r})"


@pytest.mark.parametrize("text", ["hunter2", "env:", "env:1BAD", "file:relative", "secret:", "vault:x", ":"])
def test_bad_refs(text: str) -> None:
    with pytest.raises(InputError):
        parse_secret_ref(text)
    with pytest.raises(InputError, match="no chains"):
        parse_secret_ref("secret:x", allow_named=False)


def test_file_secret_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        SecretRef("file", str(tmp_path / "missing")).resolve()
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ConfigError, match="is empty"):
        SecretRef("file", str(empty)).resolve()
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="not UTF-8"):
        SecretRef("file", str(binary)).resolve()
    with pytest.raises(ConfigError, match="no entry 'x'"):
        SecretRef("secret", "x").resolve(secrets={})
    with pytest.raises(ConfigError, match="is empty"):
        SecretRef("env", "E").resolve(env={"E": ""})


def test_secret_equality_and_keys() -> None:
    a, b = Secret(KEY_HEX, origin="env:A"), Secret(KEY_HEX, origin="env:B")
    assert a == b
    assert hash(a) == hash(b)
    assert Secret(
        "00 11:22 33 44 55 66 77 88 99 aa bb cc dd ee ff", origin="x"
    ).reveal_key() == bytes.fromhex("00112233445566778899aabbccddeeff")
    with pytest.raises(InputError, match="16 bytes"):
        Secret("0011", origin="x").reveal_key(lengths=(16,))
