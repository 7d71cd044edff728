"""The parsed fleet configuration: frozen dataclasses, and the difference between two of them.

Rule: these objects are what the rest of the head-end sees. They are built only by
:func:`metercom.service.config.parse_config`, which validates the whole document first, so
every reference in a :class:`FleetConfig` resolves (a meter's line, a schedule's groups and
plan, a ``secret:`` reference) and every value is in range. Secrets stay references
(:class:`~metercom.service.secrets.SecretRef`); printing a configuration never shows one.

Collections are tuples in file order with id lookups through read-only mappings.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import date, time, timedelta
from types import MappingProxyType
from typing import Final, TypeVar

from metercom.model.obis import Obis
from metercom.service.config_web import WebSettings
from metercom.service.cron import CronTrigger, IntervalTrigger
from metercom.service.secrets import Secret, SecretRef
from metercom.transport.base import LineSettings

__all__ = [
    "FORMAT_VERSION",
    "ConfigDiff",
    "DlmsAddress",
    "FleetConfig",
    "GroupConfig",
    "Iec21Address",
    "LineConfig",
    "LineKind",
    "MeterAddress",
    "MeterConfig",
    "ModbusAddress",
    "NeutralDetectorConfig",
    "NotifyChannelConfig",
    "NotifyConfig",
    "NotifyRouteConfig",
    "ObjectRead",
    "PrepaidAccountConfig",
    "PrepaidConfig",
    "PrepaidWindowConfig",
    "Protocol",
    "QuirkValue",
    "ReadPlan",
    "RetentionPolicy",
    "RuleConfig",
    "ScheduleConfig",
    "SectionDiff",
    "ServiceSettings",
    "UpstreamConfig",
    "diff_configs",
]

#: The ``format_version`` this code reads.
FORMAT_VERSION: Final = 1


class LineKind(enum.StrEnum):
    """What a line physically is; decides how many conversations it carries at once."""

    SERIAL = "serial"  #: a point-to-point serial port (optical probe, one meter)
    RS485 = "rs485"  #: a shared RS-485 bus (many meters, one talker at a time)
    CONVERTER = "converter"  #: a TCP/RFC 2217 to serial converter in front of a port or bus
    TCP = "tcp"  #: a TCP endpoint (a meter, or a gateway that multiplexes)
    UDP = "udp"  #: a UDP endpoint

    @property
    def is_serial(self) -> bool:
        """True for physical serial links, which carry one conversation at a time."""
        return self in (LineKind.SERIAL, LineKind.RS485, LineKind.CONVERTER)


class Protocol(enum.StrEnum):
    IEC21 = "iec21"  #: IEC 62056-21 (mode A-E readouts)
    DLMS = "dlms"  #: DLMS/COSEM over HDLC or the IP wrapper
    MODBUS = "modbus"  #: Modbus RTU / TCP


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long the store keeps what; ``None`` keeps forever."""

    readings_days: int | None = None
    profile_days: int | None = None
    events_days: int | None = None
    audit_days: int | None = None


@dataclass(frozen=True, slots=True)
class ServiceSettings:
    name: str = "metercom"
    #: Default time zone of schedules (IANA name).
    timezone: str = "UTC"
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)


@dataclass(frozen=True, slots=True)
class LineConfig:
    """A physical or logical link meters are reached over."""

    id: str
    url: str
    kind: LineKind
    #: Baud rate and character format to open the line with (``None``: the URL's or the link's).
    settings: LineSettings | None = None
    #: Conversations allowed at once; always 1 on serial lines, buses and converters.
    max_conversations: int = 1
    connect_timeout_s: float = 10.0
    response_timeout_s: float = 5.0
    conversation_timeout_s: float = 300.0
    description: str = ""
    #: True for a line made from a meter's own ``url`` (id ``meter:<meter id>``).
    implicit: bool = False


@dataclass(frozen=True, slots=True)
class Iec21Address:
    """IEC 62056-21 device address (empty: the request ``/?!`` without address)."""

    device: str = ""

    def key(self) -> tuple[object, ...]:
        return ("iec21", self.device)

    def __str__(self) -> str:
        return f"device={self.device}" if self.device else "device=(none)"


@dataclass(frozen=True, slots=True)
class DlmsAddress:
    """DLMS client and server addresses.

    ``logical`` is the server's logical device (the upper HDLC address, or the wrapper's
    destination wPort); ``physical`` the lower HDLC address on a bus (``None``: one-byte
    addressing, no physical part). ``server`` is the combined HDLC server address when the
    configuration gave it whole instead.
    """

    client: int
    logical: int = 1
    physical: int | None = None
    server: int | None = None

    def key(self) -> tuple[object, ...]:
        if self.server is not None:
            return ("dlms", "server", self.server)
        return ("dlms", self.logical, self.physical)

    def __str__(self) -> str:
        if self.server is not None:
            return f"client={self.client};server={self.server}"
        text = f"client={self.client};logical={self.logical}"
        return text + (f";physical={self.physical}" if self.physical is not None else "")


@dataclass(frozen=True, slots=True)
class ModbusAddress:
    unit: int

    def key(self) -> tuple[object, ...]:
        return ("modbus", self.unit)

    def __str__(self) -> str:
        return f"unit={self.unit}"


MeterAddress = Iec21Address | DlmsAddress | ModbusAddress
QuirkValue = bool | int | float | str


@dataclass(frozen=True, slots=True)
class MeterConfig:
    id: str
    protocol: Protocol
    line: str
    address: MeterAddress
    #: DLMS authentication mechanism name (``none``, ``low``, ``high-gmac`` ...); ``None`` elsewhere.
    authentication: str | None = None
    #: DLMS security policy (``none``, ``authenticated``, ``encrypted``, ``authenticated-encrypted``).
    security: str | None = None
    password: SecretRef | None = None
    #: Named keys (DLMS: ``encryption``, ``authentication``, ``master``).
    keys: Mapping[str, SecretRef] = field(default_factory=lambda: MappingProxyType({}))
    device_profile: str | None = None
    quirks: Mapping[str, QuirkValue] = field(default_factory=lambda: MappingProxyType({}))
    tariff: str | None = None
    #: Time zone of the meter's own clock (IANA name), when it keeps local time.
    timezone: str | None = None
    groups: tuple[str, ...] = ()
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class GroupConfig:
    id: str
    #: Every member, whether listed here or by the meter's ``groups``; in file order of meters.
    meters: tuple[str, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ObjectRead:
    """A profile or event log to read, with how much history to fetch at most."""

    obis: Obis
    history: timedelta


@dataclass(frozen=True, slots=True)
class ReadPlan:
    id: str
    objects: tuple[Obis, ...] = ()
    profiles: tuple[ObjectRead, ...] = ()
    events: tuple[ObjectRead, ...] = ()
    description: str = ""


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    id: str
    groups: tuple[str, ...]
    plan: str
    trigger: CronTrigger | IntervalTrigger
    enabled: bool = True
    description: str = ""


@dataclass(frozen=True, slots=True)
class RuleConfig:
    """A ``[[rules]]`` entry: an expression over a meter's quantities and the relay action it takes.

    ``meters`` holds every meter the rule runs on (listed ones and members of ``groups``), in
    file order; ``expression`` is the text as written (validated by parsing it). ``action`` is
    ``connect``, ``disconnect``, ``high`` or ``low``; ``slot`` the action slot (1-based) or
    ``None`` for the next free one in file order.
    """

    name: str
    meters: tuple[str, ...]
    expression: str
    window: timedelta = timedelta(0)
    recovery: timedelta = timedelta(0)
    action: str = "disconnect"
    targets: tuple[str, ...] = ("relay1",)
    dry_run: bool = False
    enabled: bool = True
    slot: int | None = None
    groups: tuple[str, ...] = ()
    description: str = ""
    #: Who evaluates the rule: ``head-end`` (on collected readings) or ``meter`` (pushed into the
    #: relay meter's rule slots; the meter samples and switches itself).
    evaluate: str = "head-end"


@dataclass(frozen=True, slots=True)
class NeutralDetectorConfig:
    """A ``[[neutral]]`` entry: broken-neutral detector settings for some meters.

    ``meters`` holds every meter it covers (listed ones and members of ``groups``); an entry
    without ``meters`` and ``groups`` is the default for all others. ``settings`` are the keyword
    arguments of :class:`metercom.service.rules.neutral.NeutralConfig` (validated ranges);
    ``enabled`` False switches the detector off for these meters.
    """

    meters: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    default: bool = False
    enabled: bool = True
    settings: Mapping[str, float | timedelta] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class PrepaidWindowConfig:
    """A protected (or time-of-use) daily window of local wall time; ``weekdays`` Monday = 0."""

    start: time
    end: time
    weekdays: frozenset[int] = frozenset(range(7))
    name: str = ""
    #: Time-of-use windows only: the price in minor units per kWh.
    price_minor_per_kwh: str | None = None


@dataclass(frozen=True, slots=True)
class PrepaidAccountConfig:
    """A prepaid account: the meter it belongs to and the register it is charged from."""

    account: str
    meter: str
    #: OBIS code of the cumulative active-import register (Wh or kWh).
    register: str = "1-0:1.8.0*255"


@dataclass(frozen=True, slots=True)
class PrepaidConfig:
    """The ``[prepaid]`` table: tariff, reminder levels, protected windows, accounts.

    Exactly one of ``table`` (top-up amount in major units as text -> units) and
    ``price_minor_per_kwh`` is set. Decimal values are kept as text (exact).
    """

    currency: str
    timezone: str = "UTC"
    minor_digits: int = 2
    table: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    between_rows: str = "exact"
    unit_wh: int = 1000
    price_minor_per_kwh: str | None = None
    tou: tuple[PrepaidWindowConfig, ...] = ()
    levels: tuple[str, ...] = ("300", "200", "100")
    disconnect_at: str = "0"
    max_reading_age: timedelta | None = timedelta(hours=1)
    protected: tuple[PrepaidWindowConfig, ...] = ()
    protected_weekdays: frozenset[int] = frozenset()
    holidays: Mapping[date, str] = field(default_factory=lambda: MappingProxyType({}))
    accounts: tuple[PrepaidAccountConfig, ...] = ()

    def account_of_meter(self, meter_id: str) -> PrepaidAccountConfig | None:
        return next((a for a in self.accounts if a.meter == meter_id), None)


@dataclass(frozen=True, slots=True)
class NotifyChannelConfig:
    """A ``[[notify.channels]]`` entry: ``kind`` ``smtp`` (e-mail) or ``webhook``.

    SMTP uses ``host``, ``port`` (``None``: the TLS mode's default), ``tls``, ``sender``,
    ``recipients``, ``username`` and ``password``; a webhook ``url`` and ``secret``.
    """

    id: str
    kind: str
    host: str = ""
    port: int | None = None
    tls: str = "starttls"
    sender: str = ""
    recipients: tuple[str, ...] = ()
    username: str | None = None
    password: SecretRef | None = None
    verify: bool = True
    ca_file: str | None = None
    allow_plain_auth: bool = False
    url: str = ""
    secret: SecretRef | None = None
    timeout_s: float = 30.0


@dataclass(frozen=True, slots=True)
class NotifyRouteConfig:
    """A ``[[notify.routes]]`` entry; ``None`` filters match anything."""

    channels: tuple[str, ...]
    kinds: tuple[str, ...] | None = None
    min_severity: str = "info"
    meters: tuple[str, ...] | None = None
    events: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class NotifyConfig:
    """The ``[notify]`` table: channels, routes and the quiet period."""

    channels: tuple[NotifyChannelConfig, ...] = ()
    routes: tuple[NotifyRouteConfig, ...] = ()
    quiet_period: timedelta = timedelta(minutes=30)


@dataclass(frozen=True, slots=True)
class UpstreamConfig:
    """An ``[[upstreams]]`` entry: a sink the head-end forwards to (see docs/forwarding.md).

    ``kind`` is ``http``, ``mqtt`` or ``nats``. ``secret`` signs HTTP batches; ``username`` and
    ``password`` log in to MQTT or NATS. ``keep_unsent`` is how long unconfirmed readings are
    kept (default 90 days). MQTT: ``topic_prefix``, ``discovery`` (Home Assistant), ``state_topics``
    (retained). NATS: ``stream``, ``subject_prefix``, ``duplicate_window``.
    """

    id: str
    kind: str
    url: str
    secret: SecretRef | None = None
    username: str | None = None
    password: SecretRef | None = None
    interval: timedelta = timedelta(seconds=10)
    batch_size: int = 500
    max_rate_per_s: float | None = None
    live_share: float = 0.2
    confirm_timeout_s: float = 30.0
    retry_max: timedelta = timedelta(minutes=5)
    keep_unsent: timedelta = timedelta(days=90)
    enabled: bool = True
    ca_file: str | None = None
    verify: bool = True
    topic_prefix: str = "metercom"
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    state_topics: bool = True
    #: MQTT: ``receiver`` (the central echoes the batch id) or ``broker`` (PUBACKs; a home
    #: without a central receiver, where Home Assistant reads the retained state topics).
    confirm: str = "receiver"
    stream: str = "METERCOM"
    subject_prefix: str = "metercom.batches"
    duplicate_window: timedelta = timedelta(hours=1)
    description: str = ""


K = TypeVar("K")
V = TypeVar("V")


def _proxy(items: Mapping[K, V]) -> Mapping[K, V]:
    return MappingProxyType(dict(items))


@dataclass(frozen=True, slots=True)
class FleetConfig:
    """A whole, validated configuration."""

    #: Where the text came from (a path, or a label such as ``<text>``).
    source: str
    #: SHA-256 (hex) of the exact text.
    sha256: str
    service: ServiceSettings
    secrets: Mapping[str, SecretRef]
    lines: tuple[LineConfig, ...]
    meters: tuple[MeterConfig, ...]
    groups: tuple[GroupConfig, ...]
    plans: tuple[ReadPlan, ...]
    schedules: tuple[ScheduleConfig, ...]
    rules: tuple[RuleConfig, ...] = ()
    #: ``[[neutral]]``: broken-neutral detector settings per meter/group (defaults when empty).
    neutral: tuple[NeutralDetectorConfig, ...] = ()
    prepaid: PrepaidConfig | None = None
    notify: NotifyConfig | None = None
    upstreams: tuple[UpstreamConfig, ...] = ()
    #: ``[web]`` (see :mod:`.config_web`); ``None``: the defaults.
    web: WebSettings | None = None
    _by_id: Mapping[str, Mapping[str, object]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "secrets", _proxy(self.secrets))
        index = {
            "lines": _proxy({x.id: x for x in self.lines}),
            "meters": _proxy({x.id: x for x in self.meters}),
            "groups": _proxy({x.id: x for x in self.groups}),
            "plans": _proxy({x.id: x for x in self.plans}),
            "schedules": _proxy({x.id: x for x in self.schedules}),
        }
        object.__setattr__(self, "_by_id", _proxy(index))

    def line(self, line_id: str) -> LineConfig:
        """The line with this id; raises ``KeyError``."""
        return self._by_id["lines"][line_id]  # type: ignore[return-value]

    def meter(self, meter_id: str) -> MeterConfig:
        return self._by_id["meters"][meter_id]  # type: ignore[return-value]

    def group(self, group_id: str) -> GroupConfig:
        return self._by_id["groups"][group_id]  # type: ignore[return-value]

    def plan(self, plan_id: str) -> ReadPlan:
        return self._by_id["plans"][plan_id]  # type: ignore[return-value]

    def schedule(self, schedule_id: str) -> ScheduleConfig:
        return self._by_id["schedules"][schedule_id]  # type: ignore[return-value]

    def meters_on_line(self, line_id: str) -> tuple[MeterConfig, ...]:
        return tuple(m for m in self.meters if m.line == line_id)

    def schedule_meters(self, schedule_id: str) -> tuple[MeterConfig, ...]:
        """The enabled meters a schedule reads: members of its groups, each once, file order."""
        wanted: set[str] = set()
        for group_id in self.schedule(schedule_id).groups:
            wanted.update(self.group(group_id).meters)
        return tuple(m for m in self.meters if m.id in wanted and m.enabled)

    def rules_of(self, meter_id: str) -> tuple[RuleConfig, ...]:
        """The rules that run on a meter, in slot order (explicit slots first, then file order)."""
        mine = [r for r in self.rules if meter_id in r.meters]
        order = {id(r): i for i, r in enumerate(mine)}
        return tuple(sorted(mine, key=lambda r: (r.slot if r.slot is not None else 1000, order[id(r)])))

    def neutral_of(self, meter_id: str) -> NeutralDetectorConfig | None:
        """The ``[[neutral]]`` entry that covers a meter (its own, else the default), or None."""
        for entry in self.neutral:
            if meter_id in entry.meters:
                return entry
        return next((e for e in self.neutral if e.default), None)

    def resolve_secret(self, ref: SecretRef, *, env: Mapping[str, str] | None = None) -> Secret:
        """Read a secret a meter refers to (``secret:`` names go through ``[secrets]``)."""
        return ref.resolve(env=env, secrets=self.secrets)


# -- differences --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SectionDiff:
    """Ids added, removed and changed in one section; ``changed`` maps ids to changed fields."""

    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    changed: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))

    def __bool__(self) -> bool:
        return bool(self.added or self.removed or self.changed)


_SECTIONS: Final = ("lines", "meters", "groups", "plans", "schedules")
_SUMMARY_IDS: Final = 5
#: Top-level settings compared as a whole.
_AUTOMATION: Final = ("rules", "neutral", "prepaid", "notify", "upstreams", "web")


@dataclass(frozen=True, slots=True)
class ConfigDiff:
    sections: Mapping[str, SectionDiff]
    #: Names of changed top-level settings (``service``, ``secrets``).
    settings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.settings) or any(self.sections.values())

    def summary(self) -> str:
        """One line for the version history: ``meters +2 -1 ~3 (m-4: address); lines ~1 (bus-a)``."""
        parts: list[str] = []
        for name in _SECTIONS:
            diff = self.sections.get(name)
            if not diff:
                continue
            counts = " ".join(
                f"{sign}{len(ids)}"
                for sign, ids in (("+", diff.added), ("-", diff.removed), ("~", diff.changed))
                if ids
            )
            details = [*(f"+{i}" for i in diff.added), *(f"-{i}" for i in diff.removed)]
            details += [f"{i}: {', '.join(f)}" for i, f in diff.changed.items()]
            more = len(details) - _SUMMARY_IDS
            shown = "; ".join(details[:_SUMMARY_IDS]) + (f"; +{more} more" if more > 0 else "")
            parts.append(f"{name} {counts} ({shown})")
        parts.extend(f"{name} changed" for name in self.settings)
        return "; ".join(parts) if parts else "no changes"


def _changed_fields(old: object, new: object) -> tuple[str, ...]:
    return tuple(f.name for f in fields(old) if getattr(old, f.name) != getattr(new, f.name))  # type: ignore[arg-type]


def diff_configs(old: FleetConfig | None, new: FleetConfig) -> ConfigDiff:
    """What changed from ``old`` (``None``: nothing before) to ``new``."""
    sections: dict[str, SectionDiff] = {}
    for name in _SECTIONS:
        before: dict[str, object] = {x.id: x for x in getattr(old, name)} if old is not None else {}
        after: dict[str, object] = {x.id: x for x in getattr(new, name)}
        changed = {
            key: _changed_fields(before[key], item)
            for key, item in after.items()
            if key in before and before[key] != item
        }
        sections[name] = SectionDiff(
            added=tuple(k for k in after if k not in before),
            removed=tuple(k for k in before if k not in after),
            changed=_proxy(changed),
        )
    settings: list[str] = []
    if old is not None:
        if old.service != new.service:
            settings.append("service")
        if dict(old.secrets) != dict(new.secrets):
            settings.append("secrets")
        settings.extend(n for n in _AUTOMATION if getattr(old, n) != getattr(new, n))
    else:
        settings.extend(["service"] if new.service != ServiceSettings() else [])
        settings.extend(n for n in _AUTOMATION if getattr(new, n))
    return ConfigDiff(_proxy(sections), tuple(settings))
