"""Store queries take an OBIS code in every form :meth:`Obis.parse` reads and match the stored
canonical form; text that is not OBIS raises a clear :class:`InputError`. On SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from headend_support import store_with_meters
from metercom.errors import InputError
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import Marker, MeterEvent, MeterRecord, ProfileRow, Store, WriteResult

T0 = datetime(2026, 1, 1, tzinfo=UTC)
E_IMPORT = Obis.parse("1.8.0")
LOAD = Obis.parse("1-0:99.1.0*255")
EVENT_LOG = Obis.parse("0-0:99.98.0*255")

#: Every form of 1-0:1.8.0*255 that Obis.parse reads.
IMPORT_FORMS = (E_IMPORT, "1-0:1.8.0*255", "1.8.0", "1.8.0*255", "1-0:1.8.0", "1.0.1.8.0.255", "0100010800FF")
LOAD_FORMS = (LOAD, "1-0:99.1.0*255", "99.1.0", "P.01", "1.0.99.1.0.255", "0100630100FF")
LOG_FORMS = (EVENT_LOG, "0-0:99.98.0*255", "0-0:99.98.0", "0-0:P.98", "0.0.99.98.0.255")
BAD = ("1.8.x", "1.8.256", "energy", "", "1.2.3.4.5.6.7")


def open_with_meter(url: str) -> Awaitable[Store]:
    return store_with_meters(url, MeterRecord("m1", "iec21", "opt", "device=1"))


def test_the_forms_are_one_code() -> None:
    assert {str(Obis.parse(f)) if isinstance(f, str) else str(f) for f in IMPORT_FORMS} == {str(E_IMPORT)}
    assert {str(Obis.parse(f)) if isinstance(f, str) else str(f) for f in LOAD_FORMS} == {str(LOAD)}
    assert {str(Obis.parse(f)) if isinstance(f, str) else str(f) for f in LOG_FORMS} == {str(EVENT_LOG)}


async def test_readings_and_markers_by_any_form(store_url: str) -> None:
    async with await open_with_meter(store_url) as store:
        rows = [Reading(E_IMPORT, Decimal(n), "kWh", T0 + timedelta(minutes=15 * n)) for n in range(3)]
        rows.append(Reading(Obis.parse("2.8.0"), Decimal(9), "kWh", T0))
        # a marker named by a short form is stored under the canonical code
        assert await store.save_readings("m1", rows, marker=Marker("1.8.0", rows[2].captured_at or T0)) == (
            WriteResult(inserted=4)
        )
        assert await store.markers("m1") == {"1-0:1.8.0*255": T0 + timedelta(minutes=30)}
        for form in IMPORT_FORMS:
            found = await store.readings("m1", obis=form)
            assert [r.value for r in found] == [Decimal(0), Decimal(1), Decimal(2)], form
            assert {r.obis for r in found} == {"1-0:1.8.0*255"}
            assert await store.marker("m1", form) == T0 + timedelta(minutes=30), form
        assert len(await store.readings("m1")) == 4
        await store.reset_marker("m1", "1.8.0", actor="op", to=T0)
        assert await store.marker("m1", "1.0.1.8.0.255") == T0
        await store.reset_marker("m1", "0100010800FF", actor="op")
        assert await store.markers("m1") == {}
        (entry, _) = await store.audit_log(action="marker.reset")
        assert entry.subject == "m1 1-0:1.8.0*255"


async def test_profiles_and_event_logs_by_any_form(store_url: str) -> None:
    async with await open_with_meter(store_url) as store:
        profile = [ProfileRow(T0 + timedelta(minutes=15 * n), {"+A": Decimal(n)}) for n in range(4)]
        newest = profile[-1].capture_time
        assert await store.save_profile_rows("m1", "99.1.0", profile, marker=Marker("P.01", newest)) == (
            WriteResult(inserted=4)
        )
        events = [MeterEvent(T0, 1, "0-0:99.98.0", "power down"), MeterEvent(T0, 2, str(EVENT_LOG), "up")]
        assert await store.save_events("m1", events, marker=Marker("0.0.99.98.0.255", T0)) == (
            WriteResult(inserted=2)
        )
        assert await store.markers("m1") == {str(LOAD): newest, str(EVENT_LOG): T0}
        for form in LOAD_FORMS:
            stored = await store.profile_rows("m1", form)
            assert [r.capture_time for r in stored] == [r.capture_time for r in profile], form
            assert {r.profile for r in stored} == {str(LOAD)}
            assert await store.profile_times("m1", form, since=T0 + timedelta(minutes=30)) == [
                T0 + timedelta(minutes=30),
                newest,
            ]
            assert await store.marker("m1", form) == newest
        for form in LOG_FORMS:
            assert [e.code for e in await store.events("m1", log=form)] == [1, 2], form
            assert await store.marker("m1", form) == T0


async def test_readings_without_an_obis_code_are_found_by_address(store_url: str) -> None:
    async with await open_with_meter(store_url) as store:
        await store.save_readings("m1", [Reading(None, "ABC123", address="ID", captured_at=T0)])
        await store.save_readings("m1", [Reading(E_IMPORT, Decimal(1), "kWh", T0)])
        [by_address] = await store.readings("m1", address="ID")
        assert (by_address.obis, by_address.value) == ("ID", "ABC123")
        with pytest.raises(InputError, match="not both"):
            await store.readings("m1", obis="1.8.0", address="ID")
        with pytest.raises(InputError, match="not an OBIS code"):
            await store.readings("m1", obis="ID")


@pytest.mark.parametrize("bad", BAD)
async def test_text_that_is_not_obis_is_refused_clearly(store_url: str, bad: str) -> None:
    async with await open_with_meter(store_url) as store:
        calls: dict[str, Callable[[], Awaitable[object]]] = {
            "readings(obis=...)": lambda: store.readings("m1", obis=bad),
            "profile_rows(profile)": lambda: store.profile_rows("m1", bad),
            "profile_times(profile)": lambda: store.profile_times("m1", bad),
            "events(log=...)": lambda: store.events("m1", log=bad),
            "marker(obj)": lambda: store.marker("m1", bad),
            "reset_marker(obj)": lambda: store.reset_marker("m1", bad, actor="op"),
        }
        for what, call in calls.items():
            with pytest.raises(InputError) as caught:
                await call()
            message = str(caught.value)
            assert message.startswith(f"{what}: "), message
            assert repr(bad) in message  # what was given, and why it is not OBIS
            assert "OBIS" in message
        assert await store.audit_log(action="marker.reset") == []
