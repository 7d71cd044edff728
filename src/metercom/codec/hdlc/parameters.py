"""HDLC parameter negotiation: the information field of SNRM and UA frames.

Rule (IEC 62056-46:2002+A1:2006 clause 6.4.4.4.3.2; Green Book clause 8.4.5.3)::

    81 (format identifier) 80 (group identifier) LL (group length)
      05 n v..  maximum information field length, transmit   (n = 1 or 2 bytes; 4 tolerated)
      06 n v..  maximum information field length, receive
      07 n v..  window size, transmit                         (n = 1, 2 or 4 bytes; usually 4)
      08 n v..  window size, receive

Values are stated from the sender's point of view: in the SNRM the client says what it will
send and can receive, in the UA the server answers with *its* values, each no larger than what
the client proposed for the opposite direction. A parameter that is absent takes its default:
128 bytes and a window of 1. A UA without information field means all defaults (the Pietro
Fiorentini local port does this). Information lengths range 32..2030 and windows 1..7.

Theory of operation. :class:`HdlcParameters` holds the four values; :meth:`~HdlcParameters.from_bytes`
decodes a parameter group, :meth:`~HdlcParameters.to_bytes` encodes one (information lengths in
1 byte when they fit, else 2; windows in 4 bytes, as the Green Book examples do; a decoded
object remembers the widths it was received with so it re-encodes byte for byte).
:meth:`~HdlcParameters.negotiate` is the server's rule, :meth:`~HdlcParameters.as_seen_by_peer`
swaps transmit and receive.

Tolerance (``strict=False``, the default), for peers that are wrong in known ways:

* gurux-dlms 1.0.203 servers write the group length with swapped arguments: the group length
  byte is 0 and the byte at offset ``group length`` of the field is overwritten with 2, which
  turns window size receive 00000001 into 00020001. Recognised by a zero group length with
  parameters after it; the group then runs to the end of the field and the clobbered byte is
  restored to 0 (see the NEGATIVE vector "malformed UA from gurux-dlms 1.0.203 server").
* values above the allowed range are lowered to the maximum (2030 bytes, window 7): using a
  smaller value than the peer offered is always safe. Values below the range (window 0, an
  information length under 32) are refused, because raising them could overrun the peer.
* unknown parameter identifiers inside the group are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final

from metercom.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "DEFAULT_MAX_INFO_LENGTH",
    "DEFAULT_WINDOW_SIZE",
    "MAX_INFO_LENGTH",
    "MAX_WINDOW_SIZE",
    "MIN_INFO_LENGTH",
    "HdlcParameters",
]

_LAYER = "hdlc"

FORMAT_IDENTIFIER: Final = 0x81
GROUP_IDENTIFIER: Final = 0x80
MAX_INFO_TRANSMIT: Final = 0x05
MAX_INFO_RECEIVE: Final = 0x06
WINDOW_TRANSMIT: Final = 0x07
WINDOW_RECEIVE: Final = 0x08

DEFAULT_MAX_INFO_LENGTH: Final = 128
DEFAULT_WINDOW_SIZE: Final = 1
MIN_INFO_LENGTH: Final = 32
MAX_INFO_LENGTH: Final = 2030
MAX_WINDOW_SIZE: Final = 7

_IDS: Final = (MAX_INFO_TRANSMIT, MAX_INFO_RECEIVE, WINDOW_TRANSMIT, WINDOW_RECEIVE)


@dataclass(frozen=True, slots=True)
class HdlcParameters:
    """The negotiable HDLC parameters, from the point of view of the station that states them.

    ``max_info_transmit``/``max_info_receive`` bound the information field of one frame (the
    LLC header included); ``window_transmit``/``window_receive`` count the I frames that may be
    sent before an acknowledgement is needed.
    """

    max_info_transmit: int = DEFAULT_MAX_INFO_LENGTH
    max_info_receive: int = DEFAULT_MAX_INFO_LENGTH
    window_transmit: int = DEFAULT_WINDOW_SIZE
    window_receive: int = DEFAULT_WINDOW_SIZE
    #: Value widths (bytes) per parameter as received, None for the canonical encoding.
    widths: tuple[int, int, int, int] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        for name, value, low, high in (
            ("max_info_transmit", self.max_info_transmit, MIN_INFO_LENGTH, MAX_INFO_LENGTH),
            ("max_info_receive", self.max_info_receive, MIN_INFO_LENGTH, MAX_INFO_LENGTH),
            ("window_transmit", self.window_transmit, 1, MAX_WINDOW_SIZE),
            ("window_receive", self.window_receive, 1, MAX_WINDOW_SIZE),
        ):
            if not low <= value <= high:
                raise LocalProtocolError(f"{name} must be {low}..{high}, got {value}", layer=_LAYER)

    @property
    def is_default(self) -> bool:
        return self == HdlcParameters()

    def as_seen_by_peer(self) -> HdlcParameters:
        """The same agreement with transmit and receive swapped (the other station's view)."""
        return HdlcParameters(
            self.max_info_receive, self.max_info_transmit, self.window_receive, self.window_transmit
        )

    def negotiate(self, proposal: HdlcParameters) -> HdlcParameters:
        """Server rule: answer a client's ``proposal`` with our own values, never above it.

        ``self`` is the server's capability; the result goes into the UA and is stated from the
        server's point of view.
        """
        return HdlcParameters(
            min(self.max_info_transmit, proposal.max_info_receive),
            min(self.max_info_receive, proposal.max_info_transmit),
            min(self.window_transmit, proposal.window_receive),
            min(self.window_receive, proposal.window_transmit),
        )

    def limit_to(self, own: HdlcParameters) -> HdlcParameters:
        """Client rule: the peer's UA values as our view, never above what we proposed (``own``)."""
        mine = self.as_seen_by_peer()
        return HdlcParameters(
            min(mine.max_info_transmit, own.max_info_transmit),
            min(mine.max_info_receive, own.max_info_receive),
            min(mine.window_transmit, own.window_transmit),
            min(mine.window_receive, own.window_receive),
        )

    def to_bytes(self) -> bytes:
        """Encode as an information field: format 0x81, group 0x80, length, four parameters."""
        values = (self.max_info_transmit, self.max_info_receive, self.window_transmit, self.window_receive)
        widths = self.widths or (
            1 if values[0] <= 0xFF else 2,
            1 if values[1] <= 0xFF else 2,
            4,
            4,
        )
        body = bytearray()
        for ident, value, width in zip(_IDS, values, widths, strict=True):
            body += bytes((ident, width)) + value.to_bytes(width, "big")
        return bytes((FORMAT_IDENTIFIER, GROUP_IDENTIFIER, len(body))) + bytes(body)

    @classmethod
    def from_bytes(cls, info: bytes, *, strict: bool = False) -> HdlcParameters:
        """Decode an SNRM or UA information field; an empty field gives the defaults.

        Raises :class:`RemoteProtocolError` for a malformed field. See the module docstring for
        what ``strict=False`` tolerates.
        """
        if not info:
            return cls()
        if len(info) < 3:
            raise RemoteProtocolError(
                "HDLC parameter field shorter than its 3-byte header", layer=_LAYER, data=info
            )
        if info[0] != FORMAT_IDENTIFIER:
            raise RemoteProtocolError(
                f"HDLC parameter format identifier 0x{info[0]:02x}, expected 0x81", layer=_LAYER, data=info
            )
        if info[1] != GROUP_IDENTIFIER:
            raise RemoteProtocolError(
                f"HDLC parameter group identifier 0x{info[1]:02x}, expected 0x80", layer=_LAYER, data=info
            )
        group_length = info[2]
        available = len(info) - 3
        if group_length == 0 and available > 0 and not strict:
            # gurux-dlms 1.0.203: setUInt8(2, len) with swapped arguments wrote 2 at offset len.
            repaired = bytearray(info)
            if repaired[available] == 2:
                repaired[available] = 0
            info = bytes(repaired)
            group_length = available
        if group_length > available:
            raise RemoteProtocolError(
                f"HDLC parameter group length {group_length}, only {available} bytes follow",
                layer=_LAYER,
                data=info,
            )
        if group_length < available and strict:
            raise RemoteProtocolError(
                f"{available - group_length} byte(s) after the HDLC parameter group", layer=_LAYER, data=info
            )
        values = [DEFAULT_MAX_INFO_LENGTH, DEFAULT_MAX_INFO_LENGTH, DEFAULT_WINDOW_SIZE, DEFAULT_WINDOW_SIZE]
        widths = [1, 1, 4, 4]
        seen = [False] * 4
        pos, end = 3, 3 + group_length
        while pos < end:
            if pos + 2 > end:
                raise RemoteProtocolError(
                    "HDLC parameter cut off after its identifier", layer=_LAYER, data=info
                )
            ident, width = info[pos], info[pos + 1]
            pos += 2
            if pos + width > end:
                raise RemoteProtocolError(
                    f"HDLC parameter 0x{ident:02x} announces {width} bytes, {end - pos} left",
                    layer=_LAYER,
                    data=info,
                )
            raw = info[pos : pos + width]
            pos += width
            if ident not in _IDS:
                if strict:
                    raise RemoteProtocolError(
                        f"unknown HDLC parameter 0x{ident:02x}", layer=_LAYER, data=info
                    )
                continue
            if width not in (1, 2, 4):
                raise RemoteProtocolError(
                    f"HDLC parameter 0x{ident:02x} has a {width}-byte value (1, 2 or 4 allowed)",
                    layer=_LAYER,
                    data=info,
                )
            index = ident - MAX_INFO_TRANSMIT
            values[index] = int.from_bytes(raw, "big")
            widths[index] = width
            seen[index] = True
        for index, (low, high) in enumerate(
            ((MIN_INFO_LENGTH, MAX_INFO_LENGTH),) * 2 + ((1, MAX_WINDOW_SIZE),) * 2
        ):
            value = values[index]
            if value < low or (strict and value > high):
                raise RemoteProtocolError(
                    f"HDLC parameter 0x{_IDS[index]:02x} = {value} outside {low}..{high}",
                    layer=_LAYER,
                    data=info,
                )
            values[index] = min(value, high)
        result = cls(values[0], values[1], values[2], values[3])
        if all(seen):
            result = replace(result, widths=(widths[0], widths[1], widths[2], widths[3]))
        return result
