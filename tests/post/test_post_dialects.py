"""Every dialect: write -> parse -> compare with the program (round trip) and syntax rules."""

from __future__ import annotations

import re

import numpy as np
import pytest

from sculptor.artifacts import MoveKind, Pass, Provenance, StockSpec, Toolpath
from sculptor.errors import UserError
from sculptor.post import gcode, krl, parse_program, rapid, urscript, write_program
from sculptor.profiles import load_controller, load_robot
from sculptor.robot import fk, solve_program
from sculptor.robot.synthetic import block_strokes

TOL_DEG, TOL_MM = 1e-3, 1e-3


@pytest.fixture(scope="module")
def kuka():
    tp = block_strokes(n_strokes=6, seed=7)
    return tp, solve_program(tp, "kuka-kr6-r900-turntable", progress=False)


@pytest.fixture(scope="module")
def abb():
    tp = block_strokes(n_strokes=4, seed=8)
    return tp, solve_program(tp, "abb-irb2400-turntable", progress=False)


@pytest.fixture(scope="module")
def ur():
    tp = block_strokes(n_strokes=4, seed=9, faces=("side",))
    ps = tp.passes[0]
    # the bench cell has no turntable: keep only the strokes on the robot's side (-x face)
    keep = ps.position_mm[:, 0] < -100
    tp.passes[0] = Pass(name=ps.name, operation="finish", strategy=ps.strategy,
                        tool_id=ps.tool_id, position_mm=ps.position_mm[keep],
                        tool_frame=ps.tool_frame[keep], feed_mm_s=ps.feed_mm_s[keep],
                        kind=ps.kind[keep], turntable_rad=np.zeros(keep.sum()))
    return tp, solve_program(tp, "ur10e-bench", progress=False)


def _assert_joints(q_parsed, prog):
    assert q_parsed.shape == prog.joints_rad.shape
    assert not np.isnan(q_parsed).any()
    assert np.degrees(np.abs(q_parsed - prog.joints_rad)).max() < TOL_DEG


def test_krl_round_trip_and_syntax(kuka, tmp_path):
    tp, prog = kuka
    assert prog.valid_ratio == 1.0
    paths = write_program(prog, tp, "krl", tmp_path / "carve.src")
    assert sorted(p.name for p in paths) == ["carve.dat", "carve.src"]
    parsed = parse_program(paths, "krl")
    assert np.abs(parsed["base_from_tcp"] - prog.base_from_tcp).max() < TOL_MM
    _assert_joints(krl.joints_from_parsed(load_robot(prog.robot), parsed), prog)
    assert np.abs(parsed["e1_deg"] - np.degrees(prog.turntable_rad)).max() < TOL_DEG
    src = paths[1].read_text() if paths[1].suffix == ".src" else paths[0].read_text()
    assert src.startswith("&ACCESS RVP\n&REL 1\nDEF carve( )")
    assert src.rstrip().endswith("END")
    assert "sculptor 0.1.0" in src and "gouge-12mm" in src and "kuka-kr6-r900" in src
    assert "$VEL.CP = 0.025" in src and " C_DIS" in src and "$APO.CDIS" in src
    # numbers: plain decimals, no exponent, no negative zero
    for m in re.finditer(r"[XYZABCE]\d? (-?[0-9.eE+]+)", (tmp_path / "carve.dat").read_text()):
        assert re.fullmatch(r"-?\d+\.\d+", m.group(1)) and m.group(1) != "-0.0000"
    for name in re.findall(r"DECL E6POS (\w+)=", (tmp_path / "carve.dat").read_text()):
        assert len(name) <= 24


def test_krl_splits_long_programs(kuka, tmp_path):
    tp, prog = kuka
    ctrl = load_controller("kuka-krc4").model_copy(update={"max_program_lines": 300})
    paths = write_program(prog, tp, "krl", tmp_path / "big.src", ctrl)
    subs = [p for p in paths if re.fullmatch(r"big_\d{3}\.src", p.name)]
    assert len(subs) >= 3
    main = (tmp_path / "big.src").read_text()
    assert all(f"{p.stem}( )" in main for p in subs)
    for p in paths:
        assert p.read_text().count("\n") <= 300
    parsed = parse_program(paths, "krl")
    _assert_joints(krl.joints_from_parsed(load_robot(prog.robot), parsed), prog)


def test_rapid_round_trip_and_syntax(abb, tmp_path):
    tp, prog = abb
    assert prog.valid_ratio == 1.0
    paths = write_program(prog, tp, "rapid", tmp_path / "carve.mod")
    text = paths[0].read_text()
    assert text.startswith("MODULE carve") and text.rstrip().endswith("ENDMODULE")
    assert "PERS tooldata" in text and "ConfL \\On;" in text and "MoveL [[" in text
    parsed = parse_program(paths, "rapid")
    robot = load_robot(prog.robot)
    _assert_joints(rapid.joints_from_parsed(robot, parsed), prog)
    poses = [m["base_from_tcp"] for m in parsed["moves"] if "base_from_tcp" in m]
    assert np.abs(np.array(poses) - prog.base_from_tcp[1:]).max() < TOL_MM
    eax = np.array([m["eax_a"] for m in parsed["moves"]])
    assert np.abs(eax - np.degrees(prog.turntable_rad)).max() < TOL_DEG
    for q in re.findall(r"\],\[(-?[0-9.]+),(-?[0-9.]+),(-?[0-9.]+),(-?[0-9.]+)\],\[", text):
        assert abs(np.linalg.norm(np.array(q, float)) - 1.0) < 1e-8
    assert all(len(line) <= 250 for line in text.splitlines())


def test_urscript_round_trip(ur, tmp_path):
    tp, prog = ur
    assert prog.valid_ratio == 1.0, prog.failures[:3]
    paths = write_program(prog, tp, "urscript", tmp_path / "carve.script")
    text = paths[0].read_text()
    assert text.startswith("def carve():") and text.rstrip().endswith("carve()")
    assert "set_tcp(p[" in text and "movel(p[" in text and "movej([" in text
    parsed = parse_program(paths, "urscript")
    _assert_joints(urscript.joints_from_parsed(load_robot(prog.robot), parsed), prog)
    poses = np.array([m["base_from_tcp"] for m in parsed["moves"] if "base_from_tcp" in m])
    kinds = prog.move_kind
    lin = np.nonzero((kinds != MoveKind.RAPID) & (np.arange(prog.n) > 0))[0]
    assert np.abs(poses - prog.base_from_tcp[lin]).max() < TOL_MM


def test_urscript_refuses_a_turntable_that_moves_while_cutting(kuka, tmp_path):
    tp, prog = kuka
    moving = np.abs(np.diff(prog.turntable_rad)) > 1e-9
    cutting = prog.move_kind[1:] != MoveKind.RAPID
    if not np.any(moving & cutting):  # make it move
        prog = prog.model_copy()
        prog.turntable_rad = prog.turntable_rad + np.linspace(0, 0.1, prog.n)
    from sculptor.post import render_program

    with pytest.raises(UserError, match="turntable"):
        render_program(prog, tp, "urscript", tmp_path / "x.script",
                       load_controller("ur-cb"))
    assert not (tmp_path / "x.script").exists()


@pytest.mark.parametrize("controller", ["grbl-6axis", "marlin-6axis"])
def test_gcode_joint_round_trip_and_controller_rules(kuka, tmp_path, controller):
    tp, prog = kuka
    ctrl = load_controller(controller)
    paths = write_program(prog, tp, "gcode-joint", tmp_path / "carve.gcode", ctrl)
    text = paths[0].read_text()
    for line in text.splitlines():
        assert len(line) <= ctrl.max_line_chars
        assert set(line) <= set(ctrl.allowed_chars)
    assert ("G93" in text) == (controller == "grbl-6axis")
    parsed = parse_program(paths, "gcode-joint")
    axes = gcode.joint_axes(parsed)
    assert len(axes) == prog.n
    assert np.abs(axes[:, :6] - np.degrees(prog.joints_rad)).max() < TOL_DEG
    assert np.abs(axes[:, 6] - np.degrees(prog.turntable_rad)).max() < TOL_DEG
    robot = load_robot(prog.robot)
    # what the controller will move through: FK of the parsed joints stays on the path
    pos = fk(robot, np.radians(axes[:, :6]))[:, :3, 3]
    flange = prog.base_from_tcp @ np.linalg.inv(load_tool_matrix(prog.tool))
    assert np.abs(pos - flange[:, :3, 3]).max() < 0.01
    if controller == "grbl-6axis":  # inverse time: F = 60 / seconds
        f = parsed["feed"][1:]
        dur = 60.0 / f
        assert np.all(dur > 0) and np.all(np.isfinite(dur))


def load_tool_matrix(name):
    from sculptor.profiles import load_tool

    return load_tool(name).flange_from_tcp.matrix()


def _router_job():
    n = 200
    t = np.linspace(0, 1, n)
    pos = np.stack([80 * np.cos(6 * t), 60 * np.sin(6 * t), 100 - 20 * t], 1)
    pos[0, 2] = 130.0
    kinds = np.full(n, MoveKind.CUT, np.int8)
    kinds[0] = MoveKind.RAPID
    kinds[1] = MoveKind.PLUNGE
    frames = np.repeat(np.diag([1.0, -1.0, -1.0])[None], n, 0)
    ps = Pass(name="rough", operation="rough", strategy="raster", tool_id="ball-6mm",
              position_mm=pos, tool_frame=frames, feed_mm_s=np.full(n, 40.0), kind=kinds,
              turntable_rad=np.zeros(n))
    return Toolpath(provenance=Provenance.make("test"), design="d", design_sha256="0" * 64,
                    cell="cnc-router-3axis", machine="cnc3",
                    stock=StockSpec(kind="box", size_mm=[220, 220, 120]), passes=[ps])


def test_gcode_3axis_round_trip(tmp_path):
    tp = _router_job()
    prog = solve_program(tp, "cnc-router-3axis", progress=False)
    assert prog.machine == "cnc3" and prog.valid_ratio == 1.0
    paths = write_program(prog, tp, "gcode-3axis", tmp_path / "rough.nc")
    text = paths[0].read_text()
    assert "M3 S24000" in text and text.rstrip().endswith("M2")
    ctrl = load_controller("grbl-router")
    assert all(len(line) <= ctrl.max_line_chars and set(line) <= set(ctrl.allowed_chars)
               for line in text.splitlines())
    parsed = parse_program(paths, "gcode-3axis")
    xyz = np.array([[r["X"], r["Y"], r["Z"]] for r in parsed["rows"]])
    assert np.abs(xyz - prog.base_from_tcp[:, :3, 3]).max() < TOL_MM
    assert parsed["motion"][0] == 0 and set(parsed["motion"][1:]) == {1}


def test_router_rejects_tilted_tools_and_travel(tmp_path):
    tp = _router_job()
    ps = tp.passes[0]
    frames = ps.tool_frame.copy()
    frames[50] = np.eye(3)  # tool pointing up
    ps.tool_frame = frames
    pos = ps.position_mm.copy()
    pos[120, 0] = 900.0  # beyond the 600 mm travel
    ps.position_mm = pos
    prog = solve_program(tp, "cnc-router-3axis", progress=False)
    reasons = {f["reason"] for f in prog.failures}
    assert any("vertical" in r for r in reasons) and "outside the machine travel" in reasons
    with pytest.raises(UserError, match="unreachable"):
        write_program(prog, tp, "gcode-3axis", tmp_path / "x.nc")
    assert not (tmp_path / "x.nc").exists()


def test_dialect_machine_mismatch_and_unknown(kuka, tmp_path):
    tp, prog = kuka
    with pytest.raises(UserError, match="cnc3"):
        write_program(prog, tp, "gcode-3axis", tmp_path / "x.nc")
    with pytest.raises(UserError, match="unknown dialect"):
        write_program(prog, tp, "fanuc-tp", tmp_path / "x.ls")
    with pytest.raises(UserError, match="speaks"):
        write_program(prog, tp, "krl", tmp_path / "x.src", load_controller("abb-irc5"))
    assert list(tmp_path.iterdir()) == []


def test_line_too_long_for_the_controller_is_refused(kuka, tmp_path):
    tp, prog = kuka
    tiny = load_controller("grbl-6axis").model_copy(update={"max_line_chars": 30})
    with pytest.raises(UserError, match="characters"):
        write_program(prog, tp, "gcode-joint", tmp_path / "x.gcode", tiny)
    assert list(tmp_path.iterdir()) == []


def test_krl_status_and_turn_bits_by_hand():
    """S: bit 0 wrist centre behind axis 1, bit 1 A3 >= phi (elbow up), bit 2 A5 <= 0;
    T: bit i when axis i+1 < 0 (KUKA's definitions), on poses worked out by hand."""
    robot = load_robot("kuka-kr6-r900")
    q = np.radians([[0, -90, 90, 0, 30, 0],  # home with the wrist bent: S B010, T 2 (A2)
                    [-30, -90, 90, 100, -30, -10],  # A5 < 0: S B110; A1 A2 A5 A6 < 0
                    [0, -90, -60, 0, 30, 0],  # forearm folded back over the base
                    [0, -160, 120, 0, 30, 0]])  # upper arm leaning back, elbow up
    s, t = krl.status_turn(robot, q)
    assert s.tolist() == [2, 6, 1, 3]
    assert t.tolist() == [2, 1 + 2 + 16 + 32, 2 + 4, 2]
    # what the bits claim about the wrist centre, checked with FK
    from sculptor.robot import fk

    flange = fk(robot, q)
    wrist = flange[:, :3, 3] - robot.opw.c4_mm * flange[:, :3, 2]
    a1 = q[:, 0] * -1  # KUKA A1 turns against the right-hand rule about base z
    ahead = wrist[:, 0] * np.cos(a1) + wrist[:, 1] * np.sin(a1)
    assert ((s & 1) == 1).tolist() == (ahead < 0).tolist()


def test_rapid_confdata_by_hand():
    """cf1/cf4/cf6: quadrant (floor(angle / 90 deg)) of axes 1, 4, 6; cfx: 4 x wrist behind
    axis 1 + 2 x wrist behind the lower arm + 1 x (axis 5 < 0)."""
    robot = load_robot("abb-irb2400")
    q = np.radians([[0, 0, 0, 0, 30, 0], [-30, 0, 0, 100, -30, 200],
                    [100, 0, 0, -100, 30, -200]])
    assert rapid.confdata(robot, q).tolist() == [[0, 0, 0, 0], [-1, 1, 2, 1], [1, -2, -3, 0]]


def test_krl_modules_count_velocity_lines(kuka, tmp_path):
    """Every feed change adds a $VEL.CP line: modules stay under the controller's limit."""
    tp, prog = kuka
    prog = prog.model_copy()
    prog.feed_mm_s = np.where(np.arange(prog.n) % 2 == 0, 20.0, 30.0)
    ctrl = load_controller("kuka-krc4").model_copy(update={"max_program_lines": 300})
    paths = write_program(prog, tp, "krl", tmp_path / "vel.src", ctrl)
    assert all(p.read_text().count("\n") <= 300 for p in paths)
    src = "".join(p.read_text() for p in paths if p.suffix == ".src")
    assert src.count("$VEL.CP = 0.02\n") > 100
    _assert_joints(krl.joints_from_parsed(load_robot(prog.robot), parse_program(paths, "krl")),
                   prog)


def test_gcode_fast_writer_matches_the_line_by_line_writer(kuka, tmp_path):
    """The vectorised 4-decimal writer and the line-by-line fallback (used when a line is
    too long) say the same thing where both apply."""
    tp, prog = kuka
    ctrl = load_controller("grbl-6axis")
    fast = write_program(prog, tp, "gcode-joint", tmp_path / "f.gcode", ctrl)[0].read_text()
    from unittest import mock

    with mock.patch.object(gcode, "_joint_lines_4dec", return_value=None):
        slow = write_program(prog, tp, "gcode-joint", tmp_path / "s.gcode", ctrl)[0].read_text()
    assert fast == slow
