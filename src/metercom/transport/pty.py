"""Pseudo-terminal pairs: serve a simulated meter on a path any serial client can open (Linux).

Rule: :func:`open_pty` creates a pty pair in raw mode and returns a transport on the *master*
side plus the *slave* path (``/dev/pts/N``). A simulator talks on the master; the program under
test opens the slave path exactly as it would open ``/dev/ttyUSB0`` (our SerialTransport,
pyserial, minicom, a vendor tool...).

Theory and physical caveats:

* A pty carries bytes only. It has no bit timing, so the baud rate a client sets changes
  nothing on the wire, and no framing: recent Linux kernels even refuse ``CS7``/``PARENB`` on a
  pty with EINVAL, and bit 7 passes unchanged either way. :attr:`PtyTransport.peer_line` reports
  the baud rate and format the client last set (as far as the kernel kept them), so a simulator
  can check that a client switched speed when the protocol says it must. Use the simulated line
  (``simline.py``) where timing or parity matter.
* The transport keeps its own descriptor of the slave open. Without it the master reads EIO
  whenever no client has the port open, including before the first client arrives. The price is
  that a client closing the port is not seen here, which is also how a meter experiences an
  optical head being taken away: it simply stops hearing requests. Closing this transport
  hangs the line up, and the client's next read raises ``ConnectionLost``.
* The kernel hands bytes written on one side to the other from a work queue, so they become
  readable there a few microseconds later, not at once as on loopback TCP. On the virtual clock
  a loop with nothing readable jumps straight to its next timer and could skip past them: run
  pty tests on a :class:`~metercom.clock.VirtualClock` with a small ``real_grace_s``.
* While no client reads, bytes written here wait in the slave's input queue (a few kB); once it
  is full, writes queue in user space and :meth:`~PtyTransport.drain` waits. A client that opens
  the port with pyserial flushes that queue first, so a new client never sees stale bytes.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import termios
import tty

from metercom.errors import ConnectError, ConnectionLost
from metercom.transport._rx import ReceiveBuffer
from metercom.transport.base import LineSettings, Transport

__all__ = ["PtyTransport", "open_pty", "termios_line"]

_READ_CHUNK = 65536

# termios speed constants -> baud rate, for the rates this platform defines.
_SPEEDS: dict[int, int] = {
    getattr(termios, f"B{rate}"): rate
    for rate in (
        50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400, 57600,
        115200, 230400, 460800, 500000, 576000, 921600, 1000000,
    )
    if hasattr(termios, f"B{rate}")
}  # fmt: skip
_SIZES = {termios.CS5: 5, termios.CS6: 6, termios.CS7: 7, termios.CS8: 8}
_CMSPAR = getattr(termios, "CMSPAR", 0o10000000000)


def termios_line(fd: int) -> LineSettings | None:
    """The baud rate and character format the terminal ``fd`` is set to, if expressible.

    ``None`` for a speed without a ``B*`` constant (pyserial sets unusual rates with ``BOTHER``).
    """
    attrs = termios.tcgetattr(fd)
    cflag, ospeed = attrs[2], attrs[5]
    baud_rate = _SPEEDS.get(ospeed)
    if baud_rate is None or baud_rate == 0:
        return None
    parity = "N"
    if cflag & termios.PARENB:
        if cflag & _CMSPAR:
            parity = "M" if cflag & termios.PARODD else "S"
        else:
            parity = "O" if cflag & termios.PARODD else "E"
    stopbits = 2 if cflag & termios.CSTOPB else 1
    return LineSettings(baud_rate, _SIZES[cflag & termios.CSIZE], parity, stopbits)


class PtyTransport(Transport):
    """The master side of a pty pair; :attr:`slave_path` is the device a client opens."""

    def __init__(self, master_fd: int, slave_fd: int, slave_path: str) -> None:
        self.url = f"pty:{slave_path}"
        self.slave_path = slave_path
        self._master = master_fd
        self._slave = slave_fd
        self._loop = asyncio.get_running_loop()
        self._line: LineSettings | None = None
        self._backlog = bytearray()
        self._drain_waiters: list[asyncio.Future[None]] = []
        self._closed = False
        self._hung_up = False
        self._reading = False
        self._rx = ReceiveBuffer(self.url)
        self._rx.set_flow_control(self._stop_reading, self._start_reading)
        self._start_reading()

    @property
    def line(self) -> LineSettings | None:
        """What :meth:`set_line` recorded (a pty itself has no line settings of its own)."""
        return self._line

    @property
    def peer_line(self) -> LineSettings | None:
        """The baud rate and format the client last set on the slave side, if known.

        Only the baud rate is dependable: kernels that refuse ``CS7``/``PARENB`` on ptys keep 8N1.
        """
        if self._closed:
            return None
        return termios_line(self._slave)

    # -- reading --------------------------------------------------------------------------------

    def _start_reading(self) -> None:
        if not self._reading and not self._closed and not self._hung_up:
            self._loop.add_reader(self._master, self._on_readable)
            self._reading = True

    def _stop_reading(self) -> None:
        if self._reading:
            self._loop.remove_reader(self._master)
            self._reading = False

    def _on_readable(self) -> None:
        try:
            data = os.read(self._master, _READ_CHUNK)
        except BlockingIOError:
            return
        except OSError as exc:
            # EIO on a master means every slave descriptor is closed: the line is hung up.
            self._hang_up(exc)
            return
        if data:
            self._rx.feed(data)
        else:
            self._hang_up(None)

    def _hang_up(self, exc: OSError | None) -> None:
        self._stop_reading()
        self._hung_up = True
        self._rx.feed_eof("the pty was hung up", exc)
        self._wake_drain()

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self._rx.read(max_bytes, timeout_s)

    def discard_input(self) -> None:
        self._rx.discard()
        # Also drop what the kernel holds for us, so bytes that arrived just before the call
        # cannot surface after it. Bounded, in case the client keeps writing.
        for _ in range(64):
            try:
                if not os.read(self._master, _READ_CHUNK):
                    break
            except OSError:
                break

    # -- writing --------------------------------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if self._hung_up:
            raise ConnectionLost(f"{self.url}: the pty was hung up")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if not data:
            return
        if self._backlog:
            self._backlog += data
            return
        try:
            written = os.write(self._master, data)
        except BlockingIOError:
            written = 0
        except OSError as exc:
            self._hang_up(exc)
            raise ConnectionLost(f"{self.url}: write failed: {exc.strerror}") from exc
        if written < len(data):
            self._backlog += data[written:]
            self._loop.add_writer(self._master, self._on_writable)

    def _on_writable(self) -> None:
        try:
            written = os.write(self._master, self._backlog)
        except BlockingIOError:
            return
        except OSError as exc:
            self._loop.remove_writer(self._master)
            self._backlog.clear()
            self._hang_up(exc)
            return
        del self._backlog[:written]
        if not self._backlog:
            self._loop.remove_writer(self._master)
            self._wake_drain()

    def _wake_drain(self) -> None:
        for waiter in self._drain_waiters:
            if not waiter.done():
                waiter.set_result(None)

    async def drain(self) -> None:
        """Wait until the kernel holds every written byte (a pty has no wire to wait for)."""
        self._check_open()
        while self._backlog and not self._hung_up and not self._closed:
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._drain_waiters.append(waiter)
            try:
                await waiter
            finally:
                self._drain_waiters.remove(waiter)
        self._check_open()

    async def set_line(self, settings: LineSettings) -> None:
        # Nothing to change on a pty; recorded so a simulator can report what it runs at.
        self._line = settings

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._rx.close_local()
        self._stop_reading()
        if self._backlog:
            self._loop.remove_writer(self._master)
            self._backlog.clear()
        self._wake_drain()
        # Closing both our descriptors hangs the line up: the client's reads fail from now on.
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)


async def open_pty() -> tuple[PtyTransport, str]:
    """Open a raw pty pair; return the master-side transport and the slave device path."""
    try:
        master_fd, slave_fd = os.openpty()
    except OSError as exc:
        raise ConnectError(f"cannot open a pseudo-terminal pair: {exc.strerror}") from exc
    try:
        # Raw mode: no echo, no line editing, no CR/LF translation, 8-bit clean.
        tty.setraw(slave_fd)
        os.set_blocking(master_fd, False)
        slave_path = os.ttyname(slave_fd)
        transport = PtyTransport(master_fd, slave_fd, slave_path)
    except BaseException:
        os.close(master_fd)
        os.close(slave_fd)
        raise
    return transport, slave_path
