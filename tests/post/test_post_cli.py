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


def _profiles(tmp_path, monkeypatch, kind, name, text):
    root = tmp_path / "profiles"
    (root / kind).mkdir(parents=True, exist_ok=True)
    (root / kind / f"{name}.toml").write_text(text)
    monkeypatch.setenv("SCULPTOR_PROFILES", str(root))


def test_wrong_joint_sign_in_a_robot_profile_exit_2(tmp_path, monkeypatch):
    """A KR 6 profile with A4 turning the wrong way would send the real arm elsewhere:
    the post refuses it (FK against the published chain) before solving anything."""
    from sculptor.profiles import profile_dirs

    src = (profile_dirs()[-1] / "robots" / "kuka-kr6-r900.toml").read_text()
    a4 = src.index('name = "A4"')
    bad = src[:a4] + src[a4:].replace("sign = -1\n", "", 1)
    assert bad != src
    _profiles(tmp_path, monkeypatch, "robots", "kuka-kr6-r900", bad)
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    code, err = _run(job, "--dialect", "krl", "--out", tmp_path / "x.src")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "published kinematics" in err and "kuka-kr6-r900" in err
    assert not (tmp_path / "x.src").exists() and not (job / "program.json").exists()


def test_stock_out_of_reach_exit_2(tmp_path, monkeypatch):
    from sculptor.profiles import profile_dirs

    src = (profile_dirs()[-1] / "cells" / "kuka-kr6-r900-turntable.toml").read_text()
    far = src.replace('name = "kuka-kr6-r900-turntable"', 'name = "far-cell"').replace(
        "xyz_mm = [760.0, 0.0, 400.0]", "xyz_mm = [2600.0, 0.0, 400.0]")
    assert far.count("2600.0") == 1
    _profiles(tmp_path, monkeypatch, "cells", "far-cell", far)
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    code, err = _run(job, "--dialect", "gcode-joint", "--cell", "far-cell", "--out",
                     tmp_path / "x.gcode")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "out of the robot's reach" in err and "far-cell" in err
    assert not (tmp_path / "x.gcode").exists()


def test_second_dialect_reuses_the_solved_program(tmp_path):
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    assert _run(job, "--dialect", "krl", "--out", tmp_path / "a.src")[0] == 0
    stamp = (job / "program.json").stat().st_mtime_ns
    (job / "program.png").unlink()
    assert _run(job, "--dialect", "gcode-joint", "--out", tmp_path / "a.gcode")[0] == 0
    assert (job / "program.json").stat().st_mtime_ns == stamp  # not solved again
    assert (job / "program.png").is_file()  # but its plot is drawn again when missing
    # another parameter (or job, cell, profile, solver) solves afresh
    assert _run(job, "--dialect", "gcode-joint", "--out", tmp_path / "b.gcode",
                "--a5-margin-deg", "12")[0] == 0
    assert (job / "program.json").stat().st_mtime_ns != stamp
    assert RobotProgram.load(job / "program.json").provenance.parameters["a5_margin_deg"] == 12


def test_out_of_range_field_in_a_robot_profile_exit_2(tmp_path, monkeypatch):
    from sculptor.profiles import profile_dirs

    src = (profile_dirs()[-1] / "robots" / "kuka-kr6-r900.toml").read_text()
    _profiles(tmp_path, monkeypatch, "robots", "kuka-kr6-r900",
              src.replace("c3_mm = 420.0", "c3_mm = 42000.0"))
    job, tp = _job(tmp_path)
    tp.save(job / "job.json")
    code, err = _run(job, "--dialect", "krl", "--out", tmp_path / "x.src")
    assert code == 2 and len(err.strip().splitlines()) == 1 and "opw.c3_mm" in err
    assert not (tmp_path / "x.src").exists()
