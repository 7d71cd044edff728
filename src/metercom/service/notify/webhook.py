"""Webhook channel: each notification is POSTed as JSON, signed with HMAC-SHA256.

Rule: the receiver can check that a request came from us, was not altered and is not a replay
from long ago. Every request carries::

    Content-Type: application/json
    X-Metercom-Delivery:  <notification id>   stable across retries: drop repeats by it
    X-Metercom-Event:     raised | repeated | cleared
    X-Metercom-Timestamp: <unix seconds>
    X-Metercom-Signature: sha256=<hex HMAC-SHA256(secret, timestamp + "." + body)>

:func:`verify_signature` is the receiver's side (constant-time comparison, timestamp tolerance).
The secret is a reference (``env:``/``file:``), resolved at each send and never logged.

Theory of operation: one :class:`httpx.AsyncClient` per channel (connection reuse), created on
first use inside the running loop. Responses map to the centre's retry rules: 2xx delivered;
408, 425, 429 and 5xx retried (``Retry-After`` in seconds is honoured); a redirect or any other
4xx is permanent (the URL or the receiver's configuration is wrong); network errors and
timeouts are retried.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import ssl
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Final

import httpx

from metercom.clock import Clock, current_clock
from metercom.errors import ConfigError, NotifyError
from metercom.service.notify.alarms import Notification
from metercom.service.notify.channel import PermanentDeliveryError, RetryLater, resolve_secret
from metercom.service.secrets import Secret, SecretRef

__all__ = ["SIGNATURE_HEADER", "TIMESTAMP_HEADER", "WebhookChannel", "sign_payload", "verify_signature"]

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Metercom-Signature"
TIMESTAMP_HEADER: Final = "X-Metercom-Timestamp"
DELIVERY_HEADER: Final = "X-Metercom-Delivery"
EVENT_HEADER: Final = "X-Metercom-Event"
_RETRY_STATUS: Final = frozenset({408, 425, 429})


def sign_payload(secret: bytes, timestamp: int, body: bytes) -> str:
    """The signature header value for ``body`` sent at ``timestamp`` (unix seconds)."""
    digest = hmac.new(secret, str(timestamp).encode("ascii") + b"." + body, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def verify_signature(
    secret: bytes,
    body: bytes,
    timestamp: str,
    signature: str,
    *,
    now: datetime,
    tolerance_s: int = 300,
) -> bool:
    """True when ``signature`` signs ``body`` with ``secret`` and ``timestamp`` is near ``now``."""
    try:
        sent = int(timestamp)
    except ValueError:
        return False
    if abs(int(now.timestamp()) - sent) > tolerance_s:
        return False
    return hmac.compare_digest(sign_payload(secret, sent, body), signature)


class WebhookChannel:
    """POSTs notifications to ``url`` (see the module docstring)."""

    def __init__(
        self,
        url: str,
        *,
        secret: SecretRef | Secret,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        ca_file: str | Path | None = None,
        verify: bool = True,
        trust_env: bool = True,
        clock: Clock | None = None,
    ) -> None:
        parsed = httpx.URL(url)
        if parsed.scheme not in ("http", "https") or not parsed.host:
            raise ConfigError(f"webhook URL must be http(s)://host/..., got {url!r}", where="webhook")
        if parsed.userinfo:
            raise ConfigError("put no credentials in the webhook URL; the request is signed", where="webhook")
        if timeout_s <= 0:
            raise ConfigError("timeout_s must be positive", where="webhook")
        self.url = url
        self._secret = secret
        self.timeout_s = timeout_s
        self.headers = dict(headers or {})
        self.trust_env = trust_env
        self._clock = clock
        try:
            context = ssl.create_default_context(cafile=str(ca_file) if ca_file is not None else None)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"cannot load CA file {ca_file}: {exc}", where="webhook") from exc
        if not verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        self._context = context
        self._client: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"WebhookChannel({self.url!r}, secret={self._secret!s})"

    def _get_client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.timeout_s, verify=self._context, trust_env=self.trust_env, follow_redirects=False
            )
        return self._client

    def build_request(self, notification: Notification) -> tuple[bytes, dict[str, str]]:
        """The body and headers for ``notification``, signed now."""
        body = json.dumps(notification.to_dict(), separators=(",", ":"), sort_keys=True).encode("utf-8")
        secret = resolve_secret(self._secret, f"webhook {self.url}").encode("utf-8")
        timestamp = int((self._clock or current_clock()).now().timestamp())
        headers = {
            **self.headers,
            "Content-Type": "application/json",
            "User-Agent": "metercom-notify",
            DELIVERY_HEADER: notification.notification_id,
            EVENT_HEADER: notification.event.value,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign_payload(secret, timestamp, body),
        }
        return body, headers

    async def send(self, notification: Notification) -> None:
        """POST one notification; raises NotifyError/RetryLater (retry) or PermanentDeliveryError."""
        body, headers = self.build_request(notification)
        try:
            response = await self._get_client().post(self.url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise NotifyError(f"webhook {self.url}: {type(exc).__name__}: {exc}") from None
        status = response.status_code
        if 200 <= status < 300:
            log.info("webhook %s: delivered %s (%d)", self.url, notification.notification_id, status)
            return
        text = f"webhook {self.url}: HTTP {status} {response.reason_phrase}"
        if status in _RETRY_STATUS or status >= 500:
            retry_after = _retry_after_s(response.headers.get("Retry-After"))
            if retry_after is not None:
                raise RetryLater(text, retry_after_s=retry_after)
            raise NotifyError(text)
        raise PermanentDeliveryError(text)

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _retry_after_s(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        seconds = float(int(value.strip()))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff
    return max(0.0, seconds)
