"""Forwarding throughput: readings per second moved from the outbox to the central, per sink.

Each sink forwards the same backlog (``--readings``, default 20,000, in a SQLite store) to the
reference receiver on loopback: HTTP (signed POST, id echoed), MQTT through Mosquitto (QoS 1,
id echoed on the reply topic; state topics and discovery off, as they are not forwarding) and
NATS JetStream (PubAck; the receiver consumes the stream in parallel). The rate counts readings
whose confirmation was recorded in the local store, from the first claim to the empty outbox,
so it includes both stores' transactions. Servers: ``--mqtt`` and ``--nats`` (a sink whose
server cannot be reached is skipped). No peer forwards with application-level confirmation,
so there is no side-by-side ratio here.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import tempfile
import time
import urllib.parse
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.central import CentralReceiver
from metercom.service.forward import (
    Forwarder,
    ForwardPolicy,
    HttpSink,
    JetStreamSink,
    MqttSink,
    Sink,
    Upstream,
)
from metercom.service.secrets import Secret
from metercom.service.store import MeterRecord, Store

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = Secret("bench", origin="bench")


def _reachable(url: str) -> bool:
    parsed = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 0), timeout=1):
            return True
    except OSError:
        return False


async def _backlog(path: Path, readings: int, sink: str) -> Store:
    store = await Store.open(path)
    meters = [f"m{n:03d}" for n in range(20)]
    await store.apply_config_version(
        text="#",
        sha256="0" * 64,
        source="bench",
        actor="bench",
        summary="",
        meters=[MeterRecord(m, "iec21", "bus", str(n)) for n, m in enumerate(meters)],
    )
    await store.register_outbox_sinks([sink])
    codes = [Obis(1, 0, 1, 8, e, 255) for e in range(50)]
    written, tick = 0, 0
    while written < readings:
        when = T0 + timedelta(minutes=15 * tick)
        for n, m in enumerate(meters):
            batch = [Reading(c, Decimal(tick * 100 + n) + k, "kWh", when) for k, c in enumerate(codes)]
            await store.save_readings(m, batch)
            written += len(batch)
        tick += 1
    return store


async def _run(kind: str, args: argparse.Namespace, tmp: Path) -> tuple[int, float] | None:
    token = uuid.uuid4().hex[:8]
    async with await Store.open(tmp / f"{kind}-central.db") as central:
        receiver = CentralReceiver(central, secret=SECRET)
        sink: Sink
        if kind == "http":
            url = await receiver.start_http("http://127.0.0.1:0")
            sink = HttpSink("http", url, source="bench", secret=SECRET)
        elif kind == "mqtt":
            if not _reachable(args.mqtt):
                return None
            prefix = f"bench{token}"
            await receiver.start_mqtt(args.mqtt, topic_prefix=prefix)
            sink = MqttSink(
                "mqtt", args.mqtt, source="bench", topic_prefix=prefix, state_topics=False, discovery=False
            )
        else:
            if not _reachable(args.nats):
                return None
            stream, subjects = f"BENCH{token}", f"bench{token}"
            await receiver.start_nats(args.nats, stream=stream, subject_prefix=subjects, fetch_timeout_s=1)
            sink = JetStreamSink("nats", args.nats, source="bench", stream=stream, subject_prefix=subjects)
        local = await _backlog(tmp / f"{kind}-local.db", args.readings, sink.name)
        (backlog,) = await local.outbox_backlog(sink.name)
        policy = ForwardPolicy(batch_size=args.batch, interval_s=0.05, live_share=0.0, retry_min_s=0.05)
        forwarder = Forwarder(local, [Upstream(sink, policy)])
        start = time.perf_counter()
        await forwarder.start()
        await forwarder.wait_drained(poll_s=0.02)
        elapsed = time.perf_counter() - start
        await forwarder.stop()
        await local.close()
        if kind == "nats":
            async with asyncio.timeout(120):
                while receiver.stats.inserted < backlog.pending:  # noqa: ASYNC110 - a counter
                    await asyncio.sleep(0.05)
            import nats

            nc = await nats.connect(args.nats)
            await nc.jetstream().delete_stream(stream)
            await nc.close()
        await receiver.close()
        return backlog.pending, elapsed


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--readings", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=1000, help="readings per batch")
    parser.add_argument("--mqtt", default="mqtt://127.0.0.1:1883")
    parser.add_argument("--nats", default="nats://127.0.0.1:4222")
    parser.add_argument("--sinks", default="http,mqtt,nats")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    print(f"forwarding {args.readings:,} readings in batches of {args.batch} (SQLite stores, loopback)")
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.sinks.split(","):
            result = asyncio.run(_run(kind, args, Path(tmp)))
            if result is None:
                print(f"  {kind:5s} skipped (server not reachable)")
                continue
            count, elapsed = result
            print(f"  {kind:5s} {count / elapsed:10,.0f} readings/s  ({count:,} in {elapsed:.2f} s)")


if __name__ == "__main__":
    main()
