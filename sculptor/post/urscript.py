"""URScript: one ``def`` program of ``movel`` (cutting) and ``movej`` (first point, rapids).

Poses ``p[x, y, z, rx, ry, rz]`` are the TCP in the robot base frame in metres with a
rotation vector; ``set_tcp`` holds the tool. A UR has no external axis: when the turntable
must turn (between strokes), the program stops on a blocking popup that names the angle;
a job that turns the table while cutting cannot be written for a UR (error).
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from sculptor.artifacts.toolpath import MoveKind
from sculptor.errors import UserError
from sculptor.post.common import PostContext, fnum, pose_matrix

M_DEC, R_DEC, J_DEC = 7, 8, 8


def _pose(m: np.ndarray) -> str:
    rv = Rotation.from_matrix(m[:3, :3]).as_rotvec()
    x, y, z = m[:3, 3] / 1000.0
    return (f"p[{fnum(x, M_DEC)},{fnum(y, M_DEC)},{fnum(z, M_DEC)},"
            f"{fnum(rv[0], R_DEC)},{fnum(rv[1], R_DEC)},{fnum(rv[2], R_DEC)}]")


def render(ctx: PostContext) -> dict[str, str]:
    p = ctx.program
    kinds, e1 = ctx.kinds, ctx.e1_deg
    moving = np.abs(np.diff(e1)) > 1e-6
    cutting = kinds[1:] != MoveKind.RAPID
    if np.any(moving & cutting):
        i = int(np.nonzero(moving & cutting)[0][0]) + 1
        src = p.source_index[i]
        raise UserError(f"urscript: the job turns the turntable while cutting (pass {src[0]}, "
                        f"move {src[1]}); a UR cannot drive it. Use a cell without a "
                        "turntable or a controller with an external axis")
    name = ctx.name
    lines = [f"def {name}():"] + [f"  # {h}" for h in ctx.header_lines("urscript")]
    last_tool, last_e1 = None, None
    for i in range(p.n):
        tool = ctx.tool_for(i)
        if tool.name != last_tool:
            if last_tool is not None:
                lines.append(f'  popup("Change tool to {tool.name}, then continue", '
                             '"sculptor", blocking=True)')
            lines.append(f"  set_tcp({_pose(tool.flange_from_tcp.matrix())})  # {tool.name}")
            last_tool = tool.name
        if ctx.cell.turntable is not None and (last_e1 is None or abs(e1[i] - last_e1) > 1e-6):
            lines.append(f'  popup("Turn the turntable to {fnum(e1[i], 4)} deg, then continue",'
                         ' "sculptor", blocking=True)  # E1 ' + fnum(e1[i], 6))
            last_e1 = e1[i]
        if i == 0 or kinds[i] == MoveKind.RAPID:
            j = ",".join(fnum(v, J_DEC) for v in p.joints_rad[i])
            lines.append(f"  movej([{j}], a=1.0, v=0.5)")
        else:
            v = float(p.feed_mm_s[i]) / 1000.0
            lines.append(f"  movel({_pose(p.base_from_tcp[i])}, a=0.5, v={fnum(v, 5)}, "
                         "r=0.0002)")
    lines += ["end", f"{name}()"]
    return {f"{name}.script": "\n".join(lines) + "\n"}


_MOVEJ = re.compile(r"^\s*movej\(\[([^\]]*)\]")
_MOVEL = re.compile(r"^\s*movel\(p\[([^\]]*)\]")
_TCP = re.compile(r"^\s*set_tcp\(p\[([^\]]*)\]")
_E1 = re.compile(r"# E1 ([-0-9.]+)")


def _pose_from(vals: list[float]) -> np.ndarray:
    r = Rotation.from_rotvec(vals[3:]).as_matrix()
    return pose_matrix(np.array([vals[:3]]) * 1000.0, r[None])[0]


def parse(paths: list[Path]) -> dict:
    moves, tool, e1 = [], None, 0.0
    for line in paths[0].read_text("ascii").splitlines():
        if m := _TCP.match(line):
            tool = _pose_from([float(x) for x in m.group(1).split(",")])
        elif m := _E1.search(line):
            e1 = float(m.group(1))
        elif m := _MOVEJ.match(line):
            moves.append({"joints_rad": np.array([float(x) for x in m.group(1).split(",")]),
                          "tool": tool, "e1_deg": e1})
        elif m := _MOVEL.match(line):
            moves.append({"base_from_tcp": _pose_from([float(x) for x in m.group(1).split(",")]),
                          "tool": tool, "e1_deg": e1})
    return {"moves": moves}


def joints_from_parsed(robot, parsed: dict) -> np.ndarray:
    """movel targets -> the IK solution nearest the previous joints (what a UR's linear
    move does: it never changes configuration). (n, 6) rad."""
    from sculptor.robot.kinematics import ik, nearest_turn

    out, prev = [], None
    for mv in parsed["moves"]:
        if "joints_rad" in mv:
            prev = mv["joints_rad"]
            out.append(prev)
            continue
        flange = mv["base_from_tcp"] @ np.linalg.inv(mv["tool"])
        sol, _ = ik(robot, flange[None])
        cands = []
        for b in range(8):
            if np.all(np.isfinite(sol[0, b])):
                q, _ok = nearest_turn(robot, sol[0, b], prev)
                cands.append(q)
        q = min(cands, key=lambda c: np.abs(c - prev).max())
        out.append(q)
        prev = q
    return np.array(out)
