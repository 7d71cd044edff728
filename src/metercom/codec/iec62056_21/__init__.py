"""IEC 62056-21 (formerly IEC 61107, "direct local data exchange"): the pure codec.

Rule: no I/O, no clock, no logging; imports only ``metercom.model``, ``metercom.errors``,
``metercom.codec.base`` and the standard library (DESIGN.md sections 1 and 2).

Modules:

* :mod:`~.constants`: character tables (baud rate character Z, V, Y, command C/D), timing and
  size limits, :class:`ProtocolMode`.
* :mod:`~.messages`: the messages as frozen dataclasses with ``to_bytes()``/``from_bytes()``
  and the block check character :func:`bcc`.
* :mod:`~.datasets`: data sets ``address(value*unit)`` -> :class:`DataSet`/:class:`Value`
  with ``Decimal`` numbers; time-stamp helpers.
* :mod:`~.events` and :mod:`~.connection`: the sans-I/O :class:`Iec21Connection` for the
  reader (``Role.CLIENT``) and the meter (``Role.SERVER``).
* :mod:`~.samples`: the worked-example readout (:data:`SAMPLE_READOUT`) and identification.

A readout, as a session shell drives it (``link`` is a transport, ``clock`` the clock)::

    conn = Iec21Connection(Role.CLIENT)
    await link.write(conn.send(RequestMessage(), now=clock.monotonic()))
    while True:
        event = conn.next_event()
        if event is NEED_DATA:
            deadline = conn.next_deadline()
            try:
                data = await link.read(timeout_s=deadline - clock.monotonic())
            except TransportTimeout:
                conn.handle_timeout(clock.monotonic())
                continue
            conn.receive_data(data, now=clock.monotonic())
        elif isinstance(event, IdentificationReceived):
            await wait_until(conn.send_not_before)
            await link.write(conn.send(AckOptionSelect.readout(event.message.baud_char), now=...))
        elif isinstance(event, ChangeBaudRate):
            await link.drain(); await wait_until(event.not_before)
            await link.set_line(LineSettings.parse(event.frame_format, event.baud_rate))
        elif isinstance(event, FrameCorrupted):
            await link.write(conn.send(Nak(), now=...))
        elif isinstance(event, ReadoutReceived):
            return event.datasets
        elif isinstance(event, Timeout):
            raise TransportTimeout(...)

Programming mode: after ``IdentificationReceived`` send ``AckOptionSelect.programming(z)``;
on ``PasswordRequested`` send ``CommandMessage.password("00000000")`` and expect
``Acknowledged``; then ``CommandMessage.read("1.8.0")`` gives ``AnswerReceived`` (or
``DeviceError`` -> ``raise event.to_exception()``; ``RepeatRequested`` -> send the command
again; ``PartialAnswerReceived`` -> send ``Ack()``); finish with ``CommandMessage.sign_off()``.
"""

from __future__ import annotations

from metercom.codec.iec62056_21.connection import CLIENT_STATES, SERVER_STATES, Iec21Connection, State
from metercom.codec.iec62056_21.constants import (
    CommandId,
    ModeControl,
    ProtocolControl,
    ProtocolMode,
    baud_rate_of,
)
from metercom.codec.iec62056_21.datasets import (
    DataSet,
    Value,
    parse_data_block,
    parse_data_line,
    parse_date,
    parse_time,
    parse_timestamp,
)
from metercom.codec.iec62056_21.events import (
    Acknowledged,
    AnswerReceived,
    BreakReceived,
    ChangeBaudRate,
    CommandReceived,
    DeviceError,
    Event,
    FrameCorrupted,
    HdlcHandover,
    IdentificationReceived,
    OptionSelected,
    PartialAnswerReceived,
    PasswordRequested,
    ReadoutReceived,
    RepeatRequested,
    RequestReceived,
    Timeout,
    TimeoutKind,
)
from metercom.codec.iec62056_21.messages import (
    Ack,
    AckOptionSelect,
    AnswerMessage,
    CommandMessage,
    DataMessage,
    IdentificationMessage,
    Message,
    Nak,
    RequestMessage,
    WakeUp,
    bcc,
    error_text,
)
from metercom.codec.iec62056_21.samples import (
    SAMPLE_IDENTIFICATION,
    SAMPLE_READOUT,
    SAMPLE_READOUT_BYTES,
    SAMPLE_READOUT_FULL,
    SAMPLE_READOUT_FULL_BYTES,
    SAMPLE_REQUEST,
)

__all__ = [
    "CLIENT_STATES",
    "SAMPLE_IDENTIFICATION",
    "SAMPLE_READOUT",
    "SAMPLE_READOUT_BYTES",
    "SAMPLE_READOUT_FULL",
    "SAMPLE_READOUT_FULL_BYTES",
    "SAMPLE_REQUEST",
    "SERVER_STATES",
    "Ack",
    "AckOptionSelect",
    "Acknowledged",
    "AnswerMessage",
    "AnswerReceived",
    "BreakReceived",
    "ChangeBaudRate",
    "CommandId",
    "CommandMessage",
    "CommandReceived",
    "DataMessage",
    "DataSet",
    "DeviceError",
    "Event",
    "FrameCorrupted",
    "HdlcHandover",
    "IdentificationMessage",
    "IdentificationReceived",
    "Iec21Connection",
    "Message",
    "ModeControl",
    "Nak",
    "OptionSelected",
    "PartialAnswerReceived",
    "PasswordRequested",
    "ProtocolControl",
    "ProtocolMode",
    "ReadoutReceived",
    "RepeatRequested",
    "RequestMessage",
    "RequestReceived",
    "State",
    "Timeout",
    "TimeoutKind",
    "Value",
    "WakeUp",
    "baud_rate_of",
    "bcc",
    "error_text",
    "parse_data_block",
    "parse_data_line",
    "parse_date",
    "parse_time",
    "parse_timestamp",
]
