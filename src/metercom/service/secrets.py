"""Secrets by reference: passwords and keys never stand in the configuration itself.

Rule: a configuration names where a secret lives, never the secret. Three reference forms are
accepted wherever a password or key is expected::

    env:METER_PW            the environment variable METER_PW of the process using the secret
    file:/etc/metercom/pw   the content of an absolute file path (one trailing newline removed)
    secret:fleet_key        an entry of the configuration's ``[secrets]`` table, which is itself
                            an ``env:`` or ``file:`` reference (shared keys are named once)

A literal value is refused, so a configuration text can be stored, diffed and shown (config
versions keep the whole text) without leaking anything.

:class:`SecretRef` is the parsed reference; it is safe to print. :meth:`SecretRef.resolve`
returns a :class:`Secret`, whose ``repr``/``str`` hide the value; only :meth:`Secret.reveal`
(text) and :meth:`Secret.reveal_key` (hex-decoded key bytes) hand it out. Error messages name
the reference (``env:METER_PW``), never the value, and not even its length.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from metercom.errors import ConfigError, InputError

__all__ = ["SECRET_FORMS", "Secret", "SecretRef", "parse_secret_ref"]

#: The accepted forms, for error messages.
SECRET_FORMS: Final = "env:NAME, file:/absolute/path or secret:NAME (an entry of [secrets])"  # noqa: S105

SecretScheme = Literal["env", "file", "secret"]

_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_MAX_SECRET_BYTES = 64 * 1024
#: DLMS (AES-128 / AES-256) key lengths in bytes.
KEY_LENGTHS: Final = (16, 32)


class Secret:
    """A resolved secret. Printing it shows ``Secret(<hidden>)``; use :meth:`reveal`."""

    __slots__ = ("_origin", "_value")

    def __init__(self, value: str, *, origin: str) -> None:
        self._value = value
        self._origin = origin

    @property
    def origin(self) -> str:
        """The reference it was resolved from (``env:METER_PW``); safe to print."""
        return self._origin

    def reveal(self) -> str:
        """The secret as text. Never log or print the result."""
        return self._value

    def reveal_key(self, lengths: tuple[int, ...] = KEY_LENGTHS) -> bytes:
        """The secret as key bytes, written as hex digits (spaces and colons allowed).

        Raises :class:`~metercom.errors.InputError` naming the reference (not the value) when
        it is not hex or not one of ``lengths`` bytes long.
        """
        digits = re.sub(r"[\s:]", "", self._value)
        try:
            key = bytes.fromhex(digits)
        except ValueError:
            raise InputError(
                f"secret {self._origin} is not a key written in hex digits (value not shown)"
            ) from None
        if len(key) not in lengths:
            expected = " or ".join(f"{n} bytes ({2 * n} hex digits)" for n in lengths)
            raise InputError(f"secret {self._origin} must be a key of {expected} (value not shown)")
        return key

    def __repr__(self) -> str:
        return f"Secret({self._origin}, <hidden>)"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return self._value == other._value

    def __hash__(self) -> int:
        return hash(("Secret", self._value))


@dataclass(frozen=True, slots=True)
class SecretRef:
    """A reference to a secret: ``env:NAME``, ``file:/path`` or ``secret:NAME``. Safe to print."""

    scheme: SecretScheme
    target: str
    #: For ``secret:`` references, the ``[secrets]`` entry it names, once bound by the config.
    via: SecretRef | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"

    def __repr__(self) -> str:
        return f"SecretRef({str(self)!r})"

    def resolve(
        self, *, env: Mapping[str, str] | None = None, secrets: Mapping[str, SecretRef] | None = None
    ) -> Secret:
        """Read the secret now. ``env`` defaults to ``os.environ``; ``secrets`` is the
        ``[secrets]`` table for ``secret:`` references (the bound ``via`` is used otherwise).

        Raises :class:`~metercom.errors.ConfigError` naming the reference, never the value.
        """
        env = os.environ if env is None else env
        if self.scheme == "env":
            value = env.get(self.target)
            if value is None:
                raise ConfigError(f"secret {self}: environment variable {self.target} is not set")
            if not value:
                raise ConfigError(f"secret {self}: environment variable {self.target} is empty")
            return Secret(value, origin=str(self))
        if self.scheme == "file":
            return Secret(_read_secret_file(self), origin=str(self))
        inner = secrets.get(self.target) if secrets is not None else self.via
        if inner is None:
            raise ConfigError(f"secret {self}: no entry {self.target!r} in [secrets]")
        if inner.scheme == "secret":
            raise ConfigError(f"secret {self}: [secrets] entries must be env: or file: references")
        resolved = inner.resolve(env=env)
        return Secret(resolved.reveal(), origin=f"{self} ({inner})")


def _read_secret_file(ref: SecretRef) -> str:
    path = Path(ref.target)
    try:
        with path.open("rb") as fh:
            data = fh.read(_MAX_SECRET_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"secret {ref}: the file does not exist") from None
    except PermissionError:
        raise ConfigError(f"secret {ref}: permission denied reading the file") from None
    except OSError as exc:
        raise ConfigError(
            f"secret {ref}: cannot read the file ({exc.strerror or type(exc).__name__})"
        ) from None
    if len(data) > _MAX_SECRET_BYTES:
        raise ConfigError(f"secret {ref}: the file is larger than {_MAX_SECRET_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"secret {ref}: the file is not UTF-8 text") from None
    if text.endswith("\r\n"):
        text = text[:-2]
    elif text.endswith("\n"):
        text = text[:-1]
    if not text:
        raise ConfigError(f"secret {ref}: the file is empty")
    return text


def parse_secret_ref(text: str, *, allow_named: bool = True) -> SecretRef:
    """Parse a reference. A literal (anything that is not a reference) is refused without
    echoing it, since it probably is a secret written into the configuration by mistake.

    ``allow_named=False`` refuses ``secret:`` (used for the entries of ``[secrets]`` itself).
    Raises :class:`~metercom.errors.InputError`.
    """
    scheme, sep, target = text.partition(":")
    forms = SECRET_FORMS if allow_named else "env:NAME or file:/absolute/path"
    if not sep or scheme not in ("env", "file", "secret"):
        raise InputError(
            f"expected a secret reference ({forms}); a literal value is not accepted (value not shown)"
        )
    if scheme == "env":
        if not _ENV_NAME.match(target):
            raise InputError(
                "env: needs an environment variable name (letters, digits and _, not a digit first)"
            )
        return SecretRef("env", target)
    if scheme == "file":
        if not target.startswith("/"):
            raise InputError(f"file: needs an absolute path (file:/etc/metercom/meter.key), got {text!r}")
        return SecretRef("file", target)
    if not allow_named:
        raise InputError(f"a [secrets] entry must be env: or file:, not {text!r} (no chains)")
    if not _SECRET_NAME.match(target):
        raise InputError(f"secret: needs the name of a [secrets] entry, got {text!r}")
    return SecretRef("secret", target)
