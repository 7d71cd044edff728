"""The dashboard: a single-page app served as static files (see docs/web.md).

Rule: no build step and nothing fetched from elsewhere. The pages are plain HTML, ES-module
JavaScript and CSS written for metercom, in ``static/`` beside this module and shipped in the
wheel; charts are drawn as SVG by our own code (``static/js/charts.js``). The API app
(:func:`metercom.api.create_app`) mounts :func:`static_dir` at ``/``; the app talks only to the
REST API under ``/api/v1`` (docs/api.md) with the session cookie and the CSRF token of
``GET /api/v1/auth/me``.

Routes are hash routes, so any static file server can serve the directory:
``#/login``, ``#/fleet``, ``#/meter/<id>``, ``#/prepaid``, ``#/prepaid/<account or meter id>``,
``#/alarms`` and ``#/me`` (the consumer's own meter, made for a phone-sized screen).
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_FILES", "static_dir"]

#: The files the app needs; a missing one means a broken install (checked by the tests).
STATIC_FILES: tuple[str, ...] = (
    "index.html",
    "favicon.svg",
    "css/app.css",
    "js/app.js",
    "js/api.js",
    "js/ui.js",
    "js/charts.js",
    "js/format.js",
    "js/pages/login.js",
    "js/pages/fleet.js",
    "js/pages/meter.js",
    "js/pages/load.js",
    "js/pages/prepaid.js",
    "js/pages/alarms.js",
    "js/pages/consumer.js",
)


def static_dir() -> Path:
    """The directory of the dashboard's static files (``index.html`` and its assets)."""
    return Path(__file__).resolve().parent / "static"
