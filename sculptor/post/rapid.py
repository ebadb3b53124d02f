"""ABB RAPID: one ``.mod`` module per chunk with a ``main``/``pN`` procedure.

``MoveL`` robtargets carry the TCP pose in the robot base frame (mm, quaternion
[w, x, y, z]), confdata ``[cf1, cf4, cf6, cfx]`` (quadrants of axes 1, 4, 6 and the arm
configuration 0..7) and the turntable as ``eax_a`` (deg). Rapids are ``MoveJ``; the first
point of each procedure is a ``MoveAbsJ`` with the exact joint values. ``ConfL \\On``
makes the controller stop rather than change configuration. Speeds are ``speeddata``
declared once per feed; zones ``z0`` while cutting (0.3 mm corner), ``fine`` at the end.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
from scipy.spatial.transform import Rotation

from sculptor.artifacts.toolpath import MoveKind
from sculptor.post.common import PostContext, arm_config_bits, fnum, pose_matrix

POS_DEC, Q_DEC, J_DEC = 4, 9, 5


def confdata(robot, joints_rad: np.ndarray) -> np.ndarray:
    """(n, 6) -> (n, 4) int [cf1, cf4, cf6, cfx]."""
    jd = np.degrees(joints_rad)
    cf = np.floor(jd[:, [0, 3, 5]] / 90.0).astype(int)
    bits = arm_config_bits(robot, joints_rad)
    cfx = bits[:, 0] * 4 + bits[:, 1] * 2 + (jd[:, 4] < 0) * 1
    return np.concatenate([cf, cfx[:, None].astype(int)], 1)


def _quat_wxyz(r: np.ndarray) -> np.ndarray:
    q = Rotation.from_matrix(r).as_quat()  # x, y, z, w
    q = np.concatenate([q[:, 3:], q[:, :3]], 1)
    return q * np.where(q[:, :1] < 0, -1.0, 1.0)


def _pose_str(xyz, q) -> str:
    return (f"[[{fnum(xyz[0], POS_DEC)},{fnum(xyz[1], POS_DEC)},{fnum(xyz[2], POS_DEC)}],"
            f"[{fnum(q[0], Q_DEC)},{fnum(q[1], Q_DEC)},{fnum(q[2], Q_DEC)},{fnum(q[3], Q_DEC)}]]")


def render(ctx: PostContext) -> dict[str, str]:
    p, robot = ctx.program, ctx.robot
    xyz = p.base_from_tcp[:, :3, 3]
    quat = _quat_wxyz(p.base_from_tcp[:, :3, :3])
    cfg = confdata(robot, p.joints_rad)
    jd = ctx.joints_deg
    e1 = ctx.e1_deg
    kinds = ctx.kinds
    ext = "9E+09,9E+09,9E+09,9E+09,9E+09"
    feeds = sorted({round(float(f), 3) for f in p.feed_mm_s})
    speed_name = {f: f"vSc{i}" for i, f in enumerate(feeds)}
    tools = []
    for i in range(p.n):
        t = ctx.tool_for(i)
        if t.name not in [x.name for x in tools]:
            tools.append(t)
    tool_var = {t.name: f"tSc{i}" for i, t in enumerate(tools)}
    max_pts = max(100, (ctx.controller.max_program_lines or 20000) - 60)
    chunks = [range(a, min(p.n, a + max_pts)) for a in range(0, p.n, max_pts)]
    files = {}
    for ci, rng in enumerate(chunks):
        mod = ctx.name if len(chunks) == 1 else f"{ctx.name[:24]}_{ci + 1:03d}"
        proc = "main" if len(chunks) == 1 else f"p{ci + 1:03d}"
        lines = [f"MODULE {mod}"] + [f"  ! {h}" for h in ctx.header_lines("rapid")]
        lines.append(f"  ! module {ci + 1} of {len(chunks)}: points {rng.start + 1}..{rng.stop}")
        for t in tools:
            m = t.flange_from_tcp.matrix()
            q = _quat_wxyz(m[None, :3, :3])[0]
            lines.append(f"  PERS tooldata {tool_var[t.name]} := [TRUE,{_pose_str(m[:3, 3], q)},"
                         f"[2,[0,0,60],[1,0,0,0],0,0,0]]; ! {t.name}")
        for f, nm in speed_name.items():
            lines.append(f"  CONST speeddata {nm} := [{fnum(f, 3)},500,5000,1000];")
        lines += [f"  PROC {proc}()", "    ConfJ \\On;", "    ConfL \\On;"]
        last_tool = None
        for i in rng:
            tv = tool_var[ctx.tool_for(i).name]
            if last_tool is not None and tv != last_tool:
                lines.append("    Stop; ! tool change")
            last_tool = tv
            eax = f"[{fnum(e1[i], J_DEC)},{ext}]"
            if i == rng.start:
                joints = ",".join(fnum(v, J_DEC) for v in jd[i])
                lines.append(f"    MoveAbsJ [[{joints}],{eax}],v100,fine,{tv};")
                continue
            c = cfg[i]
            target = (f"[{_pose_str(xyz[i], quat[i])[1:-1]},[{c[0]},{c[1]},{c[2]},{c[3]}],"
                      f"{eax}]")
            zone = "fine" if i == rng.stop - 1 else "z0"
            if kinds[i] == MoveKind.RAPID:
                lines.append(f"    MoveJ {target},v500,z5,{tv};")
            else:
                sp = speed_name[round(float(p.feed_mm_s[i]), 3)]
                lines.append(f"    MoveL {target},{sp},{zone},{tv};")
        lines += ["  ENDPROC", "ENDMODULE"]
        files[f"{mod}.mod"] = "\n".join(lines) + "\n"
    if len(chunks) > 1:
        main = [f"MODULE {ctx.name}"] + [f"  ! {h}" for h in ctx.header_lines("rapid")]
        main += ["  PROC main()"] + [f"    p{ci + 1:03d};" for ci in range(len(chunks))]
        main += ["  ENDPROC", "ENDMODULE"]
        files[f"{ctx.name}.mod"] = "\n".join(main) + "\n"
    return files


# ----------------------------------------------------------------------------- parser
_NUM = r"[-+0-9.Ee]+"
_TARGET = re.compile(
    rf"Move[LJ] \[\[({_NUM}),({_NUM}),({_NUM})\],\[({_NUM}),({_NUM}),({_NUM}),({_NUM})\],"
    rf"\[(-?\d+),(-?\d+),(-?\d+),(-?\d+)\],\[({_NUM}),")
_ABSJ = re.compile(rf"MoveAbsJ \[\[([^\]]*)\],\[({_NUM}),")
_TOOLD = re.compile(rf"PERS tooldata (\w+) := \[TRUE,\[\[({_NUM}),({_NUM}),({_NUM})\],"
                    rf"\[({_NUM}),({_NUM}),({_NUM}),({_NUM})\]\]")
_PROC_CALL = re.compile(r"^\s*(p\d{3});")


def parse(paths: list[Path]) -> dict:
    """Per move: kind ('MoveAbsJ' joints or a robtarget pose + confdata), eax_a, tool."""
    texts = {p.name: p.read_text("ascii") for p in paths}
    by_proc = {}
    for name, text in texts.items():
        for m in re.finditer(r"PROC (\w+)\(\)", text):
            by_proc[m.group(1)] = (name, text)
    tools = {}
    for text in texts.values():
        for m in _TOOLD.finditer(text):
            v = [float(x) for x in m.groups()[1:]]
            r = Rotation.from_quat([v[4], v[5], v[6], v[3]]).as_matrix()
            tools[m.group(1)] = pose_matrix(np.array([v[:3]]), r[None])[0]
    main_text = by_proc["main"][1]
    lines = main_text.splitlines()
    order = []
    for line in lines:
        if (m := _PROC_CALL.match(line)) and m.group(1) in by_proc:
            order += by_proc[m.group(1)][1].splitlines()
        else:
            order.append(line)
    moves = []
    for line in order:
        tv = line.rstrip(";").split(",")[-1].strip() if "Move" in line else None
        if m := _ABSJ.search(line):
            moves.append({"joints_deg": np.array([float(x) for x in m.group(1).split(",")]),
                          "eax_a": float(m.group(2)), "tool": tools[tv]})
        elif m := _TARGET.search(line):
            g = [float(x) for x in m.groups()]
            r = Rotation.from_quat([g[4], g[5], g[6], g[3]]).as_matrix()
            moves.append({"base_from_tcp": pose_matrix(np.array([g[:3]]), r[None])[0],
                          "conf": np.array(g[7:11], int), "eax_a": g[11], "tool": tools[tv]})
    return {"moves": moves}


def joints_from_parsed(robot, parsed: dict) -> np.ndarray:
    """IK per robtarget, keeping the branch/turns whose confdata match. (n, 6) rad."""
    from sculptor.robot.kinematics import ik

    out = []
    for mv in parsed["moves"]:
        if "joints_deg" in mv:
            out.append(np.radians(mv["joints_deg"]))
            continue
        flange = mv["base_from_tcp"] @ np.linalg.inv(mv["tool"])
        sol, _ = ik(robot, flange[None])
        found = np.full(6, np.nan)
        for b in range(8):
            q = sol[0, b].copy()
            if not np.all(np.isfinite(q)):
                continue
            for j, ci in ((0, 0), (3, 1), (5, 2)):  # the quadrant fixes the turn
                want = mv["conf"][ci]
                for cand in (q[j], q[j] - 2 * math.pi, q[j] + 2 * math.pi):
                    if math.floor(math.degrees(cand) / 90.0) == want:
                        q[j] = cand
                        break
            if np.array_equal(confdata(robot, q[None])[0], mv["conf"]):
                found = q
                break
        out.append(found)
    return np.array(out)
