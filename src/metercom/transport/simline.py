"""A simulated serial wire: two UARTs joined by a line, paced by the event loop's clock.

Rule: :class:`SimulatedLine` behaves like a real asynchronous serial link as far as a protocol
can tell, with every physical effect deterministic and every random one seeded. It never reads
a clock of its own: it schedules on the running event loop, so under
:class:`~metercom.clock.VirtualClock` a 70 s readout at 300 Bd takes no real time, and the
elapsed virtual time is the wire time a real line would need.

Theory of operation:

* Each end (:attr:`~SimulatedLine.a`, :attr:`~SimulatedLine.b`, both Transports) has its own
  :class:`~metercom.transport.base.LineSettings`, like two UARTs. By convention ``a`` is the
  head-end or optical-head side and ``b`` the meter.
* A sender's UART sends back to back. ``write()`` queues characters and returns; character *k*
  of a burst occupies the wire from ``start + k * t_c`` to ``start + (k + 1) * t_c`` with
  ``t_c = bits_per_char / baud_rate`` of the *sender's* settings, and reaches the receiver at
  the end of its stop bit plus ``latency_s``. ``drain()`` returns when the last stop bit has
  ended. So 5 bytes at 300 Bd 7E1 take exactly 5 * 10 / 300 s.
* What the receiver makes of a character is decided when it arrives, with the receiver's
  settings at that moment (see ``_uart.py``): if the baud rates differ by more than
  ``baud_tolerance`` (2 % by default; the theoretical limit for a 10-bit frame sampled mid-bit is
  about 5 %, and 2 % is the usual per-side budget) or the frame lengths in bits differ, the
  receiver gets deterministic garbage (about one byte per character, fewer when it is slower
  than the sender). Same speed and bit count: the receiver reinterprets the sender's bits, so a
  7E1 sender's parity shows up as bit 7 at an 8N1 receiver (``'8'`` arrives as 0xB8) and a 7E1
  receiver strips bit 7 of an 8N1 sender, counting parity errors.
* Changing settings in the middle of traffic has the physical consequences: characters not yet
  started go out at the new settings, the character on the wire at that moment is torn and
  arrives as garbage. This catches a protocol that changes baud rate without ``drain()`` first.
* Faults, all seeded: ``bit_error_rate`` flips bits on the wire (at most one per character, a
  fine approximation below 1e-2), ``drop_rate`` loses whole characters, :meth:`~SimulatedLine.cut`
  and :meth:`~SimulatedLine.restore` lose every character that is on the wire while the line is
  cut, :meth:`~SimulatedLine.inject` puts noise into a receiver, and ``echo`` makes an end
  receive its own transmission (an optical head sees its own IR light); echoes bypass the line,
  so faults and cuts do not touch them.
* Closing one end is like hanging up: characters already sent still arrive, then the other
  end's ``read()`` raises ``ConnectionLost`` and its ``write()`` too.
* :attr:`SimulatedLine.stats` counts bytes and wire busy time per direction, for benchmarks.

Not modelled: collisions of both ends sending at once on a half-duplex medium, break
conditions, modem control lines (RTS/DTR), and hardware FIFOs (our ``drain()`` is exact).
"""

from __future__ import annotations

import asyncio
import math
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Literal

from metercom.errors import ConnectionLost, InputError
from metercom.transport._rx import ReceiveBuffer
from metercom.transport._uart import decode_frame, encode_frame
from metercom.transport.base import LineSettings, Transport

__all__ = ["DirectionStats", "LineStats", "SimulatedEnd", "SimulatedLine"]

# Comparisons of float times: asyncio fires a timer up to its clock resolution (1 us on the
# virtual loop) early, and sums of character times carry rounding; 1 ns is far below any
# character time and far above the rounding.
_EPS_S = 1e-9
# asyncio runs a timer once it is due within the loop's clock resolution (1 us on the virtual
# loop), so a sleep can end up to that much early; drain() accepts that instead of spinning on
# sub-microsecond sleeps. At 115200 Bd a character lasts 87 us.
_CLOCK_RESOLUTION_S = 1e-6


@dataclass
class DirectionStats:
    """Counters for one direction of the line."""

    #: Characters the sender's UART put on the wire.
    bytes_sent: int = 0
    #: Seconds of wire time those characters occupied.
    busy_s: float = 0.0
    #: Bytes that reached the receiver's buffer (garbage included, injected noise excluded).
    bytes_delivered: int = 0
    #: Characters lost to ``drop_rate``.
    dropped: int = 0
    #: Characters lost because they were on the wire while the line was cut.
    cut: int = 0
    #: Characters turned into garbage (settings mismatch, torn by a settings change, start bit hit).
    garbled: int = 0
    #: Characters with a flipped bit.
    bit_errors: int = 0
    #: Characters the receiver found with wrong parity (still delivered, as with INPCK off).
    parity_errors: int = 0
    #: Characters the receiver found with a 0 where a stop bit belongs (still delivered).
    framing_errors: int = 0
    #: Noise bytes put into this direction's receiver with :meth:`SimulatedLine.inject`.
    injected: int = 0


@dataclass
class LineStats:
    """Counters per direction; ``a_to_b`` is what end ``a`` sent to end ``b``."""

    a_to_b: DirectionStats = field(default_factory=DirectionStats)
    b_to_a: DirectionStats = field(default_factory=DirectionStats)


class _Char:
    """One character on the wire."""

    __slots__ = ("end_s", "settings", "start_s", "torn", "value")

    def __init__(self, value: int, settings: LineSettings, start_s: float, end_s: float) -> None:
        self.value = value
        self.settings = settings
        self.start_s = start_s
        self.end_s = end_s
        #: The sender changed settings while this character was on the wire.
        self.torn = False


class _Path:
    """Characters from one end's transmitter to one receiver (the other end, or itself: echo)."""

    def __init__(
        self, line: SimulatedLine, sender: SimulatedEnd, receiver: SimulatedEnd, stats: DirectionStats
    ) -> None:
        self.line = line
        self.sender = sender
        self.receiver = receiver
        self.echo = sender is receiver
        self.stats = stats
        self.in_flight: deque[_Char] = deque()
        self.timer: asyncio.TimerHandle | None = None
        # Characters the receiver was reconfigured in the middle of (ids of live _Char objects).
        self.torn: set[int] = set()
        self.eof_pending = False
        label = "echo" if self.echo else "line"
        self.rng = random.Random(f"{line.seed}/{line.name}/{sender.name}->{receiver.name}/{label}")

    @property
    def latency_s(self) -> float:
        return 0.0 if self.echo else self.line.latency_s

    def add(self, chars: list[_Char]) -> None:
        self.in_flight.extend(chars)
        self.schedule()

    def schedule(self) -> None:
        if self.timer is None and self.in_flight:
            when = self.in_flight[0].end_s + self.latency_s
            loop = asyncio.get_running_loop()
            self.timer = loop.call_at(when, self._on_timer, when)

    def reschedule(self) -> None:
        self.cancel_timer()
        self.schedule()

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _on_timer(self, when: float) -> None:
        self.timer = None
        self.settle(max(asyncio.get_running_loop().time(), when))
        self.schedule()

    def settle(self, now: float) -> None:
        """Deliver every character that has arrived by ``now``."""
        latency_s = self.latency_s
        out = bytearray()
        while self.in_flight and self.in_flight[0].end_s + latency_s <= now + _EPS_S:
            self._deliver(self.in_flight.popleft(), out)
        if out:
            self.receiver.rx.feed(bytes(out))
        if self.eof_pending and not self.in_flight:
            self.eof_pending = False
            self.receiver.rx.feed_eof(f"the other end ({self.sender.name}) closed the line")

    def mark_torn(self, now: float) -> None:
        """The receiver changes settings at ``now``: characters it is receiving are torn."""
        latency_s = self.latency_s
        for ch in self.in_flight:
            if ch.start_s + latency_s < now - _EPS_S and ch.end_s + latency_s > now + _EPS_S:
                self.torn.add(id(ch))

    def _deliver(self, ch: _Char, out: bytearray) -> None:
        line, stats, rng = self.line, self.stats, self.rng
        receiving = self.receiver.settings
        sending = ch.settings
        torn = ch.torn
        if self.torn and id(ch) in self.torn:
            self.torn.discard(id(ch))
            torn = True
        if not self.echo:
            if line.drop_rate and rng.random() < line.drop_rate:
                stats.dropped += 1
                return
            if line.was_cut(ch.start_s, ch.end_s):
                stats.cut += 1
                return
        if torn or line.mismatched(sending, receiving):
            stats.garbled += 1
            # A receiver slower than the sender sees fewer characters than were sent.
            ratio = receiving.baud_rate / sending.baud_rate
            if torn or ratio >= 1.0 or rng.random() < ratio:
                out.append(rng.randrange(1 << receiving.bytesize))
                stats.bytes_delivered += 1
            return
        ber = 0.0 if self.echo else line.bit_error_rate
        if not ber and sending.frame_format == receiving.frame_format:
            out.append(ch.value & ((1 << receiving.bytesize) - 1))
            stats.bytes_delivered += 1
            return
        frame = encode_frame(sending, ch.value)
        if ber:
            bits = sending.bits_per_char
            if rng.random() < 1.0 - (1.0 - ber) ** bits:
                frame ^= 1 << rng.randrange(bits)
                stats.bit_errors += 1
        sampled = decode_frame(receiving, frame)
        if not sampled.synced:
            # Start bit hit: the receiver starts on some later edge and samples nonsense.
            stats.garbled += 1
            out.append(rng.randrange(1 << receiving.bytesize))
        else:
            stats.parity_errors += sampled.parity_error
            stats.framing_errors += sampled.framing_error
            out.append(sampled.value)
        stats.bytes_delivered += 1


class SimulatedEnd(Transport):
    """One end of a :class:`SimulatedLine`: a UART with its own settings."""

    def __init__(self, line: SimulatedLine, name: Literal["a", "b"], settings: LineSettings) -> None:
        self.url = f"sim://{line.name}/{name}"
        self.name = name
        self.settings = settings
        #: Receive our own transmission, as an optical head sees its own light.
        self.echo = False
        self.rx = ReceiveBuffer(self.url)
        self._sim = line
        self._tx: deque[_Char] = deque()  # characters not yet fully sent, for re-timing
        self._tx_free_at = -math.inf
        self._closed = False
        self.to_peer: _Path
        self.to_self: _Path
        self.from_peer: _Path

    @property
    def line(self) -> LineSettings:
        return self.settings

    @property
    def peer(self) -> SimulatedEnd:
        return self._sim.b if self is self._sim.a else self._sim.a

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def tx_busy_until_s(self) -> float:
        """Loop time at which the last queued character's stop bit ends."""
        return self._tx_free_at

    def _settle_input(self, now: float) -> None:
        self.from_peer.settle(now)
        self.to_self.settle(now)

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        if not self._closed:
            self._settle_input(asyncio.get_running_loop().time())
        return await self.rx.read(max_bytes, timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if self.peer.closed:
            raise ConnectionLost(f"{self.url}: the other end ({self.peer.name}) closed the line")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        now = asyncio.get_running_loop().time()
        self._prune_tx(now)
        settings = self.settings
        char_time_s = settings.char_time_s
        start_s = max(now, self._tx_free_at)
        chars = [
            _Char(value, settings, start_s + i * char_time_s, start_s + (i + 1) * char_time_s)
            for i, value in enumerate(data)
        ]
        self._tx.extend(chars)
        self._tx_free_at = chars[-1].end_s
        stats = self.to_peer.stats
        stats.bytes_sent += len(chars)
        stats.busy_s += len(chars) * char_time_s
        self.to_peer.add(chars)
        if self.echo:
            self.to_self.add(chars)

    def _prune_tx(self, now: float) -> None:
        while self._tx and self._tx[0].end_s <= now + _EPS_S:
            self._tx.popleft()

    async def drain(self) -> None:
        """Return when the stop bit of the last queued character has ended."""
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        loop = asyncio.get_running_loop()
        # A loop, not one sleep: set_line() during the wait may re-time the queue.
        while True:
            remaining_s = self._tx_free_at - loop.time()
            if remaining_s <= _CLOCK_RESOLUTION_S:
                return
            await asyncio.sleep(remaining_s)

    async def set_line(self, settings: LineSettings) -> None:
        """Change this end's UART settings now (the other end keeps its own)."""
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if settings == self.settings:
            return
        now = asyncio.get_running_loop().time()
        # Receiving side: what has arrived was received with the old settings; what is
        # arriving right now is torn.
        self._settle_input(now)
        self.from_peer.mark_torn(now)
        self.to_self.mark_torn(now)
        # Sending side: re-time what is queued; the character on the wire is torn.
        self._prune_tx(now)
        stats = self.to_peer.stats
        resume_s = now
        char_time_s = settings.char_time_s
        for ch in self._tx:
            if ch.start_s < now - _EPS_S:
                ch.torn = True
                resume_s = ch.end_s
            else:
                stats.busy_s += char_time_s - (ch.end_s - ch.start_s)
                ch.settings = settings
                ch.start_s = resume_s
                ch.end_s = resume_s + char_time_s
                resume_s = ch.end_s
        if self._tx:
            self._tx_free_at = self._tx[-1].end_s
            self.to_peer.reschedule()
            self.to_self.reschedule()
        self.settings = settings

    def discard_input(self) -> None:
        if not self._closed:
            self._settle_input(asyncio.get_running_loop().time())
        self.rx.discard()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.rx.close_local()
        for path in (self.from_peer, self.to_self):
            path.cancel_timer()
            path.in_flight.clear()
            path.torn.clear()
        # Characters already sent still arrive; then the other end learns of the hang-up.
        self.to_peer.eof_pending = True
        if not self.to_peer.in_flight:
            self.to_peer.settle(-math.inf)


class SimulatedLine:
    """A virtual serial wire with two ends, :attr:`a` and :attr:`b`; see the module docstring.

    ``settings`` applies to both ends unless ``settings_b`` gives end ``b`` its own. ``echo``
    turns on the echo of end ``a`` (set ``line.b.echo`` for the other end). ``seed`` makes every
    random fault reproducible; the same seed and the same traffic give the same bytes.
    """

    def __init__(
        self,
        settings: LineSettings | None = None,
        *,
        settings_b: LineSettings | None = None,
        latency_s: float = 0.0,
        bit_error_rate: float = 0.0,
        drop_rate: float = 0.0,
        echo: bool = False,
        seed: int = 0,
        baud_tolerance: float = 0.02,
        name: str = "line",
    ) -> None:
        for label, rate in (("bit_error_rate", bit_error_rate), ("drop_rate", drop_rate)):
            if not 0.0 <= rate <= 1.0:
                raise InputError(f"{label} must be between 0 and 1, got {rate}")
        if latency_s < 0:
            raise InputError(f"latency_s must not be negative, got {latency_s}")
        if not 0.0 <= baud_tolerance < 1.0:
            raise InputError(f"baud_tolerance must be in [0, 1), got {baud_tolerance}")
        settings = settings or LineSettings()
        self.name = name
        self.seed = seed
        #: Seconds from the end of a character's stop bit to its arrival at the other end.
        self.latency_s = latency_s
        #: Probability that any one bit on the wire is flipped.
        self.bit_error_rate = bit_error_rate
        #: Probability that a character is lost entirely.
        self.drop_rate = drop_rate
        #: Largest relative baud-rate difference a receiver still decodes.
        self.baud_tolerance = baud_tolerance
        self.stats = LineStats()
        self._cuts: list[list[float]] = []
        self.a = SimulatedEnd(self, "a", settings)
        self.b = SimulatedEnd(self, "b", settings_b or settings)
        self.a.echo = echo
        a_to_b = _Path(self, self.a, self.b, self.stats.a_to_b)
        b_to_a = _Path(self, self.b, self.a, self.stats.b_to_a)
        self.a.to_peer = self.b.from_peer = a_to_b
        self.b.to_peer = self.a.from_peer = b_to_a
        # Echo counters are kept apart so they never inflate the line's statistics.
        self.a.to_self = _Path(self, self.a, self.a, DirectionStats())
        self.b.to_self = _Path(self, self.b, self.b, DirectionStats())

    def __repr__(self) -> str:
        return f"<SimulatedLine {self.name} a={self.a.settings} b={self.b.settings}>"

    # -- physics --------------------------------------------------------------------------------

    def mismatched(self, sending: LineSettings, receiving: LineSettings) -> bool:
        """True when a receiver cannot sample the sender's characters at all."""
        if sending.bits_per_char != receiving.bits_per_char:
            return True
        return abs(receiving.baud_rate - sending.baud_rate) > self.baud_tolerance * sending.baud_rate

    def was_cut(self, start_s: float, end_s: float) -> bool:
        """True if the line was cut at any moment of the interval a character was on the wire."""
        return any(
            start_s < cut_end - _EPS_S and end_s > cut_start + _EPS_S for cut_start, cut_end in self._cuts
        )

    # -- faults ---------------------------------------------------------------------------------

    @property
    def is_cut(self) -> bool:
        return bool(self._cuts) and self._cuts[-1][1] == math.inf

    def cut(self) -> None:
        """Cut the line now: every character on the wire until :meth:`restore` is lost."""
        if not self.is_cut:
            self._cuts.append([asyncio.get_running_loop().time(), math.inf])

    def restore(self) -> None:
        """Join the line again."""
        if self.is_cut:
            now = asyncio.get_running_loop().time()
            self._cuts[-1][1] = now
            # Forget cuts no character still on its way can overlap (a character is on the wire
            # for well under a second at any real baud rate; 10 s plus the latency is ample).
            horizon = now - self.latency_s - 10.0
            self._cuts = [cut for cut in self._cuts if cut[1] >= horizon]

    def inject(self, noise: bytes, *, to: Literal["a", "b"] = "a") -> None:
        """Put ``noise`` into the receive buffer of end ``to`` now, after what has arrived.

        The bytes are masked to the receiver's character size, as its UART would deliver them.
        """
        if to not in ("a", "b"):
            raise InputError(f"inject(to=...) names an end, 'a' or 'b'; got {to!r}")
        end = self.a if to == "a" else self.b
        if end.closed or not noise:
            return
        end._settle_input(asyncio.get_running_loop().time())
        mask = (1 << end.settings.bytesize) - 1
        end.rx.feed(bytes(value & mask for value in noise))
        end.from_peer.stats.injected += len(noise)

    async def close(self) -> None:
        """Close both ends."""
        await self.a.close()
        await self.b.close()

    async def __aenter__(self) -> SimulatedLine:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
