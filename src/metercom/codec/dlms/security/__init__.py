"""DLMS/COSEM security, security suite 0 (IEC 62056-5-3 and the DLMS UA Green Book, security chapter).

Rule: this package is the only place in metercom that imports ``cryptography``. It is pure
codec code: no I/O, no clock; randomness only through :func:`make_challenge`'s injectable source,
durability only through the :class:`CounterStore` protocol that outer layers implement.

Theory of operation, bottom up:

* :class:`SecurityControl` -- the SC octet (suite id, authentication, encryption, key-set, compression).
* :mod:`.suite` -- the suite registry; suite 0 is AES-GCM-128 with a 12-byte tag.
* :func:`protect` / :func:`unprotect` -- SC || IC || ciphertext || tag for one APDU; IV = system
  title || IC; AAD = SC || AK (|| plaintext when authentication-only). ``unprotect`` verifies the
  tag before anything is returned.
* :mod:`.apdu` -- framing: service-specific glo-/ded- APDUs, general-glo/ded-ciphering (system
  title may be empty), general-ciphering (framing only); A-XDR lengths of any size.
* :class:`SecurityContext` -- keys, system titles, the own counter (monotonic, persisted before
  use) and the replay check (tag first, then counter strictly greater, then update).
* :mod:`.hls` -- HLS-GMAC (mechanism 5) and HLS-SHA256 (mechanism 6), challenges.
* :mod:`.keywrap` -- RFC 3394 wrap/unwrap for Security Setup key_transfer.

Errors: malformed input from the peer -> :class:`~metercom.errors.RemoteProtocolError`; tag,
key, policy or replay failures -> :class:`~metercom.errors.AuthenticationError`
(:class:`ReplayError` for an old counter); bad local arguments ->
:class:`~metercom.errors.LocalProtocolError`. No key, secret or decrypted plaintext ever appears
in a repr or an exception message.
"""

from __future__ import annotations

from .apdu import (
    AgreedKey,
    CipheredApdu,
    CipheredApduTag,
    GeneralCipheredApdu,
    GeneralCiphering,
    IdentifiedKey,
    KeyInfo,
    ServiceCipheredApdu,
    WrappedKey,
    ciphered_tag_for,
    is_ciphered_apdu,
    parse_ciphered_apdu,
)
from .context import (
    OWN_COUNTER,
    CipheringKey,
    CounterStore,
    MemoryCounterStore,
    Protection,
    ReplayError,
    SecurityContext,
)
from .control import SecurityControl
from .hls import (
    CHALLENGE_MAX_LENGTH,
    CHALLENGE_MIN_LENGTH,
    HLS_GMAC_RESPONSE_LENGTH,
    MECHANISM_HLS_GMAC,
    MECHANISM_HLS_SHA256,
    check_challenge,
    hls_gmac,
    hls_sha256,
    make_challenge,
    verify_hls_gmac,
    verify_hls_sha256,
)
from .keywrap import KeyTransferId, unwrap_key, wrap_key
from .protection import HEADER_LENGTH, MAX_INVOCATION_COUNTER, Unprotected, protect, unprotect
from .suite import (
    TAG_LENGTH,
    AesGcmSuite,
    SecuritySuite,
    clear_key_cache,
    get_suite,
    register_suite,
    supported_suites,
)

__all__ = [
    "CHALLENGE_MAX_LENGTH",
    "CHALLENGE_MIN_LENGTH",
    "HEADER_LENGTH",
    "HLS_GMAC_RESPONSE_LENGTH",
    "MAX_INVOCATION_COUNTER",
    "MECHANISM_HLS_GMAC",
    "MECHANISM_HLS_SHA256",
    "OWN_COUNTER",
    "TAG_LENGTH",
    "AesGcmSuite",
    "AgreedKey",
    "CipheredApdu",
    "CipheredApduTag",
    "CipheringKey",
    "CounterStore",
    "GeneralCipheredApdu",
    "GeneralCiphering",
    "IdentifiedKey",
    "KeyInfo",
    "KeyTransferId",
    "MemoryCounterStore",
    "Protection",
    "ReplayError",
    "SecurityContext",
    "SecurityControl",
    "SecuritySuite",
    "ServiceCipheredApdu",
    "Unprotected",
    "WrappedKey",
    "check_challenge",
    "ciphered_tag_for",
    "clear_key_cache",
    "get_suite",
    "hls_gmac",
    "hls_sha256",
    "is_ciphered_apdu",
    "make_challenge",
    "parse_ciphered_apdu",
    "protect",
    "register_suite",
    "supported_suites",
    "unprotect",
    "unwrap_key",
    "verify_hls_gmac",
    "verify_hls_sha256",
    "wrap_key",
]
