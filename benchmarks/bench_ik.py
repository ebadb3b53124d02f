"""IK throughput and accuracy: sculptor's closed-form OPW solver vs roboticstoolbox-python.

Same poses for both: FK of random joint values (within limits) of the KUKA KR 6 R900
sixx. Sculptor solves all 8 branches per pose (vectorised numpy, one thread);
roboticstoolbox's C++ Levenberg-Marquardt solver (``ETS.ik_LM``) finds one solution per
pose from a random seed. Ratio = sculptor poses/s / rtb poses/s, measured in one run.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/bench_ik.py [--n 200000] [--n-rtb 2000]
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from sculptor.profiles import load_robot  # noqa: E402
from sculptor.robot.kinematics import fk, ik, to_controller  # noqa: E402


def rtb_chain(robot):
    from roboticstoolbox import ET

    p = robot.opw
    m = 1e-3
    return (ET.Rz() * ET.tx(p.a1_mm * m) * ET.ty(p.b_mm * m) * ET.tz(p.c1_mm * m) * ET.Ry()
            * ET.tz(p.c2_mm * m) * ET.Ry() * ET.tx(p.a2_mm * m) * ET.Rz() * ET.tz(p.c3_mm * m)
            * ET.Ry() * ET.Rz() * ET.tz(p.c4_mm * m))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--robot", default="kuka-kr6-r900")
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--n-rtb", type=int, default=2000)
    args = ap.parse_args()
    robot = load_robot(args.robot)
    rng = np.random.default_rng(0)
    lim = robot.limits_rad
    q = rng.uniform(lim[:, 0], lim[:, 1], (args.n, 6))
    poses = fk(robot, q)

    ik(robot, poses[:1000])  # warm up
    best = np.inf
    for _ in range(3):
        t0 = time.perf_counter()
        sol, valid = ik(robot, poses)
        best = min(best, time.perf_counter() - t0)
    rate = args.n / best
    finite = np.all(np.isfinite(sol), -1)
    back = fk(robot, np.where(finite[..., None], sol, 0).reshape(-1, 6)).reshape(-1, 8, 4, 4)
    pos_err_m = np.linalg.norm(back[..., :3, 3] - poses[:, None, :3, 3], axis=-1)[finite].max() * 1e-3
    rot_err = np.abs(back[..., :3, :3] - poses[:, None, :3, :3]).max((-1, -2))[finite].max()
    print(f"sculptor ik: {args.n} poses, 8 branches each, {best:.3f} s -> {rate:,.0f} poses/s; "
          f"FK(IK) max position error {pos_err_m:.2e} m, rotation {rot_err:.1e}; "
          f"{valid.any(1).mean():.3f} of poses with a valid branch")

    try:
        ets = rtb_chain(robot)
    except ImportError:
        print("roboticstoolbox-python not installed (pip install -e .[bench]); no ratio")
        return
    n = min(args.n_rtb, args.n)
    # the same poses, in metres and in the kinematic joint convention
    t_m = poses[:n].copy()
    t_m[:, :3, 3] *= 1e-3
    seeds = rng.uniform(-np.pi, np.pi, (n, 6))
    ok, errs = 0, []
    t0 = time.perf_counter()
    sols = []
    for i in range(n):
        r = ets.ik_LM(t_m[i], q0=seeds[i], ilimit=30, slimit=100, tol=1e-10)
        sols.append(r.q if hasattr(r, "q") else r[0])
        ok += int(r.success) if hasattr(r, "success") else int(r[1])
    dt = time.perf_counter() - t0
    sols = np.array(sols)
    kin_back = fk(robot, to_controller(robot, sols))
    errs = np.linalg.norm(kin_back[:, :3, 3] - poses[:n, :3, 3], axis=1) * 1e-3
    rate_rtb = n / dt
    print(f"roboticstoolbox ETS.ik_LM: {n} poses, 1 solution each, {dt:.3f} s -> "
          f"{rate_rtb:,.0f} poses/s; success {ok / n:.3f}; FK(IK) median position error "
          f"{np.median(errs):.1e} m")
    print(f"ratio sculptor/rtb: {rate / rate_rtb:,.0f}x poses/s "
          f"({8 * rate / rate_rtb:,.0f}x solutions/s)")


if __name__ == "__main__":
    main()
