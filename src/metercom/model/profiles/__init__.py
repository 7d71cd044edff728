"""Device profiles: a meter's object list, values and access rights as data (TOML or JSON).

Rule (DESIGN.md section 3): a device profile is data, not code. It is validated as a whole
against the COSEM class tables (:mod:`metercom.model.cosem`) when loaded, and both the
simulator (what to serve) and tests/clients (what to expect) use the same validated
:class:`DeviceProfile`. Bundled profiles live next to this module as package data:
``generic`` (a generic European three-phase meter) and ``india`` (the IS 15959 single-phase
smart-meter object set).

File format (TOML shown; JSON has the same structure, with ISO 8601 text for dates)::

    [profile]
    name = "generic"
    description = "..."
    standard = "..."                     # optional

    [[associations]]
    name = "public"                      # the key used in access tables
    logical_name = "0.0.40.0.1.255"      # its Association LN object, listed in [[objects]]
    client_sap = 16
    authentication = "none"              # none | low | high | high-md5 | high-sha1 |
                                         # high-gmac | high-sha256 | high-ecdsa
    default_access = "none"              # preset for objects that do not name this association

    [[objects]]
    logical_name = "1.0.32.7.0.255"      # any form Obis.parse accepts
    class_id = 3
    version = 0
    name = "Voltage L1"                  # optional (default: the OBIS name)
    scaler = -1                          # classes with a scaler_unit (3, 4, 5): required
    unit = "V"                           # symbol ("Wh", "var"), Unit name or code
    attributes = { value = { type = "long-unsigned", source = "load:voltage_l1" } }
    access = { public = "read", utility = { base = "read", attributes = { value = "read-and-write" } } }

Attribute values (keys are the Blue Book attribute names of the class table; the
logical name is never repeated there):

* integers, booleans, floats, text: TOML values, checked against the attribute's type;
  enumerations also by name (``sort_method = "fifo"``, ``control_mode = 2``);
* octet-string: text (its UTF-8 bytes) or ``{ hex = "4D5443" }``; logical names as OBIS text;
  date-time as a TOML offset date-time, ISO 8601 text, ``"unspecified"``, or a field table
  whose missing fields are "not specified" (``{ month = 3, day = 254, day_of_week = 7,
  hour = 2, minute = 0, second = 0, hundredths = 0 }`` = last Sunday of March, 02:00);
  date and time alike (TOML local date / local time);
* structure: a list in member order or a table by member name; array: a list;
* instance-specific CHOICE (Data value, register value, thresholds): an explicit type,
  ``{ type = "long-unsigned", value = 2300 }``; containers as
  ``{ type = "structure", value = [ { type = ..., value = ... }, ... ] }``;
* a value driven by the simulator: ``{ source = "load:voltage_l1" }`` plus ``type`` when the
  attribute is a CHOICE and an optional initial ``value``. The vocabulary is in
  :mod:`.sources`.

Access (per association): a preset or a table.

* ``"none"``: the object is not in that association's object list;
* ``"read"``: every attribute read-only, no method;
* ``"read-write"``: every attribute read-and-write (logical_name read-only), no method;
* ``"default"``: the class table's ``default_access`` per attribute (configuration
  read-and-write, measurements read-only, secrets write-only), every method;
* ``"full"``: read-write and every method;
* ``{ base = "<preset>", attributes = { <name> = "<mode>" }, methods = { <name> = "<mode>" } }``
  with attribute modes ``no-access``, ``read-only``, ``write-only``, ``read-and-write``,
  ``authenticated-read-only``, ``authenticated-write-only``, ``authenticated-read-and-write``
  and method modes ``no-access``, ``access``, ``authenticated-access``.

Associations are listed by their own instances (``0.0.40.0.1.255``...); a request for
``0.0.40.0.0.255`` ("current association") is answered from the instance of the association
in use. Secrets (LLS passwords, HLS keys) are not part of a device profile; the simulator's
configuration supplies them. The ``modbus/`` directory next to this module belongs to
:mod:`metercom.model.modbus_profile` (register maps), not to this loader.
"""

from __future__ import annotations

from metercom.model.profiles.loader import (
    ACCESS_PRESETS,
    AssociationSpec,
    AttributeValue,
    DeviceProfile,
    ObjectAccess,
    ObjectEntry,
    ProfileProblem,
    available_profiles,
    check_profile,
    load_profile,
    parse_profile,
)
from metercom.model.profiles.sources import SOURCE_KINDS, describe_source, is_valid_source

__all__ = [
    "ACCESS_PRESETS",
    "SOURCE_KINDS",
    "AssociationSpec",
    "AttributeValue",
    "DeviceProfile",
    "ObjectAccess",
    "ObjectEntry",
    "ProfileProblem",
    "available_profiles",
    "check_profile",
    "describe_source",
    "is_valid_source",
    "load_profile",
    "parse_profile",
]
