"""Parse what a controller sends back: one small parser per response kind.

Responses (``ok``, ``error:N``, ``ALARM:N``, Marlin ``Error:``/``Resend:``) answer a line;
push messages (``<...>`` status, ``[MSG:...]``, ``busy``, the welcome banner) do not.
Anything else is ``unknown`` - a garbled byte or a wrong baud rate - and the sender treats
it as a fault, never as an acknowledgement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Kind = Literal["ok", "error", "alarm", "status", "msg", "welcome", "resend", "busy", "unknown"]

GRBL_ERROR_TEXT = {
    1: "expected a command letter", 2: "bad number format", 3: "'$' command not recognised",
    8: "'$' command only valid when idle", 9: "G-code locked out during alarm or jog",
    11: "line too long", 15: "jog target exceeds travel", 20: "unsupported or invalid G-code",
    22: "feed rate not set", 24: "two G-code commands that both need axis words",
    25: "repeated G-code word", 33: "invalid motion target",
}
GRBL_ALARM_TEXT = {
    1: "hard limit triggered", 2: "soft limit: target exceeds travel",
    3: "reset while in motion (position may be lost)", 4: "probe fail", 5: "probe fail",
    6: "homing fail: reset during cycle", 7: "homing fail: door opened",
    8: "homing fail: pull-off", 9: "homing fail: switch not found",
}


@dataclass(frozen=True)
class Status:
    """A grbl ``<...>`` report. ``mpos``: (n,) machine position; ``planner_free`` and
    ``rx_free`` from ``Bf:`` (None when not reported)."""

    state: str
    mpos: tuple[float, ...] | None
    planner_free: int | None
    rx_free: int | None
    wpos: tuple[float, ...] | None = None
    wco: tuple[float, ...] | None = None

    def work_position(self, wco: tuple[float, ...] | None = None) -> tuple[float, ...] | None:
        """Position in program (work) coordinates: WPos, or MPos - WCO (grbl sends WCO
        only now and then: pass the last one seen), or MPos when no offset is known."""
        if self.wpos is not None:
            return self.wpos
        off = self.wco or wco
        if self.mpos is not None and off is not None:
            return tuple(m - o for m, o in zip(self.mpos, off))
        return self.mpos


@dataclass(frozen=True)
class Response:
    kind: Kind
    text: str
    code: int | None = None
    status: Status | None = None

    @property
    def is_reply(self) -> bool:
        """Answers a sent line (as opposed to a push message)."""
        return self.kind in ("ok", "error", "alarm", "resend")

    def describe(self) -> str:
        if self.kind == "error" and self.code is not None:
            return f"error:{self.code} ({GRBL_ERROR_TEXT.get(self.code, 'see grbl docs')})"
        if self.kind == "alarm" and self.code is not None:
            return f"ALARM:{self.code} ({GRBL_ALARM_TEXT.get(self.code, 'see grbl docs')})"
        return self.text


_ERR = re.compile(r"error:(\d+)$", re.I)
_ALARM = re.compile(r"ALARM:(\d+)$")
_RESEND = re.compile(r"(?:Resend:|rs)\s*N?(\d+)$", re.I)


_OK = Response("ok", "ok")


def parse_status(text: str) -> Status | None:
    body = text[1:-1].split("|")
    if not body or not body[0]:
        return None
    mpos = wpos = wco = planner = rx = None
    for field in body[1:]:
        key, _, val = field.partition(":")
        try:
            if key == "MPos":
                mpos = tuple(float(v) for v in val.split(","))
            elif key == "WPos":
                wpos = tuple(float(v) for v in val.split(","))
            elif key == "WCO":
                wco = tuple(float(v) for v in val.split(","))
            elif key == "Bf":
                planner, rx = (int(v) for v in val.split(","))
        except ValueError:
            return None
    return Status(state=body[0], mpos=mpos, planner_free=planner, rx_free=rx, wpos=wpos,
                  wco=wco)


def parse_response(line: str) -> Response:
    """Classify one line received from the controller (without its line ending)."""
    if line == "ok":
        return _OK
    t = line.strip()
    if not t:
        return Response("msg", t)
    if any(not (" " <= c < "\x7f") for c in t):
        return Response("unknown", t)
    if t == "ok" or t.startswith("ok "):
        return Response("ok", t)
    if m := _ERR.match(t):
        return Response("error", t, int(m.group(1)))
    if m := _ALARM.match(t):
        return Response("alarm", t, int(m.group(1)))
    if t.startswith("<") and t.endswith(">"):
        st = parse_status(t)
        return Response("status", t, status=st) if st else Response("unknown", t)
    if t.startswith("[") and t.endswith("]"):
        return Response("msg", t)
    if t.startswith("Grbl ") or t.startswith("start"):
        return Response("welcome", t)
    if m := _RESEND.match(t):
        return Response("resend", t, int(m.group(1)))
    if t in ("busy", "wait") or t.startswith("echo:busy") or t.startswith("busy:"):
        return Response("busy", t)
    if t.startswith("Error:"):
        return Response("error", t)
    if t.startswith("echo:Unknown command"):
        return Response("error", t)
    if t.startswith("echo:") or t.startswith("//"):
        return Response("msg", t)
    return Response("unknown", t)
