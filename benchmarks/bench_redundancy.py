"""Redundancy solver time for a ~100k-point gouge job in the demo cell (or a real job).

Synthetic gouge strokes (50 mm at 0.5 mm steps) over the sides and top of a
220 x 220 x 450 mm block on the turntable of kuka-kr6-r900-turntable; the solver tries
every segment (the moves between two rapids) in the CAM's own state on all 8 branches,
then constant turntable offsets x tilts (+/-30 deg, then wider), then the per-point DP;
retracts before reconfigurations; densification to a 0.01 mm chord error.
``--job JOB`` solves a job from ``sculptor cam`` instead.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_redundancy.py [--points 100000]
    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_redundancy.py --job JOB
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

from sculptor.artifacts.toolpath import Toolpath  # noqa: E402
from sculptor.robot.solver import solve_program  # noqa: E402
from sculptor.robot.synthetic import block_strokes  # noqa: E402


def why_at_cam_state(tp, cell: str) -> dict:
    """Moves no IK branch can reach in the CAM's own state (no turntable offset, no tilt),
    by reason: the joint over its limit in the branch that misses least, or singularity /
    reach. What the search has to fix."""
    import math

    import numpy as np

    from sculptor.robot.cell import RobotCell, inv_rigid, tool_matrix
    from sculptor.robot.kinematics import ik
    from sculptor.robot.solver import REASONS, _Checker, _pass_tool

    rc = RobotCell.load(cell)
    checker = _Checker(rc.robot, math.radians(10.0))
    lim = rc.robot.limits_rad
    out: dict = {}
    for ps in tp.passes:
        u, _, vt = np.linalg.svd(ps.tool_frame)
        w = np.zeros((ps.n_moves, 4, 4))
        w[:, :3, :3], w[:, :3, 3], w[:, 3, 3] = u @ vt, ps.position_mm, 1.0
        b = rc.base_from_workpiece(ps.turntable_rad) @ w
        sol, val = ik(rc.robot, b @ inv_rigid(tool_matrix(_pass_tool(None, ps.tool_id))))
        code = checker.classify(sol, val)
        none = ~np.any(code == 0, axis=1)
        over = (sol < lim[:, 0]) | (sol > lim[:, 1])  # (n, 8, 6)
        n_over = np.where(np.isfinite(sol).all(-1), over.sum(-1), 99)
        for i in np.nonzero(none)[0]:
            bb = int(np.argmin(n_over[i]))  # the branch that misses least
            if code[i, bb] == 2:
                why = "joint limit " + "+".join(rc.robot.joints[j].name
                                               for j in np.nonzero(over[i, bb])[0])
            else:
                why = REASONS[int(code[i, bb])]
            key = ("rough " if ps.operation == "rough" else "finish ") + why
            out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=100_000)
    ap.add_argument("--cell", default="kuka-kr6-r900-turntable")
    ap.add_argument("--job", default=None, help="job directory from sculptor cam")
    args = ap.parse_args()
    if args.job:
        tp = Toolpath.load(os.path.join(args.job, "job.json"))
        what, cell = f"{args.job}, {len(tp.passes)} passes", tp.cell
    else:
        n_strokes = max(1, round(args.points / 103))
        tp = block_strokes(n_strokes=n_strokes, seed=0)
        what, cell = f"{n_strokes} strokes", args.cell
    stats: dict = {}
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    prog = solve_program(tp, cell, progress=False, stats=stats)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    print(f"{tp.n_moves} toolpath points ({what}) in {cell}: "
          f"{wall:.1f} s wall, {cpu:.1f} s CPU -> {tp.n_moves / cpu:,.0f} points/CPU-s; "
          f"valid ratio {prog.valid_ratio:.5f}; {prog.n} program points after "
          f"densification; max chord error {prog.max_chord_error_mm:.4f} mm; "
          f"failures: {sum(f['count'] for f in prog.failures)}")
    if args.job:
        print(f"moves no branch reaches in the CAM's own state: {why_at_cam_state(tp, cell)}")
    print(f"segments {stats['segments']}, solved by {stats['solved_by']}; retracts before "
          f"reconfigurations / table turns: {stats['retracts']} "
          f"(none possible: {stats['no_retract']})")


if __name__ == "__main__":
    main()
