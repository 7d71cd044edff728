"""Device profiles as the fleet configuration sees them: which exist, who needs one, who can switch.

Rule: a meter's ``device_profile`` is checked when the configuration is validated, against the
profiles metercom can actually load for the meter's protocol, never later when the meter is
read. What exists, per protocol:

* DLMS: the bundled object lists (:func:`metercom.model.profiles.available_profiles`:
  ``generic``, ``india``) or an object-list file (a path ending in ``.toml`` or ``.json``, as
  ``metercom simulate dlms --profile FILE`` exports it; loaded and validated now). Optional: the
  DLMS adapter reads any meter without one; a profile tells the validator which objects the
  meter has (its disconnect control).
* Modbus: the bundled register maps (:func:`metercom.model.modbus_profile.profile_names`:
  ``pzem004t``, ``pmtr3``) or a register-map file (a path ending in ``.toml``, loaded now).
  Required: a Modbus meter cannot be read without its register map.
* IEC 62056-21: none. The readout names its own registers, the adapter uses no profile, so a
  ``device_profile`` there is refused rather than silently ignored.

Supply switching (rule targets ``supply``/``relay1``, and the meters of prepaid accounts:
prepaid cuts the supply at zero credit): IEC 62056-21 meters have no remote
switching; a Modbus meter switches when its register map has a load relay; a DLMS meter when
its profile has a Disconnect control object (class 70) at ``0-0:96.3.10*255``, or at the object
its quirk ``disconnect_control`` names, and the association the meter is read through may
invoke that object's ``remote_disconnect`` and ``remote_reconnect`` methods. That association is
the profile's association with the meter's client address (``address.client``). A client
address that matches no association of the profile cannot switch either (the meter refuses
that client: the simulator does); it is refused only where switching is needed, not for
reading, because the client addresses of a bundled profile can be assumptions (``india``) and
a real meter may have more associations than its profile lists.
A DLMS meter without a device profile is not refused: nothing says it has no disconnect control.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from functools import cache, lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Final

from metercom.errors import InputError, MetercomError
from metercom.model.cosem.types import MethodAccessMode
from metercom.model.modbus_profile import ModbusProfile, load_modbus_profile, profile_names
from metercom.model.obis import Obis
from metercom.model.profiles import AssociationSpec, DeviceProfile, available_profiles, load_profile
from metercom.service.config_model import DlmsAddress, MeterConfig, Protocol

__all__ = [
    "DISCONNECT_CONTROL",
    "PROFILE_REQUIRED",
    "installed_profiles",
    "modbus_profile",
    "profile_problem",
    "supply_problem",
    "switches_supply",
]

#: The DLMS Disconnect control object (class 70) the adapter switches by default.
DISCONNECT_CONTROL: Final = Obis(0, 0, 96, 3, 10, 255)
_DISCONNECT_CLASS: Final = 70
#: The Disconnect control methods switching needs: remote_disconnect (1), remote_reconnect (2).
_SWITCH_METHODS: Final = (1, 2)
#: Protocols whose meters cannot be read without a device profile.
PROFILE_REQUIRED: Final = frozenset({Protocol.MODBUS})
_NAMES: Final = {Protocol.DLMS: "DLMS", Protocol.MODBUS: "Modbus", Protocol.IEC21: "IEC 62056-21"}


@cache
def installed_profiles() -> Mapping[Protocol, frozenset[str]]:
    """The device profile names metercom ships, per protocol (IEC 62056-21: none)."""
    return MappingProxyType(
        {
            Protocol.DLMS: frozenset(available_profiles()),
            Protocol.MODBUS: frozenset(profile_names()),
            Protocol.IEC21: frozenset(),
        }
    )


_FILE_SUFFIXES: Final = {Protocol.DLMS: (".toml", ".json"), Protocol.MODBUS: (".toml",)}


def _is_file(protocol: Protocol, name: str) -> bool:
    return name.endswith(_FILE_SUFFIXES.get(protocol, ()))


def profile_problem(protocol: Protocol, name: str | None) -> str | None:
    """What is wrong with a meter's ``device_profile`` (``None`` when absent), or None."""
    kind = _NAMES[protocol]
    known = sorted(installed_profiles()[protocol])
    if name is None:
        if protocol in PROFILE_REQUIRED:
            return (
                f"missing 'device_profile': a {kind} meter is read through its device profile "
                f"(known: {', '.join(known)})"
            )
        return None
    if not known:
        return (
            f"{kind} meters have no device profiles (the meter's readout names its own registers); "
            "remove device_profile"
        )
    if _is_file(protocol, name):
        try:
            if protocol is Protocol.MODBUS:
                _modbus_file(name)
            else:
                _dlms_profile(name)
        except MetercomError as exc:
            return f"cannot load the {kind} device profile file {name!r}: {exc}"
        return None
    if name in known:
        return None
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    files = {
        Protocol.MODBUS: " or a register-map file (*.toml)",
        Protocol.DLMS: " or a profile file (*.toml, *.json)",
    }[protocol]
    return f"unknown {kind} device profile {name!r}{hint}; known: {', '.join(known)}{files}"


def _dlms_profile(name: str) -> DeviceProfile:
    """A DLMS profile by name (bundled, cached) or a file (read again when it has changed)."""
    if not _is_file(Protocol.DLMS, name):
        return _bundled_dlms(name)
    version = _file_version(name)
    return load_profile(Path(name)) if version is None else _dlms_file(name, version)


def _modbus_file(name: str) -> ModbusProfile:
    """A Modbus register-map file (read again when it has changed)."""
    version = _file_version(name)
    return load_modbus_profile(Path(name)) if version is None else _modbus_file_at(name, version)


def _file_version(name: str) -> tuple[int, int] | None:
    """A profile file's modification time and size (the key of the caches below), or None when
    it cannot be seen: the loader then reports why."""
    try:
        stat = Path(name).stat()
    except OSError:
        return None
    return stat.st_mtime_ns, stat.st_size


@cache
def _bundled_dlms(name: str) -> DeviceProfile:
    return load_profile(name)


@lru_cache(maxsize=64)
def _dlms_file(name: str, _version: tuple[int, int]) -> DeviceProfile:
    return load_profile(Path(name))


@lru_cache(maxsize=64)
def _modbus_file_at(name: str, _version: tuple[int, int]) -> ModbusProfile:
    return load_modbus_profile(Path(name))


def modbus_profile(meter: MeterConfig) -> ModbusProfile | None:
    """The register map of a Modbus meter, or None (not Modbus, or its profile is reported)."""
    if meter.protocol is not Protocol.MODBUS or not meter.device_profile:
        return None
    name = meter.device_profile
    try:
        return _modbus_file(name) if _is_file(Protocol.MODBUS, name) else load_modbus_profile(name)
    except MetercomError:
        return None  # reported with the meter (or, for a file gone since, when it is read)


def _dlms_association(meter: MeterConfig) -> tuple[DeviceProfile, AssociationSpec | None] | None:
    """A DLMS meter's loadable device profile and its association with the meter's client
    address (None when none matches), or None (no DLMS meter, no profile, or a profile problem
    reported with the meter)."""
    name = meter.device_profile
    if meter.protocol is not Protocol.DLMS or name is None or not isinstance(meter.address, DlmsAddress):
        return None
    if profile_problem(Protocol.DLMS, name) is not None:
        return None
    try:
        profile = _dlms_profile(name)
    except MetercomError:
        return None  # as in modbus_profile
    client = meter.address.client
    return profile, next((a for a in profile.associations if a.client_sap == client), None)


def _associations(profile: DeviceProfile) -> str:
    return ", ".join(f"{a.name!r} (client {a.client_sap})" for a in profile.associations)


def _may_switch(profile: DeviceProfile, obis: Obis, association: AssociationSpec) -> bool:
    entry = profile.find(obis)
    access = entry.access.get(association.name) if entry is not None else None
    return access is not None and all(
        access.method(index) is not MethodAccessMode.NO_ACCESS for index in _SWITCH_METHODS
    )


def supply_problem(meter: MeterConfig) -> str | None:
    """Why ``meter`` cannot switch its supply relay, or None when it can (or may: see the
    module docstring). A problem with the device profile itself is reported with the meter."""
    label = f"meter {meter.id!r} ({meter.device_profile or _NAMES[meter.protocol]})"
    if meter.protocol is Protocol.IEC21:
        return f"{label} cannot switch its supply: IEC 62056-21 meters have no remote disconnect"
    if meter.protocol is Protocol.MODBUS:
        modbus = modbus_profile(meter)
        if modbus is not None and (modbus.relays is None or modbus.relays.load_relay is None):
            return f"{label} cannot switch its supply: its register map has no load relay"
        return None
    found = _dlms_association(meter)
    if found is None:
        return None
    profile, association = found
    where = meter.quirks.get("disconnect_control")
    try:
        obis = Obis.parse(str(where)) if where else DISCONNECT_CONTROL
    except InputError:
        return None  # the adapter reports a bad quirk when it opens the meter
    entry = profile.find(obis)
    if entry is None or entry.class_id != _DISCONNECT_CLASS:
        return (
            f"{label} cannot switch its supply: device profile {meter.device_profile!r} has no "
            f"Disconnect control (class 70) at {obis}"
        )
    if association is None:
        client = meter.address.client if isinstance(meter.address, DlmsAddress) else None
        return (
            f"{label} cannot switch its supply: its client address {client} matches no association "
            f"of device profile {meter.device_profile!r} (it has {_associations(profile)})"
        )
    if _may_switch(profile, obis, association):
        return None
    able = [a for a in profile.associations if _may_switch(profile, obis, a)]
    hint = (
        "; " + ", ".join(f"association {a.name!r} (client {a.client_sap})" for a in able) + " may"
        if able
        else "; no association of the profile may"
    )
    return (
        f"{label} cannot switch its supply: its association {association.name!r} "
        f"(client {association.client_sap}) may not invoke remote_disconnect/remote_reconnect of "
        f"the Disconnect control at {obis}{hint}"
    )


def switches_supply(meter: MeterConfig) -> bool | None:
    """Whether the configuration shows that ``meter`` can switch its supply relay: False when it
    cannot (:func:`supply_problem`), True for a Modbus meter whose register map has a load relay
    and a DLMS meter whose association (by client address) may invoke its profile's Disconnect
    control methods, None when only the meter can tell: a DLMS meter without a device profile, a
    meter whose device profile cannot be loaded, or a ``disconnect_control`` quirk that is no
    OBIS code."""
    if supply_problem(meter) is not None:
        return False
    if meter.protocol is Protocol.MODBUS:
        return True if modbus_profile(meter) is not None else None
    if _dlms_association(meter) is None:
        return None
    where = meter.quirks.get("disconnect_control")
    if where:
        try:
            Obis.parse(str(where))
        except InputError:
            return None  # the adapter reports a bad quirk when it opens the meter
    return True
