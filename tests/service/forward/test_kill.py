"""kill -9 of the forwarder at seeded random points: no reading lost upstream, none stored twice.

The reference receiver runs in this process (its own thread and event loop, real clock); a
forwarder process (``forward_worker.py``) writes readings into a SQLite store and forwards them
over HTTP. It is killed with SIGKILL 30 times: at seeded random delays (inside store
transactions, between claim and send, mid-request) and at seeded batch counts right before a
send or right after the receiver stored a batch but before the forwarder recorded the
confirmation (the case that must produce a resend the receiver recognises). A last run drains
the outbox. Then the receiver holds exactly the readings the local store holds, each inserted
once (no update, no unchanged rewrite: no batch was applied twice).
"""

from __future__ import annotations

import asyncio
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from metercom.service.central import CentralReceiver
from metercom.service.secrets import Secret
from metercom.service.store import MeterRecord, Store

WORKER = Path(__file__).with_name("forward_worker.py")
SEED = 20260202
KILLS = 30
TICKS_PER_RUN = 4
METERS = [f"m{n:03d}" for n in range(10)]


class ReceiverThread:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.url = ""
        self.receiver: CentralReceiver | None = None
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> None:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(30)

    async def _start(self) -> None:
        self.store = await Store.open(self.path)
        self.receiver = CentralReceiver(self.store, secret=Secret("kill-test", origin="test"))
        self.url = await self.receiver.start_http("http://127.0.0.1:0")

    def call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def stop(self) -> None:
        assert self.receiver is not None
        self.call(self.receiver.close())
        self.call(self.store.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


def run_worker(store: Path, url: str, first: int, kill: str, delay_s: float | None) -> int:
    proc = subprocess.Popen(  # noqa: S603 - our own worker script
        [sys.executable, str(WORKER), str(store), url, str(first), str(TICKS_PER_RUN), kill],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    if delay_s is not None:
        time.sleep(delay_s)
        proc.send_signal(signal.SIGKILL)
    try:
        return proc.wait(timeout=120)
    finally:
        proc.stdout.close()


async def _prepare(path: Path) -> None:
    async with await Store.open(path) as store:
        await store.apply_config_version(
            text="#",
            sha256="0" * 64,
            source="t",
            actor="t",
            summary="",
            meters=[MeterRecord(m, "iec21", "bus", str(n)) for n, m in enumerate(METERS)],
        )
        await store.register_outbox_sinks(["central"])


async def _local(path: Path) -> set[tuple[str, str, object, str]]:
    async with await Store.open(path) as store:
        out = set()
        for m in METERS:
            out.update((r.meter_id, r.obis, r.capture_time, str(r.value)) for r in await store.readings(m))
        (backlog,) = await store.outbox_backlog("central")
        assert backlog.pending == 0
        return out


def test_kill_9_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    local = tmp_path / "local.db"
    asyncio.run(_prepare(local))
    central = ReceiverThread(tmp_path / "central.db")
    central.start()
    rng = random.Random(SEED)
    killed = 0
    try:
        for run in range(KILLS):
            choice = rng.random()
            if choice < 0.5:
                kill, delay = "none", rng.uniform(0.0, 0.25)
            elif choice < 0.75:
                kill, delay = f"before:{rng.randint(1, 6)}", None
            else:
                kill, delay = f"after:{rng.randint(1, 6)}", None
            code = run_worker(local, central.url, run * TICKS_PER_RUN, kill, delay)
            killed += code == -signal.SIGKILL
        assert run_worker(local, central.url, 0, "drain", None) == 0
        assert killed >= KILLS * 3 // 4
        expected = asyncio.run(_local(local))
        assert receiver_readings(central) == expected
        receiver = central.receiver
        assert receiver is not None
        stats = receiver.stats
        assert stats.inserted == len(expected)
        assert stats.updated == stats.unchanged == 0
        assert stats.duplicates > 0  # some kills came between "stored" and "confirmed"
    finally:
        central.stop()


def receiver_readings(central: ReceiverThread) -> set[tuple[str, str, object, str]]:
    async def job() -> set[tuple[str, str, object, str]]:
        out = set()
        for m in METERS:
            out.update(
                (r.meter_id, r.obis, r.capture_time, str(r.value)) for r in await central.store.readings(m)
            )
        report = await central.store.check_integrity()
        assert report.ok, report.problems
        return out

    result: set[tuple[str, str, object, str]] = central.call(job())
    return result
