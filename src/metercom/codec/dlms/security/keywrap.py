"""AES key wrap (RFC 3394) for key transfer: Security Setup (class 64) method 2 ``key_transfer``
(IEC 62056-6-2 / Blue Book "Security setup", class_id 64; Green Book "Key wrapping").

Rule: ``unwrap_key`` either returns the key whose RFC 3394 integrity check value (A6A6A6A6A6A6A6A6)
verified, or raises. A wrapped key is 8 bytes longer than the key it carries (a 16-byte key
travels as 24 bytes); dlms-cosem 25.1.0 checks the wrapped input against the *key* length and so
fails on every genuine wrapped key, which the tests show.

Theory of operation: the client wraps each new key with the master key (KEK) and sends
``key_transfer(array of {key_id: enum, key_wrapped: octet-string})``; the server unwraps with its
KEK and installs the key. :class:`KeyTransferId` lists the key ids. The RFC 3394 algorithm itself
is ``cryptography``'s implementation.

Errors: bad local arguments raise :class:`LocalProtocolError`; a received wrapped key of an
impossible length raises :class:`RemoteProtocolError`; a wrapped key that fails its integrity
check (wrong KEK or tampered data) raises :class:`AuthenticationError`.
"""

from __future__ import annotations

import enum

from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from metercom.errors import AuthenticationError, LocalProtocolError, RemoteProtocolError

__all__ = ["KeyTransferId", "unwrap_key", "wrap_key"]

_LAYER = "dlms-security"
_KEK_LENGTHS = (16, 24, 32)


class KeyTransferId(enum.IntEnum):
    """``key_id`` of Security Setup ``key_transfer`` / ``key_generate``."""

    GLOBAL_UNICAST_ENCRYPTION_KEY = 0
    GLOBAL_BROADCAST_ENCRYPTION_KEY = 1
    AUTHENTICATION_KEY = 2
    MASTER_KEY = 3


def _check_kek(kek: bytes) -> None:
    if len(kek) not in _KEK_LENGTHS:
        raise LocalProtocolError(
            f"key-encrypting key must be 16, 24 or 32 bytes, got {len(kek)}", layer=_LAYER
        )


def wrap_key(kek: bytes, key: bytes) -> bytes:
    """Wrap ``key`` (a multiple of 8 bytes, at least 16) with ``kek``; the result is 8 bytes longer."""
    _check_kek(kek)
    if len(key) < 16 or len(key) % 8:
        raise LocalProtocolError(
            f"key to wrap must be a multiple of 8 bytes and at least 16, got {len(key)}", layer=_LAYER
        )
    return aes_key_wrap(bytes(kek), bytes(key))


def unwrap_key(kek: bytes, wrapped: bytes) -> bytes:
    """Unwrap a received ``wrapped`` key (24 bytes for a 16-byte key) with ``kek`` and verify it."""
    _check_kek(kek)
    if len(wrapped) < 24 or len(wrapped) % 8:
        raise RemoteProtocolError(
            f"a wrapped key must be a multiple of 8 bytes and at least 24, got {len(wrapped)}", layer=_LAYER
        )
    try:
        return aes_key_unwrap(bytes(kek), bytes(wrapped))
    except InvalidUnwrap as exc:
        raise AuthenticationError(
            "wrapped key failed its integrity check: wrong key-encrypting (master) key or corrupted data"
        ) from exc
