"""`plan_job`: design mesh -> roughing + finishing toolpath job directory.

JOB/job.json + job.npz  the Toolpath artifact (passes of moves)
JOB/summary.json        per pass and total: lengths, time, air-cut share, strokes, checks
JOB/toolpath.png        the passes over a render of the design
JOB/design.stl          the design as planned (piece frame), for the simulator and post
"""

from __future__ import annotations

import json
import math
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sculptor.artifacts.core import Provenance, atomic_output_dir, atomic_write_json, \
    atomic_write_mesh, sha256_file, warn
from sculptor.artifacts.toolpath import StockSpec, Toolpath
from sculptor.errors import UserError
from sculptor.profiles import GougeTool, load_cell, load_tool

QUALITIES = ("draft", "fine")


@dataclass(frozen=True)
class Quality:
    """Resolution knobs of one quality level (mm)."""

    voxel_mm: float        # stock model voxels
    rough_grid_mm: float   # roughing drop-cutter grid
    simplify_mm: float     # path simplification tolerance
    row_mm: float          # gouge: surface sampling along a column
    stroke_step_mm: float  # gouge: TCP spacing along a stroke
    sample_mm: float       # ball finishing: sampling along a raster line
    n_bands: int           # side bands for finishing
    candidate_step_deg: float
    max_layers: int        # gouge: most stroke layers over rest stock (deeper: left)
    rough_stepover: float  # roughing step-over, fraction of the tool diameter

    @classmethod
    def named(cls, name: str) -> "Quality":
        if name == "draft":
            return cls(6.0, 4.0, 0.5, 2.0, 5.0, 0.5, 6, 45.0, 4, 0.8)
        if name == "fine":
            return cls(3.0, 1.5, 0.05, 1.0, 2.5, 0.25, 8, 30.0, 8, 0.6)
        raise UserError(f"unknown --quality '{name}'; use one of {', '.join(QUALITIES)}")


def _grain(grain: str) -> np.ndarray:
    g = {"x": (1.0, 0, 0), "y": (0, 1.0, 0), "z": (0, 0, 1.0)}.get(str(grain).lower())
    if g is None:
        raise UserError(f"--grain '{grain}' must be x, y or z (the direction of the fibres)")
    return np.array(g)


def _progress(enabled: bool):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("{task.description}"), BarColumn(), TextColumn(
        "{task.completed}/{task.total}"), TimeElapsedColumn(), disable=not enabled,
        transient=False)


def plan_job(design: Path, out: Path, tool: str = "gouge-12mm", rough_tool: str | None = None,
             cell: str = "kuka-kr6-r900-turntable", stock: str | None = None,
             stock_mesh: Path | None = None, grain: str = "z", scallop_mm: float = 0.2,
             progress: bool = True, quality: str = "fine", min_setups: int = 4,
             side_tilts_deg: tuple[float, ...] = (0.0, 45.0)) -> Toolpath:
    """Plan roughing and finishing for ``design`` and write the job directory ``out``.

    tool : finishing tool profile (gouge or ball/bull); rough_tool : roughing tool
    (default: the cell's ``default_rough_tool``; ``"none"`` skips roughing).
    stock : "XxYxZ" box in mm (default: the cell's stock) or stock_mesh : a closed mesh in
    the piece frame. grain : fibre direction x|y|z. scallop_mm : target cusp height.
    quality : "fine" or "draft" (coarser grids and sampling, for previews and tests).
    min_setups : fewest roughing setups on a turntable cell. side_tilts_deg : side roughing
    candidates at each of these tilts (deg, tool pointing down from horizontal); on a robot
    cell every move is kept within the arm's reach (``sculptor.cam.reach``).
    Returns the Toolpath written to ``out/job.json``.
    """
    from sculptor.cam import finish as rotary_finish
    from sculptor.cam import gouge as gouge_finish
    from sculptor.cam.bands import Bands
    from sculptor.cam.geometry import MeshQuery, check_fits, load_design, parse_stock
    from sculptor.cam.picture import draw_job
    from sculptor.cam.reach import ReachCheck
    from sculptor.cam.rough import Roughing, candidate_setups
    from sculptor.cam.stock import StockModel
    from sculptor.cam.summary import air_share, gouge_tool_check, rotary_gouge_check, \
        summarize

    t0 = time.perf_counter()
    if not (isinstance(scallop_mm, (int, float)) and math.isfinite(scallop_mm)
            and scallop_mm > 0):
        raise UserError(f"--scallop-mm must be a positive number of mm, got {scallop_mm}")
    if scallop_mm > 5:
        raise UserError(f"--scallop-mm {scallop_mm} is more than 5 mm; that is roughing, "
                        "not a finish (typical: 0.1 to 0.5)")
    if min_setups < 1:
        raise UserError("min_setups must be at least 1")
    q = Quality.named(quality)
    g = _grain(grain)
    cellp = load_cell(cell)
    ftool = load_tool(tool)
    rname = rough_tool if rough_tool is not None else cellp.default_rough_tool
    rtool = None if rname in (None, "none") else load_tool(rname)
    if cellp.machine == "cnc3" and isinstance(ftool, GougeTool):
        raise UserError(f"cell '{cell}' is a 3-axis router: it cannot hold gouge '{tool}'; "
                        "use a ball tool (e.g. --tool ball-6mm) or a robot cell")
    if cellp.machine == "cnc3" and isinstance(rtool, GougeTool):
        raise UserError(f"cell '{cell}' is a 3-axis router; roughing tool '{rname}' is a "
                        "gouge; use a flat or bull cutter")
    design_path = Path(design)
    mesh = load_design(design_path)
    stk = parse_stock(stock, stock_mesh, cellp.default_stock_mm)
    check_fits(mesh, stk, 0.0)
    if cellp.machine == "cnc3":
        warn("3-axis router: only what is visible from the top is cut (no undercuts)")
    robot_dir = (-1.0, 0.0, 0.0)
    if cellp.turntable is not None:
        rb = np.asarray(cellp.world_from_robot_base.xyz_mm[:2], float)
        tt = np.asarray(cellp.turntable.world_from_turntable.xyz_mm[:2], float)
        if np.linalg.norm(rb - tt) > 1e-6:
            robot_dir = (*(rb - tt) / np.linalg.norm(rb - tt), 0.0)

    query = MeshQuery(mesh)
    passes, air = [], []
    report: dict = {}
    with _progress(progress) as prog:
        smodel = StockModel(stk, query, q.voxel_mm)
        report["stock_volume_mm3"] = round(smodel.volume_mm3, 0)
        if rtool is not None:
            allowance = (min(1.0, 0.6 * ftool.max_chip_depth_mm) if isinstance(ftool, GougeTool)
                         else 0.5)
            rough = Roughing(query, smodel, rtool, allowance_mm=allowance,
                             grid_mm=q.rough_grid_mm, simplify_mm=q.simplify_mm,
                             robot_dir=robot_dir, reach=ReachCheck(cellp, rtool, margin_deg=5.0,
                                                               table_window_deg=0.0),
                             stepover_frac=q.rough_stepover)
            cands = candidate_setups(cellp.machine, np.radians(side_tilts_deg),
                                     q.candidate_step_deg, robot_dir)
            ns = min(min_setups, len(cands))
            task = prog.add_task("roughing: choosing setups", total=len(cands))
            for s in cands:
                rough.cl(s)
                prog.advance(task)
            chosen = rough.choose(cands, ns, max(ns, 8))
            task = prog.add_task("roughing: planning setups", total=len(chosen))
            for i, s in enumerate(chosen):
                before = smodel.material.copy()
                p = rough.plan_setup(s, i)
                now = smodel.material.copy()
                smodel.material[:] = before
                air.append(air_share(p, smodel, rough.radius))
                smodel.material[:] = now
                p.stats.update(gouge_tool_check(p, query, rtool)
                               if isinstance(rtool, GougeTool) else
                               rotary_gouge_check(p, query, rtool, allowance))
                passes.append(p)
                prog.advance(task)
            report["roughing"] = {"tool": rtool.name, "allowance_mm": allowance,
                                  "setups_deg": [round(math.degrees(s.turntable_rad), 1)
                                                 for s in chosen],
                                  "setups": [s.name for s in chosen]}
        else:
            allowance = 0.0
        report["rest_stock_after_roughing_mm3"] = round(smodel.volume_mm3, 0)
        bands = Bands(q.n_bands, robot_dir, cellp.machine)
        if isinstance(ftool, GougeTool):
            spacing = gouge_finish.stroke_spacing(ftool, scallop_mm)
            task = prog.add_task("finishing: tracing strokes", total=len(bands))
            strokes, short = gouge_finish.plan_strokes(
                query, bands, ftool, g, spacing, q.row_mm, q.stroke_step_mm,
                on_band=lambda: prog.advance(task))
            task = prog.add_task("finishing: gouge check", total=len(strokes))
            n_check = [len(strokes)]

            def across(k, pts):  # strokes across the grain, counted in the progress bar
                extra = gouge_finish.across_strokes(query, bands, k, ftool, spacing,
                                                    q.row_mm, q.stroke_step_mm, pts)
                n_check[0] += len(extra)
                prog.update(task, total=n_check[0])
                return extra

            fp, frep = gouge_finish.finish_passes(
                query, smodel, bands, ftool, strokes, progress=lambda: prog.advance(task),
                max_layers=q.max_layers, reach=ReachCheck(cellp, ftool, margin_deg=3.0),
                across=across)
            frep["stroke_spacing_mm"] = round(spacing, 3)
            frep["too_short_area_mm2"] = round(short, 0)
            unreach = np.asarray(frep.pop("unreachable_points"), float).reshape(-1, 3)
            frep["unreachable"] = _regions(unreach)
            unsafe = np.asarray(frep.pop("no_safe_route_points"), float).reshape(-1, 3)
            frep["no_safe_route_points"] = len(unsafe)
            frep["left_no_safe_route"] = _regions(unsafe)
            deep = np.asarray(frep.pop("too_deep_points"), float).reshape(-1, 3)
            frep["left_for_rest_roughing"] = _regions(deep)
        else:
            task = prog.add_task("finishing: raster bands", total=len(bands))
            fp, frep = rotary_finish.finish_passes(
                query, bands, ftool, scallop_mm=scallop_mm, sample_mm=q.sample_mm,
                simplify_mm=min(q.simplify_mm, scallop_mm / 4),
                progress=lambda: prog.advance(task))
            worst = 0.0
            for p in fp:
                p.stats.update(rotary_gouge_check(p, query, ftool, 0.0))
                worst = max(worst, p.stats["max_gouge_mm"])
            frep["max_gouge_mm"] = worst
        for p in fp:
            air.append(air_share(p, smodel, 3.0))
        passes.extend(fp)
        report["finishing"] = frep
        down = query.mesh.face_normals[:, 2] < -bands.top_cos
        report["finishing"]["facing_down_area_mm2"] = round(float(
            query.mesh.area_faces[down].sum()), 0)

    if not passes or sum(p.n_moves for p in passes) == 0:
        raise UserError("no toolpath could be planned (the tool reaches none of the design); "
                        "check the tool and the cell")
    tp = Toolpath(
        provenance=Provenance.make("sculptor cam", {
            "tool": tool, "rough_tool": rname, "cell": cell, "stock": stock,
            "stock_mesh": stock_mesh, "grain": grain, "scallop_mm": scallop_mm,
            "quality": quality, "min_setups": min_setups,
            "side_tilts_deg": list(side_tilts_deg)},
            {"design": design_path}),
        design=str(design_path), design_sha256=sha256_file(design_path), cell=cellp.name,
        machine=cellp.machine,
        stock=StockSpec(kind=stk.kind, size_mm=list(stk.size_mm) if stk.size_mm else None,
                        mesh=stk.path),
        passes=passes)
    max_gouge = max([float(p.stats.get("max_gouge_mm", 0.0)) for p in passes if
                     p.operation == "finish"] + [float(report["finishing"].get(
                         "max_gouge_mm", 0.0))])
    summary = summarize(passes, air, cellp.turntable, {
        "design": str(design_path), "tool": ftool.name,
        "rough_tool": rtool.name if rtool else None, "cell": cellp.name,
        "quality": quality, "max_gouge_mm": round(max_gouge, 4),
        "gouge_free": max_gouge <= 0.02, **report,
        "planning_time_s": None})
    with atomic_output_dir(out) as tmp:
        atomic_write_mesh(tmp / "design.stl", mesh)
        tp.save(tmp / "job.json")
        draw_job(tmp / "toolpath.png", mesh, passes)
        summary["planning_time_s"] = round(time.perf_counter() - t0, 1)
        atomic_write_json(tmp / "summary.json", _clean(summary))
    return tp


def _regions(points: np.ndarray, link_mm: float = 15.0) -> list[dict]:
    """Cluster unreachable points into regions (centre, size, count), largest first."""
    if len(points) == 0:
        return []
    from scipy.cluster.hierarchy import fcluster, linkage

    pts = points
    if len(pts) > 3000:
        pts = pts[np.random.default_rng(0).choice(len(pts), 3000, replace=False)]
    lab = fcluster(linkage(pts, "single"), link_mm, "distance") if len(pts) > 1 else [1]
    out = []
    for c in np.unique(lab):
        p = pts[np.asarray(lab) == c]
        out.append({"centre_mm": np.round(p.mean(0), 1).tolist(),
                    "size_mm": np.round(p.max(0) - p.min(0), 1).tolist(), "points": len(p)})
    return sorted(out, key=lambda r: -r["points"])[:20]


def _clean(o):
    if isinstance(o, dict):
        return {str(k): _clean(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [_clean(v) for v in o]
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


del json, shutil
