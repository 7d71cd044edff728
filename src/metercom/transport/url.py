"""Transport URLs: one string names a link, :func:`open_transport` opens it.

Rule: configuration, the CLI and simulators name links with URLs, and this module is the only
place that turns one into a transport. A URL that cannot be understood raises
:class:`~metercom.errors.InputError` naming the URL and every accepted form, before any I/O.

Accepted forms::

    tcp://host:port[?format=7E1][&baud=300]     TCP; format= emulates that character format on
                                                 the byte pipe (bridges that pass the parity bit)
    udp://host:port                             UDP datagrams
    serial:///dev/ttyUSB0[?baud=300&format=7E1]  local serial port (also a pty slave path)
    /dev/ttyUSB0[?baud=300&format=7E1]           the same, as a bare path
    socket://host:port                           pyserial raw TCP "port"
    rfc2217://host:port[?pyserial options]       pyserial RFC 2217 (remote port settings)
    loop://                                      pyserial in-process loopback

``baud`` and ``format`` may be given on every form that has a line; the ``line`` argument of
:func:`open_transport` takes precedence over them. Other query options of ``socket://`` and
``rfc2217://`` URLs are passed to pyserial unchanged. Host names other than IP literals are
resolved in a worker thread by asyncio; prefer IP literals in tests on the virtual clock.
"""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from metercom.errors import InputError
from metercom.transport.base import LineSettings, Transport
from metercom.transport.serial import open_serial
from metercom.transport.tcp import open_tcp
from metercom.transport.udp import open_udp

__all__ = ["ACCEPTED_FORMS", "TransportUrl", "open_transport", "parse_transport_url"]

ACCEPTED_FORMS = (
    "tcp://host:port[?format=7E1&baud=300], udp://host:port, "
    "serial:///dev/ttyUSB0[?baud=300&format=7E1], /dev/ttyUSB0[?baud=300&format=7E1], "
    "socket://host:port, rfc2217://host:port, loop://"
)

_PYSERIAL_SCHEMES = ("socket", "rfc2217", "loop")
_LINE_OPTIONS = ("baud", "format")


@dataclass(frozen=True, slots=True)
class TransportUrl:
    """A parsed transport URL."""

    #: The URL as given.
    url: str
    #: ``tcp``, ``udp`` or ``serial`` (pyserial URLs and device paths are all ``serial``).
    kind: str
    host: str = ""
    port: int = 0
    #: For ``serial``: the device path or the pyserial URL to open (our options removed).
    device: str = ""
    #: Line settings named in the URL (``baud``/``format``), if any.
    line: LineSettings | None = None
    #: ``tcp`` only: emulate ``line``'s character format on the byte pipe.
    emulate_format: bool = False


def _fail(url: str, reason: str) -> InputError:
    return InputError(f"cannot use transport URL {url!r}: {reason}. Accepted forms: {ACCEPTED_FORMS}")


def _line_from_query(url: str, query: dict[str, list[str]]) -> LineSettings | None:
    if not any(key in query for key in _LINE_OPTIONS):
        return None
    baud_rate = 9600
    if "baud" in query:
        text = query["baud"][-1]
        if not text.isdigit() or int(text) <= 0:
            raise _fail(url, f"baud must be a positive integer, got {text!r}")
        baud_rate = int(text)
    try:
        if "format" in query:
            return LineSettings.parse(query["format"][-1], baud_rate)
        return LineSettings(baud_rate)
    except InputError as exc:
        raise _fail(url, str(exc)) from exc


def _host_port(url: str, parts: urllib.parse.SplitResult, *, allow_port_zero: bool) -> tuple[str, int]:
    try:
        port = parts.port
    except ValueError as exc:
        raise _fail(url, f"bad port ({exc})") from exc
    host = parts.hostname or ""
    if not host:
        raise _fail(url, "the host is missing")
    if port is None:
        raise _fail(url, "the port is missing")
    if port == 0 and not allow_port_zero:
        raise _fail(url, "port 0 only makes sense for a server")
    if parts.path not in ("", "/"):
        raise _fail(url, f"unexpected path {parts.path!r} after host:port")
    return host, port


def _check_options(url: str, query: dict[str, list[str]], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(query) - set(allowed))
    if unknown:
        expected = ", ".join(allowed) if allowed else "none"
        raise _fail(url, f"unknown option(s) {', '.join(unknown)} (expected: {expected})")


def parse_transport_url(url: str, *, server: bool = False) -> TransportUrl:
    """Parse ``url``; with ``server=True`` port 0 (let the OS pick) is allowed."""
    if not url.strip():
        raise _fail(str(url), "empty URL")
    url = url.strip()
    if url.startswith("/"):
        if server:
            raise _fail(url, "a server listens on tcp:// or udp:// only")
        path, _, query_text = url.partition("?")
        query = urllib.parse.parse_qs(query_text, keep_blank_values=True)
        _check_options(url, query, _LINE_OPTIONS)
        return TransportUrl(url, "serial", device=path, line=_line_from_query(url, query))
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    if not scheme:
        raise _fail(url, "no scheme (write e.g. tcp://192.0.2.10:4059)")
    query = urllib.parse.parse_qs(parts.query, keep_blank_values=True)
    if scheme in ("tcp", "udp"):
        host, port = _host_port(url, parts, allow_port_zero=server)
        if scheme == "tcp":
            _check_options(url, query, _LINE_OPTIONS)
            line = _line_from_query(url, query)
            return TransportUrl(url, "tcp", host, port, line=line, emulate_format="format" in query)
        _check_options(url, query, ())
        return TransportUrl(url, "udp", host, port)
    if server:
        raise _fail(url, "a server listens on tcp:// or udp:// only")
    if scheme == "serial":
        if parts.netloc or not parts.path.startswith("/"):
            raise _fail(
                url, "a serial URL names an absolute device path: serial:///dev/ttyUSB0 (three slashes)"
            )
        _check_options(url, query, _LINE_OPTIONS)
        return TransportUrl(url, "serial", device=parts.path, line=_line_from_query(url, query))
    if scheme in _PYSERIAL_SCHEMES:
        line = _line_from_query(url, query)
        rest = {key: values for key, values in query.items() if key not in _LINE_OPTIONS}
        # Not urlunsplit(): it drops the "//" of an empty authority, and pyserial needs loop://.
        rest_query = urllib.parse.urlencode(rest, doseq=True)
        device = f"{scheme}://{parts.netloc}{parts.path}" + (f"?{rest_query}" if rest_query else "")
        if scheme != "loop":
            host, port = _host_port(url, parts, allow_port_zero=False)
            return TransportUrl(url, "serial", host, port, device=device, line=line)
        return TransportUrl(url, "serial", device=device, line=line)
    raise _fail(url, f"unknown scheme {scheme!r}")


async def open_transport(
    url: str, *, line: LineSettings | None = None, connect_timeout_s: float = 10.0
) -> Transport:
    """Open the link ``url`` names (see the module docstring for the forms).

    ``line`` overrides ``baud``/``format`` from the URL: on serial links it is applied to the
    port, on TCP it is recorded (and emulated with ``?format=``), on UDP recorded.
    Raises :class:`~metercom.errors.InputError` for a bad URL and
    :class:`~metercom.errors.ConnectError` when the link cannot be opened.
    """
    target = parse_transport_url(url)
    settings = line or target.line
    if target.kind == "tcp":
        return await open_tcp(
            target.host,
            target.port,
            line=settings,
            emulate_format=target.emulate_format,
            connect_timeout_s=connect_timeout_s,
            url=url,
        )
    if target.kind == "udp":
        return await open_udp(target.host, target.port, line=settings, url=url)
    return await open_serial(target.device, settings, connect_timeout_s=connect_timeout_s, url=url)
