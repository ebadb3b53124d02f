"""Narrow-band SDF (sculptor.scan.sdf.mesh_sdf_grid) vs exact library references.

    .venv/bin/python benchmarks/bench_scan_sdf.py
    git show a5705c0~1:sculptor/scan/sdf.py > /tmp/sdf_before.py
    .venv/bin/python benchmarks/bench_scan_sdf.py --compare-to /tmp/sdf_before.py --res 128

Mesh: the real Nefertiti scan (100k triangles) from ../shared/data/meshes. References,
timed on the same grid in the same run: open3d RaycastingScene.compute_signed_distance
(exact BVH distance, ray-parity sign) and trimesh.proximity.signed_distance (timed on a
500-point random subset and scaled: it is too slow, and too memory-hungry, for a grid). Error: |ours - open3d|
over voxels where either is inside the truncation band, in mm and in voxels; sign
agreement over all voxels. CPU time (all threads) is printed beside the wall time: on a
shared machine it is the figure the other jobs' load does not inflate.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
MESH = ROOT.parent / "shared" / "data" / "meshes" / "nefertiti.obj"


def compare(before: Path, res: int, rounds: int = 4) -> None:
    """Time an earlier ``sdf.py`` (e.g. ``git show REV:sculptor/scan/sdf.py``) and the current
    one back to back, alternating, in one process: the ratio holds under any load."""
    import importlib.util

    import trimesh

    from sculptor.artifacts.sdf import TRUNCATION_VOXELS, grid_world_from_voxel
    from sculptor.scan import sdf as current
    from sculptor.scan.canonical import canonical_pose

    spec = importlib.util.spec_from_file_location("sdf_before", before)
    old = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(old)
    mesh, _ = canonical_pose(trimesh.load(MESH))
    w = grid_world_from_voxel(mesh.extents[2], mesh.extents.max(), res)
    trunc = TRUNCATION_VOXELS * w[0, 0]
    best = {"before": [np.inf, np.inf], "current": [np.inf, np.inf]}
    for _ in range(rounds):
        for name, mod in (("before", old), ("current", current)):
            t0, c0 = time.perf_counter(), time.process_time()
            mod.mesh_sdf_grid(mesh, w, res, trunc)
            best[name][0] = min(best[name][0], time.perf_counter() - t0)
            best[name][1] = min(best[name][1], time.process_time() - c0)
    for name, (wall, cpu) in best.items():
        print(f"{name:8s} res {res}^3: wall {wall:.2f} s, cpu {cpu:.2f} s (best of {rounds})")
    print(f"ratio before/current: wall {best['before'][0] / best['current'][0]:.2f}, "
          f"cpu {best['before'][1] / best['current'][1]:.2f} (load {os.getloadavg()[0]:.1f})")


def main() -> None:
    import argparse

    ap = argparse.ArgumentParser()
    ap.add_argument("--compare-to", type=Path, help="an earlier sdf.py to time against")
    ap.add_argument("--res", type=int, default=128)
    args = ap.parse_args()
    if args.compare_to:
        compare(args.compare_to, args.res)
        return
    import open3d as o3d
    import trimesh

    from sculptor.artifacts.sdf import TRUNCATION_VOXELS, grid_world_from_voxel, voxel_centers
    from sculptor.scan.canonical import canonical_pose
    from sculptor.scan.sdf import mesh_sdf_grid

    mesh, _ = canonical_pose(trimesh.load(MESH))
    print(f"mesh {MESH.name}: {len(mesh.faces)} triangles, height {mesh.extents[2]:.0f} mm")
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.core.Tensor(mesh.vertices.astype(np.float32)),
                        o3d.core.Tensor(mesh.faces.astype(np.uint32)))
    for res in (64, 128):
        w = grid_world_from_voxel(mesh.extents[2], mesh.extents.max(), res)
        trunc = TRUNCATION_VOXELS * w[0, 0]
        times, cpus = [], []
        for _ in range(3):
            t0, c0 = time.perf_counter(), time.process_time()
            ours = mesh_sdf_grid(mesh, w, res, trunc)
            times.append(time.perf_counter() - t0)
            cpus.append(time.process_time() - c0)
        pts = voxel_centers(w, res).reshape(-1, 3).astype(np.float32)
        t0 = time.perf_counter()
        ref = scene.compute_signed_distance(o3d.core.Tensor(pts)).numpy()
        t_o3d = time.perf_counter() - t0
        sub = pts[np.random.default_rng(0).choice(len(pts), 500, replace=False)]
        t0 = time.perf_counter()
        trimesh.proximity.signed_distance(mesh, sub)
        t_tm = (time.perf_counter() - t0) * len(pts) / len(sub)
        ref = np.clip(ref, -trunc, trunc)
        o = ours.ravel()
        band = (np.abs(o) < 0.999 * trunc) | (np.abs(ref) < 0.999 * trunc)
        err = np.abs(o[band] - ref[band])
        sign = np.mean(np.sign(o) == np.sign(ref))
        print(f"res {res}^3: ours {min(times):.2f} s (best of 3; cpu {min(cpus):.2f} s, load "
              f"{os.getloadavg()[0]:.1f}), open3d exact {t_o3d:.1f} s, "
              f"trimesh exact ~{t_tm:.0f} s (extrapolated); band voxels {band.sum()}; "
              f"|err| median {np.median(err):.4f} mm, p99 {np.percentile(err, 99):.3f} mm "
              f"({np.percentile(err, 99) / w[0, 0]:.3f} vox), max {err.max():.2f} mm "
              f"({err.max() / w[0, 0]:.2f} vox); sign agreement {sign * 100:.3f}%")


if __name__ == "__main__":
    main()
