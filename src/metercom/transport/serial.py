"""Serial transport: local ports (``/dev/ttyUSB0``, a pty slave) and pyserial URLs.

Rule: one :class:`SerialTransport` class whatever is behind the port; the URL picks one of three
back ends, and every ``serial.SerialException``, ``termios.error`` and ``OSError`` is translated
here (``ConnectError`` while opening or reconfiguring, ``ConnectionLost`` once open,
``InputError`` for settings the port cannot take at all, such as an absurd baud rate).

Back ends and their theory of operation:

* **Local device paths** run on pyserial-asyncio-fast's asyncio transport, which watches the
  port's file descriptor. The port is opened on the event loop itself: pyserial opens with
  ``O_NONBLOCK`` and configures with one ``tcsetattr``, so that does not block, and it keeps the
  open free of thread hand-offs (which would race the virtual clock in tests). Ports are locked
  with ``flock`` so two programs cannot talk on one line at once. ``drain()`` waits for
  asyncio's buffer, then polls the OS output queue (``TIOCOUTQ``) with short asyncio sleeps
  rather than a blocking ``tcdrain`` on the loop, and then waits one more character time,
  because the character in the UART's shift register is not counted by ``TIOCOUTQ``.
* **socket://host:port** is a raw TCP pipe (pyserial-asyncio-fast also just opens an asyncio
  TCP connection for it); line settings are recorded only, as the far end sets its own.
* **rfc2217://host:port** and **loop://** have no file descriptor to watch: a reader thread
  does blocking reads and hands bytes to the loop, and writes and settings changes run in order
  on one worker thread. RFC 2217 ``set_line`` really changes the remote port's settings.

Physical caveats protocols must handle themselves (protocols.md 1.6, 6):

* USB-serial adapters keep their own transmit buffer which ``TIOCOUTQ`` does not see. After
  ``drain()`` up to a few hundred bytes may still be on their way; at 300 Bd that is seconds.
  Protocols that switch baud rate after a message (IEC 62056-21 after the ACK) therefore wait
  a settle time (200-400 ms is reported) before ``set_line``.
* Linux ptys refuse 7-bit and parity settings (EINVAL) on recent kernels. A pty has no framing
  anyway, so on a pty the format is recorded and the port stays 8-bit clean.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import errno
import os
import termios
import threading
import urllib.parse
from pathlib import Path
from typing import Any

import serial
import serial_asyncio_fast

from metercom.errors import ConnectError, ConnectionLost, InputError, TransportTimeout
from metercom.transport._aio import StreamProtocol
from metercom.transport._rx import ReceiveBuffer
from metercom.transport.base import LineSettings, Transport

__all__ = ["SerialTransport", "open_serial"]

#: Unix98 pty slaves have these device major numbers on Linux.
_PTY_SLAVE_MAJORS = range(136, 144)
#: The only character format a Linux pty accepts (and all it needs: it carries bytes).
_PTY_FORMAT = LineSettings(bytesize=8, parity="N", stopbits=1)
#: How long the reader thread of a thread back end blocks in one read before checking for close.
_THREAD_POLL_S = 0.05
#: Polling interval bounds while waiting for the OS output queue to drain.
_OUTQ_POLL_MIN_S = 0.001
_OUTQ_POLL_MAX_S = 0.05


def _pyserial_settings(settings: LineSettings) -> dict[str, Any]:
    return {
        "baudrate": settings.baud_rate,
        "bytesize": settings.bytesize,
        "parity": settings.parity,
        "stopbits": settings.stopbits,
    }


def _is_pty_fd(fd: int) -> bool:
    try:
        return os.major(os.fstat(fd).st_rdev) in _PTY_SLAVE_MAJORS
    except OSError:
        return False


def _is_pty_path(path: str) -> bool:
    try:
        return os.major(Path(path).stat().st_rdev) in _PTY_SLAVE_MAJORS
    except OSError:
        return False


class _PortSerial(serial.Serial):  # type: ignore[misc]  # pyserial has no type hints
    """pyserial's POSIX port with two changes for use under asyncio.

    * ``write`` makes one non-blocking ``os.write`` and raises ``BlockingIOError`` when the
      kernel buffer is full. pyserial's own write with ``write_timeout=0`` retries ``EAGAIN`` in a
      busy loop, which would freeze the event loop while a slow line drains.
    * Read and write failures are reported to ``on_error`` at once. pyserial-asyncio-fast only
      reports them after closing the port in a worker thread, which under the virtual clock
      could arrive after a reader's timeout had already fired.
    """

    on_error: Any = None

    def _report(self, exc: BaseException) -> None:
        if self.on_error is not None:
            self.on_error(exc)

    def read(self, size: int = 1) -> bytes:
        try:
            data: bytes = super().read(size)
        except serial.SerialException as exc:
            self._report(exc)
            raise
        return data

    def write(self, data: bytes) -> int:
        if not self.is_open:
            raise serial.PortNotOpenError()
        try:
            return os.write(self.fd, data)
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:
            failure = serial.SerialException(f"write failed: {exc}")
            self._report(failure)
            raise failure from exc


class _Port:
    """What SerialTransport needs from a back end."""

    is_pty = False

    def write(self, data: bytes) -> None:
        raise NotImplementedError

    async def wait_written(self) -> None:
        """Until every byte has been handed to the OS (or to the remote port)."""

    async def wait_sent(self, line: LineSettings) -> None:
        """Until the OS (or the remote port) has sent everything handed to it."""

    async def apply(self, settings: LineSettings) -> None:
        raise NotImplementedError

    def discard_os_input(self) -> None:
        """Drop bytes the OS holds for us (best effort)."""

    def is_dead(self) -> bool:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError


class _DevicePort(_Port):
    """A local device on pyserial-asyncio-fast's SerialTransport."""

    def __init__(self, ser: _PortSerial, aio: asyncio.Transport, protocol: StreamProtocol, url: str) -> None:
        self.serial = ser
        self.aio = aio
        self.protocol = protocol
        self.url = url
        self.is_pty = _is_pty_fd(ser.fileno())

    def write(self, data: bytes) -> None:
        self.aio.write(data)

    async def wait_written(self) -> None:
        await self.protocol.wait_written()

    async def wait_sent(self, line: LineSettings) -> None:
        if self.is_pty:
            return  # bytes written to a pty are at the other side at once; no wire to wait for
        loop = asyncio.get_running_loop()
        char_time_s = line.char_time_s
        pending = self._out_waiting()
        if pending is None:
            # The driver cannot report its queue: the best we can do is the queue's wire time
            # as of now, which we do not know either. Wait one character for the shift register.
            await asyncio.sleep(char_time_s)
            return
        # A stalled queue (flow control holding the line, a wedged adapter) must not hang the
        # caller: allow twice the wire time of what is queued, plus a second, after each progress.
        deadline = loop.time() + 2 * pending * char_time_s + 1.0
        while pending:
            if loop.time() > deadline:
                raise TransportTimeout(
                    f"{self.url}: {pending} bytes still in the output queue after waiting for them "
                    f"to leave at {line}; is hardware flow control (CTS) holding the line?"
                )
            await asyncio.sleep(min(max(pending * char_time_s, _OUTQ_POLL_MIN_S), _OUTQ_POLL_MAX_S))
            now_pending = self._out_waiting() or 0
            if now_pending < pending:
                deadline = loop.time() + 2 * now_pending * char_time_s + 1.0
            pending = now_pending
        # TIOCOUTQ does not count the character in the UART's shift register.
        await asyncio.sleep(char_time_s)

    def _out_waiting(self) -> int | None:
        try:
            return int(self.serial.out_waiting)
        except (OSError, termios.error, serial.SerialException):
            return None

    async def apply(self, settings: LineSettings) -> None:
        # A pty keeps the baud rate but refuses 7-bit and parity settings (module docstring);
        # it has no framing, so only the baud rate is passed on and the format is recorded.
        wanted = _pyserial_settings(
            settings if not self.is_pty else _PTY_FORMAT.with_baud(settings.baud_rate)
        )
        try:
            self.serial.apply_settings(wanted)
        except (ValueError, OverflowError) as exc:
            raise InputError(f"{self.url}: the port cannot be set to {settings}: {exc}") from exc
        except (OSError, termios.error) as exc:
            raise ConnectError(f"{self.url}: the port refused the settings {settings}: {exc}") from exc

    def discard_os_input(self) -> None:
        with contextlib.suppress(OSError, termios.error, serial.SerialException):
            self.serial.reset_input_buffer()

    def is_dead(self) -> bool:
        return self.aio.is_closing() or self.protocol.lost

    async def close(self) -> None:
        ser = self.serial
        if not self.aio.is_closing():
            # abort() stops reading and writing at once and schedules pyserial-asyncio-fast's
            # close in a worker thread; closing the port right here makes the hang-up visible
            # to the peer immediately, and the worker then finds it already closed.
            self.aio.abort()
            with contextlib.suppress(OSError, termios.error, serial.SerialException):
                ser.close()
        # else: the transport is already closing after an I/O error and closes the port itself.


class _SocketPort(_Port):
    """``socket://``: a TCP connection, as pyserial-asyncio-fast makes it."""

    def __init__(self, aio: asyncio.Transport, protocol: StreamProtocol) -> None:
        self.aio = aio
        self.protocol = protocol

    def write(self, data: bytes) -> None:
        self.aio.write(data)

    async def wait_written(self) -> None:
        await self.protocol.wait_written()

    async def apply(self, settings: LineSettings) -> None:
        pass  # a raw socket has no line; the device at the far end has its own settings

    def is_dead(self) -> bool:
        return self.aio.is_closing() or self.protocol.lost

    async def close(self) -> None:
        if not self.aio.is_closing():
            self.aio.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(2.0):
                await self.protocol.wait_closed()
        if not self.protocol.lost:
            self.aio.abort()


class _ThreadPort(_Port):
    """Ports without a file descriptor (``rfc2217://``, ``loop://``): blocking calls in threads."""

    def __init__(self, ser: Any, rx: ReceiveBuffer, url: str) -> None:
        self.serial = ser
        self.rx = rx
        self.url = url
        self._loop = asyncio.get_running_loop()
        self._stop = threading.Event()
        self._failed: BaseException | None = None
        # One worker keeps writes and settings changes in order.
        self._worker = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="metercom-serial-w")
        self._pending: list[asyncio.Future[Any]] = []
        self._reader = threading.Thread(target=self._read_loop, name=f"metercom-serial-r {url}", daemon=True)
        self._reader.start()

    def _post(self, callback: Any, *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is already closed: nobody listens
            self._loop.call_soon_threadsafe(callback, *args)

    def _read_loop(self) -> None:
        ser = self.serial
        while not self._stop.is_set():
            try:
                data = ser.read(max(1, min(int(ser.in_waiting), 65536)))
            except Exception as exc:  # noqa: BLE001 - thread boundary: every failure goes to the loop
                if not self._stop.is_set():
                    self._post(self._fail, exc)
                return
            if data:
                self._post(self.rx.feed, data)

    def _fail(self, exc: BaseException) -> None:
        if self._failed is None:
            self._failed = exc
        self.rx.feed_end(ConnectionLost, f"the port failed: {exc}", exc)

    def _run(self, func: Any, *args: Any, fatal: bool = False) -> asyncio.Future[Any]:
        """Run ``func`` on the worker; a ``fatal`` failure (a write) marks the port dead."""
        future = self._loop.run_in_executor(self._worker, func, *args)
        self._pending.append(future)

        def done(future: asyncio.Future[Any]) -> None:
            with contextlib.suppress(ValueError):
                self._pending.remove(future)
            if fatal and not future.cancelled() and (exc := future.exception()) is not None:
                self._fail(exc)

        future.add_done_callback(done)
        return future

    def write(self, data: bytes) -> None:
        self._run(self.serial.write, data, fatal=True)

    async def wait_written(self) -> None:
        while self._pending:
            await asyncio.wait(list(self._pending))
        if self._failed is not None:
            raise ConnectionLost(f"{self.url}: the port failed: {self._failed}") from self._failed

    async def wait_sent(self, line: LineSettings) -> None:  # noqa: ARG002 - the far port paces itself
        await self._run(self.serial.flush)

    async def apply(self, settings: LineSettings) -> None:
        try:
            await self._run(self.serial.apply_settings, _pyserial_settings(settings))
        except (ValueError, OverflowError) as exc:
            raise InputError(f"{self.url}: the port cannot be set to {settings}: {exc}") from exc
        except (OSError, serial.SerialException) as exc:
            raise ConnectError(f"{self.url}: the port refused the settings {settings}: {exc}") from exc

    def is_dead(self) -> bool:
        return self._failed is not None

    async def close(self) -> None:
        self._stop.set()
        with contextlib.suppress(Exception):
            await self._loop.run_in_executor(self._worker, self.serial.close)
        self._worker.shutdown(wait=False)
        await asyncio.to_thread(self._reader.join, 2.0)


class SerialTransport(Transport):
    """A serial port or pyserial URL; open with :func:`open_serial` (or ``open_transport``)."""

    def __init__(self, url: str, port: _Port, rx: ReceiveBuffer, line: LineSettings) -> None:
        self.url = url
        self._port = port
        self._rx = rx
        self._line = line
        self._closed = False

    @property
    def line(self) -> LineSettings:
        return self._line

    @property
    def is_pty(self) -> bool:
        """True when the device is a pseudo-terminal (bytes only, no timing or framing)."""
        return self._port.is_pty

    async def read(self, max_bytes: int = 4096, *, timeout_s: float | None = None) -> bytes:
        return await self._rx.read(max_bytes, timeout_s)

    def _check_open(self) -> None:
        if self._closed:
            raise ConnectionLost(f"{self.url}: the link was closed on this side")
        if self._port.is_dead() or self._rx.ended:
            raise ConnectionLost(f"{self.url}: the port is gone (device removed, or the peer hung up)")

    async def write(self, data: bytes) -> None:
        self._check_open()
        if data:
            self._port.write(data)

    async def drain(self) -> None:
        self._check_open()
        await self._port.wait_written()
        self._check_open()
        await self._port.wait_sent(self._line)

    async def set_line(self, settings: LineSettings) -> None:
        """Change baud rate and format of the open port.

        Call :meth:`drain` first: bytes still in the UART go out at the new settings and arrive
        garbled. USB adapters may need an extra settle time on top (module docstring).
        """
        self._check_open()
        if settings != self._line:
            await self._port.apply(settings)
            self._line = settings

    def discard_input(self) -> None:
        self._rx.discard()
        if not self._closed:
            self._port.discard_os_input()

    async def close(self) -> None:
        """Close the port at once; idempotent.

        A local port stops sending immediately: bytes still waiting in user space are dropped
        (call :meth:`drain` first if they matter), so closing never hangs on a stalled line.
        """
        if self._closed:
            return
        self._closed = True
        self._rx.close_local()
        await self._port.close()


async def open_serial(
    port: str,
    line: LineSettings | None = None,
    *,
    connect_timeout_s: float = 10.0,
    url: str | None = None,
    exclusive: bool = True,
) -> SerialTransport:
    """Open ``port``: a device path, or a pyserial URL (``socket://``, ``rfc2217://``, ``loop://``).

    ``line`` defaults to 9600 8N1. ``url`` is the name used in messages (defaults to ``port``).
    ``exclusive`` locks a local device against other programs. Raises
    :class:`~metercom.errors.ConnectError` when the port is missing, busy or refuses ``line``,
    or when a network port does not answer within ``connect_timeout_s``.
    """
    line = line or LineSettings()
    url = url or port
    rx = ReceiveBuffer(url)
    scheme = urllib.parse.urlsplit(port).scheme if "://" in port else ""
    backend: _Port
    if not scheme:
        backend = await _open_device(port, line, rx, url, exclusive)
    elif scheme == "socket":
        backend = await _open_socket(port, rx, url, connect_timeout_s)
    else:
        backend = await _open_threaded(port, line, rx, url, connect_timeout_s)
    return SerialTransport(url, backend, rx, line)


async def _open_device(port: str, line: LineSettings, rx: ReceiveBuffer, url: str, exclusive: bool) -> _Port:
    loop = asyncio.get_running_loop()
    ser = _PortSerial()
    ser.port = port
    ser.exclusive = exclusive
    # Non-blocking from the start: pyserial-asyncio-fast sets these too, but only after opening.
    ser.timeout = 0
    ser.write_timeout = 0
    try:
        ser.apply_settings(
            _pyserial_settings(_PTY_FORMAT.with_baud(line.baud_rate) if _is_pty_path(port) else line)
        )
        ser.open()
    except serial.SerialException as exc:  # before OSError: SerialException derives from it
        raise ConnectError(_open_failure(url, exc)) from exc
    except (ValueError, OverflowError) as exc:
        raise InputError(f"{url}: the port cannot be set to {line}: {exc}") from exc
    except (termios.error, OSError) as exc:
        raise ConnectError(f"{url}: the port refused {line}: {exc}") from exc

    protocol = StreamProtocol(rx)
    rx.set_flow_control(protocol.pause_reading, protocol.resume_reading)
    ser.on_error = lambda exc: rx.feed_end(
        ConnectionLost, f"the port failed (device removed or the peer hung up): {exc}", exc
    )
    aio, _ = await serial_asyncio_fast.connection_for_serial(loop, lambda: protocol, ser)
    # high=0 so pause_writing/resume_writing tell exactly when asyncio's buffer is empty; the
    # protocol sets this again in connection_made, which pyserial-asyncio-fast calls later.
    aio.set_write_buffer_limits(high=0)
    return _DevicePort(ser, aio, protocol, url)


def _open_failure(url: str, exc: serial.SerialException) -> str:
    code = exc.errno if isinstance(exc.errno, int) else None
    if code == errno.ENOENT:
        return f"{url}: no such port (is the adapter plugged in? check `ls /dev/ttyUSB* /dev/serial/by-id`)"
    if code in (errno.EACCES, errno.EPERM):
        return f"{url}: permission denied (add the user to the 'dialout' group)"
    if code in (errno.EBUSY, errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in str(exc):
        return f"{url}: the port is in use by another program"
    return f"{url}: cannot open the port: {exc}"


async def _open_socket(port: str, rx: ReceiveBuffer, url: str, connect_timeout_s: float) -> _Port:
    loop = asyncio.get_running_loop()
    try:
        # Validates the URL and its options the way pyserial would, without opening anything.
        host, tcp_port = serial.serial_for_url(port, do_not_open=True).from_url(port)
    except (serial.SerialException, ValueError, KeyError) as exc:  # KeyError: a pyserial bug
        raise InputError(f"{url}: not a valid socket:// URL: {exc!r}") from exc
    protocol = StreamProtocol(rx)
    rx.set_flow_control(protocol.pause_reading, protocol.resume_reading)
    try:
        async with asyncio.timeout(connect_timeout_s):
            aio, _ = await loop.create_connection(lambda: protocol, host, tcp_port)
    except TimeoutError as exc:
        raise ConnectError(
            f"{url}: no connection to {host}:{tcp_port} within {connect_timeout_s:g} s"
        ) from exc
    except ConnectionRefusedError as exc:
        raise ConnectError(f"{url}: connection to {host}:{tcp_port} refused") from exc
    except OSError as exc:
        raise ConnectError(f"{url}: cannot connect to {host}:{tcp_port}: {exc.strerror or exc}") from exc
    return _SocketPort(aio, protocol)


async def _open_threaded(
    port: str, line: LineSettings, rx: ReceiveBuffer, url: str, connect_timeout_s: float
) -> _Port:
    loop = asyncio.get_running_loop()

    def opener() -> Any:
        return serial.serial_for_url(port, timeout=_THREAD_POLL_S, **_pyserial_settings(line))

    future = loop.run_in_executor(None, opener)
    try:
        async with asyncio.timeout(connect_timeout_s):
            ser = await asyncio.shield(future)
    except TimeoutError as exc:
        # The opener thread may still succeed later: close what it opens.
        future.add_done_callback(_close_late)
        raise ConnectError(f"{url}: no answer within {connect_timeout_s:g} s") from exc
    except (ValueError, OverflowError) as exc:
        raise InputError(f"{url}: {exc}") from exc
    except (serial.SerialException, OSError) as exc:
        raise ConnectError(f"{url}: cannot open: {exc}") from exc
    return _ThreadPort(ser, rx, url)


def _close_late(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is None:
        with contextlib.suppress(Exception):
            future.result().close()
