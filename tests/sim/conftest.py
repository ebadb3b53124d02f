"""Small jobs built by hand for the simulator tests (no CAM or post needed)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import trimesh

from sculptor.artifacts.core import Provenance, atomic_write_mesh, sha256_file
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.toolpath import MoveKind, Pass, StockSpec, Toolpath
from sculptor.profiles import load_cell, load_robot, load_tool

CELL = "kuka-kr6-r900-turntable"
DOWN = np.diag([1.0, -1.0, -1.0])  # tool z = -Z (pointing down), x = +X


def make_pass(points, frames=None, kinds=None, tool="ball-6mm", turntable_rad=0.0,
              name="p", feed=20.0) -> Pass:
    pts = np.asarray(points, float)
    n = len(pts)
    fr = np.broadcast_to(DOWN, (n, 3, 3)).copy() if frames is None else np.asarray(frames)
    kd = np.full(n, int(MoveKind.CUT)) if kinds is None else np.asarray(kinds)
    return Pass(name=name, operation="finish", strategy="test", tool_id=tool,
                position_mm=pts, tool_frame=fr, feed_mm_s=np.full(n, feed), kind=kd,
                turntable_rad=np.full(n, turntable_rad))


def make_job(job_dir: Path, passes: list[Pass], stock=(60.0, 60.0, 40.0),
             design: trimesh.Trimesh | None = None, program: bool = True) -> Path:
    """Write JOB/job.json, JOB/design.stl and (optionally) JOB/program.json."""
    job_dir = Path(job_dir)
    job_dir.mkdir(parents=True, exist_ok=True)
    if design is None:  # the stock less 6 mm at the top: what a facing pass would leave
        design = trimesh.creation.box((stock[0], stock[1], stock[2] - 6.0))
        design.apply_translation((0, 0, (stock[2] - 6.0) / 2))
    atomic_write_mesh(job_dir / "design.stl", design)
    tp = Toolpath(provenance=Provenance.make("test"), design="design.stl",
                  design_sha256=sha256_file(job_dir / "design.stl"), cell=CELL,
                  stock=StockSpec(kind="box", size_mm=list(stock)), passes=passes)
    tp.save(job_dir / "job.json")
    if program:
        solve_test_program(tp, job_dir).save(job_dir / "program.json")
    return job_dir


def solve_test_program(tp: Toolpath, job_dir: Path) -> RobotProgram:
    """One robot target per move: IK of each TCP pose, the branch nearest the previous."""
    from sculptor.robot.kinematics import ik

    cell = load_cell(tp.cell)
    robot = load_robot(cell.robot)
    rows = []
    for pi, p in enumerate(tp.passes):
        tool = load_tool(p.tool_id)
        tcp_from_flange = np.linalg.inv(tool.flange_from_tcp.matrix())
        for mi in range(p.n_moves):
            wfw = cell.world_from_workpiece_at(float(p.turntable_rad[mi]))
            wp_from_tcp = np.eye(4)
            wp_from_tcp[:3, :3] = p.tool_frame[mi]
            wp_from_tcp[:3, 3] = p.position_mm[mi]
            base_from_tcp = np.linalg.inv(cell.world_from_robot_base.matrix()) @ wfw @ wp_from_tcp
            rows.append((pi, mi, base_from_tcp, base_from_tcp @ tcp_from_flange, p))
    sols, ok = ik(robot, np.stack([r[3] for r in rows]))
    q = np.zeros((len(rows), 6))
    cfg = np.zeros(len(rows), np.int8)
    valid = ok.any(1)
    prev = None
    for i in range(len(rows)):
        cand = np.nonzero(ok[i])[0]
        if len(cand) == 0:
            q[i] = prev if prev is not None else 0.0
            continue
        if prev is None:
            b = cand[np.argmin(np.abs(sols[i, cand]).sum(1))]
        else:
            b = cand[np.argmin(np.abs(sols[i, cand] - prev).sum(1))]
        q[i], cfg[i], prev = sols[i, b], b, sols[i, b]
    return RobotProgram(
        provenance=Provenance.make("test"), robot=robot.name, cell=cell.name,
        tool=tp.passes[0].tool_id, job_sha256=sha256_file(job_dir / "job.json"),
        valid_ratio=float(valid.mean()), joints_rad=q,
        turntable_rad=np.array([r[4].turntable_rad[r[1]] for r in rows]),
        base_from_tcp=np.stack([r[2] for r in rows]),
        move_kind=np.array([r[4].kind[r[1]] for r in rows], np.int8),
        feed_mm_s=np.array([r[4].feed_mm_s[r[1]] for r in rows]),
        source_index=np.array([(r[0], r[1]) for r in rows], np.int32), config=cfg, valid=valid)


def slot_points(y: float, z: float, x0: float = -45.0, x1: float = 45.0, step: float = 5.0):
    xs = np.arange(x0, x1 + 1e-9, step)
    return np.stack([xs, np.full_like(xs, y), np.full_like(xs, z)], 1)


def facing_points(z: float, half: float = 36.0, stepover: float = 4.0):
    """A zig-zag facing the whole top at tip height z with a ball tool."""
    pts = []
    for i, y in enumerate(np.arange(-half, half + 1e-9, stepover)):
        xs = np.array([-half, half]) if i % 2 == 0 else np.array([half, -half])
        pts += [[xs[0], y, z], [xs[1], y, z]]
    return np.asarray(pts)


@pytest.fixture
def kit():
    """The helpers above, for tests."""
    import types

    return types.SimpleNamespace(make_pass=make_pass, make_job=make_job, slot_points=slot_points,
                                 facing_points=facing_points, DOWN=DOWN, CELL=CELL,
                                 solve_test_program=solve_test_program)


def rot_y(deg: float) -> np.ndarray:
    a = math.radians(deg)
    return np.array([[math.cos(a), 0, math.sin(a)], [0, 1, 0], [-math.sin(a), 0, math.cos(a)]])


@pytest.fixture(scope="session")
def good_job(tmp_path_factory):
    """A facing job the demo cell can carve: (job dir, report) at 1 mm."""
    from test_sim_run import RES, _facing_pass

    from sim import run_simulation

    d = tmp_path_factory.mktemp("good") / "job"
    make_job(d, [_facing_pass()])
    return d, run_simulation(d, res_mm=RES, progress=False)
