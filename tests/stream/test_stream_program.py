"""Program loading: stripping as counted, checks before anything moves, modal tracking."""

from __future__ import annotations

import pytest

from sculptor.errors import UserError
from sculptor.stream.program import load_program


def _write(tmp_path, text):
    p = tmp_path / "p.gcode"
    p.write_text(text)
    return p


def test_strip_and_count_are_the_same_bytes(tmp_path):
    p = _write(tmp_path, "%\n(header)\nG90 G21 G93 ; modes\ng1 x1.5 (a) y-2 F600\n\n;only\n%\n")
    prog = load_program(p)
    assert [ln.text for ln in prog.lines] == ["G90G21G93", "G1X1.5Y-2F600"]
    assert [ln.no for ln in prog.lines] == [3, 4]
    for ln in prog.lines:
        assert ln.data == (ln.text + "\n").encode()      # counted == sent
    assert prog.lines[1].target[:2] == (1.5, -2.0)


def test_modal_state_and_targets(tmp_path):
    p = _write(tmp_path, "G90 G94\nG1 X10 Y5 F300\nM3 S9000\nG91\nG1 X1\nG90 G93\nG1 Z3 F60\n")
    prog = load_program(p)
    tgt = [ln.target for ln in prog.lines]
    assert tgt[1][:3] == (10, 5, 0) and tgt[2] is None
    assert tgt[4][:3] == (11, 5, 0)                      # incremental
    assert prog.lines[4].before.absolute is False
    b = prog.lines[6].before
    assert b.spindle == 3 and b.spindle_speed == 9000 and b.inverse_time
    assert prog.lines[2].before.preamble() == ["G21", "G90", "G94G1F300"]
    assert prog.lines[6].before.preamble() == ["G21", "G90", "M3S9000", "G4P2", "G94G1F300",
                                               "G93"]
    assert prog.lines[7 - 1].before.motion == 1


@pytest.mark.parametrize("text,needle", [
    ("G1 X" + "1" * 90 + "\n", "at most 80"),
    ("G1 X1 Y2 @\n", "'@'"),
    ("G1 X1 ? \n", "'?'"),                      # a real-time byte would hold the machine
    ("G1 X1 (open comment\n", "not closed"),
    ("G1 X1.2.3\n", "not a sequence of G-code words"),
])
def test_bad_programs_are_refused_with_the_line(tmp_path, needle, text):
    p = _write(tmp_path, "G90\n" + text)
    with pytest.raises(UserError) as e:
        load_program(p, max_line_chars=80,
                     allowed_chars="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-+ $=()#;%")
    assert needle in str(e.value)
    assert ":2:" in str(e.value)


def test_line_longer_than_buffer(tmp_path):
    p = _write(tmp_path, "G1 X" + "1" * 40 + "\n")
    with pytest.raises(UserError, match="receive buffer holds 31"):
        load_program(p, max_line_chars=200, rx_buffer=32)


def test_missing_and_binary(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load_program(tmp_path / "nope.gcode")
    b = tmp_path / "b.gcode"
    b.write_bytes(b"\xff\xfe\x00G1")
    with pytest.raises(UserError, match="not a text"):
        load_program(b)
    c = tmp_path / "c.gcode"
    c.write_text("(only a comment)\n; and another\n")
    with pytest.raises(UserError, match="no G-code lines"):
        load_program(c)
