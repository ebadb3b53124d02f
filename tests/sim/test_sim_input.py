"""Bad input and interrupted runs: one clear line, exit 2, nothing half-written."""

from __future__ import annotations

import json
import shutil

import pytest
from typer.testing import CliRunner

from sculptor.artifacts.toolpath import Toolpath
from sculptor.cli import app
from sculptor.errors import UserError
from sim import run_simulation

runner = CliRunner()


def _copy(good_job, tmp_path):
    d = tmp_path / "job"
    shutil.copytree(good_job[0], d)
    return d


def _one_line_exit_2(*args):
    res = runner.invoke(app, ["sim", *map(str, args)])
    out = (res.stdout or "") + (res.stderr or "")
    assert res.exit_code == 2, out
    assert len(out.strip().splitlines()) == 1, out
    return out


def test_job_for_another_cell_is_refused(tmp_path, good_job):
    d = _copy(good_job, tmp_path)
    before = (d / "sim" / "report.json").read_bytes()
    raw = json.loads((d / "job.json").read_text())
    raw["cell"] = "cnc-router-3axis"  # a robot job handed to a CNC cell
    (d / "job.json").write_text(json.dumps(raw))
    out = _one_line_exit_2(d, "--res-mm", "2", "--no-progress")
    assert "cell" in out and "sculptor cam" in out
    raw["cell"] = "no-such-cell"
    (d / "job.json").write_text(json.dumps(raw))
    out = _one_line_exit_2(d, "--res-mm", "2", "--no-progress")
    assert "no-such-cell" in out
    assert (d / "sim" / "report.json").read_bytes() == before


def test_missing_program_is_solved_with_a_warning(tmp_path, good_job, capsys):
    d = _copy(good_job, tmp_path)
    (d / "program.json").unlink()
    (d / "program.npz").unlink()
    rep = run_simulation(d, res_mm=2.0, progress=False)
    assert "program.json missing" in capsys.readouterr().err
    # the robot stage densifies: at least one target per move
    assert rep.robot["n_targets"] >= Toolpath.load(d / "job.json").n_moves
    assert rep.cycle_time_s and rep.cycle_time_s > 0


def test_program_with_wrong_shapes_is_refused(tmp_path, good_job):
    d = _copy(good_job, tmp_path)
    raw = json.loads((d / "program.json").read_text())
    raw["robot"] = "ur10e"
    (d / "program.json").write_text(json.dumps(raw))
    with pytest.raises(UserError, match="robot"):
        run_simulation(d, res_mm=2.0, progress=False)


def test_run_interrupted_while_writing_keeps_the_old_results(tmp_path, good_job, monkeypatch):
    d = _copy(good_job, tmp_path)
    before = {f.name: f.read_bytes() for f in (d / "sim").iterdir()}
    import sim.stills

    def killed(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(sim.stills, "write_stills", killed)
    with pytest.raises(KeyboardInterrupt):
        run_simulation(d, res_mm=2.0, progress=False)
    assert {f.name: f.read_bytes() for f in (d / "sim").iterdir()} == before
    assert not list(d.glob(".sim.*"))
    monkeypatch.undo()
    rep = run_simulation(d, res_mm=2.0, progress=False)
    assert rep.res_mm == 2.0
    assert json.loads((d / "sim" / "report.json").read_text())["res_mm"] == 2.0


def test_no_go_names_the_runs_of_failing_moves(tmp_path, good_job):
    from sculptor.artifacts.program import RobotProgram

    d = _copy(good_job, tmp_path)
    prog = RobotProgram.load(d / "program.json")
    prog.valid[5:9] = False
    prog.valid[12] = False
    prog.save(d / "program.json")
    rep = run_simulation(d, res_mm=2.0, progress=False)
    assert not rep.go
    runs = rep.robot["failed_move_ranges_by_reason"]["unreachable"]
    assert runs == ["pass 0 (p) moves 5-8", "pass 0 (p) move 12"]
    md = (d / "sim" / "report.md").read_text()
    assert "unreachable: 5 moves; pass 0 (p) moves 5-8; pass 0 (p) move 12" in md
