"""A forwarder process for the kill -9 test (run as a script, killed with SIGKILL).

Usage: ``forward_worker.py STORE URL FIRST_TICK TICKS KILL``. Writes TICKS ticks of readings of
ten meters (from FIRST_TICK) while forwarding them over HTTP to URL; prints ``ready`` once the
store is open. KILL is ``none``, ``drain`` (stop writing, forward everything, exit 0),
``before:N`` (SIGKILL itself when the N-th send starts) or ``after:N`` (SIGKILL itself right
after the N-th send was confirmed by the receiver, before the store records it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.forward import Forwarder, ForwardPolicy, HttpSink, Upstream
from metercom.service.secrets import Secret
from metercom.service.store import OutboxBatch, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
METERS = [f"m{n:03d}" for n in range(10)]
CODES = [Obis(1, 0, 1, 8, e, 255) for e in range(5)]
SECRET = Secret("kill-test", origin="test")


class Killer:
    def __init__(self, inner: HttpSink, kill: str) -> None:
        self.inner = inner
        self.mode, _, n = kill.partition(":")
        self.at = int(n) if n else -1
        self.sends = 0

    @property
    def name(self) -> str:
        return self.inner.name

    async def send(self, batch: OutboxBatch) -> None:
        self.sends += 1
        if self.mode == "before" and self.sends == self.at:
            os.kill(os.getpid(), signal.SIGKILL)
        await self.inner.send(batch)
        if self.mode == "after" and self.sends == self.at:
            os.kill(os.getpid(), signal.SIGKILL)

    async def close(self) -> None:
        await self.inner.close()


async def main(path: str, url: str, first: int, ticks: int, kill: str) -> None:
    store = await Store.open(path)
    sink = Killer(HttpSink("central", url, source="worker", secret=SECRET, timeout_s=5), kill)
    policy = ForwardPolicy(
        batch_size=40, interval_s=0.02, confirm_timeout_s=5, retry_min_s=0.02, retry_max_s=0.2
    )
    forwarder = Forwarder(store, [Upstream(sink, policy)])  # type: ignore[list-item]
    await forwarder.start()
    print("ready", flush=True)
    if kill != "drain":
        for tick in range(first, first + ticks):
            when = T0 + timedelta(minutes=15 * tick)
            for n, meter_id in enumerate(METERS):
                values = [Reading(c, Decimal(tick * 100 + n) + k, "kWh", when) for k, c in enumerate(CODES)]
                await store.save_readings(meter_id, values)
            forwarder.wake()
            await asyncio.sleep(0.005)
    await forwarder.wait_drained(poll_s=0.05)
    await forwarder.stop()
    await store.close()
    print("drained", flush=True)


if __name__ == "__main__":
    store_path, receiver_url, first_tick, tick_count, kill_mode = sys.argv[1:6]
    asyncio.run(main(store_path, receiver_url, int(first_tick), int(tick_count), kill_mode))
