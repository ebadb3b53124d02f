"""Whole simulations of small hand-built jobs: verdicts, failing moves, outputs, CLI."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import MoveKind
from sculptor.cli import app
from sim import run_simulation

from conftest import DOWN, facing_points, make_job, make_pass, rot_y

RES = 1.0
TILT = DOWN @ rot_y(30)  # the demo cell reaches the block best with the tool leaning in
TIP_UP = 3.0 - 3.0 * np.cos(np.radians(30))  # tilted ball: tip above its lowest point


def _pass(points, kinds, name="p"):
    pts = np.asarray(points, float)
    return make_pass(pts, frames=np.broadcast_to(TILT, (len(pts), 3, 3)), kinds=kinds,
                     name=name)


def _facing_pass(z=34.0):
    pts = facing_points(z + TIP_UP, half=33.0, stepover=3.0)
    allp = np.concatenate([[[-33, -33, 60.0]], pts, [[33, 33, 60.0]]])
    kinds = np.full(len(allp), int(MoveKind.CUT))
    kinds[0], kinds[1], kinds[-1] = MoveKind.RAPID, MoveKind.PLUNGE, MoveKind.RETRACT
    return _pass(allp, kinds)


def test_good_job_is_go_and_writes_everything(good_job):
    d, rep = good_job
    assert rep.go, rep.reasons
    for f in ("carved.stl", "report.json", "report.md", "deviation.png", "preview.html",
              "front.png", "side.png", "top.png"):
        assert (d / "sim" / f).stat().st_size > 0, f
    m = rep.material
    # the facing leaves only ball scallops (3 mm step-over, r = 3: 0.40 mm) on the top
    assert m["max_gouge_mm"] <= m["gouge_limit_mm"]
    assert m["rest_max_mm"] < 0.4 + RES
    assert m["removed_volume_mm3"] == pytest.approx(60 * 60 * 6, rel=0.05)
    r = rep.robot
    assert r["targets_unreachable"] == 0 and r["collisions"] == {}
    assert rep.cycle_time_s >= r["cycle_time_feed_only_s"] > 0
    saved = json.loads((d / "sim" / "report.json").read_text())
    assert saved["go"] is True and saved["kind"] == "sim_report"
    assert "GO" in (d / "sim" / "report.md").read_text()


def test_gouge_and_rapid_through_wood_make_no_go(tmp_path):
    # a pass that goes 3 mm too deep at one point, and a rapid through the block
    p = _facing_pass()
    pos = p.position_mm.copy()
    pos[10, 2] -= 3.0
    p = _pass(pos, p.kind)
    rapid = _pass([[-45, 0, 30.0], [45, 0, 30.0]],
                  [MoveKind.RAPID, MoveKind.RAPID], name="rapid")
    d = make_job(tmp_path / "job", [p, rapid])
    rep = run_simulation(d, res_mm=RES, progress=False)
    assert not rep.go
    text = " ".join(rep.reasons)
    assert "into the design" in text and "rapid" in text
    fm = {(f.pass_index, f.move_index, f.reason.split(" (")[0]) for f in rep.failed_moves}
    assert (1, 1, "rapid move through material") in fm
    assert rep.material["max_gouge_mm"] > 2.0


def test_holder_plunged_into_wood_is_a_collision(tmp_path):
    # ball-6mm sticks out 80 mm: a plunge 100 mm deep puts the 40 mm holder in the wood
    deep = _pass([[0, 20, 140.0], [0, 20, 20.0], [0, 20, 140.0]],
                 [MoveKind.RAPID, MoveKind.PLUNGE, MoveKind.RETRACT], name="deep")
    d = make_job(tmp_path / "job", [deep], stock=(60.0, 60.0, 120.0))
    rep = run_simulation(d, res_mm=2.0, progress=False)
    assert not rep.go
    assert any("holder vs material" in r for r in rep.reasons)
    hits = {f.move_index for f in rep.failed_moves if "holder vs material" in f.reason}
    assert 1 in hits and 0 not in hits


def test_unreachable_targets_are_no_go(tmp_path):
    d = make_job(tmp_path / "job", [_facing_pass()])
    prog = RobotProgram.load(d / "program.json")
    prog.valid[5:9] = False
    prog.save(d / "program.json")
    rep = run_simulation(d, res_mm=2.0, progress=False)
    assert not rep.go and any("unreachable" in r for r in rep.reasons)
    assert {f.move_index for f in rep.failed_moves if "unreachable" in f.reason} == {5, 6, 7, 8}


runner = CliRunner()


def _cli(*args):
    res = runner.invoke(app, ["sim", *map(str, args)])
    return res.exit_code, (res.stdout or "") + (res.stderr or "")


def test_cli_bad_input_exits_2_and_writes_nothing(tmp_path, good_job):
    code, out = _cli(tmp_path / "nope")
    assert code == 2 and "not found" in out
    # program made for another cell
    d = tmp_path / "other"
    shutil.copytree(good_job[0], d)
    shutil.rmtree(d / "sim")
    prog = RobotProgram.load(d / "program.json")
    prog.cell = "cnc-router-3axis"
    prog.save(d / "program.json")
    code, out = _cli(d, "--res-mm", "2")
    assert code == 2 and "cell" in out and len(out.strip().splitlines()) == 1
    assert not (d / "sim").exists()
    # stale program: job.json changed after post
    prog.cell = "kuka-kr6-r900-turntable"
    prog.job_sha256 = "0" * 64
    prog.save(d / "program.json")
    code, out = _cli(d, "--res-mm", "2")
    assert code == 2 and "another job.json" in out and not (d / "sim").exists()
    # grid too large for memory
    code, out = _cli(good_job[0], "--res-mm", "0.001")
    assert code == 2 and "GB" in out and "--res-mm" in out
    code, out = _cli(good_job[0], "--res-mm", "-1")
    assert code == 2


def test_cli_runs_and_interrupted_run_restarts_cleanly(tmp_path, good_job):
    d = tmp_path / "job"
    shutil.copytree(good_job[0], d)
    before = (d / "sim" / "report.json").read_bytes()
    # a run killed mid-way leaves its temp dir; the old results stay untouched
    (d / ".sim.x.tmp").mkdir()
    (d / ".sim.x.tmp" / "carved.stl").write_text("half")
    code, out = _cli(d, "--res-mm", "2", "--no-progress")
    assert code == 0, out
    assert out.startswith("GO")
    assert not list(d.glob(".sim.*.tmp"))
    rep = json.loads((d / "sim" / "report.json").read_text())
    assert rep["res_mm"] == 2.0 and (d / "sim" / "report.json").read_bytes() != before
