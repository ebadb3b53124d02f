"""`stream_program`: check, connect, hand-shake, (check mode,) stream, journal, summarise.

Order of work, so that bad input never moves anything:
  1. load and check the program against the controller profile (length, characters);
  2. open the port (no such port / busy / no permission) and hand-shake (garbage = wrong
     baud; no answer; a controller in alarm or busy);
  3. optional check-mode pass (grbl ``$C``), stopping at the first error;
  4. for ``--resume``: read the journal, ask the controller where it is, plan the restart;
  5. stream with the protocol's state machine, journaling every line sent and
     acknowledged (fsynced, one group commit per loop turn, written *before* the bytes
     go out).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import queue
import re
import select
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from sculptor.artifacts.core import Provenance
from sculptor.artifacts.journal import Journal, JournalHeader
from sculptor.errors import UserError
from sculptor.profiles import ControllerProfile, load_controller
from sculptor.stream.link import SerialLink
from sculptor.stream.machine import (RT_RESET, RT_STATUS, Event, GrblSender, Item, Sender,
                                     State, make_sender, marlin_frame)
from sculptor.stream.program import Program, load_program
from sculptor.stream.responses import Response, parse_response
from sculptor.stream.resume import SYNC_LINES, JournalState, ResumePlan, plan_resume

DEFAULT_CONTROLLER = {"grbl": "grbl-6axis", "marlin": "marlin-6axis", "ack": None}
HANDSHAKE_S = 2.5


@dataclass
class StreamSummary:
    """What happened. ``lines_*`` count program lines of this run (resume preamble
    excluded); ``state``: done | failed | alarm; ``message``: why it stopped."""

    program: Path
    port: str
    protocol: str
    lines_total: int
    lines_sent: int = 0
    lines_acknowledged: int = 0
    errors: int = 0
    elapsed_s: float = 0.0
    journal: Path | None = None
    state: str = "idle"
    message: str = ""
    failed_line: int | None = None
    resumed_from_line: int | None = None
    resends: int = 0
    checked: bool = False
    stopped_at: float | None = None   # time.monotonic() when the fault was detected

    @property
    def ok(self) -> bool:
        return self.state == State.DONE.value

    # short names (sent / acknowledged / elapsed) for callers such as the demo
    @property
    def sent(self) -> int:
        return self.lines_sent

    @property
    def acknowledged(self) -> int:
        return self.lines_acknowledged

    @property
    def elapsed(self) -> float:
        return self.elapsed_s

    def text(self) -> str:
        head = "done" if self.ok else f"STOPPED ({self.state})"
        s = (f"{head}: {self.lines_acknowledged}/{self.lines_sent} lines acknowledged of "
             f"{self.lines_total}, {self.errors} error(s), {self.elapsed_s:.1f} s")
        if self.resumed_from_line:
            s += f", resumed at line {self.resumed_from_line}"
        if self.message:
            s += f"\n  {self.message}"
        if self.failed_line:
            s += f"\n  program line {self.failed_line}"
        if self.journal:
            s += f"\n  journal: {self.journal}"
            if not self.ok:
                s += f"  (continue with --resume {self.journal})"
        return s


def resolve_controller(protocol: str, controller: str | None) -> ControllerProfile:
    if protocol not in DEFAULT_CONTROLLER:
        raise UserError(f"unknown protocol '{protocol}'; use grbl, marlin or ack")
    name = controller or DEFAULT_CONTROLLER[protocol]
    if name is None:
        return ControllerProfile(name="generic-ack", kind="serial", protocol="ack",
                                 dialect="gcode-joint", baud=115200, rx_buffer_bytes=128)
    prof = load_controller(name)
    if prof.kind != "serial":
        raise UserError(f"controller '{prof.name}' takes a program file ({prof.protocol}), "
                        "it is not streamed; use 'sculptor robot' to write the program")
    if prof.protocol != protocol:
        raise UserError(f"controller '{prof.name}' speaks {prof.protocol}, not {protocol}; "
                        f"use --protocol {prof.protocol}")
    return prof


# --------------------------------------------------------------------------- hand-shake
class _Wire:
    """Blocking request/response helpers for the hand-shake (before streaming)."""

    def __init__(self, link: SerialLink, port: str, baud: int, protocol: str) -> None:
        self.link, self.port, self.baud, self.protocol = link, port, baud, protocol
        self.heard = False

    def collect(self, done: Callable[[Response], bool], timeout: float,
                resend: Callable[[], None] | None = None, every: float = 0.5) -> list[Response]:
        got: list[Response] = []
        t_end = time.monotonic() + timeout
        t_next = time.monotonic() + every
        while time.monotonic() < t_end:
            try:
                item = self.link.rx.get(timeout=0.02)
            except queue.Empty:
                if resend and time.monotonic() > t_next:
                    t_next = time.monotonic() + every
                    resend()
                continue
            if len(item) == 3:
                raise UserError(f"port {self.port} went away during the hand-shake: {item[2]}")
            self.heard = True
            r = parse_response(item[1])
            got.append(r)
            if r.kind == "unknown":
                raise UserError(
                    f"garbled replies from the controller on {self.port} at {self.baud} baud "
                    f"({r.text[:20]!r}): wrong baud rate? check --baud against the controller "
                    "(the profile's baud), or the cable")
            if done(r):
                return got
        if not self.heard:
            raise UserError(f"no answer from a {self.protocol} controller on {self.port} "
                            f"within {timeout:.1f} s at {self.baud} baud: is it powered, is it "
                            f"a {self.protocol} controller, is --baud right?")
        raise UserError(f"the controller on {self.port} did not answer as a {self.protocol} "
                        f"controller (last reply {got[-1].text if got else 'none'!r})")


def _grbl_status(w: _Wire) -> Response:
    w.link.write_realtime(RT_STATUS)
    got = w.collect(lambda r: r.kind == "status", HANDSHAKE_S,
                    resend=lambda: w.link.write_realtime(RT_STATUS))
    return got[-1]


def _grbl_handshake(w: _Wire, rx_buffer: int) -> tuple[int, int | None, Response]:
    """Status + ``$I``: returns (rx buffer, planner blocks, status)."""
    st = _grbl_status(w)
    w.link.write(b"$I\n")
    got = w.collect(lambda r: r.kind in ("ok", "error"), HANDSHAKE_S)
    planner = None
    for r in got:
        m = re.match(r"\[OPT:[^,]*,(\d+),(\d+)\]", r.text)
        if m:
            planner = int(m.group(1))
            rx_buffer = min(rx_buffer, int(m.group(2)))
    return rx_buffer, planner, st


def _grbl_ready(w: _Wire, st: Response, wait_idle_s: float) -> Response:
    """Refuse a controller in alarm or hold; wait for one still moving to come to rest."""
    t_end = time.monotonic() + wait_idle_s
    while True:
        state = st.status.state if st.status else "?"
        if state.startswith("Alarm"):
            raise UserError("the controller is in ALARM (position may be lost): home it ($H) "
                            "or unlock it ($X) after checking the machine, then try again")
        if state.startswith("Hold") or state.startswith("Door"):
            raise UserError(f"the controller is in {state} with moves pending: finish them "
                            "(cycle start ~) or reset it, then try again")
        if state == "Check":
            raise UserError("the controller is in check mode ($C): nothing would move; "
                            "leave it (send $C) and try again")
        if state == "Idle":
            return st
        if time.monotonic() > t_end:
            raise UserError(f"the controller is busy ({state}); wait until it is Idle")
        time.sleep(0.1)
        st = _grbl_status(w)


def _grbl_work_position(w: _Wire, st: Response) -> tuple[float, ...] | None:
    """The position in program coordinates. grbl reports MPos (or WPos, per $10) and the
    work offset WCO only in some reports: ask a few times for one that has it."""
    for _ in range(12):
        s = st.status
        if s is not None and (s.wpos is not None or s.wco is not None):
            return s.work_position()
        st = _grbl_status(w)
    s = st.status
    return s.work_position() if s is not None else None   # no offset reported: MPos


def _marlin_handshake(w: _Wire) -> None:
    w.link.write(marlin_frame(0, b"M110 N0"))
    w.collect(lambda r: r.kind == "ok", HANDSHAKE_S)
    w.link.write(b"M113 S1\n")           # host keep-alive every second (silence detection)
    w.collect(lambda r: r.kind == "ok", HANDSHAKE_S)


def _marlin_position(w: _Wire) -> tuple[float, ...] | None:
    w.link.write(b"M114\n")
    for r in w.collect(lambda r: r.kind == "ok", HANDSHAKE_S):
        vals = dict(re.findall(r"\b([XYZABCU]):(-?\d+(?:\.\d+)?)", r.text))
        if vals:
            return tuple(float(vals[a]) for a in "XYZABCU" if a in vals)
    return None


def _ack_handshake(w: _Wire) -> None:
    w.link.write(b"G4P0\n")
    w.collect(lambda r: r.kind in ("ok", "error"), HANDSHAKE_S)


# --------------------------------------------------------------------------- the run
class Streamer:
    """Drives one sender over one link. The sender runs inside the link's I/O thread
    (attached as its handler): an ``ok`` becomes the next line without a thread switch.
    ``hold`` / ``resume`` / ``abort`` may be called from any thread (the keyboard) and put
    their real-time byte on the wire at once.

    Journal durability: a group-commit thread appends the records and fsyncs them, many
    per fsync, and no line is sent while more than ``sync_lines`` "sent" records are not
    yet on the disk. A crash or a power cut thus loses at most the last ``sync_lines``
    "sent" records, and `resume.plan_resume` widens its search window by that many lines
    (``SYNC_LINES``). An fsync (0.2 ms on an idle disk, 4-10 ms on a busy one) never
    stalls the I/O thread.
    """

    def __init__(self, link: SerialLink, sender: Sender, items: list[Item],
                 journal: Journal | None = None, progress: bool = False,
                 label: str = "stream", clock: Callable[[], float] = time.monotonic,
                 sync_lines: int = SYNC_LINES) -> None:
        self.link, self.sender, self.items = link, sender, items
        self.journal, self.progress, self.label, self.clock = journal, progress, label, clock
        self.sync_lines = sync_lines
        self.lock = threading.RLock()
        self.resends = 0
        self.program_total = sum(1 for it in items if it.line_no)
        self.sent_lines: set[int] = set()
        self.acked_lines = 0
        self.failed_line: int | None = None
        self.messages: list[str] = []
        self._last_line = 0
        self._bar = None
        self._commit = _GroupCommit(journal) if journal is not None else None
        self._done = threading.Event()
        self.crash: Exception | None = None
        self.failed_at: float | None = None
        self._drain_until: float | None = None
        self._drain_s = 0.4

    # --------------------------------------------------------------- keyboard side
    def hold(self) -> None:
        with self.lock:
            b = self.sender.hold(self.clock())
        self.link.write_realtime(b)

    def resume(self) -> None:
        with self.lock:
            b = self.sender.resume(self.clock())
        self.link.write_realtime(b)

    def abort(self) -> None:
        with self.lock:
            b = self.sender.abort(self.clock())
        self.link.write_realtime(b)

    # --------------------------------------------------------------- I/O thread side
    def on_receive(self, batch: list[tuple], now: float) -> None:
        with self.lock:
            try:
                s = self.sender
                for it in batch:
                    if len(it) == 3:
                        s.link_lost(it[0], it[2])
                    else:
                        s.feed(parse_response(it[1]), it[0])
                self._pump(now)
            except OSError:
                raise                   # the port failed: the link reports it as lost
            except Exception as e:      # a bug must stop the machine, not hang the stream
                self._crashed(e)

    def on_tick(self, now: float) -> None:
        with self.lock:
            try:
                self._pump(now)
            except OSError:
                raise
            except Exception as e:
                self._crashed(e)

    def _crashed(self, e: Exception) -> None:
        if self.crash is None:
            self.crash = e
            self.link.write_realtime(self.sender._hold_byte())
        self._done.set()

    def _pump(self, now: float) -> None:
        s = self.sender
        c = self._commit
        if c is not None and c.error and not s.finished:
            s._fail(now, f"{c.error}; stopped to be safe")
        outs = s.poll(now, may_send=c is None or c.lag() < self.sync_lines)
        events = s.drain()
        if events:
            self._record(events)
        for o in outs:
            if o.realtime:
                self.link.write_realtime(o.data)
            else:
                self.link.write_now(o.data)
        if s.finished:
            if self._drain_until is None:
                # keep collecting answers to lines already in the controller, for the journal
                self._drain_until = now + self._drain_s
            if (now >= self._drain_until or self.link.closed_reason is not None
                    or (s.state == State.DONE and s.in_flight == 0)):
                self._done.set()

    # --------------------------------------------------------------- main thread
    def run(self, drain_s: float = 0.4) -> None:
        s, link = self.sender, self.link
        self._drain_s = drain_s
        with self.lock:
            s.start(self.clock())
        with self._progress():
            link.attach(self)
            try:
                while not self._done.wait(0.1):
                    self._update_bar()
                    if not link._thread.is_alive():
                        with self.lock:
                            s.link_lost(self.clock(),
                                        link.closed_reason or "the serial I/O thread stopped")
                        self._done.set()
            except KeyboardInterrupt:
                self.abort()
                self.messages.append("interrupted (Ctrl-C): feed hold sent")
                self._done.wait(2.0)
            finally:
                link.detach()
                if self._commit is not None:
                    self._commit.close()
            if self.crash is not None:
                raise RuntimeError("the sender failed inside the I/O thread; feed hold "
                                   "was sent") from self.crash
            if (isinstance(s, GrblSender) and s.held and "silent" not in s.reason
                    and link.closed_reason is None):
                self._reset_after_hold()

    def _reset_after_hold(self) -> None:
        """After a fault's or an abort's feed hold: once grbl reports Hold:0 (stopped),
        soft-reset it. grbl keeps parsing and planning the lines after a failed one while
        it holds; the reset drops them, so no line after the failure can run (and the
        failed one is never skipped). A reset at rest keeps the position. If the stop
        cannot be confirmed the machine is left in feed hold for the operator."""
        t_end = self.clock() + 5.0
        stopped = False
        while self.clock() < t_end and self.link.closed_reason is None:
            self.link.write_realtime(RT_STATUS)
            time.sleep(0.05)
            with contextlib.suppress(queue.Empty):
                while True:
                    it = self.link.rx.get_nowait()
                    if len(it) == 2:
                        r = parse_response(it[1])
                        if r.kind == "status" and r.status:
                            stopped = r.status.state in ("Hold:0", "Idle")
            if stopped:
                break
        if not stopped:
            self.messages.append("could not confirm that the machine stopped: it was left in "
                                 "feed hold; check it, reset it (Ctrl-X) and then --resume")
            return
        self.link.write_realtime(RT_RESET)
        self.link.flush_out()
        self.messages.append("stopped: feed hold, then a reset at rest (position kept) "
                             "dropped the lines queued after the stop")

    def _record(self, events: list[Event]) -> None:
        recs: list[str] = []
        n_sent = 0
        wall = f"{time.time():.3f}"
        for e in events:
            it = self.items[e.index] if e.index is not None and e.index < len(self.items) else None
            no = it.line_no if it else None
            if e.kind == "sent" and no:
                self.sent_lines.add(no)
                self._last_line = no
            elif e.kind == "ack" and no:
                self.acked_lines += 1
            elif e.kind == "nack" and no:
                self.acked_lines -= 1
            elif e.kind == "resend":
                self.resends += 1
            elif e.kind in ("error", "alarm"):
                self.failed_line = no or self.failed_line
                self.messages.append(f"{e.text}" + (f" at program line {no}" if no else ""))
            elif e.kind == "msg":
                self.messages.append(e.text)
            elif e.kind == "failed" and self.failed_at is None:
                self.failed_at = e.t
            if self.journal is None:
                continue
            if e.kind in ("sent", "ack", "nack", "exec") and not no:
                continue
            if e.text:
                recs.append(json.dumps({"ev": e.kind, "line": no, "t": float(wall),
                                        "msg": e.text}, separators=(",", ":")))
            else:       # the hot path: sent / ack, formatted without json.dumps
                recs.append(f'{{"ev":"{e.kind}","line":{"null" if no is None else no},'
                            f'"t":{wall}}}')
                n_sent += e.kind == "sent"
        if self._commit is not None and recs:
            self._commit.add(recs, n_sent)

    # --------------------------------------------------------------- progress
    @contextlib.contextmanager
    def _progress(self):
        if not self.progress:
            yield
            return
        from rich.console import Console
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn,
                                   TextColumn, TimeElapsedColumn, TimeRemainingColumn)
        prog = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                        MofNCompleteColumn(), TaskProgressColumn(),
                        TextColumn("line {task.fields[line]}"), TextColumn("{task.fields[ctl]}"),
                        TimeElapsedColumn(), TimeRemainingColumn(),
                        console=Console(stderr=True), refresh_per_second=8)
        with prog:
            self._bar = (prog, prog.add_task(self.label, total=self.program_total, line=0,
                                             ctl=""))
            yield
            self._update_bar(force=True)
        self._bar = None

    def _update_bar(self, force: bool = False) -> None:
        if self._bar is None:
            return
        prog, task = self._bar
        st = self.sender.last_status.status if self.sender.last_status else None
        prog.update(task, completed=self.acked_lines, line=self._last_line,
                    ctl=(st.state if st else self.sender.state.value),
                    description=f"{self.label} ({self.sender.state.value})")


class _GroupCommit:
    """Appends journal records and fsyncs them on its own thread, many per fsync.
    ``lag()``: "sent" records handed over but not yet on the disk."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        self.cv = threading.Condition()
        self.pending: list[str] = []
        self.written = self.synced = 0
        self.stop = False
        self.error: str | None = None
        self.gather_s = 0.005
        self.thread = threading.Thread(target=self._run, name="journal-fsync", daemon=True)
        self.thread.start()

    def add(self, records: list[str], n_sent: int) -> None:
        """``records``: JSON lines (no newline); ``n_sent``: how many are "sent" records."""
        with self.cv:
            self.pending += records
            self.written += n_sent
            self.cv.notify_all()

    def lag(self) -> int:
        return self.written - self.synced

    def _run(self) -> None:
        while True:
            with self.cv:
                while not self.pending and not self.stop:
                    self.cv.wait()
                if not self.pending and self.stop:
                    return
                if not self.stop:       # gather a few more records per fsync (<= 5 ms)
                    self.cv.wait_for(lambda: self.stop, timeout=self.gather_s)
                batch, self.pending = self.pending, []
                target = self.written
            try:
                self.journal.append_lines(batch)
            except OSError as e:            # disk full, disk gone: the stream must stop
                self.error = f"the journal cannot be written ({e.strerror or e})"
                return
            with self.cv:
                self.synced = target

    def close(self) -> None:
        with self.cv:
            self.stop = True
            self.cv.notify_all()
        self.thread.join()


# --------------------------------------------------------------------------- keyboard
class KeyboardControl:
    """While active (stdin is a terminal): ``!`` or space = feed hold, ``~`` or ``r`` =
    resume, ``x`` = abort. Keys are read in cbreak mode by a small thread."""

    KEYS = "'!'/space hold, '~'/r resume, x abort, Ctrl-C abort"

    def __init__(self, streamer: Streamer) -> None:
        self.streamer = streamer
        self._stop = threading.Event()
        self._saved = None

    def __enter__(self) -> "KeyboardControl":
        import termios
        import tty
        fd = sys.stdin.fileno()
        self._saved = termios.tcgetattr(fd)
        tty.setcbreak(fd)
        threading.Thread(target=self._run, daemon=True, name="keyboard").start()
        return self

    def _run(self) -> None:
        fd = sys.stdin.fileno()
        while not self._stop.is_set():
            r, _, _ = select.select([fd], [], [], 0.05)
            if not r:
                continue
            ch = os.read(fd, 1).decode("latin-1")
            if ch in "! ":
                self.streamer.hold()
            elif ch in "~rR":
                self.streamer.resume()
            elif ch in "xXqQ":
                self.streamer.abort()

    def __exit__(self, *exc) -> None:
        import termios
        self._stop.set()
        if self._saved is not None:
            termios.tcsetattr(sys.stdin.fileno(), termios.TCSADRAIN, self._saved)


# --------------------------------------------------------------------------- entry point
def default_journal_path(program: Path) -> Path:
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    path = program.with_name(f"{program.name}.{stamp}.journal.jsonl")
    k = 2
    while path.exists():
        path = program.with_name(f"{program.name}.{stamp}-{k}.journal.jsonl")
        k += 1
    return path


def stream_program(program: Path, port: str, baud: int = 115200, protocol: str = "grbl",
                   check_first: bool = False, resume: Path | None = None,
                   journal: Path | None = None, progress: bool = True,
                   controller: str | None = None, *, keyboard: bool = False,
                   silence_s: float = 1.5, wait_idle_s: float = 120.0,
                   resume_tol: float = 0.02,
                   on_start: Callable[[Streamer], None] | None = None,
                   log: Callable[[str], None] | None = None) -> StreamSummary:
    """Stream ``program`` to the controller on ``port``; see the module doc for the order
    of checks. Bad input raises UserError before anything moves; a fault during the job
    (error, alarm, silence, lost port, abort) returns a summary with ``ok == False``."""
    say = log or (lambda m: print(m, file=sys.stderr))
    program = Path(program)
    prof = resolve_controller(protocol, controller)
    rx_buffer = prof.rx_buffer_bytes or 128
    overhead = (len(str(10 * (sum(1 for _ in open(program, "rb")) + 10))) + 6
                if protocol == "marlin" and program.is_file() else 0)
    prog = load_program(program, max_line_chars=prof.max_line_chars, rx_buffer=rx_buffer,
                        allowed_chars=prof.allowed_chars, frame_overhead=overhead)
    js: JournalState | None = None
    if check_first and protocol != "grbl":
        raise UserError(f"--check-first needs grbl's check mode ($C); the {protocol} "
                        "protocol has none")
    if resume is not None and journal is not None:
        raise UserError("give either --resume JOURNAL (it is appended to) or --journal, "
                        "not both")
    if resume is not None:
        header, events = Journal.read(resume)
        if header.program_sha256 != prog.sha256:
            raise UserError(f"journal {resume} was written for a different program (its "
                            f"sha256 differs from {program}); resume with the same file")
        if header.protocol != protocol:
            raise UserError(f"journal {resume} was a {header.protocol} stream; use "
                            f"--protocol {header.protocol}")
        js = JournalState.from_events(events)
        if js.done:
            raise UserError(f"journal {resume} says the job finished; nothing to resume")
    if journal is not None and resume is None and Path(journal).exists():
        raise UserError(f"journal {journal} already exists; give a new --journal path or "
                        f"continue it with --resume {journal}")
    jdir = Path(resume if resume is not None else journal or program).resolve().parent
    if not (jdir.is_dir() and os.access(jdir, os.W_OK)):
        raise UserError(f"cannot write the journal in {jdir}; give --journal PATH in a "
                        "writable directory")

    link = SerialLink.open(port, baud)
    jr: Journal | None = None
    t0 = time.monotonic()
    summary = StreamSummary(program=program, port=port, protocol=protocol,
                            lines_total=len(prog))
    try:
        w = _Wire(link, port, baud, protocol)
        planner = None
        position: tuple[float, ...] | None = None
        if protocol == "grbl":
            rx_buffer, planner, st = _grbl_handshake(w, rx_buffer)
            st = _grbl_ready(w, st, wait_idle_s if resume is not None else 0.0)
            if resume is not None:
                position = _grbl_work_position(w, st)
        elif protocol == "marlin":
            _marlin_handshake(w)
            if resume is not None:
                position = _marlin_position(w)
        else:
            _ack_handshake(w)

        if check_first:
            _check_mode(w, prog, rx_buffer, planner, silence_s, progress)
            summary.checked = True
            say(f"check mode: all {len(prog)} lines accepted")

        start, preamble = 0, ()
        if js is not None:
            plan: ResumePlan = plan_resume(prog, js, position, tol=resume_tol)
            start, preamble = plan.index, plan.preamble
            summary.resumed_from_line = plan.line_no or None
            if plan.index >= len(prog):
                raise UserError("every line of the program is known to be executed; "
                                "nothing to resume")
            say(f"resuming at {program.name} line {plan.line_no}: {plan.reason}")
        items = [Item(0, (t + "\n").encode("ascii")) for t in preamble]
        items += [Item(ln.no, ln.data, ln.makes_block) for ln in prog.lines[start:]]
        if protocol == "marlin":
            items.append(Item(0, b"M400\n"))   # answered once the last move has finished

        if js is not None:
            jr = Journal(resume)   # type: ignore[arg-type]
            jr.append("resume", line=summary.resumed_from_line, t=round(time.time(), 3),
                      position=list(position) if position else None, port=port)
            summary.journal = Path(resume)   # type: ignore[arg-type]
        else:
            jpath = Path(journal) if journal else default_journal_path(program)
            header = JournalHeader(
                provenance=Provenance.make("sculptor stream", {
                    "port": port, "baud": baud, "protocol": protocol,
                    "controller": prof.name, "rx_buffer": rx_buffer},
                    inputs={"program": program}),
                program=str(program), program_sha256=prog.sha256, n_lines=len(prog),
                port=port, protocol=protocol, baud=baud)
            jr = Journal(jpath, header)
            summary.journal = jpath
        say(f"journal: {summary.journal}")

        sender = make_sender(protocol, items, rx_buffer=rx_buffer, planner_blocks=planner,
                             silence_s=silence_s, status_every_s=prof.status_query_s)
        streamer = Streamer(link, sender, items, journal=jr, progress=progress,
                            label=program.name)
        if on_start:
            on_start(streamer)
        if keyboard:
            say(f"keys: {KeyboardControl.KEYS}")
            with KeyboardControl(streamer):
                streamer.run()
        else:
            streamer.run()
        if sender.state == State.DONE:
            jr.append("done", t=round(time.time(), 3))
        summary.lines_sent = len(streamer.sent_lines)
        summary.lines_acknowledged = streamer.acked_lines
        summary.errors = sender.errors
        summary.state = sender.state.value
        summary.message = "; ".join(dict.fromkeys(
            [sender.reason] + [m for m in streamer.messages if "error" in m or "ALARM" in m
                               or "abort" in m or "interrupt" in m or "stopped" in m
                               or "feed hold" in m] if sender.reason else []))
        summary.failed_line = streamer.failed_line
        summary.stopped_at = streamer.failed_at
        summary.resends = streamer.resends
    finally:
        summary.elapsed_s = time.monotonic() - t0
        if jr is not None:
            jr.close()
        link.close()
    return summary


def _check_mode(w: _Wire, prog: Program, rx_buffer: int, planner: int | None,
                silence_s: float, progress: bool) -> None:
    """Run every line through grbl's check mode; raise UserError at the first error."""
    w.link.write(b"$C\n")
    got = w.collect(lambda r: r.kind in ("ok", "error"), HANDSHAKE_S)
    if got[-1].kind == "error" or not any("Enabled" in r.text for r in got):
        raise UserError(f"the controller refused check mode ($C): {got[-1].describe()}")
    items = [Item(ln.no, ln.data, ln.makes_block) for ln in prog.lines]
    sender = GrblSender(items, rx_buffer=rx_buffer, planner_blocks=planner,
                        silence_s=silence_s, wait_idle=False)
    st = Streamer(w.link, sender, items, progress=progress, label="check mode")
    st.run(drain_s=0.2)
    # leaving check mode makes grbl reset itself: wait for its banner
    if w.link.closed_reason is not None:
        raise UserError(f"port lost during the check-mode pass: {w.link.closed_reason} "
                        "(nothing was moved)")
    w.link.write(b"$C\n")
    try:
        w.collect(lambda r: r.kind == "welcome", HANDSHAKE_S)
    except UserError:
        if sender.state == State.DONE:
            raise
    if sender.state != State.DONE:
        where = f"{prog.path}:{st.failed_line}: " if st.failed_line else ""
        raise UserError(f"check mode stopped at {where}{sender.reason}; fix the program "
                        "(nothing was moved)")
