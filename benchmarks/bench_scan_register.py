"""Registration of the real Stanford bunny scans from random starts: sculptor vs a plain
open3d FPFH + RANSAC + ICP chain, same trials, same run.

    .venv/bin/python benchmarks/bench_scan_register.py --trials 20

Each trial moves every scan by its own random rigid motion; both methods then register
the set, and their relative poses are scored against Stanford's bun.conf (rotation
error and RMS point displacement per scan, after the best common gauge). The baseline
is the plain chain: each scan registered to the previous one in the given (angular)
order, FPFH+RANSAC at the same voxel then point-to-plane ICP at the fine voxel, poses
composed: no verification, no loop closure, no pose graph.

Times: wall clock and process CPU (all threads; on a shared machine the CPU time is the
figure that does not depend on the other jobs' load).
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np

from sculptor.scan.evaluate import (apply, random_motion, read_stanford_conf,
                                    relative_pose_errors)
from sculptor.scan.io import load_geometry
from sculptor.scan.register import (FINE_VOXEL_FACTOR, VOXEL_PER_EXTENT, _ransac_fpfh, icp,
                                    preprocess, register_points)

ROOT = Path(__file__).resolve().parents[1]
BUNNY = ROOT / "sculptor" / "data" / "scans" / "stanford-bunny"
NAMES = ["bun000", "bun045", "bun090", "bun180", "bun270", "bun315", "chin"]


def baseline(scans_mm: list[np.ndarray]) -> list[np.ndarray]:
    extent = max(float(np.ptp(p, axis=0).max()) for p in scans_mm)
    v = extent * VOXEL_PER_EXTENT
    fine = v * FINE_VOXEL_FACTOR
    coarse = [preprocess(p, v) for p in scans_mm]
    fines = [preprocess(p, fine, features=False)[0] for p in scans_mm]
    poses = [np.eye(4)]
    for k in range(1, len(scans_mm)):  # odometry chain in the given (angular) order
        t = _ransac_fpfh(coarse[k][0], coarse[k - 1][0], coarse[k][1], coarse[k - 1][1], v,
                         100_000)
        m, _, _ = icp(fines[k], fines[k - 1], t, 1.5 * fine, 1e9)
        poses.append(poses[k - 1] @ m)
    return poses


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--trials", type=int, default=20)
    args = ap.parse_args()
    import open3d as o3d

    gt = read_stanford_conf(BUNNY / "bun.conf", scale=1000.0)
    raw = [load_geometry(BUNNY / f"{n}.ply").points * 1000.0 for n in NAMES]
    rows = {"sculptor": [], "baseline": []}
    for trial in range(args.trials):
        rng = np.random.default_rng(1000 + trial)
        motions, scans = [], []
        for p in raw:
            m = random_motion(rng, 200.0)
            motions.append(m)
            scans.append(apply(m, p))
        true = [gt[f"{n}.ply"] @ np.linalg.inv(m) for n, m in zip(NAMES, motions)]
        for name in rows:
            o3d.utility.random.seed(trial)
            t0, c0 = time.perf_counter(), time.process_time()
            if name == "sculptor":
                poses = register_points(scans, seed=trial).world_from_scan_mm
            else:
                poses = baseline(scans)
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            placed = all(p is not None for p in poses)
            if placed:
                rot, disp = relative_pose_errors(poses, true, scans)
            else:
                rot = disp = np.array([np.inf])
            rows[name].append((dt, rot.max(), disp.max(), cpu))
            print(f"trial {trial:2d} {name:8s} {dt:6.1f} s (cpu {cpu:5.1f} s)  worst "
                  f"{rot.max():7.2f} deg {disp.max():8.2f} mm  all placed {placed}", flush=True)
    print(f"\nload average at the end: {os.getloadavg()[0]:.1f}")
    print("method    median s  median cpu s  success(<0.5deg&<0.5mm)  "
          "median worst deg  median worst mm")
    for name, r in rows.items():
        a = np.array(r)
        ok = np.mean((a[:, 1] < 0.5) & (a[:, 2] < 0.5))
        print(f"{name:8s}  {np.median(a[:, 0]):7.1f}  {np.median(a[:, 3]):11.1f}  "
              f"{ok * 100:5.0f}% of {len(r)}"
              f"               {np.median(a[:, 1]):7.2f}          {np.median(a[:, 2]):7.2f}")


if __name__ == "__main__":
    main()
