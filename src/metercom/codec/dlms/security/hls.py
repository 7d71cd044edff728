"""High-level security (HLS) authentication functions, passes 3 and 4 of the association
establishment (IEC 62056-5-3 / Green Book "Authentication mechanisms" and "HLS authentication
mechanisms using ... GMAC / SHA-256").

Rule: each side proves it holds the secret by transforming the *other* side's challenge; the
verifier recomputes the expected value and compares in constant time. A mismatch raises
:class:`~metercom.errors.AuthenticationError`; a malformed value raises
:class:`~metercom.errors.RemoteProtocolError`. Secrets never appear in a message.

Mechanism ids (the last arc of the mechanism name 2.16.756.5.8.2.x): 0 lowest, 1 LLS (the
password itself, carried in the AARQ by the ACSE layer), 2 HLS manufacturer-specific, 3 MD5,
4 SHA-1, **5 HLS-GMAC**, **6 HLS-SHA256**, 7 HLS-ECDSA. Only 5 and 6 are implemented here (the
issue called SHA-256 "mechanism 7"; the Green Book number is 6, 7 is ECDSA).

Mechanism 5, HLS-GMAC (security suite 0)::

    f(challenge) = SC || IC || GMAC_{EK}(IV = ST_sender || IC, AAD = SC || AK || challenge)

with SC = 0x10 | suite (authentication only), the sender's own system title and a fresh
invocation counter of the sender; 17 octets in all. The client answers StoC, the server CtoS.

Mechanism 6, HLS-SHA256::

    client: f(StoC) = SHA-256(HLS secret || ST_C || ST_S || StoC || CtoS)
    server: f(CtoS) = SHA-256(HLS secret || ST_S || ST_C || CtoS || StoC)

i.e. each side hashes the secret, its own system title, the peer's system title, the challenge it
received, then the challenge it sent (order as in the Green Book; the gurux-dlms client builds the
same concatenations, which the interop tests check).

Challenges are 8 to 64 random octets (Green Book, HLS authentication). :func:`make_challenge` takes its random
source from the caller; the default is :func:`os.urandom` (the operating system's CSPRNG), the one
place this codec reads anything from outside, and only when the caller does not inject a source.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import Final

from metercom.errors import AuthenticationError, LocalProtocolError, RemoteProtocolError

from .protection import MAX_INVOCATION_COUNTER
from .suite import TAG_LENGTH, get_suite

__all__ = [
    "CHALLENGE_MAX_LENGTH",
    "CHALLENGE_MIN_LENGTH",
    "HLS_GMAC_RESPONSE_LENGTH",
    "MECHANISM_HLS_GMAC",
    "MECHANISM_HLS_SHA256",
    "check_challenge",
    "hls_gmac",
    "hls_sha256",
    "make_challenge",
    "verify_hls_gmac",
    "verify_hls_sha256",
]

_LAYER = "dlms-security"

MECHANISM_HLS_GMAC: Final = 5
MECHANISM_HLS_SHA256: Final = 6
CHALLENGE_MIN_LENGTH: Final = 8
CHALLENGE_MAX_LENGTH: Final = 64
#: SC (1) + IC (4) + tag (12)
HLS_GMAC_RESPONSE_LENGTH: Final = 1 + 4 + TAG_LENGTH

_AUTHENTICATION_ONLY = 0x10


def make_challenge(length: int = 16, *, random_bytes: Callable[[int], bytes] = os.urandom) -> bytes:
    """A fresh challenge of ``length`` (8..64) octets from ``random_bytes`` (default :func:`os.urandom`).

    16 octets is the default because some meters (Texas Instruments based) accept nothing else.
    """
    if not CHALLENGE_MIN_LENGTH <= length <= CHALLENGE_MAX_LENGTH:
        raise LocalProtocolError(f"a challenge must be 8..64 bytes, {length} asked", layer=_LAYER)
    challenge = random_bytes(length)
    if len(challenge) != length:
        raise LocalProtocolError(
            f"random source returned {len(challenge)} bytes instead of {length}", layer=_LAYER
        )
    return bytes(challenge)


def check_challenge(challenge: bytes) -> None:
    """Raise :class:`RemoteProtocolError` unless a received challenge has 8..64 octets."""
    if not CHALLENGE_MIN_LENGTH <= len(challenge) <= CHALLENGE_MAX_LENGTH:
        raise RemoteProtocolError(
            f"challenge must be 8..64 bytes, got {len(challenge)}", layer=_LAYER, data=bytes(challenge)
        )


def hls_gmac(
    challenge: bytes,
    *,
    system_title: bytes,
    invocation_counter: int,
    encryption_key: bytes,
    authentication_key: bytes,
    suite_id: int = 0,
) -> bytes:
    """Mechanism 5: f(challenge) = SC || IC || GMAC tag, computed by the owner of ``system_title``.

    ``invocation_counter`` must be fresh (never used with ``encryption_key`` before); use
    :meth:`SecurityContext.hls_gmac_response` to get that guarantee.
    """
    suite = get_suite(suite_id)
    if suite is None:
        raise LocalProtocolError(f"security suite {suite_id} is not supported", layer=_LAYER)
    if len(system_title) != 8:
        raise LocalProtocolError(f"system title must be 8 bytes, got {len(system_title)}", layer=_LAYER)
    if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER:
        raise LocalProtocolError(f"invocation counter out of range: {invocation_counter}", layer=_LAYER)
    sc = _AUTHENTICATION_ONLY | suite_id
    header = bytes((sc,)) + invocation_counter.to_bytes(4, "big")
    iv = bytes(system_title) + header[1:]
    return header + suite.gmac(sc, iv, encryption_key, authentication_key, bytes(challenge))


def verify_hls_gmac(
    response: bytes,
    challenge: bytes,
    *,
    system_title: bytes,
    encryption_key: bytes,
    authentication_key: bytes,
    suite_id: int = 0,
) -> int:
    """Check the peer's f(challenge) for the ``challenge`` we sent; ``system_title`` is the peer's.

    Returns the peer's invocation counter carried in the response (for the replay check).
    """
    if len(response) != HLS_GMAC_RESPONSE_LENGTH:
        raise RemoteProtocolError(
            f"HLS-GMAC response must be {HLS_GMAC_RESPONSE_LENGTH} bytes (SC, IC, tag), got {len(response)}",
            layer=_LAYER,
            data=bytes(response),
        )
    sc = response[0]
    if sc != _AUTHENTICATION_ONLY | suite_id:
        raise RemoteProtocolError(
            f"HLS-GMAC response must have SC 0x{_AUTHENTICATION_ONLY | suite_id:02x}, got 0x{sc:02x}",
            layer=_LAYER,
            data=bytes(response[:5]),
        )
    counter = int.from_bytes(response[1:5], "big")
    expected = hls_gmac(
        challenge,
        system_title=system_title,
        invocation_counter=counter,
        encryption_key=encryption_key,
        authentication_key=authentication_key,
        suite_id=suite_id,
    )
    if not hmac.compare_digest(expected, bytes(response)):
        raise AuthenticationError(
            "HLS-GMAC response does not verify: the peer does not hold the same keys, or the "
            "system title or challenge differ"
        )
    return counter


def hls_sha256(
    secret: bytes,
    *,
    own_system_title: bytes,
    peer_system_title: bytes,
    received_challenge: bytes,
    sent_challenge: bytes,
) -> bytes:
    """Mechanism 6: SHA-256(secret || own ST || peer ST || received challenge || sent challenge).

    A client passes its own system title, the server's, StoC and CtoS; a server the reverse.
    """
    digest = hashlib.sha256()
    for part in (secret, own_system_title, peer_system_title, received_challenge, sent_challenge):
        digest.update(part)
    return digest.digest()


def verify_hls_sha256(
    response: bytes,
    secret: bytes,
    *,
    own_system_title: bytes,
    peer_system_title: bytes,
    sent_challenge: bytes,
    received_challenge: bytes,
) -> None:
    """Check the peer's mechanism-6 answer to the challenge we sent (``sent_challenge``)."""
    if len(response) != hashlib.sha256().digest_size:
        raise RemoteProtocolError(
            f"HLS-SHA256 response must be 32 bytes, got {len(response)}", layer=_LAYER, data=bytes(response)
        )
    expected = hls_sha256(
        secret,
        own_system_title=peer_system_title,
        peer_system_title=own_system_title,
        received_challenge=sent_challenge,
        sent_challenge=received_challenge,
    )
    if not hmac.compare_digest(expected, bytes(response)):
        raise AuthenticationError(
            "HLS-SHA256 response does not verify: the peer does not hold the same secret"
        )
