"""Disconnect control (class 70): states, triggers and the transitions each control mode allows
(Blue Book 4.5.8, table "Disconnect control states and transitions").

Rule: the state machine is a table. :data:`TRANSITIONS` lists the Blue Book transitions a..h
(trigger, from-state, to-state); :data:`MODE_TRANSITIONS` lists which of them each control mode
enables. :func:`next_state` answers "what happens to this state on this trigger in this mode"
for the simulator, and a client uses the same table to predict the state it must read back
after a ``remote_disconnect``/``remote_reconnect`` (DESIGN.md: commands are confirmed by
reading back).

Transitions (Blue Book Ed. 12 table 25)::

    a  remote_reconnect   Disconnected (0)            -> Connected (1)
    b  remote_disconnect  Connected (1)               -> Disconnected (0)
    c  remote_disconnect  Ready_for_reconnection (2)  -> Disconnected (0)
    d  remote_reconnect   Disconnected (0)            -> Ready_for_reconnection (2)
    e  manual_reconnect   Ready_for_reconnection (2)  -> Connected (1)
    f  manual_disconnect  Connected (1)               -> Ready_for_reconnection (2)
    g  local_disconnect   Connected (1)               -> Ready_for_reconnection (2)
    h  local_reconnect    Ready_for_reconnection (2)  -> Connected (1)

Modes: 0 none (always connected); 1 b c f g d e; 2 b c f g a e; 3 b c g d e; 4 b c g a e;
5 b c f g d e h; 6 b c g d e h. A trigger with no enabled transition from the current state
leaves the state unchanged (the method still succeeds, as meters do).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

from metercom.model.cosem.enums import ControlMode, ControlState

__all__ = [
    "MODE_TRANSITIONS",
    "TRANSITIONS",
    "DisconnectTrigger",
    "Transition",
    "next_state",
    "output_state",
]


class DisconnectTrigger(enum.Enum):
    """What asks the disconnector to move."""

    REMOTE_DISCONNECT = "remote_disconnect"  # method 1
    REMOTE_RECONNECT = "remote_reconnect"  # method 2
    MANUAL_DISCONNECT = "manual_disconnect"  # push button
    MANUAL_RECONNECT = "manual_reconnect"
    LOCAL_DISCONNECT = "local_disconnect"  # limiter, prepayment...
    LOCAL_RECONNECT = "local_reconnect"


class Transition(NamedTuple):
    """One Blue Book transition."""

    name: str
    trigger: DisconnectTrigger
    source: ControlState
    target: ControlState


_D, _C, _R = ControlState.DISCONNECTED, ControlState.CONNECTED, ControlState.READY_FOR_RECONNECTION
_T = DisconnectTrigger

#: The transitions a..h.
TRANSITIONS: Mapping[str, Transition] = MappingProxyType(
    {
        t.name: t
        for t in (
            Transition("a", _T.REMOTE_RECONNECT, _D, _C),
            Transition("b", _T.REMOTE_DISCONNECT, _C, _D),
            Transition("c", _T.REMOTE_DISCONNECT, _R, _D),
            Transition("d", _T.REMOTE_RECONNECT, _D, _R),
            Transition("e", _T.MANUAL_RECONNECT, _R, _C),
            Transition("f", _T.MANUAL_DISCONNECT, _C, _R),
            Transition("g", _T.LOCAL_DISCONNECT, _C, _R),
            Transition("h", _T.LOCAL_RECONNECT, _R, _C),
        )
    }
)

#: Which transitions each control mode enables.
MODE_TRANSITIONS: Mapping[ControlMode, frozenset[str]] = MappingProxyType(
    {
        ControlMode.NONE: frozenset(),
        ControlMode.MODE_1: frozenset("bcfgde"),
        ControlMode.MODE_2: frozenset("bcfgae"),
        ControlMode.MODE_3: frozenset("bcgde"),
        ControlMode.MODE_4: frozenset("bcgae"),
        ControlMode.MODE_5: frozenset("bcfgdeh"),
        ControlMode.MODE_6: frozenset("bcgdeh"),
    }
)


def next_state(
    mode: ControlMode | int, state: ControlState | int, trigger: DisconnectTrigger
) -> ControlState:
    """The state after ``trigger`` in ``mode`` (unchanged when no enabled transition applies).

    Mode 0 keeps the object connected whatever happens. Modes outside 0..6 (manufacturer
    specific) enable no transition.
    """
    state = ControlState(state)
    try:
        mode = ControlMode(mode)
    except ValueError:
        return state
    if mode == ControlMode.NONE:
        return ControlState.CONNECTED
    for name in sorted(MODE_TRANSITIONS[mode]):
        transition = TRANSITIONS[name]
        if transition.trigger == trigger and transition.source == state:
            return transition.target
    return state


def output_state(state: ControlState | int) -> bool:
    """Attribute 2 ``output_state`` for a control state: TRUE only when connected."""
    return ControlState(state) == ControlState.CONNECTED
