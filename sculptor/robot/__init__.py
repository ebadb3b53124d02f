"""Robot stage: kinematics, the cell, the redundancy solver (toolpath -> joint program).

Public API (see docs/robot.md)::

    fk(robot, joints_rad (n, 6)) -> (n, 4, 4) base_from_flange (mm)
    fk_frames(robot, joints_rad) -> (n, 7, 4, 4) base_from_link
    ik(robot, base_from_flange (n, 4, 4)) -> (solutions (n, 8, 6) rad, valid (n, 8))
    solve_program(toolpath, cell, tool, *, a5_margin_deg=10, chord_tol_mm=0.01,
                  progress=True) -> RobotProgram
    Feasibility(robot, a5_margin_rad, table_z_mm=None).acceptable(joints, valid)
                  -> the solver's rules for one IK solution (planners use them too)
"""

from sculptor.robot.cell import RobotCell, check_robot
from sculptor.robot.kinematics import fk, fk_frames, ik, ik_numeric
from sculptor.robot.references import check_profile_fk
from sculptor.robot.solver import Feasibility, solve_program

__all__ = ["RobotCell", "check_robot", "fk", "fk_frames", "ik", "ik_numeric",
           "check_profile_fk", "solve_program", "Feasibility"]
