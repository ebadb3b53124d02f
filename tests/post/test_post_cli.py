"""`sculptor post`: the happy path and bad input (exit 2, one line, nothing written)."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from sculptor.artifacts import RobotProgram
from sculptor.cli import app
from sculptor.robot.synthetic import block_strokes

runner = CliRunner()


def _job(tmp_path, **kw):
    job = tmp_path / "job"
    job.mkdir()
    tp = block_strokes(n_strokes=3, seed=4, **kw)
    return job, tp


def _run(*args):
    res = runner.invoke(app, ["post", *map(str, args)])
    return res.exit_code, (res.stderr if res.stderr_bytes is not None else res.output)


def test_post_writes_program_and_krl(tmp_path):
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    code, _ = _run(job, "--dialect", "krl", "--out", tmp_path / "carve.src")
    assert code == 0
    assert (tmp_path / "carve.src").is_file() and (tmp_path / "carve.dat").is_file()
    prog = RobotProgram.load(job / "program.json")
    assert prog.valid_ratio == 1.0 and prog.robot == "kuka-kr6-r900"
    assert prog.job_sha256 and len(prog.joints_rad) == prog.n > tp.n_moves - 1


@pytest.mark.parametrize("args,msg", [
    (["--dialect", "nope"], "unknown dialect"),
    (["--dialect", "gcode-3axis"], "cnc3"),
    (["--dialect", "krl", "--cell", "no-such-cell"], "unknown cell"),
    (["--dialect", "krl", "--chord-tol-mm", "0"], "chord_tol_mm"),
])
def test_bad_options_exit_2_and_write_nothing(tmp_path, args, msg):
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    before = sorted(p.name for p in job.iterdir())
    code, err = _run(job, *args, "--out", tmp_path / "out.x")
    assert code == 2
    assert msg in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out.x").exists()
    assert sorted(p.name for p in job.iterdir()) == before


def test_missing_job_and_corrupt_job(tmp_path):
    code, err = _run(tmp_path / "nojob", "--dialect", "krl", "--out", tmp_path / "x.src")
    assert code == 2 and "job directory not found" in err
    job = tmp_path / "job"
    job.mkdir()
    (job / "job.json").write_text("{not json")
    code, err = _run(job, "--dialect", "krl", "--out", tmp_path / "x.src")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x.src").exists()


def test_unreachable_points_exit_2_with_where_and_why(tmp_path):
    job, tp = _job(tmp_path)
    pos = tp.passes[0].position_mm.copy()
    pos[30:45, 0] += 2000.0
    tp.passes[0].position_mm = pos
    tp.save(job / "job.json")
    code, err = _run(job, "--dialect", "gcode-joint", "--out", tmp_path / "carve.gcode")
    assert code == 2
    assert "pass 0 moves 30-44" in err and "out of reach" in err
    assert not (tmp_path / "carve.gcode").exists()
    prog = RobotProgram.load(job / "program.json")  # kept for sculptor sim to show
    assert prog.valid_ratio < 1.0 and prog.failures


def test_nan_in_job_exit_2(tmp_path):
    job, tp = _job(tmp_path)
    fr = tp.passes[0].tool_frame.copy()
    fr[5, 0, 0] = np.nan
    tp.passes[0].tool_frame = fr
    tp.save(job / "job.json")
    code, err = _run(job, "--dialect", "krl", "--out", tmp_path / "x.src")
    assert code == 2 and "NaN" in err and "move 5" in err
    assert not (tmp_path / "x.src").exists() and not (job / "program.json").exists()
