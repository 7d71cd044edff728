"""The store, on SQLite and on PostgreSQL: migrations, idempotent upserts, markers in the same
transaction, commands, audit, retention, integrity, and error translation."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import insert, inspect, text

from metercom.clock import VirtualClock
from metercom.errors import InputError, StoreError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.config_model import RetentionPolicy
from metercom.service.store import (
    CommandNotFoundError,
    CommandState,
    CommandStateError,
    ConfigVersionConflict,
    Marker,
    MeterEvent,
    MeterRecord,
    ProfileRow,
    Store,
    WriteResult,
    migrate,
)
from metercom.service.store.tables import (
    VERSION_TABLE,
    collection_markers,
    commands,
    config_versions,
    metadata,
)

E_IMPORT = Obis.parse("1.8.0")
E_EXPORT = Obis.parse("2.8.0")
LOAD = Obis.parse("1-0:99.1.0*255")
EVENT_LOG = Obis.parse("0-0:99.98.0*255")
T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def open_with_meters(url: str, *ids: str) -> Store:
    store = await Store.open(url)
    records = [
        MeterRecord(i, "dlms", "bus", f"client=1;physical={n}") for n, i in enumerate(ids or ("m1", "m2"))
    ]
    await store.apply_config_version(
        text="# test", sha256="0" * 64, source="test", actor="tester", summary="meters", meters=records
    )
    return store


def reading(obis: Obis, value: Any, minutes: int = 0, unit: str | None = "kWh") -> Reading:
    return Reading(obis, value, unit, T0 + timedelta(minutes=minutes))


# -- migrations -------------------------------------------------------------------------------------


async def test_migrations_from_empty(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        assert await store.schema_revision() == migrate.head_revision() == "r0004"

        def check(conn: Any) -> tuple[list[Any], set[str]]:
            context = MigrationContext.configure(conn, opts={"version_table": VERSION_TABLE})
            return compare_metadata(context, metadata), set(inspect(conn).get_table_names())

        diffs, tables = await store._run("compare", check, write=False)
        assert diffs == [], diffs
        assert {t.name for t in metadata.sorted_tables} | {VERSION_TABLE} == tables
        report = await store.check_integrity()
        assert report.ok, report.problems
        assert "schema revision" in report.checks
        # Down to nothing and up again.
        await store._run("downgrade", lambda conn: migrate.downgrade(conn, "base"))
        assert await store.schema_revision() is None
        await store._run("upgrade", migrate.upgrade)
        assert await store.schema_revision() == migrate.head_revision()
    # Opening again finds the schema current and changes nothing.
    async with await Store.open(store_url) as store:
        assert await store.schema_revision() == migrate.head_revision()


async def test_unknown_schema_revision_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    async with await Store.open(path) as store:
        await store._run(
            "fake",
            lambda conn: conn.execute(text(f"UPDATE {VERSION_TABLE} SET version_num = 'r9999'")),  # noqa: S608
        )
    with pytest.raises(StoreError, match="revision 'r9999', which this metercom does not know"):
        await Store.open(path)


# -- readings ---------------------------------------------------------------------------------------


async def test_readings_are_idempotent_upserts(store_url: str, vclock: VirtualClock) -> None:
    async with await open_with_meters(store_url) as store:
        batch = [reading(E_IMPORT, Decimal("1234.50")), reading(E_EXPORT, Decimal(7))]
        assert await store.save_readings("m1", batch) == WriteResult(inserted=2)
        vclock.advance(60)
        assert await store.save_readings("m1", batch) == WriteResult(unchanged=2)
        vclock.advance(60)
        changed = [reading(E_IMPORT, Decimal("1234.60")), reading(E_EXPORT, Decimal(7))]
        assert await store.save_readings("m1", changed, actor="recovery") == WriteResult(
            updated=1, unchanged=1
        )
        stored = await store.readings("m1")
        assert [(r.obis, r.value, r.revision) for r in stored] == [
            ("1-0:1.8.0*255", Decimal("1234.60"), 1),
            ("1-0:2.8.0*255", Decimal(7), 0),
        ]
        assert stored[0].received_at == vclock.now()  # the update refreshed it
        assert stored[1].received_at == vclock.now() - timedelta(seconds=120)
        audit = await store.audit_log(action="reading.revised")
        assert len(audit) == 1
        entry = audit[0]
        assert entry.actor == "recovery"
        assert entry.subject == "m1 1-0:1.8.0*255 2026-01-01T00:00:00+00:00"
        assert entry.detail is not None
        assert entry.detail["old"]["value_text"] == "1234.50"
        assert entry.detail["new"]["value_text"] == "1234.60"
        # Exact decimal text is kept ("1234.50", not 1234.5).
        assert str((await store.readings("m1", obis=E_EXPORT))[0].value) == "7"


async def test_value_kinds_and_times_round_trip(store_url: str) -> None:
    cest = timezone(timedelta(hours=2))
    async with await open_with_meters(store_url) as store:
        items = [
            Reading(Obis.parse("0.9.1"), datetime(2026, 1, 1, 12, 30, tzinfo=cest), None, T0),
            Reading(Obis.parse("C.1.0"), "LGZ1234567", None, T0),
            Reading(Obis.parse("0-0:42.0.0*255"), b"\x01\x02\xff", None, T0),
            Reading(Obis.parse("0-0:96.3.10*255"), True, None, T0),
            Reading(Obis.parse("1.8.1"), Decimal("0.000100"), "kWh", T0),
            Reading(Obis.parse("1.8.2"), None, "kWh", T0),
            Reading(None, Decimal(3), None, T0, address="F.F"),
        ]
        await store.save_readings("m1", items)
        got = {r.obis: r for r in await store.readings("m1")}
        assert got["1-0:0.9.1*255"].value == datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
        assert got["1-0:96.1.0*255"].value == "LGZ1234567"
        assert got["0-0:42.0.0*255"].value == b"\x01\x02\xff"
        assert got["0-0:96.3.10*255"].value is True
        assert str(got["1-0:1.8.1*255"].value) == "0.000100"
        assert got["1-0:1.8.2*255"].value is None
        assert got["F.F"].value == Decimal(3)
        # Capture times are normalised to UTC: the same instant in another zone is the same key.
        local = Reading(E_IMPORT, Decimal(1), "kWh", datetime(2026, 1, 1, 2, 0, tzinfo=cest))
        utc = Reading(E_IMPORT, Decimal(1), "kWh", datetime(2026, 1, 1, 0, 0, tzinfo=UTC))
        assert await store.save_readings("m1", [local]) == WriteResult(inserted=1)
        assert await store.save_readings("m1", [utc]) == WriteResult(unchanged=1)
        [row] = await store.readings("m1", obis=E_IMPORT)
        assert row.capture_time == T0
        assert row.capture_time.tzinfo is UTC
        # Range queries: since inclusive, until exclusive.
        await store.save_readings("m1", [reading(E_IMPORT, Decimal(n), n) for n in range(1, 5)])
        window = await store.readings(
            "m1", obis=E_IMPORT, since=T0 + timedelta(minutes=1), until=T0 + timedelta(minutes=3)
        )
        assert [r.value for r in window] == [Decimal(1), Decimal(2)]


async def test_readings_input_errors_write_nothing(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        naive = Reading(E_IMPORT, Decimal(1), "kWh", datetime(2026, 1, 1))  # noqa: DTZ001
        with pytest.raises(InputError, match="timezone-aware"):
            await store.save_readings("m1", [reading(E_EXPORT, Decimal(1)), naive])
        with pytest.raises(InputError, match="no capture time"):
            await store.save_readings("m1", [Reading(E_IMPORT, Decimal(1))])
        with pytest.raises(InputError, match="Decimal, not float"):
            await store.save_readings("m1", [reading(E_IMPORT, 1.5)])
        with pytest.raises(InputError, match="unknown meter 'nope'"):
            await store.save_readings("nope", [reading(E_IMPORT, Decimal(1))])
        assert await store.readings("m1") == []
        # capture_time= stands in for readings without a time of their own.
        result = await store.save_readings("m1", [Reading(E_IMPORT, Decimal(1))], capture_time=T0)
        assert result.inserted == 1


# -- markers ----------------------------------------------------------------------------------------


async def test_marker_lands_with_its_readings(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        rows = [reading(E_IMPORT, Decimal(n), 15 * n) for n in range(4)]
        await store.save_readings("m1", rows, marker=Marker(E_IMPORT, T0 + timedelta(minutes=45)))
        assert await store.marker("m1", E_IMPORT) == T0 + timedelta(minutes=45)
        # Markers never move back.
        await store.save_readings("m1", rows[:1], marker=Marker(E_IMPORT, T0))
        assert await store.markers("m1") == {"1-0:1.8.0*255": T0 + timedelta(minutes=45)}
        # A marker ahead of the stored data is refused, and nothing of the call lands.
        ahead = Marker(E_IMPORT, T0 + timedelta(hours=2))
        with pytest.raises(InputError, match="ahead of the newest stored reading"):
            await store.save_readings("m1", [reading(E_IMPORT, Decimal(9), 60)], marker=ahead)
        assert len(await store.readings("m1")) == 4
        assert await store.marker("m1", E_IMPORT) == T0 + timedelta(minutes=45)
        # reset_marker moves it back on purpose (audited) or removes it.
        await store.reset_marker("m1", E_IMPORT, actor="operator", to=T0)
        assert await store.marker("m1", E_IMPORT) == T0
        await store.reset_marker("m1", E_IMPORT, actor="operator")
        assert await store.marker("m1", E_IMPORT) is None
        assert len(await store.audit_log(action="marker.reset")) == 2


async def test_failure_between_readings_and_marker_writes_neither(
    store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with await open_with_meters(store_url) as store:
        calls: list[str] = []

        def fail(*args: object, **kwargs: object) -> None:
            calls.append("marker")
            raise RuntimeError("injected failure after the readings were written")

        monkeypatch.setattr(Store, "_write_marker", fail)
        rows = [reading(E_IMPORT, Decimal(n), 15 * n) for n in range(3)]
        with pytest.raises(RuntimeError, match="injected"):
            await store.save_readings("m1", rows, marker=Marker(E_IMPORT, T0 + timedelta(minutes=30)))
        assert calls == ["marker"]  # the readings had been written in the transaction
        assert await store.readings("m1") == []
        assert await store.markers("m1") == {}
        monkeypatch.undo()
        result = await store.save_readings("m1", rows, marker=Marker(E_IMPORT, T0 + timedelta(minutes=30)))
        assert result.inserted == 3
        assert await store.marker("m1", E_IMPORT) == T0 + timedelta(minutes=30)


# -- profile rows and events ------------------------------------------------------------------------


async def test_profile_rows(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        rows = [
            ProfileRow(
                T0 + timedelta(minutes=15 * n),
                {"1-0:1.8.0*255": Decimal(100 + n), "1-0:1.29.0*255": Decimal("0.25")},
                status="ok" if n else "power-up",
                units={"1-0:1.8.0*255": "kWh", "1-0:1.29.0*255": "kWh"},
            )
            for n in range(4)
        ]
        marker = Marker(LOAD, rows[-1].capture_time)
        assert await store.save_profile_rows("m1", LOAD, rows, marker=marker) == WriteResult(inserted=4)
        assert await store.save_profile_rows("m1", LOAD, rows) == WriteResult(unchanged=4)
        fixed = ProfileRow(rows[1].capture_time, {"1-0:1.8.0*255": Decimal(999)}, status="corrected")
        assert await store.save_profile_rows("m1", LOAD, [fixed]) == WriteResult(updated=1)
        stored = await store.profile_rows("m1", LOAD)
        assert [r.status for r in stored] == ["power-up", "corrected", "ok", "ok"]
        assert stored[0].values == {"1-0:1.8.0*255": Decimal(100), "1-0:1.29.0*255": Decimal("0.25")}
        assert stored[0].units["1-0:1.8.0*255"] == "kWh"
        assert stored[1].revision == 1
        assert stored[1].values == {"1-0:1.8.0*255": Decimal(999)}
        assert await store.marker("m1", LOAD) == rows[-1].capture_time
        assert len(await store.audit_log(action="profile_row.revised")) == 1
        assert await store.profile_rows("m1", LOAD, since=rows[2].capture_time, limit=1) == [stored[2]]


async def test_events(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        log = str(EVENT_LOG)
        events = [
            MeterEvent(T0, 1, log, "power down"),
            MeterEvent(T0 + timedelta(minutes=5), 2, log, "power up", {"duration_s": 300}),
            MeterEvent(T0 + timedelta(minutes=5), 47, log, "clock adjusted"),
        ]
        assert await store.save_events("m1", events, marker=Marker(EVENT_LOG, T0 + timedelta(minutes=5))) == (
            WriteResult(inserted=3)
        )
        assert await store.save_events("m1", events) == WriteResult(unchanged=3)
        assert await store.save_events("m1", [MeterEvent(T0, 1, log, "power failure")]) == WriteResult(
            updated=1
        )
        stored = await store.events("m1", log=EVENT_LOG)
        assert [(e.code, e.description) for e in stored] == [
            (1, "power failure"),
            (2, "power up"),
            (47, "clock adjusted"),
        ]
        assert stored[1].data == {"duration_s": 300}
        assert await store.marker("m1", EVENT_LOG) == T0 + timedelta(minutes=5)
        assert await store.events("m2") == []


# -- commands ---------------------------------------------------------------------------------------


async def test_command_state_machine(store_url: str, vclock: VirtualClock) -> None:
    async with await open_with_meters(store_url) as store:
        cmd, created = await store.request_command(
            "disconnect",
            requested_by="alice",
            meter_id="m1",
            args={"reason": "unpaid"},
            idempotency_key="req-1",
        )
        assert created
        assert cmd.state is CommandState.REQUESTED
        assert cmd.requested_at == vclock.now()
        # The same request again (a retried HTTP call) returns the same command.
        again, created = await store.request_command(
            "disconnect",
            requested_by="alice",
            meter_id="m1",
            args={"reason": "unpaid"},
            idempotency_key="req-1",
        )
        assert not created
        assert again.id == cmd.id
        with pytest.raises(CommandStateError, match="already used for a different command"):
            await store.request_command(
                "reconnect", requested_by="alice", meter_id="m1", idempotency_key="req-1"
            )
        vclock.advance(5)
        running = await store.start_command(cmd.id)
        assert running.state is CommandState.RUNNING
        assert running.started_at == vclock.now()
        with pytest.raises(CommandStateError, match="is running, not requested") as info:
            await store.start_command(cmd.id)
        assert info.value.state == "running"
        vclock.advance(5)
        done = await store.finish_command(cmd.id, succeeded=True, result={"relay": "open"})
        assert done.state is CommandState.SUCCEEDED
        assert done.result == {"relay": "open"}
        assert done.finished_at == vclock.now()
        with pytest.raises(CommandStateError):
            await store.finish_command(cmd.id, succeeded=False)
        other, _ = await store.request_command("time_sync", requested_by="scheduler", meter_id="m2")
        cancelled = await store.cancel_command(other.id, actor="bob", reason="meter replaced")
        assert cancelled.state is CommandState.FAILED
        assert cancelled.error == "meter replaced"
        with pytest.raises(CommandNotFoundError):
            await store.start_command("nope")
        with pytest.raises(CommandNotFoundError):
            await store.command("nope")
        assert [c.id for c in await store.commands(state=CommandState.FAILED)] == [other.id]
        assert [c.id for c in await store.commands(meter_id="m1")] == [cmd.id]
        actions = [(e.action, e.actor) for e in await store.audit_log(action="command.*")]
        assert actions == [
            ("command.requested", "alice"),
            ("command.running", "executor"),
            ("command.succeeded", "executor"),
            ("command.requested", "scheduler"),
            ("command.failed", "bob"),
        ]
        assert (await store.check_integrity()).ok


async def test_command_runs_at_most_once_under_contention(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        cmd, _ = await store.request_command("read", requested_by="api", meter_id="m1")
        results = await asyncio.gather(
            *(store.start_command(cmd.id) for _ in range(6)), return_exceptions=True
        )
        winners = [r for r in results if not isinstance(r, BaseException)]
        losers = [r for r in results if isinstance(r, CommandStateError)]
        assert len(winners) == 1
        assert len(losers) == 5


# -- audit, config versions -------------------------------------------------------------------------


async def test_audit_log(store_url: str, vclock: VirtualClock) -> None:
    async with await Store.open(store_url) as store:
        await store.audit(actor="alice", action="user.login", subject="web", detail={"ip": "192.0.2.1"})
        vclock.advance(10)
        await store.audit(actor="bob", action="user.login", subject="cli", result="denied")
        entries = await store.audit_log(action="user.*")
        assert [(e.actor, e.result, e.at) for e in entries] == [
            ("alice", "ok", vclock.now() - timedelta(seconds=10)),
            ("bob", "denied", vclock.now()),
        ]
        assert entries[0].detail == {"ip": "192.0.2.1"}
        assert [e.actor for e in await store.audit_log(since=vclock.now())] == ["bob"]
        assert [e.actor for e in await store.audit_log(subject="web")] == ["alice"]


async def test_config_versions_and_meter_sync(store_url: str) -> None:
    async with await Store.open(store_url) as store:
        assert await store.config_version() is None
        m = [MeterRecord("a", "dlms", "bus", "x"), MeterRecord("b", "modbus", "gw", "unit=1")]
        v1 = await store.apply_config_version(
            text="one", sha256="1" * 64, source="s", actor="u", summary="", meters=m
        )
        m2 = [MeterRecord("a", "dlms", "bus", "y"), MeterRecord("c", "iec21", "opt", "device=")]
        v2 = await store.apply_config_version(
            text="two", sha256="2" * 64, source="s", actor="u", summary="", meters=m2, expect_version=1
        )
        assert (v1.version, v2.version) == (1, 2)
        with pytest.raises(ConfigVersionConflict, match="version 2 was applied meanwhile"):
            await store.apply_config_version(
                text="x", sha256="3" * 64, source="s", actor="u", summary="", meters=[], expect_version=1
            )
        meters = {x.id: x for x in await store.meters()}
        assert {k: (v.active, v.first_version, v.changed_version, v.address) for k, v in meters.items()} == {
            "a": (True, 1, 2, "y"),
            "b": (False, 1, 2, "unit=1"),
            "c": (True, 2, 2, "device="),
        }
        assert [x.id for x in await store.meters(active=True)] == ["a", "c"]
        latest = await store.config_version()
        assert latest is not None
        assert latest.text == "two"
        assert [v.version for v in await store.config_versions()] == [2, 1]
        assert (await store.config_versions())[0].text is None


# -- retention --------------------------------------------------------------------------------------


async def test_retention_in_batches_keeps_newest(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        days = range(0, 40, 2)  # 20 daily readings, every other day
        await store.save_readings("m1", [reading(E_IMPORT, Decimal(d), 24 * 60 * d) for d in days])
        await store.save_readings("m1", [reading(E_EXPORT, Decimal(1), 0)])  # a series that went silent
        await store.save_profile_rows(
            "m1", LOAD, [ProfileRow(T0 + timedelta(days=d), {"x": Decimal(d)}) for d in days]
        )
        await store.save_events("m1", [MeterEvent(T0 + timedelta(days=d), 1, "log") for d in days])
        now = T0 + timedelta(days=40)
        policy = RetentionPolicy(readings_days=10, profile_days=20, events_days=30, audit_days=None)
        result = await store.apply_retention(policy, now=now, batch_size=3)
        assert (result.readings, result.profile_rows, result.events, result.audit_log) == (15, 10, 5, 0)
        left = await store.readings("m1", obis=E_IMPORT)
        assert [r.capture_time for r in left] == [T0 + timedelta(days=d) for d in range(30, 40, 2)]
        assert len(await store.readings("m1", obis=E_EXPORT)) == 1  # newest of its series: kept
        assert len(await store.profile_rows("m1", LOAD)) == 10
        assert len(await store.events("m1")) == 15
        assert (await store.audit_log(action="retention.apply"))[0].detail == {
            "readings": 15,
            "profile_rows": 10,
            "events": 5,
            "audit_log": 0,
        }
        again = await store.apply_retention(policy, now=now)
        assert again.total == 0
        everything = await store.apply_retention(RetentionPolicy(audit_days=1), now=now + timedelta(days=2))
        assert everything.audit_log >= 2
        with pytest.raises(InputError):
            await store.apply_retention(policy, batch_size=0)


# -- integrity --------------------------------------------------------------------------------------


async def test_integrity_finds_problems(store_url: str) -> None:
    async with await open_with_meters(store_url) as store:
        await store.save_readings("m1", [reading(E_IMPORT, Decimal(1))], marker=Marker(E_IMPORT, T0))
        assert (await store.check_integrity()).ok

        def damage(conn: Any) -> None:
            conn.execute(
                insert(collection_markers).values(
                    meter_id="m2", object="1-0:99.1.0*255", last_collected=T0, updated_at=T0
                )
            )
            conn.execute(
                insert(config_versions).values(
                    version=5, applied_at=T0, actor="x", source="x", sha256="5" * 64, summary="", text=""
                )
            )
            conn.execute(
                insert(commands).values(
                    id="c1", kind="read", args="{}", requested_by="x", requested_at=T0, state="running"
                )
            )

        await store._run("damage", damage)
        report = await store.check_integrity()
        assert not report.ok
        joined = "\n".join(report.problems)
        assert "marker m2 1-0:99.1.0*255" in joined
        assert "nothing stored" in joined
        assert "not numbered 1..2 (found 1..5)" in joined
        assert "command c1: state running does not match" in joined
        with pytest.raises(StoreError, match="integrity check found 3 problem"):
            report.raise_if_failed()


async def test_sqlite_integrity_reports_foreign_key_damage(tmp_path: Path) -> None:
    path = tmp_path / "fk.db"
    async with await open_with_meters(str(path)) as store:
        await store.save_readings("m1", [reading(E_IMPORT, Decimal(1))])
    with sqlite3.connect(path) as raw:  # behind the store's back, without foreign keys
        raw.execute("UPDATE readings SET meter_id = 'ghost'")
    async with await Store.open(path) as store:
        report = await store.check_integrity()
        assert any("foreign key: readings" in p for p in report.problems), report.problems


# -- errors -----------------------------------------------------------------------------------------


async def test_errors_are_translated(tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a database or is damaged") as info:
        await Store.open(garbage)
    assert info.value.__cause__ is not None
    with pytest.raises(StoreError, match=r"directory .* does not exist"):
        await Store.open(tmp_path / "no" / "such" / "dir.db")
    with pytest.raises(InputError, match="unsupported store URL mysql://u:\\*\\*\\*@h/db"):
        await Store.open("mysql://u:pw@h/db")
    with pytest.raises(InputError, match="empty store location"):
        await Store.open("")


@pytest.mark.realtime
async def test_postgres_unreachable_is_a_store_error() -> None:
    with pytest.raises(StoreError, match=r"cannot connect to the store|could not migrate") as info:
        await Store.open("postgresql://metercom:topsecret@127.0.0.1:1/none?connect_timeout=2")
    assert "topsecret" not in str(info.value)


@pytest.mark.realtime
async def test_busy_sqlite_is_a_store_error(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    async with await open_with_meters(str(path)) as store:
        pass
    async with await Store.open(path, busy_timeout_s=0.2) as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        try:
            blocker.execute("BEGIN IMMEDIATE")
            with pytest.raises(StoreError, match="store busy: could not save readings"):
                await store.save_readings("m1", [reading(E_IMPORT, Decimal(1))])
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        assert (await store.save_readings("m1", [reading(E_IMPORT, Decimal(1))])).inserted == 1


async def test_closed_store(tmp_path: Path) -> None:
    store = await Store.open(tmp_path / "c.db")
    assert store.dialect == "sqlite"
    assert "c.db" in repr(store)
    await store.close()
    await store.close()
    with pytest.raises(StoreError, match="the store is closed"):
        await store.readings("m1")
