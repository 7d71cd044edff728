"""Transport URLs: what each accepted form means, and how bad ones are refused."""

from __future__ import annotations

import pytest

from metercom.errors import InputError
from metercom.transport import ACCEPTED_FORMS, LineSettings, open_transport, parse_transport_url

IEC_START = LineSettings.parse("7E1", 300)
IEC_9600 = LineSettings.parse("7E1", 9600)


#: url -> (kind, host, port, device, line, emulate_format)
GOOD: dict[str, tuple[str, str, int, str, LineSettings | None, bool]] = {
    "tcp://192.0.2.10:4059": ("tcp", "192.0.2.10", 4059, "", None, False),
    "tcp://meter.example:8000?format=7E1": ("tcp", "meter.example", 8000, "", IEC_9600, True),
    "tcp://192.0.2.10:4059?baud=300": ("tcp", "192.0.2.10", 4059, "", LineSettings(300), False),
    "tcp://[2001:db8::1]:4059": ("tcp", "2001:db8::1", 4059, "", None, False),
    "udp://192.0.2.10:4059": ("udp", "192.0.2.10", 4059, "", None, False),
    "serial:///dev/ttyUSB0?baud=300&format=7E1": ("serial", "", 0, "/dev/ttyUSB0", IEC_START, False),
    "serial:/dev/ttyUSB0": ("serial", "", 0, "/dev/ttyUSB0", None, False),
    "/dev/ttyUSB0": ("serial", "", 0, "/dev/ttyUSB0", None, False),
    "/dev/serial/by-id/usb-0?baud=9600": ("serial", "", 0, "/dev/serial/by-id/usb-0", LineSettings(), False),
    "socket://192.0.2.10:7000": ("serial", "192.0.2.10", 7000, "socket://192.0.2.10:7000", None, False),
    "rfc2217://192.0.2.10:7000?baud=300&format=7E1&ign_set_control": (
        "serial", "192.0.2.10", 7000, "rfc2217://192.0.2.10:7000?ign_set_control=", IEC_START, False,
    ),
    "loop://": ("serial", "", 0, "loop://", None, False),
    "loop://?format=8N1": ("serial", "", 0, "loop://", LineSettings(), False),
}  # fmt: skip


@pytest.mark.parametrize("url", sorted(GOOD))
def test_accepted_forms(url: str) -> None:
    target = parse_transport_url(url)
    actual = (target.kind, target.host, target.port, target.device, target.line, target.emulate_format)
    assert actual == GOOD[url]
    assert target.url == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("", "empty"),
        ("192.0.2.10:4059", "unknown scheme|no scheme"),
        ("ftp://192.0.2.10:21", "unknown scheme"),
        ("tcp://192.0.2.10", "port is missing"),
        ("tcp://:4059", "host is missing"),
        ("tcp://192.0.2.10:0", "port 0"),
        ("tcp://192.0.2.10:99999", "bad port"),
        ("tcp://192.0.2.10:4059/path", "unexpected path"),
        ("tcp://192.0.2.10:4059?format=7X1", "character format"),
        ("tcp://192.0.2.10:4059?baud=fast", "baud"),
        ("tcp://192.0.2.10:4059?parity=E", "unknown option"),
        ("udp://192.0.2.10:4059?format=7E1", "unknown option"),
        ("serial://dev/ttyUSB0", "three slashes"),
        ("serial:///dev/ttyUSB0?speed=300", "unknown option"),
        ("/dev/ttyUSB0?baud=0", "baud"),
        ("socket://192.0.2.10", "port is missing"),
    ],
)
def test_bad_urls_name_the_url_and_the_accepted_forms(url: str, reason: str) -> None:
    with pytest.raises(InputError, match=reason) as info:
        parse_transport_url(url)
    message = str(info.value)
    assert repr(url) in message
    assert ACCEPTED_FORMS in message


def test_a_server_may_ask_for_port_zero() -> None:
    assert parse_transport_url("tcp://127.0.0.1:0", server=True).port == 0
    with pytest.raises(InputError, match="tcp:// or udp://"):
        parse_transport_url("/dev/ttyUSB0", server=True)


async def test_open_transport_refuses_bad_urls_before_any_io() -> None:
    with pytest.raises(InputError, match="Accepted forms"):
        await open_transport("modem://555-1234")


async def test_the_line_argument_wins_over_the_url(holding_server) -> None:
    async with holding_server("tcp://127.0.0.1:0") as (server, _):
        client = await open_transport(server.url + "?baud=300", line=LineSettings(9600))
        assert client.line == LineSettings(9600)
        await client.close()
