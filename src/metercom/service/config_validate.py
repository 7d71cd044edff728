"""Reading and validating a fleet configuration as a whole.

Rule: :func:`parse_config` either returns a complete :class:`~.config_model.FleetConfig` or
raises :class:`ConfigValidationError` listing *every* problem found, each with the file, line
and key at fault (``fleet.toml:42: meters[3].line: unknown line 'bus-9' ...``). Validation
never stops at the first problem: each section is checked independently, and a reference to
something that was itself invalid is not reported twice.

What is checked: TOML syntax; unknown keys (with a "did you mean"); missing and mistyped
values; id syntax and duplicate ids; references between sections (a meter's line and groups, a
group's meters, a schedule's groups and plan, ``secret:`` names); transport URLs; line kinds
against URLs and the one-conversation rule of serial links; two lines on the same link; meter
addresses by protocol, and two meters with the same address on one line; DLMS authentication
and security against the password and keys they need; OBIS codes; cron expressions and
durations; time zones; device profiles against the ones that exist for the meter's protocol
(:mod:`.config_profiles`; required where reading needs one); rules, prepaid and
notifications (:mod:`.config_automation`: expressions with their column, meters, groups,
channels); and, with ``check_secrets=True``, that every secret can be read and every key is
hex of a valid length.
Messages never contain a secret: values given where a reference is expected are not echoed.
"""

from __future__ import annotations

import difflib
import hashlib
import re
import tomllib
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from metercom.errors import ConfigError, InputError
from metercom.model.obis import Obis
from metercom.service.config_automation import check_neutral, check_notify, check_prepaid, check_rules
from metercom.service.config_forward import check_upstreams
from metercom.service.config_model import (
    FORMAT_VERSION,
    DlmsAddress,
    FleetConfig,
    GroupConfig,
    Iec21Address,
    LineConfig,
    LineKind,
    MeterAddress,
    MeterConfig,
    ModbusAddress,
    ObjectRead,
    Protocol,
    QuirkValue,
    ReadPlan,
    RetentionPolicy,
    ScheduleConfig,
    ServiceSettings,
)
from metercom.service.config_positions import KeyPath, Positions, format_path, scan_positions
from metercom.service.config_profiles import profile_problem
from metercom.service.config_web import check_web
from metercom.service.cron import CronExpr, CronTrigger, IntervalTrigger, parse_duration
from metercom.service.secrets import SecretRef, parse_secret_ref
from metercom.transport.base import LineSettings
from metercom.transport.url import TransportUrl, parse_transport_url

__all__ = ["ConfigProblem", "ConfigValidationError", "load_config", "parse_config"]

T = TypeVar("T")

_ID: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_IEC_DEVICE: Final = re.compile(r"^[0-9A-Za-z ]{1,32}$")
_MAX_TEXT: Final = 10 * 1024 * 1024
_MAX_DAYS: Final = 36_600
_MAX_TIMEOUT_S: Final = 86_400.0

DLMS_AUTHENTICATION: Final = (
    "none",
    "low",
    "high",
    "high-md5",
    "high-sha1",
    "high-gmac",
    "high-sha256",
    "high-ecdsa",
)
DLMS_SECURITY: Final = ("none", "authenticated", "encrypted", "authenticated-encrypted")
DLMS_KEYS: Final = ("encryption", "authentication", "master")
#: Mechanisms that authenticate with a shared secret (the ``password``).
_NEEDS_PASSWORD: Final = frozenset({"low", "high", "high-md5", "high-sha1", "high-sha256"})

_TOP_KEYS: Final = (
    "format_version",
    "service",
    "retention",
    "secrets",
    "lines",
    "meters",
    "groups",
    "plans",
    "schedules",
    "rules",
    "neutral",
    "prepaid",
    "notify",
    "web",
    "upstreams",
)
_LINE_KEYS: Final = (
    "id",
    "url",
    "type",
    "baud",
    "format",
    "max_conversations",
    "connect_timeout_s",
    "response_timeout_s",
    "conversation_timeout_s",
    "description",
)
_METER_KEYS: Final = (
    "id",
    "protocol",
    "line",
    "url",
    "address",
    "authentication",
    "security",
    "password",
    "keys",
    "device_profile",
    "quirks",
    "tariff",
    "timezone",
    "groups",
    "enabled",
    "description",
)
_ADDRESS_KEYS: Final = {
    Protocol.IEC21: ("device",),
    Protocol.DLMS: ("client", "logical", "physical", "server"),
    Protocol.MODBUS: ("unit",),
}
_GROUP_KEYS: Final = ("id", "meters", "description")
_PLAN_KEYS: Final = ("id", "objects", "profiles", "events", "description")
_READ_KEYS: Final = ("obis", "history")
_SCHEDULE_KEYS: Final = (
    "id",
    "groups",
    "group",
    "plan",
    "cron",
    "every",
    "offset",
    "timezone",
    "enabled",
    "description",
)
_MAX_HISTORY: Final = timedelta(days=3660)


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a configuration, and where."""

    source: str
    line: int | None
    #: The key at fault, as ``meters[3].address.client`` (empty for the whole document).
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigValidationError(ConfigError):
    """A configuration has problems; :attr:`problems` lists all of them in file order."""

    def __init__(self, source: str, problems: Collection[ConfigProblem]) -> None:
        self.problems = tuple(problems)
        count = len(self.problems)
        head = f"{count} problem{'s' if count != 1 else ''} in the configuration"
        super().__init__(head + ":\n" + "\n".join(f"  {p}" for p in self.problems), where=source)


def load_config(
    path: str | Path,
    *,
    check_secrets: bool = False,
    env: Mapping[str, str] | None = None,
) -> FleetConfig:
    """Read and validate the configuration file at ``path`` (see :func:`parse_config`)."""
    return parse_config(
        read_config_text(path),
        source=str(path),
        check_secrets=check_secrets,
        env=env,
    )


def read_config_text(path: str | Path) -> str:
    """The text of a configuration file; problems reading it raise :class:`ConfigError`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the configuration ({exc.strerror or type(exc).__name__})", where=str(path)
        ) from None
    if len(data) > _MAX_TEXT:
        raise ConfigError(f"the configuration is larger than {_MAX_TEXT} bytes", where=str(path))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"the configuration is not UTF-8 text (byte {exc.start})", where=str(path)
        ) from None


def parse_config(
    text: str,
    *,
    source: str = "<text>",
    check_secrets: bool = False,
    env: Mapping[str, str] | None = None,
    check_profiles: bool = True,
) -> FleetConfig:
    """Validate the TOML ``text`` as a whole and build the configuration.

    ``source`` names the text in messages. Device profiles are checked against the ones metercom
    ships for each meter's protocol, and supply rule targets against what each meter can switch
    (:mod:`.config_profiles`); ``check_profiles=False`` skips both, to re-read a version that was
    validated when it was applied (perhaps by another metercom release). ``check_secrets``
    resolves every secret reference now (from ``env``, default ``os.environ``, and the files
    named), reporting the ones that cannot be read. Raises :class:`ConfigValidationError` (a
    :class:`ConfigError`) with every problem.
    """
    if len(text) > _MAX_TEXT:
        raise ConfigError(f"the configuration is larger than {_MAX_TEXT} characters", where=source)
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        line = _toml_error_line(str(exc))
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", str(exc))
        problem = ConfigProblem(source, line, "", f"TOML syntax: {message}")
        raise ConfigValidationError(source, [problem]) from None
    checker = _Checker(source, scan_positions(text), check_secrets, env, check_profiles)
    config = checker.document(document, hashlib.sha256(text.encode("utf-8")).hexdigest())
    if checker.problems or config is None:
        problems = sorted(checker.problems, key=lambda p: p.line if p.line is not None else 0)
        raise ConfigValidationError(source, problems)
    return config


def _toml_error_line(message: str) -> int | None:
    m = re.search(r"at line (\d+)", message)
    return int(m[1]) if m else None


_TYPE_NAMES: Final = {
    str: "text",
    bool: "true/false",
    int: "an integer",
    float: "a number",
    list: "an array",
    dict: "a table",
    datetime: "a date-time",
    date: "a date",
    time: "a time",
}


def _type_name(value: object) -> str:
    return _TYPE_NAMES.get(type(value), type(value).__name__)


def _suggest(word: str, choices: Collection[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _listing(choices: Collection[str], limit: int = 12) -> str:
    items = sorted(choices)
    text = ", ".join(items[:limit])
    return text + (f", ... ({len(items)} in all)" if len(items) > limit else "") if items else "none"


class _Checker:
    """Walks the parsed document, collecting problems and building the model."""

    def __init__(
        self,
        source: str,
        positions: Positions,
        check_secrets: bool,
        env: Mapping[str, str] | None,
        check_profiles: bool = True,
    ) -> None:
        self.source = source
        self.positions = positions
        #: Check device profiles and what meters can switch (see :func:`parse_config`).
        self.check_profiles = check_profiles
        self.check_secrets = check_secrets
        self.env = env
        self.problems: list[ConfigProblem] = []
        self.secrets: dict[str, SecretRef] = {}
        self.bad_secrets: set[str] = set()
        self.line_paths: dict[str, KeyPath] = {}
        self.meter_paths: dict[str, KeyPath] = {}
        #: meter id -> (path, name) of each entry of its ``groups``
        self.meter_groups: dict[str, list[tuple[KeyPath, str]]] = {}
        self.raw_ids: dict[str, set[str]] = {}
        #: Sections not written as arrays of tables at all (references into them are not checked).
        self.broken: set[str] = set()

    def problem(self, path: KeyPath, message: str) -> None:
        self.problems.append(
            ConfigProblem(self.source, self.positions.line_of(path), format_path(path), message)
        )

    # -- typed access -------------------------------------------------------------------------

    def table(self, value: object, path: KeyPath, what: str) -> dict[str, Any] | None:
        if isinstance(value, dict):
            return value
        self.problem(path, f"{what} must be a table, got {_type_name(value)}")
        return None

    def keys(
        self,
        table: Mapping[str, Any],
        path: KeyPath,
        allowed: Collection[str],
        required: Collection[str] = (),
    ) -> None:
        for key in table:
            if key not in allowed:
                self.problem(
                    (*path, key),
                    f"unknown key {key!r}{_suggest(key, allowed)}; allowed: {', '.join(allowed)}",
                )
        for key in required:
            if key not in table:
                self.problem(path, f"missing required key {key!r}")

    def typed(self, table: Mapping[str, Any], path: KeyPath, key: str, kind: type[T], default: T) -> T:
        if key not in table:
            return default
        value = table[key]
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)  # type: ignore[return-value]
        if not ok:
            self.problem(
                (*path, key), f"expected {_TYPE_NAMES.get(kind, kind.__name__)}, got {_type_name(value)}"
            )
            return default
        return value  # type: ignore[no-any-return]

    def text(
        self, table: Mapping[str, Any], path: KeyPath, key: str, default: str = "", max_len: int = 1000
    ) -> str:
        value = self.typed(table, path, key, str, default)
        if len(value) > max_len:
            self.problem((*path, key), f"text longer than {max_len} characters")
            return default
        return value

    def opt_text(self, table: Mapping[str, Any], path: KeyPath, key: str, max_len: int = 200) -> str | None:
        if key not in table:
            return None
        value = self.text(table, path, key, "", max_len)
        return value or None

    def integer(
        self, table: Mapping[str, Any], path: KeyPath, key: str, low: int, high: int, *, default: int
    ) -> int:
        value = self.typed(table, path, key, int, default)
        if not low <= value <= high:
            self.problem((*path, key), f"{value} is out of range {low}..{high}")
            return default
        return value

    def opt_integer(
        self, table: Mapping[str, Any], path: KeyPath, key: str, low: int, high: int
    ) -> int | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, int) or isinstance(value, bool):
            self.problem((*path, key), f"expected an integer, got {_type_name(value)}")
            return None
        if not low <= value <= high:
            self.problem((*path, key), f"{value} is out of range {low}..{high}")
            return None
        return value

    def seconds(self, table: Mapping[str, Any], path: KeyPath, key: str, default: float) -> float:
        value = self.typed(table, path, key, float, default)
        if not 0 < value <= _MAX_TIMEOUT_S:
            self.problem((*path, key), f"{value} s is out of range (0, {_MAX_TIMEOUT_S:.0f}] s")
            return default
        return value

    def str_list(self, table: Mapping[str, Any], path: KeyPath, key: str) -> list[tuple[KeyPath, str]]:
        if key not in table:
            return []
        value = table[key]
        if not isinstance(value, list):
            self.problem((*path, key), f"expected an array of text, got {_type_name(value)}")
            return []
        out: list[tuple[KeyPath, str]] = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(((*path, key, i), item))
            else:
                self.problem((*path, key, i), f"expected text, got {_type_name(item)}")
        return out

    def timezone(self, table: Mapping[str, Any], path: KeyPath, key: str) -> str | None:
        name = self.opt_text(table, path, key, 100)
        if name is None:
            return None
        if not _valid_zone(name):
            self.problem(
                (*path, key), f"unknown time zone {name!r} (use an IANA name such as Europe/Berlin or UTC)"
            )
            return None
        return name

    def duration(self, table: Mapping[str, Any], path: KeyPath, key: str) -> timedelta | None:
        if key not in table:
            return None
        try:
            return parse_duration(table[key])
        except InputError as exc:
            self.problem((*path, key), str(exc))
            return None

    def entries(self, document: Mapping[str, Any], name: str) -> list[tuple[KeyPath, dict[str, Any]]]:
        """The ``[[name]]`` entries, each with its path."""
        if name not in document:
            return []
        value = document[name]
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            self.problem((name,), f"write each entry as a [[{name}]] table (got {_type_name(value)})")
            self.broken.add(name)
            return []
        return [((name, i), item) for i, item in enumerate(value)]

    def ident(
        self, table: Mapping[str, Any], path: KeyPath, seen: dict[str, KeyPath], what: str
    ) -> str | None:
        if "id" not in table:
            self.problem(path, f"missing required key 'id' of this {what}")
            return None
        value = table["id"]
        if not isinstance(value, str) or not _ID.match(value):
            shown = repr(value) if isinstance(value, str) else _type_name(value)
            self.problem(
                (*path, "id"),
                f"invalid {what} id {shown} (1-64 letters, digits, '.', '_' or '-', "
                "starting with a letter or digit)",
            )
            return None
        if value in seen:
            first = self.positions.line_of(seen[value] + ("id",))
            at = f" (first defined at line {first})" if first is not None else ""
            self.problem((*path, "id"), f"duplicate {what} id {value!r}{at}")
            return None
        seen[value] = path
        return value

    def secret_ref(self, table: Mapping[str, Any], path: KeyPath, key: str) -> SecretRef | None:
        if key not in table:
            return None
        value = table[key]
        if not isinstance(value, str):
            self.problem((*path, key), f"expected a secret reference as text, got {_type_name(value)}")
            return None
        try:
            ref = parse_secret_ref(value)
        except InputError as exc:
            self.problem((*path, key), str(exc))
            return None
        if ref.scheme == "secret":
            via = self.secrets.get(ref.target)
            if via is None:
                if ref.target not in self.bad_secrets:
                    self.problem(
                        (*path, key),
                        f"unknown secret {ref.target!r}{_suggest(ref.target, self.secrets)} "
                        f"(defined in [secrets]: {_listing(self.secrets)})",
                    )
                return None
            ref = SecretRef("secret", ref.target, via)
        return ref

    def check_secret(self, ref: SecretRef, path: KeyPath, *, key: bool) -> None:
        if not self.check_secrets:
            return
        try:
            secret = ref.resolve(env=self.env, secrets=self.secrets)
            if key:
                secret.reveal_key()
        except ConfigError as exc:  # InputError is a ConfigError
            self.problem(path, str(exc))

    # -- sections -----------------------------------------------------------------------------

    def document(self, doc: dict[str, Any], sha256: str) -> FleetConfig | None:
        self.keys(doc, (), _TOP_KEYS)
        for section in ("lines", "meters", "groups", "plans", "schedules"):
            entries = doc.get(section)
            self.raw_ids[section] = {
                item["id"]
                for item in (entries if isinstance(entries, list) else [])
                if isinstance(item, dict) and isinstance(item.get("id"), str)
            }
        if "format_version" in doc:
            version = doc["format_version"]
            if version != FORMAT_VERSION or isinstance(version, bool):
                self.problem(
                    ("format_version",),
                    f"this metercom reads format_version {FORMAT_VERSION}, got {version!r}",
                )
        service = self.service(doc)
        self.secrets_table(doc)
        lines = self.lines(doc)
        plans = self.plans(doc)
        meters, implicit = self.meters(doc, {line.id: line for line in lines})
        groups = self.groups(doc, meters)
        schedules = self.schedules(doc, service.timezone, {g.id for g in groups}, {p.id for p in plans})
        self.shared_links([*lines, *implicit])
        rules = check_rules(self, doc, meters, groups)
        neutral = check_neutral(self, doc, meters, groups)
        prepaid = check_prepaid(self, doc, meters)
        notify = check_notify(self, doc, meters)
        web = check_web(self, doc)
        upstreams = check_upstreams(self, doc)
        if self.problems:
            return None
        return FleetConfig(
            source=self.source,
            sha256=sha256,
            service=service,
            secrets=self.secrets,
            lines=(*lines, *implicit),
            meters=tuple(meters),
            groups=tuple(groups),
            plans=tuple(plans),
            schedules=tuple(schedules),
            rules=tuple(rules),
            neutral=tuple(neutral),
            prepaid=prepaid,
            notify=notify,
            web=web,
            upstreams=upstreams,
        )

    def service(self, doc: Mapping[str, Any]) -> ServiceSettings:
        name, zone = "metercom", "UTC"
        if "service" in doc and (table := self.table(doc["service"], ("service",), "[service]")) is not None:
            self.keys(table, ("service",), ("name", "timezone"))
            name = self.text(table, ("service",), "name", name, 100) or name
            zone = self.timezone(table, ("service",), "timezone") or zone
        retention = RetentionPolicy()
        if (
            "retention" in doc
            and (table := self.table(doc["retention"], ("retention",), "[retention]")) is not None
        ):
            keys = ("readings_days", "profile_days", "events_days", "audit_days")
            self.keys(table, ("retention",), keys)
            days = {key: self.opt_integer(table, ("retention",), key, 1, _MAX_DAYS) for key in keys}
            retention = RetentionPolicy(**days)
        return ServiceSettings(name, zone, retention)

    def secrets_table(self, doc: Mapping[str, Any]) -> None:
        if "secrets" not in doc or (table := self.table(doc["secrets"], ("secrets",), "[secrets]")) is None:
            return
        for name, value in table.items():
            path: KeyPath = ("secrets", name)
            if not _ID.match(name):
                self.problem(path, f"invalid secret name {name!r} (letters, digits, '.', '_', '-')")
                self.bad_secrets.add(name)
                continue
            if not isinstance(value, str):
                self.problem(path, f"expected an env: or file: reference as text, got {_type_name(value)}")
                self.bad_secrets.add(name)
                continue
            try:
                self.secrets[name] = parse_secret_ref(value, allow_named=False)
            except InputError as exc:
                self.problem(path, str(exc))
                self.bad_secrets.add(name)

    def lines(self, doc: Mapping[str, Any]) -> list[LineConfig]:
        out: list[LineConfig] = []
        seen: dict[str, KeyPath] = {}
        for path, table in self.entries(doc, "lines"):
            self.keys(table, path, _LINE_KEYS, ("url",))
            line_id = self.ident(table, path, seen, "line")
            target = self.url(table, path)
            kind = self.line_kind(table, path, target)
            settings = self.line_settings(table, path, target)
            max_conv = self.integer(table, path, "max_conversations", 1, 10_000, default=1)
            if kind is not None and kind.is_serial and max_conv > 1:
                self.problem(
                    (*path, "max_conversations"),
                    f"a {kind.value} line carries one conversation at a time; max_conversations must be 1",
                )
            line = LineConfig(
                id=line_id or "",
                url=target.url if target else "",
                kind=kind or LineKind.SERIAL,
                settings=settings,
                max_conversations=max_conv,
                connect_timeout_s=self.seconds(table, path, "connect_timeout_s", 10.0),
                response_timeout_s=self.seconds(table, path, "response_timeout_s", 5.0),
                conversation_timeout_s=self.seconds(table, path, "conversation_timeout_s", 300.0),
                description=self.text(table, path, "description"),
            )
            if line_id is not None:
                self.line_paths[line_id] = path
                out.append(line)
        return out

    def url(self, table: Mapping[str, Any], path: KeyPath) -> TransportUrl | None:
        if "url" not in table:
            return None
        value = table["url"]
        if not isinstance(value, str):
            self.problem((*path, "url"), f"expected a transport URL as text, got {_type_name(value)}")
            return None
        try:
            return parse_transport_url(value)
        except InputError as exc:
            self.problem((*path, "url"), str(exc))
            return None

    def line_kind(
        self, table: Mapping[str, Any], path: KeyPath, target: TransportUrl | None
    ) -> LineKind | None:
        if target is None:
            allowed: tuple[LineKind, ...] = tuple(LineKind)
        elif target.kind == "tcp":
            allowed = (LineKind.TCP, LineKind.CONVERTER)
        elif target.kind == "udp":
            allowed = (LineKind.UDP,)
        elif target.device.startswith(("socket://", "rfc2217://")):
            allowed = (LineKind.CONVERTER, LineKind.RS485, LineKind.SERIAL)
        else:
            allowed = (LineKind.SERIAL, LineKind.RS485)
        if "type" not in table:
            return allowed[0]
        name = self.typed(table, path, "type", str, "")
        try:
            kind = LineKind(name)
        except ValueError:
            names = [k.value for k in LineKind]
            self.problem(
                (*path, "type"),
                f"unknown line type {name!r}{_suggest(name, names)}; types: {', '.join(names)}",
            )
            return None
        if kind not in allowed and target is not None:
            self.problem(
                (*path, "type"),
                f"a {kind.value} line cannot use the {target.kind} URL {target.url!r} "
                f"(this URL suits: {', '.join(k.value for k in allowed)})",
            )
            return None
        return kind

    def line_settings(
        self, table: Mapping[str, Any], path: KeyPath, target: TransportUrl | None
    ) -> LineSettings | None:
        base = target.line if target is not None else None
        if "baud" not in table and "format" not in table:
            return base
        baud = self.integer(table, path, "baud", 1, 10_000_000, default=base.baud_rate if base else 9600)
        frame = self.text(table, path, "format", base.frame_format if base else "8N1", 8)
        try:
            return LineSettings.parse(frame, baud)
        except InputError as exc:
            self.problem((*path, "format"), str(exc))
            return base

    def shared_links(self, lines: list[LineConfig]) -> None:
        seen: dict[str, LineConfig] = {}
        for line in lines:
            if not line.url:
                continue
            try:
                target = parse_transport_url(line.url)
            except InputError:
                continue
            link = f"{target.kind}:{target.host}:{target.port}" if target.kind != "serial" else target.device
            link = link.split("?", 1)[0]
            if link in seen:
                path = (
                    self.meter_paths.get(line.id.removeprefix("meter:"), ())
                    if line.implicit
                    else self.line_paths.get(line.id, ())
                )
                self.problem(
                    (*path, "url"),
                    f"{_line_name(line)} uses the same link as {_line_name(seen[link])}; "
                    "meters on one link must share one line, so its conversations are not run in parallel",
                )
            else:
                seen[link] = line

    def plans(self, doc: Mapping[str, Any]) -> list[ReadPlan]:
        out: list[ReadPlan] = []
        seen: dict[str, KeyPath] = {}
        for path, table in self.entries(doc, "plans"):
            self.keys(table, path, _PLAN_KEYS)
            plan_id = self.ident(table, path, seen, "plan")
            objects: list[Obis] = []
            for item_path, text in self.str_list(table, path, "objects"):
                obis = self.obis(item_path, text)
                if obis is not None:
                    if obis in objects:
                        self.problem(item_path, f"{obis} is listed twice")
                    else:
                        objects.append(obis)
            profiles = self.object_reads(table, path, "profiles")
            events = self.object_reads(table, path, "events")
            if (
                plan_id is not None
                and not (objects or profiles or events)
                and not any(key in table for key in ("objects", "profiles", "events"))
            ):
                self.problem(path, f"plan {plan_id!r} reads nothing (give objects, profiles or events)")
            if plan_id is not None:
                out.append(
                    ReadPlan(plan_id, tuple(objects), profiles, events, self.text(table, path, "description"))
                )
        return out

    def obis(self, path: KeyPath, text: str) -> Obis | None:
        try:
            return Obis.parse(text)
        except InputError as exc:
            self.problem(path, str(exc))
            return None

    def object_reads(self, table: Mapping[str, Any], path: KeyPath, key: str) -> tuple[ObjectRead, ...]:
        if key not in table:
            return ()
        value = table[key]
        if not isinstance(value, list):
            self.problem(
                (*path, key),
                f"expected an array of {{ obis = ..., history = ... }} tables, got {_type_name(value)}",
            )
            return ()
        out: list[ObjectRead] = []
        for i, item in enumerate(value):
            item_path = (*path, key, i)
            entry = self.table(item, item_path, f"each entry of {key}")
            if entry is None:
                continue
            self.keys(entry, item_path, _READ_KEYS, _READ_KEYS)
            obis = (
                self.obis((*item_path, "obis"), entry["obis"]) if isinstance(entry.get("obis"), str) else None
            )
            if "obis" in entry and not isinstance(entry["obis"], str):
                self.problem(
                    (*item_path, "obis"), f"expected an OBIS code as text, got {_type_name(entry['obis'])}"
                )
            history = self.duration(entry, item_path, "history")
            if history is not None and not timedelta(minutes=1) <= history <= _MAX_HISTORY:
                self.problem((*item_path, "history"), "history must be between 1 minute and 3660 days")
                history = None
            if obis is not None and history is not None:
                if any(o.obis == obis for o in out):
                    self.problem((*item_path, "obis"), f"{obis} is listed twice")
                else:
                    out.append(ObjectRead(obis, history))
        return tuple(out)

    def meters(
        self, doc: Mapping[str, Any], lines: Mapping[str, LineConfig]
    ) -> tuple[list[MeterConfig], list[LineConfig]]:
        out: list[MeterConfig] = []
        implicit: list[LineConfig] = []
        seen: dict[str, KeyPath] = {}
        addresses: dict[tuple[str, tuple[object, ...]], str] = {}
        for path, table in self.entries(doc, "meters"):
            self.keys(table, path, _METER_KEYS, ("protocol",))
            meter_id = self.ident(table, path, seen, "meter")
            protocol = self.protocol(table, path)
            line = self.meter_line(table, path, meter_id, lines)
            if line is not None and line.implicit:
                implicit.append(line)
            address = self.address(table, path, protocol, line) if protocol is not None else None
            auth, security, password, keys = self.credentials(table, path, protocol)
            group_refs = self.str_list(table, path, "groups")
            profile = self.opt_text(table, path, "device_profile", 128)
            wrong = (
                profile_problem(protocol, profile)
                if self.check_profiles
                and protocol is not None
                and (profile is not None or "device_profile" not in table)
                else None
            )
            if wrong is not None:
                self.problem((*path, "device_profile") if profile is not None else path, wrong)
            meter = MeterConfig(
                id=meter_id or "",
                protocol=protocol or Protocol.IEC21,
                line=line.id if line is not None else "",
                address=address or Iec21Address(),
                authentication=auth,
                security=security,
                password=password,
                keys=MappingProxyType(keys),
                device_profile=profile,
                quirks=self.quirks(table, path),
                tariff=self.opt_text(table, path, "tariff", 64),
                timezone=self.timezone(table, path, "timezone"),
                groups=tuple(dict.fromkeys(g for _, g in group_refs)),
                enabled=self.typed(table, path, "enabled", bool, True),
                description=self.text(table, path, "description"),
            )
            if meter_id is None:
                continue
            self.meter_paths[meter_id] = path
            self.meter_groups[meter_id] = group_refs
            if line is not None and address is not None:
                slot = (line.id, address.key())
                other = addresses.get(slot)
                if other is not None:
                    self.problem(
                        (*path, "address"),
                        f"meters {other!r} and {meter_id!r} both have address {address} on line {line.id!r}; "
                        "every meter on a line needs its own address",
                    )
                else:
                    addresses[slot] = meter_id
            out.append(meter)
        return out, implicit

    def protocol(self, table: Mapping[str, Any], path: KeyPath) -> Protocol | None:
        if "protocol" not in table:
            return None
        name = self.typed(table, path, "protocol", str, "")
        try:
            return Protocol(name)
        except ValueError:
            names = [p.value for p in Protocol]
            self.problem(
                (*path, "protocol"),
                f"unknown protocol {name!r}{_suggest(name, names)}; protocols: {', '.join(names)}",
            )
            return None

    def meter_line(
        self, table: Mapping[str, Any], path: KeyPath, meter_id: str | None, lines: Mapping[str, LineConfig]
    ) -> LineConfig | None:
        if "line" in table and "url" in table:
            self.problem((*path, "url"), "give either line (the id of a [[lines]] entry) or url, not both")
            return None
        if "line" not in table and "url" not in table:
            self.problem(path, "missing 'line' (the id of a [[lines]] entry) or 'url' (a link of its own)")
            return None
        if "url" in table:
            target = self.url(table, path)
            if target is None or meter_id is None:
                return None
            kind = {"tcp": LineKind.TCP, "udp": LineKind.UDP}.get(target.kind, LineKind.SERIAL)
            return LineConfig(
                id=f"meter:{meter_id}", url=target.url, kind=kind, settings=target.line, implicit=True
            )
        name = self.typed(table, path, "line", str, "")
        if not name:
            return None
        line = lines.get(name)
        if line is None and not self.invalid("lines", name):
            self.problem(
                (*path, "line"), f"unknown line {name!r}{_suggest(name, lines)}; lines: {_listing(lines)}"
            )
        return line

    def address(
        self, table: Mapping[str, Any], path: KeyPath, protocol: Protocol, line: LineConfig | None
    ) -> MeterAddress | None:
        apath = (*path, "address")
        raw = table.get("address", {})
        spec = self.table(raw, apath, "address")
        if spec is None:
            return None
        self.keys(spec, apath, _ADDRESS_KEYS[protocol])
        serial = line is not None and line.kind.is_serial
        if protocol is Protocol.IEC21:
            device = self.text(spec, apath, "device", "", 64)
            if device and not _IEC_DEVICE.match(device):
                self.problem(
                    (*apath, "device"),
                    f"an IEC 62056-21 device address is 1-32 letters, digits or spaces, got {device!r}",
                )
                return None
            return Iec21Address(device)
        if protocol is Protocol.MODBUS:
            if "unit" not in spec:
                self.problem(apath, "a Modbus meter needs address.unit (1..247)")
                return None
            high = 247 if serial or line is None else 255
            return ModbusAddress(self.integer(spec, apath, "unit", 1, high, default=1))
        if "client" not in spec:
            self.problem(
                apath,
                "a DLMS meter needs address.client (the client SAP, e.g. 16 for public, 1 for management)",
            )
            return None
        client = self.integer(spec, apath, "client", 1, 0x7F if serial else 0xFFFF, default=16)
        if "server" in spec and ("logical" in spec or "physical" in spec):
            self.problem(
                (*apath, "server"),
                "give either server (the whole HDLC address) or logical/physical, not both",
            )
            return None
        if "server" in spec:
            return DlmsAddress(client, server=self.integer(spec, apath, "server", 0, 0x3FFF_3FFF, default=1))
        high = 0x3FFF if serial else 0xFFFF
        logical = self.integer(spec, apath, "logical", 0, high, default=1)
        physical = self.opt_integer(spec, apath, "physical", 0, 0x3FFF)
        return DlmsAddress(client, logical, physical)

    def credentials(
        self, table: Mapping[str, Any], path: KeyPath, protocol: Protocol | None
    ) -> tuple[str | None, str | None, SecretRef | None, dict[str, SecretRef]]:
        password = self.secret_ref(table, path, "password")
        if password is not None:
            self.check_secret(password, (*path, "password"), key=False)
        keys: dict[str, SecretRef] = {}
        if "keys" in table and (spec := self.table(table["keys"], (*path, "keys"), "keys")) is not None:
            if protocol is not None and protocol is not Protocol.DLMS:
                self.problem((*path, "keys"), f"{protocol.value} meters have no keys (only DLMS meters do)")
            else:
                self.keys(spec, (*path, "keys"), DLMS_KEYS)
                for name in DLMS_KEYS:
                    ref = self.secret_ref(spec, (*path, "keys"), name)
                    if ref is not None:
                        keys[name] = ref
                        self.check_secret(ref, (*path, "keys", name), key=True)
        if protocol is Protocol.MODBUS and password is not None:
            self.problem((*path, "password"), "Modbus has no passwords")
        auth = security = None
        if protocol is not Protocol.DLMS:
            for key in ("authentication", "security"):
                if key in table and protocol is not None:
                    self.problem(
                        (*path, key), f"only DLMS meters have {key} (this is a {protocol.value} meter)"
                    )
            return auth, security, password, keys
        auth = self.choice(table, path, "authentication", DLMS_AUTHENTICATION)
        security = self.choice(table, path, "security", DLMS_SECURITY)
        if auth == "high-ecdsa":
            self.problem((*path, "authentication"), "high-ecdsa (HLS mechanism 7) is not supported yet")
        if auth in _NEEDS_PASSWORD and password is None and "password" not in table:
            self.problem(path, f"authentication {auth!r} needs a password (a secret reference)")
        needed: list[str] = []
        if auth == "high-gmac" or security in ("authenticated", "authenticated-encrypted"):
            needed = ["encryption", "authentication"]
        elif security == "encrypted":
            needed = ["encryption"]
        for name in needed:
            if name not in keys and not (
                "keys" in table and isinstance(table["keys"], dict) and name in table["keys"]
            ):
                why = f"authentication {auth!r}" if auth == "high-gmac" else f"security {security!r}"
                self.problem((*path, "keys"), f"{why} needs keys.{name} (a secret reference)")
        return auth, security, password, keys

    def choice(self, table: Mapping[str, Any], path: KeyPath, key: str, choices: tuple[str, ...]) -> str:
        value = self.typed(table, path, key, str, choices[0])
        if value not in choices:
            self.problem(
                (*path, key),
                f"unknown {key} {value!r}{_suggest(value, choices)}; choose one of {', '.join(choices)}",
            )
            return choices[0]
        return value

    def quirks(self, table: Mapping[str, Any], path: KeyPath) -> Mapping[str, QuirkValue]:
        if (
            "quirks" not in table
            or (spec := self.table(table["quirks"], (*path, "quirks"), "quirks")) is None
        ):
            return MappingProxyType({})
        out: dict[str, QuirkValue] = {}
        for name, value in spec.items():
            if not re.match(r"^[a-z][a-z0-9_]{0,63}$", name):
                self.problem((*path, "quirks", name), f"quirk names are lower_snake_case, got {name!r}")
            elif isinstance(value, (bool, int, float, str)):
                out[name] = value
            else:
                self.problem(
                    (*path, "quirks", name),
                    f"a quirk is true/false, a number or text, got {_type_name(value)}",
                )
        return MappingProxyType(out)

    def groups(self, doc: Mapping[str, Any], meters: list[MeterConfig]) -> list[GroupConfig]:
        seen: dict[str, KeyPath] = {}
        listed: dict[str, set[str]] = {}
        descriptions: dict[str, str] = {}
        meter_ids = {m.id for m in meters}
        for path, table in self.entries(doc, "groups"):
            self.keys(table, path, _GROUP_KEYS)
            group_id = self.ident(table, path, seen, "group")
            members: set[str] = set()
            for item_path, name in self.str_list(table, path, "meters"):
                if name in meter_ids:
                    members.add(name)
                elif not self.invalid("meters", name):
                    self.problem(item_path, f"unknown meter {name!r}{_suggest(name, meter_ids)}")
            if group_id is not None:
                listed[group_id] = members
                descriptions[group_id] = self.text(table, path, "description")
        for meter in meters:
            for item_path, group_id in self.meter_groups.get(meter.id, []):
                if group_id in listed:
                    listed[group_id].add(meter.id)
                elif not self.invalid("groups", group_id):
                    self.problem(
                        item_path,
                        f"unknown group {group_id!r}{_suggest(group_id, listed)}; groups: {_listing(listed)}",
                    )
        return [
            GroupConfig(gid, tuple(m.id for m in meters if m.id in members), descriptions[gid])
            for gid, members in listed.items()
        ]

    def schedules(
        self, doc: Mapping[str, Any], default_zone: str, groups: set[str], plans: set[str]
    ) -> list[ScheduleConfig]:
        out: list[ScheduleConfig] = []
        seen: dict[str, KeyPath] = {}
        for path, table in self.entries(doc, "schedules"):
            self.keys(table, path, _SCHEDULE_KEYS, ("plan",))
            schedule_id = self.ident(table, path, seen, "schedule")
            names: list[tuple[KeyPath, str]] = []
            if "group" in table and "groups" in table:
                self.problem((*path, "group"), "give either group or groups, not both")
            elif "group" in table:
                name = self.typed(table, path, "group", str, "")
                names = [((*path, "group"), name)] if name else []
            elif "groups" in table:
                names = self.str_list(table, path, "groups")
                if not names and isinstance(table["groups"], list):
                    self.problem((*path, "groups"), "a schedule needs at least one group")
            else:
                self.problem(path, "missing 'groups' (the groups whose meters this schedule reads)")
            for item_path, name in names:
                if name not in groups and not self.invalid("groups", name):
                    self.problem(
                        item_path,
                        f"unknown group {name!r}{_suggest(name, groups)}; groups: {_listing(groups)}",
                    )
            plan = self.typed(table, path, "plan", str, "")
            if plan and plan not in plans and not self.invalid("plans", plan):
                self.problem(
                    (*path, "plan"),
                    f"unknown plan {plan!r}{_suggest(plan, plans)}; plans: {_listing(plans)}",
                )
            trigger = self.trigger(table, path, default_zone)
            if schedule_id is not None and trigger is not None:
                out.append(
                    ScheduleConfig(
                        schedule_id,
                        tuple(dict.fromkeys(name for _, name in names)),
                        plan,
                        trigger,
                        self.typed(table, path, "enabled", bool, True),
                        self.text(table, path, "description"),
                    )
                )
        return out

    def trigger(
        self, table: Mapping[str, Any], path: KeyPath, default_zone: str
    ) -> CronTrigger | IntervalTrigger | None:
        if ("cron" in table) == ("every" in table):
            if "cron" in table:
                self.problem((*path, "every"), "give either cron or every, not both")
            else:
                self.problem(path, "missing 'cron' (e.g. \"5 0 * * *\") or 'every' (e.g. \"15m\")")
            return None
        if "cron" in table:
            if "offset" in table:
                self.problem((*path, "offset"), "offset goes with every, not with cron")
            zone = self.timezone(table, path, "timezone") or default_zone
            text = self.typed(table, path, "cron", str, "")
            if not text:
                return None
            try:
                return CronTrigger(CronExpr.parse(text), ZoneInfo(zone))
            except InputError as exc:
                self.problem((*path, "cron"), str(exc))
                return None
        if "timezone" in table:
            self.problem((*path, "timezone"), "timezone goes with cron; every is real elapsed time")
        every = self.duration(table, path, "every")
        offset = self.duration(table, path, "offset") or timedelta(0)
        if every is None:
            return None
        if every < timedelta(seconds=1):
            self.problem((*path, "every"), "every must be at least 1s")
            return None
        try:
            return IntervalTrigger(every, offset)
        except InputError as exc:
            self.problem((*path, "offset"), str(exc))
            return None

    def invalid(self, section: str, name: str) -> bool:
        """Whether ``name`` is the id of an entry that exists but was itself invalid (and is
        reported where it stands), so a reference to it is not reported again."""
        return section in self.broken or name in self.raw_ids.get(section, set())


def _line_name(line: LineConfig) -> str:
    return f"meter {line.id.removeprefix('meter:')!r} (url)" if line.implicit else f"line {line.id!r}"


def _valid_zone(name: str) -> bool:
    if not name or ".." in name or name.startswith("/"):
        return False
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return False
    return True
