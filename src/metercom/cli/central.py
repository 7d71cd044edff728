"""``metercom central``: the reference central receiver as a process.

Rule: the command owns the process, never the policy: it opens the receiver's store, starts
the listeners asked for (HTTP always; MQTT and NATS JetStream when given) and runs until SIGINT
or SIGTERM, then stops them, bounded. What is stored and when a batch is confirmed is
:mod:`metercom.service.central`'s business. Secrets are references (``env:``/``file:``).

    metercom central --listen http://127.0.0.1:8480 [--mqtt mqtt://127.0.0.1:1883]
                     [--nats nats://127.0.0.1:4222] [--store central.db] [--secret env:NAME]
                     [--keep-batch-ids 120d]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from datetime import timedelta
from typing import Any

from metercom.errors import ConfigError, InputError
from metercom.service.central import CentralReceiver
from metercom.service.cron import parse_duration
from metercom.service.secrets import parse_secret_ref
from metercom.service.store import Store

__all__ = ["register", "run_central"]

log = logging.getLogger(__name__)

_SubParsers = Any


def register(commands: _SubParsers) -> None:
    """Add ``metercom central``."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "central",
        help="run the reference central receiver (stores forwarded readings once each)",
        description=(
            "Receive batches forwarded by metercom collectors over HTTP (and MQTT / NATS JetStream) "
            "and store each batch once, confirming it by echoing its id."
        ),
    )
    parser.add_argument(
        "--listen", required=True, metavar="URL", help="http://host:port[/path] to receive POSTed batches"
    )
    parser.add_argument("--store", default="central.db", metavar="URL", help="store (SQLite path or URL)")
    parser.add_argument("--secret", metavar="REF", help="HMAC secret reference (env:NAME or file:/path)")
    parser.add_argument("--mqtt", metavar="URL", help="also receive from an MQTT broker (mqtt://host:port)")
    parser.add_argument("--topic-prefix", default="metercom", help="MQTT topic prefix (default: metercom)")
    parser.add_argument(
        "--nats", metavar="URL", help="also consume a NATS JetStream stream (nats://host:port)"
    )
    parser.add_argument("--stream", default="METERCOM", help="JetStream stream name (default: METERCOM)")
    parser.add_argument(
        "--subject-prefix",
        default="metercom.batches",
        help="JetStream subject prefix (default: metercom.batches)",
    )
    parser.add_argument(
        "--keep-batch-ids",
        default="120d",
        metavar="DURATION",
        help="how long stored batch ids are kept to recognise resends (default: 120d; keep it longer "
        "than the collectors' keep_unsent)",
    )
    parser.set_defaults(handler=run_central)


def run_central(args: argparse.Namespace) -> int:
    secret = parse_secret_ref(args.secret, allow_named=False) if args.secret else None
    try:
        args.keep_batch_ids = parse_duration(args.keep_batch_ids)
    except InputError as exc:
        raise ConfigError(f"--keep-batch-ids: {exc}") from None
    if args.keep_batch_ids <= timedelta(0):
        raise ConfigError("--keep-batch-ids must be positive")
    if secret is None:
        log.warning("central: no --secret given; HTTP batches are accepted unsigned")
    asyncio.run(_serve(args, secret))
    return 0


async def _serve(args: argparse.Namespace, secret: Any) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    async with await Store.open(args.store) as store:
        receiver = CentralReceiver(store, secret=secret, keep_batch_ids=args.keep_batch_ids)
        try:
            url = await receiver.start_http(args.listen)
            print(f"metercom central: receiving batches at {url} into {store.url}", flush=True)
            if args.mqtt:
                await receiver.start_mqtt(args.mqtt, topic_prefix=args.topic_prefix)
                print(
                    f"metercom central: subscribed at {args.mqtt} ({args.topic_prefix}/+/batches)", flush=True
                )
            if args.nats:
                await receiver.start_nats(args.nats, stream=args.stream, subject_prefix=args.subject_prefix)
                print(f"metercom central: consuming stream {args.stream} at {args.nats}", flush=True)
            await stop.wait()
        finally:
            async with asyncio.timeout(10):
                await receiver.close()
        s = receiver.stats
        print(
            f"metercom central: stopped; {s.batches} batches, {s.inserted} readings stored, "
            f"{s.duplicates} repeats recognised, {s.rejected} rejected",
            flush=True,
        )
