"""The head-end's forwarding: one :class:`Forwarder` for the ``[[upstreams]]`` of the configuration
in force, re-made when they change.

Rule: sinks are registered in the store (:meth:`Forwarder.register`) before :meth:`configure`
returns, and the head-end calls it before it starts (or re-plans) collection, so no reading
stored under a configuration with an upstream misses that upstream's outbox. A change of the
upstreams stops the running forwarder (a batch in flight stays unconfirmed and is resent with
the same id by the next one) and starts a new one; a configuration whose upstreams did not
change leaves forwarding alone. An upstream removed from the configuration keeps its outbox
(what it had pending, and what is stored meanwhile, until the longest retention in force drops
it): removing a sink's data is explicit (:meth:`Store.unregister_outbox_sink`, audited), so a
mistaken edit of the file loses nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import timedelta

from metercom.clock import Clock
from metercom.service.config_forward import build_upstreams
from metercom.service.config_model import FleetConfig, UpstreamConfig
from metercom.service.forward.forwarder import DEFAULT_KEEP_UNSENT, Forwarder, SinkStatus
from metercom.service.store import Store

__all__ = ["ForwardingRunner"]

log = logging.getLogger(__name__)


class ForwardingRunner:
    """Runs the forwarder of the configuration in force (see the module docstring)."""

    def __init__(
        self,
        store: Store,
        *,
        clock: Clock | None = None,
        env: Mapping[str, str] | None = None,
        expire_every: timedelta = timedelta(hours=1),
    ) -> None:
        self._store = store
        self._clock = clock
        self._env = env
        self._expire_every = expire_every
        self._key: tuple[str, tuple[UpstreamConfig, ...]] | None = None
        self.forwarder: Forwarder | None = None

    async def configure(self, config: FleetConfig) -> None:
        """Register the sinks of ``config`` and (re)start forwarding if its upstreams changed."""
        key = (config.service.name, tuple(u for u in config.upstreams if u.enabled))
        if key == self._key:
            return
        upstreams = build_upstreams(config, env=self._env)
        registered = await self._store.outbox_backlog()
        forwarder = None
        # Without upstreams a forwarder only expires what sinks no longer configured still hold.
        if upstreams or registered:
            forwarder = Forwarder(
                self._store,
                upstreams,
                keep_unsent=DEFAULT_KEEP_UNSENT,
                expire_every=self._expire_every,
                clock=self._clock,
            )
            fresh = await forwarder.register()
            if fresh:
                log.info(
                    "forwarding: new upstream sinks %s see readings stored from now on", ", ".join(fresh)
                )
        await self.stop()
        self._key = key
        self.forwarder = forwarder
        if forwarder is not None:
            await forwarder.start()
        if upstreams:
            log.info("forwarding to %s", ", ".join(u.sink.name for u in upstreams))
        configured = {u.id for u in config.upstreams if u.enabled}
        for b in registered:
            if b.sink not in configured:
                log.warning(
                    "outbox sink %s is registered but not configured: %d readings pending, still "
                    "collected for it (kept up to the longest retention in force); remove it with "
                    "Store.unregister_outbox_sink if it is gone for good",
                    b.sink,
                    b.pending,
                )

    async def stop(self) -> None:
        """Stop forwarding (nothing is lost: unconfirmed batches are resent next time)."""
        forwarder, self.forwarder = self.forwarder, None
        self._key = None
        if forwarder is not None:
            await forwarder.stop()

    def wake(self) -> None:
        """Look at the outbox now (after a read stored readings)."""
        if self.forwarder is not None:
            self.forwarder.wake()

    async def status(self) -> list[SinkStatus]:
        """Backlog size and age and health per configured sink (empty without upstreams)."""
        if self.forwarder is None:
            return []
        return await self.forwarder.status()
