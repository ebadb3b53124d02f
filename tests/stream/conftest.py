"""Shared fixtures for the stream tests: joint G-code programs like the gcode-joint post
writes them, and virtual controllers on real pseudo-terminals (stopped after each test)."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sim.controller import serve


def joint_program(n: int, *, feed_inv_min: float = 6000.0, header: str = "G90 G21 G93",
                  extra: dict[int, str] | None = None) -> list[str]:
    """A gcode-joint style program: header, n joint moves on a smooth 7-axis path, with
    comments in parentheses and after ';' (the sender must strip them exactly)."""
    lines = ["%", "(sculptor gcode-joint, cell kuka-kr6-r900-turntable, tool gouge-12mm)",
             f"{header} ; absolute, mm, inverse-time feed"]
    for i in range(n):
        t = i / max(1, n - 1)
        j = [30 * math.sin(2 * t), -45 + 20 * t, 60 * math.cos(t), 5 * t, 40 * math.sin(t),
             -10 + 3 * t, 360 * t]
        words = " ".join(f"{a}{v:.3f}" for a, v in zip("XYZABCU", j))
        lines.append(f"G1 {words} F{feed_inv_min:.0f}" + (" (stroke start)" if i % 25 == 0 else ""))
        if extra and i in extra:
            lines.append(extra[i])
    lines += ["M5 ; end", "%"]
    return lines


def stripped(lines: list[str]) -> list[str]:
    """What the controller must receive, independent of the sender's own stripping code."""
    out = []
    for ln in lines:
        while "(" in ln:
            a, b = ln.index("("), ln.index(")")
            ln = ln[:a] + ln[b + 1:]
        ln = ln.split(";")[0].replace(" ", "").upper()
        if ln and ln != "%":
            out.append(ln)
    return out


@pytest.fixture
def write_program(tmp_path):
    def make(n: int = 120, name: str = "job.gcode", **kw) -> tuple[Path, list[str]]:
        lines = joint_program(n, **kw)
        p = tmp_path / name
        p.write_text("\n".join(lines) + "\n")
        return p, stripped(lines)
    return make


@pytest.fixture
def controller():
    served = []

    def make(protocol: str = "grbl", **kw):
        s = serve(protocol, **kw)
        served.append(s)
        return s
    yield make
    for s in served:
        s.stop()
