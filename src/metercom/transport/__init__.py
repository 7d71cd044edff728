"""Transport layer (DESIGN.md section 1): bytes in, bytes out, no protocol knowledge.

Rule: this package never imports ``metercom.codec``. Every link is a
:class:`~metercom.transport.base.Transport` with the same four verbs (read, write, drain,
set_line), and every failure is a :class:`~metercom.errors.TransportError` subclass.

* :func:`open_transport` opens a link from a URL (tcp://, udp://, serial:///dev/..., bare
  device paths, socket://, rfc2217://, loop://).
* :func:`serve` accepts TCP connections or UDP peers for simulators.
* :func:`open_pty` gives a simulator a pty any serial client can open.
* :class:`SimulatedLine` is a virtual serial wire paced by the event loop's (virtual) clock.
"""

from metercom.transport.base import LineSettings, Transport
from metercom.transport.pty import PtyTransport, open_pty
from metercom.transport.serial import SerialTransport, open_serial
from metercom.transport.server import Handler, TransportServer, serve
from metercom.transport.simline import DirectionStats, LineStats, SimulatedEnd, SimulatedLine
from metercom.transport.tcp import TcpTransport, open_tcp
from metercom.transport.udp import UdpTransport, open_udp
from metercom.transport.url import ACCEPTED_FORMS, TransportUrl, open_transport, parse_transport_url

__all__ = [
    "ACCEPTED_FORMS",
    "DirectionStats",
    "Handler",
    "LineSettings",
    "LineStats",
    "PtyTransport",
    "SerialTransport",
    "SimulatedEnd",
    "SimulatedLine",
    "TcpTransport",
    "Transport",
    "TransportServer",
    "TransportUrl",
    "UdpTransport",
    "open_pty",
    "open_serial",
    "open_tcp",
    "open_transport",
    "open_udp",
    "parse_transport_url",
    "serve",
]
