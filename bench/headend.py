"""Benchmark: collecting N simulated TCP DLMS meters with our head-end vs a dlms-cosem thread pool.

Rule: the same meters, the same work, the same run. A separate process serves N simulated DLMS
meters (:func:`metercom.sim.dlms.serve_fleet`, IP wrapper on loopback TCP, 50 ms simulated
latency before every answer), so CPU is measured per side. Each meter is read once per side:
associate as the LLS reader (client 32), read the energy registers 1.8.0 and 2.8.0 and the clock,
read the last day of the block load profile (1-0:99.1.0, 30-minute rows of 7 columns, selective
access by range), release. The meters use the ``india`` device profile, whose LLS reader
association can read energy (the generic profile's public client cannot).

* ours: :class:`~metercom.service.headend.HeadEnd` with the DLMS adapter, one on-demand read
  cycle per meter, everything stored in a SQLite file (readings, 96 profile rows, markers), on
  one event loop in one thread;
* theirs: dlms-cosem 25.1's blocking ``DlmsClient`` in a ``ThreadPoolExecutor`` (``--threads``,
  default 32, the cap of Python's own default pool), nothing stored.

Reported: meters per minute for both and their ratio (target >= 5x), our CPU per meter
(process time of the head-end process / N) and the simulator's, and meters per hour
extrapolated for this machine: our single event loop is bound at ``3600 / CPU per meter``, and
with the simulator beside it on the same cores at ``cores * 3600 / (ours + simulator)``; the
smaller is the figure (target >= 100,000).

Run: ``python -m bench.headend [--meters N] [--threads T] [--latency-ms MS]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["main"]

TARGET_RATIO = 5.0
TARGET_PER_HOUR = 100_000
LLS_CLIENT = 32


# -- the simulator process ----------------------------------------------------------------------


def _serve(n: int, latency_ms: float) -> None:
    """Child process: serve the fleet; print its URLs; answer ``cpu`` with its CPU time."""
    from metercom.clock import SystemClock
    from metercom.sim.dlms import serve_fleet

    async def run() -> None:
        fleet = await serve_fleet(
            n, "tcp://127.0.0.1:0", profile="india", latency_ms=latency_ms, seed=5, clock=SystemClock()
        )
        print(json.dumps([m.url for m in fleet.meters]), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"cpu":
                print(f"{time.process_time():.6f}", flush=True)
        fleet.close()

    asyncio.run(run())


class Simulator:
    def __init__(self, n: int, latency_ms: float) -> None:
        self.proc = subprocess.Popen(  # noqa: S603 - this module, as a child
            [sys.executable, "-m", "bench.headend", "--serve", str(n), "--latency-ms", str(latency_ms)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[1],
        )
        assert self.proc.stdout is not None
        self.urls: list[str] = json.loads(self.proc.stdout.readline())

    def cpu_s(self) -> float:
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write("cpu\n")
        self.proc.stdin.flush()
        return float(self.proc.stdout.readline())

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


# -- ours -----------------------------------------------------------------------------------------


def config_text(urls: list[str]) -> str:
    out = [
        'format_version = 1\n[service]\nname = "bench"\n',
        '[secrets]\nlls = "env:METERCOM_BENCH_LLS"\n',
    ]
    for i, url in enumerate(urls):
        out.append(
            f'[[meters]]\nid = "m-{i:04d}"\nprotocol = "dlms"\nurl = "{url}"\n'
            f'address = {{ client = {LLS_CLIENT}, logical = 1 }}\nauthentication = "low"\n'
            'password = "secret:lls"\ngroups = ["all"]\n'
        )
    out.append('[[groups]]\nid = "all"\n')
    out.append(
        '[[plans]]\nid = "daily"\nobjects = ["1-0:1.8.0*255", "1-0:2.8.0*255", "0-0:1.0.0*255"]\n'
        'profiles = [{ obis = "1-0:99.1.0*255", history = "1d" }]\n'
    )
    return "\n".join(out)


@dataclass(frozen=True, slots=True)
class Side:
    name: str
    meters: int
    ok: int
    wall_s: float
    cpu_s: float
    sim_cpu_s: float
    detail: str = ""

    @property
    def per_minute(self) -> float:
        return self.ok / self.wall_s * 60 if self.wall_s else 0.0


async def _ours(urls: list[str], folder: Path, max_conversations: int) -> tuple[int, str]:
    from metercom.service.adapters import MeterSessionFactory
    from metercom.service.config_store import ConfigStore
    from metercom.service.headend import HeadEnd
    from metercom.service.store import Store
    from metercom.sim.dlms import DEFAULT_LLS_PASSWORD

    store = await Store.open(folder / "bench.db")
    try:
        configs = ConfigStore(store)
        await configs.apply(config_text(urls), actor="bench")
        headend = HeadEnd(
            store,
            configs,
            session_factory=MeterSessionFactory(state_dir=folder),
            max_conversations=max_conversations,
            env={"METERCOM_BENCH_LLS": DEFAULT_LLS_PASSWORD.decode()},
        )
        await headend.start()
        outcomes = await asyncio.gather(*(headend.read_now(f"m-{i:04d}", "daily") for i in range(len(urls))))
        await headend.stop()
        ok = sum(o.ok for o in outcomes)
        rows = sum(o.saved.inserted for o in outcomes)
        errors = sorted({f"{type(o.error).__name__}: {o.error}" for o in outcomes if o.error is not None})
        detail = f"{rows} rows stored" + (f"; errors: {errors[:3]}" if errors else "")
        return ok, detail
    finally:
        await store.close()


def run_ours(sim: Simulator, max_conversations: int) -> Side:
    import metercom.service.adapters
    import metercom.service.headend  # noqa: F401 - imported before the clock starts

    with tempfile.TemporaryDirectory(prefix="metercom-bench-") as tmp:
        sim0, cpu0, wall0 = sim.cpu_s(), time.process_time(), time.perf_counter()
        ok, detail = asyncio.run(_ours(sim.urls, Path(tmp), max_conversations))
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sim_cpu = sim.cpu_s() - sim0
    return Side("metercom HeadEnd", len(sim.urls), ok, wall, cpu, sim_cpu, detail)


# -- theirs ---------------------------------------------------------------------------------------


def _peer_read(url: str) -> int:
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.cosem.capture_object import CaptureObject
    from dlms_cosem.cosem.selective_access import RangeDescriptor
    from dlms_cosem.io import BlockingTcpIO, TcpTransport
    from dlms_cosem.security import LowLevelSecurityAuthentication
    from dlms_cosem.utils import parse_as_dlms_data

    from metercom.sim.dlms import DEFAULT_LLS_PASSWORD

    def attr(interface: Any, obis: str, attribute: int) -> Any:
        return cosem.CosemAttribute(
            interface=interface, instance=cosem.Obis.from_string(obis), attribute=attribute
        )

    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    io = BlockingTcpIO(host, int(port), timeout=30)
    transport = TcpTransport(client_logical_address=LLS_CLIENT, server_logical_address=1, io=io)
    auth = LowLevelSecurityAuthentication(secret=DEFAULT_LLS_PASSWORD)
    clock = attr(enumerations.CosemInterface.CLOCK, "0.0.1.0.0.255", 2)
    register = enumerations.CosemInterface.REGISTER
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with DlmsClient(transport=transport, authentication=auth, timeout=30).session() as client:
        for obis in ("1.0.1.8.0.255", "1.0.2.8.0.255"):
            parse_as_dlms_data(client.get(attr(register, obis, 3)))  # scaler and unit
            parse_as_dlms_data(client.get(attr(register, obis, 2)))
        parse_as_dlms_data(client.get(clock))
        descriptor = RangeDescriptor(
            restricting_object=CaptureObject(cosem_attribute=clock),
            from_value=now - timedelta(days=1),
            to_value=now,
        )
        profile = attr(enumerations.CosemInterface.PROFILE_GENERIC, "1.0.99.1.0.255", 2)
        rows = parse_as_dlms_data(client.get(profile, descriptor))
    return len(rows)


def run_theirs(sim: Simulator, threads: int) -> Side:
    sim0, cpu0, wall0 = sim.cpu_s(), time.process_time(), time.perf_counter()
    ok = rows = 0
    errors: set[str] = set()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        for future in [pool.submit(_peer_read, url) for url in sim.urls]:
            try:
                rows += future.result()
                ok += 1
            except Exception as exc:  # noqa: BLE001 - the peer raises its own error types
                errors.add(f"{type(exc).__name__}: {exc}")
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    sim_cpu = sim.cpu_s() - sim0
    detail = f"{rows} profile rows read, {threads} threads" + (
        f"; errors: {sorted(errors)[:3]}" if errors else ""
    )
    return Side("dlms-cosem thread pool", len(sim.urls), ok, wall, cpu, sim_cpu, detail)


# -- report ---------------------------------------------------------------------------------------


def report(ours: Side, theirs: Side, latency_ms: float) -> str:
    cores = os.cpu_count() or 1
    ratio = ours.per_minute / theirs.per_minute if theirs.per_minute else float("nan")
    cpu_ours = ours.cpu_s / max(ours.ok, 1)
    cpu_sim = ours.sim_cpu_s / max(ours.ok, 1)
    loop_bound = 3600 / cpu_ours
    shared_bound = cores * 3600 / (cpu_ours + cpu_sim)
    per_hour = min(loop_bound, shared_bound)
    head = (
        f"{ours.meters} simulated DLMS meters over loopback TCP, {latency_ms:g} ms per answer, "
        f"simulator in its own process; {cores} cores"
    )
    lines = [
        head,
        "per meter: associate (LLS), 1.8.0 + 2.8.0 + clock, 1 day of 30-min block load profile, release",
    ]
    lines.extend(
        (
            f"  {side.name:24} {side.ok}/{side.meters} read in {side.wall_s:6.2f} s = "
            f"{side.per_minute:9,.0f} meters/min; CPU {side.cpu_s:6.2f} s "
            f"(simulator {side.sim_cpu_s:.2f} s); {side.detail}"
        )
        for side in (ours, theirs)
    )
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    hourly = "ok" if per_hour >= TARGET_PER_HOUR else "BELOW TARGET"
    lines += [
        f"  ratio ours/theirs: {ratio:.1f}x (target >= {TARGET_RATIO:g}x: {verdict})",
        (
            f"  our CPU per meter: {cpu_ours * 1000:.2f} ms (head-end incl. SQLite); "
            f"simulator: {cpu_sim * 1000:.2f} ms"
        ),
        (
            f"  meters/hour on this machine: one event loop {loop_bound:,.0f}; sharing {cores} cores with "
            f"the simulator {shared_bound:,.0f}; figure {per_hour:,.0f} "
            f"(target >= {TARGET_PER_HOUR:,}: {hourly})"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=300)
    parser.add_argument("--threads", type=int, default=32, help="dlms-cosem thread pool size")
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--max-conversations", type=int, default=500, help="our head-end's limit")
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.latency_ms)
        return
    import logging

    import structlog

    # dlms-cosem logs every frame at debug level through structlog; keep its warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sim = Simulator(args.meters, args.latency_ms)
    try:
        ours = run_ours(sim, args.max_conversations)
        theirs = run_theirs(sim, args.threads)
    finally:
        sim.close()
    print(report(ours, theirs, args.latency_ms))


if __name__ == "__main__":
    main()
