"""Where to restart a broken stream: the first line not known to be executed.

Pure functions of the program, the journal and the controller's reported position, so
the rules are unit-tested without a port:

* the window also reaches ``SYNC_LINES`` past the last journaled "sent" line, because a
  power cut may lose that many unsynced records (the runner's group commit);
* lines up to the journal's last ``exec`` checkpoint are executed (grbl: acknowledged and
  drained from the planner, from ``Bf:`` in status reports; ack protocol: acknowledged);
* the lines after it up to the last one sent were *in flight* at the break: they may or
  may not have run. The controller's position decides: the earliest line ``i`` in that
  window whose start point is the position (the machine stopped between lines), or
  whose straight joint-space segment passes through it (stopped mid-line: re-sending the
  line continues along the very same segment), is where the job restarts;
* so no line is ever skipped, and only in-flight lines can run twice (each ends at an
  absolute target, so a repeated line moves the machine to where it already is);
* a line answered with an error never ran, so the restart is never past the first one
  (grbl runs the lines it had buffered after a failed one until the feed hold lands:
  if it got past the failed line, resuming is refused rather than skipping it);
* a position on none of those points or segments (the machine was jogged, or lost its
  position) refuses to resume rather than guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from sculptor.artifacts.journal import JournalEvent
from sculptor.errors import UserError
from sculptor.stream.program import Program


SYNC_LINES = 256  # "sent" records the runner may hold unsynced (group commit); see runner


@dataclass(frozen=True)
class JournalState:
    """What a journal says about a stream. Line numbers are program file lines."""

    sent: frozenset[int]
    acked: frozenset[int]
    exec_line: int            # every program line <= this is known executed (0: none)
    done: bool
    errors: tuple[str, ...]
    first_error_line: int | None = None   # first line answered with an error (last run)

    @classmethod
    def from_events(cls, events: Sequence[JournalEvent]) -> "JournalState":
        sent, acked, errors = set(), set(), []
        exec_line, done = 0, False
        first_error: int | None = None
        for e in events:
            if e.ev == "sent" and e.line:
                sent.add(e.line)
            elif e.ev == "ack" and e.line:
                acked.add(e.line)
            elif e.ev == "nack" and e.line:
                acked.discard(e.line)
            elif e.ev == "exec" and e.line:
                exec_line = max(exec_line, e.line)
            elif e.ev == "done":
                done = True
            elif e.ev == "resume":
                done, first_error = False, None
            elif e.ev in ("error", "alarm"):
                errors.append(str(getattr(e, "msg", "") or e.ev))
                if e.ev == "error" and e.line:
                    first_error = e.line if first_error is None else min(first_error, e.line)
        return cls(frozenset(sent), frozenset(acked), exec_line, done, tuple(errors),
                   first_error)


@dataclass(frozen=True)
class ResumePlan:
    index: int                 # first program item to send (len(program) = nothing left)
    line_no: int               # its file line (0 when nothing is left)
    preamble: tuple[str, ...]  # modal state restore, sent before it
    reason: str


def _near(a: Sequence[float], b: Sequence[float], tol: float) -> bool:
    return all(abs(x - y) <= tol for x, y in zip(a, b))


def _on_segment(p: Sequence[float], a: Sequence[float], b: Sequence[float], tol: float) -> bool:
    k = min(len(p), len(a))
    d = [b[j] - a[j] for j in range(k)]
    dd = sum(x * x for x in d)
    if dd == 0.0:
        return False
    u = sum((p[j] - a[j]) * d[j] for j in range(k)) / dd
    if not 0.0 < u < 1.0:
        return False
    return all(abs(a[j] + u * d[j] - p[j]) <= tol for j in range(k))


def plan_resume(program: Program, js: JournalState, position: Sequence[float] | None,
                tol: float = 0.02) -> ResumePlan:
    """The restart point (see module doc). ``position``: the controller's machine position
    in program units ((k,) for its first k axes), None when it cannot report one.
    ``tol``: per-axis match tolerance in program units; a real controller reports its
    position in whole steps (0.0125 mm at 80 steps/mm), so it cannot be much tighter."""
    lines = program.lines
    n = len(lines)
    e = sum(1 for ln in lines if ln.no <= js.exec_line)       # [0, e) executed
    sent_idx = [i for i, ln in enumerate(lines) if ln.no in js.sent]
    s = max(sent_idx) if sent_idx else -1                     # last line sent
    acked_idx = [i for i, ln in enumerate(lines) if ln.no in js.acked]

    def plan(i: int, reason: str) -> ResumePlan:
        if i >= n:
            return ResumePlan(n, 0, (), reason)
        before = lines[i].before
        if not before.absolute:
            raise UserError(f"cannot resume at {program.path}:{lines[i].no}: the program is in "
                            "incremental mode (G91) there, so a repeated line would move twice; "
                            "restart the job")
        return ResumePlan(i, lines[i].no, tuple(before.preamble()), reason)

    if position is None:
        # no position report: trust the executed checkpoint; in-flight lines run again
        return plan(e, f"no position report: restarting after the last executed line "
                       f"({js.exec_line or 'none'})")
    # a power cut can lose the last unsynced "sent" records: look that far past the last
    # line the journal knows was sent (the earliest match still wins, so this never skips)
    hi = min(s + 1 + SYNC_LINES, n) if sent_idx else min(SYNC_LINES, n)
    err_idx = None
    if js.first_error_line is not None:
        # a line answered with an error never ran: the restart cannot lie beyond it
        err_idx = next((i for i, ln in enumerate(lines) if ln.no >= js.first_error_line), n)
        hi = min(hi, err_idx)
    for i in range(e, hi + 1):
        if i < n:
            start = lines[i].start
        else:
            last = lines[n - 1]
            start = last.target if last.target is not None else last.start
        if _near(position, start, tol):
            return plan(i, "the controller stopped between lines, at the start of this one")
        if i < n and lines[i].target is not None and _on_segment(position, start,
                                                                 lines[i].target, tol):
            return plan(i, "the controller stopped inside this line; re-sending it continues "
                           "along the same segment")
    if e == 0 and not acked_idx:
        return plan(0, "no line was acknowledged: starting from the first line")
    if err_idx is not None and err_idx < n:
        pos = ", ".join(f"{v:.3f}" for v in position)
        raise UserError(f"{program.path.name} line {lines[err_idx].no} failed and was not run, "
                        f"but the controller is at ({pos}), not on the path up to it: it ran "
                        "the lines it had buffered after the failed one. Jog it back to the "
                        f"start of line {lines[err_idx].no} and resume, or restart the job")
    lo_no = lines[e].no if e < n else lines[-1].no
    hi_no = lines[min(hi, n - 1)].no
    pos = ", ".join(f"{v:.3f}" for v in position)
    raise UserError(f"the controller is at ({pos}), which is not on the programmed path "
                    f"between {program.path.name} lines {lo_no} and {hi_no}; it was moved or "
                    "lost its position. Jog it back onto the path (or re-home) and resume "
                    "again, or restart the job")
