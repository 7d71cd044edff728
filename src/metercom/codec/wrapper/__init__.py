"""IEC 62056-47 wrapper for DLMS/COSEM over TCP and UDP, sans-I/O.

* :mod:`.frame`: :class:`WrapperFrame` to and from bytes, :class:`WrapperStreamDecoder` for
  TCP, :func:`decode_datagram` for UDP.
* :mod:`.connection`: :class:`WrapperConnection` for both roles.
"""

from __future__ import annotations

from metercom.codec.wrapper.connection import (
    ApduReceived,
    FrameDiscarded,
    SendApdu,
    WrapperConnection,
    WrapperEvent,
    WrapperTransport,
)
from metercom.codec.wrapper.frame import (
    HEADER_LENGTH,
    MAX_LENGTH,
    VERSION,
    WrapperFrame,
    WrapperStreamDecoder,
    decode_datagram,
)

__all__ = [
    "HEADER_LENGTH",
    "MAX_LENGTH",
    "VERSION",
    "ApduReceived",
    "FrameDiscarded",
    "SendApdu",
    "WrapperConnection",
    "WrapperEvent",
    "WrapperFrame",
    "WrapperStreamDecoder",
    "WrapperTransport",
    "decode_datagram",
]
