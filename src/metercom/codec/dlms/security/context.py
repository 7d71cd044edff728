"""Security context of one DLMS association: keys, system titles and invocation counters
(IEC 62056-5-3 / Green Book: "Security context", "Initialization vector" and the invocation
counter rules; Blue Book Security setup, class_id 64).

Rules:

1. Our own invocation counter (IC) is monotonic and never reused: :meth:`SecurityContext.next_counter`
   hands out each value once, for every ciphering operation and every HLS-GMAC proof, with any
   key (one counter for all keys is stricter than the standard asks and keeps nonces unique).
   When a :class:`CounterStore` is given, the counter is persisted **before** the value is handed
   out, so a frame can never be sent with a counter that a restart could hand out again. With
   ``counter_reserve = n`` the store is written once per ``n`` counters (it records a ceiling; a
   restart resumes at that ceiling and skips at most ``n - 1`` unused values).
2. A received frame is accepted only if its tag verifies FIRST and then its IC is strictly greater
   than the last IC accepted with the same key; only then is the stored value updated. A forged
   frame therefore never moves the counter (dlms-cosem updates it before checking the tag, so one
   forged frame with IC 0xFFFFFFFF blocks every later genuine reply).
3. Frames without authentication are refused unless ``allow_unauthenticated`` is set; even then
   they are checked against the counter but never advance it. By default a frame must also carry
   at least the protection we apply (``require_encryption`` follows our own security control).
4. The peer is identified by its system title: a frame naming another one is refused, and so is
   a frame naming our own (a reflection of something we sent would otherwise verify). When the
   peer system title is not configured, the first authenticated frame that names one pins it.
5. Keys never appear in a repr or an exception message.

Durable storage is outside the codec: the session or service layer implements
:class:`CounterStore` (a row in the meter's table, a file...) and passes it in. The codec calls
``save`` synchronously from :meth:`next_counter` and after accepting a frame; an implementation
that must not block can keep the value in memory and flush it, at the price described in rule 1
(choose ``counter_reserve`` accordingly and flush before sending).

Not thread-safe: one context belongs to one association driven by one task.
"""

from __future__ import annotations

import enum
from typing import Protocol

from metercom.codec.dlms.axdr import encode_length
from metercom.errors import AuthenticationError, LocalProtocolError, RemoteProtocolError

from .apdu import (
    GeneralCipheredApdu,
    GeneralCiphering,
    ciphered_tag_for,
    parse_ciphered_apdu,
)
from .control import SecurityControl
from .hls import hls_gmac, verify_hls_gmac
from .protection import HEADER_LENGTH, MAX_INVOCATION_COUNTER, protect, unprotect
from .suite import get_suite

__all__ = [
    "OWN_COUNTER",
    "CipheringKey",
    "CounterStore",
    "MemoryCounterStore",
    "Protection",
    "ReplayError",
    "SecurityContext",
]

_LAYER = "dlms-security"
_SUITE_MASK = 0x0F
_AUTHENTICATION = 0x10
_ENCRYPTION = 0x20
_KEY_SET = 0x40

#: Name under which :class:`SecurityContext` saves its own counter ceiling.
OWN_COUNTER = "own"


class ReplayError(AuthenticationError):
    """A frame authenticated correctly but its invocation counter was not above the last accepted one."""


class CipheringKey(enum.Enum):
    """Which symmetric key ciphers a frame (Security Setup keys, plus the association's dedicated key)."""

    GLOBAL_UNICAST = "global-unicast"
    GLOBAL_BROADCAST = "global-broadcast"
    DEDICATED = "dedicated"

    @property
    def counter_name(self) -> str:
        """Name under which the last accepted peer counter for this key is saved."""
        return f"peer:{self.value}"


class Protection(enum.Enum):
    """How :meth:`SecurityContext.encode_apdu` frames a ciphered APDU."""

    GLOBAL = "glo"  # service-specific glo- tag, global unicast (or broadcast) key
    DEDICATED = "ded"  # service-specific ded- tag, dedicated key
    GENERAL_GLOBAL = "general-glo"  # general-glo-ciphering, carries the system title
    GENERAL_DEDICATED = "general-ded"  # general-ded-ciphering


class CounterStore(Protocol):
    """Durable home of invocation counters, implemented outside the codec.

    Names: :data:`OWN_COUNTER` holds the first own counter value that may still be used (a
    ceiling: every value below it may already be on the wire); ``"peer:<key>"`` holds the last
    peer counter accepted with that key (see :attr:`CipheringKey.counter_name`). ``save`` must
    have made the value durable when it returns (or raise, which aborts the operation).
    """

    def load(self, name: str) -> int | None: ...

    def save(self, name: str, value: int) -> None: ...


class MemoryCounterStore:
    """A :class:`CounterStore` in a dict: for tests and simulators (not durable)."""

    def __init__(self, values: dict[str, int] | None = None) -> None:
        self.values: dict[str, int] = dict(values or {})

    def load(self, name: str) -> int | None:
        return self.values.get(name)

    def save(self, name: str, value: int) -> None:
        self.values[name] = value


def _check_system_title(value: bytes, what: str) -> bytes:
    if len(value) != 8:
        raise LocalProtocolError(f"{what} must be 8 bytes, got {len(value)}", layer=_LAYER)
    return bytes(value)


class SecurityContext:
    """Keys, system titles and invocation counters of one association (sans-I/O, no clock).

    ``security_control`` is what we apply to frames we send (default 0x30: suite 0,
    authenticated and encrypted); the key-set bit is set per frame when the broadcast key is used.
    ``invocation_counter`` is the next own counter to use (raised to the stored ceiling when a
    ``counter_store`` knows a higher one). ``peer_invocation_counter`` is the last counter already
    accepted from the peer with the global unicast key (e.g. read from the meter's frame counter
    object), ``None`` to accept any first value.
    """

    __slots__ = (
        "_authentication_key",
        "_broadcast_key",
        "_dedicated_key",
        "_encryption_key",
        "_next",
        "_peer_counters",
        "_reserved_until",
        "_security_control",
        "_suite_id",
        "allow_unauthenticated",
        "counter_reserve",
        "counter_store",
        "peer_system_title",
        "require_encryption",
        "suite",
        "system_title",
    )

    def __init__(
        self,
        *,
        system_title: bytes,
        encryption_key: bytes,
        authentication_key: bytes,
        peer_system_title: bytes | None = None,
        security_control: SecurityControl | None = None,
        invocation_counter: int = 0,
        peer_invocation_counter: int | None = None,
        dedicated_key: bytes | None = None,
        broadcast_key: bytes | None = None,
        counter_store: CounterStore | None = None,
        counter_reserve: int = 1,
        allow_unauthenticated: bool = False,
        require_encryption: bool | None = None,
    ) -> None:
        sc = security_control if security_control is not None else SecurityControl.of()
        suite = get_suite(sc.suite_id)
        if suite is None:
            raise LocalProtocolError(f"security suite {sc.suite_id} is not supported", layer=_LAYER)
        if sc.compression:
            raise LocalProtocolError("compression (SC bit 7) is not supported", layer=_LAYER)
        if not (sc.authentication or sc.encryption):
            raise LocalProtocolError(
                "the security control of a security context must ask for authentication and/or encryption",
                layer=_LAYER,
            )
        if counter_reserve < 1:
            raise LocalProtocolError(
                f"counter_reserve must be at least 1, got {counter_reserve}", layer=_LAYER
            )
        self.suite = suite
        self._suite_id = sc.suite_id
        self._security_control = sc.replace(key_set=False)
        self.system_title = _check_system_title(system_title, "own system title")
        self.peer_system_title = (
            None if peer_system_title is None else _check_system_title(peer_system_title, "peer system title")
        )
        if self.peer_system_title == self.system_title:
            # Our own frames reflected back would verify: nonces must differ per direction.
            raise LocalProtocolError("the peer system title must differ from our own", layer=_LAYER)
        suite.check_key(encryption_key, "encryption key")
        suite.check_key(authentication_key, "authentication key")
        if dedicated_key is not None:
            suite.check_key(dedicated_key, "dedicated key")
        if broadcast_key is not None:
            suite.check_key(broadcast_key, "broadcast key")
        self._encryption_key = bytes(encryption_key)
        self._authentication_key = bytes(authentication_key)
        self._dedicated_key = None if dedicated_key is None else bytes(dedicated_key)
        self._broadcast_key = None if broadcast_key is None else bytes(broadcast_key)
        self.allow_unauthenticated = allow_unauthenticated
        self.require_encryption = sc.encryption if require_encryption is None else require_encryption
        self.counter_store = counter_store
        self.counter_reserve = counter_reserve
        if not 0 <= invocation_counter <= MAX_INVOCATION_COUNTER + 1:
            raise LocalProtocolError(f"invocation counter out of range: {invocation_counter}", layer=_LAYER)
        self._peer_counters: dict[CipheringKey, int] = {}
        if peer_invocation_counter is not None:
            if not 0 <= peer_invocation_counter <= MAX_INVOCATION_COUNTER:
                raise LocalProtocolError(
                    f"peer invocation counter out of range: {peer_invocation_counter}", layer=_LAYER
                )
            self._peer_counters[CipheringKey.GLOBAL_UNICAST] = peer_invocation_counter
        if counter_store is not None:
            stored = counter_store.load(OWN_COUNTER)
            if stored is not None:
                invocation_counter = max(invocation_counter, stored)
            for key in (CipheringKey.GLOBAL_UNICAST, CipheringKey.GLOBAL_BROADCAST):
                peer = counter_store.load(key.counter_name)
                if peer is not None:
                    self._peer_counters[key] = max(peer, self._peer_counters.get(key, -1))
        self._next = invocation_counter
        self._reserved_until = invocation_counter  # nothing reserved in the store yet

    def __repr__(self) -> str:
        peer = self.peer_system_title.hex() if self.peer_system_title is not None else None
        return (
            f"SecurityContext(system_title={self.system_title.hex()}, peer_system_title={peer}, "
            f"security_control={self.security_control!r}, invocation_counter={self._next}, "
            f"peer_invocation_counters={ {k.value: v for k, v in self._peer_counters.items()} })"
        )

    @property
    def security_control(self) -> SecurityControl:
        """The protection applied to frames we send (key-set bit clear; set per broadcast frame)."""
        return self._security_control

    # -- keys -----------------------------------------------------------------------------------

    @property
    def has_dedicated_key(self) -> bool:
        return self._dedicated_key is not None

    def set_dedicated_key(self, key: bytes | None) -> None:
        """Install (or with ``None`` drop) the association's dedicated key; resets its counter track."""
        if key is not None:
            self.suite.check_key(key, "dedicated key")
        self._dedicated_key = None if key is None else bytes(key)
        self._peer_counters.pop(CipheringKey.DEDICATED, None)

    def _key(self, which: CipheringKey) -> bytes:
        if which is CipheringKey.GLOBAL_UNICAST:
            return self._encryption_key
        key = self._dedicated_key if which is CipheringKey.DEDICATED else self._broadcast_key
        if key is None:
            raise LocalProtocolError(
                f"no {which.value} key is configured in this security context", layer=_LAYER
            )
        return key

    # -- counters -------------------------------------------------------------------------------

    @property
    def invocation_counter(self) -> int:
        """The next own invocation counter value that :meth:`next_counter` will hand out."""
        return self._next

    def peer_invocation_counter(self, key: CipheringKey = CipheringKey.GLOBAL_UNICAST) -> int | None:
        """The last peer invocation counter accepted with ``key``, or ``None``."""
        return self._peer_counters.get(key)

    def next_counter(self) -> int:
        """Hand out the next own invocation counter, persisting it first when a store is configured.

        Raises :class:`LocalProtocolError` when the 32-bit counter is exhausted: the key must be
        changed (Security Setup key_transfer) before anything else is sent with it.
        """
        value = self._next
        if value > MAX_INVOCATION_COUNTER:
            raise LocalProtocolError(
                "invocation counter exhausted (0xFFFFFFFF used): transfer new keys before sending more",
                layer=_LAYER,
            )
        if self.counter_store is not None and value >= self._reserved_until:
            ceiling = min(value + self.counter_reserve, MAX_INVOCATION_COUNTER + 1)
            self.counter_store.save(OWN_COUNTER, ceiling)
            self._reserved_until = ceiling
        self._next = value + 1
        return value

    def _accept_counter(self, key: CipheringKey, counter: int, *, authenticated: bool) -> None:
        last = self._peer_counters.get(key)
        if last is not None and counter <= last:
            raise ReplayError(
                f"invocation counter {counter} (0x{counter:08x}) is not above the last accepted "
                f"{last} (0x{last:08x}) for the {key.value} key: replayed or reordered frame"
            )
        if not authenticated:
            return  # an unverified frame never moves the counter
        if self.counter_store is not None and key is not CipheringKey.DEDICATED:
            self.counter_store.save(key.counter_name, counter)
        self._peer_counters[key] = counter

    def _peer_title(self, carried: bytes | None) -> bytes:
        if carried:
            if carried == self.system_title:
                raise AuthenticationError(
                    f"frame names our own system title {carried.hex()}: a reflected frame, refused"
                )
            if self.peer_system_title is not None and carried != self.peer_system_title:
                raise AuthenticationError(
                    f"frame names system title {carried.hex()} but the peer is {self.peer_system_title.hex()}"
                )
            return carried
        if self.peer_system_title is None:
            raise RemoteProtocolError(
                "the frame carries no system title and no peer system title is configured; "
                "set peer_system_title (from the AARE, or out of band for meters that omit it)",
                layer=_LAYER,
            )
        return self.peer_system_title

    # -- protection -----------------------------------------------------------------------------

    def protect(self, plaintext: bytes, *, key: CipheringKey = CipheringKey.GLOBAL_UNICAST) -> bytes:
        """Cipher ``plaintext`` with a fresh own invocation counter; return SC || IC || information."""
        sc = self.security_control
        if key is CipheringKey.GLOBAL_BROADCAST:
            sc = sc.replace(key_set=True)
        encryption_key = self._key(key)
        return protect(
            plaintext,
            security_control=sc,
            system_title=self.system_title,
            invocation_counter=self.next_counter(),
            encryption_key=encryption_key,
            authentication_key=self._authentication_key,
        )

    def unprotect(
        self,
        content: bytes | memoryview,
        *,
        key: CipheringKey = CipheringKey.GLOBAL_UNICAST,
        system_title: bytes | None = None,
        expected_tag: int | None = None,
    ) -> bytes:
        """Verify and decipher a received ciphered content under this context's policy.

        ``key`` is the unicast key the framing implies (global or dedicated); a set key-set bit
        selects the global broadcast key instead. ``system_title`` is the one the frame carried,
        if any; ``expected_tag`` the unciphered APDU tag the plaintext must start with (the outer
        tag of a service-specific APDU is not authenticated). Order: policy checks, tag
        verification, content check, replay check, and only then the counter update. Raises
        :class:`AuthenticationError` (:class:`ReplayError` for an old counter) or
        :class:`RemoteProtocolError`; nothing is updated when it raises.
        """
        if len(content) < HEADER_LENGTH:
            raise RemoteProtocolError(
                f"ciphered content too short: {len(content)} bytes", layer=_LAYER, data=bytes(content)
            )
        sc = content[0]
        if sc & _SUITE_MASK != self._suite_id:
            raise RemoteProtocolError(
                f"frame uses security suite {sc & _SUITE_MASK}, this association uses suite {self._suite_id}",
                layer=_LAYER,
                data=bytes(content[:HEADER_LENGTH]),
            )
        if self.require_encryption and not sc & _ENCRYPTION:
            raise AuthenticationError(
                f"frame is not encrypted (SC 0x{sc:02x}) but this association requires encryption"
            )
        if sc & _KEY_SET:
            if key is CipheringKey.DEDICATED:
                raise RemoteProtocolError(
                    "dedicated-key framing with the broadcast key-set bit",
                    layer=_LAYER,
                    data=bytes(content[:HEADER_LENGTH]),
                )
            key = CipheringKey.GLOBAL_BROADCAST
            if self._broadcast_key is None:
                raise AuthenticationError("frame uses the global broadcast key, which is not configured")
        elif key is CipheringKey.DEDICATED and self._dedicated_key is None:
            raise AuthenticationError("frame uses the dedicated key, but no dedicated key was agreed")
        peer = self._peer_title(system_title)
        result = unprotect(
            content,
            system_title=peer,
            encryption_key=self._key(key),
            authentication_key=self._authentication_key,
            allow_unauthenticated=self.allow_unauthenticated,
        )
        plaintext = result.plaintext
        if expected_tag is not None and (not plaintext or plaintext[0] != expected_tag):
            inner = f"0x{plaintext[0]:02x}" if plaintext else "nothing"
            raise RemoteProtocolError(
                f"ciphered APDU announces service 0x{expected_tag:02x} but contains {inner}", layer=_LAYER
            )
        authenticated = bool(sc & _AUTHENTICATION)
        self._accept_counter(key, result.invocation_counter, authenticated=authenticated)
        if self.peer_system_title is None and authenticated:
            self.peer_system_title = peer
        return plaintext

    # -- whole APDUs ----------------------------------------------------------------------------

    def encode_apdu(
        self,
        apdu: bytes,
        *,
        protection: Protection = Protection.GLOBAL,
        broadcast: bool = False,
        omit_system_title: bool = False,
    ) -> bytes:
        """Cipher an unciphered xDLMS APDU and frame it.

        ``broadcast`` uses the global broadcast key (global framings only). ``omit_system_title``
        sends general-glo/ded-ciphering with an empty system title, as some meters do (for
        simulators of those meters).
        """
        if not apdu:
            raise LocalProtocolError("cannot cipher an empty APDU", layer=_LAYER)
        dedicated = protection in (Protection.DEDICATED, Protection.GENERAL_DEDICATED)
        if broadcast and dedicated:
            raise LocalProtocolError("the broadcast key cannot be used with dedicated framing", layer=_LAYER)
        key = (
            CipheringKey.DEDICATED
            if dedicated
            else (CipheringKey.GLOBAL_BROADCAST if broadcast else CipheringKey.GLOBAL_UNICAST)
        )
        if protection in (Protection.GLOBAL, Protection.DEDICATED):
            tag = ciphered_tag_for(apdu[0], dedicated=dedicated)
            if tag is None:
                raise LocalProtocolError(
                    f"APDU tag 0x{apdu[0]:02x} has no service-specific ciphered form; use general ciphering",
                    layer=_LAYER,
                )
            content = self.protect(apdu, key=key)
            return bytes((tag,)) + encode_length(len(content)) + content
        content = self.protect(apdu, key=key)
        title = b"" if omit_system_title else self.system_title
        return GeneralCipheredApdu(dedicated, title, content).to_bytes()

    def decode_apdu(self, data: bytes | bytearray | memoryview) -> bytes:
        """Parse, verify and decipher one ciphered APDU; return the unciphered APDU.

        Raises :class:`RemoteProtocolError` or :class:`AuthenticationError` only (plus whatever
        the :class:`CounterStore` raises when saving the accepted counter). general-ciphering
        (0xDD) is framed but refused: its suite 1/2 key agreement is not implemented.
        """
        apdu = parse_ciphered_apdu(data)
        if isinstance(apdu, GeneralCiphering):
            raise RemoteProtocolError(
                "general-ciphering is not supported yet", layer=_LAYER, data=bytes(data[:16])
            )
        if isinstance(apdu, GeneralCipheredApdu):
            key = CipheringKey.DEDICATED if apdu.dedicated else CipheringKey.GLOBAL_UNICAST
            return self.unprotect(apdu.content, key=key, system_title=apdu.system_title or None)
        key = CipheringKey.DEDICATED if apdu.dedicated else CipheringKey.GLOBAL_UNICAST
        return self.unprotect(apdu.content, key=key, expected_tag=apdu.plain_tag)

    # -- HLS mechanism 5 ------------------------------------------------------------------------

    def hls_gmac_response(self, challenge: bytes) -> bytes:
        """HLS-GMAC f(challenge) = SC || IC || GMAC(SC || AK || challenge), own system title, fresh IC."""
        return hls_gmac(
            challenge,
            system_title=self.system_title,
            invocation_counter=self.next_counter(),
            encryption_key=self._encryption_key,
            authentication_key=self._authentication_key,
            suite_id=self.security_control.suite_id,
        )

    def verify_hls_gmac_response(self, response: bytes, challenge: bytes) -> int:
        """Check the peer's f(challenge) for the challenge we sent; return the IC it carries.

        The IC does not go through the replay check and does not move the peer counter: the
        GMAC covers our own fresh challenge, so the response cannot be a replay, and a peer
        computes f() before it ciphers the APDU that carries it, so its IC is legitimately
        below the counter of that (already accepted) APDU in a ciphered association.
        """
        if self.peer_system_title is None:
            raise LocalProtocolError(
                "the peer system title is needed to verify HLS-GMAC (take it from the AARQ/AARE AP title)",
                layer=_LAYER,
            )
        return verify_hls_gmac(
            response,
            challenge,
            system_title=self.peer_system_title,
            encryption_key=self._encryption_key,
            authentication_key=self._authentication_key,
            suite_id=self.security_control.suite_id,
        )
