"""Webhooks POSTed to a local HTTP server on 127.0.0.1, with the HMAC-SHA256 signature verified.

The server is a few lines of asyncio in the test's own event loop, so the tests stay on the
virtual clock (no ``realtime`` marker, no ``real_grace_s``) and retries take no real time.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.service.notify import (
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    Alarm,
    AlarmCenter,
    AlarmKind,
    DeliveryStatus,
    RetryPolicy,
    Route,
    WebhookChannel,
    sign_payload,
    verify_signature,
)
from metercom.service.secrets import Secret, parse_secret_ref

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SECRET = "whsec-0123456789abcdef"


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """An HTTP/1.1 endpoint answering each request with the next of ``statuses`` (then 200)."""

    statuses: list[int | tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)
    server: asyncio.Server | None = None

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        port = self.server.sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}/hooks/metercom"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while line := await reader.readline():
                method, path, _ = line.decode().split(" ", 2)
                headers: dict[str, str] = {}
                while (header := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = header.decode().partition(":")
                    headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                self.requests.append(Request(method, path, headers, body))
                answer = self.statuses.pop(0) if self.statuses else 200
                status, extra = answer if isinstance(answer, tuple) else (answer, {})
                lines = [
                    f"HTTP/1.1 {status} X",
                    "Content-Length: 0",
                    *(f"{k}: {v}" for k, v in extra.items()),
                ]
                writer.write(("\r\n".join(lines) + "\r\n\r\n").encode())
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


def _channel(url: str, vclock: VirtualClock) -> WebhookChannel:
    return WebhookChannel(url, secret=Secret(SECRET, origin="test"), trust_env=False, clock=vclock)


def _alarm() -> Alarm:
    return Alarm.of(AlarmKind.COVER_OPEN, "meter-3", T0, "main cover opened", details={"code": 41})


async def test_webhook_is_delivered_signed_and_verifiable(vclock: VirtualClock) -> None:
    receiver = Receiver()
    url = await receiver.start()
    async with AlarmCenter({"hook": _channel(url, vclock)}, [Route(("hook",))]) as center:
        record = center.raise_alarm(_alarm()).record
        await center.wait_idle()
    await receiver.stop()
    (request,) = receiver.requests
    assert (request.method, request.path) == ("POST", "/hooks/metercom")
    assert request.headers["content-type"] == "application/json"
    assert request.headers["x-metercom-delivery"] == f"{record.alarm_id}.1"
    assert request.headers["x-metercom-event"] == "raised"
    timestamp = request.headers[TIMESTAMP_HEADER.lower()]
    signature = request.headers[SIGNATURE_HEADER.lower()]
    assert timestamp == str(int(vclock.now().timestamp()))
    assert verify_signature(SECRET.encode(), request.body, timestamp, signature, now=vclock.now())
    body = json.loads(request.body)
    assert body["alarm_id"] == record.alarm_id
    assert (body["kind"], body["meter_id"], body["severity"], body["event"]) == (
        "cover_open",
        "meter-3",
        "critical",
        "raised",
    )
    assert body["details"] == {"code": 41}
    assert body["at"] == "2026-01-01T00:00:00+00:00"
    assert record.deliveries[0].status is DeliveryStatus.DELIVERED


def test_signature_checks_reject_tampering_replay_and_wrong_keys() -> None:
    body = b'{"kind":"tamper"}'
    now = datetime(2026, 1, 1, 12, tzinfo=UTC)
    ts = int(now.timestamp())
    good = sign_payload(b"key", ts, body)
    assert good.startswith("sha256=")
    assert len(good) == len("sha256=") + 64
    assert verify_signature(b"key", body, str(ts), good, now=now)
    assert not verify_signature(b"key", body + b" ", str(ts), good, now=now)
    assert not verify_signature(b"other", body, str(ts), good, now=now)
    assert not verify_signature(b"key", body, str(ts + 1), good, now=now)
    assert not verify_signature(b"key", body, str(ts), good, now=now + timedelta(minutes=6))
    assert not verify_signature(b"key", body, "yesterday", good, now=now)


async def test_server_errors_are_retried_with_backoff(vclock: VirtualClock) -> None:
    receiver = Receiver(statuses=[500, 503, (429, {"Retry-After": "60"})])
    url = await receiver.start()
    retry = RetryPolicy(max_attempts=6, first_delay_s=2, factor=2)
    async with AlarmCenter({"hook": _channel(url, vclock)}, [Route(("hook",))], retry=retry) as center:
        t = vclock.monotonic()
        record = center.raise_alarm(_alarm()).record
        await center.wait_idle()
        elapsed = vclock.monotonic() - t
    await receiver.stop()
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 4)
    assert elapsed == pytest.approx(2 + 4 + 60)  # backoff 2 s, 4 s, then the server's Retry-After
    ids = {r.headers["x-metercom-delivery"] for r in receiver.requests}
    assert len(receiver.requests) == 4
    assert ids == {f"{record.alarm_id}.1"}  # the receiver can drop repeats by this id
    for request in receiver.requests:  # every retry is signed afresh
        ts = request.headers[TIMESTAMP_HEADER.lower()]
        assert verify_signature(
            SECRET.encode(), request.body, ts, request.headers[SIGNATURE_HEADER.lower()], now=vclock.now()
        )


async def test_a_client_error_is_permanent(vclock: VirtualClock, caplog: pytest.LogCaptureFixture) -> None:
    receiver = Receiver(statuses=[404])
    url = await receiver.start()
    async with AlarmCenter({"hook": _channel(url, vclock)}, [Route(("hook",))]) as center:
        record = center.raise_alarm(_alarm()).record
        await center.wait_idle()
    await receiver.stop()
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.FAILED, 1)
    assert delivery.last_error == f"webhook {url}: HTTP 404 X"
    assert SECRET not in caplog.text


async def test_an_unreachable_receiver_is_retried_until_it_listens(vclock: VirtualClock) -> None:
    receiver = Receiver()
    url = await receiver.start()
    await receiver.stop()  # the port is now closed: connection refused
    port = int(url.split(":")[2].split("/")[0])
    retry = RetryPolicy(max_attempts=4, first_delay_s=10, factor=1)
    requests: list[bytes] = []

    async def later() -> asyncio.Server:
        await asyncio.sleep(15)

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            data = await reader.read(65536)
            requests.append(data)
            writer.write(b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()

        return await asyncio.start_server(handle, "127.0.0.1", port)

    async with AlarmCenter({"hook": _channel(url, vclock)}, [Route(("hook",))], retry=retry) as center:
        starting = asyncio.create_task(later())
        record = center.raise_alarm(_alarm()).record
        await center.wait_idle()
        server = await starting
    server.close()
    await server.wait_closed()
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.DELIVERED, 3)  # 0 s, 10 s refused, 20 s
    assert "ConnectError" in (delivery.last_error or "")
    assert len(requests) == 1


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("ftp://example.test/x", "http"),
        ("https://user:pw@example.test/x", "no credentials"),
    ],
)
def test_configuration_errors(url: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        WebhookChannel(url, secret=parse_secret_ref("env:HOOK_KEY"))


def test_repr_names_the_reference_not_the_secret() -> None:
    channel = WebhookChannel("https://example.test/x", secret=parse_secret_ref("env:HOOK_KEY"))
    assert repr(channel) == "WebhookChannel('https://example.test/x', secret=env:HOOK_KEY)"
