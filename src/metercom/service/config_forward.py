"""Validating the ``[[upstreams]]`` section of a fleet configuration: where the head-end forwards to.

Rule: like every other section, upstreams are checked by the whole-document checker
(:mod:`.config_validate` calls :func:`check_upstreams` with its checker), so each problem names
its file, line and key alongside the problems of the other sections, and a configuration with
any problem changes nothing. Secrets are references (``env:``, ``file:``, ``secret:``), never
values. The head-end turns the result into sinks and a
:class:`~metercom.service.forward.Forwarder` (:func:`build_upstreams`)::

    [[upstreams]]
    id = "central"                     # the sink's outbox key: keep it stable
    kind = "http"                      # http | mqtt | nats
    url = "https://central.example/batches"
    secret = "secret:central"          # HTTP: the signing secret (required)
    interval = "10s"                   # look at an empty outbox this often
    batch_size = 500
    max_rate_per_s = 2000              # drain a backlog at most this fast (absent: unbounded)
    keep_unsent = "90d"                # unconfirmed readings kept this long (default 90 days)

A validation error reads ``fleet.toml:88: upstreams[0].url: ...`` like the rest.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from metercom.errors import ConfigError
from metercom.service.config_model import FleetConfig, UpstreamConfig
from metercom.service.config_positions import KeyPath
from metercom.service.secrets import Secret, SecretRef

if TYPE_CHECKING:
    from metercom.service.config_validate import _Checker
    from metercom.service.forward import Upstream

__all__ = ["KINDS", "build_upstreams", "check_upstreams"]

KINDS: Final = ("http", "mqtt", "nats")
_COMMON: Final = (
    "id",
    "kind",
    "url",
    "interval",
    "batch_size",
    "max_rate_per_s",
    "live_share",
    "confirm_timeout_s",
    "retry_max",
    "keep_unsent",
    "enabled",
    "description",
)
_KIND_KEYS: Final[Mapping[str, tuple[str, ...]]] = {
    "http": ("secret", "ca_file", "verify"),
    "mqtt": (
        "username",
        "password",
        "topic_prefix",
        "discovery",
        "discovery_prefix",
        "state_topics",
        "confirm",
    ),
    "nats": ("username", "password", "stream", "subject_prefix", "duplicate_window"),
}
_SCHEMES: Final[Mapping[str, tuple[str, ...]]] = {
    "http": ("http", "https"),
    "mqtt": ("mqtt", "mqtts"),
    "nats": ("nats", "tls"),
}
_MAX_BATCH: Final = 50_000
_MAX_KEEP: Final = timedelta(days=3660)
_TOPIC: Final = re.compile(r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$")
_SUBJECT: Final = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")
_STREAM: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def check_upstreams(checker: _Checker, doc: Mapping[str, Any]) -> tuple[UpstreamConfig, ...]:
    """The ``[[upstreams]]`` entries (invalid ones are reported and left out)."""
    out: list[UpstreamConfig] = []
    seen: dict[str, KeyPath] = {}
    for path, entry in checker.entries(doc, "upstreams"):
        before = len(checker.problems)
        upstream_id = checker.ident(entry, path, seen, "upstream")
        kind = checker.typed(entry, path, "kind", str, "")
        if kind not in KINDS:
            where = (*path, "kind") if "kind" in entry else path
            checker.problem(where, f"an upstream's kind is one of {', '.join(KINDS)}, got {kind or 'none'!r}")
            continue
        checker.keys(entry, path, (*_COMMON, *_KIND_KEYS[kind]), ("id", "kind", "url"))
        url = _url(checker, entry, path, kind)
        interval = _duration(
            checker, entry, path, "interval", default=timedelta(seconds=10), high=timedelta(days=1)
        )
        retry_max = _duration(
            checker, entry, path, "retry_max", default=timedelta(minutes=5), high=timedelta(days=1)
        )
        keep = _duration(checker, entry, path, "keep_unsent", default=timedelta(days=90), high=_MAX_KEEP)
        batch_size = checker.integer(entry, path, "batch_size", 1, _MAX_BATCH, default=500)
        rate = _rate(checker, entry, path)
        live_share = checker.typed(entry, path, "live_share", float, 0.2)
        if not 0.0 <= live_share < 1.0:
            checker.problem((*path, "live_share"), f"live_share is a fraction in [0, 1), got {live_share}")
        confirm_timeout_s = checker.seconds(entry, path, "confirm_timeout_s", 30.0)
        values: dict[str, Any] = {
            "interval": interval,
            "batch_size": batch_size,
            "max_rate_per_s": rate,
            "live_share": live_share,
            "confirm_timeout_s": confirm_timeout_s,
            "retry_max": retry_max,
            "keep_unsent": keep,
            "enabled": checker.typed(entry, path, "enabled", bool, True),
            "description": checker.text(entry, path, "description", "", 1000),
        }
        if kind == "http":
            values.update(_http(checker, entry, path))
        elif kind == "mqtt":
            values.update(_login(checker, entry, path))
            values.update(_mqtt(checker, entry, path))
        else:
            values.update(_login(checker, entry, path))
            values.update(_nats(checker, entry, path))
        if len(checker.problems) > before or upstream_id is None:
            continue
        out.append(UpstreamConfig(id=upstream_id, kind=kind, url=url, **values))
    return tuple(out)


def _url(checker: _Checker, entry: Mapping[str, Any], path: KeyPath, kind: str) -> str:
    url = checker.text(entry, path, "url", "", 2000)
    if not url:
        return url
    parsed = urllib.parse.urlsplit(url)
    schemes = _SCHEMES[kind]
    # A URL with an "@" may hold a password: it is never echoed (the message reaches the API).
    given = repr(url) if "@" not in url else "a URL with credentials (not shown)"
    if parsed.scheme not in schemes or not parsed.hostname:
        shown = " or ".join(f"{s}://host" for s in schemes)
        checker.problem((*path, "url"), f"{kind} upstreams take a URL {shown}..., got {given}")
    elif parsed.username or parsed.password:
        checker.problem((*path, "url"), "put no credentials in the URL; use the secret keys (references)")
    else:
        try:
            parsed.port  # noqa: B018 - raises ValueError for a bad port
        except ValueError:
            checker.problem((*path, "url"), f"bad port in {given}")
    return url


def _duration(
    checker: _Checker,
    entry: Mapping[str, Any],
    path: KeyPath,
    key: str,
    *,
    default: timedelta,
    high: timedelta,
) -> timedelta:
    value = checker.duration(entry, path, key)
    if value is None:
        return default
    if not timedelta(0) < value <= high:
        checker.problem((*path, key), f"{key} must be more than 0 and at most {high}, got {value}")
        return default
    return value


def _rate(checker: _Checker, entry: Mapping[str, Any], path: KeyPath) -> float | None:
    if "max_rate_per_s" not in entry:
        return None
    rate = checker.typed(entry, path, "max_rate_per_s", float, 0.0)
    if not 0 < rate <= 10_000_000:
        checker.problem((*path, "max_rate_per_s"), f"readings per second must be positive, got {rate}")
        return None
    return rate


def _secret(checker: _Checker, entry: Mapping[str, Any], path: KeyPath, key: str) -> SecretRef | None:
    ref = checker.secret_ref(entry, path, key)
    if ref is not None:
        checker.check_secret(ref, (*path, key), key=False)
    return ref


def _http(checker: _Checker, entry: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    if "secret" not in entry:
        checker.problem(path, "an http upstream needs 'secret' (a reference to the signing secret)")
    return {
        "secret": _secret(checker, entry, path, "secret"),
        "ca_file": checker.opt_text(entry, path, "ca_file", 1000),
        "verify": checker.typed(entry, path, "verify", bool, True),
    }


def _login(checker: _Checker, entry: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    username = checker.opt_text(entry, path, "username", 255)
    password = _secret(checker, entry, path, "password")
    if "password" in entry and username is None:
        checker.problem((*path, "password"), "a password needs a username")
    return {"username": username, "password": password}


def _mqtt(checker: _Checker, entry: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    prefix = checker.text(entry, path, "topic_prefix", "metercom", 200).strip("/")
    if not _TOPIC.match(prefix):
        checker.problem(
            (*path, "topic_prefix"), f"topic levels of letters, digits, '_' and '-', got {prefix!r}"
        )
    discovery_prefix = checker.text(entry, path, "discovery_prefix", "homeassistant", 200).strip("/")
    if not _TOPIC.match(discovery_prefix):
        checker.problem(
            (*path, "discovery_prefix"),
            f"topic levels of letters, digits, '_' and '-', got {discovery_prefix!r}",
        )
    confirm = checker.typed(entry, path, "confirm", str, "receiver")
    if confirm not in ("receiver", "broker"):
        checker.problem((*path, "confirm"), f"confirm is receiver or broker, got {confirm!r}")
    return {
        "confirm": confirm,
        "topic_prefix": prefix,
        "discovery": checker.typed(entry, path, "discovery", bool, True),
        "discovery_prefix": discovery_prefix,
        "state_topics": checker.typed(entry, path, "state_topics", bool, True),
    }


def _nats(checker: _Checker, entry: Mapping[str, Any], path: KeyPath) -> dict[str, Any]:
    stream = checker.text(entry, path, "stream", "METERCOM", 64)
    if not _STREAM.match(stream):
        checker.problem((*path, "stream"), f"a stream name is letters, digits, '_' and '-', got {stream!r}")
    subject = checker.text(entry, path, "subject_prefix", "metercom.batches", 200).strip(".")
    if not _SUBJECT.match(subject):
        checker.problem(
            (*path, "subject_prefix"), f"subject tokens of letters, digits, '_' and '-', got {subject!r}"
        )
    window = _duration(
        checker, entry, path, "duplicate_window", default=timedelta(hours=1), high=timedelta(days=7)
    )
    return {"stream": stream, "subject_prefix": subject, "duplicate_window": window}


def build_upstreams(config: FleetConfig, *, env: Mapping[str, str] | None = None) -> list[Upstream]:
    """The sinks and policies of the enabled upstreams of ``config``; the collector's node name
    (``[service] name``) is the batches' source. With ``env`` the secrets are resolved now in that
    environment; without, at each send (a rotated secret is picked up)."""
    from metercom.service.forward import ForwardPolicy, HttpSink, JetStreamSink, MqttSink, Upstream

    def secret(ref: SecretRef | None) -> SecretRef | Secret | None:
        if ref is None:
            return None
        return config.resolve_secret(ref, env=env) if env is not None else ref

    source = config.service.name
    out: list[Upstream] = []
    for up in config.upstreams:
        if not up.enabled:
            continue
        policy = ForwardPolicy(
            batch_size=up.batch_size,
            interval_s=up.interval.total_seconds(),
            max_rate_per_s=up.max_rate_per_s,
            live_share=up.live_share,
            confirm_timeout_s=up.confirm_timeout_s,
            retry_min_s=min(1.0, up.retry_max.total_seconds()),
            retry_max_s=up.retry_max.total_seconds(),
        )
        if up.kind == "http":
            signing = secret(up.secret)
            if signing is None:  # validation requires one; a hand-made config may not have it
                raise ConfigError("an http upstream needs a signing secret", where=f"upstream {up.id}")
            sink: Any = HttpSink(
                up.id,
                up.url,
                source=source,
                secret=signing,
                timeout_s=up.confirm_timeout_s,
                ca_file=Path(up.ca_file) if up.ca_file else None,
                verify=up.verify,
            )
        elif up.kind == "mqtt":
            sink = MqttSink(
                up.id,
                up.url,
                source=source,
                topic_prefix=up.topic_prefix,
                username=up.username,
                password=secret(up.password),
                state_topics=up.state_topics,
                discovery=up.discovery,
                discovery_prefix=up.discovery_prefix,
                confirm=up.confirm,
            )
        else:
            sink = JetStreamSink(
                up.id,
                up.url,
                source=source,
                stream=up.stream,
                subject_prefix=up.subject_prefix,
                duplicate_window_s=up.duplicate_window.total_seconds(),
                user=up.username,
                password=secret(up.password),
                publish_timeout_s=up.confirm_timeout_s,
            )
        out.append(Upstream(sink, policy, keep_unsent=up.keep_unsent))
    return out
