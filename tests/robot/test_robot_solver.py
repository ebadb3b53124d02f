"""Redundancy solver on synthetic gouge jobs in the demo cell: reach, safety, continuity."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sculptor.artifacts import MoveKind, Pass, RobotProgram
from sculptor.errors import UserError
from sculptor.profiles import CellProfile, load_cell, load_robot, load_tool
from sculptor.robot import fk, solve_program
from sculptor.robot.cell import RobotCell, inv_rigid
from sculptor.robot.kinematics import to_kinematic
from sculptor.robot.solver import chord_error, make_freedom
from sculptor.robot.synthetic import block_strokes, gouge_frame

CELL = "kuka-kr6-r900-turntable"


@pytest.fixture(scope="module")
def demo():
    tp = block_strokes(n_strokes=48, seed=11)
    return tp, solve_program(tp, CELL, progress=False)


def test_demo_cell_reaches_the_whole_block_with_the_gouge(demo):
    tp, prog = demo
    cell = load_cell(CELL)
    assert tuple(cell.default_stock_mm) == (220.0, 220.0, 450.0)
    assert prog.valid_ratio == 1.0 and not prog.failures and prog.valid.all()
    # strokes cover the four sides from near the bottom to the top face
    z = tp.passes[0].position_mm[:, 2]
    assert z.min() < 80 and z.max() > 440


def test_program_follows_the_toolpath_exactly(demo):
    tp, prog = demo
    robot, tool = load_robot(prog.robot), load_tool(prog.tool)
    b_tcp = fk(robot, prog.joints_rad) @ tool.flange_from_tcp.matrix()
    assert np.abs(b_tcp - prog.base_from_tcp).max() < 1e-6
    rc = RobotCell.load(CELL)
    wp = inv_rigid(rc.base_from_workpiece(prog.turntable_rad)) @ b_tcp
    orig = np.isclose(prog.source_index[:, 1], prog.source_index[:, 1])  # all rows
    moves = prog.source_index[:, 1]
    first = np.r_[True, moves[1:] != moves[:-1]]  # first row of each source move...
    last = np.r_[moves[1:] != moves[:-1], True]  # ...and the original point is its last row
    assert orig.all() and first.sum() == tp.n_moves
    want = tp.passes[0].position_mm[moves[last]]
    assert np.abs(wp[last, :3, 3] - want).max() < 1e-6
    # the tool axis may tilt by at most the allowed 4 degrees; the cutting plane stays
    z_want = tp.passes[0].tool_frame[moves[last]][:, :, 2]
    cosang = np.einsum("ij,ij->i", wp[last, :3, 2], z_want)
    assert np.degrees(np.arccos(np.clip(cosang, -1, 1))).max() < 4.0 + 1e-6


def test_limits_singularity_margin_and_continuity(demo):
    _, prog = demo
    robot = load_robot(prog.robot)
    lim = robot.limits_rad
    q = prog.joints_rad
    assert np.all((q >= lim[:, 0]) & (q <= lim[:, 1]))
    assert np.degrees(np.abs(to_kinematic(robot, q)[:, 4])).min() >= 10.0
    cutting = prog.move_kind[1:] != MoveKind.RAPID
    step = np.degrees(np.abs(np.diff(q, axis=0))).max(1)
    assert step[cutting].max() < 30.0  # no configuration flip while cutting
    # the branch (configuration) changes only at rapids, in the air
    changed = prog.config[1:] != prog.config[:-1]
    assert not np.any(changed & cutting)
    # the whole block is reachable with the arm in front of its base (A1 never turned
    # round to +/-180 deg)
    assert not np.any(prog.config & 1)
    # turntable stays within the +/-30 degree search window of the CAM's angle
    tt = load_cell(CELL).turntable
    assert tt is not None


def test_chord_error_bounded_everywhere(demo):
    _, prog = demo
    robot, tool = load_robot(prog.robot), load_tool(prog.tool)
    rc = RobotCell.load(CELL)
    lin = np.nonzero(prog.move_kind[1:] != MoveKind.RAPID)[0]
    wp = inv_rigid(rc.base_from_workpiece(prog.turntable_rad)) @ prog.base_from_tcp
    err = chord_error(robot, rc, tool, prog.joints_rad[lin], prog.joints_rad[lin + 1],
                      prog.turntable_rad[lin], prog.turntable_rad[lin + 1], wp[lin],
                      wp[lin + 1], ts=np.linspace(0.05, 0.95, 19))
    assert err.max() < 0.0105
    assert prog.max_chord_error_mm <= 0.01
    # densification actually happened (joint interpolation bends)
    assert prog.n > sum(1 for _ in prog.source_index) - 1
    assert prog.n > len(np.unique(prog.source_index[:, 1]))


def test_rotary_tool_spin_is_taken_by_a6():
    tp = block_strokes(n_strokes=6, seed=5, faces=("top",), tool_id="ball-6mm")
    ps = tp.passes[0]
    # a ball cutter straight down onto the top face: only the spin is free (A6 takes it)
    frames = np.repeat(np.diag([1.0, -1.0, -1.0])[None], ps.n_moves, 0)
    ps.tool_frame = frames
    ps.turntable_rad = np.zeros(ps.n_moves)
    # a 340 mm spindle held vertically needs a bigger arm than the KR 6 above the raised
    # turntable of the demo cell: the IRB 2400 cell
    prog = solve_program(tp, "abb-irb2400-turntable", progress=False)
    assert prog.valid_ratio == 1.0, [(f["reason"], f["position_mm"]) for f in prog.failures]
    robot, tool = load_robot(prog.robot), load_tool("ball-6mm")
    z = (fk(robot, prog.joints_rad) @ tool.flange_from_tcp.matrix())[:, :3, 2]
    assert np.allclose(z, [0, 0, -1], atol=1e-9)
    # a spindle on the flange axis: its spin is A6's own turn, so no spin grid is searched
    assert make_freedom(tool, spin_step_deg=5, turntable_window_deg=30, turntable_step_deg=5,
                        tilt_deg=4, has_turntable=True).spin.max() == 0.0
    cutting = prog.move_kind[1:] != MoveKind.RAPID
    assert np.degrees(np.abs(np.diff(prog.joints_rad, axis=0))).max(1)[cutting].max() < 30


def test_unreachable_points_are_reported_with_where_and_why():
    tp = block_strokes(n_strokes=4, seed=2, faces=("side",))
    ps = tp.passes[0]
    pos = ps.position_mm.copy()
    far = slice(40, 60)
    pos[far, 2] += 1500.0  # 1.5 m above the block
    ps.position_mm = pos
    prog = solve_program(tp, CELL, progress=False)
    assert prog.valid_ratio < 1.0
    f = prog.failures[0]
    assert f["pass"] == 0 and f["moves"][0] <= 40 and f["moves"][1] >= 40
    assert "out of reach" in f["reason"]
    assert f["position_mm"][2] > 1500
    assert not prog.valid[np.isin(prog.source_index[:, 1], np.arange(40, 60))].any()


def test_wrist_margin_is_enforced_and_named():
    tp = block_strokes(n_strokes=2, seed=3, faces=("side",))
    prog = solve_program(tp, CELL, progress=False, a5_margin_deg=89.5)
    assert prog.valid_ratio < 0.5
    assert any("wrist singularity" in f["reason"] for f in prog.failures)


def test_nan_in_the_toolpath_is_a_user_error():
    tp = block_strokes(n_strokes=2, seed=3)
    pos = tp.passes[0].position_mm.copy()
    pos[17, 1] = np.nan
    tp.passes[0].position_mm = pos
    with pytest.raises(UserError, match="move 17"):
        solve_program(tp, CELL, progress=False)


def test_stock_out_of_reach_cell_fails_every_point():
    cell = load_cell(CELL)
    far = cell.model_copy(update={"turntable": cell.turntable.model_copy(update={
        "world_from_turntable": cell.turntable.world_from_turntable.model_copy(
            update={"xyz_mm": (2500.0, 0.0, 0.0)})})})
    tp = block_strokes(n_strokes=2, seed=3)
    prog = solve_program(tp, far, progress=False)
    assert prog.valid_ratio == 0.0
    assert all("out of reach" in f["reason"] for f in prog.failures)


def test_program_artifact_round_trip(demo, tmp_path):
    _, prog = demo
    prog.save(tmp_path / "program.json")
    back = RobotProgram.load(tmp_path / "program.json")
    assert back.valid_ratio == prog.valid_ratio and back.tools == prog.tools
    assert np.array_equal(back.joints_rad, prog.joints_rad)
    assert np.array_equal(back.move_kind, prog.move_kind)


def test_gouge_frame_follows_the_readme_convention():
    d = np.array([[0.0, 0, -1]])
    n = np.array([[1.0, 0, 0]])
    f = gouge_frame(d, n, math.radians(25))[0]
    assert np.allclose(f.T @ f, np.eye(3)) and math.isclose(np.linalg.det(f), 1.0)
    # the blade points into the wood (against n) and along the cut
    assert f[:, 2] @ n[0] < 0 and f[:, 2] @ d[0] > 0


def test_cell_profile_validates_machine_match():
    tp = block_strokes(n_strokes=1, seed=1)
    with pytest.raises(UserError, match="cnc3"):
        solve_program(tp, "cnc-router-3axis", progress=False)
    assert isinstance(load_cell(CELL), CellProfile)
    assert Pass  # exported type used by synthetic jobs


def test_angled_spindle_searches_the_spin():
    tool = load_tool("flat-10mm")
    bent = tool.model_copy(update={"flange_from_tcp": tool.flange_from_tcp.model_copy(
        update={"rpy_deg": (0.0, 30.0, 0.0), "xyz_mm": (80.0, 0.0, 300.0)})})
    fr = make_freedom(bent, spin_step_deg=5, turntable_window_deg=30, turntable_step_deg=5,
                      tilt_deg=4, has_turntable=True)
    assert len(np.unique(fr.spin)) == 72 and np.unique(fr.tilt).tolist() == [0.0]
    assert len(np.unique(fr.table)) == 13  # a round cutter may also turn the table


def test_turntable_search_escapes_a_limited_turntable():
    """The CAM asks for table angles beyond the axis limits: the solver turns the table
    back into range (the toolpath is in the workpiece frame) and every move stays valid."""
    cell = load_cell(CELL)
    limited = cell.model_copy(update={"turntable": cell.turntable.model_copy(
        update={"min_deg": -150.0, "max_deg": 150.0})})
    tp = block_strokes(n_strokes=8, seed=4, faces=("side",))
    assert np.degrees(np.abs(tp.passes[0].turntable_rad)).max() > 170  # beyond the limits
    prog = solve_program(tp, limited, progress=False)
    assert prog.valid_ratio == 1.0, prog.failures[:2]
    assert np.degrees(np.abs(prog.turntable_rad)).max() <= 150.0 + 1e-9
    # the default cell has no turntable limit: there the CAM's angles are kept
    free = solve_program(tp, CELL, progress=False)
    assert free.valid_ratio == 1.0
    assert np.degrees(np.abs(free.turntable_rad)).max() > 170


def test_reconfiguration_only_in_the_air_after_a_clear_retract():
    """Strokes all round the block need branch changes and table turns: they happen only at
    rapids, each after the tool was pulled back along its axis (or out / up), never while
    cutting; every move of a segment keeps its configuration."""
    tp = block_strokes(n_strokes=16, seed=21, faces=("side", "top"))
    prog = solve_program(tp, CELL, progress=False)
    assert prog.valid_ratio == 1.0
    kind, cfg, th = prog.move_kind, prog.config, prog.turntable_rad
    change = np.nonzero((cfg[1:] != cfg[:-1]) | (np.abs(np.diff(th)) > math.radians(1)))[0] + 1
    assert len(change) > 0
    assert np.all(kind[change] == MoveKind.RAPID)
    # before each change: a row in the air (the retract) at least 30 mm from the last
    # point of the cut side, in the same configuration
    rc = RobotCell.load(CELL)
    wp = inv_rigid(rc.base_from_workpiece(th)) @ prog.base_from_tcp
    for i in change:
        assert kind[i - 1] == MoveKind.RAPID and cfg[i - 1] == cfg[i - 2]
        assert np.linalg.norm(wp[i - 1, :3, 3] - wp[i - 2, :3, 3]) >= 30.0 - 1e-6
        # the approach after the change is as far from the next target
        assert kind[i] == MoveKind.RAPID and cfg[i] == cfg[i + 1]
        assert np.linalg.norm(wp[i, :3, 3] - wp[i + 1, :3, 3]) >= 30.0 - 1e-6
    # source moves stay contiguous: the inserted rows belong to the rapid they precede
    moves = prog.source_index[:, 1]
    assert np.all(np.diff(moves) >= 0)
    first = np.r_[True, moves[1:] != moves[:-1]]
    assert first.sum() == tp.n_moves


def test_segments_are_solved_in_the_cam_state_first_and_the_search_reports_how():
    tp = block_strokes(n_strokes=12, seed=5)
    stats: dict = {}
    prog = solve_program(tp, CELL, progress=False, stats=stats)
    assert prog.valid_ratio == 1.0
    assert stats["segments"] == sum(stats["solved_by"].values())
    assert stats["solved_by"]["cam state"] > 0
