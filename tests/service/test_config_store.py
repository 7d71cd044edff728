"""Configuration versions: validate first, apply atomically, history, listeners, rollback."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.service.config import ConfigValidationError, parse_config
from metercom.service.config_store import ConfigChange, ConfigStore
from metercom.service.store import ConfigVersionConflict, Store

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "fleet.toml"


async def test_apply_history_and_notifications(
    store_url: str, example_text: str, vclock: VirtualClock
) -> None:
    async with await Store.open(store_url) as store:
        configs = ConfigStore(store)
        assert await configs.current() is None
        seen: list[ConfigChange] = []

        async def listener(change: ConfigChange) -> None:
            seen.append(change)

        unsubscribe = configs.subscribe(listener)
        v1 = await configs.apply(EXAMPLE, actor="alice")
        assert v1 == 1
        current = await configs.current()
        assert current is not None
        assert current.version == 1
        assert current.actor == "alice"
        assert current.source == str(EXAMPLE)
        assert current.applied_at == vclock.now()
        assert [m.id for m in await store.meters(active=True)] == [f"m-000{i}" for i in range(1, 7)]
        assert len(seen) == 1
        assert seen[0].previous is None
        assert seen[0].version == 1
        assert seen[0].diff.sections["meters"].added == tuple(f"m-000{i}" for i in range(1, 7))

        # The same text again is no new version.
        assert await configs.apply(example_text, actor="bob") == 1
        assert len(seen) == 1

        # An invalid file changes nothing at all.
        with pytest.raises(ConfigValidationError):
            await configs.apply(example_text.replace('line = "bus-a"', 'line = "bus-z"'), actor="bob")
        assert [v.version for v in await configs.history()] == [1]
        assert len(seen) == 1

        vclock.advance(3600)
        changed = example_text.replace('id = "m-0005"', 'id = "m-0009"').replace('"m-0005",', '"m-0009",')
        changed = changed.replace("physical = 18", "physical = 19")
        v2 = await configs.apply(changed, actor="bob", source="editor")
        assert v2 == 2
        assert seen[-1].previous is not None
        assert seen[-1].version == 2
        history = await configs.history()
        assert [(h.version, h.actor, h.source) for h in history] == [
            (2, "bob", "editor"),
            (1, "alice", str(EXAMPLE)),
        ]
        assert history[0].applied_at == vclock.now()
        assert "meters +1 -1 ~1 (+m-0009; -m-0005; m-0002: address)" in history[0].summary
        meters = {m.id: m for m in await store.meters()}
        assert not meters["m-0005"].active
        assert meters["m-0009"].active
        assert meters["m-0002"].address == "client=1;logical=1;physical=19"
        assert meters["m-0002"].changed_version == 2
        assert meters["m-0001"].changed_version == 1

        # Optimistic locking for editors.
        with pytest.raises(ConfigVersionConflict, match="version 2, not 1"):
            await configs.apply(example_text, actor="carol", expect_version=1)

        # Rollback is a new version with the old text.
        unsubscribe()
        assert await configs.rollback(1, actor="carol") == 3
        assert await configs.text(3) == await configs.text(1) == example_text
        assert len(seen) == 2
        audit = await store.audit_log(action="config.apply")
        assert [a.subject for a in audit] == ["config version 1", "config version 2", "config version 3"]
        assert (await store.check_integrity()).ok


async def test_listener_failure_does_not_undo_or_stop(
    tmp_path: Path, example_text: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        configs = ConfigStore(store)
        calls: list[str] = []

        async def broken(change: ConfigChange) -> None:
            calls.append("broken")
            raise RuntimeError("listener bug")

        async def healthy(change: ConfigChange) -> None:
            calls.append("healthy")

        configs.subscribe(broken)
        configs.subscribe(healthy)
        with caplog.at_level(logging.ERROR, logger="metercom.service.config_store"):
            assert await configs.apply(example_text, actor="a") == 1
        assert calls == ["broken", "healthy"]
        assert "configuration listener" in caplog.text
        assert "listener bug" in caplog.text
        assert (await configs.current()) is not None


async def test_refresh_picks_up_versions_applied_elsewhere(tmp_path: Path, example_text: str) -> None:
    path = tmp_path / "shared.db"
    async with await Store.open(path) as ours, await Store.open(path) as theirs:
        local = ConfigStore(ours)
        remote = ConfigStore(theirs)
        seen: list[int] = []

        async def listener(change: ConfigChange) -> None:
            seen.append(change.version)

        local.subscribe(listener)
        assert await local.refresh() is None
        await remote.apply(example_text, actor="cli")
        refreshed = await local.refresh()
        assert refreshed is not None
        assert refreshed.version == 1
        assert seen == [1]
        assert (await local.refresh()) is not None
        assert seen == [1]
        await remote.apply(example_text.replace('name = "north-substation"', 'name = "n"'), actor="cli")
        await local.refresh()
        assert seen == [1, 2]


async def test_apply_checks_profiles_and_secrets(tmp_path: Path, example_text: str) -> None:
    async with await Store.open(tmp_path / "s.db") as store:
        strict = ConfigStore(store, check_secrets=True, env={})
        with pytest.raises(ConfigValidationError) as info:
            await strict.apply(example_text.replace('"pzem004t"', '"pzem-004t"'), actor="a")
        keys = {p.key for p in info.value.problems}
        assert "meters[4].device_profile" in keys
        with pytest.raises(ConfigValidationError) as info:
            strict.validate(example_text.replace('"pzem004t"', '"pzem-004t"'), source="f.toml")
        assert any(
            str(p).startswith("f.toml:") and "unknown Modbus device profile 'pzem-004t'" in p.message
            for p in info.value.problems
        )
        assert "meters[2].password" in keys
        assert await store.config_version() is None
        with pytest.raises(ConfigError, match="cannot read the configuration"):
            await strict.apply(tmp_path / "missing.toml", actor="a")
        with pytest.raises(ConfigError, match="looks like a file name"):
            await strict.apply("fleet.toml", actor="a")


async def test_a_version_stored_by_an_earlier_release_is_still_read(
    tmp_path: Path, example_text: str
) -> None:
    """A stored version is not validated again against today's profiles and switching rules: a
    version applied before they were checked (unknown profiles, a supply rule on an IEC 62056-21
    meter) stays readable, and the next apply replaces it."""
    old = example_text.replace('device_profile = "generic"', 'device_profile = "landis-gyr-e450"').replace(
        'group = "residential"                 # meters', 'group = "feeders"  # meters', 1
    )
    with pytest.raises(ConfigValidationError) as info:
        parse_config(old, source="old.toml")
    assert {p.key for p in info.value.problems} == {
        "meters[0].device_profile",
        "meters[1].device_profile",
        "meters[3].device_profile",
        "rules[0].targets[0]",
    }
    async with await Store.open(tmp_path / "s.db") as store:
        await store.apply_config_version(
            text=old, sha256="0" * 64, source="old.toml", actor="earlier", summary="", meters=[]
        )
        configs = ConfigStore(store)
        current = await configs.current()
        assert current is not None
        assert current.config.meter("m-0001").device_profile == "landis-gyr-e450"
        assert current.config.rules[0].meters == ("m-0003",)
        assert await configs.apply(example_text, actor="a") == 2
        current = await configs.current()
        assert current is not None
        assert current.config.meter("m-0001").device_profile == "generic"
