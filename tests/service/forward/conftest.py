"""Fixtures of the forwarding tests: a fleet writing readings, and the MQTT/NATS servers.

The brokers come from ``METERCOM_TEST_MQTT`` (default ``mqtt://127.0.0.1:1883``) and
``METERCOM_TEST_NATS`` (default ``nats://127.0.0.1:4222``, JetStream enabled). Unreachable
servers skip those tests locally and fail them under ``CI`` (any value but ``0``/``false``),
like PostgreSQL in ``tests/conftest.py``.
"""

from __future__ import annotations

import os
import socket
import urllib.parse
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from metercom.clock import Clock
from metercom.model.obis import Obis
from metercom.model.reading import Reading
from metercom.service.store import MeterRecord, Store

MQTT_URL = os.environ.get("METERCOM_TEST_MQTT", "mqtt://127.0.0.1:1883")
NATS_URL = os.environ.get("METERCOM_TEST_NATS", "nats://127.0.0.1:4222")
T0 = datetime(2026, 1, 1, tzinfo=UTC)
SERIES = (
    (Obis.parse("1-0:1.8.0*255"), "kWh"),
    (Obis.parse("1-0:2.8.0*255"), "kWh"),
    (Obis.parse("1-0:32.7.0*255"), "V"),
    (Obis.parse("1-0:16.7.0*255"), "W"),
)


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def _reachable(url: str, what: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    try:
        with socket.create_connection((parsed.hostname, parsed.port or 0), timeout=2):
            pass
    except OSError as exc:
        message = f"{what} is not reachable at {url} ({exc})"
        if _in_ci():
            pytest.fail(f"CI requires {what} for the forwarding tests: {message}")
        pytest.skip(message)
    return url


@pytest.fixture
def mqtt_url() -> str:
    return _reachable(MQTT_URL, "Mosquitto")


@pytest.fixture
def nats_url() -> str:
    return _reachable(NATS_URL, "NATS")


@pytest.fixture
def unique() -> str:
    """A short unique token for topic prefixes, stream names and node names."""
    return uuid.uuid4().hex[:10]


class Fleet:
    """Meters ``m000``.. writing the four SERIES every ``step`` from T0."""

    def __init__(self, meters: int, step: timedelta = timedelta(minutes=15)) -> None:
        self.ids = [f"m{n:03d}" for n in range(meters)]
        self.step = step

    async def open(self, url: str, *, clock: Clock | None = None) -> Store:
        store = await Store.open(url, clock=clock)
        records = [MeterRecord(i, "iec21", "bus", str(n)) for n, i in enumerate(self.ids)]
        await store.apply_config_version(
            text="# forward tests", sha256="0" * 64, source="test", actor="tester", summary="", meters=records
        )
        return store

    def readings(self, tick: int, meter: int) -> list[Reading]:
        when = T0 + self.step * tick
        return [
            Reading(obis, Decimal(tick * 10 + meter) / 10 + k, unit, when)
            for k, (obis, unit) in enumerate(SERIES)
        ]

    async def write(self, store: Store, tick: int) -> int:
        """Store one tick of every meter; returns the readings written."""
        for n, meter_id in enumerate(self.ids):
            await store.save_readings(meter_id, self.readings(tick, n))
        return len(self.ids) * len(SERIES)

    def expected(self, ticks: range) -> set[tuple[str, str, datetime, str]]:
        out = set()
        for tick in ticks:
            for n, meter_id in enumerate(self.ids):
                for r in self.readings(tick, n):
                    assert r.obis is not None
                    assert r.captured_at is not None
                    out.add((meter_id, str(r.obis), r.captured_at, str(r.value)))
        return out


@pytest.fixture
def fleet() -> Callable[..., Fleet]:
    return Fleet
