"""Benchmark `sim.run_simulation` on a demo-sized job: 0.5 mm cells on a 220x220x450 mm block.

Target (issue 8): within 8 GB and under 2 minutes on 2 cores for the demo job.

The job is built here, independent of `sculptor cam` (so the simulator can be measured on
its own): the real Nefertiti scan (../shared/data/meshes/nefertiti.obj) scaled into the
block, z-level roughing from the top with flat-10mm (5 mm layers, 8 mm step-over, every
cell whose column is clear of the design by the tool radius + 1 mm), and gouge-12mm
finishing strokes (30 mm, downhill, at the rake angle, TCP on the design surface) over
the surface, grouped into 8 turntable setups facing the robot. The robot program is
solved with the robot stage's IK (nearest branch, one target per move).

Usage:  .venv/bin/python benchmarks/bench_sim.py [--res-mm 0.5] [--job DIR] [--keep DIR]
        [--engine auto|voxel] [--gouge auto|voxel]
"""

from __future__ import annotations

import argparse
import math
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sculptor.artifacts.core import Provenance, atomic_write_mesh, sha256_file  # noqa: E402
from sculptor.artifacts.program import RobotProgram  # noqa: E402
from sculptor.artifacts.toolpath import MoveKind, Pass, StockSpec, Toolpath  # noqa: E402
from sculptor.profiles import load_cell, load_robot, load_tool  # noqa: E402

NEFERTITI = ROOT.parent / "shared" / "data" / "meshes" / "nefertiti.obj"
CELL = "kuka-kr6-r900-turntable"
STOCK = (220.0, 220.0, 450.0)


def design_mesh() -> trimesh.Trimesh:
    m = trimesh.load(NEFERTITI, force="mesh")
    ext = m.bounds[1] - m.bounds[0]
    s = min(200 / ext[0], 200 / ext[1], 440 / ext[2])
    m.apply_scale(s)
    c = (m.bounds[0] + m.bounds[1]) / 2
    m.apply_translation((-c[0], -c[1], -m.bounds[0][2]))
    return m


def _sdf_fn(mesh):
    from sim.deviation import DesignDistance

    return DesignDistance(mesh)


def roughing(mesh, dist, layer=5.0, stepover=8.0, cell=2.0) -> Pass:
    r = load_tool("flat-10mm").radius_mm
    xs = np.arange(-STOCK[0] / 2 + r, STOCK[0] / 2 - r + 1e-6, cell)
    ys = np.arange(-STOCK[1] / 2 + r, STOCK[1] / 2 - r + 1e-6, stepover)
    zs = np.arange(STOCK[2] - layer, 0.9 * layer, -layer)
    X, Y, Z = np.meshgrid(xs, ys, zs, indexing="ij")
    d = dist(np.stack([X.ravel(), Y.ravel(), Z.ravel()], 1)).reshape(X.shape)
    # a column is blocked at z if the design comes near at any height above z
    blocked = np.minimum.accumulate(d[:, :, ::-1], axis=2)[:, :, ::-1] < r + 1.0
    pts, kinds = [], []
    for k, z in enumerate(zs):
        for j, y in enumerate(ys):
            free = ~blocked[:, j, k]
            if not free.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], free.astype(int), [0]])))
            for a, b in zip(edges[::2], edges[1::2]):
                x0, x1 = xs[a], xs[b - 1]
                pts += [[x0, y, z + 5], [x0, y, z], [x1, y, z], [x1, y, z + 5]]
                kinds += [MoveKind.RAPID, MoveKind.PLUNGE, MoveKind.CUT, MoveKind.RETRACT]
    pts = np.asarray(pts)
    n = len(pts)
    frame = np.broadcast_to(np.diag([1.0, -1.0, -1.0]), (n, 3, 3))
    return Pass(name="rough z-level", operation="rough", strategy="zlevel", tool_id="flat-10mm",
                position_mm=pts, tool_frame=frame, feed_mm_s=np.full(n, 40.0),
                kind=np.asarray(kinds, np.int8), turntable_rad=np.zeros(n))


def finishing(mesh, spacing=6.0, stroke=30.0, step=5.0) -> list[Pass]:
    import open3d as o3d

    tool = load_tool("gouge-12mm")
    a = math.radians(tool.rake_angle_deg)
    count = int(mesh.area / (spacing * stroke))
    p, fi = trimesh.sample.sample_surface_even(mesh, count, seed=1)
    n = mesh.face_normals[fi]
    keep = (n[:, 2] > -0.3) & (p[:, 2] > 8.0)
    p, n = p[keep], n[keep]
    down = np.array([0, 0, -1.0])
    d = down - (n @ down)[:, None] * n
    flat = np.linalg.norm(d, axis=1) < 0.2
    d[flat] = np.cross(n[flat], [0, 1.0, 0])
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    scene = o3d.t.geometry.RaycastingScene()
    scene.add_triangles(o3d.t.geometry.TriangleMesh.from_legacy(
        o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(mesh.vertices),
                                  o3d.utility.Vector3iVector(mesh.faces.astype(np.int32)))))
    s = np.arange(-stroke / 2, stroke / 2 + 1e-6, step)
    k = len(s)
    raw = p[:, None] + s[None, :, None] * d[:, None]
    q = scene.compute_closest_points(o3d.core.Tensor(raw.reshape(-1, 3).astype(np.float32)))
    on = q["points"].numpy().reshape(-1, k, 3)
    nn = mesh.face_normals[q["primitive_ids"].numpy().reshape(-1, k)]
    lift = np.zeros(k)
    lift[0] = lift[-1] = 2.0  # lead-in and lift-out 2 mm off the surface
    pos = on + lift[None, :, None] * nn
    dd = np.diff(pos, axis=1, append=pos[:, -1:] + (pos[:, -1:] - pos[:, -2:-1]))
    dd -= (dd * nn).sum(2, keepdims=True) * nn
    dd /= np.maximum(np.linalg.norm(dd, axis=2, keepdims=True), 1e-9)
    z = math.cos(a) * dd - math.sin(a) * nn
    x = math.sin(a) * dd + math.cos(a) * nn
    y = np.cross(z, x)
    frames = np.stack([x, y, z], axis=3)  # columns
    az = np.arctan2(n[:, 1], n[:, 0])
    setup = np.round(((math.pi - az) % (2 * math.pi)) / (math.pi / 4)).astype(int) % 8
    passes = []
    for si in range(8):
        sel = np.nonzero(setup == si)[0]
        if not len(sel):
            continue
        sel = sel[np.argsort(pos[sel, k // 2, 2])[::-1]]  # top down
        pp = pos[sel].reshape(-1, 3)
        ff = frames[sel].reshape(-1, 3, 3)
        kind = np.tile([MoveKind.PLUNGE] + [MoveKind.CUT] * (k - 2) + [MoveKind.RETRACT],
                       len(sel)).astype(np.int8)
        # a rapid 15 mm out along the normal between strokes
        out = pos[sel, 0] + 15 * nn[sel, 0]
        pp = np.concatenate([out[:, None], pp.reshape(len(sel), k, 3)], 1).reshape(-1, 3)
        ff = np.concatenate([frames[sel][:, :1], frames[sel]], 1).reshape(-1, 3, 3)
        kind = np.concatenate([np.full((len(sel), 1), MoveKind.RAPID),
                               kind.reshape(len(sel), k)], 1).ravel().astype(np.int8)
        theta = si * math.pi / 4
        passes.append(Pass(name=f"gouge setup {si}", operation="finish", strategy="gouge-strokes",
                           tool_id="gouge-12mm", setup_turntable_deg=math.degrees(theta),
                           position_mm=pp, tool_frame=ff, feed_mm_s=np.full(len(pp), 25.0),
                           kind=kind, turntable_rad=np.full(len(pp), theta)))
    return passes


def solve(tp: Toolpath, job_dir: Path) -> RobotProgram:
    """One target per move, the IK branch nearest the previous target."""
    from sculptor.robot.kinematics import ik

    cell = load_cell(tp.cell)
    robot = load_robot(cell.robot)
    rows_T, rows = [], []
    base_from_world = np.linalg.inv(cell.world_from_robot_base.matrix())
    for pi, p in enumerate(tp.passes):
        tcp_from_flange = np.linalg.inv(load_tool(p.tool_id).flange_from_tcp.matrix())
        wp = np.zeros((p.n_moves, 4, 4))
        wp[:, :3, :3], wp[:, :3, 3], wp[:, 3, 3] = p.tool_frame, p.position_mm, 1
        from sim.replay import world_from_workpiece

        b = base_from_world @ world_from_workpiece(cell, p.turntable_rad) @ wp
        rows_T.append(b)
        rows.append(np.stack([np.full(p.n_moves, pi), np.arange(p.n_moves)], 1))
    T = np.concatenate(rows_T)
    sols, ok = ik(robot, T @ tcp_from_flange)
    n = len(T)
    q = np.zeros((n, 6))
    cfg = np.zeros(n, np.int8)
    prev = None
    for i in range(n):
        cand = np.nonzero(ok[i])[0]
        if not len(cand):
            q[i] = prev if prev is not None else 0
            continue
        ref = prev if prev is not None else np.zeros(6)
        b = cand[np.argmin(np.abs(sols[i, cand] - ref).sum(1))]
        q[i], cfg[i], prev = sols[i, b], b, sols[i, b]
    tt = np.concatenate([p.turntable_rad for p in tp.passes])
    return RobotProgram(provenance=Provenance.make("bench_sim"), robot=robot.name, cell=cell.name,
                        tool="gouge-12mm", job_sha256=sha256_file(job_dir / "job.json"),
                        joints_rad=q, turntable_rad=tt, base_from_tcp=T,
                        move_kind=np.concatenate([p.kind for p in tp.passes]),
                        feed_mm_s=np.concatenate([p.feed_mm_s for p in tp.passes]),
                        source_index=np.concatenate(rows).astype(np.int32), config=cfg,
                        valid=ok.any(1))


def build_job(job_dir: Path) -> None:
    job_dir.mkdir(parents=True, exist_ok=True)
    mesh = design_mesh()
    atomic_write_mesh(job_dir / "design.stl", mesh)
    dist = _sdf_fn(mesh)
    passes = [roughing(mesh, dist)] + finishing(mesh)
    tp = Toolpath(provenance=Provenance.make("bench_sim"), design="design.stl",
                  design_sha256=sha256_file(job_dir / "design.stl"), cell=CELL,
                  stock=StockSpec(kind="box", size_mm=list(STOCK)), passes=passes)
    tp.save(job_dir / "job.json")
    solve(tp, job_dir).save(job_dir / "program.json")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--res-mm", type=float, default=0.5)
    ap.add_argument("--job", type=Path, help="simulate this job instead of building one")
    ap.add_argument("--keep", type=Path, help="build the job here and keep it")
    ap.add_argument("--engine", choices=["auto", "voxel"], default="auto",
                    help="auto: dexels for fixed-axis rotary passes; voxel: the reference")
    ap.add_argument("--gouge", choices=["auto", "voxel"], default="auto",
                    help="auto: gouge passes by lines of voxel centres (sim.sheet); voxel: "
                         "by the voxel engine's blocks (same voxels, the reference)")
    a = ap.parse_args()
    import functools

    import torch

    from sim import carve, run_simulation

    if a.gouge == "voxel":  # run.py calls carve.carve_pass: pin the reference method
        carve.carve_pass = functools.partial(carve.carve_pass, method="voxel")

    tmp = None
    if a.job:
        job = a.job
    else:
        job = a.keep or Path(tempfile.mkdtemp(prefix="bench_sim_"))
        tmp = None if a.keep else job
        t = time.perf_counter()
        build_job(job)
        print(f"built job in {time.perf_counter() - t:.1f} s: {job}")
    tp = Toolpath.load(job / "job.json")
    lengths = [float(np.linalg.norm(np.diff(p.position_mm, axis=0), axis=1).sum())
               for p in tp.passes]
    print(f"job: {len(tp.passes)} passes, {tp.n_moves} moves, path {sum(lengths) / 1000:.1f} m, "
          f"stock {tp.stock.size_mm} mm; torch threads {torch.get_num_threads()}")
    t = time.perf_counter()
    ru = resource.getrusage(resource.RUSAGE_SELF)
    rep = run_simulation(job, res_mm=a.res_mm, progress=False, engine=a.engine)
    wall = time.perf_counter() - t
    ru2 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = ru2.ru_utime + ru2.ru_stime - ru.ru_utime - ru.ru_stime
    peak = ru2.ru_maxrss / 1024 ** 2
    print(f"res {a.res_mm} mm: wall {wall:.1f} s, CPU {cpu:.1f} s (timings "
          f"{rep.robot.get('timings_s')}), peak RSS {peak:.2f} GB, "
          f"verdict {'GO' if rep.go else 'NO-GO'}; engines {rep.material.get('carve_engine_per_pass')}")
    m = rep.material
    print(f"carved {m['carved_volume_mm3']} mm3 (removed {m['removed_volume_mm3'] / 1e6:.3f} dm3), "
          f"max gouge {m['max_gouge_mm']} mm, rest max / p95 {m['rest_max_mm']} / "
          f"{m['rest_p95_mm']} mm, rest above tol {m['rest_volume_above_tol_mm3']} mm3, mean / "
          f"p99 |d| {m['mean_abs_mm']} / {m['p99_abs_mm']} mm, within tol "
          f"{m['area_within_tol_ratio']}, rapids through wood "
          f"{m['rapid_moves_through_material']}, cycle {rep.cycle_time_s} s")
    if tmp:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
