"""`sculptor sim JOB`: carve the job virtually, check the robot, write the report and preview.

Reads ``JOB/job.json`` (toolpath), the design mesh and ``JOB/program.json`` (robot program;
made with :func:`sculptor.robot.solve_program` when missing) and writes ``JOB/sim/``
atomically (a run that is interrupted leaves the previous ``JOB/sim`` as it was; the next
run starts over cleanly).
"""

from __future__ import annotations

import math
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import trimesh

from sculptor.artifacts.core import (Provenance, atomic_output_dir, atomic_write_mesh,
                                     atomic_write_text, sha256_file, warn)
from sculptor.artifacts.program import RobotProgram
from sculptor.artifacts.sim_report import FailedMove, SimReport
from sculptor.artifacts.toolpath import MoveKind, Toolpath
from sculptor.errors import UserError
from sculptor.profiles import CellProfile, RotaryTool, load_cell, load_robot, load_tool
from sim import carve as carve_mod
from sim import dexel
from sim.deviation import DEFAULT_TOLERANCE_MM, DesignDistance, carved_mesh, deviation_figures, \
    smoothed

# a gouge is reported when the carved surface lies this much inside the design beyond
# what the grid can resolve (res / 2)
GOUGE_LIMIT_MM = 0.1
# a rapid move that clears more than this many voxels has driven through wood
RAPID_VOXELS_LIMIT = 4
MAX_FAILED_LISTED = 500


@dataclass
class SimJob:
    """Everything one simulation reads, validated."""

    job_dir: Path
    toolpath: Toolpath
    design: trimesh.Trimesh
    cell: CellProfile
    tools: list  # per pass
    program: RobotProgram | None
    stock_mesh: trimesh.Trimesh | None = None
    notes: list[str] = field(default_factory=list)


def _load_mesh(path: Path, what: str) -> trimesh.Trimesh:
    if not path.is_file():
        raise UserError(f"{what} not found: {path}")
    try:
        m = trimesh.load(path, force="mesh")
    except Exception as e:  # trimesh raises many kinds on bad files
        raise UserError(f"{what} {path} cannot be read as a mesh ({e.__class__.__name__})")
    if not isinstance(m, trimesh.Trimesh) or len(m.faces) == 0:
        raise UserError(f"{what} {path} holds no triangles")
    return m


def load_job(job_dir: Path) -> SimJob:
    """Read and cross-check JOB/job.json, the design, the cell, tools and program."""
    job_dir = Path(job_dir)
    if not job_dir.is_dir():
        raise UserError(f"job directory not found: {job_dir} (make one with 'sculptor cam')")
    tp = Toolpath.load(job_dir / "job.json")
    if tp.n_moves == 0:
        raise UserError(f"{job_dir}/job.json has no moves; re-run 'sculptor cam'")
    for i, p in enumerate(tp.passes):
        if not (np.isfinite(p.position_mm).all() and np.isfinite(p.tool_frame).all()):
            raise UserError(f"{job_dir}/job.json pass {i} ({p.name}) holds non-finite moves")
    cell = load_cell(tp.cell)
    if cell.machine != tp.machine:
        raise UserError(f"job.json is a {tp.machine} job but cell {cell.name} is a "
                        f"{cell.machine} cell; re-run 'sculptor cam' for this cell")
    tools = [load_tool(p.tool_id) for p in tp.passes]
    design_path = job_dir / "design.stl"
    if not design_path.is_file():
        design_path = Path(tp.design) if Path(tp.design).is_absolute() else job_dir / tp.design
    design = _load_mesh(design_path, "design mesh")
    stock_mesh = None
    if tp.stock.kind == "mesh":
        sp = Path(tp.stock.mesh or "")
        stock_mesh = _load_mesh(sp if sp.is_absolute() else job_dir / sp, "stock mesh")
    sj = SimJob(job_dir, tp, design, cell, tools, None, stock_mesh)
    if tp.machine == "robot":
        sj.program = _load_program(job_dir, tp, cell, tools)
    return sj


def _load_program(job_dir: Path, tp: Toolpath, cell: CellProfile, tools) -> RobotProgram:
    path = job_dir / "program.json"
    if path.is_file():
        prog = RobotProgram.load(path)
        if prog.cell != tp.cell:
            raise UserError(f"{path} was made for cell '{prog.cell}' but job.json is for "
                            f"'{tp.cell}'; re-run 'sculptor post {job_dir}'")
        if prog.robot != cell.robot:
            raise UserError(f"{path} is for robot '{prog.robot}' but cell '{cell.name}' has "
                            f"'{cell.robot}'; re-run 'sculptor post {job_dir}'")
        if prog.job_sha256 and prog.job_sha256 != sha256_file(job_dir / "job.json"):
            raise UserError(f"{path} was made from another job.json (it changed since); "
                            f"re-run 'sculptor post {job_dir}'")
        _check_program_shapes(prog, tp, path)
        return prog
    try:
        from sculptor.robot import solve_program
    except ImportError:
        raise UserError(f"{path} is missing and this sculptor cannot plan it; run "
                        f"'sculptor post {job_dir}' first")
    warn(f"{path.name} missing: solving the robot program now (sculptor post would save it)")
    return solve_program(tp, cell, None)


def _check_program_shapes(prog: RobotProgram, tp: Toolpath, path: Path) -> None:
    n = prog.n
    try:
        ok = (np.asarray(prog.joints_rad).shape == (n, 6)
              and np.asarray(prog.base_from_tcp).shape == (n, 4, 4)
              and all(len(np.asarray(getattr(prog, a))) == n for a in
                      ("turntable_rad", "move_kind", "feed_mm_s", "config", "valid"))
              and np.asarray(prog.source_index).shape == (n, 2))
    except TypeError:
        ok = False
    if not ok or n == 0:
        raise UserError(f"{path} is malformed or empty; re-run 'sculptor post'")
    si = np.asarray(prog.source_index)
    if si[:, 0].max() >= len(tp.passes) or si[:, 0].min() < 0:
        raise UserError(f"{path} refers to passes job.json does not have; re-run 'sculptor post'")


def _clean_stale(job_dir: Path) -> None:
    """Remove temp dirs left by a run that was killed (atomic_output_dir's .sim.*.tmp)."""
    for p in job_dir.glob(".sim.*.tmp"):
        shutil.rmtree(p, ignore_errors=True)


# ------------------------------------------------------------------------------ main
def run_simulation(job_dir: Path, res_mm: float = 0.5, progress: bool = True,
                   tolerance_mm: float = DEFAULT_TOLERANCE_MM,
                   engine: Literal["auto", "voxel"] = "auto") -> SimReport:
    """Simulate JOB and write ``JOB/sim/`` (carved.stl, report.json/.md, deviation.png,
    front/side/top.png, preview.html). Returns the report.

    engine "auto" carves fixed-axis rotary passes with sheared dexels (:mod:`sim.dexel`)
    and the rest with the voxel engine (:mod:`sim.carve`, the gouge along lines of voxel
    centres); "voxel" uses the voxel engine's block path for every pass (the reference
    both faster paths are tested against)."""
    from sim import preview, replay, stills

    job_dir = Path(job_dir)
    if not (isinstance(res_mm, (int, float)) and math.isfinite(res_mm) and res_mm > 0):
        raise UserError(f"--res-mm must be a positive number of millimetres, got {res_mm}")
    if not tolerance_mm > 0:
        raise UserError("tolerance must be positive")
    sj = load_job(job_dir)
    tp = sj.toolpath
    t0 = time.perf_counter()
    grid = carve_mod.stock_grid(tp, res_mm, sj.stock_mesh)  # refuses too large a grid
    stock_volume = grid.volume_mm3
    _clean_stale(job_dir)
    timings = {}

    # ---------------------------------------------------------------- carving
    # fixed-axis rotary passes (roughing): sheared dexels; others: the voxel engine
    axes = [dexel.pass_axis(p.tool_frame)
            if isinstance(t, RotaryTool) and engine == "auto" else None
            for p, t in zip(tp.passes, sj.tools)]
    cutters = [carve_mod.make_cutter(t, res_mm) for t in sj.tools]
    subs = [None if ax is not None else
            carve_mod.subdivide(p.position_mm, p.tool_frame, p.kind, c)
            for p, c, ax in zip(tp.passes, cutters, axes)]
    total = sum(p.n_moves if s is None else len(s.a) for p, s in zip(tp.passes, subs))
    removed_per_pass: list[np.ndarray] = []
    materials: list | None = [] if sj.program is not None else None
    with _progress(progress) as bar:
        task = bar.add_task("carving", total=total) if bar else None
        for i, (p, s, c, ax) in enumerate(zip(tp.passes, subs, cutters, axes)):
            cb = (lambda k: bar.advance(task, k)) if bar else None
            if ax is not None:
                rem = dexel.carve_pass_dexel(grid, p.position_mm, p.kind, ax, sj.tools[i], cb)
            else:
                rem = carve_mod.carve_pass(grid, s, c, p.n_moves, cb, method=engine)
            removed_per_pass.append(rem)
            if materials is not None:
                materials.append(replay.MaterialField.from_occupancy(
                    grid.as_numpy(), grid.origin, grid.res))
    timings["carve_s"] = round(time.perf_counter() - t0, 1)

    # ---------------------------------------------------------------- deviation
    t1 = time.perf_counter()
    occ = grid.as_numpy()
    # the figures come from the unsmoothed surface (exact to half a cell); the smoothed
    # one is for looking at (smoothing can pull a vertex far off at a non-manifold corner
    # of the voxel surface: once an 11 mm 'gouge' no tool came near)
    raw = carved_mesh(occ, grid.origin, grid.res, smooth=0)
    dist = DesignDistance(sj.design)
    d_raw = dist(raw.vertices) if len(raw.vertices) else np.zeros(0)
    rest_vox = rest_voxel_count(occ, grid.origin, grid.res, dist, tolerance_mm)
    material = deviation_figures(raw, d_raw, rest_vox, grid.res, tolerance_mm)
    mesh = smoothed(raw)
    d = dist(mesh.vertices) if len(mesh.vertices) else np.zeros(0)
    if len(d_raw):  # a smoothing spike is not a gouge: colours stay within what was measured
        d = np.clip(d, d_raw.min(), d_raw.max())
    material["carve_engine_per_pass"] = ["dexel" if ax is not None else "voxel" for ax in axes]
    material["stock_volume_mm3"] = round(stock_volume, 1)
    material["carved_volume_mm3"] = round(grid.volume_mm3, 1)
    material["removed_volume_mm3"] = round(stock_volume - grid.volume_mm3, 1)
    material["design_volume_mm3"] = round(float(sj.design.volume), 1) \
        if sj.design.is_watertight else None
    timings["deviation_s"] = round(time.perf_counter() - t1, 1)

    reasons: list[str] = []
    warnings: list[str] = []
    failed: list[FailedMove] = []
    move_status = [np.zeros(p.n_moves, np.int8) for p in tp.passes]
    gouge_limit = GOUGE_LIMIT_MM + grid.res / 2
    material["gouge_limit_mm"] = round(gouge_limit, 3)
    if material.get("max_gouge_mm") is not None and material["max_gouge_mm"] > gouge_limit:
        reasons.append(f"the carved surface cuts {material['max_gouge_mm']:.2f} mm into the "
                       f"design (limit {gouge_limit:.2f} mm at this resolution)")
    if material.get("rest_max_mm") is not None and material["rest_max_mm"] > tolerance_mm:
        warnings.append(f"rest material up to {material['rest_max_mm']:.1f} mm "
                        f"({material['rest_volume_above_tol_mm3'] / 1000:.1f} cm3 above the "
                        f"{tolerance_mm} mm tolerance)")
    rapid_hits = 0
    for pi, (p, rem) in enumerate(zip(tp.passes, removed_per_pass)):
        bad = (p.kind == int(MoveKind.RAPID)) & (rem > RAPID_VOXELS_LIMIT * grid.res ** 3)
        for mi in np.nonzero(bad)[0]:
            failed.append(FailedMove(pass_index=pi, move_index=int(mi),
                                     reason=f"rapid move through material "
                                            f"({rem[mi] / 1000:.2f} cm3)"))
        move_status[pi][bad] = replay.COLLIDING
        rapid_hits += int(bad.sum())
    material["rapid_moves_through_material"] = rapid_hits
    if rapid_hits:
        reasons.append(f"{rapid_hits} rapid moves drive through material")

    # ---------------------------------------------------------------- robot
    robot_fig: dict = {}
    cycle = None
    rr = None
    if sj.program is not None:
        t2 = time.perf_counter()
        prog = sj.program
        robot = load_robot(prog.robot)
        rr = replay.replay(prog, robot, sj.cell, sj.tools, materials)
        robot_fig = rr.figures
        cycle = robot_fig.get("cycle_time_s")
        reasons += rr.nogo
        warnings += rr.warnings
        si = np.asarray(prog.source_index).reshape(-1, 2)
        for pi in range(len(tp.passes)):
            sel = si[:, 0] == pi
            mi = np.clip(si[sel, 1], 0, tp.passes[pi].n_moves - 1)
            np.maximum.at(move_status[pi], mi, rr.status[sel])
        for tgt, why in rr.fails:
            failed.append(FailedMove(pass_index=int(si[tgt, 0]), move_index=int(si[tgt, 1]),
                                     reason=why, target=int(tgt)))
        timings["robot_s"] = round(time.perf_counter() - t2, 1)
    else:
        warnings.append(f"{tp.machine} job: no robot program to replay (cell travel is "
                        "checked by the CNC post)")
    reason_counts: dict[str, int] = {}
    where: dict[str, list[tuple[int, int]]] = {}
    for f in failed:
        key = f.reason.split(" (")[0]
        reason_counts[key] = reason_counts.get(key, 0) + 1
        where.setdefault(key, []).append((f.pass_index, f.move_index))
    robot_fig["failed_moves_by_reason"] = reason_counts
    robot_fig["failed_move_ranges_by_reason"] = {k: move_ranges(v, tp)
                                                 for k, v in where.items()}
    robot_fig["failed_moves_total"] = len(failed)
    robot_fig["timings_s"] = timings

    rep = SimReport(
        provenance=Provenance.make(
            "sculptor sim", {"res_mm": res_mm, "tolerance_mm": tolerance_mm},
            {"job": job_dir / "job.json", "program": job_dir / "program.json"}),
        go=not reasons, reasons=reasons, warnings=warnings, res_mm=float(res_mm), material=material,
        robot=robot_fig, cycle_time_s=cycle, failed_moves=failed[:MAX_FAILED_LISTED],
        files={})

    # ---------------------------------------------------------------- outputs
    with atomic_output_dir(job_dir / "sim") as out:
        files = {"carved": "carved.stl", "report": "report.json", "summary": "report.md",
                 "deviation": "deviation.png", "preview": "preview.html",
                 "front": "front.png", "side": "side.png", "top": "top.png"}
        rep.files = files
        atomic_write_mesh(out / files["carved"], mesh)
        # the stills show the measured surface (their gouge label is the report's figure)
        stills.write_stills(out, raw, d_raw, tolerance_mm, gouge_limit, tp, move_status, rep)
        preview.write_preview(out / files["preview"], sj, mesh, d, tolerance_mm, move_status,
                              rr, rep, grid, dist)
        rep.save(out / files["report"])
        atomic_write_text(out / files["summary"], report_markdown(rep))
    return rep


def move_ranges(moves: list[tuple[int, int]], tp: Toolpath, limit: int = 5) -> list[str]:
    """(pass, move) pairs -> the first ``limit`` runs as 'pass P (name) moves a-b', and
    how many more runs follow."""
    runs: list[list[int]] = []
    for pi, mi in sorted(set(moves)):
        if runs and runs[-1][0] == pi and runs[-1][2] == mi - 1:
            runs[-1][2] = mi
        else:
            runs.append([pi, mi, mi])
    out = [f"pass {pi} ({tp.passes[pi].name}) move{'s' if a != b else ''} "
           f"{a if a == b else f'{a}-{b}'}" for pi, a, b in runs[:limit]]
    if len(runs) > limit:
        out.append(f"and {len(runs) - limit} more runs")
    return out


def rest_voxel_count(occ: np.ndarray, origin: np.ndarray, res: float, dist: DesignDistance,
                     tol: float, block: int = 4) -> int:
    """Material voxels (occ (nx, ny, nz) bool) whose centre lies more than ``tol`` outside
    the design. Exact: the signed distance changes by at most the distance moved, so a
    block of block^3 voxels whose centre is further than its half diagonal from ``tol`` is
    decided as a whole; only the voxels of the other blocks are queried one by one."""
    pads = [(0, (-n) % block) for n in occ.shape]
    v = np.pad(occ, pads)
    cx, cy, cz = (n // block for n in v.shape)
    counts = v.reshape(cx, block, cy, block, cz, block).sum((1, 3, 5))
    bi = np.argwhere(counts > 0)
    if len(bi) == 0:
        return 0
    o = np.asarray(origin, float)
    dc = dist(o + (bi * block + block / 2) * res)
    half = (block - 1) / 2 * res * math.sqrt(3)
    total = int(counts[tuple(bi[dc - half > tol].T)].sum())
    amb = bi[np.abs(dc - tol) <= half]
    for s0 in range(0, len(amb), 50_000):
        b = amb[s0:s0 + 50_000]
        off = np.argwhere(np.ones((block,) * 3, bool))  # (block^3, 3)
        ijk = (b[:, None, :] * block + off[None]).reshape(-1, 3)
        keep = v[ijk[:, 0], ijk[:, 1], ijk[:, 2]]
        total += int((dist(o + (ijk[keep] + 0.5) * res) > tol).sum())
    return total


class _NoBar:
    def __enter__(self):
        return None

    def __exit__(self, *a):
        return False


def _progress(enabled: bool):
    if not enabled:
        return _NoBar()
    from rich.progress import BarColumn, Progress, TimeRemainingColumn

    return Progress("[progress.description]{task.description}", BarColumn(),
                    "{task.percentage:>3.0f}%", TimeRemainingColumn(), transient=True)


def report_markdown(rep: SimReport) -> str:
    """Short, readable summary of a report."""
    m, r = rep.material, rep.robot
    lines = [f"# Simulation: {'GO' if rep.go else 'NO-GO'}", ""]
    if rep.reasons:
        lines += ["Why not:"] + [f"- {x}" for x in rep.reasons] + [""]
    if rep.warnings:
        lines += ["Warnings:"] + [f"- {x}" for x in rep.warnings] + [""]
    lines += ["| figure | value |", "|---|---|",
              f"| grid | {rep.res_mm} mm |",
              f"| max gouge (limit) | {m.get('max_gouge_mm')} mm ({m.get('gouge_limit_mm')} mm) |",
              f"| rest material max / p95 | {m.get('rest_max_mm')} / {m.get('rest_p95_mm')} mm |",
              f"| rest volume above {m.get('tolerance_mm')} mm | "
              f"{(m.get('rest_volume_above_tol_mm3') or 0) / 1000:.1f} cm3 |",
              f"| mean / p99 abs deviation | {m.get('mean_abs_mm')} / {m.get('p99_abs_mm')} mm |",
              f"| area within tolerance | {100 * (m.get('area_within_tol_ratio') or 0):.1f} % |",
              f"| removed volume | {(m.get('removed_volume_mm3') or 0) / 1000:.0f} cm3 |"]
    if rep.cycle_time_s is not None:
        lines += [f"| cycle time | {rep.cycle_time_s / 60:.1f} min |",
                  f"| configuration changes (in cut) | {r.get('configuration_changes')} "
                  f"({r.get('configuration_changes_in_cut')}) |",
                  f"| max joint speed at feed | {r.get('max_joint_speed_ratio_at_feed')} x limit |",
                  f"| targets ok / near / unreachable / colliding | {r.get('targets_ok')} / "
                  f"{r.get('targets_near_limit')} / {r.get('targets_unreachable')} / "
                  f"{r.get('targets_colliding')} |"]
        jm = r.get("joint_limit_margin_deg") or {}
        if jm:
            lines.append("| joint limit margin | " + ", ".join(f"{k} {v}" for k, v in jm.items())
                         + " deg |")
        sm = r.get("singularity_margin") or {}
        if sm:
            lines.append("| singularity margin | " + ", ".join(f"{k} {v}" for k, v in sm.items())
                         + " |")
    if rep.failed_moves:
        lines += ["", "Where it fails (runs of moves per reason):"]
        for key, n in (r.get("failed_moves_by_reason") or {}).items():
            runs = (r.get("failed_move_ranges_by_reason") or {}).get(key, [])
            lines.append(f"- {key}: {n} moves; " + "; ".join(runs))
        lines += ["", f"Failing moves ({r.get('failed_moves_total')}, first 10; all in "
                  "report.json):"]
        lines += [f"- pass {f.pass_index} move {f.move_index}: {f.reason}"
                  for f in rep.failed_moves[:10]]
    lines += ["", "Files: " + ", ".join(rep.files.values()), ""]
    return "\n".join(lines)
