"""Serve a `VirtualController` on a pseudo-terminal so pyserial can open it like a port.

One thread moves bytes between the pty master and the controller and advances virtual
time every ``tick_s`` (2 ms), so real-time bytes are seen within a few milliseconds. The
slave side is what a sender opens (``ServedController.port``).

A sender that opens the port at another baud rate than the controller's gets garbage,
like a real UART with mismatched clocks: the server reads the baud the slave was set to
(termios) and, while it differs, scrambles every byte in both directions.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import threading
import time
import tty

from sim.controller.core import Faults, VirtualController


def _termios_speed(baud: int) -> int:
    speed = getattr(termios, f"B{baud}", None)
    if speed is None:
        raise ValueError(f"baud {baud} is not a standard termios rate")
    return speed


class ServedController:
    """A virtual controller behind a pty. ``port``: the slave path; ``stop()`` ends it.

    ``unplug()`` closes the pty (the port vanishes, the sender sees the device go away)
    while the controller keeps its state and keeps executing its planner, like a USB cable
    pulled from a powered machine; ``replug()`` serves the same controller on a new pty
    and returns the new port.
    """

    def __init__(self, controller: VirtualController, baud: int = 115200,
                 tick_s: float = 0.002) -> None:
        self.controller = controller
        self.baud = baud
        self._speed = _termios_speed(baud)
        self.tick_s = tick_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.port = ""
        self._open()

    # -------------------------------------------------------------- pty lifetime
    def _open(self) -> None:
        master, slave = os.openpty()
        tty.setraw(slave)
        attrs = termios.tcgetattr(slave)
        attrs[4] = attrs[5] = self._speed
        termios.tcsetattr(slave, termios.TCSANOW, attrs)
        self._master, self._slave = master, slave
        self.port = os.ttyname(slave)
        self._stop.clear()
        self.controller.unplug_requested = False
        self._thread = threading.Thread(target=self._serve, name="virtual-controller",
                                        daemon=True)
        self._thread.start()

    def _close_fds(self) -> None:
        for fd in (self._master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._master = self._slave = -1

    def stop(self) -> None:
        """Stop serving and close the pty (idempotent)."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2)
        self._thread = None
        if self._master >= 0:
            self._close_fds()

    def unplug(self) -> None:
        self.stop()

    def replug(self) -> str:
        """Serve the same controller (same position, planner, state) on a fresh pty."""
        self.stop()
        self._open()
        return self.port

    @property
    def unplugged(self) -> bool:
        return self._master < 0

    def __enter__(self) -> "ServedController":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -------------------------------------------------------------- the loop
    def _baud_ok(self) -> bool:
        try:
            attrs = termios.tcgetattr(self._slave)
        except termios.error:
            return True
        return attrs[5] == self._speed

    def _serve(self) -> None:
        c, master = self.controller, self._master
        garble = 0
        while not self._stop.is_set():
            try:
                r, _, _ = select.select([master], [], [], self.tick_s)
            except (OSError, ValueError):
                return
            now = time.monotonic()
            if r:
                try:
                    data = os.read(master, 4096)
                except OSError:
                    data = b""
                if data:
                    if self._baud_ok():
                        c.receive(data, now)
                    else:   # framing errors: the controller sees noise, answers noise
                        garble += len(data)
            c.step(now)
            out = c.take_output()
            if garble:
                out = bytes((0xF0 | (i & 0x0F)) for i in range(min(garble, 64))) + b"\r\n"
                garble = 0
            if out:
                try:
                    os.write(master, out)
                except OSError:
                    pass
            if c.unplug_requested:
                # the cable is pulled: the port disappears, the controller keeps moving
                self._close_fds()
                threading.Thread(target=self._keep_moving, daemon=True).start()
                return

    def _keep_moving(self) -> None:
        c = self.controller
        while not self._stop.is_set() and self._master < 0:
            c.step(time.monotonic())
            c.take_output()           # nobody listens
            time.sleep(self.tick_s)


def serve(protocol: str = "grbl", rx_buffer: int = 128, time_scale: float = 1.0,
          baud: int = 115200, planner_blocks: int | None = None, **faults) -> ServedController:
    """Start a virtual controller on a new pty; returns it with ``.port`` and ``.stop()``.

    ``faults`` are the fields of :class:`sim.controller.Faults` (``drop_in=[120]``,
    ``silent_at_line=40``, ``unplug_at_line=25``, ``error_at_line=7``, ...).
    """
    controller = VirtualController(protocol=protocol, rx_buffer=rx_buffer,  # type: ignore[arg-type]
                                   planner_blocks=planner_blocks, time_scale=time_scale,
                                   faults=Faults.from_kwargs(faults))
    return ServedController(controller, baud=baud)


def serve_cli(protocol: str = "grbl", time_scale: float = 1.0, rx_buffer: int = 128,
              baud: int = 115200) -> None:
    """Print the port name and serve until Ctrl-C (wired to ``sculptor sim --serve``)."""
    served = serve(protocol, rx_buffer=rx_buffer, time_scale=time_scale, baud=baud)
    print(f"virtual {protocol} controller on {served.port} "
          f"(baud {baud}, {rx_buffer}-byte buffer, time x{time_scale:g}); Ctrl-C to stop")
    print(f"  try: sculptor stream PROGRAM --port {served.port} --protocol {protocol}")
    sys.stdout.flush()
    try:
        while True:
            time.sleep(0.5)
            if served.unplugged:
                break
    except KeyboardInterrupt:
        pass
    finally:
        served.stop()
        print("virtual controller stopped")
