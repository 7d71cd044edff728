"""The web server inside ``metercom serve`` and ``metercom demo``, and ``metercom user``.

Rule: one process, one event loop. :class:`WebServer` runs uvicorn's ``Server.serve()`` as a
task in the head-end's loop, on a socket bound here first (so a port in use is a clean error
with exit code 2, not uvicorn's ``sys.exit``). uvicorn's own signal handling is off: the
command that owns the process decides when to stop, then stops the web server first (no new
requests; running ones finish within ``stop_timeout_s``) and the head-end after it.

``metercom user add|list|passwd|remove`` manages logins in the store (``--store`` or beside
``--config``). Passwords come from a prompt (asked twice) or, for scripts, the first line of
standard input with ``--password-stdin``; never from the command line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import getpass
import logging
import secrets
import socket
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

import uvicorn

from metercom.api import create_app
from metercom.api.security import MAX_PASSWORD, MIN_PASSWORD, USERNAME_RE, Passwords, Role
from metercom.errors import ConfigError, InputError, ServiceError
from metercom.service.config_web import DEFAULT_WEB, WebSettings, parse_listen
from metercom.service.headend import HeadEnd
from metercom.service.store import Store
from metercom.service.store.web import UserConflictError, WebStore

__all__ = ["WebServer", "add_web_arguments", "ensure_demo_users", "register_user", "web_settings"]

log = logging.getLogger(__name__)

_SubParsers = Any
_DEMO_USERS: Final = (("admin", "administrator"), ("operator", "operator"), ("viewer", "viewer"))


def add_web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--listen",
        metavar="HOST:PORT",
        help="serve the dashboard and REST API here (default: [web] listen, else 127.0.0.1:8080)",
    )
    parser.add_argument("--no-web", action="store_true", help="run without the dashboard and REST API")


def web_settings(headend: HeadEnd, listen: str | None) -> WebSettings:
    """The ``[web]`` settings in force, with ``--listen`` applied."""
    settings = headend.config.web or DEFAULT_WEB
    if listen is not None:
        try:
            parse_listen(listen)
        except ValueError as exc:
            raise InputError(f"--listen: {exc}") from None
        settings = WebSettings(**{**_fields(settings), "listen": listen})
    return settings


def _fields(settings: WebSettings) -> dict[str, Any]:
    return {name: getattr(settings, name) for name in settings.__slots__}


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the owning command stops it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    """The REST API and dashboard of ``headend``, served in the running loop."""

    def __init__(self, headend: HeadEnd, settings: WebSettings, *, stop_timeout_s: float = 5.0) -> None:
        self.headend = headend
        self.settings = settings
        self.stop_timeout_s = stop_timeout_s
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None
        self.url = ""

    async def start(self) -> str:
        """Bind, start serving, and return the URL (``http://host:port``)."""
        host, port = parse_listen(self.settings.listen)
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
            family, kind, proto, _, address = infos[0]
            sock = socket.socket(family, kind, proto)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(address)
            except OSError:
                sock.close()
                raise
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {self.settings.listen}: {exc.strerror or exc}; "
                "choose another address with --listen HOST:PORT (or --no-web)"
            ) from exc
        sock.listen(128)
        sock.setblocking(False)
        self._socket = sock
        bound_host, bound_port = sock.getsockname()[:2]
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        app = create_app(self.headend, settings=self.settings)
        config = uvicorn.Config(
            app,
            log_config=None,
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=int(max(1, self.stop_timeout_s)),
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="metercom web server")
        while not self._server.started:
            if self._task.done():
                await self._task
                raise ServiceError("the web server stopped while starting")
            await asyncio.sleep(0.01)
        log.info("dashboard and REST API at %s", self.url)
        return self.url

    async def stop(self) -> None:
        """Stop accepting, let running requests finish (bounded), close."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), self.stop_timeout_s + 1)
        except TimeoutError:
            self._server.force_exit = True
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        finally:
            if self._socket is not None:
                self._socket.close()
            self._server = None


# -- metercom user ----------------------------------------------------------------------------------


def _store_url(args: argparse.Namespace) -> str:
    if args.store:
        return str(args.store)
    if args.config:
        from metercom.cli.headend import default_store

        return default_store(Path(args.config))
    raise InputError("give --store URL or --config FILE (the store is beside it)")


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        line = sys.stdin.readline()
        password = line.removesuffix("\n").removesuffix("\r")
    else:
        password = getpass.getpass("password: ")
        if getpass.getpass("again: ") != password:
            raise InputError("the passwords differ")
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise InputError(f"a password has {MIN_PASSWORD}..{MAX_PASSWORD} characters")
    return password


def register_user(subparsers: _SubParsers) -> None:
    """Add ``metercom user add|list|passwd|remove``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "user",
        help="manage logins of the dashboard and REST API",
        description="Add, list, change or remove the users who log in to the dashboard and the REST API.",
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--store", metavar="URL", help="SQLite path or URL, or a PostgreSQL URL")
        p.add_argument("--config", metavar="FILE", help="the fleet configuration (store beside it)")

    add = actions.add_parser("add", help="add a user")
    add.add_argument("username")
    add.add_argument("--role", required=True, choices=[r.value for r in Role])
    add.add_argument("--meter", action="append", default=[], metavar="ID", help="a consumer's meter (repeat)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    common(add)
    listing = actions.add_parser("list", help="list users")
    common(listing)
    passwd = actions.add_parser("passwd", help="set a user's password (ends their sessions)")
    passwd.add_argument("username")
    passwd.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    common(passwd)
    remove = actions.add_parser("remove", help="remove a user with their sessions and tokens")
    remove.add_argument("username")
    common(remove)
    parser.set_defaults(handler=_user_command)


def _user_command(args: argparse.Namespace) -> int:
    url = _store_url(args)
    if args.action in ("add", "passwd"):
        if not USERNAME_RE.match(args.username):
            raise InputError("a username has 1..64 of A-Z a-z 0-9 . _ @ -")
        password = _read_password(args)
    else:
        password = ""
    return asyncio.run(_user(args, url, password))


async def _user(args: argparse.Namespace, url: str, password: str) -> int:
    store = await Store.open(url)
    try:
        web = WebStore(store)
        passwords = Passwords()
        if args.action == "list":
            for user in await web.users():
                meters = ",".join(user.meter_ids) or "-"
                flag = " (disabled)" if user.disabled else ""
                print(f"{user.username}\t{user.role}\t{meters}{flag}")
            return 0
        if args.action == "add":
            if args.role == Role.CONSUMER.value and not args.meter:
                raise InputError("a consumer needs at least one --meter")
            try:
                await web.add_user(args.username, await passwords.hash(password), args.role, args.meter)
            except UserConflictError as exc:
                raise InputError(str(exc)) from None
            await store.audit(
                actor="metercom user",
                action="user.add",
                subject=args.username,
                detail={"role": args.role, "meter_ids": args.meter},
            )
            print(f"user {args.username} added ({args.role})")
            return 0
        if args.action == "passwd":
            try:
                await web.update_user(args.username, password_hash=await passwords.hash(password))
            except UserConflictError as exc:
                raise InputError(str(exc)) from None
            await store.audit(
                actor="metercom user",
                action="user.change",
                subject=args.username,
                detail={"changed": ["password"]},
            )
            print(f"password of {args.username} changed; their sessions ended")
            return 0
        if not await web.delete_user(args.username):
            raise InputError(f"no user {args.username!r}")
        await store.audit(actor="metercom user", action="user.delete", subject=args.username)
        print(f"user {args.username} removed")
        return 0
    finally:
        await store.close()


async def ensure_demo_users(store: Store, consumer_meter: str | None) -> list[tuple[str, str, str]]:
    """Give the demo's users (admin, operator, viewer and a consumer of ``consumer_meter``) new
    random one-time passwords; returns (username, role, password) to print."""
    web = WebStore(store)
    passwords = Passwords()
    wanted: list[tuple[str, str, Sequence[str]]] = [(u, r, ()) for u, r in _DEMO_USERS]
    if consumer_meter is not None:
        wanted.append(("consumer", "consumer", (consumer_meter,)))
    out = []
    for username, role, meters in wanted:
        password = secrets.token_urlsafe(12)
        hashed = await passwords.hash(password)
        if await web.user(username) is None:
            await web.add_user(username, hashed, role, meters)
        else:
            await web.update_user(username, password_hash=hashed, role=role, meter_ids=meters, disabled=False)
        await store.audit(actor="metercom demo", action="user.add", subject=username, detail={"role": role})
        out.append((username, role, password))
    return out
