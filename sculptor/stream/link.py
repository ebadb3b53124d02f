"""The one thread that owns the serial port.

`SerialLink` opens the port (pyserial, exclusive lock), then a single I/O thread writes
real-time bytes first, queued lines next, and reads whatever arrives, split into lines.
During the hand-shake the lines go on ``rx`` as ``(arrival_time, text)``
(``(time, None, reason)``: the port is gone). While streaming, the runner *attaches* a
handler that the I/O thread calls with each batch of lines and every few milliseconds, so
an ``ok`` is turned into the next line without a thread switch. Other threads never touch
the port: `write` / `write_realtime` queue bytes and wake the I/O thread through a pipe,
so a feed hold reaches the wire within a millisecond or two.
"""

from __future__ import annotations

import contextlib
import errno
import os
import queue
import select
import threading
import time
from collections import deque
from pathlib import Path

import serial

from sculptor.errors import UserError


def open_port(port: str, baud: int) -> serial.Serial:
    """Open ``port`` for exclusive use, or raise UserError saying what is wrong and the fix."""
    if baud <= 0:
        raise UserError(f"--baud {baud} is not a baud rate; the profile gives the right one "
                        "(usually 115200)")
    is_url = "://" in port
    if not is_url and not Path(port).exists():
        raise UserError(f"no such port {port}; list ports with 'python -m "
                        "serial.tools.list_ports' and check the cable")
    try:
        if is_url:
            ser = serial.serial_for_url(port, baudrate=baud, timeout=0, write_timeout=2)
        else:
            ser = serial.Serial(port, baudrate=baud, timeout=0, write_timeout=2, exclusive=True)
    except serial.SerialException as e:
        code = e.errno
        text = str(e)
        if code in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
            raise UserError(f"no permission to open {port}; add your user to the 'dialout' "
                            "group (sudo usermod -aG dialout $USER) and log in again")
        if code == errno.EBUSY or "exclusively lock" in text or "busy" in text.lower():
            raise UserError(f"port {port} is busy: another program (another sculptor stream, "
                            "a serial monitor, ModemManager) has it open; close it first")
        if code == errno.ENOENT:
            raise UserError(f"no such port {port}; check the cable and the port name")
        raise UserError(f"cannot open {port}: {text}")
    except (ValueError, OSError) as e:
        raise UserError(f"cannot open {port} at {baud} baud: {e}")
    return ser


class SerialLink:
    """Owns an open port through one I/O thread (see module doc)."""

    def __init__(self, ser: serial.Serial) -> None:
        self.ser = ser
        self.port = ser.port or ""
        self.rx: "queue.Queue[tuple]" = queue.Queue()
        self._tx: deque[bytes] = deque()
        self._rt: deque[bytes] = deque()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_w, False)
        self._closing = False
        self.closed_reason: str | None = None
        self.bytes_out = 0
        self.rt_sent: list[tuple[bytes, float]] = []     # (byte, time it hit the wire)
        self._handler = None
        self._fd = -1
        self._thread = threading.Thread(target=self._run, name="serial-io", daemon=True)
        self._thread.start()

    @classmethod
    def open(cls, port: str, baud: int) -> "SerialLink":
        return cls(open_port(port, baud))

    # -------------------------------------------------------------- callers
    def write(self, data: bytes) -> None:
        self._tx.append(data)
        self._wake()

    def write_realtime(self, data: bytes) -> None:
        """Bytes the controller acts on at once (grbl ``!`` ``~`` ``?`` 0x18): they jump
        the queue of lines."""
        if data:
            self._rt.append(data)
            self._wake()

    def _wake(self) -> None:
        with contextlib.suppress(BlockingIOError, OSError):
            os.write(self._wake_w, b"x")

    def close(self) -> None:
        self._closing = True
        self._wake()
        self._thread.join(timeout=2)
        with contextlib.suppress(Exception):
            self.ser.close()
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> "SerialLink":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def flush_out(self, timeout: float = 1.0) -> None:
        """Wait until every queued byte has been written."""
        t_end = time.monotonic() + timeout
        while (self._tx or self._rt) and time.monotonic() < t_end and self.closed_reason is None:
            time.sleep(0.001)

    # -------------------------------------------------------------- the thread
    def _write_all(self, fd: int, data: bytes) -> None:
        view = memoryview(data)
        t_end = time.monotonic() + 2.0
        while view:
            try:
                n = os.write(fd, view)
            except BlockingIOError:
                if time.monotonic() > t_end:
                    raise OSError("writing to the port timed out (the device does not read)")
                select.select([], [fd], [], 0.05)
                continue
            view = view[n:]
            self.bytes_out += n

    def attach(self, handler) -> None:
        """Let ``handler`` run inside the I/O thread: ``handler.on_receive(batch, now)``
        with the lines that arrived (items as on ``rx``), ``handler.on_tick(now)`` at least
        every 5 ms. It writes with :meth:`write_now`. ``detach`` hands lines back to ``rx``."""
        self._handler = handler
        self._wake()

    def detach(self) -> None:
        self._handler = None

    def write_now(self, data: bytes) -> None:
        """Write at once; only from inside the I/O thread (a handler)."""
        self._write_all(self._fd, data)

    def _deliver(self, batch: list[tuple], now: float) -> None:
        h = self._handler
        if h is not None:
            h.on_receive(batch, now)
        else:
            for it in batch:
                self.rx.put(it)

    def _run(self) -> None:
        try:
            fd = self._fd = self.ser.fileno()
        except Exception as e:  # pragma: no cover - URL ports without a descriptor
            self._lost(f"port has no file descriptor ({e})")
            return
        os.set_blocking(fd, False)
        buf = bytearray()
        last_tick = 0.0
        try:
            while not self._closing:
                while self._rt:
                    b = self._rt.popleft()
                    self._write_all(fd, b)
                    self.rt_sent.append((b, time.monotonic()))
                while self._tx and not self._rt:
                    self._write_all(fd, self._tx.popleft())
                h = self._handler
                if h is not None:
                    now = time.monotonic()
                    if now - last_tick >= 0.004:     # on_receive pumps too; tick when quiet
                        last_tick = now
                        h.on_tick(now)
                        if self._rt:
                            continue
                r, _, _ = select.select([fd, self._wake_r], [], [],
                                        0.005 if h is not None else 0.05)
                if self._wake_r in r:
                    with contextlib.suppress(BlockingIOError):
                        os.read(self._wake_r, 4096)
                if fd in r:
                    try:
                        data = os.read(fd, 4096)
                    except BlockingIOError:
                        continue
                    if not data:
                        self._lost("the device closed (cable unplugged or controller off)")
                        return
                    now = time.monotonic()
                    buf += data
                    batch: list[tuple] = []
                    while True:
                        j = buf.find(b"\n")
                        if j < 0:
                            break
                        batch.append((now, bytes(buf[:j]).rstrip(b"\r").decode("latin-1")))
                        del buf[:j + 1]
                    if len(buf) > 512:      # no newline in sight: noise, hand it up
                        batch.append((now, bytes(buf).decode("latin-1")))
                        buf.clear()
                    if batch:
                        self._deliver(batch, now)
        except OSError as e:
            if not self._closing:
                self._lost(f"the device went away ({e.strerror or e})")
        finally:
            # a feed hold queued just before close() must still reach the controller
            with contextlib.suppress(OSError):
                while self._rt:
                    b = self._rt.popleft()
                    self._write_all(fd, b)
                    self.rt_sent.append((b, time.monotonic()))

    def _lost(self, why: str) -> None:
        self.closed_reason = why
        now = time.monotonic()
        self._deliver([(now, None, why)], now)
