"""The solver's public feasibility rules (``Feasibility``), as the CAM's reach check uses
them: joint limits, wrist / shoulder / elbow singularity margins, on the KUKA KR 6 R900."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sculptor.robot import fk, ik
from sculptor.robot.cell import RobotCell
from sculptor.robot.kinematics import to_controller
from sculptor.robot.solver import REASONS, Feasibility

Q0 = np.array([0.2, -0.4, 0.6, 0.3, 0.9, 0.1])  # kinematic joints, well inside everything


@pytest.fixture(scope="module")
def robot():
    return RobotCell.load("kuka-kr6-r900-turntable").robot


def _code(rules, robot, qk, valid=True):
    return int(rules.classify(to_controller(robot, qk[None]), np.array([valid]))[0])


def test_each_rule_refuses_its_own_singularity(robot):
    rules = Feasibility(robot, math.radians(10.0))
    assert _code(rules, robot, Q0) == 0
    wrist = Q0.copy()
    wrist[4] = math.radians(6.0)
    assert REASONS[_code(rules, robot, wrist)] == "wrist singularity"
    assert _code(Feasibility(robot, math.radians(5.0)), robot, wrist) == 0
    elbow = Q0.copy()
    elbow[2] = rules.elbow_straight + math.radians(1.0)
    assert REASONS[_code(rules, robot, elbow)] == "elbow singularity"
    p = robot.opw
    k, psi3 = math.hypot(p.a2_mm, p.c3_mm), math.atan2(p.a2_mm, p.c3_mm)
    shoulder = Q0.copy()  # wrist centre on the axis-1 line
    shoulder[1], shoulder[2] = 0.0, math.asin(-p.a1_mm / k) - psi3
    assert REASONS[_code(rules, robot, shoulder)] == "shoulder singularity"
    assert REASONS[_code(rules, robot, Q0, valid=False)] == "joint limit"
    q = to_controller(robot, Q0[None])
    q[0, 2] = np.nan
    assert REASONS[int(rules.classify(q, np.array([True]))[0])] == "out of reach"


def test_acceptable_is_code_zero_on_every_ik_branch(robot):
    rules = Feasibility(robot, math.radians(10.0))
    rng = np.random.default_rng(0)
    lim = robot.limits_rad
    q = rng.uniform(lim[:, 0] * 0.8, lim[:, 1] * 0.8, size=(400, 6))
    sol, valid = ik(robot, fk(robot, q))  # (400, 8, 6), (400, 8)
    ok = rules.acceptable(sol, valid)
    assert ok.shape == (400, 8) and ok.dtype == bool
    np.testing.assert_array_equal(ok, rules.classify(sol, valid) == 0)
    assert 0.2 < ok.mean() < 0.95  # real poses: some solutions refused, most not
    # a solution the rules accept for the joints we started from is among the branches
    own = rules.acceptable(q, np.ones(len(q), bool))
    d = sol - q[:, None]
    near = np.all(np.abs(np.angle(np.exp(1j * d))) < 1e-6, axis=-1)  # same angles
    assert (ok & near).any(axis=1)[own].all()


def test_arm_low_over_the_table_is_refused_as_the_simulator_sees_it(robot):
    """The upper arm pointing down towards the floor plate: the table rule refuses the
    pose exactly when the simulator's link capsules (fk_frames origins, LINK_RADII_MM)
    reach below the table plus the margin."""
    from sculptor.robot.kinematics import fk_frames
    from sculptor.robot.solver import LINK_RADII_MM, TABLE_MARGIN_MM

    rules = Feasibility(robot, math.radians(10.0), table_z_mm=0.0)
    assert _code(rules, robot, Q0) == 0
    seen = set()
    for q2 in np.radians(np.arange(60.0, 150.0, 5.0)):
        qk = Q0.copy()
        qk[1] = q2
        o = fk_frames(robot, to_controller(robot, qk[None]))[0, :, :3, 3]
        low = any(min(o[i - 1, 2], o[i, 2]) - LINK_RADII_MM[i - 1] < TABLE_MARGIN_MM
                  for i in (2, 3, 4))
        code = _code(rules, robot, qk)
        assert (REASONS.get(code) == "arm meets the table") == low, (math.degrees(q2), o[:5, 2])
        seen.add(low)
        # without a table the rule is off
        assert _code(Feasibility(robot, math.radians(10.0)), robot, qk) != 11
    assert seen == {True, False}
