"""The virtual controller itself: a byte-in / byte-out engine with no I/O of its own.

`VirtualController.receive(data, now)` takes bytes from the wire, `step(now)` advances
virtual time, `take_output()` returns the bytes the controller has written since the last
call. The pty server (`sim.controller.pty_server`) is the only caller in production; tests
may drive it directly.

Faithful to grbl where it matters for a sender:
  * real-time bytes (``?`` ``!`` ``~`` 0x18) are picked out on arrival and never enter the
    receive ring;
  * the ring holds ``rx_buffer - 1`` bytes (a ring buffer with one slot kept free); a byte
    that arrives when it is full is lost;
  * lines are read out of the ring only while the planner has room, so a full planner
    backs up the ring and a sender that does not count bytes overruns it;
  * ``ok`` is sent once a line is parsed and planned (not executed); ``Bf:`` in the status
    report gives free planner blocks and free ring bytes.
"""

from __future__ import annotations

import math
import re
import threading
from collections import deque
from dataclasses import dataclass
from typing import Literal, Sequence

AXES = "XYZABCU"
RT_STATUS, RT_HOLD, RT_RESUME, RT_RESET = 0x3F, 0x21, 0x7E, 0x18
REALTIME = frozenset({RT_STATUS, RT_HOLD, RT_RESUME, RT_RESET})
WELCOME = "Grbl 1.1h ['$' for help]"
RAPID_UNITS_MIN = 6000.0

GRBL_ERRORS = {
    1: "G-code words consist of a letter and a value. Letter was not found.",
    2: "Numeric value format is not valid or missing an expected value.",
    3: "Grbl '$' system command was not recognized or supported.",
    8: "Grbl '$' command cannot be used unless Grbl is IDLE.",
    9: "G-code locked out during alarm or jog state.",
    11: "Max characters per line exceeded. Line was not processed and executed.",
    20: "Unsupported or invalid g-code command found in block.",
    22: "Feed rate has not yet been set or is undefined.",
    25: "Repeated g-code word found in block.",
}
GRBL_ALARMS = {
    1: "Hard limit triggered. Machine position is likely lost due to sudden and immediate "
       "halt. Re-homing is highly recommended.",
    2: "G-code motion target exceeds machine travel.",
    3: "Reset while in motion. Grbl cannot guarantee position. Lost steps are likely.",
}
_WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")
_SUPPORTED_G = {0, 1, 4, 17, 20, 21, 54, 90, 91, 93, 94}
_SUPPORTED_M = {0, 2, 3, 4, 5, 30}


@dataclass
class Faults:
    """Faults to inject. Byte indices count bytes on the wire from 0 (real-time bytes
    included); line numbers count the G-code lines the controller parsed, from 1
    (``$`` system commands and Marlin's M110/M113 bookkeeping lines are not counted)."""

    drop_in: Sequence[int] = ()        # host -> controller bytes lost on the wire
    corrupt_in: Sequence[int] = ()     # host -> controller bytes garbled (replaced)
    drop_out: Sequence[int] = ()       # controller -> host bytes lost
    corrupt_out: Sequence[int] = ()    # controller -> host bytes garbled
    corrupt_with: int = 0x7F           # the byte a corrupted byte becomes (DEL)
    silent_at_line: int | None = None  # stop answering anything once line k arrives
    unplug_at_line: int | None = None  # close the port when line k arrives (k is lost)
    error_at_line: int | None = None   # answer line k with error:error_code
    error_code: int = 20
    alarm_at_line: int | None = None   # raise ALARM:alarm_code when line k arrives
    alarm_code: int = 1

    @classmethod
    def from_kwargs(cls, kw: dict) -> "Faults":
        known = set(cls.__dataclass_fields__)
        bad = sorted(set(kw) - known)
        if bad:
            raise TypeError(f"unknown fault(s) {bad}; known: {sorted(known)}")
        return cls(**kw)


@dataclass
class _Block:
    start: tuple[float, ...]
    end: tuple[float, ...]
    duration_v: float      # virtual seconds
    line: str
    ack_when_done: bool = False
    marker: bool = False   # a non-motion line logged in order; takes no planner block


@dataclass
class _Modal:
    motion: int = 0        # G0 / G1
    absolute: bool = True  # G90 / G91
    inverse_time: bool = False  # G93 / G94
    feed: float = 0.0
    units_mm: bool = True
    spindle: int = 5


class VirtualController:
    """Serial controller engine (see module doc). Thread-safe: one lock guards all state.

    Observables for tests: ``accepted`` (lines planned, in order, as received), ``executed``
    (lines whose motion finished), ``position`` (7 axes), ``state``, ``rt_log``
    ((byte, wall time) of every real-time byte), ``overrun_dropped`` (bytes lost to a full
    ring), ``gcode_lines`` (G-code lines parsed so far).
    """

    def __init__(self, protocol: Literal["grbl", "marlin", "ack"] = "grbl", rx_buffer: int = 128,
                 planner_blocks: int | None = None, time_scale: float = 1.0,
                 faults: Faults | None = None, keepalive_s: float = 0.5) -> None:
        if protocol not in ("grbl", "marlin", "ack"):
            raise ValueError(f"unknown protocol {protocol!r}; use grbl, marlin or ack")
        if rx_buffer < 8:
            raise ValueError("rx_buffer must be at least 8 bytes")
        if time_scale <= 0:
            raise ValueError("time_scale must be > 0")
        self.protocol = protocol
        self.rx_capacity = rx_buffer - 1
        self.planner_blocks = planner_blocks or {"grbl": 15, "marlin": 4, "ack": 1}[protocol]
        self.time_scale = float(time_scale)
        self.faults = faults or Faults()
        self.keepalive_s = keepalive_s
        self.lock = threading.RLock()
        self._out = bytearray()
        self.accepted: list[str] = []
        self.executed: list[str] = []
        self.received_lines: list[str] = []
        self.rt_log: list[tuple[int, float]] = []
        self.overrun_dropped = 0
        self.gcode_lines = 0
        self.unplug_requested = False
        self.fault_at: float | None = None   # wall time the line-keyed fault fired
        self.position = tuple(0.0 for _ in AXES)
        self._reports = 0    # status reports sent (grbl adds WCO to every 10th)
        self._bytes_in = 0
        self._bytes_out = 0
        self._last_keepalive = 0.0
        self._now = 0.0
        self._power_on()

    # ------------------------------------------------------------------ state
    def _power_on(self) -> None:
        self._ring: deque[int] = deque()
        self._linebuf = bytearray()
        self._pending: str | None = None     # a parsed line waiting for planner room
        self._pending_block: _Block | None = None
        self._blocks: deque[_Block] = deque()
        self._block_t = 0.0                  # virtual time spent in the head block
        self._modal = _Modal()
        self._parser_pos = self.position     # position after the last planned block
        self.state = "Idle"
        self.check_mode = False
        self.silent = False
        self.halted = False
        self.marlin_last_n = 0

    # ------------------------------------------------------------------ wire in
    def receive(self, data: bytes, now: float) -> None:
        """Bytes from the host, in wire order."""
        f = self.faults
        with self.lock:
            self._advance(now)
            for b in data:
                i = self._bytes_in
                self._bytes_in += 1
                if i in f.drop_in:
                    continue
                if i in f.corrupt_in:
                    b = f.corrupt_with
                if self.silent or self.unplug_requested:
                    continue
                if self.protocol == "grbl" and b in REALTIME:
                    self.rt_log.append((b, now))
                    self._realtime(b)
                    continue
                if len(self._ring) >= self.rx_capacity:
                    self.overrun_dropped += 1
                    continue
                self._ring.append(b)
                if self._pending is None:
                    self._drain_ring()

    def _drain_ring(self) -> None:
        """Move bytes from the ring into lines while the planner accepts them."""
        ring, buf = self._ring, self._linebuf
        while ring and self._pending is None and not self.silent and not self.unplug_requested:
            b = ring.popleft()
            if b in (0x0A, 0x0D):
                if buf:
                    text = buf.decode("latin-1")
                    buf.clear()
                    self._line(text)
                continue
            buf.append(b)

    # ------------------------------------------------------------------ wire out
    def _emit(self, text: str) -> None:
        if self.silent or self.unplug_requested:
            return
        f = self.faults
        for b in (text + "\r\n").encode("latin-1"):
            i = self._bytes_out
            self._bytes_out += 1
            if i in f.drop_out:
                continue
            self._out.append(f.corrupt_with if i in f.corrupt_out else b)

    def take_output(self) -> bytes:
        with self.lock:
            out = bytes(self._out)
            self._out.clear()
            return out

    # ------------------------------------------------------------------ real-time
    def _realtime(self, b: int) -> None:
        if b == RT_STATUS:
            self._emit(self.status_report())
        elif b == RT_HOLD:
            if self.state in ("Run", "Idle") and not self.check_mode:
                self.state = "Hold:0"
        elif b == RT_RESUME:
            if self.state.startswith("Hold"):
                self.state = "Run" if self._blocks else "Idle"
                self._drain_ring()
        elif b == RT_RESET:
            self.soft_reset()

    def soft_reset(self) -> None:
        with self.lock:
            moving = bool(self._blocks) and self.state in ("Run", "Hold:0")
            alarm = self.state == "Alarm" or (moving and self.state == "Run")
            self._power_on()
            self._emit("")
            self._emit(WELCOME)
            if alarm:
                self.state = "Alarm"
                self._emit("[MSG:'$H'|'$X' to unlock]")

    def status_report(self) -> str:
        pos = ",".join(f"{v:.3f}" for v in self.position)
        free_blocks = self.planner_blocks - self._planned()
        free_rx = self.rx_capacity - len(self._ring)
        state = "Check" if self.check_mode else self.state
        feed = self._modal.feed if self.state == "Run" else 0.0
        self._reports += 1
        wco = "|WCO:" + ",".join("0.000" for _ in AXES) if self._reports % 10 == 1 else ""
        return f"<{state}|MPos:{pos}|Bf:{free_blocks},{free_rx}|FS:{feed:.0f},0{wco}>"

    # ------------------------------------------------------------------ lines
    def _line(self, raw: str) -> None:
        self.received_lines.append(raw)
        if self.protocol == "marlin":
            self._marlin_line(raw)
        else:
            self._grbl_line(raw)

    def _count_and_fault(self, text: str) -> str | None:
        """Count a G-code line and fire the faults keyed on it. Returns 'stop' if the
        line must not be processed further."""
        self.gcode_lines += 1
        k, f = self.gcode_lines, self.faults
        if k in (f.silent_at_line, f.unplug_at_line, f.alarm_at_line, f.error_at_line):
            self.fault_at = self._now
        if f.silent_at_line == k:
            self.silent = True
            return "stop"
        if f.unplug_at_line == k:
            self.unplug_requested = True
            return "stop"
        if f.alarm_at_line == k:
            self.alarm(f.alarm_code)
            return "stop"
        if f.error_at_line == k:
            self._error(f.error_code, text)
            return "stop"
        return None

    def _error(self, code: int, text: str) -> None:
        if self.protocol == "marlin":
            self._emit(f"echo:Unknown command: \"{text}\" (error {code})")
            self._emit("ok")
        else:
            self._emit(f"error:{code}")

    def alarm(self, code: int) -> None:
        """Raise ALARM:code like a hard limit: halt, flush ring and planner, lock out G-code."""
        with self.lock:
            self._ring.clear()
            self._linebuf.clear()
            self._blocks.clear()
            self._pending = None
            self._parser_pos = self.position
            self.state = "Alarm"
            if self.protocol == "marlin":
                self._emit(f"Error:Printer halted. kill() called! (alarm {code})")
                self.halted = True
            else:
                self._emit(f"ALARM:{code}")
                self._emit("[MSG:Reset to continue]")

    def _grbl_line(self, raw: str) -> None:
        text = "".join(raw.split()).upper()
        if not text:
            self._emit("ok")
            return
        if text.startswith("$"):
            self._system(text)
            return
        if self._count_and_fault(text):
            return
        if self.state == "Alarm":
            self._emit("error:9")
            return
        self._gcode(text)

    def _system(self, text: str) -> None:
        if text == "$I":
            self._emit("[VER:1.1h.20190825:sculptor-virtual]")
            self._emit(f"[OPT:V,{self.planner_blocks},{self.rx_capacity + 1}]")
        elif text == "$C":
            if self.state not in ("Idle", "Check", "Alarm") and not self.check_mode:
                self._emit("error:8")
                return
            if self.check_mode:
                self._emit("[MSG:Disabled]")
                self._emit("ok")
                self.soft_reset()   # grbl resets when leaving check mode
                return
            self.check_mode = True
            self._emit("[MSG:Enabled]")
        elif text == "$X":
            if self.state == "Alarm":
                self.state = "Idle"
                self._emit("[MSG:Caution: Unlocked]")
        elif text == "$H":
            self.position = self._parser_pos = tuple(0.0 for _ in AXES)
            self.state = "Idle"
        elif text == "$G":
            m = self._modal
            self._emit(f"[GC:G{m.motion} G54 G17 {'G21' if m.units_mm else 'G20'} "
                       f"{'G90' if m.absolute else 'G91'} {'G93' if m.inverse_time else 'G94'} "
                       f"M{m.spindle} F{m.feed:g}]")
        elif text == "$$":
            self._emit("$0=10")
            self._emit("$13=0")
        else:
            self._emit("error:3")
            return
        self._emit("ok")

    def _gcode(self, text: str) -> None:
        """Parse and plan one G-code line; answer per protocol."""
        err, block = self._parse(text)
        if err:
            self._error(err, text)
            return
        if self.check_mode or block is None:
            self.accepted.append(text)
        if self.check_mode:
            self._emit("ok")
        elif block is None:
            if self._blocks:      # keep the execution log in program order
                self._blocks.append(_Block(self._parser_pos, self._parser_pos, 0.0, text,
                                           marker=True))
            else:
                self.executed.append(text)
            self._emit("ok")
        else:
            self._plan(block)

    def _planned(self) -> int:
        return sum(1 for b in self._blocks if not b.marker)

    def _plan(self, block: _Block) -> None:
        if self._planned() >= self.planner_blocks:
            self._pending = block.line
            self._pending_block = block
            return
        self.accepted.append(block.line)
        self._blocks.append(block)
        self._parser_pos = block.end
        if self.state == "Idle":
            self.state = "Run"
        if self.protocol == "ack":
            block.ack_when_done = True
        elif not block.ack_when_done:
            self._emit("ok")

    def _parse(self, text: str) -> tuple[int, _Block | None]:
        pos = 0
        words: dict[str, float] = {}
        gs: list[int] = []
        ms: list[int] = []
        for m in _WORD.finditer(text):
            if m.start() != pos:
                return (2 if text[pos].isalpha() else 1), None
            pos = m.end()
            letter, value = m.group(1), float(m.group(2))
            if letter == "G":
                gs.append(int(value)) if value == int(value) else gs.append(-1)
            elif letter == "M":
                ms.append(int(value))
            else:
                if letter in words:
                    return 25, None
                words[letter] = value
        if pos != len(text):
            return (2 if text[pos].isalpha() else 1), None
        mod = self._modal
        new = _Modal(**vars(mod))
        for g in gs:
            if g not in _SUPPORTED_G:
                return 20, None
            if g in (0, 1):
                new.motion = g
            elif g in (90, 91):
                new.absolute = g == 90
            elif g in (93, 94):
                new.inverse_time = g == 93
            elif g in (20, 21):
                new.units_mm = g == 21
        if 400 in ms and self.protocol == "marlin":   # M400: answer once every move is done
            return 0, _Block(self._parser_pos, self._parser_pos, 0.0, text, ack_when_done=True)
        for mc in ms:
            if mc not in _SUPPORTED_M:
                return 20, None
            if mc in (3, 4, 5):
                new.spindle = mc
        for letter in words:
            if letter not in AXES + "FSPN":
                return 20, None
        if "F" in words:
            new.feed = words["F"]
        elif (new.inverse_time and new.motion == 1
              and (1 in gs or any(a in words for a in AXES))):
            return 22, None    # G93 needs F on every feed block (a bare G1 too, like grbl)
        if 4 in gs:
            self._modal = new
            dwell = words.get("P", 0.0)
            return 0, _Block(self._parser_pos, self._parser_pos, dwell, text)
        if not any(a in words for a in AXES):
            self._modal = new
            return 0, None
        start = self._parser_pos
        end = tuple(words[a] + (0.0 if new.absolute else s) if a in words else s
                    for a, s in zip(AXES, start))
        dist = math.dist(start, end)
        if new.motion == 0:
            dur = dist / RAPID_UNITS_MIN * 60.0
        elif new.inverse_time:
            if new.feed <= 0:
                return 22, None
            dur = 60.0 / new.feed
        else:
            if new.feed <= 0:
                return 22, None
            dur = dist / new.feed * 60.0
        self._modal = new
        if dist == 0.0:
            return 0, None          # grbl drops zero-length moves
        return 0, _Block(start, end, dur, text)

    # ------------------------------------------------------------------ marlin framing
    def _marlin_line(self, raw: str) -> None:
        if self.halted:
            return
        text = raw.strip()
        if not text:
            return
        n = None
        if text.startswith("N"):
            m = re.match(r"N(\d+)\s*(.*)$", text)
            if not m:
                return self._resend("Line Number is not Last Line Number+1")
            n, rest = int(m.group(1)), m.group(2)
            if "*" not in rest:
                return self._resend("No Checksum with line number")
            body, _, cs = rest.rpartition("*")
            cs_calc = 0
            for ch in text[:text.rindex("*")].encode("latin-1"):
                cs_calc ^= ch
            if not cs.isdigit() or int(cs) != cs_calc:
                return self._resend("checksum mismatch")
            cmd = body.strip().upper()
            if cmd.startswith("M110"):
                mm = re.search(r"N(\d+)", cmd[4:])
                self.marlin_last_n = int(mm.group(1)) if mm else n
                self._emit("ok")
                return
            if n != self.marlin_last_n + 1:
                return self._resend("Line Number is not Last Line Number+1")
            self.marlin_last_n = n
        else:
            cmd = text.upper()
        cmd = "".join(cmd.split())
        if cmd.startswith("M112"):          # emergency stop (Marlin's emergency parser)
            self.alarm(112)
            return
        if cmd.startswith("M113"):
            mm = re.search(r"S(\d+)", cmd)
            if mm:
                self.keepalive_s = max(0.1, float(mm.group(1)))
            self._emit("ok")
            return
        if cmd.startswith("M105") or cmd.startswith("M114"):
            self._emit("ok " + " ".join(f"{a}:{v:.3f}" for a, v in zip(AXES, self.position)))
            return
        if self._count_and_fault(cmd):
            return
        self._gcode(cmd)

    def _resend(self, why: str) -> None:
        self._emit(f"Error:{why}, Last Line: {self.marlin_last_n}")
        self._emit(f"Resend: {self.marlin_last_n + 1}")
        self._emit("ok")

    # ------------------------------------------------------------------ time
    def step(self, now: float) -> None:
        """Advance virtual time to wall time ``now``."""
        with self.lock:
            self._advance(now)
            if (self._pending is not None and self.protocol in ("marlin", "ack")
                    and not self.silent and now - self._last_keepalive >= self.keepalive_s):
                self._last_keepalive = now
                self._emit("echo:busy: processing" if self.protocol == "marlin" else "busy")
            elif (self.protocol == "ack" and self._blocks and not self.silent
                    and now - self._last_keepalive >= self.keepalive_s):
                self._last_keepalive = now
                self._emit("busy")

    def _advance(self, now: float) -> None:
        dt_v = max(0.0, now - self._now) * self.time_scale
        self._now = now
        if self.state != "Run":
            return
        while self._blocks and dt_v > 0:
            b = self._blocks[0]
            left = b.duration_v - self._block_t
            if dt_v < left:
                self._block_t += dt_v
                u = self._block_t / b.duration_v
                self.position = tuple(s + (e - s) * u for s, e in zip(b.start, b.end))
                return
            dt_v -= left
            self._finish_block()
        if not self._blocks:
            self._block_t = 0.0
            if self.state == "Run":
                self.state = "Idle"

    def _finish_block(self) -> None:
        b = self._blocks.popleft()
        self._block_t = 0.0
        self.position = b.end
        self.executed.append(b.line)
        if b.ack_when_done:
            self._emit("ok")
        if self._pending is not None and self._pending_block is not None:
            blk = self._pending_block
            self._pending, self._pending_block = None, None
            self._plan(blk)
            self._drain_ring()

    def run_until_idle(self, now: float) -> None:
        """Test helper: finish every planned move at once."""
        with self.lock:
            while self._blocks and self.state == "Run":
                self._finish_block()
            if not self._blocks and self.state == "Run":
                self.state = "Idle"
