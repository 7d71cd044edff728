"""Load and validate device profiles (object lists as TOML or JSON data).

Rule: a profile file is validated as a whole against the COSEM class tables before anything
uses it; every problem is reported with the entry and field at fault, all at once, in one
:class:`~metercom.errors.ConfigError`. A profile that loads is internally consistent: every
object's class and version are declared, every attribute value fits its type, every source is
in the vocabulary (:mod:`.sources`), every object a capture list, script or reference names
exists with the right class, every association has its Association LN object.

Theory of operation: :func:`load_profile` reads a bundled profile by name (``"generic"``,
``"india"``: package data next to this module, read with :mod:`importlib.resources`) or a file
by path (``.toml`` or ``.json``), then :func:`parse_profile` builds the
:class:`DeviceProfile` from the document (a plain mapping), collecting
:class:`ProfileProblem` values; :func:`check_profile` returns the problems instead of raising.
See the package docstring (:mod:`metercom.model.profiles`) for the file format.
"""

from __future__ import annotations

import json
import os
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import NamedTuple

from metercom.errors import ConfigError, InputError
from metercom.model.cosem.association import AttributeAccess, MethodAccess, ObjectListElement
from metercom.model.cosem.classes import CLASS_VERSIONS, INTERFACE_CLASSES, find_class
from metercom.model.cosem.enums import AuthenticationMechanism
from metercom.model.cosem.types import (
    AccessMode,
    ArrayOf,
    AttributeSpec,
    InterfaceClass,
    MethodAccessMode,
    OneOf,
    Simple,
    Struct,
    TypeSpec,
    type_name,
    zero_of,
)
from metercom.model.dlms_data import Data, DlmsType
from metercom.model.obis import Obis
from metercom.model.profiles.sources import describe_source, is_valid_source
from metercom.model.units import ScalerUnit, Unit, UnitError

__all__ = [
    "ACCESS_PRESETS",
    "AssociationSpec",
    "AttributeValue",
    "DeviceProfile",
    "ObjectAccess",
    "ObjectEntry",
    "ProfileProblem",
    "available_profiles",
    "check_profile",
    "load_profile",
    "parse_profile",
]

_PACKAGE = "metercom.model.profiles"
_SUFFIXES = (".toml", ".json")
#: Named access presets (see the package docstring).
ACCESS_PRESETS = ("none", "read", "read-write", "default", "full")
_TOP_KEYS = {"profile", "associations", "objects"}
_PROFILE_KEYS = {"name", "description", "standard", "notes"}
_ASSOCIATION_KEYS = {"name", "logical_name", "client_sap", "authentication", "default_access", "description"}
_OBJECT_KEYS = {
    "logical_name",
    "class_id",
    "version",
    "name",
    "description",
    "attributes",
    "access",
    "scaler",
    "unit",
}
_BINDING_KEYS = {"type", "value", "source"}
_ACCESS_KEYS = {"base", "attributes", "methods"}


class ProfileProblem(NamedTuple):
    """One validation problem: where (file, entry, field) and what."""

    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.message}"


@dataclass(frozen=True, slots=True)
class AttributeValue:
    """An attribute a profile gives: its initial value and, for dynamic ones, the source that
    drives it (``"load:voltage_l1"``, see :mod:`.sources`)."""

    index: int
    name: str
    value: Data
    source: str | None = None


@dataclass(frozen=True, slots=True)
class ObjectAccess:
    """What one association may do with one object: access per attribute and per method
    (position i holds index i + 1)."""

    attributes: tuple[AccessMode, ...]
    methods: tuple[MethodAccessMode, ...]

    def attribute(self, index: int) -> AccessMode:
        """Access to attribute ``index`` (``NO_ACCESS`` outside the class)."""
        return self.attributes[index - 1] if 1 <= index <= len(self.attributes) else AccessMode.NO_ACCESS

    def method(self, index: int) -> MethodAccessMode:
        """Access to method ``index`` (``NO_ACCESS`` outside the class)."""
        return self.methods[index - 1] if 1 <= index <= len(self.methods) else MethodAccessMode.NO_ACCESS


@dataclass(frozen=True, slots=True)
class AssociationSpec:
    """One association (client) of the device: its Association LN object, client SAP and
    authentication mechanism; ``default_access`` applies to objects that do not name it."""

    name: str
    logical_name: Obis
    client_sap: int
    authentication: AuthenticationMechanism
    default_access: str = "none"
    description: str = ""


@dataclass(frozen=True, slots=True)
class ObjectEntry:
    """One COSEM object of a device profile."""

    logical_name: Obis
    class_id: int
    version: int
    name: str
    attributes: Mapping[int, AttributeValue]
    access: Mapping[str, ObjectAccess]
    description: str = ""

    @property
    def interface(self) -> InterfaceClass:
        """The class table of this object (always declared: the loader checked it)."""
        return CLASS_VERSIONS[(self.class_id, self.version)]

    def value(self, which: int | str) -> Data:
        """The value of an attribute: the profile's, else the class default (logical_name
        is always this object's)."""
        spec = self.interface.attribute(which)
        if spec.index == 1:
            return Data.octet_string(self.logical_name.to_bytes())
        given = self.attributes.get(spec.index)
        return given.value if given is not None else spec.default_value()

    def source(self, which: int | str) -> str | None:
        """The source bound to an attribute, or None."""
        given = self.attributes.get(self.interface.attribute(which).index)
        return None if given is None else given.source

    @property
    def scaler_unit(self) -> ScalerUnit | None:
        """The object's scaler_unit, if its class has one and the profile gives it."""
        if not self.interface.has_attribute("scaler_unit"):
            return None
        given = self.attributes.get(self.interface.attribute("scaler_unit").index)
        return None if given is None else ScalerUnit.from_data(given.value)

    def object_list_element(self, association: str) -> ObjectListElement | None:
        """This object as the association's object list shows it, or None if it is hidden."""
        access = self.access.get(association)
        if access is None:
            return None
        ic = self.interface
        return ObjectListElement(
            self.class_id,
            self.version,
            self.logical_name,
            tuple(
                AttributeAccess(spec.index, mode, spec.selectors or None)
                for spec, mode in zip(ic.attributes, access.attributes, strict=True)
            ),
            tuple(
                MethodAccess(spec.index, mode) for spec, mode in zip(ic.methods, access.methods, strict=True)
            ),
        )

    def __str__(self) -> str:
        return f"{self.logical_name} ({self.interface})"


@dataclass(frozen=True, slots=True)
class DeviceProfile:
    """A validated device profile: associations and objects."""

    name: str
    description: str
    origin: str
    associations: tuple[AssociationSpec, ...]
    objects: tuple[ObjectEntry, ...]
    standard: str = ""
    _index: dict[Obis, ObjectEntry] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_index", {o.logical_name: o for o in self.objects})

    def find(self, logical_name: Obis | str) -> ObjectEntry | None:
        """The object with this logical name, or None."""
        key = logical_name if isinstance(logical_name, Obis) else Obis.parse(logical_name)
        return self._index.get(key)

    def object(self, logical_name: Obis | str) -> ObjectEntry:
        """The object with this logical name; raises :class:`InputError` if there is none."""
        found = self.find(logical_name)
        if found is None:
            raise InputError(f"profile {self.name!r} has no object {logical_name}")
        return found

    def association(self, which: str | int | Obis) -> AssociationSpec:
        """An association by name, client SAP or logical name."""
        for a in self.associations:
            if which in (a.name, a.client_sap, a.logical_name):
                return a
        names = ", ".join(f"{a.name} (client {a.client_sap})" for a in self.associations)
        raise InputError(f"profile {self.name!r} has no association {which!r}; it has {names}")

    def visible_objects(self, association: str) -> tuple[ObjectEntry, ...]:
        """The objects in the association's object list, in profile order."""
        name = self.association(association).name
        return tuple(o for o in self.objects if name in o.access)

    def object_list(self, association: str) -> list[ObjectListElement]:
        """Association LN attribute 2 content for this association (see
        :func:`metercom.model.cosem.object_list_to_data` to encode it)."""
        name = self.association(association).name
        out = []
        for obj in self.objects:
            element = obj.object_list_element(name)
            if element is not None:
                out.append(element)
        return out

    def sources(self) -> dict[tuple[Obis, int], str]:
        """Every bound source: (logical name, attribute index) -> source."""
        return {
            (o.logical_name, a.index): a.source
            for o in self.objects
            for a in o.attributes.values()
            if a.source
        }


# --- loading ----------------------------------------------------------------------------------


def available_profiles() -> list[str]:
    """Names of the profiles bundled with metercom."""
    root = resources.files(_PACKAGE)
    return sorted(
        p.name.rsplit(".", 1)[0] for p in root.iterdir() if p.is_file() and p.name.endswith(_SUFFIXES)
    )


def load_profile(name_or_path: str | os.PathLike[str]) -> DeviceProfile:
    """Load a bundled profile by name (``"generic"``, ``"india"``) or a ``.toml``/``.json`` file.

    Raises :class:`ConfigError` listing every problem (file missing or unreadable, syntax,
    validation) with the entry and field at fault.
    """
    text, origin, suffix = _read(name_or_path)
    try:
        document: object = tomllib.loads(text) if suffix == ".toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"not valid {suffix[1:].upper()}: {exc}", where=origin) from exc
    if not isinstance(document, Mapping):
        raise ConfigError("a profile is a table (TOML) or an object (JSON) at top level", where=origin)
    return parse_profile(document, origin=origin)


def _read(name_or_path: str | os.PathLike[str]) -> tuple[str, str, str]:
    text_name = os.fspath(name_or_path)
    is_name = (
        isinstance(name_or_path, str) and not any(c in text_name for c in "/\\") and "." not in text_name
    )
    if is_name:
        for suffix in _SUFFIXES:
            resource = resources.files(_PACKAGE).joinpath(text_name + suffix)
            if resource.is_file():
                return resource.read_text(encoding="utf-8"), f"{text_name}{suffix}", suffix
        raise ConfigError(
            f"no bundled profile {text_name!r}; bundled: {', '.join(available_profiles())} "
            "(or give a path to a .toml or .json file)"
        )
    path = Path(name_or_path)
    suffix = path.suffix.lower()
    if suffix not in _SUFFIXES:
        raise ConfigError(f"a profile file ends in .toml or .json, got {path.name!r}", where=str(path))
    try:
        return path.read_text(encoding="utf-8"), str(path), suffix
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the profile: {exc}", where=str(path)) from exc


def parse_profile(document: Mapping[str, object], *, origin: str = "<profile>") -> DeviceProfile:
    """Build a :class:`DeviceProfile` from a parsed document; raises :class:`ConfigError`
    listing every problem."""
    profile, problems = _Builder(document, origin).build()
    if problems or profile is None:
        shown = problems[:50]
        lines = "\n".join(f"  - {p}" for p in shown)
        more = f"\n  ... and {len(problems) - len(shown)} more" if len(problems) > len(shown) else ""
        raise ConfigError(f"{len(problems)} problem(s) in the device profile:\n{lines}{more}", where=origin)
    return profile


def check_profile(document: Mapping[str, object], *, origin: str = "<profile>") -> list[ProfileProblem]:
    """Every problem of a parsed document (empty list: it loads)."""
    return _Builder(document, origin).build()[1]


# --- the builder ------------------------------------------------------------------------------


def _mode_names(enum_type: type[AccessMode] | type[MethodAccessMode]) -> dict[str, int]:
    return {m.name.lower().replace("_", "-"): int(m) for m in enum_type}


_ATTRIBUTE_MODES = _mode_names(AccessMode)
_METHOD_MODES = _mode_names(MethodAccessMode)
_MECHANISMS = {m.name.lower().replace("_", "-"): m for m in AuthenticationMechanism}


def _preset(preset: str, ic: InterfaceClass) -> ObjectAccess:
    """The access a named preset gives to every attribute and method of a class."""
    attributes: list[AccessMode] = []
    for spec in ic.attributes:
        if preset == "read" or spec.index == 1:
            attributes.append(AccessMode.READ_ONLY)
        elif preset == "default":
            attributes.append(spec.default_access)
        else:  # read-write, full
            attributes.append(AccessMode.READ_AND_WRITE)
    method_mode = MethodAccessMode.ACCESS if preset in ("default", "full") else MethodAccessMode.NO_ACCESS
    methods = tuple(MethodAccessMode.NO_ACCESS if m.reserved else method_mode for m in ic.methods)
    return ObjectAccess(tuple(attributes), methods)


def _parse_unit(value: object) -> Unit | int:
    if isinstance(value, int) and not isinstance(value, bool):
        if not 0 <= value <= 255:
            raise InputError(f"unit code must be 0..255, got {value}")
        return Unit.lookup(value)
    if isinstance(value, str):
        key = value.strip()
        for unit in Unit:
            if unit.symbol == key:
                return unit
        member = Unit.__members__.get(key.upper().replace("-", "_").replace(" ", "_"))
        if member is not None:
            return member
    raise InputError(
        f"unknown unit {value!r}: give a symbol ('Wh', 'V', 'A', 'var'), a name ('WATT_HOUR') or a code"
    )


class _Builder:
    def __init__(self, document: Mapping[str, object], origin: str) -> None:
        self.document = document
        self.origin = origin
        self.problems: list[ProfileProblem] = []

    def problem(self, where: str, message: str) -> None:
        self.problems.append(ProfileProblem(f"{self.origin} {where}".strip(), message))

    # -- top level --

    def build(self) -> tuple[DeviceProfile | None, list[ProfileProblem]]:
        doc = self.document
        for key in sorted(set(doc) - _TOP_KEYS):
            self.problem(str(key), f"unknown top-level key; allowed: {', '.join(sorted(_TOP_KEYS))}")
        head = doc.get("profile", {})
        if not isinstance(head, Mapping):
            self.problem("profile", "must be a table with name and description")
            head = {}
        for key in sorted(set(head) - _PROFILE_KEYS):
            self.problem(f"profile.{key}", f"unknown key; allowed: {', '.join(sorted(_PROFILE_KEYS))}")
        name = head.get("name")
        if not isinstance(name, str) or not name:
            self.problem("profile.name", "a profile needs a name (text)")
            name = ""
        description = head.get("description", "")
        standard = head.get("standard", "")
        associations = self.associations(self.list_of("associations"))
        objects = self.objects(self.list_of("objects"), associations)
        self.cross_check(associations, objects)
        if self.problems:
            return None, self.problems
        return (
            DeviceProfile(
                name,
                description if isinstance(description, str) else "",
                self.origin,
                tuple(associations),
                tuple(objects),
                standard if isinstance(standard, str) else "",
            ),
            [],
        )

    def list_of(self, key: str) -> list[Mapping[str, object]]:
        raw = self.document.get(key, [])
        if not isinstance(raw, list):
            self.problem(key, "must be an array of tables ([[" + key + "]])")
            return []
        out = []
        for i, item in enumerate(raw):
            if isinstance(item, Mapping):
                out.append(item)
            else:
                self.problem(f"{key}[{i}]", f"must be a table, got {item!r}")
                out.append({})
        return out

    # -- associations --

    def associations(self, items: list[Mapping[str, object]]) -> list[AssociationSpec]:
        out: list[AssociationSpec] = []
        for i, item in enumerate(items):
            where = f"associations[{i}]"
            for key in sorted(set(item) - _ASSOCIATION_KEYS):
                self.problem(
                    f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(_ASSOCIATION_KEYS))}"
                )
            name = item.get("name")
            if not isinstance(name, str) or not name:
                self.problem(f"{where}.name", "an association needs a name (text)")
                continue
            where = f"associations[{i}] ({name})"
            ln = self.obis(item.get("logical_name"), f"{where}.logical_name")
            sap = item.get("client_sap")
            if isinstance(sap, bool) or not isinstance(sap, int) or not 0 <= sap <= 0xFFFF:
                self.problem(f"{where}.client_sap", f"must be an integer 0..65535, got {sap!r}")
                sap = -1
            auth_name = item.get("authentication", "none")
            mechanism = _MECHANISMS.get(str(auth_name).lower())
            if mechanism is None:
                self.problem(
                    f"{where}.authentication",
                    f"unknown mechanism {auth_name!r}; use {', '.join(_MECHANISMS)}",
                )
                mechanism = AuthenticationMechanism.NONE
            default = item.get("default_access", "none")
            if default not in ACCESS_PRESETS:
                self.problem(
                    f"{where}.default_access", f"unknown preset {default!r}; use {', '.join(ACCESS_PRESETS)}"
                )
                default = "none"
            if any(a.name == name for a in out):
                self.problem(f"{where}.name", "duplicate association name")
            if sap >= 0 and any(a.client_sap == sap for a in out):
                self.problem(f"{where}.client_sap", f"client SAP {sap} is used by another association")
            description = item.get("description", "")
            if ln is not None:
                out.append(
                    AssociationSpec(
                        name,
                        ln,
                        sap,
                        mechanism,
                        str(default),
                        description if isinstance(description, str) else "",
                    )
                )
        return out

    def obis(self, value: object, where: str) -> Obis | None:
        if not isinstance(value, str):
            self.problem(where, f"needs an OBIS code as text ('0.0.1.0.0.255'), got {value!r}")
            return None
        try:
            return Obis.parse(value)
        except InputError as exc:
            self.problem(where, str(exc))
            return None

    # -- objects --

    def objects(
        self, items: list[Mapping[str, object]], associations: list[AssociationSpec]
    ) -> list[ObjectEntry]:
        out: list[ObjectEntry] = []
        seen: dict[Obis, int] = {}
        for i, item in enumerate(items):
            entry = self.one_object(i, item, associations)
            if entry is None:
                continue
            if entry.logical_name in seen:
                self.problem(
                    f"objects[{i}] ({entry.logical_name})",
                    f"duplicate of objects[{seen[entry.logical_name]}]",
                )
                continue
            seen[entry.logical_name] = i
            out.append(entry)
        return out

    def one_object(
        self, i: int, item: Mapping[str, object], associations: list[AssociationSpec]
    ) -> ObjectEntry | None:
        where = f"objects[{i}]"
        ln = self.obis(item.get("logical_name"), f"{where}.logical_name")
        class_id, version = item.get("class_id"), item.get("version")
        if ln is not None:
            where = f"objects[{i}] ({ln})"
        for key in sorted(set(item) - _OBJECT_KEYS):
            self.problem(f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(_OBJECT_KEYS))}")
        if isinstance(class_id, bool) or not isinstance(class_id, int) or class_id not in INTERFACE_CLASSES:
            known = ", ".join(f"{c} {ic.name}" for c, ic in INTERFACE_CLASSES.items())
            self.problem(f"{where}.class_id", f"{class_id!r} is not a declared class id ({known})")
            return None
        if isinstance(version, bool) or not isinstance(version, int) or find_class(class_id, version) is None:
            versions = sorted(v for (c, v) in CLASS_VERSIONS if c == class_id)
            self.problem(
                f"{where}.version",
                f"{INTERFACE_CLASSES[class_id].name} version {version!r} is not declared; "
                f"use one of {versions}",
            )
            return None
        ic = CLASS_VERSIONS[(class_id, version)]
        where = f"{where} {ic.name}"
        name = item.get("name", "")
        if not isinstance(name, str):
            self.problem(f"{where}.name", "must be text")
            name = ""
        attributes = self.attribute_values(where, ic, item)
        access = self.access(where, ic, item.get("access", {}), associations)
        if ln is None:
            return None
        description = item.get("description", "")
        return ObjectEntry(
            ln,
            class_id,
            version,
            name or (ln.name or ""),
            MappingProxyType(attributes),
            MappingProxyType(access),
            description if isinstance(description, str) else "",
        )

    def attribute_values(
        self, where: str, ic: InterfaceClass, item: Mapping[str, object]
    ) -> dict[int, AttributeValue]:
        raw = item.get("attributes", {})
        if not isinstance(raw, Mapping):
            self.problem(f"{where}.attributes", "must be a table of attribute name = value")
            raw = {}
        out: dict[int, AttributeValue] = {}
        for key, value in raw.items():
            if not isinstance(key, str) or not ic.has_attribute(key):
                names = ", ".join(a.name for a in ic.attributes[1:])
                self.problem(f"{where}: attributes.{key}", f"{ic} has no attribute {key!r}; it has {names}")
                continue
            spec = ic.attribute(key)
            if spec.index == 1:
                self.problem(
                    f"{where}: attributes.{key}",
                    "give the logical name as the object's logical_name, not here",
                )
                continue
            made = self.attribute_value(where, spec, value)
            if made is not None:
                out[spec.index] = made
        su = self.scaler_unit(where, ic, item, out)
        if su is not None:
            out[su.index] = su
        return out

    def attribute_value(self, where: str, spec: AttributeSpec, value: object) -> AttributeValue | None:
        """One attribute: a plain value, a typed value, or a source binding {type?, value?, source}.

        Problems read ``<object>: attributes.<name>[.member...]: <what is wrong>``.
        """
        field_ = f"attributes.{spec.name}"
        source: str | None = None
        if isinstance(value, Mapping) and "source" in value:
            unknown = set(value) - _BINDING_KEYS
            if unknown:
                self.problem(where, f"{field_}: unknown key(s) {sorted(map(str, unknown))} next to source")
                return None
            source = value["source"]
            if not isinstance(source, str) or not is_valid_source(source):
                self.problem(where, f"{field_}.source: {describe_source(str(source))}")
                return None
            rest = {k: v for k, v in value.items() if k != "source"}
            if "value" not in rest:
                data = spec.type.default()
                if "type" in rest:
                    try:
                        data = zero_of(DlmsType[str(rest["type"]).strip().upper().replace("-", "_")])
                    except KeyError:
                        self.problem(where, f"{field_}.type: unknown DLMS type {rest['type']!r}")
                        return None
                try:
                    spec.type.check(data, field_)
                except InputError as exc:
                    self.problem(where, f"{exc} (type {type_name(data.type)} does not fit)")
                    return None
                return AttributeValue(spec.index, spec.name, data, source)
            value = rest if "type" in rest else rest["value"]
        try:
            data = spec.type.from_plain(value, field_)
            spec.type.check(data, field_)
        except InputError as exc:
            self.problem(where, str(exc))
            return None
        return AttributeValue(spec.index, spec.name, data, source)

    def scaler_unit(
        self, where: str, ic: InterfaceClass, item: Mapping[str, object], given: dict[int, AttributeValue]
    ) -> AttributeValue | None:
        has_su = ic.has_attribute("scaler_unit")
        scaler, unit = item.get("scaler"), item.get("unit")
        if not has_su:
            if scaler is not None or unit is not None:
                self.problem(f"{where}.scaler", f"{ic.name} has no scaler_unit; remove scaler/unit")
            return None
        spec = ic.attribute("scaler_unit")
        if spec.index in given:
            if scaler is not None or unit is not None:
                self.problem(f"{where}.scaler", "scaler/unit given twice (also in attributes.scaler_unit)")
            return None
        if scaler is None or unit is None:
            self.problem(
                f"{where}.scaler", f"a {ic.name} needs scaler and unit (e.g. scaler = -1, unit = 'V')"
            )
            return None
        if isinstance(scaler, bool) or not isinstance(scaler, int) or not -128 <= scaler <= 127:
            self.problem(f"{where}.scaler", f"must be an integer -128..127, got {scaler!r}")
            return None
        try:
            su = ScalerUnit(scaler, _parse_unit(unit))
            data = su.to_data()
        except (InputError, UnitError) as exc:
            self.problem(f"{where}.unit", str(exc))
            return None
        return AttributeValue(spec.index, spec.name, data)

    # -- access --

    def access(
        self, where: str, ic: InterfaceClass, raw: object, associations: list[AssociationSpec]
    ) -> dict[str, ObjectAccess]:
        if not isinstance(raw, Mapping):
            self.problem(f"{where}.access", "must be a table: association name = preset or table")
            raw = {}
        names = {a.name for a in associations}
        for key in raw:
            if key not in names:
                self.problem(
                    f"{where}.access.{key}",
                    f"no association named {key!r}; declared: {', '.join(sorted(names))}",
                )
        out: dict[str, ObjectAccess] = {}
        for assoc in associations:
            spec = raw.get(assoc.name, assoc.default_access)
            made = self.one_access(f"{where}.access.{assoc.name}", ic, spec)
            if made is not None:
                out[assoc.name] = made
        return out

    def one_access(self, where: str, ic: InterfaceClass, spec: object) -> ObjectAccess | None:
        if isinstance(spec, str):
            if spec not in ACCESS_PRESETS:
                self.problem(where, f"unknown preset {spec!r}; use {', '.join(ACCESS_PRESETS)} or a table")
                return None
            return None if spec == "none" else _preset(spec, ic)
        if not isinstance(spec, Mapping):
            self.problem(where, f"must be a preset name or a table, got {spec!r}")
            return None
        for key in sorted(set(spec) - _ACCESS_KEYS):
            self.problem(f"{where}.{key}", f"unknown key; allowed: {', '.join(sorted(_ACCESS_KEYS))}")
        base = spec.get("base", "read")
        if base not in ACCESS_PRESETS or base == "none":
            self.problem(
                f"{where}.base", f"base must be one of {', '.join(ACCESS_PRESETS[1:])}, got {base!r}"
            )
            return None
        access = _preset(str(base), ic)
        attributes = list(access.attributes)
        methods = list(access.methods)
        for key, mode in self.mapping(f"{where}.attributes", spec.get("attributes", {})):
            if not ic.has_attribute(key):
                self.problem(f"{where}.attributes.{key}", f"{ic} has no attribute {key!r}")
            elif mode not in _ATTRIBUTE_MODES:
                self.problem(
                    f"{where}.attributes.{key}", f"unknown access {mode!r}; use {', '.join(_ATTRIBUTE_MODES)}"
                )
            else:
                attributes[ic.attribute(key).index - 1] = AccessMode(_ATTRIBUTE_MODES[mode])
        for key, mode in self.mapping(f"{where}.methods", spec.get("methods", {})):
            if not ic.has_method(key) or ic.method(key).reserved:
                self.problem(f"{where}.methods.{key}", f"{ic} has no method {key!r}")
            elif mode not in _METHOD_MODES:
                self.problem(
                    f"{where}.methods.{key}", f"unknown access {mode!r}; use {', '.join(_METHOD_MODES)}"
                )
            else:
                methods[ic.method(key).index - 1] = MethodAccessMode(_METHOD_MODES[mode])
        return ObjectAccess(tuple(attributes), tuple(methods))

    def mapping(self, where: str, raw: object) -> Iterator[tuple[str, str]]:
        if not isinstance(raw, Mapping):
            self.problem(where, "must be a table of name = access")
            return
        for key, value in raw.items():
            yield str(key), str(value)

    # -- cross references --

    def cross_check(self, associations: list[AssociationSpec], objects: list[ObjectEntry]) -> None:
        index = {o.logical_name: o for o in objects}
        for i, assoc in enumerate(associations):
            target = index.get(assoc.logical_name)
            if target is None or target.class_id != 15:
                self.problem(
                    f"associations[{i}] ({assoc.name}).logical_name",
                    f"{assoc.logical_name} must be an Association LN object (class 15) of the profile",
                )
        for obj in objects:
            for value in obj.attributes.values():
                spec = obj.interface.attribute(value.index)
                where = f"objects ({obj.logical_name}) {obj.interface.name}: attributes.{spec.name}"
                for path, problem in _references(spec.type, value.value, "", index):
                    self.problem(where + path, problem)


def _walk(spec: TypeSpec, data: Data, path: str) -> Iterator[tuple[TypeSpec, Data, str]]:
    """Every (spec, value, path) node of a value that fits ``spec``."""
    yield spec, data, path
    if isinstance(spec, Struct) and data.type == DlmsType.STRUCTURE:
        for member, item in zip(spec.fields, data.as_items(), strict=False):
            yield from _walk(member.type, item, f"{path}.{member.name}")
    elif isinstance(spec, ArrayOf) and data.type in (DlmsType.ARRAY, DlmsType.COMPACT_ARRAY):
        for n, item in enumerate(data.as_items()):
            yield from _walk(spec.element, item, f"{path}[{n}]")
    elif isinstance(spec, OneOf):
        for option in spec.options:
            try:
                option.check(data, "")
            except InputError:
                continue
            yield from _walk(option, data, path)
            return


def _ln(data: Data) -> Obis | None:
    raw = data.value
    if data.type != DlmsType.OCTET_STRING or not isinstance(raw, bytes) or len(raw) != 6 or not any(raw):
        return None
    return Obis.from_bytes(raw)


def _references(
    spec: TypeSpec, data: Data, path: str, index: Mapping[Obis, ObjectEntry]
) -> Iterator[tuple[str, str]]:
    """Problems with the objects a value refers to (capture objects, scripts, monitored values...)."""
    for node, value, at in _walk(spec, data, path):
        if isinstance(node, Simple) and node.refers_to is not None:
            ln = _ln(value)
            if ln is not None:
                target = index.get(ln)
                if target is None or target.class_id != node.refers_to:
                    wanted = INTERFACE_CLASSES[node.refers_to].name
                    yield at, f"{ln} must be a {wanted} object (class {node.refers_to}) of the profile"
        if not isinstance(node, Struct):
            continue
        names = [f.name for f in node.fields]
        if "class_id" not in names or "logical_name" not in names:
            continue
        members = dict(zip(names, value.as_items(), strict=False))
        ln = _ln(members["logical_name"])
        if ln is None:
            continue
        class_id = members["class_id"].as_int()
        target = index.get(ln)
        if target is None:
            yield at, f"refers to {ln} (class {class_id}), which is not in the profile"
            continue
        if target.class_id != class_id:
            yield at, f"refers to {ln} as class {class_id}, but it is a {target.interface} in the profile"
            continue
        ic = target.interface
        if "attribute_index" in members:
            attribute = members["attribute_index"].as_int()
            if attribute != 0 and not ic.has_attribute(attribute):
                yield at, f"{ic} has no attribute {attribute} ({len(ic.attributes)} attributes)"
        if "service_id" in members and "index" in members:
            which = members["index"].as_int()
            if members["service_id"].as_int() == 1 and not ic.has_attribute(which):
                yield at, f"script writes attribute {which}, but {ic} has {len(ic.attributes)} attributes"
            if members["service_id"].as_int() == 2 and not ic.has_method(which):
                yield at, f"script executes method {which}, but {ic} has {len(ic.methods)} methods"
