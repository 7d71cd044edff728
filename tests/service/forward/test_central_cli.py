"""``metercom central``: starts, receives a signed batch over HTTP, stops on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

from metercom.service.forward import HttpSink
from metercom.service.secrets import Secret
from metercom.service.store import OutboxBatch, OutboxItem

RUN = (
    "import argparse, sys\n"
    "from metercom.cli import central\n"
    "p = argparse.ArgumentParser(); c = p.add_subparsers(); central.register(c)\n"
    "a = p.parse_args(sys.argv[1:]); sys.exit(a.handler(a))\n"
)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_central_command(tmp_path: Path) -> None:
    port = free_port()
    env = {**os.environ, "CENTRAL_SECRET": "cli-secret"}
    proc = subprocess.Popen(  # noqa: S603
        [
            sys.executable,
            "-c",
            RUN,
            "central",
            "--listen",
            f"http://127.0.0.1:{port}",
            "--store",
            str(tmp_path / "central.db"),
            "--secret",
            "env:CENTRAL_SECRET",
        ],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    try:
        assert "receiving batches at" in proc.stdout.readline()
        when = datetime(2026, 1, 1, tzinfo=UTC)
        item = OutboxItem(
            1, "m1", "1-0:1.8.0*255", when, Decimal("1.5"), "decimal", "1.5", "kWh", "ok", 0, when
        )
        sink = HttpSink(
            "c", f"http://127.0.0.1:{port}/batches", source="cli", secret=Secret("cli-secret", origin="t")
        )

        async def send() -> None:
            await sink.send(OutboxBatch("c", "batch-1", (item,)))
            await sink.send(OutboxBatch("c", "batch-1", (item,)))
            await sink.close()

        asyncio.run(send())
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
        out = proc.stdout.read()
        assert "1 batches, 1 readings stored, 1 repeats recognised" in out
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stdout.close()
