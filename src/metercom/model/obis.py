"""OBIS codes (IEC 62056-6-1): the six value groups ``A-B:C.D.E*F`` that name every quantity.

:meth:`Obis.parse` accepts every textual form met in the field (protocols.md section 3):

* full ``1-0:1.8.0*255``, with ``&`` as the F separator (``1.8.1&12``, L+G ZMD);
* dotted ``1.0.1.8.0.255`` (six groups, DLMS tools) and 12 hex digits ``0100010800FF``;
* reduced IEC 62056-21 forms ``1.8.0``, ``1.8.0*12``, ``1-0:1.8.0``, ``C.1.0``, ``F.F``,
  ``0.9.1``, and two-group Kamstrup codes ``1.20``;
* the letters ``C`` (96), ``F`` (97), ``L`` (98), ``P`` (99) in groups C, D and E.

Missing groups take the context defaults: A=1 (electricity), B=0, E=0, F=255. ``str()`` always
gives the full canonical form ``A-B:C.D.E*F``; :attr:`Obis.short` gives the reduced readout form.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from metercom.errors import InputError

__all__ = ["Obis"]

_LETTERS = {"C": 96, "F": 97, "L": 98, "P": 99}
_LETTER_OF = {v: k for k, v in _LETTERS.items()}
_GROUP = r"(\d{1,3}|[CFLPcflp])"
_REDUCED = re.compile(
    r"^(?:(?P<a>\d{1,3})-(?P<b>\d{1,3}):)?"
    rf"(?P<c>{_GROUP[1:-1]})\.(?P<d>{_GROUP[1:-1]})(?:\.(?P<e>{_GROUP[1:-1]}))?"
    r"(?:[*&](?P<f>\d{1,3}))?$"
)
_DOTTED6 = re.compile(r"^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$")
_HEX12 = re.compile(r"^[0-9A-Fa-f]{12}$")

# Names of exact codes (abstract objects and the most common electricity codes).
_EXACT_NAMES: dict[tuple[int, int, int, int, int, int], str] = {
    (0, 0, 1, 0, 0, 255): "Clock",
    (0, 0, 42, 0, 0, 255): "Logical device name",
    (0, 0, 40, 0, 0, 255): "Current association",
    (0, 0, 43, 1, 0, 255): "Invocation counter",
    (0, 0, 96, 1, 0, 255): "Meter serial number",
    (0, 0, 96, 1, 1, 255): "Manufacturer name",
    (0, 0, 96, 3, 10, 255): "Disconnect control",
    (0, 0, 17, 0, 0, 255): "Limiter",
    (0, 0, 15, 0, 0, 255): "Billing dates",
    (0, 0, 13, 0, 0, 255): "Activity calendar",
    (0, 0, 44, 0, 0, 255): "Image transfer",
    (0, 0, 25, 9, 0, 255): "Push setup",
    (0, 0, 0, 1, 0, 255): "Billing period counter",
    (0, 0, 99, 98, 0, 255): "Event log (voltage)",
    (1, 0, 0, 0, 0, 255): "Meter number",
    (1, 0, 0, 2, 0, 255): "Firmware version",
    (1, 0, 0, 8, 0, 255): "Demand integration period",
    (1, 0, 0, 8, 4, 255): "Profile capture period",
    (1, 0, 0, 9, 1, 255): "Local time",
    (1, 0, 0, 9, 2, 255): "Local date",
    (1, 0, 0, 1, 0, 255): "Billing period counter",
    (1, 0, 96, 1, 0, 255): "Serial number",
    (1, 0, 97, 97, 0, 255): "Error register",
    (1, 0, 99, 1, 0, 255): "Load profile",
    (1, 0, 99, 2, 0, 255): "Daily load profile",
    (1, 0, 98, 1, 0, 255): "Billing profile",
    (1, 0, 94, 91, 0, 255): "Instantaneous parameters profile",
}

_QUANTITY: dict[int, str] = {
    1: "Active energy import (+A)",
    2: "Active energy export (-A)",
    3: "Reactive energy import (+R)",
    4: "Reactive energy export (-R)",
    5: "Reactive energy QI",
    6: "Reactive energy QII",
    7: "Reactive energy QIII",
    8: "Reactive energy QIV",
    9: "Apparent energy import (+VA)",
    10: "Apparent energy export (-VA)",
    11: "Current",
    12: "Voltage",
    13: "Power factor",
    14: "Frequency",
    15: "Active energy absolute (|+A|+|-A|)",
    16: "Active energy net (+A-A)",
    21: "Active energy import L1",
    22: "Active energy export L1",
    23: "Reactive energy import L1",
    24: "Reactive energy export L1",
    29: "Apparent energy import L1",
    30: "Apparent energy export L1",
    31: "Current L1",
    32: "Voltage L1",
    33: "Power factor L1",
    36: "Active energy net L1",
    41: "Active energy import L2",
    42: "Active energy export L2",
    43: "Reactive energy import L2",
    44: "Reactive energy export L2",
    49: "Apparent energy import L2",
    50: "Apparent energy export L2",
    51: "Current L2",
    52: "Voltage L2",
    53: "Power factor L2",
    56: "Active energy net L2",
    61: "Active energy import L3",
    62: "Active energy export L3",
    63: "Reactive energy import L3",
    64: "Reactive energy export L3",
    69: "Apparent energy import L3",
    70: "Apparent energy export L3",
    71: "Current L3",
    72: "Voltage L3",
    73: "Power factor L3",
    76: "Active energy net L3",
    91: "Neutral current",
}

# Quantities whose value group C names energy; with D=7 they are powers, not energies.
_ENERGY_C = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 21, 22, 23, 24, 29, 30, 36, 41, 42, 43, 44}
_ENERGY_C |= {49, 50, 56, 61, 62, 63, 64, 69, 70, 76}

_PROCESSING: dict[int, str] = {
    0: "billing period average",
    2: "cumulative maximum",
    4: "current average",
    5: "last average",
    6: "maximum demand",
    7: "instantaneous",
    8: "total",
    9: "time integral 2",
    27: "average over capture period",
    29: "energy over capture period",
}


def _group(text: str | None, default: int, what: str, source: str) -> int:
    if text is None:
        return default
    upper = text.upper()
    if upper in _LETTERS:
        return _LETTERS[upper]
    value = int(text)
    if value > 255:
        raise InputError(f"OBIS value group {what} is {value}; each group must be 0..255 in {source!r}")
    return value


@dataclass(frozen=True, slots=True, order=True)
class Obis:
    """An OBIS code. Six value groups, each 0..255."""

    a: int
    b: int
    c: int
    d: int
    e: int
    f: int = 255

    DEFAULT_A: ClassVar[int] = 1
    DEFAULT_B: ClassVar[int] = 0

    def __post_init__(self) -> None:
        for name in ("a", "b", "c", "d", "e", "f"):
            value = getattr(self, name)
            if not isinstance(value, int) or not 0 <= value <= 255:
                raise InputError(f"OBIS value group {name.upper()} must be an integer 0..255, got {value!r}")

    @classmethod
    def parse(cls, text: str, *, default_a: int = DEFAULT_A, default_b: int = DEFAULT_B) -> Obis:
        """Parse any textual OBIS form; see the module docstring. Raises :class:`InputError`."""
        source = text
        text = text.strip()
        if (m := _DOTTED6.match(text)) is not None:
            groups = [int(g) for g in m.groups()]
            if any(g > 255 for g in groups):
                raise InputError(f"OBIS value groups must be 0..255 in {source!r}")
            return cls(*groups)
        if _HEX12.match(text):
            return cls.from_bytes(bytes.fromhex(text))
        m = _REDUCED.match(text)
        if m is None:
            raise InputError(
                f"not an OBIS code: {source!r} "
                "(expected forms like 1-0:1.8.0*255, 1.0.1.8.0.255, 1.8.0, C.1.0, F.F)"
            )
        return cls(
            _group(m["a"], default_a, "A", source),
            _group(m["b"], default_b, "B", source),
            _group(m["c"], 0, "C", source),
            _group(m["d"], 0, "D", source),
            _group(m["e"], 0, "E", source),
            _group(m["f"], 255, "F", source),
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Obis:
        """The six-byte logical name of DLMS/COSEM (``01 00 01 08 00 FF``)."""
        if len(data) != 6:
            raise InputError(f"an OBIS logical name has 6 bytes, got {len(data)}: {data.hex(' ')}")
        return cls(*data)

    def to_bytes(self) -> bytes:
        return bytes((self.a, self.b, self.c, self.d, self.e, self.f))

    def __str__(self) -> str:
        return f"{self.a}-{self.b}:{self.c}.{self.d}.{self.e}*{self.f}"

    @property
    def dotted(self) -> str:
        """The six-group dotted form, ``1.0.1.8.0.255``."""
        return f"{self.a}.{self.b}.{self.c}.{self.d}.{self.e}.{self.f}"

    @property
    def short(self) -> str:
        """The reduced IEC 62056-21 form: ``1.8.0``, ``1.8.0*12``, ``C.1.0``, ``F.F.0``."""
        c = _LETTER_OF.get(self.c, str(self.c))
        d = _LETTER_OF.get(self.d, str(self.d)) if self.c in _LETTER_OF else str(self.d)
        text = f"{c}.{d}.{self.e}"
        if self.f != 255:
            text += f"*{self.f}"
        if (self.a, self.b) != (self.DEFAULT_A, self.DEFAULT_B):
            text = f"{self.a}-{self.b}:{text}"
        return text

    @property
    def name(self) -> str | None:
        """A human name for common codes (``"Active energy import (+A) total"``), else ``None``."""
        exact = _EXACT_NAMES.get((self.a, self.b, self.c, self.d, self.e, self.f))
        if exact is not None:
            return exact
        if self.a != 1:
            return None
        quantity = _QUANTITY.get(self.c)
        processing = _PROCESSING.get(self.d)
        if quantity is None or processing is None:
            return None
        if self.c in _ENERGY_C and self.d in (4, 5, 6, 7, 2, 27):
            quantity = quantity.replace("energy", "power")
        text = f"{quantity} {processing}"
        if self.e and self.d in (2, 6, 8, 9, 29):
            text += f", tariff {self.e}"
        elif self.e and self.c in (11, 12, 31, 32, 51, 52, 71, 72) and self.d == 7:
            text += f", harmonic {self.e}"
        if self.f != 255:
            text += f", billing period {self.f}"
        return text
