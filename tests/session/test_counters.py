from __future__ import annotations

from pathlib import Path

import pytest

from metercom.codec.dlms.security import OWN_COUNTER, SecurityContext
from metercom.errors import StoreError
from metercom.session.counters import FileCounterStore, default_counter_path

EK = bytes(range(16))
AK = bytes(range(16, 32))


def _context(store: FileCounterStore) -> SecurityContext:
    return SecurityContext(
        system_title=b"MMM00001", encryption_key=EK, authentication_key=AK, counter_store=store
    )


def test_counters_survive_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.json"
    first = SecurityContext(
        system_title=b"MMM00001",
        encryption_key=EK,
        authentication_key=AK,
        counter_store=FileCounterStore(path),
    )
    used = [first.next_counter() for _ in range(5)]
    again = SecurityContext(
        system_title=b"MMM00001",
        encryption_key=EK,
        authentication_key=AK,
        counter_store=FileCounterStore(path),
    )
    assert again.next_counter() > max(used)
    assert FileCounterStore(path).load(OWN_COUNTER) is not None
    assert not path.with_name("c.json.tmp").exists()


def test_corrupt_or_unwritable_files_are_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(StoreError, match="corrupt"):
        FileCounterStore(bad)
    bad.write_text('{"own": -1}')
    with pytest.raises(StoreError, match="map of names"):
        FileCounterStore(bad)
    blocked = tmp_path / "file"
    blocked.write_text("")
    with pytest.raises(StoreError, match="cannot read"):
        FileCounterStore(blocked / "sub" / "c.json")
    store = FileCounterStore(tmp_path / "c.json")
    (tmp_path / "c.json.tmp").mkdir()  # the temporary file cannot be written
    with pytest.raises(StoreError, match="cannot save"):
        store.save(OWN_COUNTER, 3)
    assert store.load(OWN_COUNTER) is None


def test_default_path(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    path = default_counter_path(b"MMM00001", "tcp://192.0.2.1:4059?x=y")
    assert path.parent == tmp_path / "metercom" / "dlms-counters"
    assert path.name == "4d4d4d3030303031@tcp_192.0.2.1_4059_x_y.json"
