"""Configuration versions: validate, apply atomically, keep history, tell the service.

Rule: applying a configuration is all or nothing. :meth:`ConfigStore.apply` validates the
whole text first (an invalid file raises :class:`~.config_validate.ConfigValidationError` and
changes nothing), then stores it as version ``n + 1`` together with the synced meters table and
an audit entry in *one* store transaction. A process killed at any instant therefore leaves
the store entirely at the old version or entirely at the new one; versions are numbered
1, 2, 3... without gaps, and each keeps its exact text, who applied it, when, from where, and a
one-line summary of what changed.

After a version is committed, every listener registered with :meth:`ConfigStore.subscribe`
is awaited with a :class:`ConfigChange` (in registration order; a listener that raises is
logged and does not stop the others), so the service reloads without a restart. Versions
applied by another process (a CLI, another node on PostgreSQL) are picked up by
:meth:`ConfigStore.refresh`, which the service calls periodically.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from metercom.errors import ConfigError
from metercom.service.config_model import ConfigDiff, FleetConfig, MeterConfig, diff_configs
from metercom.service.config_validate import parse_config, read_config_text
from metercom.service.store import ConfigVersion, ConfigVersionConflict, MeterRecord, Store

__all__ = ["AppliedConfig", "ConfigChange", "ConfigListener", "ConfigStore", "meter_record"]

log = logging.getLogger(__name__)

_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class AppliedConfig:
    """A stored configuration version, parsed."""

    version: int
    config: FleetConfig
    applied_at: datetime
    actor: str
    source: str
    summary: str


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """What a listener is told after a new version is in force."""

    version: int
    config: FleetConfig
    #: The configuration before (``None`` for the first version).
    previous: FleetConfig | None
    diff: ConfigDiff
    actor: str


ConfigListener = Callable[[ConfigChange], Awaitable[None]]


def meter_record(meter: MeterConfig) -> MeterRecord:
    """What the store's meters table keeps of a configured meter (no secrets)."""
    return MeterRecord(
        id=meter.id,
        protocol=meter.protocol.value,
        line_id=meter.line,
        address=str(meter.address),
        device_profile=meter.device_profile,
        tariff=meter.tariff,
    )


class ConfigStore:
    """Configuration versions kept in a :class:`~metercom.service.store.Store`.

    ``check_secrets`` and ``env`` are passed to :func:`~.config_validate.parse_config` for
    every new version (``check_secrets=True`` resolves every secret reference at apply time,
    in this process's environment). Device profiles are always checked.
    """

    def __init__(
        self,
        store: Store,
        *,
        check_secrets: bool = False,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self._store = store
        self._check_secrets = check_secrets
        self._env = env
        self._listeners: list[ConfigListener] = []
        self._cached: AppliedConfig | None = None
        #: The newest version this object has handed out or announced.
        self._seen: AppliedConfig | None = None

    def validate(self, text: str, *, source: str = "<text>") -> FleetConfig:
        """Check a configuration exactly as :meth:`apply` would, changing nothing; raises
        :class:`~.config_validate.ConfigValidationError` with every problem."""
        return parse_config(
            text,
            source=source,
            check_secrets=self._check_secrets,
            env=self._env,
        )

    def subscribe(self, listener: ConfigListener) -> Callable[[], None]:
        """Call ``await listener(change)`` after each new version; returns an unsubscribe function."""
        self._listeners.append(listener)

        def unsubscribe() -> None:
            if listener in self._listeners:
                self._listeners.remove(listener)

        return unsubscribe

    async def apply(
        self,
        text_or_path: str | Path,
        *,
        actor: str,
        source: str | None = None,
        expect_version: int | None = None,
    ) -> int:
        """Validate and apply a configuration; returns its version number.

        ``text_or_path`` is the TOML text itself, or a :class:`~pathlib.Path` of a file.
        ``source`` names it in messages and history (default: the path, or ``<text>``).
        Applying the text that is already current changes nothing and returns its version.
        ``expect_version`` raises :class:`~metercom.service.store.ConfigVersionConflict` when
        the current version is another one (optimistic locking for editors).
        """
        if isinstance(text_or_path, Path):
            text = read_config_text(text_or_path)
            label = source or str(text_or_path)
        else:
            text = text_or_path
            label = source or "<text>"
            stripped = text.strip()
            if "\n" not in stripped and "=" not in stripped and stripped.endswith(".toml"):
                raise ConfigError(
                    f"{stripped!r} looks like a file name, not TOML text; "
                    f"pass Path({stripped!r}) to apply a file"
                )
        config = parse_config(
            text,
            source=label,
            check_secrets=self._check_secrets,
            env=self._env,
        )
        for attempt in range(_ATTEMPTS):
            head = await self._head()
            base = head.version if head is not None else 0
            if expect_version is not None and base != expect_version:
                raise ConfigVersionConflict(
                    f"the current configuration is version {base}, not {expect_version}; "
                    "review the change against it and apply again"
                )
            if head is not None and head.sha256 == config.sha256:
                return head.version
            current = await self._load(head, lenient=True) if head is not None else None
            previous = current.config if current is not None else None
            diff = diff_configs(previous, config)
            try:
                stored = await self._store.apply_config_version(
                    text=text,
                    sha256=config.sha256,
                    source=label,
                    actor=actor,
                    summary=diff.summary(),
                    meters=[meter_record(m) for m in config.meters],
                    expect_version=base,
                )
            except ConfigVersionConflict:
                if expect_version is not None or attempt == _ATTEMPTS - 1:
                    raise
                continue
            applied = AppliedConfig(stored.version, config, stored.applied_at, actor, label, stored.summary)
            self._cached = applied
            await self._announce(applied, previous, diff)
            return stored.version
        raise AssertionError("unreachable")  # pragma: no cover

    async def current(self) -> AppliedConfig | None:
        """The configuration in force (``None`` before the first apply)."""
        latest = await self._latest(lenient=False)
        if latest is not None and (self._seen is None or latest.version > self._seen.version):
            self._seen = latest
        return latest

    async def refresh(self) -> AppliedConfig | None:
        """Look for a version applied elsewhere; announce it to listeners if it is new to us."""
        before = self._seen
        latest = await self._latest(lenient=False)
        if latest is None or (before is not None and latest.version <= before.version):
            return latest
        previous = before.config if before is not None else None
        await self._announce(latest, previous, diff_configs(previous, latest.config))
        return latest

    async def history(self, *, limit: int = 50) -> list[ConfigVersion]:
        """Versions newest first: who applied them, when, from where, and what changed."""
        return await self._store.config_versions(limit=limit)

    async def text(self, version: int) -> str:
        """The exact text of a stored version."""
        stored = await self._store.config_version(version)
        if stored is None or stored.text is None:
            raise ConfigError(f"there is no configuration version {version}")
        return stored.text

    async def rollback(self, version: int, *, actor: str) -> int:
        """Apply the text of an earlier version again, as a new version."""
        text = await self.text(version)
        return await self.apply(text, actor=actor, source=f"rollback to version {version}")

    async def _head(self) -> ConfigVersion | None:
        listing = await self._store.config_versions(limit=1)
        return listing[0] if listing else None

    async def _latest(self, *, lenient: bool) -> AppliedConfig | None:
        head = await self._head()
        return await self._load(head, lenient=lenient) if head is not None else None

    async def _load(self, head: ConfigVersion, *, lenient: bool) -> AppliedConfig | None:
        if self._cached is not None and self._cached.version == head.version:
            return self._cached
        stored = await self._store.config_version(head.version)
        if stored is None or stored.text is None:  # pragma: no cover - versions are never deleted
            return None
        try:
            # Stored versions were validated when applied; re-read them without the checks
            # that depend on this process or release (profiles installed, secrets reachable).
            config = parse_config(
                stored.text, source=f"{stored.source} (version {stored.version})", check_profiles=False
            )
        except ConfigError:
            if lenient:
                return None
            raise
        applied = AppliedConfig(
            stored.version, config, stored.applied_at, stored.actor, stored.source, stored.summary
        )
        self._cached = applied
        return applied

    async def _announce(self, applied: AppliedConfig, previous: FleetConfig | None, diff: ConfigDiff) -> None:
        self._seen = applied
        change = ConfigChange(applied.version, applied.config, previous, diff, applied.actor)
        for listener in list(self._listeners):
            try:
                await listener(change)
            except Exception:
                log.exception("configuration listener %r failed for version %d", listener, applied.version)
