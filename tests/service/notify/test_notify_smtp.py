"""E-mail delivered to a local SMTP server (aiosmtpd on 127.0.0.1), plain and with STARTTLS + AUTH.

The server runs in the test's own event loop, so these tests stay on the virtual clock: no
``realtime`` marker and no ``real_grace_s`` (in-process loopback I/O is ready at once; see
:mod:`metercom.clock`).
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import ipaddress
import logging
import socket
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from metercom.clock import VirtualClock
from metercom.errors import ConfigError
from metercom.service.notify import (
    Alarm,
    AlarmCenter,
    AlarmKind,
    DeliveryStatus,
    RetryPolicy,
    Route,
    SmtpChannel,
    SmtpTls,
)
from metercom.service.secrets import parse_secret_ref

T0 = datetime(2026, 1, 1, tzinfo=UTC)
PASSWORD = "s3cret-Pa55"


@dataclass
class Mailbox:
    messages: list[email.message.EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)
    logins: list[tuple[str, bool]] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802, ARG002
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, email.message.EmailMessage)
        self.messages.append(message)
        self.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
        return "250 OK"

    def authenticator(self, *args: Any) -> AuthResult:
        auth_data = args[-1]  # called as (server, session, envelope, mechanism, auth_data)
        assert isinstance(auth_data, LoginPassword)
        ok = auth_data.login == b"headend" and auth_data.password == PASSWORD.encode()
        self.logins.append((auth_data.login.decode(), ok))
        return AuthResult(success=ok, handled=False)  # unhandled failure: the server replies 535


async def _serve(mailbox: Mailbox, port: int = 0, **smtp: Any) -> asyncio.Server:
    loop = asyncio.get_running_loop()

    def factory() -> SMTP:
        return SMTP(mailbox, hostname="mail.test", loop=loop, **smtp)

    return await loop.create_server(factory, "127.0.0.1", port)


def _port(server: asyncio.Server) -> int:
    port: int = server.sockets[0].getsockname()[1]
    return port


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mail.test")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


def _tamper() -> Alarm:
    return Alarm.of(AlarmKind.TAMPER, "meter-17", T0, "terminal cover opened", details={"event_code": 40})


async def test_email_reaches_the_local_smtp_server(vclock: VirtualClock) -> None:
    mailbox = Mailbox()
    server = await _serve(mailbox)
    channel = SmtpChannel(
        "127.0.0.1",
        _port(server),
        sender="alarms@utility.test",
        recipients=["ops@utility.test", "crew@utility.test"],
        tls=SmtpTls.NONE,
        local_hostname="headend.test",
    )
    async with AlarmCenter({"mail": channel}, [Route(("mail",))]) as center:
        record = center.raise_alarm(_tamper()).record
        await center.wait_idle()
    server.close()
    await server.wait_closed()
    assert record.deliveries[0].status is DeliveryStatus.DELIVERED
    assert mailbox.envelopes == [("alarms@utility.test", ["ops@utility.test", "crew@utility.test"])]
    (message,) = mailbox.messages
    assert message["Subject"] == "[metercom] CRITICAL tamper on meter meter-17: terminal cover opened"
    assert message["From"] == "alarms@utility.test"
    assert message["To"] == "ops@utility.test, crew@utility.test"
    assert message["X-Metercom-Alarm"] == record.alarm_id
    assert message["X-Metercom-Event"] == "raised"
    assert message["Message-ID"].endswith("@headend.test>")
    assert message["Date"] == "Thu, 01 Jan 2026 00:00:00 +0000"  # the virtual clock's now
    body = message.get_content()
    assert "kind:      tamper" in body
    assert "event_code: 40" in body


async def test_starttls_and_login_with_a_secret_reference(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    server = await _serve(
        mailbox,
        tls_context=server_tls,
        require_starttls=True,
        auth_required=True,
        authenticator=mailbox.authenticator,
    )
    monkeypatch.setenv("METERCOM_TEST_SMTP_PW", PASSWORD)
    password = parse_secret_ref("env:METERCOM_TEST_SMTP_PW")
    channel = SmtpChannel(
        "127.0.0.1",
        _port(server),
        sender="alarms@utility.test",
        recipients=["ops@utility.test"],
        tls=SmtpTls.STARTTLS,
        username="headend",
        password=password,
        ca_file=cert,
        local_hostname="headend.test",
    )
    assert PASSWORD not in repr(channel)
    assert "env:METERCOM_TEST_SMTP_PW" in repr(channel)
    with caplog.at_level(logging.DEBUG):
        async with AlarmCenter({"mail": channel}, [Route(("mail",))]) as center:
            record = center.raise_alarm(_tamper()).record
            await center.wait_idle()
            # A wrong password is a permanent failure: no retries, and the password is not shown.
            monkeypatch.setenv("METERCOM_TEST_SMTP_PW", "wrong-password")
            center.raise_alarm(Alarm.of(AlarmKind.COVER_OPEN, "meter-18", T0))
            await center.wait_idle()
    server.close()
    await server.wait_closed()
    assert record.deliveries[0].status is DeliveryStatus.DELIVERED
    assert len(mailbox.messages) == 1
    # One delivery attempt with the wrong password (aiosmtplib tries PLAIN, then LOGIN).
    assert mailbox.logins[0] == ("headend", True)
    assert [ok for _, ok in mailbox.logins[1:]] == [False, False]
    failed = center.alarms(kind=AlarmKind.COVER_OPEN)[0].deliveries[0]
    assert (failed.status, failed.attempts) == (DeliveryStatus.FAILED, 1)
    assert failed.last_error is not None
    assert "login as 'headend' refused (535)" in failed.last_error
    for text in (caplog.text, failed.last_error):
        assert PASSWORD not in text
        assert "wrong-password" not in text


async def test_untrusted_certificate_is_a_permanent_failure(tmp_path: Path) -> None:
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    mailbox = Mailbox()
    server = await _serve(mailbox, tls_context=server_tls)
    channel = SmtpChannel(
        "127.0.0.1",
        _port(server),
        sender="a@utility.test",
        recipients=["b@utility.test"],
        local_hostname="h.test",
    )  # system CAs only: the self-signed certificate is not trusted
    async with AlarmCenter(
        {"mail": channel}, [Route(("mail",))], retry=RetryPolicy(first_delay_s=1)
    ) as center:
        record = center.raise_alarm(_tamper()).record
        await center.wait_idle()
    server.close()
    await server.wait_closed()
    delivery = record.deliveries[0]
    assert delivery.status is DeliveryStatus.FAILED
    assert delivery.attempts == 1
    assert "not trusted" in (delivery.last_error or "")
    assert mailbox.messages == []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def test_delivery_is_retried_until_the_server_is_up(vclock: VirtualClock) -> None:
    port = _free_port()
    mailbox = Mailbox()
    channel = SmtpChannel(
        "127.0.0.1",
        port,
        sender="a@utility.test",
        recipients=["b@utility.test"],
        tls=SmtpTls.NONE,
        local_hostname="h",
    )
    servers: list[asyncio.Server] = []

    async def start_later() -> None:
        await asyncio.sleep(12)  # the mail server comes back after 12 s
        servers.append(await _serve(mailbox, port))

    retry = RetryPolicy(max_attempts=5, first_delay_s=5, factor=2)
    async with AlarmCenter({"mail": channel}, [Route(("mail",))], retry=retry) as center:
        starter = asyncio.create_task(start_later())
        record = center.raise_alarm(_tamper()).record
        await center.wait_idle()
        await starter
    for server in servers:
        server.close()
        await server.wait_closed()
    delivery = record.deliveries[0]
    assert (delivery.status, delivery.attempts) == (
        DeliveryStatus.DELIVERED,
        3,
    )  # at 0 s, 5 s (refused), 15 s
    assert "ConnectError" in (delivery.last_error or "") or "refused" in (delivery.last_error or "").lower()
    assert vclock.monotonic() == pytest.approx(15, abs=0.5)
    assert len(mailbox.messages) == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"recipients": []}, "at least one recipient"),
        ({"recipients": ["not-an-address"]}, "e-mail addresses"),
        ({"username": "u"}, "both username and password"),
        ({"username": "u", "password": parse_secret_ref("env:X"), "tls": SmtpTls.NONE}, "unencrypted"),
        ({"ca_file": "/nonexistent/ca.pem"}, "cannot load CA file"),
    ],
)
def test_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    arguments: dict[str, Any] = {"sender": "a@b.test", "recipients": ["c@d.test"]} | kwargs
    make: Callable[..., SmtpChannel] = SmtpChannel
    with pytest.raises(ConfigError, match=message):
        make("127.0.0.1", **arguments)


def test_plain_login_to_a_local_relay_can_be_allowed() -> None:
    channel = SmtpChannel(
        "127.0.0.1",
        sender="a@b.test",
        recipients=["c@d.test"],
        tls=SmtpTls.NONE,
        username="u",
        password=parse_secret_ref("env:X"),
        allow_plain_auth=True,
    )
    assert channel.port == 25
