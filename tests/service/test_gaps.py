"""Gap detection vectors (DST days in Europe/Berlin, a meter whose clock is off) and recovery of
the missing ranges from a simulated DLMS meter through the conversation scheduler."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from metercom.clock import VirtualClock
from metercom.errors import InputError
from metercom.model.obis import Obis
from metercom.service.adapters import MeterSessionFactory
from metercom.service.config_model import LineConfig, MeterConfig
from metercom.service.config_store import ConfigStore
from metercom.service.gaps import Gap, GapRecovery, find_gaps, infer_period, merge_gaps, split_gap
from metercom.service.meters import LinkPool
from metercom.service.scheduler import ConversationScheduler
from metercom.service.store import ProfileRow, Store
from metercom.sim.dlms import DlmsMeterDevice, build_meter, secret_environment
from metercom.transport import Transport, open_transport, serve

BERLIN = ZoneInfo("Europe/Berlin")
Q = timedelta(minutes=15)
LP = "1-0:99.1.0*255"


def series(start: datetime, end: datetime, step: timedelta = Q) -> list[datetime]:
    out = []
    t = start
    while t <= end:
        out.append(t)
        t += step
    return out


def berlin_day(day: date) -> list[datetime]:
    """Every quarter hour of a local day, as the meter stamps it (aware local times)."""
    first = datetime.combine(day, time(), tzinfo=BERLIN).astimezone(UTC)
    last = datetime.combine(day + timedelta(days=1), time(), tzinfo=BERLIN).astimezone(UTC) - Q
    return [t.astimezone(BERLIN) for t in series(first, last)]


@pytest.mark.parametrize(("day", "quarters"), [(date(2026, 3, 29), 92), (date(2026, 10, 25), 100)])
def test_a_dst_day_is_complete_in_utc(day: date, quarters: int) -> None:
    stamps = berlin_day(day)
    assert len(stamps) == quarters
    assert find_gaps(stamps, Q) == []
    # wall-clock arithmetic would see a missing hour in spring and a repeated one in autumn
    walls = sorted({t.replace(tzinfo=None) for t in stamps})
    assert len(walls) == (92 if quarters == 92 else 96)


def test_gaps_across_the_spring_change_are_exact() -> None:
    stamps = berlin_day(date(2026, 3, 29))
    # lose 01:30 CET .. 03:30 CEST local: 01:30, 01:45, 03:00, 03:15, 03:30 (02:xx does not exist)
    lost = {
        t
        for t in stamps
        if datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN) <= t <= datetime(2026, 3, 29, 3, 30, tzinfo=BERLIN)
    }
    assert len(lost) == 5
    gaps = find_gaps([t for t in stamps if t not in lost], Q)
    assert gaps == [Gap(datetime(2026, 3, 29, 0, 30, tzinfo=UTC), datetime(2026, 3, 29, 1, 30, tzinfo=UTC))]
    assert gaps[0].intervals(Q) == 5


def test_autumn_repeated_hour_gap() -> None:
    stamps = berlin_day(date(2026, 10, 25))
    # the second 02:15 (CET, 01:15 UTC) is missing; the first one (CEST, 00:15 UTC) is there
    missing = datetime(2026, 10, 25, 1, 15, tzinfo=UTC)
    gaps = find_gaps([t for t in stamps if t.astimezone(UTC) != missing], Q)
    assert gaps == [Gap(missing, missing)]


def test_a_meter_with_clock_deviation() -> None:
    # The meter keeps CET with deviation -60 (UTC = local + deviation) and runs 7 minutes ahead:
    # it stamps its own quarter hours, which are 7 minutes off the head-end's grid in UTC.
    cet = timezone(timedelta(hours=1))
    own = [
        t + timedelta(minutes=-7)
        for t in series(datetime(2026, 3, 2, tzinfo=cet), datetime(2026, 3, 2, 6, tzinfo=cet))
    ]
    kept = [t for i, t in enumerate(own) if i not in (4, 5, 6, 12)]
    gaps = find_gaps(kept, Q)
    assert gaps == [Gap(own[4], own[6]), Gap(own[12], own[12])]
    assert all(g.first.tzinfo is UTC for g in gaps)
    assert gaps[0].first == datetime(2026, 3, 1, 23, 53, tzinfo=UTC)
    assert infer_period(kept) == Q


def test_merge_and_split() -> None:
    t0 = datetime(2026, 3, 2, tzinfo=UTC)
    a, b, c = Gap(t0, t0 + Q), Gap(t0 + 3 * Q, t0 + 4 * Q), Gap(t0 + 10 * Q, t0 + 10 * Q)
    assert merge_gaps([c, b, a], Q) == [Gap(t0, t0 + 4 * Q), c]  # one stored row between a and b
    assert merge_gaps([a, b], Q, join=0) == [a, b]
    long = Gap(t0, t0 + timedelta(days=2, hours=1))
    pieces = split_gap(long, timedelta(days=1), Q)
    assert len(pieces) == 3
    assert pieces[1].first == pieces[0].last + Q
    assert pieces[0].first == t0
    assert pieces[-1].last == long.last
    assert all(p.last - p.first <= timedelta(days=1) for p in pieces)
    assert sum(p.intervals(Q) for p in pieces) == long.intervals(Q)
    with pytest.raises(InputError):
        find_gaps([datetime(2026, 3, 2)], Q)  # noqa: DTZ001 - a naive time is refused
    assert infer_period([t0]) is None


CONFIG = """
[secrets]
guek = "env:METERCOM_SIM_GUEK"
gak = "env:METERCOM_SIM_GAK"

[[meters]]
id = "d-1"
protocol = "dlms"
url = "{url}"
address = {{ client = 1, logical = 1 }}
authentication = "high-gmac"
security = "authenticated-encrypted"
keys = {{ encryption = "secret:guek", authentication = "secret:gak" }}
groups = ["all"]

[[groups]]
id = "all"

[[plans]]
id = "lp"
profiles = [{{ obis = "{lp}", history = "2d" }}]
"""


@pytest.fixture
def vclock() -> VirtualClock:
    return VirtualClock(datetime(2026, 3, 30, tzinfo=UTC), real_grace_s=0.005)


async def test_recovery_rereads_exactly_the_missing_ranges(
    store_url: str, vclock: VirtualClock, tmp_path: Path
) -> None:
    device = DlmsMeterDevice(build_meter("generic", clock=vclock, seed=3))
    async with await serve("tcp://127.0.0.1:0", device.serve_wrapper) as server:

        async def opener(line: LineConfig, meter: MeterConfig) -> Transport:
            return await open_transport(server.url)

        store = await Store.open(store_url)
        configs = ConfigStore(store)
        await configs.apply(CONFIG.format(url=server.url, lp=LP), actor="test")
        applied = await configs.current()
        assert applied is not None
        scheduler = ConversationScheduler(
            links=LinkPool(opener),
            session_factory=MeterSessionFactory(state_dir=tmp_path),
            env=secret_environment(),
        )
        scheduler.configure(applied.config)
        gaps = GapRecovery(store, scheduler, max_span=timedelta(hours=6))
        gaps.configure(applied.config)
        now = datetime(2026, 3, 30, tzinfo=UTC)
        everything = series(now - timedelta(days=1), now)
        # what the meter has, minus holes: 10 rows, then 30 hours... no: 9 hours, and one row
        holes = set(everything[10:46]) | {everything[60]}
        rows = [ProfileRow(t, {"x": None}) for t in everything if t not in holes]
        from metercom.service.store import Marker

        await store.save_profile_rows("d-1", LP, rows, marker=Marker(LP, now))
        found = await gaps.find("d-1", LP)
        assert [(g.first, g.last) for g in found] == [
            (everything[10], everything[10] + timedelta(hours=6)),
            (everything[10] + timedelta(hours=6, minutes=15), everything[45]),
            (everything[60], everything[60]),
        ]
        result = await gaps.check("d-1", Obis.parse(LP))
        assert result.rows == len(holes)
        assert result.unrecoverable == ()
        stored = [r.capture_time for r in await store.profile_rows("d-1", LP)]
        assert stored == everything
        assert await gaps.find("d-1", LP) == []
        assert (await store.marker("d-1", LP)) == now
        # a hole the meter has no rows for (after its newest row) is given up once and audited
        odd = now + timedelta(minutes=7)
        await store.save_profile_rows(
            "d-1", LP, [ProfileRow(odd + Q * 3, {"x": None})], marker=Marker(LP, odd + Q * 3)
        )
        result = await gaps.check("d-1", LP)
        assert result.unrecoverable
        assert (await gaps.check("d-1", LP)).gaps == ()
        audit = await store.audit_log(action="profile.gap_unrecoverable")
        assert len(audit) == 1
        await scheduler.stop()
        assert (await store.check_integrity()).ok
        await store.close()
