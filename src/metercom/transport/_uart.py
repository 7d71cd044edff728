"""Asynchronous serial characters at bit level: what a receiver makes of a sender's frame.

Rule: one model of the UART character frame, used by the simulated line (to decide what a
receiver with other settings sees) and by byte pipes that emulate a character format (a TCP
bridge whose far end is an 8N1 UART, see :class:`PipeEmulation`).

Theory: a character on the wire is a start bit (0), ``bytesize`` data bits least significant
first, an optional parity bit and one or two stop bits (1); the idle line is 1. A frame is held
here as an integer whose bit *i* is the *i*-th bit on the wire, so bit 0 is the start bit.

When sender and receiver agree on the baud rate and on the number of bits per character, the
receiver samples exactly the sender's bits and interprets them with its own format. That is the
whole story of the parity-bit confusion seen in the field: a 7E1 sender's parity bit lands in
data bit 7 of an 8N1 receiver (``'8'`` = 0x38 arrives as 0xB8), and a 7E1 receiver takes an 8N1
sender's bit 7 for parity. Receivers here behave like a Linux tty with ``INPCK`` off, pyserial's
default: a character with a parity or framing error is still delivered as sampled, and the
error is only counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from metercom.errors import InputError
from metercom.transport.base import LineSettings

__all__ = [
    "PIPE_SETTINGS",
    "PipeEmulation",
    "Sampled",
    "decode_frame",
    "encode_frame",
    "parity_bit",
    "pipe_emulation",
]

#: What a transparent byte pipe (TCP bridge, ESP8266 software UART) puts on its serial side.
PIPE_SETTINGS = LineSettings(bytesize=8, parity="N", stopbits=1)


def parity_bit(parity: str, data: int) -> int:
    """The parity bit a UART sends after ``data`` (``parity`` is one of N, E, O, M, S)."""
    if parity == "E":
        return data.bit_count() & 1
    if parity == "O":
        return (data.bit_count() & 1) ^ 1
    if parity == "M":
        return 1
    return 0  # "S" (space); "N" sends no parity bit and callers do not ask


def encode_frame(settings: LineSettings, value: int) -> int:
    """The wire bits of one character; bit 0 is the start bit. Data bits above bytesize are not sent."""
    data = value & ((1 << settings.bytesize) - 1)
    frame = data << 1
    pos = 1 + settings.bytesize
    if settings.parity != "N":
        frame |= parity_bit(settings.parity, data) << pos
        pos += 1
    for _ in range(settings.stopbits):
        frame |= 1 << pos
        pos += 1
    return frame


@dataclass(frozen=True, slots=True)
class Sampled:
    """What a receiver made of one frame."""

    value: int
    parity_error: bool = False
    framing_error: bool = False
    #: False when the start bit was not a 0: the receiver did not see this character begin
    #: where it did and will resynchronise on some later edge, so ``value`` is meaningless.
    synced: bool = True


def decode_frame(settings: LineSettings, frame: int) -> Sampled:
    """Interpret wire bits with the receiver's ``settings`` (same bit count as the sender's)."""
    if frame & 1:
        return Sampled(0, synced=False)
    value = (frame >> 1) & ((1 << settings.bytesize) - 1)
    pos = 1 + settings.bytesize
    parity_error = False
    if settings.parity != "N":
        parity_error = ((frame >> pos) & 1) != parity_bit(settings.parity, value)
        pos += 1
    framing_error = any(not (frame >> (pos + i)) & 1 for i in range(settings.stopbits))
    return Sampled(value, parity_error, framing_error)


class PipeEmulation:
    """Carry characters of one format over a byte pipe whose far end is an 8N1 UART.

    Transparent serial-to-TCP bridges often run their UART at 8N1 whatever the meter uses, so a
    7E1 meter's parity bit arrives as bit 7 of each byte, and what we send must carry the parity
    bit in bit 7 for the meter to accept it: ``/?!\\r\\n`` goes out as ``AF 3F 21 8D 0A``. Only
    formats with the pipe's 10 bits per character (7E1, 7O1, 7N2, 8N1...) can be emulated; an
    11-bit format such as 8E1 needs a bridge that really runs 8E1.
    """

    def __init__(self, settings: LineSettings) -> None:
        if settings.bits_per_char != PIPE_SETTINGS.bits_per_char:
            raise InputError(
                f"cannot emulate {settings.frame_format} on a byte pipe: it has {settings.bits_per_char} "
                f"bits per character and an 8N1 pipe carries {PIPE_SETTINGS.bits_per_char} "
                "(10-bit formats such as 7E1, 7O1, 7N2, 8N1 work)"
            )
        self.frame_format = settings.frame_format
        self.identity = self.frame_format == PIPE_SETTINGS.frame_format
        tx = bytearray(256)
        rx = bytearray(256)
        parity_bad = bytearray(256)
        framing_bad = bytearray(256)
        for value in range(256):
            tx[value] = decode_frame(PIPE_SETTINGS, encode_frame(settings, value)).value
            sampled = decode_frame(settings, encode_frame(PIPE_SETTINGS, value))
            rx[value] = sampled.value
            parity_bad[value] = sampled.parity_error
            framing_bad[value] = sampled.framing_error
        self._tx = bytes(tx)
        self._rx = bytes(rx)
        self._parity_bad = bytes(parity_bad)
        self._framing_bad = bytes(framing_bad)

    def encode(self, data: bytes) -> bytes:
        """The bytes to put on the pipe so the far UART receives ``data`` in the emulated format."""
        return data if self.identity else data.translate(self._tx)

    def decode(self, data: bytes) -> tuple[bytes, int, int]:
        """Bytes from the pipe as the emulated format's receiver sees them, with error counts.

        Returns ``(data, parity_errors, framing_errors)``; erroneous characters are kept.
        """
        if self.identity:
            return data, 0, 0
        return (
            data.translate(self._rx),
            data.translate(self._parity_bad).count(1),
            data.translate(self._framing_bad).count(1),
        )


@lru_cache(maxsize=16)
def pipe_emulation(frame_format: str) -> PipeEmulation:
    """Cached :class:`PipeEmulation` for a format string such as ``"7E1"``."""
    return PipeEmulation(LineSettings.parse(frame_format))
