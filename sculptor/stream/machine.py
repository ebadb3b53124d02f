"""The senders: pure state machines that decide what to send and when. No port, no clock.

The runner hands each one the parsed responses (`feed`) and the time, asks it what to
write (`poll`), and collects its events (`drain`). Everything here is deterministic in
its inputs, so the unit tests drive it with a scripted fake controller.

States: idle -> running <-> holding -> done | failed | alarm.

* :class:`GrblSender` - character counting: keeps the exact byte count of the lines not
  yet acknowledged and sends the next line only if it fits in ``rx_buffer - 1`` bytes
  (grbl's ring keeps one slot free). ``ok``/``error:N`` answer the oldest line in flight.
* :class:`AckSender`  - plain send-and-wait: one line in flight, ``ok`` when done.
* :class:`MarlinSender` - send-and-wait with ``N<n> ... *<xor>`` framing; ``Resend: n``
  rewinds to line n; a lost ``ok`` is recovered by re-sending the same numbered line
  (the controller answers ``Resend: n+1`` if it already had it), so nothing is lost or
  run twice.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from enum import Enum
from typing import ClassVar, Literal, Sequence

from sculptor.stream.responses import Response

ProtocolName = Literal["grbl", "marlin", "ack"]
RT_STATUS, RT_HOLD, RT_RESUME, RT_RESET = b"?", b"!", b"~", b"\x18"


class State(str, Enum):
    IDLE = "idle"
    RUNNING = "running"
    HOLDING = "holding"
    ALARM = "alarm"
    DONE = "done"
    FAILED = "failed"


TERMINAL = (State.DONE, State.FAILED, State.ALARM)


@dataclass(frozen=True)
class Item:
    """One line to send. ``line_no``: program file line (0 for lines the sender adds, e.g.
    the resume preamble); ``data``: the exact bytes, newline included; ``blocks``: the line
    surely occupies at least one planner block (a move of nonzero length). Only count
    lines that surely do: the executed-lines bound walks back over that many."""

    line_no: int
    data: bytes
    blocks: bool = False


@dataclass(frozen=True)
class Out:
    data: bytes
    realtime: bool = False


@dataclass(frozen=True)
class Event:
    """What happened, for the journal and the display. ``index`` into the item list."""

    kind: str          # sent ack error alarm resend exec status msg hold resume done failed
    t: float
    index: int | None = None
    text: str = ""


class Sender:
    """Base class: bookkeeping shared by the three protocols."""

    protocol: ClassVar[ProtocolName]

    def __init__(self, items: Sequence[Item], *, silence_s: float = 1.5,
                 status_every_s: float = 0.2, wait_idle: bool = True) -> None:
        self.items = list(items)
        self.silence_s = silence_s
        self.status_every_s = status_every_s
        self.wait_idle = wait_idle
        self.state = State.IDLE
        self.next = 0              # index of the next item to send
        self.acked = 0             # items acknowledged (a prefix: answers come in order)
        self.sent_count = 0        # writes of program lines, re-sends included
        self.errors = 0
        self.reason = ""           # why it failed / stopped
        self.last_status: Response | None = None
        self.exec_upto = 0         # items [0, exec_upto) known executed
        self.held = False          # a feed hold was sent because of a fault or an abort
        self._events: list[Event] = []
        self._rt: list[bytes] = []
        self._last_rx = 0.0
        self._last_query = -1e9

    # ---------------------------------------------------------------- public API
    def start(self, now: float) -> None:
        self.state = State.RUNNING if self.items else State.DONE
        self._last_rx = now
        self._event("state", now, text=self.state.value)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    @property
    def in_flight(self) -> int:
        return self.next - self.acked

    def drain(self) -> list[Event]:
        ev, self._events = self._events, []
        return ev

    def poll(self, now: float, may_send: bool = True) -> list[Out]:
        """Bytes to write now (real-time bytes first), and the silence check.
        ``may_send=False`` holds back program lines this time (the journal is behind)."""
        out = [Out(b, True) for b in self._rt]
        self._rt.clear()
        if self.state in (State.RUNNING, State.HOLDING) and self._waiting():
            if now - self._last_rx > self.silence_s:
                self._fail(now, f"controller silent for {now - self._last_rx:.1f} s while "
                                "it should be answering (hung, or cable pulled?)")
                return out
        if self.state in (State.RUNNING, State.HOLDING, State.FAILED) and not self.finished_idle:
            out += self._queries(now)
        if self.state == State.RUNNING and may_send:
            out += self._lines(now)
        return out

    def feed(self, resp: Response, now: float) -> None:
        """One line received from the controller."""
        self._last_rx = now
        k = resp.kind
        if k == "status":
            self.last_status = resp
            self._on_status(resp, now)
        elif k == "msg":
            if resp.text:
                self._event("msg", now, text=resp.text)
        elif k == "busy":
            pass
        elif k == "welcome":
            if self.state in (State.RUNNING, State.HOLDING):
                self._fail(now, f"controller reset itself during the job ('{resp.text}')",
                           hold=False)
        elif k == "unknown":
            self._on_unknown(resp, now)
        else:
            self._on_reply(resp, now)

    def link_lost(self, now: float, why: str) -> None:
        if not self.finished:
            self._fail(now, f"port lost: {why}", hold=False)

    def hold(self, now: float) -> bytes:
        """Feed hold: stop feeding; returns the real-time byte to send (grbl ``!``)."""
        return self._switch(now, State.RUNNING, State.HOLDING, "hold", self._hold_byte())

    def resume(self, now: float) -> bytes:
        """Cycle start after a hold; returns the real-time byte to send (grbl ``~``)."""
        return self._switch(now, State.HOLDING, State.RUNNING, "resume", self._resume_byte())

    def _switch(self, now: float, frm: State, to: State, kind: str, byte: bytes) -> bytes:
        if self.state != frm:
            return b""
        self.state = to
        self._event(kind, now)
        return byte

    def abort(self, now: float) -> bytes:
        if not self.finished:
            self._fail(now, "aborted from the keyboard", hold=False)
        b = self._abort_bytes()
        self.held = self.held or b == RT_HOLD
        return b

    # ---------------------------------------------------------------- helpers
    @property
    def finished_idle(self) -> bool:
        return False

    def _waiting(self) -> bool:
        return self.in_flight > 0

    def _event(self, kind: str, now: float, index: int | None = None, text: str = "") -> None:
        self._events.append(Event(kind, now, index, text))

    def _fail(self, now: float, reason: str, hold: bool = True) -> None:
        if self.finished:
            return
        self.state = State.FAILED
        self.reason = reason
        if hold and self._hold_byte():
            self._rt.append(self._hold_byte())
            self.held = True
        self._event("failed", now, text=reason)

    def _send(self, now: float) -> Out:
        i = self.next
        self.next += 1
        self.sent_count += 1
        self._event("sent", now, i)
        return Out(self._frame(i))

    def _ack(self, now: float) -> None:
        i = self.acked
        self.acked += 1
        self._event("ack", now, i)

    def _check_done(self, now: float) -> None:
        if self.state == State.RUNNING and self.acked == len(self.items) and (
                not self.wait_idle or self._controller_idle()):
            self.state = State.DONE
            self._event("done", now)

    def _controller_idle(self) -> bool:
        return True

    def _on_unknown(self, resp: Response, now: float) -> None:
        self._fail(now, f"garbled reply {resp.text!r} from the controller (noise on the "
                        "cable or a wrong baud rate); stopped to be safe")

    def _on_status(self, resp: Response, now: float) -> None:
        pass

    # protocol hooks
    def _frame(self, i: int) -> bytes:
        return self.items[i].data

    def _hold_byte(self) -> bytes:
        return b""

    def _resume_byte(self) -> bytes:
        return b""

    def _abort_bytes(self) -> bytes:
        return b""

    def _queries(self, now: float) -> list[Out]:
        return []

    def _lines(self, now: float) -> list[Out]:
        raise NotImplementedError

    def _on_reply(self, resp: Response, now: float) -> None:
        raise NotImplementedError


class GrblSender(Sender):
    """grbl character counting (see module doc). ``rx_buffer``: the controller's buffer
    size as grbl states it (128); ``planner_blocks``: from ``$I`` ``[OPT:..,15,..]``."""

    protocol = "grbl"

    def __init__(self, items: Sequence[Item], *, rx_buffer: int = 128,
                 planner_blocks: int | None = None, **kw) -> None:
        super().__init__(items, **kw)
        self.capacity = rx_buffer - 1
        self.planner_blocks = planner_blocks
        self.used = 0                       # bytes sent and not yet acknowledged
        self._sizes: deque[int] = deque()
        self._query_out = False
        self._status_after_ack = False
        self._errored: set[int] = set()

    def _lines(self, now: float) -> list[Out]:
        out = []
        while self.next < len(self.items):
            n = len(self.items[self.next].data)
            if self.used + n > self.capacity:
                break
            self.used += n
            self._sizes.append(n)
            out.append(self._send(now))
        return out

    def _queries(self, now: float) -> list[Out]:
        if now - self._last_query >= self.status_every_s:
            self._last_query = now
            self._query_out = True
            return [Out(RT_STATUS, True)]
        return []

    def _waiting(self) -> bool:
        return self.in_flight > 0 or self._query_out

    def _on_reply(self, resp: Response, now: float) -> None:
        if resp.kind == "alarm":
            self.errors += 1
            self._event("alarm", now, self.acked if self.in_flight else None, resp.describe())
            # grbl flushes its buffers on an alarm: what was in flight will never be answered
            self.used, self._sizes = 0, deque()
            if not self.finished or self.state == State.FAILED:
                self.state = State.ALARM
                self.reason = f"controller raised {resp.describe()}"
            return
        if self.state == State.ALARM:
            self._event("msg", now, text=f"after the alarm: {resp.describe()}")
            return
        if self.in_flight == 0:
            self._fail(now, f"reply {resp.text!r} with no line in flight (the byte count "
                            "is out of step); stopped to be safe")
            return
        self.used -= self._sizes.popleft()
        i = self.acked
        if resp.kind == "ok":
            self._ack(now)
            self._status_after_ack = False
            self._check_done(now)
        else:   # error:N answers line i: it was not executed
            self._errored.add(i)
            self.acked += 1
            self.errors += 1
            self._event("error", now, i, resp.describe())
            self._fail(now, f"controller answered {resp.describe()}")

    def _on_status(self, resp: Response, now: float) -> None:
        self._query_out = False
        st = resp.status
        assert st is not None
        self._status_after_ack = True
        self._update_exec(st.state, st.planner_free, now)
        if self.state == State.RUNNING:
            self._check_done(now)

    def _controller_idle(self) -> bool:
        st = self.last_status.status if self.last_status else None
        return bool(st and self._status_after_ack and st.state in ("Idle", "Check"))

    def _update_exec(self, state: str, planner_free: int | None, now: float) -> None:
        """Items surely executed: grbl's planner holds ``used`` blocks, which belong to the
        last acknowledged lines; walking back over ``used`` lines that *surely* made a
        block (nonzero moves answered ``ok``; a line that made several blocks only makes
        the walk longer) passes every line that may still be in the planner."""
        if state == "Check":
            return
        if state == "Idle" and (planner_free is None or planner_free == self.planner_blocks):
            upto = self.acked
        elif self.planner_blocks is not None and planner_free is not None:
            used = max(0, self.planner_blocks - planner_free)
            upto = self.acked
            while used > 0 and upto > 0:
                upto -= 1
                if self.items[upto].blocks and upto not in self._errored:
                    used -= 1
            if used > 0:
                upto = 0
        else:
            return
        if self._errored:       # a line answered error:N did not run: never count past it
            upto = min(upto, min(self._errored))
        if upto > self.exec_upto:
            self.exec_upto = upto
            self._event("exec", now, upto - 1)

    def _hold_byte(self) -> bytes:
        return RT_HOLD

    def _resume_byte(self) -> bytes:
        return RT_RESUME

    def _abort_bytes(self) -> bytes:
        return RT_HOLD


class AckSender(Sender):
    """Plain send-and-wait: one line in flight, ``ok`` once the controller has done it."""

    protocol = "ack"

    def _lines(self, now: float) -> list[Out]:
        if self.in_flight == 0 and self.next < len(self.items):
            return [self._send(now)]
        return []

    def _on_reply(self, resp: Response, now: float) -> None:
        if self.in_flight == 0:
            self._fail(now, f"reply {resp.text!r} with no line in flight; stopped to be safe")
            return
        if resp.kind == "ok":
            self._ack(now)
            self.exec_upto = self.acked
            self._event("exec", now, self.acked - 1)
            self._check_done(now)
        else:
            self.errors += 1
            i = self.acked
            self.acked += 1
            self._event("error", now, i, resp.describe())
            self._fail(now, f"controller answered {resp.describe()}", hold=False)


def marlin_frame(n: int, text: bytes) -> bytes:
    """``N<n> <text>*<xor of every byte before '*'>`` + newline."""
    body = b"N%d %s" % (n, text.rstrip(b"\n"))
    cs = 0
    for b in body:
        cs ^= b
    return body + b"*%d\n" % cs


class MarlinSender(Sender):
    """Send-and-wait with line numbers and checksums (see module doc). Line number n is
    item n-1 + ``first_n``; the runner sends ``M110 N<first_n - 1>`` before starting."""

    protocol = "marlin"
    queue_depth = 24     # lines an "ok" may run ahead of motion: BUFSIZE 4 + 16 planner + slack

    def __init__(self, items: Sequence[Item], *, retry_s: float = 1.2, first_n: int = 1,
                 **kw) -> None:
        super().__init__(items, **kw)
        self.retry_s = retry_s
        self.first_n = first_n
        self._sent_at = 0.0
        self._swallow_ok = False
        self._pending_error: tuple[str, float] | None = None

    def _frame(self, i: int) -> bytes:
        return marlin_frame(i + self.first_n, self.items[i].data)

    def _lines(self, now: float) -> list[Out]:
        if self._pending_error is not None:
            if now - self._pending_error[1] > 0.3:
                text, self._pending_error = self._pending_error[0], None
                self._on_reply(Response("error", text), now)
            return []
        if self.in_flight == 0 and self.next < len(self.items):
            self._sent_at = now
            return [self._send(now)]
        if self.in_flight and now - self._sent_at > self.retry_s and now - self._last_rx > self.retry_s:
            # no answer: the line or its ok was lost. Re-send the same number; Marlin
            # either takes it or answers Resend: n+1 if it already had it.
            self._sent_at = now
            i = self.acked
            self.sent_count += 1
            self._event("resend", now, i, "no answer; re-sending the same line number")
            return [Out(self._frame(i))]
        return []

    def _on_unknown(self, resp: Response, now: float) -> None:
        self._event("msg", now, text=f"ignored garbled reply {resp.text!r}")

    def _rewind(self, want: int, now: float, text: str) -> None:
        """The controller has every line before item ``want`` and none from it on (Marlin
        executes numbered lines strictly in order), so sending resumes at ``want``."""
        while self.acked < min(want, self.next):    # everything before it arrived
            self._ack(now)
        while self.acked > max(want, 0):
            # an "ok" we counted was not for this line (its Error/Resend were garbled):
            # the controller never ran it; take the acknowledgement back
            self.acked -= 1
            self._event("nack", now, self.acked, "controller did not take this line")
        self.next = max(self.acked, min(want, len(self.items)))
        if not self._swallow_ok:
            self._event("resend", now, self.next, text)
        self._swallow_ok = True     # Marlin follows Error/Resend with one "ok"
        self._sent_at = now

    def _on_reply(self, resp: Response, now: float) -> None:
        if resp.kind == "ok" and self._pending_error is not None:
            text, self._pending_error = self._pending_error[0], None
            resp = Response("error", text)      # no Resend came: it was a real error
        if resp.kind == "resend":
            self._pending_error = None
            self._rewind((resp.code or 0) - self.first_n, now, resp.text)
            self._check_done(now)
            return
        if resp.kind == "error":
            if m := re.search(r"Last Line:\s*(\d+)", resp.text):
                # the Resend: that follows will say the same; act now in case it is garbled
                self._rewind(int(m.group(1)) + 1 - self.first_n, now, resp.text)
                return
            if resp.text.startswith("Error:") and "kill()" not in resp.text:
                # maybe a resend request with a garbled "Last Line": a Resend: that
                # follows settles it; an ok or silence instead makes it a real error
                self._pending_error = (resp.text, now)
                return
            self.errors += 1
            i = self.acked if self.in_flight else None
            if self.in_flight:
                self.acked += 1          # answered (not executed); its "ok" follows
                self._swallow_ok = True
            self._event("error", now, i, resp.text)
            self._fail(now, f"controller answered {resp.text!r}", hold=False)
            return
        if resp.kind == "alarm":
            self.state = State.ALARM
            self.reason = resp.describe()
            self._event("alarm", now, None, resp.describe())
            return
        # ok
        if self._swallow_ok:
            self._swallow_ok = False
            return
        if self.in_flight == 0:
            return              # ok for a line we already counted (after a re-send)
        self._ack(now)
        upto = len(self.items) if self.acked == len(self.items) else self.acked - self.queue_depth
        if upto > self.exec_upto:
            self.exec_upto = upto
            self._event("exec", now, upto - 1)
        self._check_done(now)

    def _abort_bytes(self) -> bytes:
        return b"M112\n"        # emergency stop, parsed at once by Marlin's emergency parser


SENDERS: dict[str, type[Sender]] = {"grbl": GrblSender, "marlin": MarlinSender, "ack": AckSender}


def make_sender(protocol: str, items: Sequence[Item], **kw) -> Sender:
    try:
        cls = SENDERS[protocol]
    except KeyError:
        raise ValueError(f"unknown protocol {protocol!r}")
    if cls is not GrblSender:
        kw.pop("rx_buffer", None)
        kw.pop("planner_blocks", None)
    return cls(items, **kw)
