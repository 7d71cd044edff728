"""NATS JetStream sink (nats-py): each batch published with ``Nats-Msg-Id`` = batch id.

Rule: the confirmation is the JetStream PubAck, which the server sends only after the stream
has stored the message (a plain NATS publish is never used: it is fire-and-forget). A resend of
a batch whose PubAck was lost carries the same ``Nats-Msg-Id``; within the stream's duplicate
window the server stores it once and answers ``duplicate: true``, which is a confirmation too.
A resend after a longer outage than the window is stored again by the stream, and the central
receiver (:mod:`metercom.service.central`) recognises its batch id and stores it once: the
window saves bandwidth and work, the receiver's batch-id table is the guarantee.

Theory of operation: one connection per sink, made on first send without automatic reconnect
(a failure surfaces as :class:`~metercom.errors.UploadError` and the forwarder's backoff
decides when to try again). With ``create_stream`` the sink creates the stream (subjects
``<subject_prefix>.>``, file storage, the configured ``duplicate_window_s``) if it is missing;
an existing stream is used as it is. Batches go to ``<subject_prefix>.<node>``.
"""

from __future__ import annotations

import contextlib
import logging
import urllib.parse
from typing import Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType

from metercom.errors import ConfigError, UploadError
from metercom.service.forward.mqtt import topic_token
from metercom.service.forward.sink import resolve_secret_text
from metercom.service.forward.wire import encode_batch
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import OutboxBatch

__all__ = ["MSG_ID_HEADER", "JetStreamSink", "ensure_stream"]

log = logging.getLogger(__name__)

MSG_ID_HEADER: Final = "Nats-Msg-Id"


def check_nats_url(url: str) -> str:
    parsed = urllib.parse.urlsplit(url)
    if parsed.scheme not in ("nats", "tls") or not parsed.hostname:
        raise ConfigError(f"NATS URL must be nats://host[:port] or tls://host[:port], got {url!r}")
    if parsed.username or parsed.password:
        raise ConfigError("put no credentials in the NATS URL; give user and a password reference")
    return url


async def ensure_stream(
    js: JetStreamContext,
    stream: str,
    subjects: list[str],
    *,
    duplicate_window_s: float,
    max_age_s: float | None = None,
) -> None:
    """Create ``stream`` if it does not exist (an existing stream is left as it is)."""
    try:
        info = await js.stream_info(stream)
    except nats.js.errors.NotFoundError:
        await js.add_stream(
            name=stream,
            subjects=subjects,
            duplicate_window=duplicate_window_s,
            max_age=max_age_s,
            storage=StorageType.FILE,
        )
        return
    window = info.config.duplicate_window or 0
    if window < duplicate_window_s:
        log.info(
            "stream %s keeps a %.0f s duplicate window (wanted %.0f s); the receiver still stores "
            "each batch once",
            stream,
            window,
            duplicate_window_s,
        )


class JetStreamSink:
    """Publishes batches into a JetStream stream (see the module docstring)."""

    def __init__(
        self,
        name: str,
        url: str = "nats://127.0.0.1:4222",
        *,
        source: str,
        stream: str = "METERCOM",
        subject_prefix: str = "metercom.batches",
        duplicate_window_s: float = 3600.0,
        max_age_s: float | None = None,
        create_stream: bool = True,
        user: str | None = None,
        password: SecretRef | Secret | None = None,
        connect_timeout_s: float = 5.0,
        publish_timeout_s: float = 10.0,
    ) -> None:
        self.url = check_nats_url(url)
        if not stream or any(c in stream for c in " .*>"):
            raise ConfigError(f"bad stream name {stream!r}", where=f"sink {name}")
        if duplicate_window_s <= 0:
            raise ConfigError("duplicate_window_s must be positive", where=f"sink {name}")
        self._name = name
        self.source = source
        self.stream = stream
        self.subject_prefix = subject_prefix.strip(".")
        self.subject = f"{self.subject_prefix}.{topic_token(source)}"
        self.duplicate_window_s = duplicate_window_s
        self.max_age_s = max_age_s
        self.create_stream = create_stream
        self.user = user
        self._password = password
        self.connect_timeout_s = connect_timeout_s
        self.publish_timeout_s = publish_timeout_s
        self._nc: NatsClient | None = None
        self._js: JetStreamContext | None = None
        #: Batches the server reported as duplicates (confirmed before, acknowledgement lost).
        self.duplicates = 0

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"JetStreamSink({self._name!r}, {self.url!r}, stream={self.stream!r})"

    async def _on_error(self, exc: Exception) -> None:
        log.debug("sink %s: NATS: %s", self._name, exc)

    async def _ensure(self) -> JetStreamContext:
        if self._nc is not None and self._js is not None and self._nc.is_connected:
            return self._js
        await self.close()
        password = None
        if self._password is not None:
            password = resolve_secret_text(self._password, f"sink {self._name}")
        try:
            nc = await nats.connect(
                servers=[self.url],
                name=f"metercom-forward-{topic_token(self.source)}",
                allow_reconnect=False,
                max_reconnect_attempts=1,
                reconnect_time_wait=0.1,
                connect_timeout=max(1, int(self.connect_timeout_s)),
                error_cb=self._on_error,
                user=self.user,
                password=password,
            )
        except (nats.errors.Error, OSError) as exc:
            raise UploadError(f"sink {self._name}: cannot connect to {self.url}: {exc}") from None
        js = nc.jetstream(timeout=self.publish_timeout_s)
        if self.create_stream:
            try:
                await ensure_stream(
                    js,
                    self.stream,
                    [f"{self.subject_prefix}.>"],
                    duplicate_window_s=self.duplicate_window_s,
                    max_age_s=self.max_age_s,
                )
            except (nats.errors.Error, OSError) as exc:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await nc.close()
                raise UploadError(f"sink {self._name}: cannot set up stream {self.stream}: {exc}") from None
        self._nc, self._js = nc, js
        return js

    async def send(self, batch: OutboxBatch) -> None:
        """Publish ``batch`` and return once JetStream acknowledged storing it."""
        js = await self._ensure()
        payload = encode_batch(batch, source=self.source)
        try:
            ack = await js.publish(
                self.subject,
                payload,
                timeout=self.publish_timeout_s,
                stream=self.stream,
                headers={MSG_ID_HEADER: batch.batch_id},
            )
        except (nats.errors.Error, OSError) as exc:
            if not isinstance(exc, nats.js.errors.APIError):
                await self.close()
            what = f"sink {self._name}: publishing to stream {self.stream} failed"
            raise UploadError(f"{what}: {exc}") from None
        if ack.stream != self.stream:
            raise UploadError(f"sink {self._name}: acknowledged by stream {ack.stream}, not {self.stream}")
        if ack.duplicate:
            self.duplicates += 1

    async def close(self) -> None:
        nc, self._nc, self._js = self._nc, None, None
        if nc is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await nc.close()
