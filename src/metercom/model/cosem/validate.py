"""Validation of attribute values and method parameters against the class tables.

Rule: one entry point per direction: :func:`check_value` for an attribute value (what GET
returns or SET sends), :func:`check_parameter` for a method parameter (ACTION). Both raise
:class:`~metercom.errors.InputError` whose ``where`` names the class, attribute and member
path at fault, e.g. ``Profile generic v1 attribute 3 capture_objects[2].logical_name:
expected octet-string(6) (logical-name), got 5 bytes``.

Theory of operation: the attribute is found by index or name in the table of the requested
version (newest declared version if none is given), then the attribute's type description
checks the value recursively (:mod:`.types`). Nothing is converted; interpretation helpers
(:mod:`.registers`, :mod:`.clock`, ...) call these checks first so they can rely on shapes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeAlias

from metercom.errors import InputError
from metercom.model.cosem.classes import lookup
from metercom.model.cosem.types import AttributeSpec, InterfaceClass, MethodSpec
from metercom.model.dlms_data import Data

__all__ = [
    "AttributeValues",
    "attribute_spec",
    "check_attributes",
    "check_parameter",
    "check_value",
    "method_spec",
]

#: Attribute values keyed by attribute index or name (``{2: data}``, ``{"time": data}``).
AttributeValues: TypeAlias = Mapping[int, Data] | Mapping[str, Data] | Mapping[int | str, Data]


def attribute_spec(class_id: int, attribute: int | str, *, version: int | None = None) -> AttributeSpec:
    """The table entry of one attribute; raises :class:`InputError` if class or attribute is unknown."""
    return lookup(class_id, version).attribute(attribute)


def method_spec(class_id: int, method: int | str, *, version: int | None = None) -> MethodSpec:
    """The table entry of one method; raises :class:`InputError` if class or method is unknown."""
    return lookup(class_id, version).method(method)


def check_value(class_id: int, attribute: int | str, data: Data, *, version: int | None = None) -> None:
    """Check that ``data`` fits attribute ``attribute`` of class ``class_id``.

    Raises :class:`InputError` naming the attribute and the member path at fault.
    """
    ic = lookup(class_id, version)
    spec = ic.attribute(attribute)
    spec.type.check(data, f"{ic.name} v{ic.version} attribute {spec.index} {spec.name}")


def check_parameter(class_id: int, method: int | str, data: Data, *, version: int | None = None) -> None:
    """Check that ``data`` fits the parameter of method ``method`` of class ``class_id``."""
    ic = lookup(class_id, version)
    spec = ic.method(method)
    where = f"{ic.name} v{ic.version} method {spec.index} {spec.name}"
    if spec.reserved:
        raise InputError("this method index is reserved from previous versions", where=where)
    spec.parameter.check(data, where)


def check_attributes(ic: InterfaceClass, values: AttributeValues) -> dict[int, Data]:
    """Check several attribute values of one class (keyed by index or name); return them by index."""
    checked: dict[int, Data] = {}
    for key, data in values.items():
        if not ic.has_attribute(key):
            raise InputError(f"{ic} has no attribute {key!r}")
        spec = ic.attribute(key)
        spec.type.check(data, f"{ic.name} v{ic.version} attribute {spec.index} {spec.name}")
        checked[spec.index] = data
    return checked
