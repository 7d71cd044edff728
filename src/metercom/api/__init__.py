"""The REST API (FastAPI): fleet, meters, readings, commands, prepaid, configuration, users,
logins and roles, and Prometheus metrics. See docs/api.md and :mod:`.app`."""

from __future__ import annotations

from metercom.api.app import create_app
from metercom.service.config_web import DEFAULT_WEB, WebSettings

__all__ = ["DEFAULT_WEB", "WebSettings", "create_app"]
