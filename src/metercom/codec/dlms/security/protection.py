"""Cryptographic protection of one xDLMS APDU: ``protect`` and ``unprotect`` (IEC 62056-5-3 /
Green Book "Cryptographic protection of xDLMS APDUs", AES-GCM).

Rule: ``unprotect`` never returns bytes whose tag did not verify. Wrong keys, a flipped bit in
the header, ciphertext or tag, a wrong system title or invocation counter all raise
:class:`~metercom.errors.AuthenticationError`; malformed input raises
:class:`~metercom.errors.RemoteProtocolError`. Frames that carry no tag (SC with the encryption bit
only) are refused unless the caller explicitly allows unauthenticated frames.

Theory of operation: the *ciphered content* that goes inside every ciphered APDU is::

    SC (1) || IC (4, big-endian) || information

where *information* is ``ciphertext || tag`` (authenticated and encrypted), ``plaintext || tag``
(authenticated only) or ``ciphertext`` (encrypted only). The nonce is the sender's system title
followed by IC. Which key is the "encryption key" (global unicast, global broadcast or dedicated)
is the caller's choice; the SC key-set bit must agree with it (see :mod:`.context`). Invocation
counter policy (monotonic own counter, replay check on received ones) lives in
:class:`~metercom.codec.dlms.security.context.SecurityContext`, not here.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from metercom.errors import AuthenticationError, LocalProtocolError, RemoteProtocolError

from .control import SecurityControl
from .suite import get_suite

__all__ = ["HEADER_LENGTH", "MAX_INVOCATION_COUNTER", "Unprotected", "protect", "unprotect"]

_LAYER = "dlms-security"
_HEADER = struct.Struct(">BI")

#: SC (1) + IC (4)
HEADER_LENGTH = 5
#: The invocation counter is a 32-bit unsigned integer.
MAX_INVOCATION_COUNTER = 0xFFFF_FFFF
_COMPRESSION = 0x80
_AUTHENTICATION = 0x10


class Unprotected(NamedTuple):
    """Result of :func:`unprotect`. The plaintext is left out of the repr: it may carry keys
    (an InitiateRequest carries the dedicated key)."""

    security_control: SecurityControl
    invocation_counter: int
    plaintext: bytes

    def __repr__(self) -> str:
        return (
            f"Unprotected(security_control={self.security_control!r}, "
            f"invocation_counter={self.invocation_counter}, plaintext=<{len(self.plaintext)} bytes>)"
        )


def protect(
    plaintext: bytes,
    *,
    security_control: SecurityControl,
    system_title: bytes,
    invocation_counter: int,
    encryption_key: bytes,
    authentication_key: bytes | None = None,
) -> bytes:
    """Cipher ``plaintext`` and return the ciphered content SC || IC || information.

    ``authentication_key`` is required when the SC asks for authentication. The caller must use a
    given (key, system title, invocation counter) triple only once: reusing it breaks AES-GCM.
    :meth:`SecurityContext.protect` takes care of that.
    """
    sc = security_control.value
    suite = get_suite(sc & 0x0F)
    if suite is None:
        raise LocalProtocolError(f"security suite {sc & 0x0F} is not supported", layer=_LAYER)
    if sc & _COMPRESSION:
        raise LocalProtocolError("compression (SC bit 7) is not supported", layer=_LAYER)
    if len(system_title) != 8:
        raise LocalProtocolError(f"system title must be 8 bytes, got {len(system_title)}", layer=_LAYER)
    if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER:
        raise LocalProtocolError(
            f"invocation counter must be 0..0xFFFFFFFF, got {invocation_counter}", layer=_LAYER
        )
    if authentication_key is None:
        if sc & _AUTHENTICATION:
            raise LocalProtocolError(
                "an authentication key is needed for authenticated protection", layer=_LAYER
            )
        authentication_key = b""
    header = _HEADER.pack(sc, invocation_counter)
    iv = bytes(system_title) + header[1:]
    return header + suite.seal(sc, iv, encryption_key, authentication_key, plaintext)


def unprotect(
    content: bytes | memoryview,
    *,
    system_title: bytes,
    encryption_key: bytes,
    authentication_key: bytes | None = None,
    allow_unauthenticated: bool = False,
) -> Unprotected:
    """Verify and decipher a ciphered content SC || IC || information received from a peer
    whose system title is ``system_title``.

    The tag is checked before anything is returned. Raises :class:`AuthenticationError` when it
    does not verify, or when the frame carries no tag and ``allow_unauthenticated`` is false;
    :class:`RemoteProtocolError` when the content is malformed or uses an unsupported suite or
    compression; :class:`LocalProtocolError` for bad local arguments (key length, missing key).
    """
    if type(content) is not bytes:
        content = bytes(content)
    if len(content) < HEADER_LENGTH:
        raise RemoteProtocolError(
            f"ciphered content too short: {len(content)} bytes, at least {HEADER_LENGTH} (SC, IC) expected",
            layer=_LAYER,
            data=content,
        )
    sc = content[0]
    suite = get_suite(sc & 0x0F)
    if suite is None:
        raise RemoteProtocolError(
            f"security suite {sc & 0x0F} (SC 0x{sc:02x}) is not supported", layer=_LAYER, data=content[:5]
        )
    if sc & _COMPRESSION:
        raise RemoteProtocolError(
            f"compressed ciphered content (SC 0x{sc:02x}) is not supported", layer=_LAYER, data=content[:5]
        )
    if not sc & _AUTHENTICATION and not allow_unauthenticated:
        raise AuthenticationError(
            f"frame is not authenticated (SC 0x{sc:02x}) and unauthenticated frames are not allowed"
        )
    if len(system_title) != 8:
        raise RemoteProtocolError(f"system title must be 8 bytes, got {len(system_title)}", layer=_LAYER)
    if authentication_key is None:
        if sc & _AUTHENTICATION:
            raise LocalProtocolError("an authentication key is needed to verify this frame", layer=_LAYER)
        authentication_key = b""
    ic_bytes = content[1:HEADER_LENGTH]
    iv = system_title + ic_bytes if type(system_title) is bytes else bytes(system_title) + ic_bytes
    plaintext = suite.open(sc, iv, encryption_key, authentication_key, memoryview(content)[HEADER_LENGTH:])
    return Unprotected(SecurityControl.from_byte(sc), int.from_bytes(ic_bytes, "big"), plaintext)
