"""HTTP sink: each batch is POSTed as JSON, signed, and confirmed by the batch id echoed back.

Rule: only a 2xx answer whose JSON body echoes the batch id we sent is a confirmation; any
other answer, a network error or a timeout is a failure and the same batch (same id) is sent
again later. The request is signed exactly like the webhook notifications (one signing helper,
:func:`metercom.service.notify.webhook.sign_payload`)::

    Content-Type: application/json
    X-Metercom-Batch:     <batch id>     stable across resends: the receiver stores it once
    X-Metercom-Source:    <node name>
    X-Metercom-Timestamp: <unix seconds>
    X-Metercom-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

The secret is a reference (``env:``/``file:``), resolved at each send and never logged.
One :class:`httpx.AsyncClient` per sink (connection reuse), created on first use in the loop.
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from pathlib import Path
from typing import Final

import httpx

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError, UploadError
from metercom.service.forward.sink import resolve_secret_text
from metercom.service.forward.wire import encode_batch
from metercom.service.notify.webhook import SIGNATURE_HEADER, TIMESTAMP_HEADER, sign_payload
from metercom.service.secrets import Secret, SecretRef
from metercom.service.store import OutboxBatch

__all__ = ["BATCH_HEADER", "SOURCE_HEADER", "HttpSink"]

BATCH_HEADER: Final = "X-Metercom-Batch"
SOURCE_HEADER: Final = "X-Metercom-Source"


class HttpSink:
    """POSTs batches to ``url`` (see the module docstring)."""

    def __init__(
        self,
        name: str,
        url: str,
        *,
        source: str,
        secret: SecretRef | Secret,
        timeout_s: float = 30.0,
        headers: Mapping[str, str] | None = None,
        ca_file: str | Path | None = None,
        verify: bool = True,
        trust_env: bool = False,
        clock: Clock | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"URL must be http(s)://host/..., got {url!r}", where=f"sink {name}")
        if parsed.userinfo:
            raise ConfigError("put no credentials in the URL; batches are signed", where=f"sink {name}")
        if timeout_s <= 0:
            raise ConfigError("timeout_s must be positive", where=f"sink {name}")
        self._name = name
        self.url = url
        self.source = source
        self._secret = secret
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.trust_env = trust_env
        self._clock = clock
        self._verify: ssl.SSLContext | bool = True
        if parsed.scheme == "https":
            try:
                context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
            except (OSError, ssl.SSLError) as exc:
                raise ConfigError(f"cannot load CA file {ca_file}: {exc}", where=f"sink {name}") from exc
            if not verify:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self._verify = context
        self._client: httpx.AsyncClient | None = None

    @property
    def name(self) -> str:
        return self._name

    def __repr__(self) -> str:
        return f"HttpSink({self._name!r}, {self.url!r}, secret={self._secret!s})"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, verify=self._verify, trust_env=self.trust_env, follow_redirects=False
            )
        return self._client

    def build_request(self, batch: OutboxBatch) -> tuple[bytes, dict[str, str]]:
        """The body and headers for ``batch``, signed now."""
        body = encode_batch(batch, source=self.source)
        secret = resolve_secret_text(self._secret, f"sink {self._name}").encode("utf-8")
        timestamp = int((self._clock or current_clock()).now().timestamp())
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": "metercom-forward",
            BATCH_HEADER: batch.batch_id,
            SOURCE_HEADER: self.source,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_payload(secret, timestamp, body),
        }
        return body, headers

    async def send(self, batch: OutboxBatch) -> None:
        """POST ``batch``; returns once the receiver echoed its id, else raises UploadError."""
        body, headers = self.build_request(batch)
        try:
            response = await self._get_client().post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise UploadError(f"sink {self._name}: {self.url}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if not 200 <= status < 300:
            text = response.text[:200].strip()
            raise UploadError(f"sink {self._name}: {self.url} answered {status}: {text}")
        try:
            echoed = json.loads(response.content).get("batch_id")
        except (ValueError, AttributeError):
            echoed = None
        if echoed != batch.batch_id:
            raise UploadError(
                f"sink {self._name}: {self.url} answered {status} without confirming batch "
                f"{batch.batch_id} (echoed {echoed!r})"
            )

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()
