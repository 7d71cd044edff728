"""Session layer (DESIGN.md section 1): thin async shells that drive a codec state machine over a transport.

Rule: a session is the only loop that awaits for its protocol. It imports ``codec``, ``model``,
``transport``, ``errors`` and ``clock`` only, waits through asyncio on the event loop's clock
(virtual in tests), and turns codec outcomes into the error tree (``TransportTimeout``,
``FrameError``, ``DeviceRejectedError``, ``AuthenticationError``).

* :mod:`metercom.session.iec21`: :class:`Iec21Session` (IEC 62056-21 readout, programming mode,
  mode E hand-over to HDLC).
"""

from __future__ import annotations

from metercom.session.iec21 import (
    Iec21Answer,
    Iec21Programming,
    Iec21Readout,
    Iec21Session,
    readings_from_datasets,
)

__all__ = [
    "Iec21Answer",
    "Iec21Programming",
    "Iec21Readout",
    "Iec21Session",
    "readings_from_datasets",
]
