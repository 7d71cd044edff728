"""Shared vocabulary of the sans-I/O state machines: roles and the NEED_DATA sentinel."""

from __future__ import annotations

import enum
from typing import Final

__all__ = ["NEED_DATA", "NeedData", "Role"]


class Role(enum.Enum):
    """Which side a state machine plays. The simulator is the same codec in the SERVER role."""

    CLIENT = "client"  # the reader: HHU, head-end, DLMS client, Modbus master
    SERVER = "server"  # the meter: tariff device, DLMS server, Modbus slave


class NeedData(enum.Enum):
    """Type of :data:`NEED_DATA`: ``next_event()`` has nothing complete to return yet."""

    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = NeedData.NEED_DATA
