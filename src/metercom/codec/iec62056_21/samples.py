"""Sample IEC 62056-21 messages with provenance: test vectors and the simulator's default readout.

Rule: these bytes are facts from public sources (protocols.md 1.11), rebuilt here byte by byte
and checked against the published lengths and BCCs; tests pin them.

* :data:`SAMPLE_IDENTIFICATION` ``/LTT597705377`` from a published paper on optical-port
  reading (Z=5: mode C, up to 9600 Bd; upper-case third letter: t_r >= 200 ms).
* :data:`SAMPLE_READOUT`: the 5-line readout of the worked example, 112 bytes STX..BCC, BCC 0x74.
* :data:`SAMPLE_READOUT_FULL`: the fuller 19-line public sample of the same meter (a C# TCP
  test server, found via the string ``1.8.0(343642.9*kWh)``), 416 bytes STX..BCC, BCC 0x2D.
"""

from __future__ import annotations

from typing import Final

from metercom.codec.iec62056_21.messages import DataMessage, IdentificationMessage, RequestMessage

__all__ = [
    "SAMPLE_IDENTIFICATION",
    "SAMPLE_READOUT",
    "SAMPLE_READOUT_BYTES",
    "SAMPLE_READOUT_FULL",
    "SAMPLE_READOUT_FULL_BYTES",
    "SAMPLE_REQUEST",
]

#: ``/?1!\r\n``: the request of the worked example (device address ``1``).
SAMPLE_REQUEST: Final = RequestMessage("1")

#: ``/LTT597705377\r\n``.
SAMPLE_IDENTIFICATION: Final = IdentificationMessage("LTT", "5", "97705377")

_LINES: Final = (
    "0.0.0(EM72000656621)",  # meter number / owner id
    "0.9.1(172751)",  # local time 17:27:51
    "0.9.2(100209)",  # local date 2010-02-09
    "1.8.0(343642.9*kWh)",  # active energy import, total
    "1.6.0(18014*kW)(10-02-01 00:15)",  # maximum demand and its time
)
_MORE_LINES: Final = (
    "2.8.0(1958.9*kWh)",
    "3.8.0(120.7*kvarh)",
    "4.8.0(7068.5*kvarh)",
    "1.6.0(18014*kW)(10-02-01 00:15)",
    "2.6.0(0*kW)(10-02-01 00:15)",
    "3.6.0(186*kvar)(10-02-01 00:15)",
    "4.6.0(366*kvar)(10-02-01 00:15)",
    "1.2.0(275663*kW)",
    "2.2.0(2158*kW)",
    "3.2.0(54*kvar)",
    "4.2.0(5683*kvar)",
    "1.8.1(150967.3*kWh)",
    "1.8.2(104673.3*kWh)",
    "1.8.3(88002.3*kWh)",
    "2.8.1(1958.9*kWh)",
)

#: The 5-line readout of protocols.md 1.11.
SAMPLE_READOUT: Final = DataMessage("".join(f"{line}\r\n" for line in _LINES))
#: Its wire form: 112 bytes from STX through the BCC ``t`` (0x74).
SAMPLE_READOUT_BYTES: Final = SAMPLE_READOUT.to_bytes()

#: The 19-line readout (the first four lines of the 5-line one, then 2.8.0 ... 2.8.1).
SAMPLE_READOUT_FULL: Final = DataMessage("".join(f"{line}\r\n" for line in (*_LINES[:4], *_MORE_LINES)))
#: Its wire form: 416 bytes from STX through the BCC ``-`` (0x2D).
SAMPLE_READOUT_FULL_BYTES: Final = SAMPLE_READOUT_FULL.to_bytes()
