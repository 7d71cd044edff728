"""Benchmark: collecting N simulated TCP DLMS meters with our head-end vs a dlms-cosem thread pool.

Rule: the same meters, the same work, the same run. Separate processes (``--sim-processes``,
default 2) serve N simulated DLMS meters between them (:func:`metercom.sim.dlms.serve_fleet`,
IP wrapper on loopback TCP, 50 ms simulated latency before every answer), so CPU is measured per
side and the simulator is not one process every client queues behind. Before anything is
measured each simulator computes the day of load profile both sides will ask for (the meter
model caches computed rows), so neither side pays for the simulator's first computation.
Each meter is read once per side, with the same requests: associate as the LLS reader
(client 32); one get-request-with-list for the energy registers 1.8.0 and 2.8.0, their
scaler_unit and the clock; the load profile's capture objects (1-0:99.1.0 attribute 3) and the
scaler_unit of its scaled columns; the last day of the profile (30-minute rows of 7 columns,
selective access by range); release. The meters use the ``india`` device profile, whose LLS
reader association can read energy (the generic profile's public client cannot).

* ours: :class:`~metercom.service.headend.HeadEnd` with the DLMS adapter, one on-demand read
  cycle per meter, everything stored in a SQLite file (readings, 48 profile rows, markers; no
  upstream sink is registered, so no outbox rows) and the gap check that follows every profile
  save, on one event loop plus the store's one writer thread;
* theirs: dlms-cosem 25.1's blocking ``DlmsClient`` in a ``ThreadPoolExecutor`` of each size in
  ``--threads`` (default 8, 32, 64, 128, 256), decoding every answer with dlms-cosem's A-XDR
  parser (``parse_as_dlms_data``) and nothing stored. The best size is the one compared against.

Every side runs ``--rounds`` times (default 2), alternating, and the best run of each counts: the
machine is shared, so a single run can be slowed by someone else's work.

Reported: meters per minute for both and the ratio to the best pool (target >= 5x); our CPU per
meter (process time of the read phase / N; the one-off set-up -- schema, configuration of N
meters -- is shown apart), split exactly between the store's writer thread and the event loop
thread, and the loop thread's share by layer (codec and COSEM model, session and transport,
collector and adapter, store preparation, asyncio) from a separate :mod:`cProfile` run;
the simulators' CPU per meter for each side; and meters per hour for this machine: our event
loop is bound at ``3600 / CPU per meter``, and with the simulators beside it on the same cores
at ``cores * 3600 / (ours + simulator)``; the smaller is the figure (target >= 100,000).

Run: ``python -m bench.headend [--meters N] [--threads 8,32,64,128,256] [--latency-ms MS]
[--sim-processes K]``.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import itertools
import json
import os
import pstats
import subprocess
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

__all__ = ["main"]

TARGET_RATIO = 5.0
TARGET_PER_HOUR = 100_000
LLS_CLIENT = 32
PROFILE = "1.0.99.1.0.255"
#: Which attribute scales which, for the classes of profile columns (Blue Book: Register and
#: Extended register value by scaler_unit 3, Demand register values by scaler_unit 4).
SCALED_BY = {3: {2: 3}, 4: {2: 3}, 5: {2: 4, 3: 4}}


# -- the simulator processes ----------------------------------------------------------------------


def _serve(n: int, latency_ms: float, first: int) -> None:
    """Child process: serve meters ``first`` .. ``first + n - 1`` of the fleet; print their URLs;
    answer ``cpu`` with this process's CPU time and the requests served so far."""
    from metercom.clock import SystemClock
    from metercom.codec.dlms.server import select_buffer
    from metercom.codec.dlms.xdlms import RangeDescriptor
    from metercom.sim.dlms import serve_fleet

    async def run() -> None:
        fleet = await serve_fleet(
            n,
            "tcp://127.0.0.1:0",
            profile="india",
            latency_ms=latency_ms,
            seed=5 + first,
            clock=SystemClock(),
        )
        # Compute the day of profile both sides will read, once, before anything is measured.
        for m in fleet.meters:
            meter = m.device.meter
            now = meter.meter_now()
            selection = RangeDescriptor.by_time(now - timedelta(days=1, hours=1), now).to_selective_access()
            select_buffer(meter.profile_buffer(meter.profile.object(PROFILE)), selection)
        print(json.dumps([m.url for m in fleet.meters]), flush=True)
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := await reader.readline():
            if line.strip() == b"cpu":
                requests = sum(m.device.requests for m in fleet.meters)
                print(f"{time.process_time():.6f} {requests}", flush=True)
        fleet.close()

    asyncio.run(run())


class Simulator:
    """``processes`` child processes serving ``n`` meters between them."""

    def __init__(self, n: int, latency_ms: float, processes: int) -> None:
        processes = max(1, min(processes, n))
        self.procs: list[subprocess.Popen[str]] = []
        bounds = [n * i // processes for i in range(processes + 1)]
        for lo, hi in itertools.pairwise(bounds):
            self.procs.append(
                subprocess.Popen(  # noqa: S603 - this module, as a child
                    [
                        sys.executable,
                        "-m",
                        "bench.headend",
                        "--serve",
                        str(hi - lo),
                        "--first",
                        str(lo),
                        "--latency-ms",
                        str(latency_ms),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=Path(__file__).resolve().parents[1],
                )
            )
        self.urls: list[str] = []
        for proc in self.procs:  # every child builds its meters at the same time
            assert proc.stdout is not None
            self.urls.extend(json.loads(proc.stdout.readline()))

    def usage(self) -> tuple[float, int]:
        """CPU seconds of every simulator process and the DLMS requests they answered."""
        cpu, requests = 0.0, 0
        for proc in self.procs:
            assert proc.stdin is not None
            assert proc.stdout is not None
            proc.stdin.write("cpu\n")
            proc.stdin.flush()
        for proc in self.procs:
            assert proc.stdout is not None
            seconds, count = proc.stdout.readline().split()
            cpu += float(seconds)
            requests += int(count)
        return cpu, requests

    def close(self) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.close()
        for proc in self.procs:
            proc.wait(timeout=30)


# -- our CPU by layer -----------------------------------------------------------------------------

#: (path fragment, layer): a function's own time goes to the first fragment its file contains.
LAYERS = (
    ("/metercom/codec/", "codec+model"),
    ("/metercom/model/", "codec+model"),
    ("/metercom/session/", "session+transport"),
    ("/metercom/transport/", "session+transport"),
    ("/metercom/service/store/", "store (loop side)"),
    ("/sqlalchemy/", "store (loop side)"),
    ("/metercom/service/", "collector+adapter"),
    ("/asyncio/", "event loop"),
    ("selectors.py", "event loop"),
)


def layer_split(stats: Any) -> dict[str, float]:
    """Shares of the event loop thread's own time by layer, from :mod:`cProfile` statistics.

    A function outside every layer (a builtin such as ``socket.send``, the ``json`` or
    ``decimal`` modules) counts for its callers' layers, in proportion to the time each call
    edge took; waiting in ``epoll`` is not work and is left out.
    """
    table: dict[Any, Any] = stats.stats

    def own_layer(func: tuple[str, int, str]) -> str | None:
        filename = func[0]
        return next((label for fragment, label in LAYERS if fragment in filename), None)

    def shares(func: tuple[str, int, str], depth: int) -> Counter[str]:
        layer = own_layer(func)
        if layer is not None:
            return Counter({layer: 1.0})
        callers = table.get(func, (0, 0, 0, 0, {}))[4]
        total = sum(edge[2] for edge in callers.values())
        if depth > 6 or not total:
            return Counter({"other": 1.0})
        out: Counter[str] = Counter()
        for caller, edge in callers.items():
            for name, share in shares(caller, depth + 1).items():
                out[name] += share * edge[2] / total
        return out

    totals: Counter[str] = Counter()
    for func, (_, _, own, _, _) in table.items():
        if "poll' of 'select.epoll" in func[2]:
            continue  # waiting, not working
        for name, share in shares(func, 0).items():
            totals[name] += own * share
    whole = sum(totals.values())
    return {k: v / whole for k, v in totals.most_common()} if whole else {}


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
    requests: int
    detail: str = ""
    setup_s: float = 0.0
    store_cpu_s: float = 0.0
    split: dict[str, float] = field(default_factory=dict)

    @property
    def per_minute(self) -> float:
        return self.ok / self.wall_s * 60 if self.wall_s else 0.0


async def _ours(
    urls: list[str], folder: Path, max_conversations: int, sim: Simulator, *, profile: bool
) -> Side:
    from metercom.service.adapters import MeterSessionFactory
    from metercom.service.config_store import ConfigStore
    from metercom.service.headend import HeadEnd
    from metercom.service.store import Store
    from metercom.sim.dlms import DEFAULT_LLS_PASSWORD

    setup0 = time.perf_counter()
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
        loop = asyncio.get_running_loop()

        async def store_thread_cpu() -> float:  # the store's one writer thread (SQLite)
            return await loop.run_in_executor(store._executor, time.thread_time)

        setup = time.perf_counter() - setup0
        profiler = cProfile.Profile() if profile else None
        store0 = await store_thread_cpu()
        (sim0, req0), cpu0, wall0 = sim.usage(), time.process_time(), time.perf_counter()
        if profiler is not None:
            profiler.enable()
        outcomes = await asyncio.gather(*(headend.read_now(f"m-{i:04d}", "daily") for i in range(len(urls))))
        if profiler is not None:
            profiler.disable()
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        sim1, req1 = sim.usage()
        store_cpu = await store_thread_cpu() - store0
        await headend.stop()
        ok = sum(o.ok for o in outcomes)
        rows = sum(o.saved.inserted for o in outcomes)
        errors = sorted({f"{type(o.error).__name__}: {o.error}" for o in outcomes if o.error is not None})
        detail = f"{rows} rows stored" + (f"; errors: {errors[:3]}" if errors else "")
        split = layer_split(pstats.Stats(profiler)) if profiler is not None else {}
        return Side(
            "metercom HeadEnd",
            len(urls),
            ok,
            wall,
            cpu,
            sim1 - sim0,
            req1 - req0,
            detail,
            setup_s=setup,
            store_cpu_s=store_cpu,
            split=split,
        )
    finally:
        await store.close()


def run_ours(
    sim: Simulator, max_conversations: int, *, meters: int | None = None, profile: bool = False
) -> Side:
    """Read ``meters`` of the simulated meters (all by default); ``profile`` runs the event loop
    under :mod:`cProfile` for the split by layer (slower: not a throughput figure)."""
    import metercom.service.adapters
    import metercom.service.headend  # noqa: F401 - imported before the clock starts

    urls = sim.urls[:meters] if meters else sim.urls
    with tempfile.TemporaryDirectory(prefix="metercom-bench-") as tmp:
        return asyncio.run(_ours(urls, Path(tmp), max_conversations, sim, profile=profile))


# -- theirs ---------------------------------------------------------------------------------------


def _peer_read(url: str) -> int:
    """One meter with dlms-cosem: the same requests as ours (see the module docstring), every
    answer decoded by dlms-cosem; returns the number of profile rows."""
    from dlms_cosem import cosem, enumerations
    from dlms_cosem.client import DlmsClient
    from dlms_cosem.cosem.attribute_with_selection import CosemAttributeWithSelection
    from dlms_cosem.cosem.capture_object import CaptureObject
    from dlms_cosem.cosem.selective_access import RangeDescriptor
    from dlms_cosem.io import BlockingTcpIO, TcpTransport
    from dlms_cosem.protocol.xdlms import GetResponseWithList
    from dlms_cosem.security import LowLevelSecurityAuthentication
    from dlms_cosem.utils import parse_as_dlms_data

    from metercom.sim.dlms import DEFAULT_LLS_PASSWORD

    def attr(interface: Any, obis: str | cosem.Obis, attribute: int) -> cosem.CosemAttribute:
        instance = obis if isinstance(obis, cosem.Obis) else cosem.Obis.from_string(obis)
        return cosem.CosemAttribute(interface=interface, instance=instance, attribute=attribute)

    def many(client: DlmsClient, attributes: list[cosem.CosemAttribute]) -> list[Any]:
        answer = client.get_many([CosemAttributeWithSelection(a, None) for a in attributes])
        if not isinstance(answer, GetResponseWithList):
            raise TypeError(f"GET with list answered with {answer!r}")
        return list(answer.result)

    host, port = url.removeprefix("tcp://").rsplit(":", 1)
    io = BlockingTcpIO(host, int(port), timeout=30)
    transport = TcpTransport(client_logical_address=LLS_CLIENT, server_logical_address=1, io=io)
    auth = LowLevelSecurityAuthentication(secret=DEFAULT_LLS_PASSWORD)
    clock = attr(enumerations.CosemInterface.CLOCK, "0.0.1.0.0.255", 2)
    register = enumerations.CosemInterface.REGISTER
    profile = enumerations.CosemInterface.PROFILE_GENERIC
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    with DlmsClient(transport=transport, authentication=auth, timeout=30).session() as client:
        energy = ("1.0.1.8.0.255", "1.0.2.8.0.255")
        many(
            client,
            [*(attr(register, o, 2) for o in energy), clock, *(attr(register, o, 3) for o in energy)],
        )
        columns = parse_as_dlms_data(client.get(attr(profile, PROFILE, 3)))
        scalers = []
        for class_id, logical_name, attribute, _ in columns:
            source = SCALED_BY.get(class_id, {}).get(attribute)
            if source is not None:
                interface = enumerations.CosemInterface(class_id)
                scalers.append(attr(interface, cosem.Obis.from_bytes(logical_name), source))
        if len(scalers) == 1:
            parse_as_dlms_data(client.get(scalers[0]))
        elif scalers:
            many(client, scalers)
        descriptor = RangeDescriptor(
            restricting_object=CaptureObject(cosem_attribute=clock),
            from_value=now - timedelta(days=1),
            to_value=now,
        )
        rows = parse_as_dlms_data(client.get(attr(profile, PROFILE, 2), descriptor))
    return len(rows)


def run_theirs(sim: Simulator, threads: int) -> Side:
    (sim0, req0), cpu0, wall0 = sim.usage(), time.process_time(), time.perf_counter()
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
    sim1, req1 = sim.usage()
    detail = f"{rows} profile rows decoded" + (f"; errors: {sorted(errors)[:3]}" if errors else "")
    return Side(
        f"dlms-cosem, {threads:3d} threads", len(sim.urls), ok, wall, cpu, sim1 - sim0, req1 - req0, detail
    )


# -- report ---------------------------------------------------------------------------------------


def report(
    ours: Side, split: Side, pools: list[Side], latency_ms: float, *, sim_processes: int, rounds: list[Side]
) -> str:
    cores = os.cpu_count() or 1
    best = max(pools, key=lambda side: side.per_minute)
    ratio = ours.per_minute / best.per_minute if best.per_minute else float("nan")
    per = 1000 / max(ours.ok, 1)
    cpu_ours = ours.cpu_s / max(ours.ok, 1)
    cpu_sim = ours.sim_cpu_s / max(ours.ok, 1)
    loop_bound = 3600 / cpu_ours
    shared_bound = cores * 3600 / (cpu_ours + cpu_sim)
    per_hour = min(loop_bound, shared_bound)
    head = (
        f"{ours.meters} simulated DLMS meters over loopback TCP, {latency_ms:g} ms per answer, "
        f"served by {sim_processes} simulator processes; {cores} cores; best of {len(rounds)} "
        f"alternating runs per side (ours: {' / '.join(f'{r.per_minute:,.0f}' for r in rounds)} meters/min)"
    )
    lines = [
        head,
        (
            "per meter: associate (LLS), 1.8.0 + 2.8.0 + scalers + clock in one GET with list, profile "
            "capture objects and column scalers, 1 day of 30-min block load profile, release"
        ),
    ]
    lines.extend(
        f"  {side.name:26} {side.ok}/{side.meters} read in {side.wall_s:6.2f} s = "
        f"{side.per_minute:8,.0f} meters/min; CPU {side.cpu_s / max(side.ok, 1) * 1000:5.2f} ms/meter, "
        f"simulators {side.sim_cpu_s / max(side.ok, 1) * 1000:5.2f} ms/meter; "
        f"{side.requests / max(side.ok, 1):.1f} requests/meter; {side.detail}"
        for side in (ours, *pools)
    )
    verdict = "ok" if ratio >= TARGET_RATIO else "BELOW TARGET"
    hourly = "ok" if per_hour >= TARGET_PER_HOUR else "BELOW TARGET"
    loop_ms = (ours.cpu_s - ours.store_cpu_s) * per
    needed = TARGET_RATIO * best.per_minute
    layers = ", ".join(f"{name} {share * loop_ms:.2f}" for name, share in split.split.items())
    lines += [
        (
            f"  ratio ours / best pool ({best.name.strip()}): {ratio:.1f}x "
            f"(target >= {TARGET_RATIO:g}x: {verdict})"
        ),
        (
            f"  our CPU per meter: {cpu_ours * 1000:.2f} ms = store thread (SQLite, SQLAlchemy) "
            f"{ours.store_cpu_s * per:.2f} + event loop thread {loop_ms:.2f}; one-off set-up of "
            f"{ours.meters} meters (schema, configuration) {ours.setup_s:.2f} s not included"
        ),
        f"  event loop thread by layer (ms/meter, shares from a cProfile run of {split.ok} meters): {layers}",
        f"  simulators' CPU per meter while we read: {cpu_sim * 1000:.2f} ms",
        (
            f"  what bounds the ratio: {TARGET_RATIO:g}x the best pool is {needed:,.0f} meters/min, i.e. at "
            f"most {60_000 / needed:.2f} ms of CPU per meter on our one event loop (GIL); ours takes "
            f"{cpu_ours * 1000:.2f} ms, the pool "
            f"{best.cpu_s / max(best.ok, 1) * 1000:.2f} ms (it stores nothing), the simulators another "
            f"{best.sim_cpu_s / max(best.ok, 1) * 1000:.2f} ms on the same {cores} cores"
        ),
        (
            f"  meters/hour on this machine: one event loop {loop_bound:,.0f}; sharing {cores} cores with "
            f"the simulators {shared_bound:,.0f}; figure {per_hour:,.0f} "
            f"(target >= {TARGET_PER_HOUR:,}: {hourly}); measured here {ours.per_minute * 60:,.0f}"
        ),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--meters", type=int, default=600)
    parser.add_argument(
        "--threads", default="8,32,64,128,256", help="dlms-cosem thread pool sizes, comma-separated"
    )
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--sim-processes", type=int, default=2)
    parser.add_argument(
        "--rounds", type=int, default=2, help="runs of every side, alternating; the best run of each counts"
    )
    parser.add_argument(
        "--profile-meters", type=int, default=200, help="meters of the cProfile run for the split by layer"
    )
    parser.add_argument("--max-conversations", type=int, default=500, help="our head-end's limit")
    parser.add_argument("--serve", type=int, metavar="N", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.latency_ms, args.first)
        return
    import logging

    import structlog

    # dlms-cosem logs every frame at debug level through structlog; keep its warnings only.
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    sizes = [int(t) for t in str(args.threads).split(",") if t.strip()]
    sim = Simulator(args.meters, args.latency_ms, args.sim_processes)
    try:
        # The same turns for both sides, alternating; the best run of each counts.
        runs = [
            [run_ours(sim, args.max_conversations), *(run_theirs(sim, t) for t in sizes)]
            for _ in range(max(1, args.rounds))
        ]
        split = run_ours(sim, args.max_conversations, meters=args.profile_meters, profile=True)
    finally:
        sim.close()
    best = [max(column, key=lambda side: side.per_minute) for column in zip(*runs, strict=True)]
    print(
        report(
            best[0],
            split,
            best[1:],
            args.latency_ms,
            sim_processes=len(sim.procs),
            rounds=[r[0] for r in runs],
        )
    )


if __name__ == "__main__":
    main()
