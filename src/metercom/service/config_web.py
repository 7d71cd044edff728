"""The ``[web]`` section of a fleet configuration: the REST API, logins and the dashboard.

Rule: checked by the same whole-document checker as the rest of the file
(:mod:`.config_validate` calls :func:`check_web`), so a problem is reported with its file,
line and key and a configuration with any problem changes nothing. Everything has a default:
a file without ``[web]`` gets :data:`DEFAULT_WEB` (``FleetConfig.web`` is ``None``).

Example::

    [web]
    listen = "127.0.0.1:8080"          # where `metercom serve` listens (--listen overrides)
    disconnect_approval = true         # a second operator approves every disconnect
    session_idle_timeout = "30m"
    session_lifetime = "12h"
    login_max_failures = 5             # per username and per client address ...
    login_window = "15m"               # ... within this window, then 429 until it passed
    secure_cookies = false             # Secure cookies even over http (behind a TLS proxy: true)
    timezone = "Europe/Berlin"         # load curves: local days and peak hours
    peak_start = "07:00"
    peak_end = "23:00"
    metrics_public = true              # GET /metrics without login
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import time, timedelta
from typing import TYPE_CHECKING, Any, Final

from metercom.service.config_positions import KeyPath

if TYPE_CHECKING:
    from metercom.service.config_validate import _Checker

__all__ = ["DEFAULT_WEB", "WebSettings", "check_web", "parse_listen"]

_WEB_KEYS: Final = (
    "listen",
    "disconnect_approval",
    "session_idle_timeout",
    "session_lifetime",
    "login_max_failures",
    "login_window",
    "secure_cookies",
    "timezone",
    "peak_start",
    "peak_end",
    "metrics_public",
)
_CLOCK: Final = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The ``[web]`` table (see the module docstring)."""

    listen: str = "127.0.0.1:8080"
    disconnect_approval: bool = False
    session_idle_timeout: timedelta = timedelta(minutes=30)
    session_lifetime: timedelta = timedelta(hours=12)
    login_max_failures: int = 5
    login_window: timedelta = timedelta(minutes=15)
    #: ``None``: Secure when the request came over https.
    secure_cookies: bool | None = None
    timezone: str = "UTC"
    peak_start: time = time(7)
    peak_end: time = time(23)
    metrics_public: bool = True


DEFAULT_WEB: Final = WebSettings()


def parse_listen(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8080"`` / ``"[::1]:8080"`` / ``":8080"`` -> (host, port); ValueError if bad."""
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit():
        raise ValueError(f"expected HOST:PORT, got {text!r}")
    port = int(port_text)
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0..65535")
    host = host.removeprefix("[").removesuffix("]") or "127.0.0.1"
    return host, port


def _clock(checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str, default: time) -> time:
    if key not in table:
        return default
    value = table[key]
    match = _CLOCK.match(value) if isinstance(value, str) else None
    if match is None:
        checker.problem((*path, key), f"expected a time of day HH:MM (00:00..23:59), got {value!r}")
        return default
    return time(int(match[1]), int(match[2]))


def _span(
    checker: _Checker, table: Mapping[str, Any], path: KeyPath, key: str, default: timedelta
) -> timedelta:
    value = checker.duration(table, path, key)
    if value is None:
        return default
    if not timedelta(minutes=1) <= value <= timedelta(days=30):
        checker.problem((*path, key), "expected a duration from 1m to 30d")
        return default
    return value


def check_web(checker: _Checker, doc: Mapping[str, Any]) -> WebSettings | None:
    """The ``[web]`` table, or ``None`` when the file has none (or it is invalid)."""
    if "web" not in doc:
        return None
    path: KeyPath = ("web",)
    table = checker.table(doc["web"], path, "[web]")
    if table is None:
        return None
    before = len(checker.problems)
    checker.keys(table, path, _WEB_KEYS)
    listen = checker.text(table, path, "listen", DEFAULT_WEB.listen, 300)
    try:
        parse_listen(listen)
    except ValueError as exc:
        checker.problem((*path, "listen"), str(exc))
    secure: bool | None = None
    if "secure_cookies" in table:
        secure = checker.typed(table, path, "secure_cookies", bool, False)
    settings = WebSettings(
        listen=listen,
        disconnect_approval=checker.typed(table, path, "disconnect_approval", bool, False),
        session_idle_timeout=_span(
            checker, table, path, "session_idle_timeout", DEFAULT_WEB.session_idle_timeout
        ),
        session_lifetime=_span(checker, table, path, "session_lifetime", DEFAULT_WEB.session_lifetime),
        login_max_failures=checker.integer(table, path, "login_max_failures", 1, 1000, default=5),
        login_window=_span(checker, table, path, "login_window", DEFAULT_WEB.login_window),
        secure_cookies=secure,
        timezone=checker.timezone(table, path, "timezone") or "UTC",
        peak_start=_clock(checker, table, path, "peak_start", DEFAULT_WEB.peak_start),
        peak_end=_clock(checker, table, path, "peak_end", DEFAULT_WEB.peak_end),
        metrics_public=checker.typed(table, path, "metrics_public", bool, True),
    )
    if len(checker.problems) > before:
        return None
    return settings
