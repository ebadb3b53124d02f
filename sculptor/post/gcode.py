"""G-code for serial controllers.

``gcode-joint`` (6-axis arm on a grblHAL-style board): ``G1 X.. Y.. Z.. A.. B.. C.. U..``
carries joint angles in degrees, X..C = axes 1..6 in the controller convention, U = the
turntable. Feed scheme: **inverse time** (``G93``; grbl/grblHAL): ``F`` = 60 / duration
of the move in seconds, i.e. "do this move in 1/F minutes", so every axis arrives together
and the TCP keeps the planned Cartesian feed (duration = path length / feed, raised to
respect every joint's max speed; rapids at half the slowest joint's max speed). Marlin has
no G93: for ``protocol = "marlin"`` ``F`` is the axis-space speed (Euclidean norm of the
axis steps in degrees per minute), which gives the same durations under G94.
Unchanged axis words are left out (modal); numbers have 4 decimals, or 3 where a line
would exceed the controller's ``max_line_chars`` (then spaces go first).

``gcode-3axis`` (router): ``G0``/``G1 X Y Z`` of the tool tip in machine coordinates (mm),
``F`` in mm/min, spindle ``M3 S..`` per rotary tool, ``M5`` at the end.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from sculptor.artifacts.toolpath import MoveKind
from sculptor.errors import UserError
from sculptor.post.common import PostContext, comment_text, fnum, fnums

AXES = ("X", "Y", "Z", "A", "B", "C", "U")


def _comment(text: str, allowed: str, maxlen: int = 80) -> list[str]:
    """Comment lines (wrapped to maxlen) in the controller's comment style."""
    use_paren = (not allowed) or ("(" in allowed and ")" in allowed)
    words = comment_text(text, allowed).split()
    width = maxlen - 2
    lines, cur = [], ""
    for w in words:
        w = w[:width]
        if cur and len(cur) + 1 + len(w) > width:
            lines.append(cur)
            cur = w
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return [f"({t})" if use_paren else f";{t}" for t in lines]


def _fit(words: list[tuple[str, float]], feed: str, maxlen: int, prefix: str) -> str:
    for dec in (4, 3):
        parts = [prefix] + [f"{a}{fnum(v, dec)}" for a, v in words] + ([feed] if feed else [])
        for sep in (" ", ""):
            line = sep.join(p for p in parts if p)
            if len(line) <= maxlen:
                return line
    raise UserError(f"a G-code line needs {len(line)} characters; the controller accepts "
                    f"{maxlen} (raise max_line_chars in its profile)")


def _joint_lines_4dec(axes: np.ndarray, feeds: list[str], maxlen: int) -> list[str] | None:
    """Motion lines with every number at 4 decimals, modal words left out (vectorised:
    an axis word is written where its rounded value differs from the previous row's,
    which is what the controller holds). None when a line would exceed ``maxlen``."""
    r = np.round(axes, 4) + 0.0
    changed = np.ones_like(r, bool)
    changed[1:] = r[1:] != r[:-1]
    cols = [fnums(r[:, a], 4) for a in range(7)]
    rows = changed.tolist()
    out = []
    for i, ch in enumerate(rows):
        words = [AXES[a] + cols[a][i] for a in range(7) if ch[a]]
        if not words:
            continue
        line = " ".join(["G1"] + words + [feeds[i]])
        if len(line) > maxlen:
            line = line.replace(" ", "")
            if len(line) > maxlen:
                return None
        out.append(line)
    return out


def render_joint(ctx: PostContext) -> dict[str, str]:
    p, ctrl = ctx.program, ctx.controller
    allowed, maxlen = ctrl.allowed_chars, ctrl.max_line_chars
    axes = np.concatenate([ctx.joints_deg, ctx.e1_deg[:, None]], 1)  # (n, 7)
    dur = ctx.durations_s()
    inverse_time = ctrl.protocol != "marlin"
    lines = [c for h in ctx.header_lines("gcode-joint") for c in _comment(h, allowed, maxlen)]
    lines += _comment("axes X Y Z A B C = robot axes 1-6 in degrees, U = turntable; "
                      + ("feed G93 inverse time" if inverse_time else "feed deg/min"),
                      allowed, maxlen)
    lines.append("G21 G90")
    lines.append("G93" if inverse_time else "G94")
    if inverse_time:
        feeds = ["F" + f for f in fnums(60.0 / np.maximum(dur, 1e-12), 3)]
    else:
        dist = np.r_[0.0, np.linalg.norm(np.diff(axes, axis=0), axis=1)]
        feeds = ["F" + f for f in fnums(np.maximum(dist / np.maximum(dur, 1e-12) * 60.0,
                                                   1e-3), 3)]
    feeds[0] = "F1" if inverse_time else "F600"
    fast = _joint_lines_4dec(axes, feeds, maxlen)
    if fast is not None:
        return {"program.gcode": "\n".join(lines + fast + ["G94", "M2"]) + "\n"}
    # some line is too long at 4 decimals: line by line, 3 decimals where needed
    last = [None] * 7
    for i in range(p.n):
        words = []
        for a in range(7):
            v = round(float(axes[i, a]), 4)
            if last[a] is None or abs(v - last[a]) > 0.5e-4:
                words.append((AXES[a], v))
        if i == 0:
            words = [(AXES[a], float(axes[i, a])) for a in range(7)]
            dist = 0.0
        if not words:
            continue
        if i == 0:
            # the first move: the controller's position is unknown, go there slowly
            feed = "F1" if inverse_time else "F600"
        elif inverse_time:
            feed = f"F{fnum(60.0 / dur[i], 3)}"
        else:
            dist = float(np.linalg.norm(axes[i] - axes[i - 1]))
            feed = f"F{fnum(max(dist / dur[i] * 60.0, 1e-3), 3)}"
        line = _fit(words, feed, maxlen, "G1")
        # what the line actually says (3 or 4 decimals) is the state for the next line
        for a, v in words:
            m = re.search(rf"{a}(-?[0-9.]+)", line)
            last[AXES.index(a)] = float(m.group(1))
        lines.append(line)
    lines += ["G94", "M2"]
    return {"program.gcode": "\n".join(lines) + "\n"}


def render_3axis(ctx: PostContext) -> dict[str, str]:
    p, ctrl = ctx.program, ctx.controller
    allowed, maxlen = ctrl.allowed_chars, ctrl.max_line_chars
    xyz = p.base_from_tcp[:, :3, 3]
    lines = [c for h in ctx.header_lines("gcode-3axis") for c in _comment(h, allowed, maxlen)]
    lines.append("G21 G90 G94")
    last_tool = None
    last = [None, None, None]
    for i in range(p.n):
        tool = ctx.tool_for(i)
        if tool.name != last_tool:
            if last_tool is not None:
                lines += ["M5", *_comment(f"change tool to {tool.name}", allowed, maxlen), "M0"]
            rpm = getattr(tool, "spindle_rpm", None)
            if rpm is None:
                raise UserError(f"gcode-3axis needs rotary tools; pass uses '{tool.name}'")
            lines.append(f"M3 S{int(round(rpm))}")
            lines.append("G4 P2")
            last_tool = tool.name
        words = [(a, round(float(v), 4)) for a, v in zip("XYZ", xyz[i])]
        if i > 0:
            words = [(a, v) for k, (a, v) in enumerate(words)
                     if last[k] is None or abs(v - last[k]) > 0.5e-4]
        if not words:
            continue
        if p.move_kind[i] == MoveKind.RAPID:
            line = _fit(words, "", maxlen, "G0")
        else:
            line = _fit(words, f"F{fnum(float(p.feed_mm_s[i]) * 60.0, 1)}", maxlen, "G1")
        for a, v in words:
            m = re.search(rf"{a}(-?[0-9.]+)", line)
            last["XYZ".index(a)] = float(m.group(1))
        lines.append(line)
    lines += ["M5", "M2"]
    return {"program.gcode": "\n".join(lines) + "\n"}


_WORD = re.compile(r"([A-Z])([-+]?[0-9]*\.?[0-9]+)")


def parse(paths: list[Path]) -> dict:
    """Modal interpreter: (n, k) axis values after each motion line, its F, and G0/G1."""
    state: dict[str, float] = {}
    rows, feeds, motion, mode = [], [], [], None
    for raw in paths[0].read_text("ascii").splitlines():
        line = re.sub(r"\(.*?\)", "", raw).split(";")[0].strip().upper()
        if not line:
            continue
        words = _WORD.findall(line)
        gs = [float(v) for a, v in words if a == "G"]
        for g in gs:
            if g in (0.0, 1.0):
                mode = int(g)
        moved = False
        for a, v in words:
            if a in "XYZABCU":
                state[a] = float(v)
                moved = True
        if moved:
            rows.append(dict(state))
            f = [float(v) for a, v in words if a == "F"]
            feeds.append(f[0] if f else math.nan)
            motion.append(mode)
    return {"rows": rows, "feed": np.array(feeds), "motion": motion}


def joint_axes(parsed: dict) -> np.ndarray:
    """(n, 7) X Y Z A B C U in degrees from a parsed joint program."""
    return np.array([[r[a] for a in AXES] for r in parsed["rows"]])
