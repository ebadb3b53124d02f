"""Resume planning (pure) and the journal's round trip."""

from __future__ import annotations

import json

import pytest

from sculptor.artifacts.core import Provenance
from sculptor.artifacts.journal import Journal, JournalEvent, JournalHeader
from sculptor.errors import UserError
from sculptor.stream.program import load_program
from sculptor.stream.resume import JournalState, plan_resume


@pytest.fixture
def prog(tmp_path):
    p = tmp_path / "p.gcode"
    p.write_text("G90 G21 G93\n"            # line 1
                 "G1 X10 Y0 F600\n"         # 2
                 "G1 X10 Y10 F600\n"        # 3
                 "M3 S1000\n"               # 4
                 "G1 X0 Y10 F600\n"         # 5
                 "G1 X10 Y0 F600\n"         # 6  (crosses back over line 2's end)
                 "G1 X20 Y0 F600\n")        # 7
    return load_program(p)


def js(sent, acked=(), exec_line=0):
    return JournalState(frozenset(sent), frozenset(acked), exec_line, False, ())


def test_stopped_between_lines(prog):
    plan = plan_resume(prog, js(range(1, 8), range(1, 4), exec_line=3), (10, 10, 0))
    assert plan.line_no == 4 and "between lines" in plan.reason
    assert plan.preamble == ("G21", "G90", "G94G1F600", "G93")   # no bare G1 in G93


def test_stopped_inside_a_line_resends_it(prog):
    plan = plan_resume(prog, js(range(1, 8), range(1, 5), exec_line=4), (4, 10, 0))
    assert plan.line_no == 5 and "inside" in plan.reason
    # a real controller reports whole steps: a few hundredths off still matches
    plan = plan_resume(prog, js(range(1, 8), range(1, 5), exec_line=4), (4.013, 9.988, 0.01))
    assert plan.line_no == 5
    assert plan.preamble[2:4] == ("M3S1000", "G4P2")   # spindle back on before moving


def test_earliest_match_never_skips(prog):
    # (10, 0) is the end of line 2 and of line 6: with only line 1 known executed the
    # earliest point wins, so lines 3..6 run (again) rather than being skipped
    plan = plan_resume(prog, js(range(1, 8), range(1, 7), exec_line=1), (10, 0, 0))
    assert plan.line_no == 3
    plan = plan_resume(prog, js(range(1, 8), range(1, 7), exec_line=5), (10, 0, 0))
    assert plan.line_no == 7


def test_never_restarts_past_a_failed_line(prog):
    st = JournalState(frozenset(range(1, 8)), frozenset({1, 2, 4, 5}), 2, False,
                      ("error:20",), first_error_line=3)
    plan = plan_resume(prog, st, (10, 4, 0))          # stopped inside line 3: fine
    assert plan.line_no == 3
    with pytest.raises(UserError, match="line 3 failed and was not run"):
        plan_resume(prog, st, (0, 10, 0))             # grbl ran on past it (line 5's end)


def test_off_path_refuses(prog):
    with pytest.raises(UserError, match="not on the programmed path"):
        plan_resume(prog, js(range(1, 6), range(1, 4), exec_line=3), (3, 3, 0))


def test_no_position_uses_executed_checkpoint(prog):
    plan = plan_resume(prog, js(range(1, 6), range(1, 5), exec_line=4), None)
    assert plan.line_no == 5


def test_incremental_mode_refuses(tmp_path):
    p = tmp_path / "inc.gcode"
    p.write_text("G91 G94 F100\nG1 X1\nG1 X1\nG1 X1\n")
    pr = load_program(p)
    with pytest.raises(UserError, match="G91"):
        plan_resume(pr, js(range(1, 4), range(1, 3), exec_line=2), (2, 0, 0))


def _header():
    return JournalHeader(provenance=Provenance.make("sculptor stream", {"port": "/dev/x"}),
                         program="p.gcode", program_sha256="ab" * 32, n_lines=3,
                         port="/dev/x", protocol="grbl", baud=115200)


def test_journal_round_trip_torn_tail_and_state(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path, _header())
    j.append_many([{"ev": "sent", "line": 1, "t": 1.0}, {"ev": "sent", "line": 2, "t": 1.0}])
    j.append("ack", line=1, t=1.1)
    j.append("exec", line=1, t=1.2)
    j.append("error", line=2, t=1.3, msg="error:20 (unsupported or invalid G-code)")
    j.close()
    with pytest.raises(UserError, match="already exists"):
        Journal(path, _header())
    with open(path, "a") as f:
        f.write('{"ev":"ack","line":2')                 # torn by a power cut
    header, events = Journal.read(path)
    assert header.program_sha256 == "ab" * 32 and header.protocol == "grbl"
    assert [e.ev for e in events] == ["sent", "sent", "ack", "exec", "error"]
    assert events[-1].msg.startswith("error:20")      # extra fields survive
    st = JournalState.from_events(events)
    assert st.sent == {1, 2} and st.acked == {1} and st.exec_line == 1 and not st.done
    assert st.first_error_line == 2
    j2 = Journal(path)                                  # append after the torn record
    j2.append("nack", line=1)
    j2.close()
    _, events = Journal.read(path)
    assert events[-1] == JournalEvent(ev="nack", line=1)
    assert JournalState.from_events(events).acked == frozenset()
    lines = path.read_text().splitlines()
    assert all(json.loads(ln) for ln in lines)          # every line is whole JSON again


def test_journal_corrupt_middle_is_refused(tmp_path):
    path = tmp_path / "j.jsonl"
    j = Journal(path, _header())
    j.append("sent", line=1)
    j.close()
    with open(path, "a") as f:
        f.write("garbage\n" + json.dumps({"ev": "sent", "line": 2}) + "\n")
    with pytest.raises(UserError, match="corrupt at line 3"):
        Journal.read(path)
    bad = tmp_path / "x.jsonl"
    bad.write_text("{}\n")
    with pytest.raises(UserError, match="not a sculptor stream journal"):
        Journal.read(bad)
