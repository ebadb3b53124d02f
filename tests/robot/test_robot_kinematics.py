"""Kinematics: profiles against published references, IK branches, FK(IK), fault injection."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sculptor.errors import UserError
from sculptor.profiles import load_robot
from sculptor.robot import check_profile_fk, check_robot, fk, fk_frames, ik, ik_numeric
from sculptor.robot.kinematics import nearest_turn
from sculptor.robot.references import REFERENCES, urdf_fk

ARMS = ["kuka-kr6-r900", "kuka-kr6-r900-2", "abb-irb1600-6-1.2", "abb-irb2400",
        "fanuc-m20ib-25", "ur10e"]


def random_joints(robot, n, seed=0):
    lim = robot.limits_rad
    return np.random.default_rng(seed).uniform(lim[:, 0], lim[:, 1], (n, 6))


@pytest.mark.parametrize("name", ARMS)
def test_profile_matches_published_kinematics(name):
    robot = load_robot(name)
    check_robot(robot)
    res = check_profile_fk(robot, n=300)
    assert res["checked"], f"no published reference for {name}"
    assert res["max_pos_mm"] < 1e-6
    assert res["max_rot_deg"] < 1e-4
    assert res["pose_err_mm"] < 1e-6  # documented poses (home / calibration position)


def test_kuka_home_is_the_datasheet_pose():
    robot = load_robot("kuka-kr6-r900")
    t = fk(robot, np.radians([[0, -90, 90, 0, 0, 0]]))[0]
    assert np.allclose(t[:3, 3], [525.0, 0.0, 890.0], atol=1e-9)
    assert np.allclose(t[:3, 2], [1, 0, 0], atol=1e-12)  # tool0 +Z points forward


def test_wrong_joint_sign_is_caught_by_the_fk_check():
    robot = load_robot("kuka-kr6-r900")
    joints = [j.model_copy(update={"sign": 1}) if j.name == "A4" else j for j in robot.joints]
    bad = robot.model_copy(update={"joints": joints})
    assert check_profile_fk(bad)["max_pos_mm"] > 1.0


def test_r700_numbers_in_an_r900_file_are_caught():
    robot = load_robot("kuka-kr6-r900")
    r700 = robot.model_copy(update={"opw": robot.opw.model_copy(
        update={"c2_mm": 315.0, "c3_mm": 365.0})})
    assert check_profile_fk(r700)["max_pos_mm"] > 50.0


@pytest.mark.parametrize("name", ARMS)
def test_ik_recovers_joints_and_fk_of_ik_is_exact(name):
    robot = load_robot(name)
    q = random_joints(robot, 3000, seed=1)
    t = fk(robot, q)
    sol, valid = ik(robot, t)
    assert sol.shape == (3000, 8, 6) and valid.shape == (3000, 8)
    finite = np.all(np.isfinite(sol), -1)
    back = fk(robot, np.where(finite[..., None], sol, 0).reshape(-1, 6)).reshape(-1, 8, 4, 4)
    pos_err = np.linalg.norm(back[..., :3, 3] - t[:, None, :3, 3], axis=-1)[finite]
    rot_err = np.abs(back[..., :3, :3] - t[:, None, :3, :3]).max((-1, -2))[finite]
    assert pos_err.max() < 1e-6  # mm, i.e. < 1e-9 m
    assert rot_err.max() < 1e-9
    # one branch is the original joints (modulo full turns) and is valid
    d = np.abs(np.remainder(sol - q[:, None] + math.pi, 2 * math.pi) - math.pi).max(-1)
    hit = np.nanargmin(np.where(np.isfinite(d), d, np.inf), 1)
    assert np.nanmin(d, 1).max() < 1e-6
    assert valid[np.arange(len(q)), hit].all()
    # all branches returned valid are inside the limits
    lim = robot.limits_rad
    v = sol[valid]
    assert np.all((v >= lim[:, 0] - 1e-12) & (v <= lim[:, 1] + 1e-12))


def test_ik_branches_are_distinct_and_turns_respect_limits():
    robot = load_robot("kuka-kr6-r900")
    q = np.radians([[10, -80, 100, 30, 40, 200]])  # A6 = 200 deg, also reachable as -160
    sol, valid = ik(robot, fk(robot, q))
    ok = sol[0][valid[0]]
    assert len(ok) >= 4
    assert len({tuple(np.round(s, 6)) for s in ok}) == len(ok)
    # ik() gives the turn nearest zero; nearest_turn() moves it next to a reference
    hit = ok[np.argmin(np.abs(np.remainder(ok - q[0] + np.pi, 2 * np.pi) - np.pi).max(1))]
    assert math.isclose(math.degrees(hit[5]), -160.0, abs_tol=1e-7)
    turned, inside = nearest_turn(robot, hit, q[0])
    assert inside and np.allclose(turned, q[0], atol=1e-9)
    # a turn that would leave the limits is not taken: next to 349, A6 = 10 would be 370
    turned, inside = nearest_turn(robot, np.radians([0, -90, 90, 0, 30, 10]),
                                  np.radians([0, -90, 90, 0, 30, 349]))
    assert inside and math.isclose(math.degrees(turned[5]), 10.0)


def test_out_of_reach_pose_has_no_valid_branch():
    robot = load_robot("kuka-kr6-r900")
    t = np.eye(4)
    t[:3, 3] = [2000.0, 0, 400]
    sol, valid = ik(robot, t[None])
    assert not valid.any() and np.isnan(sol).all()


def test_numeric_ik_tracks_ur_from_a_seed():
    robot = load_robot("ur10e")
    q = random_joints(robot, 200, seed=4)
    q[:, 4] = np.where(np.abs(np.sin(q[:, 4])) < 0.2, 1.0, q[:, 4])  # away from the wrist
    target = fk(robot, q)
    seed = q + np.random.default_rng(5).normal(0, 0.05, q.shape)
    got, conv = ik_numeric(robot, target, seed)
    assert conv.mean() > 0.97
    err = np.linalg.norm(fk(robot, got)[:, :3, 3] - target[:, :3, 3], axis=1)[conv]
    assert err.max() < 1e-6


@pytest.mark.parametrize("name", ["kuka-kr6-r900", "ur10e"])
def test_link_frames_chain_to_the_flange(name):
    robot = load_robot(name)
    q = random_joints(robot, 50, seed=2)
    frames = fk_frames(robot, q)
    assert frames.shape == (50, 7, 4, 4)
    assert np.allclose(frames[:, 6], fk(robot, q), atol=1e-9)
    assert np.allclose(frames[:, 0], np.eye(4))
    # link lengths are constant whatever the joints
    seg = np.linalg.norm(np.diff(frames[:, :, :3, 3], axis=1), axis=-1)
    assert np.allclose(seg, seg[0], atol=1e-9)


def test_urdf_reference_is_independent_of_the_profile():
    # the reference chain alone gives the KR6 R900 sixx reach: 455 + 420 + 80 + 25 + ...
    t = urdf_fk(REFERENCES["kuka-kr6-r900"], np.array([[0, 0, 0, 0, 0, 0]]))[0]
    assert np.allclose(t[:3, 3], [25 + 455 + 420 + 80, 0, 400 + 35], atol=1e-9)


@pytest.mark.parametrize("field,value,msg", [
    ("c2_mm", -455.0, "opw.c2_mm"),
    ("c3_mm", 90000.0, "opw.c3_mm"),
    ("a1_mm", 5000.0, "opw.a1_mm"),
])
def test_out_of_range_opw_fields_are_user_errors(field, value, msg):
    robot = load_robot("kuka-kr6-r900")
    bad = robot.model_copy(update={"opw": robot.opw.model_copy(update={field: value})})
    with pytest.raises(UserError, match=msg):
        check_robot(bad)


def test_reach_that_does_not_match_the_arm_is_a_user_error():
    robot = load_robot("kuka-kr6-r900").model_copy(update={"reach_mm": 3000.0})
    with pytest.raises(UserError, match="reach_mm"):
        check_robot(robot)


def test_profile_file_with_missing_or_bad_fields(tmp_path):
    from sculptor.profiles import load_robot as load

    src = (tmp_path / "r.toml")
    text = open(load_robot.__globals__["_find"]("robots", "kuka-kr6-r900")).read()
    src.write_text(text.replace("c2_mm = 455.0\n", ""))
    with pytest.raises(UserError, match="c2_mm"):
        load(str(src))
    src.write_text(text.replace("max_deg = 170.0", "max_deg = -175.0", 1))
    with pytest.raises(UserError, match="min_deg must be below max_deg"):
        load(str(src))
    src.write_text(text.replace("max_speed_deg_s = 360.0", "max_speed_deg_s = 0.0", 1))
    with pytest.raises(UserError, match="max_speed_deg_s"):
        load(str(src))


def test_nan_pose_gives_no_solution_and_no_warning():
    import warnings

    robot = load_robot("kuka-kr6-r900")
    poses = fk(robot, np.radians([[0, -90, 90, 0, 30, 0]] * 3))
    poses[1, 0, 3] = np.nan  # a NaN position
    poses[2, :3, :3] = np.nan  # a NaN rotation
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        sol, valid = ik(robot, poses)
    assert valid[0].any() and not valid[1:].any()
    assert np.isnan(sol[1:]).all()
