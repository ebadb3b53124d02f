"""Rotary finishing (ball / bull on a spindle): banded 3+2 raster by exact drop-cutter.

Each band (see bands.py) is a fixed tool direction -f_k (the turntable turns f_k to the
robot; on a 3-axis router there is only the top band). In the band frame the cutter is
dropped on raster lines along u (``sample_mm`` apart along the line, lines ``stepover``
apart); a CL point is kept if its contact normal (the normal of the CL surface, an offset
of the design) belongs to the band, so every part of the surface is finished from the
direction that faces it best. Holder clearance is part of the CL (tip >= holder drop -
stick-out).

Step-over from the scallop height h and the surface curvature: cusps between two ball
passes of radius R, w apart, on a surface of curvature k (convex > 0) are
h ~ w^2 / 8 (1/R + k), so w = sqrt(8 h / (1/R + k)), with k the 90th percentile of the
design's convex curvature; lines are packed closer by the band's largest slope across
them (cos 53 deg on side bands, cos 37 deg on top) so the surface spacing stays <= w.
Lines are simplified (shapely, ``simplify_mm``) before they become moves.
"""

from __future__ import annotations

import math

import numpy as np

from sculptor.artifacts.toolpath import MoveKind, Pass
from sculptor.cam.dropcutter import drop_cutter, holder_floor
from sculptor.cam.moves import MoveList, rotary_frame
from sculptor.cam.rough import tool_cutter

CLEAR_MM = 3.0


def convex_curvature(mesh, q: float = 90.0) -> float:
    """The ``q``th percentile of the convex curvature (1/mm) between adjacent faces."""
    ang = np.asarray(mesh.face_adjacency_angles)
    cvx = np.asarray(mesh.face_adjacency_convex)
    c = np.asarray(mesh.triangles_center)[np.asarray(mesh.face_adjacency)]
    dist = np.linalg.norm(c[:, 0] - c[:, 1], axis=1)
    k = ang / np.maximum(dist, 1e-6)
    k = k[cvx & (dist > 0)]
    return float(np.percentile(k, q)) if len(k) else 0.0


def ball_stepover(radius_mm: float, scallop_mm: float, curvature: float) -> float:
    return math.sqrt(8 * scallop_mm / (1 / radius_mm + max(curvature, 0.0)))


def band_cl(query, bands, k: int, tool, sample_mm: float, line_mm: float):
    """CL tips of band k on its raster. Returns (R, us (nx,), vs (ny,), cl (ny, nx),
    keep (ny, nx) bool, normals (ny, nx, 3) piece frame)."""
    R = bands.frame(k)
    v = query.vertices @ R.T
    lo, hi = v.min(0), v.max(0)
    pad = tool.radius_mm + sample_mm
    us = np.arange(lo[0] - pad, hi[0] + pad, sample_mm)
    vs = np.arange(lo[1] - pad + line_mm / 2, hi[1] + pad, line_mm)
    edges = query.adjacency.ball_edges(R) if tool.kind == "ball" else query.edges
    mask = _band_mask(query, bands, k, v, R, edges, tool, us, vs)
    cl = drop_cutter(v, query.faces, tool_cutter(tool), us, vs, edges, mask=mask)
    hold = holder_floor(v, query.faces, tool.holder.diameter_mm / 2 + 2.0, us, vs,
                        edges=query.edges) - tool.length_mm
    held = hold > cl + 1e-9
    cl = np.maximum(cl, hold)
    fin = np.isfinite(cl)
    c = np.where(fin, cl, np.nan)
    gu = np.gradient(c, sample_mm, axis=1) if c.shape[1] > 1 else np.zeros_like(c)
    gv = np.gradient(c, line_mm, axis=0) if c.shape[0] > 1 else np.zeros_like(c)
    ns = np.stack([-gu, -gv, np.ones_like(c)], -1)
    ns /= np.linalg.norm(ns, axis=-1, keepdims=True)
    n = ns @ R
    ok = fin & np.isfinite(n).all(-1) & ~held
    a = bands.assign(np.nan_to_num(n.reshape(-1, 3))).reshape(ok.shape)
    keep = ok & (a == k)
    return R, us, vs, cl, keep, n


def _band_mask(query, bands, k, v, R, edges, tool, us, vs, coarse_mm: float = 2.0):
    """(ny, nx) bool: grid points near where the band's surface lies, from a coarse drop
    (``coarse_mm`` grid) whose contact normals are assigned to the band, grown by two
    coarse cells; the fine drop is computed only there."""
    from scipy import ndimage

    cu = np.arange(us[0], us[-1] + coarse_mm, coarse_mm)
    cv = np.arange(vs[0], vs[-1] + coarse_mm, coarse_mm)
    c = drop_cutter(v, query.faces, tool_cutter(tool), cu, cv, edges)
    cc = np.where(np.isfinite(c), c, np.nan)
    gu = np.gradient(cc, coarse_mm, axis=1)
    gv = np.gradient(cc, coarse_mm, axis=0)
    ns = np.stack([-gu, -gv, np.ones_like(cc)], -1)
    ns /= np.linalg.norm(ns, axis=-1, keepdims=True)
    a = bands.assign(np.nan_to_num(ns @ R).reshape(-1, 3)).reshape(cc.shape)
    near = ndimage.binary_dilation(a == k, iterations=2)
    near |= ndimage.binary_dilation(np.isnan(gu) | np.isnan(gv), iterations=1) & \
        ndimage.binary_dilation(a == k, iterations=4)
    iu = np.clip(np.rint((us - cu[0]) / coarse_mm).astype(int), 0, len(cu) - 1)
    iv = np.clip(np.rint((vs - cv[0]) / coarse_mm).astype(int), 0, len(cv) - 1)
    return near[np.ix_(iv, iu)]


def finish_passes(query, bands, tool, *, scallop_mm: float, sample_mm: float,
                  simplify_mm: float, progress=None) -> tuple[list[Pass], dict]:
    from shapely.geometry import LineString

    curv = convex_curvature(query.mesh)
    w = ball_stepover(tool.corner_radius_mm if tool.kind != "flat" else 1e-3, scallop_mm,
                      curv)
    report = {"stepover_mm": w, "curvature_p90_per_mm": curv, "cl_points": 0}
    passes = []
    for k in range(len(bands)):
        if bands.machine == "cnc3" and k < bands.n_side:
            continue
        factor = 0.6 if k < bands.n_side else 0.8
        line = w * factor
        R, us, vs, cl, keep, _ = band_cl(query, bands, k, tool, sample_mm, line)
        report["cl_points"] += int(cl.size)
        theta = bands.turntable(k)
        f = bands.direction(k)
        frame = rotary_frame(f, R[0])
        ml = MoveList()
        top = float(np.nanmax(np.where(np.isfinite(cl), cl, np.nan))) + 20.0
        prev = None
        nlines = 0
        for j in range(len(vs)):
            row = keep[j]
            if not row.any():
                continue
            edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(int), [0]])))
            runs = list(zip(edges[::2], edges[1::2]))
            if nlines % 2:
                runs = [(b, a) for a, b in reversed(runs)]
            nlines += 1
            for a, b in runs:
                idx = np.arange(a, b) if a < b else np.arange(a - 1, b - 1, -1)
                if len(idx) < 2:
                    continue
                uh = np.column_stack([us[idx], cl[j, idx]])
                uh = np.asarray(LineString(uh).simplify(simplify_mm).coords)
                pts = np.column_stack([uh[:, 0], np.full(len(uh), vs[j]), uh[:, 1]])
                start = pts[0]
                if prev is None:
                    ml.add(np.array([[start[0], start[1], top]]) @ R, frame, tool.feed_mm_s,
                           MoveKind.RAPID, theta)
                else:
                    # travel above everything between the two points
                    ju = np.clip(np.rint((np.linspace(prev[0], start[0], 20) - us[0])
                                         / sample_mm).astype(int), 0, len(us) - 1)
                    jv = np.clip(np.rint((np.linspace(prev[1], start[1], 20) - vs[0])
                                         / line).astype(int), 0, len(vs) - 1)
                    lift = np.nanmax(np.where(np.isfinite(cl[jv, ju]), cl[jv, ju], -np.inf))
                    th = min(max(lift, prev[2], start[2]) + CLEAR_MM + tool.radius_mm, top)
                    ml.add(np.array([[prev[0], prev[1], th], [start[0], start[1], th]]) @ R,
                           frame, tool.feed_mm_s, MoveKind.RAPID, theta)
                ml.add(start[None] @ R, frame, tool.plunge_feed_mm_s, MoveKind.PLUNGE, theta)
                ml.add(pts[1:] @ R, frame, tool.feed_mm_s, MoveKind.CUT, theta)
                prev = pts[-1]
        if prev is None:
            continue
        ml.add(np.array([[prev[0], prev[1], top]]) @ R, frame, tool.feed_mm_s,
               MoveKind.RETRACT, theta)
        passes.append(ml.to_pass(
            name=f"finish-{bands.names[k]}", operation="finish", strategy="raster-3+2",
            tool_id=tool.name, setup_turntable_deg=math.degrees(theta),
            stats={"lines": nlines, "band": bands.names[k], "stepover_mm": line}))
        if progress:
            progress()
    return passes, report
