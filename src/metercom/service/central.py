"""The reference central receiver: stores forwarded batches once each and confirms them.

Rule: a batch is confirmed (its id echoed back) only after it is committed to the receiver's
store, and the batch id is committed in the same transaction as its readings
(:meth:`~metercom.service.store.Store.save_received_batch`), so a batch that arrives again (a
resend after a lost confirmation, an MQTT redelivery, a JetStream message stored twice after a
long outage) is recognised and never applied twice. Readings are upserted by natural key
(meter, OBIS, capture time) like every store write, which makes even a foreign duplicate a
no-op. For tests, demos and small installations: ``metercom central --listen http://...``.

Three ways in, all optional and all into the same store:

* HTTP (``start_http``): ``POST <path>`` (default ``/batches``) with a metercom-batch/1 body,
  signed as described in :mod:`metercom.service.forward.http` (checked when the receiver has a
  secret: 401 otherwise); answers 200 ``{"batch_id": ..., "duplicate": ..., "readings": n}``;
  400 for a malformed batch, 503 when the store failed (the sender retries). ``GET /health``
  gives the counters. The server is h11 (sans-I/O HTTP/1.1, keep-alive) on asyncio streams.
* MQTT (``start_mqtt``): subscribes ``<prefix>/+/batches`` (QoS 1) and publishes the
  confirmation to ``<prefix>/<node>/confirmations`` after storing.
* NATS JetStream (``start_nats``): a durable pull consumer on the stream; a message is acked
  after its batch is stored (a crash in between redelivers it, and the batch id catches it).

Batch ids are kept for de-duplication for ``keep_batch_ids`` (default 120 days, longer than a
sender's 90 days of unsent data), trimmed hourly while a listener runs (``expire_batch_ids``).
A batch resent after its id was forgotten is stored again as upserts of the same values
(counted as unchanged, never as a second copy).

Fault injection for tests: ``drop_confirmations`` (a fraction) with ``seed`` drops that share
of confirmations after the batch was stored (HTTP: the connection is aborted without an
answer; MQTT: no reply is published; NATS: the message is not acked, so it is redelivered).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import ssl
import urllib.parse
import uuid
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Final

import aiomqtt
import h11
import nats
import nats.errors
from nats.js.api import AckPolicy, ConsumerConfig

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError, InputError, StoreError, UploadError
from metercom.service.forward.jetstream import check_nats_url, ensure_stream
from metercom.service.forward.mqtt import parse_mqtt_url
from metercom.service.forward.sink import resolve_secret_text
from metercom.service.forward.wire import decode_batch, encode_confirmation
from metercom.service.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify_signature
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import ReceiveResult, Store

__all__ = ["DEFAULT_KEEP_BATCH_IDS", "CentralReceiver", "ReceiverStats"]

log = logging.getLogger(__name__)

#: How long received batch ids are kept (must exceed the senders' retention of unsent data).
DEFAULT_KEEP_BATCH_IDS: Final = timedelta(days=120)
_MAX_BODY: Final = 64 * 1024 * 1024
_READ_CHUNK: Final = 256 * 1024


@dataclass(slots=True)
class ReceiverStats:
    """Counters of a receiver since it started."""

    batches: int = 0
    duplicates: int = 0
    rejected: int = 0
    store_failures: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    confirmations_dropped: int = 0
    batch_ids_expired: int = 0


class _Answer(Exception):
    """An HTTP answer decided while handling a request."""

    def __init__(self, status: int, body: dict[str, object]) -> None:
        self.status = status
        self.body = body
        super().__init__(status)


class CentralReceiver:
    """Receives batches over HTTP, MQTT and NATS JetStream into ``store`` (module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        secret: SecretRef | Secret | None = None,
        clock: Clock | None = None,
        drop_confirmations: float = 0.0,
        seed: int | None = None,
        signature_tolerance_s: int = 300,
        keep_batch_ids: timedelta = DEFAULT_KEEP_BATCH_IDS,
        expire_every: timedelta = timedelta(hours=1),
    ) -> None:
        if not 0.0 <= drop_confirmations < 1.0:
            raise ConfigError("drop_confirmations is a fraction in [0, 1)")
        if keep_batch_ids <= timedelta(0) or expire_every <= timedelta(0):
            raise ConfigError("keep_batch_ids and expire_every must be positive")
        self.keep_batch_ids = keep_batch_ids
        self.expire_every = expire_every
        self._expiry_task: asyncio.Task[None] | None = None
        self.store = store
        self._secret = secret
        self._clock = clock
        self.drop_confirmations = drop_confirmations
        self._rng = random.Random(seed)
        self.signature_tolerance_s = signature_tolerance_s
        self.stats = ReceiverStats()
        self._lock = asyncio.Lock()
        self._server: asyncio.Server | None = None
        self._http_path = "/batches"
        self._connections: set[asyncio.StreamWriter] = set()
        self._mqtt_task: asyncio.Task[None] | None = None
        self._nats_task: asyncio.Task[None] | None = None
        self.http_url: str | None = None

    # -- the common path ----------------------------------------------------------------------

    async def receive(self, body: bytes) -> ReceiveResult:
        """Decode and store one batch (once); raises InputError (malformed) or StoreError."""
        try:
            batch = decode_batch(body)
        except InputError:
            self.stats.rejected += 1
            raise
        try:
            result = await self.store.save_received_batch(
                batch.batch_id,
                batch.readings,
                source=batch.source,
                profile_rows_=batch.profile_rows,
                events_=batch.events,
            )
        except StoreError:
            self.stats.store_failures += 1
            raise
        if result.duplicate:
            self.stats.duplicates += 1
        else:
            self.stats.batches += 1
            self.stats.inserted += result.result.inserted
            self.stats.updated += result.result.updated
            self.stats.unchanged += result.result.unchanged
        return result

    def _drop_confirmation(self) -> bool:
        if self.drop_confirmations and self._rng.random() < self.drop_confirmations:
            self.stats.confirmations_dropped += 1
            return True
        return False

    async def expire_batch_ids(self) -> int:
        """Forget batch ids received longer ago than ``keep_batch_ids``; returns how many."""
        n = await self.store.expire_received_batches(self.keep_batch_ids)
        self.stats.batch_ids_expired += n
        return n

    def _ensure_expiry(self) -> None:
        if self._expiry_task is None:
            self._expiry_task = asyncio.create_task(self._run_expiry(), name="central:expiry")

    async def _run_expiry(self) -> None:
        while True:
            try:
                n = await self.expire_batch_ids()
            except StoreError as exc:
                log.warning("central: cannot forget old batch ids: %s", exc)
            else:
                if n:
                    log.info("central: forgot %d batch ids older than %s", n, self.keep_batch_ids)
            await asyncio.sleep(self.expire_every.total_seconds())

    async def close(self) -> None:
        """Stop every listener (the store stays open: it belongs to the caller)."""
        await self.stop_http()
        await self.stop_mqtt()
        await self.stop_nats()
        task, self._expiry_task = self._expiry_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # -- HTTP -----------------------------------------------------------------------------------

    async def start_http(self, listen: str) -> str:
        """Serve ``http://host:port[/path]`` (port 0: any free one); returns the batches URL."""
        parsed = urllib.parse.urlsplit(listen)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ConfigError(f"--listen needs http://host:port[/path], got {listen!r}")
        try:
            port = parsed.port if parsed.port is not None else 80
        except ValueError:
            raise ConfigError(f"bad port in {listen!r}") from None
        self._http_path = parsed.path if parsed.path not in ("", "/") else "/batches"
        try:
            self._server = await asyncio.start_server(self._serve_connection, parsed.hostname, port)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {parsed.hostname}:{port}: {exc.strerror or exc}") from None
        self._ensure_expiry()
        host, bound = self._server.sockets[0].getsockname()[:2]
        self.http_url = f"http://{host}:{bound}{self._http_path}"
        log.info("central receiver listening on %s", self.http_url)
        return self.http_url

    async def stop_http(self) -> None:
        """Stop listening and drop open connections (a sender's batch in flight is resent)."""
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._connections):
            writer.transport.abort()
        self._connections.clear()
        await server.wait_closed()

    async def _serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=64 * 1024)
        self._connections.add(writer)
        try:
            while True:
                request, body = await self._read_request(conn, reader)
                if request is None:
                    return
                try:
                    result = await self._dispatch(request, body)
                except _Answer as answer:
                    status, payload = answer.status, json.dumps(answer.body).encode("utf-8")
                else:
                    if result is None:  # a dropped confirmation: stored, but no answer
                        writer.transport.abort()
                        return
                    status, payload = 200, encode_confirmation(result)
                headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload)))]
                writer.write(conn.send(h11.Response(status_code=status, headers=headers)))
                writer.write(conn.send(h11.Data(data=payload)))
                writer.write(conn.send(h11.EndOfMessage()))
                await writer.drain()
                if conn.our_state is h11.MUST_CLOSE or conn.their_state is h11.MUST_CLOSE:
                    return
                conn.start_next_cycle()
        except (ConnectionError, h11.ProtocolError, _TooLarge) as exc:
            log.debug("central: HTTP connection ended: %s", exc)
        finally:
            self._connections.discard(writer)
            writer.close()

    async def _read_request(
        self, conn: h11.Connection, reader: asyncio.StreamReader
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await reader.read(_READ_CHUNK))
            elif isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > _MAX_BODY:
                    raise _TooLarge(f"request body over {_MAX_BODY} bytes")
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            else:  # ConnectionClosed, or PAUSED between requests
                return None, b""

    async def _dispatch(self, request: h11.Request, body: bytes) -> ReceiveResult | None:
        method = request.method.decode("ascii", "replace")
        path = request.target.decode("ascii", "replace").split("?", 1)[0]
        if path == "/health" and method == "GET":
            raise _Answer(200, {"status": "ok", **asdict(self.stats)})
        if path != self._http_path:
            raise _Answer(404, {"error": f"no such path {path}; batches go to {self._http_path}"})
        if method != "POST":
            raise _Answer(405, {"error": "POST batches"})
        if self._secret is not None:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
            try:
                secret = resolve_secret_text(self._secret, "central receiver").encode("utf-8")
            except UploadError as exc:
                raise _Answer(500, {"error": "the receiver's secret is not available"}) from exc
            ok = verify_signature(
                secret,
                body,
                headers.get(TIMESTAMP_HEADER.lower(), ""),
                headers.get(SIGNATURE_HEADER.lower(), ""),
                now=(self._clock or current_clock()).now(),
                tolerance_s=self.signature_tolerance_s,
            )
            if not ok:
                self.stats.rejected += 1
                raise _Answer(401, {"error": "bad or missing signature"})
        try:
            result = await self.receive(body)
        except InputError as exc:
            raise _Answer(400, {"error": str(exc)}) from None
        except StoreError as exc:
            log.warning("central: cannot store a batch: %s", exc)
            raise _Answer(503, {"error": "the receiver's store failed; send again later"}) from None
        if self._drop_confirmation():
            return None
        return result

    # -- MQTT -----------------------------------------------------------------------------------

    async def start_mqtt(
        self,
        url: str = "mqtt://127.0.0.1:1883",
        *,
        topic_prefix: str = "metercom",
        username: str | None = None,
        password: SecretRef | Secret | None = None,
    ) -> None:
        """Receive batches from ``<topic_prefix>/+/batches`` and confirm on the reply topics."""
        host, port, tls = parse_mqtt_url(url)
        if self._mqtt_task is not None:
            return
        connected = asyncio.get_running_loop().create_future()
        self._mqtt_task = asyncio.create_task(
            self._mqtt_loop(
                host=host,
                port=port,
                tls=tls,
                prefix=topic_prefix.strip("/"),
                username=username,
                password=password,
                connected=connected,
            ),
            name="central:mqtt",
        )
        self._ensure_expiry()
        await connected

    async def stop_mqtt(self) -> None:
        task, self._mqtt_task = self._mqtt_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _mqtt_loop(
        self,
        *,
        host: str,
        port: int,
        tls: bool,
        prefix: str,
        username: str | None,
        password: SecretRef | Secret | None,
        connected: asyncio.Future[None],
    ) -> None:
        client_id = f"metercom-central-{uuid.uuid4().hex[:12]}"
        while True:
            try:
                secret = resolve_secret_text(password, "central MQTT") if password is not None else None
                async with aiomqtt.Client(
                    host,
                    port,
                    identifier=client_id,
                    username=username,
                    password=secret,
                    clean_session=True,
                    tls_context=ssl.create_default_context() if tls else None,
                ) as client:
                    await client.subscribe(f"{prefix}/+/batches", qos=1)
                    if not connected.done():
                        connected.set_result(None)
                    async for message in client.messages:
                        node = str(message.topic).split("/")[-2]
                        try:
                            result = await self.receive(bytes(message.payload))
                        except (InputError, StoreError) as exc:
                            log.warning("central: batch on %s not stored: %s", message.topic, exc)
                            continue
                        if self._drop_confirmation():
                            continue
                        reply = f"{prefix}/{node}/confirmations"
                        await client.publish(reply, encode_confirmation(result), qos=1)
            except (aiomqtt.MqttError, UploadError) as exc:
                log.warning("central: MQTT %s:%d: %s; reconnecting", host, port, exc)
                await asyncio.sleep(1.0)

    # -- NATS JetStream -------------------------------------------------------------------------

    async def start_nats(
        self,
        url: str = "nats://127.0.0.1:4222",
        *,
        stream: str = "METERCOM",
        subject_prefix: str = "metercom.batches",
        durable: str = "metercom-central",
        duplicate_window_s: float = 3600.0,
        ack_wait_s: float = 30.0,
        fetch_timeout_s: float = 5.0,
    ) -> None:
        """Consume batches from ``stream`` with a durable pull consumer."""
        check_nats_url(url)
        if self._nats_task is not None:
            return
        connected = asyncio.get_running_loop().create_future()
        self._nats_task = asyncio.create_task(
            self._nats_loop(
                url=url,
                stream=stream,
                prefix=subject_prefix.strip("."),
                durable=durable,
                duplicate_window_s=duplicate_window_s,
                ack_wait_s=ack_wait_s,
                fetch_timeout_s=fetch_timeout_s,
                connected=connected,
            ),
            name="central:nats",
        )
        self._ensure_expiry()
        await connected

    async def stop_nats(self) -> None:
        task, self._nats_task = self._nats_task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _nats_loop(
        self,
        *,
        url: str,
        stream: str,
        prefix: str,
        durable: str,
        duplicate_window_s: float,
        ack_wait_s: float,
        fetch_timeout_s: float,
        connected: asyncio.Future[None],
    ) -> None:
        async def on_error(exc: Exception) -> None:
            log.debug("central: NATS: %s", exc)

        while True:
            nc = None
            try:
                nc = await nats.connect(
                    servers=[url],
                    allow_reconnect=False,
                    max_reconnect_attempts=1,
                    reconnect_time_wait=0.1,
                    error_cb=on_error,
                )
                js = nc.jetstream()
                await ensure_stream(js, stream, [f"{prefix}.>"], duplicate_window_s=duplicate_window_s)
                sub = await js.pull_subscribe(
                    f"{prefix}.>",
                    durable=durable,
                    stream=stream,
                    config=ConsumerConfig(ack_policy=AckPolicy.EXPLICIT, ack_wait=ack_wait_s),
                )
                if not connected.done():
                    connected.set_result(None)
                while True:
                    try:
                        messages = await sub.fetch(batch=16, timeout=fetch_timeout_s)
                    except nats.errors.TimeoutError:
                        continue
                    for msg in messages:
                        try:
                            await self.receive(msg.data)
                        except InputError as exc:
                            log.warning("central: dropping a malformed batch from %s: %s", msg.subject, exc)
                            await msg.term()
                            continue
                        except StoreError as exc:
                            log.warning("central: batch not stored, will be redelivered: %s", exc)
                            await msg.nak(delay=5.0)
                            continue
                        if not self._drop_confirmation():
                            await msg.ack()
            except (nats.errors.Error, OSError) as exc:
                log.warning("central: NATS %s: %s; reconnecting", url, exc)
                await asyncio.sleep(1.0)
            finally:
                if nc is not None:
                    with contextlib.suppress(nats.errors.Error, OSError):
                        await nc.close()


class _TooLarge(Exception):
    """A request body above the limit (the connection is closed)."""
