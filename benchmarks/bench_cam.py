"""CAM benchmarks (issue 7).

1. Finishing the 100k-triangle Nefertiti scan scaled to 400 mm with ball-6mm at 0.25 mm
   sampling along the path (all bands of the banded 3+2 raster, scallop 0.2 mm): time.
2. Side by side with OpenCAMLib's BatchDropCutter on the same 3-axis job (same mesh,
   6 mm ball, same grid: 0.25 mm along x, raster lines 2 mm apart), in one run:
   points per second of each and the CL height difference on continuous regions (grid
   points whose CL differs from its neighbours by < 1 mm, both tools finding contact).

   ``--before REV``: the same finishing with finish.py + dropcutter.py as committed at REV
   (git), in the same process, before the current code: both times and the largest
   difference between their moves.

3. ``--job DESIGN``: a whole draft job (``sculptor cam --quality draft``, gouge-12mm with
   flat-10mm roughing in kuka-kr6-r900-turntable) planned and then solved by the robot
   solver: planning time, moves, path length, valid ratio and solve time.

    .venv/bin/python benchmarks/bench_cam.py [--mesh ../shared/data/meshes/nefertiti.obj]
        [--tool ball-6mm] [--before REV] [--finish-only] [--job DESIGN [--stock XxYxZ]
        [--out DIR]]
"""

from __future__ import annotations

import argparse
import importlib.util
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from sculptor.cam import Cutter, MeshQuery, drop_cutter
from sculptor.cam.bands import Bands
from sculptor.cam.dropcutter import Adjacency
from sculptor.cam.finish import finish_passes
from sculptor.profiles import load_tool

ROOT = Path(__file__).resolve().parents[1]


def load(mesh_path: Path) -> trimesh.Trimesh:
    m = trimesh.load(mesh_path, force="mesh")
    m.apply_translation(-m.bounds[0])
    m.apply_scale(400.0 / m.extents[2])
    lo, hi = m.bounds
    m.apply_translation([-(lo[0] + hi[0]) / 2, -(lo[1] + hi[1]) / 2, 0.0])
    return m


def bench_finish(m, tool_name: str = "ball-6mm", finish=finish_passes) -> dict:
    tool = load_tool(tool_name)
    t0 = time.perf_counter()
    c0 = time.process_time()
    q = MeshQuery(m)
    passes, rep = finish(q, Bands(8), tool, scallop_mm=0.2, sample_mm=0.25, simplify_mm=0.01)
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return {"finish_s": dt, "cpu_s": cpu, "cl_points": rep["cl_points"], "moves": sum(p.n_moves
                                                                       for p in passes),
            "stepover_mm": rep["stepover_mm"], "passes": passes}


def finish_at(rev: str):
    """finish_passes of finish.py with dropcutter.py as committed at git ``rev``."""
    tmp = Path(tempfile.mkdtemp(prefix="bench_cam_"))
    mods = {}
    for name in ("dropcutter", "finish"):
        src = subprocess.run(["git", "show", f"{rev}:sculptor/cam/{name}.py"], cwd=ROOT,
                             check=True, capture_output=True, text=True).stdout
        (tmp / f"{name}.py").write_text(src)
        spec = importlib.util.spec_from_file_location(f"_before_{name}", tmp / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = mod
        spec.loader.exec_module(mod)
        mods[name] = mod
    mods["finish"].drop_cutter = mods["dropcutter"].drop_cutter
    mods["finish"].holder_floor = mods["dropcutter"].holder_floor
    return mods["finish"].finish_passes


def max_move_difference(a: list, b: list) -> float:
    """The largest position difference (mm) between two lists of passes (inf when the
    passes or their move counts differ)."""
    if [p.n_moves for p in a] != [p.n_moves for p in b]:
        return float("inf")
    return max((float(np.abs(p.position_mm - o.position_mm).max()) for p, o in zip(a, b)
                if p.n_moves), default=0.0)


def bench_ocl(m, line_mm: float = 2.0, sample_mm: float = 0.25) -> dict:
    import opencamlib as ocl

    v, f = np.asarray(m.vertices), np.asarray(m.faces)
    lo, hi = m.bounds
    xs = np.arange(lo[0] - 4, hi[0] + 4, sample_mm)
    ys = np.arange(lo[1] - 4, hi[1] + 4, line_mm)
    t0 = time.perf_counter()
    edges = Adjacency(m).ball_edges()
    cl = drop_cutter(v, f, Cutter.ball(3.0), xs, ys, edges)
    t_ours = time.perf_counter() - t0

    s = ocl.STLSurf()
    for tri in v[f]:
        s.addTriangle(ocl.Triangle(*[ocl.Point(*map(float, p)) for p in tri]))
    bdc = ocl.BatchDropCutter()
    bdc.setSTL(s)
    bdc.setCutter(ocl.BallCutter(6.0, 60.0))
    zmin = float(lo[2]) - 10.0
    for y in ys:
        for x in xs:
            bdc.appendPoint(ocl.CLPoint(float(x), float(y), zmin))
    t0 = time.perf_counter()
    bdc.run()
    t_ocl = time.perf_counter() - t0
    z = np.array([p.z for p in bdc.getCLPoints()]).reshape(len(ys), len(xs))
    both = np.isfinite(cl) & (z > zmin + 1e-6)
    jump = np.zeros_like(both)
    d = np.abs(np.diff(np.where(both, cl, 0), axis=1))
    jump[:, 1:] |= d > 1.0
    jump[:, :-1] |= d > 1.0
    cont = both & ~jump
    diff = np.abs(cl - z)[cont]
    n = len(xs) * len(ys)
    return {"points": n, "ours_s": t_ours, "ocl_s": t_ocl, "ours_pts_s": n / t_ours,
            "ocl_pts_s": n / t_ocl, "ratio": t_ocl / t_ours,
            "max_diff_mm": float(diff.max()), "p99_diff_mm": float(np.percentile(diff, 99)),
            "continuous_share": float(cont.mean() / max(both.mean(), 1e-9)),
            "ocl_threads": int(ocl.max_threads())}


def bench_job(design: Path, stock: str | None, out: Path) -> None:
    from sculptor.artifacts import Toolpath
    from sculptor.cam import plan_job
    from sculptor.robot import solve_program

    t0, c0 = time.perf_counter(), time.process_time()
    plan_job(design, out, stock=stock, quality="draft", progress=False)
    t_cam, c_cam = time.perf_counter() - t0, time.process_time() - c0
    import json

    s = json.loads((out / "summary.json").read_text())
    tp = Toolpath.load(out / "job.json")
    rough = sum(p.n_moves for p in tp.passes if p.operation == "rough")
    print(f"cam {design.name} (stock {stock or 'cell default'}): {t_cam:.1f} s wall "
          f"({c_cam:.1f} s CPU), {tp.n_moves} moves ({rough} roughing), path "
          f"{s['total']['path_length_mm'] / 1000:.0f} m (cutting "
          f"{s['total']['cutting_length_mm'] / 1000:.0f} m), {s['total']['strokes']} strokes "
          f"({s['finishing'].get('across_grain_strokes', 0)} across the grain), "
          f"setups {s['roughing']['setups']}, max gouge {s['max_gouge_mm']} mm, "
          f"arm-unreachable stroke points {s['finishing'].get('arm_unreachable_points')}")
    t0, c0 = time.perf_counter(), time.process_time()
    prog = solve_program(tp, tp.cell, progress=False)
    print(f"robot solve: valid ratio {prog.valid_ratio:.5f}, {prog.n} program points, "
          f"{time.perf_counter() - t0:.1f} s wall ({time.process_time() - c0:.1f} s CPU); "
          f"failures {prog.failures[:2]}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", type=Path,
                    default=ROOT.parent / "shared" / "data" / "meshes" / "nefertiti.obj")
    ap.add_argument("--finish-only", action="store_true", help="skip OpenCAMLib")
    ap.add_argument("--tool", default="ball-6mm", help="finishing tool (ball or bull)")
    ap.add_argument("--before", metavar="REV",
                    help="also time finish.py + dropcutter.py as at git REV (same run)")
    ap.add_argument("--job", type=Path, help="plan + solve a whole draft job for DESIGN")
    ap.add_argument("--stock", default=None)
    ap.add_argument("--out", type=Path, default=Path("/tmp/bench_cam_job"))
    a = ap.parse_args()
    if a.job is not None:
        bench_job(a.job, a.stock, a.out)
        return
    m = load(a.mesh)
    print(f"mesh {a.mesh.name}: {len(m.faces)} triangles, {np.round(m.extents, 1)} mm")
    label = f"finish (8 side bands + top, {a.tool}, 0.25 mm sampling, scallop 0.2 mm)"
    MeshQuery(m)  # open3d imported before the timed runs
    if a.before:
        b = bench_finish(m, a.tool, finish_at(a.before))
        print(f"{label} at {a.before}: {b['finish_s']:.1f} s wall ({b['cpu_s']:.1f} s CPU), "
              f"{b['moves']} moves")
    r = bench_finish(m, a.tool)
    print(f"{label}: "
          f"{r['finish_s']:.1f} s wall ({r['cpu_s']:.1f} s CPU), {r['cl_points']} CL points, "
          f"{r['moves']} moves, "
          f"stepover {r['stepover_mm']:.2f} mm  (target < 30 s)")
    if a.before:
        print(f"largest move difference to {a.before}: "
              f"{max_move_difference(r['passes'], b['passes']):.3g} mm")
    if a.finish_only:
        return
    o = bench_ocl(m)
    print(f"3-axis drop-cutter, {o['points']} points: sculptor {o['ours_s']:.2f} s "
          f"({o['ours_pts_s']:.0f} pts/s), OpenCAMLib BatchDropCutter {o['ocl_s']:.2f} s "
          f"({o['ocl_pts_s']:.0f} pts/s, {o['ocl_threads']} threads): ratio "
          f"{o['ratio']:.1f}x (target >= 10x)")
    print(f"CL height difference on continuous regions ({o['continuous_share']:.1%} of "
          f"contact points): max {o['max_diff_mm']:.2e} mm, p99 {o['p99_diff_mm']:.2e} mm "
          "(target <= 0.05 mm)")


if __name__ == "__main__":
    main()
