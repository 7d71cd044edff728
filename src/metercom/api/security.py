"""Logins: Argon2id passwords, session ids and tokens, roles, and the login rate limiter.

Rule: secrets are random (``secrets``), stored only as hashes, and compared in constant time.
Passwords use Argon2id (argon2-cffi's defaults: RFC 9106's second recommended parameter set);
hashing runs in a worker thread so a login never stalls the head-end's event loop. A login
for an unknown user verifies against a dummy hash, so the answer's timing does not tell
which usernames exist. Session ids and tokens carry 256 random bits, so their SHA-256 is a
sufficient (and fast) stored form.

The :class:`LoginLimiter` counts failed logins per username and per client address in a
sliding window on the head-end's clock (virtual in tests). At ``max_failures`` failures in the
window further attempts are refused, right password or not, until the oldest failure leaves
the window; the answer is 429 with ``Retry-After``. An attempt counts as a failure from the moment
it is let through until its password is found right (then it is taken back), so guesses sent
all at once cannot pass the check before the first of them fails. The limiter lives in the process (a
restart forgets it) and is bounded in memory: when it is full, the oldest keys go first, except
the keys of usernames that exist (pinned; there are only as many as users).
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
import hmac
import re
import secrets
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = [
    "TOKEN_PREFIX",
    "USERNAME_RE",
    "LoginLimiter",
    "Passwords",
    "Principal",
    "Role",
    "hash_secret",
    "new_csrf_token",
    "new_session_id",
    "new_token",
    "same_secret",
]

TOKEN_PREFIX: Final = "mct_"  # noqa: S105 - a prefix, not a secret
USERNAME_RE: Final = re.compile(r"^[A-Za-z0-9._@-]{1,64}$")
MIN_PASSWORD: Final = 12
MAX_PASSWORD: Final = 256


class Role(enum.StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"
    CONSUMER = "consumer"

    @property
    def rank(self) -> int:
        return {"consumer": 0, "viewer": 1, "operator": 2, "administrator": 3}[self.value]


@dataclass(frozen=True, slots=True)
class Principal:
    """Who is asking: a user, through a session (``csrf_token`` set) or a token."""

    username: str
    role: Role
    meter_ids: tuple[str, ...]
    via: str  # "session" | "token"
    csrf_token: str | None = None
    session_hash: str | None = None

    def at_least(self, role: Role) -> bool:
        return self.role is not Role.CONSUMER and self.role.rank >= role.rank

    def may_see_meter(self, meter_id: str) -> bool:
        return self.role is not Role.CONSUMER or meter_id in self.meter_ids


def hash_secret(value: str) -> str:
    """SHA-256 hex of a high-entropy secret (session id, token)."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def same_secret(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def new_session_id() -> str:
    return secrets.token_urlsafe(32)


def new_csrf_token() -> str:
    return secrets.token_urlsafe(24)


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


class Passwords:
    """Argon2id hashing and verification, off the event loop."""

    def __init__(self, hasher: PasswordHasher | None = None) -> None:
        self.hasher = hasher or PasswordHasher()
        self._dummy: str | None = None

    async def hash(self, password: str) -> str:
        return await asyncio.to_thread(self.hasher.hash, password)

    async def verify(self, stored_hash: str | None, password: str) -> bool:
        """True when ``password`` matches; an unknown user (``None``) costs the same time."""
        if stored_hash is None:
            if self._dummy is None:
                self._dummy = await self.hash(secrets.token_urlsafe(16))
            stored_hash = self._dummy
            known = False
        else:
            known = True

        def check() -> bool:
            try:
                return bool(self.hasher.verify(stored_hash, password))
            except (VerifyMismatchError, VerificationError, InvalidHashError):
                return False

        ok = await asyncio.to_thread(check)
        return ok and known


class LoginLimiter:
    """Failed logins per key (``user:<name>``, ``addr:<ip>``) in a sliding window (module docstring)."""

    def __init__(
        self,
        *,
        max_failures: int,
        window_s: float,
        now: Callable[[], float],
        max_keys: int = 10_000,
    ) -> None:
        self.max_failures = max_failures
        self.window_s = window_s
        self._now = now
        self.max_keys = max_keys
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        #: Keys never evicted for room (the usernames that exist): a flood of made-up names
        #: from many addresses must not push a real account's failures out of memory.
        self._pinned: set[str] = set()
        #: Refusals already audited: keys -> end of that block.
        self._reported: OrderedDict[tuple[str, ...], float] = OrderedDict()

    def _recent(self, key: str, now: float) -> deque[float] | None:
        times = self._failures.get(key)
        if times is None:
            return None
        while times and times[0] <= now - self.window_s:
            times.popleft()
        if not times:
            del self._failures[key]
            self._pinned.discard(key)
            return None
        return times

    def retry_after(self, *keys: str) -> float | None:
        """Seconds until an attempt is allowed again, or ``None`` if allowed now."""
        now = self._now()
        waits = []
        for key in keys:
            times = self._recent(key, now)
            if times is not None and len(times) >= self.max_failures:
                waits.append(times[-self.max_failures] + self.window_s - now)
        return max(waits) if waits else None

    def failed(self, *keys: str) -> float:
        """Count a failure (or an attempt still being checked) for ``keys``; returns its time,
        for :meth:`forgive`."""
        now = self._now()
        for key in keys:
            times = self._failures.pop(key, None) or deque(maxlen=self.max_failures)
            times.append(now)
            self._failures[key] = times
        if len(self._failures) > self.max_keys:
            for key in [k for k in self._failures if k not in self._pinned]:
                del self._failures[key]
                if len(self._failures) <= self.max_keys:
                    break
        return now

    def first_refusal(self, wait: float, *keys: str) -> bool:
        """True for the first refusal of ``keys`` in a block (``wait`` seconds from now), so a
        blocked client hammering the login writes one audit entry, not one per request."""
        now = self._now()
        until = self._reported.get(keys)
        if until is not None and until > now:
            return False
        self._reported.pop(keys, None)
        self._reported[keys] = now + wait
        while len(self._reported) > self.max_keys:
            self._reported.popitem(last=False)
        return True

    def pin(self, key: str) -> None:
        """Keep ``key``'s failures until they leave the window, however many other keys come."""
        if key in self._failures:
            self._pinned.add(key)

    def forgive(self, at: float, *keys: str) -> None:
        """Take back the failure counted at ``at`` (the attempt turned out right)."""
        for key in keys:
            times = self._failures.get(key)
            if times is not None and at in times:
                times.remove(at)
                if not times:
                    del self._failures[key]
                    self._pinned.discard(key)

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)
        self._pinned.discard(key)
