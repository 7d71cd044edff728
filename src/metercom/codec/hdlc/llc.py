"""LLC sublayer of the DLMS HDLC profile: the three bytes in front of every APDU.

Rule (IEC 62056-46:2002+A1:2006 clause 5 "LLC sublayer"; Green Book clause 8.4.4): the
information field of an I or UI frame starts with destination LSAP 0xE6, source LSAP 0xE6
(command, client to server) or 0xE7 (response, server to client), and the LLC quality byte
0x00. When an APDU is segmented over several frames, the header is sent once, at the start
of the first segment.

Theory of operation: :func:`add_llc_header` prefixes the header for the sending role;
:func:`strip_llc_header` removes it from a reassembled information field. It insists on the
destination LSAP 0xE6 and a source LSAP of 0xE6 or 0xE7 but does not insist on the direction
(some meters answer with E6 E6 00) nor on the quality byte, which carries nothing.
"""

from __future__ import annotations

from typing import Final

from metercom.codec.base import Role
from metercom.errors import RemoteProtocolError

__all__ = ["LLC_REQUEST", "LLC_RESPONSE", "add_llc_header", "strip_llc_header"]

_LAYER = "hdlc-llc"

#: LLC header of a command (client to server): E6 E6 00.
LLC_REQUEST: Final = b"\xe6\xe6\x00"
#: LLC header of a response (server to client): E6 E7 00.
LLC_RESPONSE: Final = b"\xe6\xe7\x00"


def add_llc_header(apdu: bytes, role: Role) -> bytes:
    """Prefix ``apdu`` with the LLC header a station in ``role`` sends."""
    return (LLC_REQUEST if role is Role.CLIENT else LLC_RESPONSE) + apdu


def strip_llc_header(information: bytes) -> bytes:
    """Return the APDU after the LLC header; raise :class:`RemoteProtocolError` if there is none."""
    if len(information) < 3 or information[0] != 0xE6 or information[1] not in (0xE6, 0xE7):
        raise RemoteProtocolError(
            "information field does not start with an LLC header (E6 E6 00 or E6 E7 00)",
            layer=_LAYER,
            data=information[:16],
        )
    return information[3:]
