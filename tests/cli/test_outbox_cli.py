"""``metercom outbox status`` and ``metercom outbox unregister``: the backlog per sink, the flag
of sinks no longer configured, and dropping one (refused while configured, confirmed, audited)."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from metercom.cli import outbox as outbox_cli
from metercom.cli.main import main
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.config_store import ConfigStore
from metercom.service.store import Store

FLEET = """
[[lines]]
id = "probe"
url = "/dev/ttyUSB0"
type = "serial"

[[meters]]
id = "m-1"
protocol = "iec21"
line = "probe"
"""
CENTRAL = """
[[upstreams]]
id = "central"
kind = "http"
url = "https://central.example/batches"
secret = "env:CENTRAL_SECRET"
"""
OLD = """
[[upstreams]]
id = "old"
kind = "http"
url = "https://old.example/batches"
secret = "env:OLD_SECRET"
"""
WHEN = datetime(2026, 1, 1, tzinfo=UTC)


async def _prepare(store_path: Path) -> None:
    """Version 1 with both upstreams in force, both registered, three readings pending for each."""
    store = await Store.open(store_path)
    try:
        await ConfigStore(store).apply(FLEET + CENTRAL + OLD, actor="test")
        await store.register_outbox_sinks(["central", "old"])
        readings = [Reading(Obis.parse("1.8.0"), Decimal(n), "kWh", WHEN.replace(hour=n)) for n in range(3)]
        await store.save_readings("m-1", readings)
    finally:
        await store.close()


async def _apply(config: Path, store_path: Path) -> None:
    store = await Store.open(store_path)
    try:
        await ConfigStore(store).apply(config, actor="test")  # ... and from the version in force
    finally:
        await store.close()


async def _audit(store_path: Path) -> list[tuple[str, str, str, object]]:
    store = await Store.open(store_path)
    try:
        entries = await store.audit_log(action="outbox.*", limit=100)
    finally:
        await store.close()
    return [(e.actor, e.action, e.subject, e.detail) for e in entries]


def _status(capsys: pytest.CaptureFixture[str], config: Path) -> dict[str, dict[str, object]]:
    assert main(["outbox", "status", "--config", str(config), "--json"]) == 0
    return {row["sink"]: row for row in json.loads(capsys.readouterr().out)}


def test_status_flags_a_removed_sink_and_unregister_drops_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, store_path = tmp_path / "fleet.toml", tmp_path / "fleet.db"
    asyncio.run(_prepare(store_path))
    config.write_text(FLEET + CENTRAL, encoding="utf-8")  # "old" removed from the file ...
    monkeypatch.setattr(outbox_cli, "_interactive", lambda: False)

    rows = _status(capsys, config)
    assert set(rows) == {"central", "old"}
    assert rows["central"]["pending"] == rows["old"]["pending"] == 3
    assert rows["old"]["oldest_age_s"] >= 0
    assert (rows["central"]["configured"], rows["central"]["registered_not_configured"]) == (True, False)
    # Not in the file, but still in the version in force: the service would forward to it.
    assert (rows["old"]["configured"], rows["old"]["in_force"]) == (False, True)
    assert rows["old"]["registered_not_configured"] is False
    assert main(["outbox", "unregister", "old", "--config", str(config), "--yes"]) == 2
    assert "still configured (in the configuration in force)" in capsys.readouterr().err
    assert main(["outbox", "unregister", "central", "--config", str(config), "--yes"]) == 2
    assert "still configured (in the configuration file)" in capsys.readouterr().err
    assert main(["outbox", "unregister", "nope", "--config", str(config), "--yes"]) == 2
    assert "no sink 'nope' is registered" in capsys.readouterr().err

    asyncio.run(_apply(config, store_path))
    assert main(["outbox", "status", "--config", str(config)]) == 0
    text = capsys.readouterr().out
    assert "registered but not configured: old" in text
    assert _status(capsys, config)["old"]["registered_not_configured"] is True

    # Not on a terminal and no --yes: refused, nothing changes.
    assert main(["outbox", "unregister", "old", "--config", str(config)]) == 2
    assert "give --yes" in capsys.readouterr().err
    assert _status(capsys, config)["old"]["pending"] == 3

    assert main(["outbox", "unregister", "old", "--config", str(config), "--yes"]) == 0
    assert "3 pending entries dropped" in capsys.readouterr().out
    rows = _status(capsys, config)
    assert set(rows) == {"central"}
    assert rows["central"]["pending"] == 3  # the other sink keeps its backlog
    assert asyncio.run(_audit(store_path)) == [
        (outbox_cli.os_user(), "outbox.unregister", "sink old", {"dropped": 3})
    ]


def test_unregister_asks_on_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config, store_path = tmp_path / "fleet.toml", tmp_path / "fleet.db"
    asyncio.run(_prepare(store_path))
    config.write_text(FLEET + CENTRAL, encoding="utf-8")  # "old" removed from the file ...
    asyncio.run(_apply(config, store_path))
    monkeypatch.setattr(outbox_cli, "_interactive", lambda: True)
    questions: list[str] = []

    def answer(reply: str) -> None:
        def ask(question: str) -> str:
            questions.append(question)
            return reply

        monkeypatch.setattr("builtins.input", ask)

    answer("n")
    assert main(["outbox", "unregister", "old", "--config", str(config)]) == 1
    assert "nothing changed" in capsys.readouterr().err
    assert "drop its 3 pending entries" in questions[0]
    assert _status(capsys, config)["old"]["pending"] == 3
    answer("y")
    assert main(["outbox", "unregister", "old", "--config", str(config)]) == 0
    assert "3 pending entries dropped" in capsys.readouterr().out
    assert len(questions) == 2
    assert set(_status(capsys, config)) == {"central"}


def test_status_without_a_store_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "fleet.toml"
    config.write_text(FLEET, encoding="utf-8")
    assert main(["outbox", "status", "--config", str(config)]) == 2
    assert "there is no store" in capsys.readouterr().err
