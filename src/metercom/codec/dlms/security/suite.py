"""Security suites: the symmetric algorithm behind each security suite id (IEC 62056-5-3 /
Green Book "Security suites").

Rule: a suite is a strategy object looked up by the suite id nibble of the security control byte;
the rest of the stack never names an algorithm. Only suite 0 (AES-GCM-128, 12-byte tag) is
registered today. Suites 1 and 2 use the same AES-GCM construction (with 16- and 32-byte keys)
plus ECDSA/ECDH key management; registering them later is one :class:`AesGcmSuite` each and a
:func:`register_suite` call once that key management exists.

Theory of operation (NIST SP 800-38D, as profiled by the Green Book for DLMS):

* IV = system title (8 octets) || invocation counter (4 octets, big-endian) -- 96 bits, so
  J0 = IV || 0x00000001 and the keystream starts at IV || 0x00000002.
* authenticated and encrypted: AAD = SC || AK; output = ciphertext || tag[:12]
* authenticated only:          AAD = SC || AK || plaintext; output = plaintext || tag[:12]
* encrypted only:              no tag; output = ciphertext
* ``gmac``: a tag over SC || AK || data, the HLS mechanism 5 building block.

Speed: ``cryptography``'s one-shot :class:`AESGCM` object is several times cheaper per call than a
``Cipher``/``GCM`` context, but it only verifies full 16-byte tags. So ``open`` does not ask it to
verify our 12-byte tag; it rebuilds the tag instead. CTR mode is its own inverse, so encrypting the
received ciphertext with an empty AAD yields the plaintext; encrypting that plaintext again with the
real AAD reproduces the sender's exact ciphertext and hence the full tag over (AAD, ciphertext),
whose first 12 octets are compared in constant time with the received tag. The plaintext is
released only after that comparison succeeds; a mismatch raises :class:`AuthenticationError`.
``tests/codec/dlms/test_security.py`` checks this against the library's standard GCM decryptor.

AESGCM objects (which hold the expanded key) are cached per key in a small LRU
(:func:`clear_key_cache` empties it, e.g. after a key change).
"""

from __future__ import annotations

import abc
import hmac
from functools import lru_cache
from typing import Final

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from metercom.errors import AuthenticationError, LocalProtocolError, RemoteProtocolError

__all__ = [
    "TAG_LENGTH",
    "AesGcmSuite",
    "SecuritySuite",
    "clear_key_cache",
    "get_suite",
    "register_suite",
    "supported_suites",
]

_LAYER = "dlms-security"

#: Authentication tag length of suites 0..2 (Green Book security suites: GCM tag truncated to 96 bits).
TAG_LENGTH: Final = 12

_AUTHENTICATION = 0x10
_ENCRYPTION = 0x20


@lru_cache(maxsize=256)
def _aesgcm(key: bytes) -> AESGCM:
    return AESGCM(key)


def clear_key_cache() -> None:
    """Forget every cached AES-GCM key schedule."""
    _aesgcm.cache_clear()


class SecuritySuite(abc.ABC):
    """Strategy interface of one security suite's symmetric part.

    ``seal``/``open`` work on the part of the ciphered content after SC || IC; ``sc`` is the
    security control octet, ``iv`` the 12-octet nonce. Implementations raise
    :class:`LocalProtocolError` for bad local input (key length), :class:`RemoteProtocolError`
    for malformed received input and :class:`AuthenticationError` when a tag does not verify.
    """

    suite_id: int
    key_length: int
    tag_length: int = TAG_LENGTH

    @abc.abstractmethod
    def seal(
        self, sc: int, iv: bytes, encryption_key: bytes, authentication_key: bytes, plaintext: bytes
    ) -> bytes:
        """Protect ``plaintext``; return the information part (ciphertext and/or tag)."""

    @abc.abstractmethod
    def open(
        self,
        sc: int,
        iv: bytes,
        encryption_key: bytes,
        authentication_key: bytes,
        payload: bytes | memoryview,
    ) -> bytes:
        """Verify and decipher the information part; return the plaintext."""

    @abc.abstractmethod
    def gmac(
        self, sc: int, iv: bytes, encryption_key: bytes, authentication_key: bytes, data: bytes
    ) -> bytes:
        """The authentication tag over SC || AK || ``data`` alone."""

    def check_key(self, key: bytes, what: str) -> None:
        """Raise :class:`LocalProtocolError` unless ``key`` has this suite's length (never shows the key)."""
        if len(key) != self.key_length:
            raise LocalProtocolError(
                f"{what} must be {self.key_length} bytes for security suite {self.suite_id}, got {len(key)}",
                layer=_LAYER,
            )


class AesGcmSuite(SecuritySuite):
    """AES-GCM with a 12-octet tag: suite 0 with 16-byte keys (suites 1 and 2 reuse it)."""

    def __init__(self, suite_id: int, key_length: int) -> None:
        self.suite_id = suite_id
        self.key_length = key_length

    def _aead(self, key: bytes) -> AESGCM:
        if len(key) != self.key_length:
            self.check_key(key, "encryption key")
        return _aesgcm(key if type(key) is bytes else bytes(key))

    def _aad(self, sc: int, authentication_key: bytes) -> bytes:
        if len(authentication_key) != self.key_length:
            self.check_key(authentication_key, "authentication key")
        return bytes((sc,)) + authentication_key

    def seal(
        self, sc: int, iv: bytes, encryption_key: bytes, authentication_key: bytes, plaintext: bytes
    ) -> bytes:
        aead = self._aead(encryption_key)
        protection = sc & (_AUTHENTICATION | _ENCRYPTION)
        if protection == _AUTHENTICATION | _ENCRYPTION:
            return aead.encrypt(iv, plaintext, self._aad(sc, authentication_key))[:-4]
        if protection == _AUTHENTICATION:
            aad = self._aad(sc, authentication_key) + plaintext
            return plaintext + aead.encrypt(iv, b"", aad)[:TAG_LENGTH]
        if protection == _ENCRYPTION:
            return aead.encrypt(iv, plaintext, None)[:-16]
        raise LocalProtocolError(
            f"security control 0x{sc:02x} asks for neither authentication nor encryption", layer=_LAYER
        )

    def open(
        self,
        sc: int,
        iv: bytes,
        encryption_key: bytes,
        authentication_key: bytes,
        payload: bytes | memoryview,
    ) -> bytes:
        aead = self._aead(encryption_key)
        protection = sc & (_AUTHENTICATION | _ENCRYPTION)
        if protection == _ENCRYPTION:
            # No tag: CTR is its own inverse, so "encrypting" the ciphertext decrypts it.
            return aead.encrypt(iv, payload, None)[:-16]
        if not protection:
            raise RemoteProtocolError(
                f"security control 0x{sc:02x} announces neither authentication nor encryption", layer=_LAYER
            )
        if len(payload) < TAG_LENGTH:
            raise RemoteProtocolError(
                f"ciphered content too short for a {TAG_LENGTH}-byte authentication tag: "
                f"{len(payload)} bytes after SC and IC",
                layer=_LAYER,
            )
        view = memoryview(payload)
        tag = view[-TAG_LENGTH:]
        if protection == _AUTHENTICATION:
            plaintext = bytes(view[:-TAG_LENGTH])
            aad = self._aad(sc, authentication_key) + plaintext
            expected = aead.encrypt(iv, b"", aad)[:TAG_LENGTH]
        else:
            aad = self._aad(sc, authentication_key)
            plaintext = aead.encrypt(iv, view[:-TAG_LENGTH], None)[:-16]
            expected = aead.encrypt(iv, plaintext, aad)[-16:-4]
        if not hmac.compare_digest(expected, tag):
            raise AuthenticationError(
                "authentication tag does not verify: wrong encryption or authentication key, wrong "
                "system title or invocation counter, or a corrupted or forged frame"
            )
        return plaintext

    def gmac(
        self, sc: int, iv: bytes, encryption_key: bytes, authentication_key: bytes, data: bytes
    ) -> bytes:
        aad = self._aad(sc, authentication_key) + data
        return self._aead(encryption_key).encrypt(iv, b"", aad)[:TAG_LENGTH]


_SUITES: dict[int, SecuritySuite] = {}


def register_suite(suite: SecuritySuite) -> None:
    """Make ``suite`` available under its ``suite_id`` (one registration per id)."""
    if suite.suite_id in _SUITES:
        raise LocalProtocolError(f"security suite {suite.suite_id} is already registered", layer=_LAYER)
    _SUITES[suite.suite_id] = suite


def get_suite(suite_id: int) -> SecuritySuite | None:
    """The registered suite for ``suite_id``, or ``None``."""
    return _SUITES.get(suite_id)


def supported_suites() -> frozenset[int]:
    """Ids of the registered suites."""
    return frozenset(_SUITES)


register_suite(AesGcmSuite(0, 16))
