"""KUKA KRL: ``NAME.src`` (motion) + ``NAME.dat`` (E6POS points), split into modules.

Moves: the first point of each module and every rapid is a ``PTP`` (it uses the status
and turn bits, so the arm arrives in the planned configuration); cutting moves are
``LIN ... C_DIS`` with ``$VEL.CP`` in m/s and ``$APO.CDIS`` in mm. Positions are TCP
poses in the robot base frame (``$BASE = $NULLFRAME``, ``$TOOL`` = the tool in KUKA's
flange frame, whose +X leaves the flange), A/B/C are Z-Y'-X'' Euler angles in degrees,
E1 is the turntable. Status S: bit 0 wrist centre behind axis 1, bit 1 A3 >= phi (elbow
up), bit 2 A5 <= 0. Turn T: bit i set when axis i+1 < 0.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np

from sculptor.artifacts.toolpath import MoveKind
from sculptor.post.common import (
    PostContext,
    arm_config_bits,
    fnum,
    fnums,
    from_zyx_deg,
    pose_matrix,
    zyx_deg,
)

# KUKA's flange frame (+X out of the flange) from the ROS/OPW tool0 frame (+Z out)
KUKA_FLANGE_FROM_TOOL0 = np.array([[0.0, 0, 1, 0], [0, 1, 0, 0], [-1, 0, 0, 0], [0, 0, 0, 1]])
POS_DEC, ANG_DEC = 4, 5


def status_turn(robot, joints_rad: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    bits = arm_config_bits(robot, joints_rad)
    s = bits[:, 0] * 1 + (~bits[:, 1]) * 2 + (joints_rad[:, 4] <= 0) * 4
    t = np.zeros(len(joints_rad), int)
    for i in range(6):
        t |= (joints_rad[:, i] < 0).astype(int) << i
    return s.astype(int), t


def _frame_str(m: np.ndarray) -> str:
    abc = zyx_deg(m[None, :3, :3])[0]
    x, y, z = m[:3, 3]
    return (f"{{X {fnum(x, POS_DEC)},Y {fnum(y, POS_DEC)},Z {fnum(z, POS_DEC)},"
            f"A {fnum(abc[0], ANG_DEC)},B {fnum(abc[1], ANG_DEC)},C {fnum(abc[2], ANG_DEC)}}}")


def _modules(ctx: PostContext, max_lines: int) -> list[range]:
    """Split the points into modules of at most ``max_lines`` motion lines: one per point,
    plus a ``$VEL.CP`` line where the feed changes and 3 at a tool change (counted
    generously: a module restarts its feed and tool)."""
    p = ctx.program
    feed = np.round(p.feed_mm_s / 1000.0, 5)
    cost = 1 + np.r_[1, feed[1:] != feed[:-1]].astype(int)
    cost[np.r_[0, np.nonzero(np.diff(ctx.pass_index()))[0] + 1]] += 3  # new pass: tool
    out, start, used = [], 0, 4
    for i, c in enumerate(cost.tolist()):
        if used + c > max_lines and i > start:
            out.append(range(start, i))
            start, used = i, 4
        used += c
    out.append(range(start, p.n))
    return out


def render(ctx: PostContext) -> dict[str, str]:
    p, robot = ctx.program, ctx.robot
    s_bits, t_bits = status_turn(robot, p.joints_rad)
    abc = zyx_deg(p.base_from_tcp[:, :3, :3])
    xyz = p.base_from_tcp[:, :3, 3]
    # every number formatted once, vectorised (the loop below only joins strings)
    cx, cy, cz = (fnums(xyz[:, k], POS_DEC) for k in range(3))
    ca, cb, cc = (fnums(abc[:, k], ANG_DEC) for k in range(3))
    ce = fnums(ctx.e1_deg, ANG_DEC)
    s_list, t_list = s_bits.tolist(), t_bits.tolist()
    rapid = (ctx.kinds == MoveKind.RAPID).tolist()
    vels = np.round(p.feed_mm_s / 1000.0, 5).tolist()
    chunks = _modules(ctx, max(100, (ctx.controller.max_program_lines or 20000) - 60))
    files: dict[str, str] = {}
    header = [f"; {h}" for h in ctx.header_lines("krl")]
    sub_names = []
    for ci, rng in enumerate(chunks):
        name = ctx.name if len(chunks) == 1 else f"{ctx.name[:19]}_{ci + 1:03d}"
        sub_names.append(name)
        src = ["&ACCESS RVP", "&REL 1", f"DEF {name}( )"] + header + [
            f"; module {ci + 1} of {len(chunks)}: points {rng.start + 1}..{rng.stop}",
            ";FOLD INI", "  BAS(#INITMOV,0)", ";ENDFOLD",
            "$BASE = $NULLFRAME",
            "$ADVANCE = 3",
            "$APO.CDIS = 0.5",
            "$ACC.CP = 2.0",
            "FOR I = 1 TO 6", "  $VEL_AXIS[I] = 20", "ENDFOR",
        ]
        dat = [f"DEFDAT {name} PUBLIC"] + [f"; {h}" for h in ctx.header_lines("krl")[:1]]
        dat.append("DECL INT I")
        last_tool, last_vel = None, None
        for i in rng:
            tool = ctx.tool_for(i)
            if tool.name != last_tool:
                if last_tool is not None:
                    src.append(f"; tool change: {last_tool} -> {tool.name}")
                    src.append("HALT")
                ftcp = KUKA_FLANGE_FROM_TOOL0 @ tool.flange_from_tcp.matrix()
                src.append(f"$TOOL = {_frame_str(ftcp)} ; {tool.name}")
                last_tool = tool.name
            pt = f"XP{i + 1}"
            dat.append(
                f"DECL E6POS {pt}={{X {cx[i]},Y {cy[i]},Z {cz[i]},A {ca[i]},B {cb[i]},"
                f"C {cc[i]},S {s_list[i]},T {t_list[i]},E1 {ce[i]},E2 0.0,E3 0.0,"
                f"E4 0.0,E5 0.0,E6 0.0}}")
            first = i == rng.start
            if first or rapid[i]:
                src.append(f"PTP {pt}" + ("" if first else " C_PTP"))
                continue
            vel = vels[i]
            if vel != last_vel:
                src.append(f"$VEL.CP = {vel}")
                last_vel = vel
            src.append(f"LIN {pt} C_DIS")
        src.append("END")
        dat.append("ENDDAT")
        files[f"{name}.src"] = "\n".join(src) + "\n"
        files[f"{name}.dat"] = "\n".join(dat) + "\n"
    if len(chunks) > 1:
        main = ["&ACCESS RVP", "&REL 1", f"DEF {ctx.name}( )"] + header
        main += [f"  {n}( )" for n in sub_names] + ["END"]
        files[f"{ctx.name}.src"] = "\n".join(main) + "\n"
        files[f"{ctx.name}.dat"] = f"DEFDAT {ctx.name} PUBLIC\nENDDAT\n"
    return files


# ----------------------------------------------------------------------------- parser
_E6 = re.compile(r"DECL E6POS (\w+)=\{([^}]*)\}")
_MOVE = re.compile(r"^\s*(PTP|LIN)\s+(\w+)")
_TOOL = re.compile(r"^\s*\$TOOL\s*=\s*\{([^}]*)\}")
_CALL = re.compile(r"^\s*(\w+)\(\s*\)\s*$")


def _fields(body: str) -> dict[str, float]:
    out = {}
    for part in body.split(","):
        k, v = part.strip().split()
        out[k] = float(v)
    return out


def parse(paths: list[Path]) -> dict:
    """Read the .src/.dat files back: per move the TCP pose (base frame, mm), S, T, E1,
    the move type and the $TOOL in force (KUKA flange frame)."""
    texts = {p.name: p.read_text("ascii") for p in paths}
    points = {}
    for name, text in texts.items():
        if name.lower().endswith(".dat"):
            for m in _E6.finditer(text):
                points[m.group(1)] = _fields(m.group(2))
    srcs = [n for n in texts if n.lower().endswith(".src")]
    called = {m.group(1) for n in srcs for line in texts[n].splitlines()
              if (m := _CALL.match(line))}
    roots = [n for n in srcs if n[:-4] not in called]
    order: list[str] = []

    def walk(src_name: str) -> None:
        for line in texts[src_name].splitlines():
            if (m := _CALL.match(line)) and f"{m.group(1)}.src" in texts:
                walk(f"{m.group(1)}.src")
            else:
                order.append(line)

    for r in sorted(roots):
        walk(r)
    poses, s, t, e1, move, tools = [], [], [], [], [], []
    tool = None
    for line in order:
        if m := _TOOL.match(line):
            f = _fields(m.group(1))
            tool = pose_matrix(np.array([[f["X"], f["Y"], f["Z"]]]),
                               from_zyx_deg(np.array([[f["A"], f["B"], f["C"]]])))[0]
        elif m := _MOVE.match(line):
            f = points[m.group(2)]
            poses.append(pose_matrix(np.array([[f["X"], f["Y"], f["Z"]]]),
                                     from_zyx_deg(np.array([[f["A"], f["B"], f["C"]]])))[0])
            s.append(int(f["S"]))
            t.append(int(f["T"]))
            e1.append(f["E1"])
            move.append(m.group(1))
            tools.append(tool)
    return {"base_from_tcp": np.array(poses), "status": np.array(s), "turn": np.array(t),
            "e1_deg": np.array(e1), "move": move, "kuka_flange_from_tcp": tools}


def joints_from_parsed(robot, parsed: dict) -> np.ndarray:
    """Resolve each parsed pose to joints with IK, picking the branch and turns that match
    S and T (what the KUKA controller does for PTP). (n, 6) rad; NaN where none matches."""
    from sculptor.robot.kinematics import ik

    tool0_from_kflange = np.linalg.inv(KUKA_FLANGE_FROM_TOOL0)
    flange = np.array([b @ np.linalg.inv(tool0_from_kflange @ k)
                       for b, k in zip(parsed["base_from_tcp"], parsed["kuka_flange_from_tcp"])])
    sol, valid = ik(robot, flange)
    out = np.full((len(flange), 6), np.nan)
    for i in range(len(flange)):
        for b in range(8):
            q = sol[i, b]
            if not np.all(np.isfinite(q)):
                continue
            # choose the turn of each joint from T: the sign of each axis
            tbits = parsed["turn"][i]
            q = q.copy()
            for j in range(6):
                want_neg = bool(tbits >> j & 1)
                lim = robot.limits_rad[j]
                for cand in (q[j], q[j] - 2 * math.pi, q[j] + 2 * math.pi):
                    if (cand < 0) == want_neg and lim[0] <= cand <= lim[1]:
                        q[j] = cand
                        break
            st, tt = status_turn(robot, q[None])
            if st[0] == parsed["status"][i] and tt[0] == tbits:
                out[i] = q
                break
    return out
