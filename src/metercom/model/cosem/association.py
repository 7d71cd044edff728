"""Association object lists as typed values (Blue Book 4.4.3 Association SN, 4.4.4 Association LN).

Rule: :func:`parse_object_list` reads Association LN attribute 2 (what a client gets from
``0.0.40.0.0.255``) into :class:`ObjectListElement` values, after checking it against the
table of that association version; :func:`object_list_to_data` is its exact inverse, used by
the simulator to serve the object list of a device profile.

Theory of operation: the access-rights encoding depends on the *association's* version:

* version 0: attribute access is an enum (:class:`AccessMode`), method access a boolean;
* versions 1 and 2: both enums (:class:`AccessMode`, :class:`MethodAccessMode`);
* version 3: both are bit maps (:class:`AccessFlags`, :class:`MethodAccessFlags`) that add the
  required protection (authenticated/encrypted/signed request and response).

Each element keeps the mode as its version means it; :meth:`AttributeAccess.mode` and
:meth:`MethodAccess.mode` give the version-independent enum for decisions such as "may I
read this?". ``access_selectors`` is ``None`` when the meter sent null-data, else the tuple of
supported selective-access selectors.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from metercom.errors import InputError
from metercom.model.cosem.classes import SN_OBJECT_LIST_ELEMENT, find_class, lookup
from metercom.model.cosem.types import (
    AccessFlags,
    AccessMode,
    ArrayOf,
    InterfaceClass,
    MethodAccessFlags,
    MethodAccessMode,
)
from metercom.model.dlms_data import Data, DlmsType
from metercom.model.obis import Obis

__all__ = [
    "AttributeAccess",
    "MethodAccess",
    "ObjectListElement",
    "SnObjectListElement",
    "object_list_to_data",
    "parse_object_list",
    "parse_sn_object_list",
]


class AttributeAccess(NamedTuple):
    """One ``attribute_access_item``."""

    attribute_id: int
    access_mode: AccessMode | AccessFlags
    access_selectors: tuple[int, ...] | None = None

    @property
    def mode(self) -> AccessMode:
        """The access as a version 0..2 enum, whatever version it came from."""
        if isinstance(self.access_mode, AccessMode):
            return self.access_mode
        return AccessMode.from_flags(self.access_mode)


class MethodAccess(NamedTuple):
    """One ``method_access_item``."""

    method_id: int
    access_mode: MethodAccessMode | MethodAccessFlags

    @property
    def mode(self) -> MethodAccessMode:
        """The access as a version 1..2 enum, whatever version it came from."""
        if isinstance(self.access_mode, MethodAccessMode):
            return self.access_mode
        return MethodAccessMode.from_flags(self.access_mode)


@dataclass(frozen=True, slots=True)
class ObjectListElement:
    """One ``object_list_element``: an object the association can see, and what it may do."""

    class_id: int
    version: int
    logical_name: Obis
    attribute_access: tuple[AttributeAccess, ...] = ()
    method_access: tuple[MethodAccess, ...] = ()

    @property
    def interface(self) -> InterfaceClass | None:
        """The class table of this exact version, or None if it is not declared."""
        return find_class(self.class_id, self.version)

    def attribute_mode(self, attribute_id: int) -> AccessMode:
        """Access to one attribute (``NO_ACCESS`` if the element does not list it)."""
        for item in self.attribute_access:
            if item.attribute_id == attribute_id:
                return item.mode
        return AccessMode.NO_ACCESS

    def method_mode(self, method_id: int) -> MethodAccessMode:
        """Access to one method (``NO_ACCESS`` if the element does not list it)."""
        for item in self.method_access:
            if item.method_id == method_id:
                return item.mode
        return MethodAccessMode.NO_ACCESS

    def to_data(self, *, association_version: int = 1) -> Data:
        """The ``object_list_element`` structure as an association of that version sends it."""
        attributes = Data.array(
            Data.structure(
                Data.integer(a.attribute_id),
                Data.enum(_attribute_code(a, association_version)),
                Data.null()
                if a.access_selectors is None
                else Data.array(Data.integer(s) for s in a.access_selectors),
            )
            for a in self.attribute_access
        )
        methods = Data.array(
            Data.structure(Data.integer(m.method_id), _method_code(m, association_version))
            for m in self.method_access
        )
        return Data.structure(
            Data.long_unsigned(self.class_id),
            Data.unsigned(self.version),
            Data.octet_string(self.logical_name.to_bytes()),
            Data.structure(attributes, methods),
        )


def _attribute_code(item: AttributeAccess, version: int) -> int:
    if version >= 3:
        return int(item.access_mode if isinstance(item.access_mode, AccessFlags) else item.mode.to_flags())
    return int(item.mode)


def _method_code(item: MethodAccess, version: int) -> Data:
    if version == 0:
        return Data.boolean(item.mode != MethodAccessMode.NO_ACCESS)
    if version >= 3:
        flags = item.access_mode if isinstance(item.access_mode, MethodAccessFlags) else item.mode.to_flags()
        return Data.enum(int(flags))
    return Data.enum(int(item.mode))


def _association(version: int) -> InterfaceClass:
    return lookup(15, version, exact=False)


def parse_object_list(data: Data, *, association_version: int = 1) -> list[ObjectListElement]:
    """Association LN attribute 2 as typed elements.

    ``association_version`` is the version of the Association LN object that sent the list
    (it decides how access modes are coded). Raises :class:`InputError` naming the element
    and member at fault.
    """
    ic = _association(association_version)
    where = f"{ic.name} v{association_version} attribute 2 object_list"
    ic.attribute(2).type.check(data, where)
    out: list[ObjectListElement] = []
    for n, element in enumerate(data.as_items()):
        class_id, version, name, rights = element.as_items()
        attribute_items, method_items = rights.as_items()
        attributes = []
        for item in attribute_items.as_items():
            attribute_id, mode, selectors = item.as_items()
            attributes.append(
                AttributeAccess(
                    attribute_id.as_int(),
                    _attribute_mode(mode.as_int(), association_version, f"{where}[{n}]"),
                    None
                    if selectors.type == DlmsType.NULL_DATA
                    else tuple(s.as_int() for s in selectors.as_items()),
                )
            )
        methods = []
        for item in method_items.as_items():
            method_id, mode = item.as_items()
            raw = int(bool(mode.value)) if mode.type == DlmsType.BOOLEAN else mode.as_int()
            methods.append(
                MethodAccess(method_id.as_int(), _method_mode(raw, association_version, f"{where}[{n}]"))
            )
        out.append(
            ObjectListElement(
                class_id.as_int(),
                version.as_int(),
                Obis.from_bytes(name.as_bytes()),
                tuple(attributes),
                tuple(methods),
            )
        )
    return out


def _attribute_mode(raw: int, version: int, where: str) -> AccessMode | AccessFlags:
    if version >= 3:
        return AccessFlags(raw)
    try:
        return AccessMode(raw)
    except ValueError:
        raise InputError(f"attribute access_mode {raw} is not an AccessMode (0..6)", where=where) from None


def _method_mode(raw: int, version: int, where: str) -> MethodAccessMode | MethodAccessFlags:
    if version >= 3:
        return MethodAccessFlags(raw)
    try:
        return MethodAccessMode(raw)
    except ValueError:
        raise InputError(f"method access_mode {raw} is not a MethodAccessMode (0..2)", where=where) from None


def object_list_to_data(elements: Iterable[ObjectListElement], *, association_version: int = 1) -> Data:
    """Association LN attribute 2 for these elements, coded for that association version."""
    return Data.array(e.to_data(association_version=association_version) for e in elements)


class SnObjectListElement(NamedTuple):
    """One ``objlist_element`` of Association SN: the base name addresses attribute 1
    (held as the 16-bit address 0..0xFFFF, whether the meter sent ``long`` or ``long-unsigned``)."""

    base_name: int
    class_id: int
    version: int
    logical_name: Obis

    def to_data(self) -> Data:
        """The ``objlist_element`` structure."""
        return Data.structure(
            Data.long(self.base_name - 0x10000 if self.base_name > 0x7FFF else self.base_name),
            Data.long_unsigned(self.class_id),
            Data.unsigned(self.version),
            Data.octet_string(self.logical_name.to_bytes()),
        )


def parse_sn_object_list(data: Data) -> list[SnObjectListElement]:
    """Association SN attribute 2 as typed elements (base names as 16-bit addresses)."""
    ArrayOf(SN_OBJECT_LIST_ELEMENT).check(data, "Association SN attribute 2 object_list")
    out = []
    for element in data.as_items():
        base, class_id, version, name = element.as_items()
        out.append(
            SnObjectListElement(
                base.as_int() & 0xFFFF, class_id.as_int(), version.as_int(), Obis.from_bytes(name.as_bytes())
            )
        )
    return out
