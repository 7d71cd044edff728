"""Rules pushed to a relay meter: the action-slot image and its Modbus register form.

Rule: one byte format for a rule a meter evaluates itself, whatever carries it. :func:`encode_slot`
packs a :class:`~metercom.model.rules.engine.Rule` (flags, command, output mask, window,
recovery, name and the expression program of :mod:`.expr`) into a slot *image*;
:func:`decode_slot` reads one back into an equal rule. How the image travels is the transport's
business: on a pmtr3 it is written into a rule slot's registers, two bytes per register, high
byte first, behind a length and a CRC-32 (``docs/modbus-registers.md``): :func:`image_registers`
and :func:`image_of_registers` do that packing, :func:`slot_crc` is the checksum both sides
compute.

Decoding is bounded (an image is at most :data:`MAX_IMAGE_BYTES` here, and the program inside
it at most 8 KiB) and the image comes from a peer: :func:`parse_image` raises only
:class:`RuleSlotError`, a :class:`~metercom.errors.RemoteProtocolError`, whatever the bytes
(fuzzed in ``tests/model/test_rule_slots.py``). :func:`decode_slot` keeps raising
:class:`~metercom.errors.RuleError` for callers that decode their own images.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Final

from metercom.errors import RemoteProtocolError, RuleError
from metercom.model.rules.engine import Command, Rule
from metercom.model.rules.expr import STANDARD_VOCABULARY, Expression, Vocabulary

__all__ = [
    "COMMAND_CODES",
    "MAX_IMAGE_BYTES",
    "RuleSlotError",
    "decode_slot",
    "encode_slot",
    "image_of_registers",
    "image_registers",
    "parse_image",
    "program_of_image",
    "relay_outputs",
    "slot_crc",
]

#: Largest slot image any transport here carries (a pmtr3 slot holds 232 bytes).
MAX_IMAGE_BYTES: Final = 8192 + 64


class RuleSlotError(RemoteProtocolError):
    """A slot image a peer sent (or a meter was asked to store) is not a valid rule."""

    def __init__(self, message: str, *, data: bytes | None = None) -> None:
        super().__init__(message, layer="rule-slot", data=data)


_SLOT_MAGIC: Final = b"MS"
_SLOT_VERSION: Final = 1
_SLOT_HEAD: Final = struct.Struct(
    ">2sBBBBIIB"
)  # magic, version, flags, command, outputs, window, recovery, name length
_COMMAND_CODE: Final = {Command.CONNECT: 1, Command.DISCONNECT: 2, Command.HIGH: 3, Command.LOW: 4}
_CODE_COMMAND: Final = {v: k for k, v in _COMMAND_CODE.items()}
_MS: Final = timedelta(milliseconds=1)


def encode_slot(
    rule: Rule, outputs: Mapping[str, int], vocabulary: Vocabulary = STANDARD_VOCABULARY
) -> bytes:
    """One action slot for a relay meter that evaluates rules itself.

    ``outputs`` maps the rule's target ids to the meter's output numbers 1..8. Layout
    (big-endian): ``"MS"``, version 1, flags (bit 0 enabled, bit 1 dry run), command (1
    connect, 2 disconnect, 3 high, 4 low), output bit mask (bit n-1 = output n), window in ms
    (uint32), recovery in ms (uint32), name length and UTF-8 name, then the expression program
    (:meth:`Expression.to_bytes`, self-delimiting). Window and recovery must be whole ms.
    """
    mask = 0
    for target in rule.targets:
        number = outputs.get(target)
        if number is None or not 1 <= number <= 8:
            raise RuleError(f"rule {rule.name!r}: target {target!r} has no output number 1..8")
        mask |= 1 << (number - 1)
    if rule.window % _MS or rule.recovery % _MS:
        raise RuleError(f"rule {rule.name!r}: window and recovery must be whole milliseconds for a meter")
    name = rule.name.encode()
    flags = (1 if rule.enabled else 0) | (2 if rule.dry_run else 0)
    head = _SLOT_HEAD.pack(
        _SLOT_MAGIC,
        _SLOT_VERSION,
        flags,
        _COMMAND_CODE[rule.action],
        mask,
        rule.window // _MS,
        rule.recovery // _MS,
        len(name),
    )
    return head + name + rule.expression.to_bytes(vocabulary)


def decode_slot(
    data: bytes, outputs: Mapping[str, int], vocabulary: Vocabulary = STANDARD_VOCABULARY
) -> Rule:
    """Read back an action slot written by :func:`encode_slot`; raises RuleError when invalid."""
    data = bytes(data)
    if len(data) < _SLOT_HEAD.size:
        raise RuleError(f"slot: {len(data)} bytes, shorter than its {_SLOT_HEAD.size}-byte header")
    magic, version, flags, command, mask, window_ms, recovery_ms, name_len = _SLOT_HEAD.unpack_from(data)
    if magic != _SLOT_MAGIC or version != _SLOT_VERSION:
        raise RuleError(f"slot: bad magic/version {magic!r}/{version}")
    if flags & ~3 or command not in _CODE_COMMAND:
        raise RuleError(f"slot: bad flags 0x{flags:02x} or command {command}")
    end = _SLOT_HEAD.size + name_len
    if len(data) < end:
        raise RuleError("slot: truncated name")
    try:
        name = data[_SLOT_HEAD.size : end].decode()
    except UnicodeDecodeError as exc:
        raise RuleError("slot: the name is not UTF-8") from exc
    numbers = {number: target for target, number in outputs.items()}
    targets = []
    for bit in range(8):
        if mask >> bit & 1:
            if bit + 1 not in numbers:
                raise RuleError(f"slot: output {bit + 1} has no target id")
            targets.append(numbers[bit + 1])
    expression = Expression.from_bytes(data[end:], vocabulary)
    return Rule(
        name,
        expression,
        window=window_ms * _MS,
        recovery=recovery_ms * _MS,
        action=_CODE_COMMAND[command],
        targets=tuple(targets),
        dry_run=bool(flags & 2),
        enabled=bool(flags & 1),
    )


#: Slot command codes (the image's command byte).
COMMAND_CODES: Final = _COMMAND_CODE


def relay_outputs(count: int) -> dict[str, int]:
    """Target ids of a relay meter with ``count`` outputs: ``relay1`` .. ``relay<count>``."""
    return {f"relay{n}": n for n in range(1, count + 1)}


def slot_crc(image: bytes) -> int:
    """CRC-32 (IEEE 802.3, as :func:`zlib.crc32`) of a slot image; 0 for the empty slot."""
    return zlib.crc32(image) if image else 0


def image_registers(image: bytes) -> list[int]:
    """The image as 16-bit registers, two bytes each, high byte first, the last one zero-padded."""
    padded = image + b"\x00" * (len(image) % 2)
    return [int.from_bytes(padded[i : i + 2], "big") for i in range(0, len(padded), 2)]


def image_of_registers(registers: Sequence[int], length: int) -> bytes:
    """The first ``length`` bytes of registers written by :func:`image_registers`."""
    if not 0 <= length <= 2 * len(registers):
        raise RuleSlotError(f"image length {length} does not fit {len(registers)} registers")
    data = b"".join((r & 0xFFFF).to_bytes(2, "big") for r in registers)
    return data[:length]


def parse_image(
    image: bytes, outputs: Mapping[str, int], vocabulary: Vocabulary = STANDARD_VOCABULARY
) -> Rule:
    """:func:`decode_slot` for an image from a peer: raises only :class:`RuleSlotError`."""
    image = bytes(image)
    if len(image) > MAX_IMAGE_BYTES:
        raise RuleSlotError(f"image of {len(image)} bytes, at most {MAX_IMAGE_BYTES}", data=image[:32])
    try:
        return decode_slot(image, outputs, vocabulary)
    except RuleError as exc:
        raise RuleSlotError(f"invalid rule slot: {exc}", data=image[:32]) from exc


def program_of_image(image: bytes) -> bytes:
    """The expression program inside a slot image (the bytes after the name), as stored.

    The image must have been validated (:func:`parse_image`); a meter keeps the program bytes and
    runs them with :func:`~metercom.model.rules.expr.run_program`.
    """
    if len(image) < _SLOT_HEAD.size:
        raise RuleSlotError("image shorter than its header", data=bytes(image[:32]))
    return bytes(image[_SLOT_HEAD.size + image[_SLOT_HEAD.size - 1] :])
