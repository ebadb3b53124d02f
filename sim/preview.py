"""`JOB/sim/preview.html`: one self-contained offline page.

The page's own code is ``sim/web/preview_template.html`` (ours). three.js comes from npm
(``sim/web/package.json``, installed by ``setup.sh`` into ``sim/web/node_modules``, never
committed) and is inlined base64 into each page, together with the scene data, so the
page loads nothing from the network. Without three.js installed the page falls back to
the PNG stills and the joint plot (and the CLI warns).
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np

from sculptor.artifacts.core import atomic_write_text, warn

WEB = Path(__file__).resolve().parent / "web"
THREE_JS = WEB / "node_modules" / "three" / "build" / "three.module.min.js"
TEMPLATE = WEB / "preview_template.html"
MAX_FACES = 80_000
MAX_PATH_POINTS = 60_000
MAX_FRAMES = 1_500


def three_source() -> str | None:
    """The three.js module source installed from npm, or None."""
    return THREE_JS.read_text("utf-8") if THREE_JS.is_file() else None


def _b64(a: np.ndarray, dtype) -> str:
    return base64.b64encode(np.ascontiguousarray(a, dtype=dtype).tobytes()).decode("ascii")


def preview_mesh(mesh, d: np.ndarray, grid, dist_fn, max_faces: int = MAX_FACES):
    """(vertices, faces, deviation per vertex) with at most ~max_faces faces: the carved
    surface re-extracted from a block-averaged grid when the full one is too heavy."""
    from sim.deviation import carved_mesh

    if len(mesh.faces) <= max_faces:
        return np.asarray(mesh.vertices), np.asarray(mesh.faces), d
    factor = int(math.ceil(math.sqrt(len(mesh.faces) / max_faces)))
    m = carved_mesh(grid.as_numpy(), grid.origin, grid.res, smooth=2, factor=factor)
    return np.asarray(m.vertices), np.asarray(m.faces), dist_fn(m.vertices)


def scene_data(sj, mesh, d, tol_mm, move_status, rr, rep, grid, dist_fn) -> dict:
    """Everything the page draws, as JSON-able data (typed arrays base64)."""
    from sim.replay import world_from_workpiece
    from sim.stills import deviation_colors, span_for

    v, f, dv = preview_mesh(mesh, d, grid, dist_fn) if len(mesh.faces) else (
        np.zeros((0, 3)), np.zeros((0, 3), int), np.zeros(0))
    col = deviation_colors(dv, tol_mm, span_for(tol_mm)) if len(dv) else np.zeros((0, 3))
    tp = sj.toolpath
    pos = np.concatenate([p.position_mm for p in tp.passes])
    st = np.concatenate(move_status).astype(np.int8)
    kind = np.concatenate([p.kind for p in tp.passes]).astype(np.int8)
    pid = np.concatenate([np.full(p.n_moves, i) for i, p in enumerate(tp.passes)])
    if len(pos) > MAX_PATH_POINTS:  # keep every problem point, thin the rest
        keep = st > 0
        keep[:: int(math.ceil(len(pos) / MAX_PATH_POINTS))] = True
        pos, st, kind, pid = pos[keep], st[keep], kind[keep], pid[keep]
    # a break in the polyline where a pass changes or points were thinned
    brk = np.zeros(len(pos), np.int8)
    brk[1:] = (pid[1:] != pid[:-1])
    lo = grid.origin
    hi = grid.origin + np.array(grid.shape) * grid.res
    data = {
        "verdict": "GO" if rep.go else "NO-GO", "reasons": rep.reasons,
        "warnings": rep.warnings,
        "figures": {"max gouge mm": rep.material.get("max_gouge_mm"),
                    "rest max mm": rep.material.get("rest_max_mm"),
                    "area within tol": rep.material.get("area_within_tol_ratio"),
                    "cycle time min": None if rep.cycle_time_s is None
                    else round(rep.cycle_time_s / 60, 1)},
        "tolerance_mm": tol_mm, "span_mm": span_for(tol_mm),
        "stock": {"lo": lo.tolist(), "hi": hi.tolist()},
        "carved": {"v": _b64(v, np.float32), "f": _b64(f, np.uint32), "c": _b64(col, np.float32)},
        "path": {"p": _b64(pos, np.float32), "s": _b64(st, np.int8), "k": _b64(kind, np.int8),
                 "b": _b64(brk, np.int8)},
        "cell": {"table_z": sj.cell.table_z_mm, "turntable": None},
        "robot": None,
    }
    if sj.cell.turntable is not None:
        wtt = sj.cell.turntable.world_from_turntable.matrix()
        data["cell"]["turntable"] = {"xyz": wtt[:3, 3].tolist(),
                                     "radius": sj.cell.turntable.radius_mm}
    if rr is not None and rr.link_points is not None and len(rr.link_points):
        prog = sj.program
        n = prog.n
        idx = np.unique(np.linspace(0, n - 1, min(n, MAX_FRAMES)).round().astype(int))
        tt = np.asarray(prog.turntable_rad, float)[idx]
        wfw = world_from_workpiece(sj.cell, tt)
        joints = np.degrees(np.asarray(prog.joints_rad, float)[idx])
        from sculptor.profiles import load_robot

        robot = load_robot(prog.robot)
        data["robot"] = {
            "n": int(len(idx)), "t": _b64(rr.time_s[idx], np.float32),
            "links": _b64(rr.link_points[idx], np.float32),  # (k, 8, 3) world
            "wfw": _b64(wfw, np.float32),  # (k, 4, 4) world_from_workpiece
            "joints_deg": _b64(joints, np.float32), "status": _b64(rr.status[idx], np.int8),
            "names": [j.name for j in robot.joints],
            "limits_deg": [[j.min_deg, j.max_deg] for j in robot.joints],
            "radii": [100, 80, 70, 60, 50, 45],
        }
    else:
        data["fixed_wfw"] = world_from_workpiece(sj.cell, np.zeros(1))[0].tolist() \
            if sj.cell.turntable is not None or sj.cell.world_from_workpiece is not None \
            else np.eye(4).tolist()
    return data


def write_preview(path: Path, sj, mesh, d, tol_mm, move_status, rr, rep, grid, dist_fn,
                  stills_dir: Path | None = None) -> Path:
    """Write the self-contained preview page to ``path``."""
    data = scene_data(sj, mesh, d, tol_mm, move_status, rr, rep, grid, dist_fn)
    three = three_source()
    if three is None:
        warn(f"three.js is not installed ({THREE_JS}); preview.html shows the stills only. "
             "Run 'cd sim/web && npm install' (setup.sh does it).")
        stills_dir = stills_dir or path.parent
        data["stills"] = {v: "data:image/png;base64," + base64.b64encode(
            (stills_dir / f"{v}.png").read_bytes()).decode("ascii")
            for v in ("front", "side", "top") if (stills_dir / f"{v}.png").is_file()}
    html = TEMPLATE.read_text("utf-8")
    three_b64 = base64.b64encode(three.encode("utf-8")).decode("ascii") if three else ""
    blob = json.dumps(data, separators=(",", ":")).replace("</", "<\\/")
    html = html.replace("__THREE_B64__", three_b64).replace("__SIM_DATA__", blob)
    return atomic_write_text(path, html)
