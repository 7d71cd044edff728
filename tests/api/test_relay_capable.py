"""``relay_capable`` (the dashboard offers disconnect/reconnect only where it is true): what the
configuration shows comes from :func:`metercom.service.config_profiles.switches_supply`, the
same source the validator refuses supply rules and prepaid accounts with; for a DLMS meter with
a device profile it decides by the association of the meter's client address. The runtime
evidence (disconnect control read or switched, a prepaid account, the quirk) decides only where
the configuration cannot tell (no profile)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

import pytest

from metercom.api.views import relay_capable
from metercom.service.config import parse_config
from metercom.service.config_model import MeterConfig
from metercom.service.config_profiles import supply_problem, switches_supply

FLEET = """\
[[lines]]
id = "bus"
url = "serial:///dev/ttyUSB0"
type = "rs485"

[[meters]]
id = "dl"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 17 }
device_profile = "generic"

[[meters]]
id = "dq"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 18 }
device_profile = "generic"
quirks = { disconnect_control = "0-0:96.3.10*255" }

[[meters]]
id = "dx"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 19 }

[[meters]]
id = "dn"
protocol = "dlms"
line = "bus"
address = { client = 1, physical = 20 }
device_profile = "generic"
quirks = { disconnect_control = "0-0:96.3.11*255" }

[[meters]]
id = "dp"
protocol = "dlms"
line = "bus"
address = { client = 16, physical = 21 }
device_profile = "generic"

[[meters]]
id = "ir"
protocol = "dlms"
line = "bus"
address = { client = 32, physical = 22 }
device_profile = "india"

[[meters]]
id = "iu"
protocol = "dlms"
line = "bus"
address = { client = 48, physical = 23 }
device_profile = "india"

[[meters]]
id = "i7"
protocol = "dlms"
line = "bus"
address = { client = 7, physical = 24 }
device_profile = "india"

[[meters]]
id = "ie"
protocol = "iec21"
line = "bus"
address = { device = "7" }

[[meters]]
id = "pz"
protocol = "modbus"
line = "bus"
address = { unit = 3 }
device_profile = "pzem004t"

[[meters]]
id = "pm"
protocol = "modbus"
line = "bus"
address = { unit = 4 }
device_profile = "pmtr3"
"""


def _meters(text: str = FLEET) -> dict[str, MeterConfig]:
    return {m.id: m for m in parse_config(text).meters}


#: meter -> (what the configuration shows, relay_capable without evidence, ... with evidence)
CASES = {
    "ie": (False, False, False),  # IEC 62056-21: no remote disconnect, whatever was seen
    "pz": (False, False, False),  # register map without a load relay
    "pm": (True, True, True),  # register map with a load relay: no evidence needed
    "dn": (False, False, False),  # the quirk names an object that is no Disconnect control
    "dl": (True, True, True),  # generic, client 1: the management association may switch
    "dq": (True, True, True),  # ... also where the quirk names that disconnect control
    "iu": (True, True, True),  # india, client 48: the utility association may switch
    "dp": (False, False, False),  # generic, client 16: the public association may not
    "ir": (False, False, False),  # india, client 32: the reader association reads only
    "i7": (False, False, False),  # india, client 7: no such association
    "dx": (None, False, True),  # no profile: only the meter tells
}


@pytest.mark.parametrize("meter_id", sorted(CASES))
def test_relay_capable_follows_the_configuration_then_the_evidence(meter_id: str) -> None:
    meter = _meters()[meter_id]
    known, bare, seen = CASES[meter_id]
    assert switches_supply(meter) is known
    assert (supply_problem(meter) is not None) is (known is False)
    assert relay_capable(meter, relay_seen=False, prepaid=False) is bare
    assert relay_capable(meter, relay_seen=True, prepaid=False) is seen
    assert relay_capable(meter, relay_seen=False, prepaid=True) is seen


def test_profile_files_are_read_again_when_they_change(tmp_path: Path) -> None:
    """Profile files are read as the validator reads them, from a cache that a changed file
    misses: one path holding a register map with, then without, a load relay; a DLMS object list
    with, then without, its disconnect control."""
    modbus = resources.files("metercom.model.profiles.modbus")
    mine = tmp_path / "my-meter.toml"
    for name, capable in (("pmtr3", True), ("pzem004t", False), ("pmtr3", True)):
        mine.write_text((modbus / f"{name}.toml").read_text(encoding="utf-8"), encoding="utf-8")
        meter = _meters(FLEET.replace('device_profile = "pmtr3"', f'device_profile = "{mine}"'))["pm"]
        assert relay_capable(meter, relay_seen=False, prepaid=False) is capable, name
        assert switches_supply(meter) is capable, name

    generic = (resources.files("metercom.model.profiles") / "generic.toml").read_text(encoding="utf-8")
    blocks = generic.split("\n[[objects]]\n")
    without = "\n[[objects]]\n".join(b for b in blocks if '"0.0.96.3.10.255"' not in b)
    objects = tmp_path / "objects.toml"
    objects.write_text(generic, encoding="utf-8")
    meter = _meters(FLEET.replace('"generic"\n\n', f'"{objects}"\n\n', 1))["dl"]
    assert meter.device_profile == str(objects)
    assert switches_supply(meter) is True
    assert relay_capable(meter, relay_seen=False, prepaid=False)
    objects.write_text(without, encoding="utf-8")
    assert switches_supply(meter) is False
    assert not relay_capable(meter, relay_seen=True, prepaid=True)
