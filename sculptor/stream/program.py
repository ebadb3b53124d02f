"""Load a G-code program for streaming: strip, check against the controller, track modal state.

Every check that can refuse a program runs here, before a port is opened, so a bad
program never moves the machine. The bytes a line is *counted* as and the bytes it is
*sent* as are the same object (`ProgramLine.data`); see the classic overrun bug in
docs/stream.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path

from sculptor.artifacts.core import sha256_bytes
from sculptor.errors import UserError

AXES = "XYZABCU"
REALTIME_CHARS = "?!~\x18"
_WORDS = re.compile(r"(?:[A-Z][-+]?(?:\d+\.?\d*|\.\d+))+")
_WORD = re.compile(r"([A-Z])([-+]?(?:\d+\.?\d*|\.\d+))")


@dataclass(frozen=True)
class Modal:
    """Modal G-code state that a resume must restore (grbl groups the post uses)."""

    motion: int = 0               # G0 / G1
    absolute: bool = True         # G90 / G91
    inverse_time: bool = False    # G93 / G94
    units_mm: bool = True         # G21 / G20
    feed: float | None = None     # last F
    spindle: int = 5              # M3 / M4 / M5
    spindle_speed: float | None = None

    def preamble(self) -> list[str]:
        """Lines that put a freshly reset controller into this state (grbl syntax).

        The motion mode matters most: after a reset grbl is in G0, and a program line
        with axis words only would become a rapid. A bare ``G1`` in G93 mode is an error
        in grbl (error:22, F is required), so G1 is set in G94 with an F word first and
        G93 restored after it (every G93 line carries its own F)."""
        out = ["G21" if self.units_mm else "G20", "G90" if self.absolute else "G91"]
        if self.spindle in (3, 4):
            s = f"S{self.spindle_speed:g}" if self.spindle_speed is not None else ""
            out.append(f"M{self.spindle}{s}")
            out.append("G4P2")          # let the spindle come up to speed before cutting
        if self.motion == 1:
            if self.inverse_time:
                out += [f"G94G1F{self.feed or 1:g}", "G93"]
            elif self.feed is not None:
                out.append(f"G94G1F{self.feed:g}")
            else:
                out += ["G94", "G1"]
        else:
            out += ["G93" if self.inverse_time else "G94", "G0"]
        return out


@dataclass(frozen=True)
class ProgramLine:
    """One line that is sent. ``no``: 1-based line number in the file; ``text``: what the
    controller receives (comments and whitespace stripped, upper case); ``data``: the exact
    bytes sent and counted (text + newline); ``target``: absolute position of the axes
    after the line ((7,) in program units, None if the line does not move);
    ``before``: the modal state the line runs in."""

    no: int
    text: str
    data: bytes
    before: Modal
    start: tuple[float, ...]
    target: tuple[float, ...] | None

    @property
    def makes_block(self) -> bool:
        """Surely takes a planner block: a move of nonzero length (grbl drops zero-length
        moves; a dwell waits for an empty planner instead)."""
        return self.target is not None and self.target != self.start


@dataclass
class Program:
    path: Path
    sha256: str
    lines: list[ProgramLine]
    n_file_lines: int
    end_modal: Modal = field(default_factory=Modal)

    def __len__(self) -> int:
        return len(self.lines)

    def index_of(self, file_line: int) -> int:
        for i, ln in enumerate(self.lines):
            if ln.no == file_line:
                return i
        raise KeyError(file_line)


def strip_line(raw: str, no: int, path: Path) -> str:
    """Remove ``( ... )`` and ``; ...`` comments and all whitespace; upper-case the rest."""
    out = []
    depth = 0
    for ch in raw:
        if depth:
            if ch == "(":
                raise UserError(f"{path}:{no}: nested '(' in a comment; grbl does not "
                                "accept nested comments")
            if ch == ")":
                depth = 0
            continue
        if ch == "(":
            depth = 1
        elif ch == ";":
            break
        elif ch == ")":
            raise UserError(f"{path}:{no}: ')' without '('; fix the comment")
        elif not ch.isspace():
            out.append(ch)
    if depth:
        raise UserError(f"{path}:{no}: comment '(' is not closed on its line")
    return "".join(out).upper()


def load_program(path: str | Path, *, max_line_chars: int = 80, rx_buffer: int = 128,
                 allowed_chars: str = "", frame_overhead: int = 0) -> Program:
    """Read, strip and check a G-code program.

    ``rx_buffer`` is the controller's receive buffer in bytes (it holds rx_buffer - 1);
    ``frame_overhead`` the bytes a protocol adds to a line (Marlin's ``N<n> `` and ``*cs``).
    Raises UserError naming the file line for anything the controller would choke on.
    """
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory; give the G-code program file")
    if not path.is_file():
        raise UserError(f"program not found: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise UserError(f"{path} is not a text G-code file (not UTF-8)")
    code_chars = set(allowed_chars) - set("();") if allowed_chars else None
    lines: list[ProgramLine] = []
    modal = Modal()
    pos = tuple(0.0 for _ in AXES)
    file_lines = text.splitlines()
    for no, rawline in enumerate(file_lines, start=1):
        t = strip_line(rawline, no, path)
        if not t or t == "%":
            continue
        bad = sorted({c for c in t if (c in REALTIME_CHARS or not (" " < c < "\x7f")
                                         or (code_chars is not None and c not in code_chars))})
        if bad:
            shown = ", ".join(repr(c) for c in bad)
            raise UserError(f"{path}:{no}: character(s) {shown} are not accepted by the "
                            "controller; remove them or put them in a comment")
        n = len(t) + frame_overhead
        if n > max_line_chars:
            raise UserError(f"{path}:{no}: line is {n} characters, the controller takes at "
                            f"most {max_line_chars}; re-post with shorter numbers")
        if n + 1 > rx_buffer - 1:
            raise UserError(f"{path}:{no}: line needs {n + 1} bytes but the controller's "
                            f"receive buffer holds {rx_buffer - 1}")
        if not t.startswith("$") and "#" not in t and not _WORDS.fullmatch(t):
            raise UserError(f"{path}:{no}: '{t}' is not a sequence of G-code words "
                            "(letter + number)")
        before, start = modal, pos
        modal, pos, moved = _apply(modal, pos, t)
        lines.append(ProgramLine(no=no, text=t, data=(t + "\n").encode("ascii"), before=before,
                                 start=start, target=pos if moved else None))
    if not lines:
        raise UserError(f"{path} has no G-code lines to send")
    return Program(path=path, sha256=sha256_bytes(raw), lines=lines,
                   n_file_lines=len(file_lines), end_modal=modal)


def _apply(modal: Modal, pos: tuple[float, ...], text: str
           ) -> tuple[Modal, tuple[float, ...], bool]:
    """Modal state and axis position after ``text``; ``moved``: the line has axis words."""
    if text.startswith("$"):
        return modal, pos, False
    words: dict[str, float] = {}
    changes: dict = {}
    g4 = False
    for m in _WORD.finditer(text):
        letter, value = m.group(1), float(m.group(2))
        if letter == "G":
            g = int(value)
            if g in (0, 1):
                changes["motion"] = g
            elif g in (90, 91):
                changes["absolute"] = g == 90
            elif g in (93, 94):
                changes["inverse_time"] = g == 93
            elif g in (20, 21):
                changes["units_mm"] = g == 21
            elif g == 4:
                g4 = True
        elif letter == "M" and int(value) in (3, 4, 5):
            changes["spindle"] = int(value)
        else:
            words[letter] = value
    if "F" in words:
        changes["feed"] = words["F"]
    if "S" in words:
        changes["spindle_speed"] = words["S"]
    modal = replace(modal, **changes) if changes else modal
    axis = {a: v for a, v in words.items() if a in AXES}
    if not axis or g4:
        return modal, pos, False
    new = tuple((axis[a] if modal.absolute else p + axis[a]) if a in axis else p
                for a, p in zip(AXES, pos))
    return modal, new, True
