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
    keep = np.zeros_like(ok)
    keep[ok] = bands.assign(n[ok]) == k
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
        raster = raster_moves(us, vs, cl, keep, sample_mm=sample_mm, line_mm=line,
                              simplify_mm=simplify_mm, clear_mm=CLEAR_MM + tool.radius_mm)
        if raster is None:
            continue
        pos, kind, nlines = raster
        theta = bands.turntable(k)
        feed = np.where(kind == MoveKind.PLUNGE, tool.plunge_feed_mm_s, tool.feed_mm_s)
        ml = MoveList()
        ml.add(pos @ R, rotary_frame(bands.direction(k), R[0]), feed, kind, theta)
        passes.append(ml.to_pass(
            name=f"finish-{bands.names[k]}", operation="finish", strategy="raster-3+2",
            tool_id=tool.name, setup_turntable_deg=math.degrees(theta),
            stats={"lines": nlines, "band": bands.names[k], "stepover_mm": line}))
        if progress:
            progress()
    return passes, report


def raster_moves(us: np.ndarray, vs: np.ndarray, cl: np.ndarray, keep: np.ndarray, *,
                 sample_mm: float, line_mm: float, simplify_mm: float, clear_mm: float,
                 top_mm: float = 20.0):
    """Zig-zag raster moves over the kept CL points of one band, all rows at once.

    us (nx,), vs (ny,) the grid (band frame, ``sample_mm`` and ``line_mm`` apart), cl
    (ny, nx) tip heights,
    keep (ny, nx) bool. Each row with kept points is a line; lines alternate direction,
    each run of kept points (>= 2) is a cut, simplified (shapely, ``simplify_mm``).
    Between cuts the tool travels ``clear_mm`` above the highest CL on the straight line
    between them (20 samples), at most at the top (highest CL + ``top_mm``); it starts
    and ends at the top. Returns (positions (m, 3) band frame, kinds (m,) int8, lines)
    or None when nothing is kept."""
    import shapely

    rows = np.flatnonzero(keep.any(axis=1))
    if len(rows) == 0:
        return None
    nx = keep.shape[1]
    pad = np.zeros((len(rows), nx + 2), np.int8)
    pad[:, 1:-1] = keep[rows]
    rj, col = np.nonzero(np.diff(pad, axis=1))  # row-major: starts and ends alternate
    r, a, b = rj[::2], col[::2], col[1::2]  # run [a, b) on line r (index into rows)
    odd = (r % 2).astype(bool)
    # travel order: lines in turn, runs left to right, on odd lines right to left
    order = np.lexsort((np.where(odd, -a, a), r))
    r, a, b, odd = r[order], a[order], b[order], odd[order]
    long = b - a >= 2
    r, a, b, odd = r[long], a[long], b[long], odd[long]
    if len(r) == 0:
        return None
    n = b - a
    run = np.repeat(np.arange(len(n)), n)
    step = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n)
    i = np.where(odd[run], b[run] - 1 - step, a[run] + step)
    j = rows[r]
    z = cl[j[run], i]
    lines = shapely.linestrings(np.column_stack([us[i], z]), indices=run)
    xy, which = shapely.get_coordinates(shapely.simplify(lines, simplify_mm), return_index=True)
    cnt = np.bincount(which, minlength=len(n))
    first = np.cumsum(cnt) - cnt
    last = first + cnt - 1
    cut = np.column_stack([xy[:, 0], vs[j[which]], xy[:, 1]])
    top = float(np.nanmax(np.where(np.isfinite(cl), cl, np.nan))) + top_mm
    # travel between run q-1 and run q, above the CL on the straight line between them
    prev, start = cut[last[:-1]], cut[first[1:]]
    ju = np.clip(np.rint((np.linspace(prev[:, 0], start[:, 0], 20, axis=1) - us[0])
                         / sample_mm).astype(int), 0, len(us) - 1)
    jv = np.clip(np.rint((np.linspace(prev[:, 1], start[:, 1], 20, axis=1) - vs[0])
                         / line_mm).astype(int), 0, len(vs) - 1)
    c = cl[jv, ju]
    lift = np.max(np.where(np.isfinite(c), c, -np.inf), axis=1)
    th = np.minimum(np.maximum(np.maximum(lift, prev[:, 2]), start[:, 2]) + clear_mm, top)
    # moves of run q: travel (1 rapid to the top for the first, else 2 at th), plunge to
    # its start, cuts to the rest; then a retract to the top
    travel = np.full(len(n), 2)
    travel[0] = 1
    size = travel + cnt
    base = np.cumsum(size) - size
    m = int(size.sum()) + 1
    pos = np.empty((m, 3))
    kind = np.full(m, MoveKind.CUT, np.int8)
    pos[0] = [cut[0, 0], cut[0, 1], top]
    pos[base[1:]] = np.column_stack([prev[:, :2], th])
    pos[base[1:] + 1] = np.column_stack([start[:, :2], th])
    kind[0] = MoveKind.RAPID
    kind[base[1:]] = kind[base[1:] + 1] = MoveKind.RAPID
    at = np.repeat(base + travel - first, cnt) + np.arange(len(cut))
    pos[at] = cut
    kind[base + travel] = MoveKind.PLUNGE
    pos[-1] = [cut[-1, 0], cut[-1, 1], top]
    kind[-1] = MoveKind.RETRACT
    return pos, kind, len(rows)
