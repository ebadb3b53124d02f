"""Gouge finishing: strokes along the surface, the way the artist carves.

For each band (see bands.py) rays are cast at the surface along -f_k on a grid of columns
(u, across, ``spacing`` apart) and rows (w, along, ``row_mm`` apart). Each column's visible
hits that belong to the band form curves on the surface; they are cut where the surface
jumps and where the grain rule changes side, then into strokes of at most
``max_stroke_length_mm`` (shorter than ``min_stroke_length_mm``: left, reported).

Grain rule ("downhill"): for grain g, stroke direction d and outward normal n the fibres
ahead of the edge must run out of the wood, (g.d)(g.n) >= 0: cutting with the grain or
across it, never against it.

Stroke spacing from the edge arc and the scallop: a stroke leaves a channel whose section
is the edge arc seen at the rake, radius r / cos(rake); neighbours s apart leave cusps of
h = r_e - sqrt(r_e^2 - s^2/4), so s = 2 sqrt(2 r_e h - h^2) (capped at 0.8 x the width).

Every stroke point is checked with the whole gouge: edge and bevel points must not be
inside the design by more than 0.02 mm (signed distance), shank and holder surface points
must be outside it. Where the edge would dig in, the rake is raised (as a carver lifts the
handle in a hollow); if no rake up to 70 deg clears it, the stroke is lifted off the
surface there (<= 1 mm, counted as material left) or split and the spot reported as
unreachable. Where the roughing left more than the chip depth, outer layers of the same
stroke are cut first, each at most ``max_chip_depth_mm`` deep.

The wood is followed as the strokes are planned (:class:`sculptor.cam.wood.WoodGrid`: the
roughing's fine grid, less what each emitted stroke surely cut): at every point of every
layer the shank, holder and the arm's last link must keep their radius off the wood left
at that moment, else the point is left (``body_in_rest_points``; the places in
``left_for_rest_roughing``). Air moves between strokes (and to and from the parking
place at the start and end of a pass) keep the whole cutting shape clear of the design
and of that wood, and the body off it (sculptor.cam.air); a stroke no safe route reaches
is left and counted (``strokes_without_safe_link``; its points in
``no_safe_route_points``). On a robot cell every stroke point, lead-in, lift-out and route
point is checked for the arm (sculptor.cam.reach) at the band's turntable angle; where the
arm cannot cut downhill the spot is cut across the grain (horizontal strokes, either
direction), else left and reported.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from sculptor.artifacts.toolpath import MoveKind, Pass
from sculptor.cam.air import AirRoutes
from sculptor.cam.moves import MoveList, gouge_frames, resample_polyline
from sculptor.cam.toolshape import GOUGE_TOL_MM, body_inside, gouge_body_points, \
    gouge_cutting_points, penetration
from sculptor.cam.wood import BodyCheck, WoodGrid
from sculptor.profiles import GougeTool

MAX_LIFT_MM = 1.0
BASE_CLEAR_MM = 3.0  # the bottom band of the piece is left: the gouge would meet the table
MAX_LAYERS = 8
ROUNDS = 3  # passes over a band's strokes (those the body could not cut are tried again)
LEFT_DEEP, LEFT_LAYER, LEFT_BODY, LEFT_ROUTE = 1, 2, 3, 4  # why a stroke point was left


def stroke_spacing(tool: GougeTool, scallop_mm: float) -> float:
    r = tool.edge_arc_radius_mm / math.cos(math.radians(tool.rake_angle_deg))
    h = min(scallop_mm, r)
    return min(2 * math.sqrt(max(2 * r * h - h * h, 1e-9)), 0.8 * tool.width_mm)


@dataclass
class Stroke:
    points: np.ndarray   # (m, 3) TCP on the design surface, in cutting order
    normals: np.ndarray  # (m, 3)
    band: int


def surface_columns(query, bands, k: int, spacing: float, row_mm: float, reach_mm: float):
    """Cast the band's ray grid. Returns (P (nc, nr, 3), N (nc, nr, 3), ok (nc, nr))."""
    R = bands.frame(k)
    lo = np.min(query.vertices @ R.T, axis=0)
    hi = np.max(query.vertices @ R.T, axis=0)
    us = np.arange(lo[0] + spacing / 2, hi[0], spacing)
    ws = np.arange(lo[1] + row_mm / 2, hi[1], row_mm)
    uu, ww = np.meshgrid(us, ws, indexing="ij")
    org = (uu[..., None] * R[0] + ww[..., None] * R[1] + (hi[2] + 10.0) * R[2]).reshape(-1, 3)
    t, P, N = query.cast(org, -R[2])
    f = R[2]
    ok = np.isfinite(t) & (bands.assign(N) == k) & (N @ f > 0.2) & (P[:, 2] >= BASE_CLEAR_MM)
    shape = (len(us), len(ws))
    return P.reshape(*shape, 3), N.reshape(*shape, 3), ok.reshape(shape), R


def _split_runs(ok: np.ndarray, P: np.ndarray, jump_mm: float) -> list[tuple[int, int]]:
    runs = []
    i, n = 0, len(ok)
    while i < n:
        if not ok[i]:
            i += 1
            continue
        j = i + 1
        while j < n and ok[j] and np.linalg.norm(P[j] - P[j - 1]) < jump_mm:
            j += 1
        runs.append((i, j))
        i = j
    return runs


def _grain_segments(P, N, g, default_sign: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """Split a surface curve (ascending order) by the grain rule; return (points, normals)
    in cutting order."""
    m = len(P)
    if m < 2:
        return []
    t = np.gradient(P, axis=0)
    t /= np.maximum(np.linalg.norm(t, axis=1, keepdims=True), 1e-12)
    prod = (t @ g) * (N @ g)
    lab = np.where(prod > 0.02, 1, np.where(prod < -0.02, -1, 0))
    segs, start, cur = [], 0, 0
    for i in range(m):
        if lab[i] != 0 and cur != 0 and lab[i] != cur:
            segs.append((start, i, cur))
            start, cur = i, lab[i]
        elif lab[i] != 0:
            cur = lab[i]
    segs.append((start, m, cur))
    out = []
    for a, b, c in segs:
        if b - a < 2:
            continue
        sign = c if c != 0 else default_sign
        p, n = P[a:b], N[a:b]
        if sign < 0:
            p, n = p[::-1], n[::-1]
        out.append((p, n))
    return out


def plan_strokes(query, bands, tool: GougeTool, grain: np.ndarray, spacing: float,
                 row_mm: float, step_mm: float, on_band=None):
    """Strokes for every band, and the surface area left (too short / facing down)."""
    strokes: list[Stroke] = []
    short_mm2 = 0.0
    reach = 0.0
    for k in range(len(bands)):
        # the grid is tighter than the spacing by the band's half width (cusps stay <= h)
        half = math.pi / bands.n_side if k < bands.n_side else math.acos(bands.top_cos)
        sp = spacing * math.cos(half)
        P, N, ok, R = surface_columns(query, bands, k, sp, row_mm, reach)
        default = -1 if k < bands.n_side else 1
        for c in range(P.shape[0]):
            for a, b in _split_runs(ok[c], P[c], jump_mm=max(4 * row_mm, 6.0)):
                for p, n in _grain_segments(P[c, a:b], N[c, a:b], grain, default):
                    pn = resample_polyline(np.hstack([p, n]), step_mm)
                    p2 = pn[:, :3]
                    n2 = pn[:, 3:] / np.maximum(np.linalg.norm(pn[:, 3:], axis=1,
                                                               keepdims=True), 1e-12)
                    L = float(np.sum(np.linalg.norm(np.diff(p2, axis=0), axis=1)))
                    if L < tool.min_stroke_length_mm:
                        short_mm2 += L * sp
                        continue
                    npieces = int(math.ceil(L / tool.max_stroke_length_mm))
                    cuts = np.linspace(0, len(p2) - 1, npieces + 1).round().astype(int)
                    for i0, i1 in zip(cuts[:-1], cuts[1:]):
                        strokes.append(Stroke(p2[i0:i1 + 1], n2[i0:i1 + 1], k))
        if on_band:
            on_band()
    return strokes, short_mm2


def across_strokes(query, bands, k: int, tool: GougeTool, spacing: float, row_mm: float,
                   step_mm: float, targets: np.ndarray) -> list[Stroke]:
    """Strokes across the grain over the surface of side band k near ``targets`` (m, 3):
    rows of constant height (w), each traced along u, so the cutting direction is
    horizontal: (g.d) = 0 for a vertical grain, allowed in either direction. Used where
    the arm cannot reach the downhill strokes."""
    from scipy.spatial import cKDTree

    if k >= bands.n_side or len(targets) == 0:
        return []
    half = math.pi / bands.n_side
    sp = spacing * math.cos(half)
    P, N, ok, _R = surface_columns(query, bands, k, row_mm, sp, 0.0)
    d, _ = cKDTree(targets).query(P.reshape(-1, 3), distance_upper_bound=sp + row_mm)
    ok &= np.isfinite(d).reshape(ok.shape)
    out = []
    for j in range(P.shape[1]):
        for a, b in _split_runs(ok[:, j], P[:, j], jump_mm=max(4 * row_mm, 6.0)):
            pn = resample_polyline(np.hstack([P[a:b, j], N[a:b, j]]), step_mm)
            p2 = pn[:, :3]
            n2 = pn[:, 3:] / np.maximum(np.linalg.norm(pn[:, 3:], axis=1, keepdims=True),
                                        1e-12)
            L = float(np.sum(np.linalg.norm(np.diff(p2, axis=0), axis=1)))
            if L < tool.min_stroke_length_mm:
                continue
            npieces = int(math.ceil(L / tool.max_stroke_length_mm))
            cuts = np.linspace(0, len(p2) - 1, npieces + 1).round().astype(int)
            for i0, i1 in zip(cuts[:-1], cuts[1:]):
                out.append(Stroke(p2[i0:i1 + 1], n2[i0:i1 + 1], k))
    return out


def _tangents(P: np.ndarray) -> np.ndarray:
    d = np.gradient(P, axis=0) if len(P) > 1 else np.array([[1.0, 0, 0]])
    return d / np.maximum(np.linalg.norm(d, axis=1, keepdims=True), 1e-12)


def check_stroke(query, tool: GougeTool, P, N, cut_local, body_local):
    """Gouge-free pose for every stroke point.

    Returns (pos (m, 3), frames (m, 3, 3), rake_rad (m,), lift (m,), ok (m,) bool,
    worst_penetration (m,)): the TCP (lifted along n if needed), its frame, and whether the
    point can be cut without the tool's cutting shape entering the design by more than
    the tolerance and without shank/holder touching it."""
    m = len(P)
    d = _tangents(P)
    base = math.radians(tool.rake_angle_deg)
    rake = np.full(m, base)
    frames = gouge_frames(d, N, rake)
    pen = penetration(query, P, frames, cut_local)
    for extra in (10.0, 20.0, 30.0, 45.0):
        bad = pen > GOUGE_TOL_MM
        if not bad.any():
            break
        a = min(base + math.radians(extra), math.radians(70.0))
        fr = gouge_frames(d[bad], N[bad], a)
        pb = penetration(query, P[bad], fr, cut_local)
        better = pb < pen[bad]
        idx = np.flatnonzero(bad)[better]
        frames[idx], rake[idx], pen[idx] = fr[better], a, pb[better]
    lift = np.where(pen > GOUGE_TOL_MM, pen + 0.005, 0.0)
    pos = P + N * lift[:, None]
    ok = lift <= MAX_LIFT_MM
    if lift.any():  # re-check the lifted poses exactly
        li = np.flatnonzero(lift > 0)
        pl = penetration(query, pos[li], frames[li], cut_local)
        pen[li] = pl
        ok[li] &= pl <= GOUGE_TOL_MM
    ok &= ~body_inside(query, pos, frames, body_local)
    return pos, frames, rake, lift, ok, pen


def _between_penetration(query, pos, frames, cut_local, ts=tuple(np.arange(1, 8) / 8)):
    """(m-1,) deepest the cutting shape enters the design between consecutive poses
    (positions interpolated linearly, the frame turning from one pose's to the next's as
    the controller interpolates it), at eighths of the way: quarters missed 0.17 mm next
    to the end of a stroke on a tight curve."""
    from sculptor.robot.solver import turn_rotations

    a, b = pos[:-1], pos[1:]
    worst = np.full(len(a), -np.inf)
    if len(a) == 0:
        return worst
    for t in ts:
        turned = turn_rotations(frames[:-1], frames[1:], t)
        worst = np.maximum(worst, penetration(query, a + t * (b - a), turned, cut_local, 1.0))
    return worst


def refine_stroke(query, tool: GougeTool, s: Stroke, cut_local, body_local,
                  rounds: int = 3):
    """check_stroke, then where the tool between two stroke points would dig into the
    design (a chord across a convex surface, a turn of the frame), a surface point is
    inserted between them (cast back onto the surface along the mean normal) and the
    stroke checked again; after ``rounds`` the points around a segment that still digs
    in are marked not ok (the stroke is split there). Returns (stroke, check result)."""
    P, N = s.points, s.normals
    for r in range(rounds + 1):
        res = check_stroke(query, tool, P, N, cut_local, body_local)
        if len(P) < 2:
            return Stroke(P, N, s.band), res
        bad = _between_penetration(query, res[0], res[1], cut_local) > GOUGE_TOL_MM
        if not bad.any():
            return Stroke(P, N, s.band), res
        if r == rounds:
            ok = res[4].copy()
            ok[:-1] &= ~bad
            ok[1:] &= ~bad
            return Stroke(P, N, s.band), (*res[:4], ok, res[5])
        i = np.flatnonzero(bad)
        mid = (P[i] + P[i + 1]) / 2
        nm = N[i] + N[i + 1]
        nm /= np.maximum(np.linalg.norm(nm, axis=1, keepdims=True), 1e-12)
        t, ps, ns = query.cast(mid + nm * 5.0, -nm)
        hit = np.isfinite(t) & (t < 10.0)
        ps = np.where(hit[:, None], ps, mid)
        ns = np.where(hit[:, None], ns, nm)
        P = np.insert(P, i + 1, ps, axis=0)
        N = np.insert(N, i + 1, ns, axis=0)
    raise AssertionError("unreachable")


def finish_passes(query, stock_model, bands, tool: GougeTool, strokes: list[Stroke],
                  progress=None, max_layers: int = MAX_LAYERS, reach=None,
                  across=None) -> tuple[list[Pass], dict]:
    """Check every stroke, add outer layers where the wood left is deeper than the chip
    depth, and emit one pass per band, following the wood as strokes cut it
    (:class:`WoodGrid` from ``stock_model``, the state after roughing). Returns
    (passes, report).

    reach : a ReachCheck (sculptor.cam.reach) or None: stroke points the arm cannot reach
    at the band's turntable angle are left out of their stroke; ``across(k, points)``
    gives strokes across the grain over them (tried in both directions), and what no
    stroke reaches is reported as unreachable (``arm_unreachable_points``)."""
    cut_local = gouge_cutting_points(tool)
    body_local = gouge_body_points(tool)
    report = {"max_gouge_mm": 0.0, "lifted_points": 0, "max_lift_mm": 0.0,
              "unreachable_points": [], "max_chip_depth_mm": 0.0, "extra_layers": 0,
              "rest_over_layers_mm": 0.0, "raised_rake_points": 0, "too_deep_points": [],
              "arm_unreachable_points": 0, "across_grain_strokes": 0}
    by_band: dict[int, list] = {}
    missed: dict[int, list] = {}   # points the arm cannot reach (downhill and across)
    reached: dict[int, list] = {}  # points of across-grain strokes the arm reaches
    across_done = False
    reach = reach if reach is not None and reach.active else None
    wood = WoodGrid.from_stock(stock_model)
    body = BodyCheck(tool, reach.robot if reach is not None else None)
    air = AirRoutes(query, wood, tool, reach, body)
    report["body_in_rest_points"] = 0
    queue = [(s, False) for s in strokes]
    qi = 0
    while qi < len(queue):
        s, is_across = queue[qi]
        qi += 1
        if progress:
            progress()
        s, (pos, fr, rake, lift, ok, pen) = refine_stroke(query, tool, s, cut_local,
                                                          body_local)
        if reach is not None:
            arm = reach.ok(pos, fr, bands.turntable(s.band))
            if is_across and not arm.all():  # across the grain: either direction will do
                s_b, back = refine_stroke(query, tool, Stroke(s.points[::-1], s.normals[::-1],
                                                              s.band), cut_local, body_local)
                arm_b = reach.ok(back[0], back[1], bands.turntable(s.band))
                if (back[4] & arm_b).sum() > (ok & arm).sum():
                    s, (pos, fr, rake, lift, ok, pen), arm = s_b, back, arm_b
            if (ok & ~arm).any():
                missed.setdefault(s.band, []).append(s.points[ok & ~arm])
            if is_across and (ok & arm).any():
                reached.setdefault(s.band, []).append(s.points[ok & arm])
            if (~ok).any():
                report["unreachable_points"].extend(s.points[~ok].tolist())
            ok = ok & arm
        elif (~ok).any():
            report["unreachable_points"].extend(s.points[~ok].tolist())
        if qi == len(queue) and not across_done:  # all downhill strokes done
            across_done = True
            for k in sorted(missed) if across is not None else []:
                extra = across(k, np.concatenate(missed[k]))
                report["across_grain_strokes"] += len(extra)
                queue.extend((e, True) for e in extra)
        report["raised_rake_points"] += int(np.sum(rake > math.radians(tool.rake_angle_deg)
                                                   + 1e-9))
        # split at unreachable points
        idx = np.flatnonzero(ok)
        if len(idx) == 0:
            continue
        breaks = np.flatnonzero(np.diff(idx) > 1) + 1
        for part in np.split(idx, breaks):
            if len(part) < 2:
                continue
            L = float(np.sum(np.linalg.norm(np.diff(pos[part], axis=0), axis=1)))
            if L < tool.min_stroke_length_mm * 0.5:
                report["unreachable_points"].extend(s.points[part].tolist())
                continue
            report["max_gouge_mm"] = max(report["max_gouge_mm"], float(max(pen[part].max(),
                                                                          0.0)))
            report["lifted_points"] += int(np.sum(lift[part] > 0))
            report["max_lift_mm"] = max(report["max_lift_mm"], float(lift[part].max()))
            by_band.setdefault(s.band, []).append((pos[part], fr[part], s.normals[part]))
    for k, pts in missed.items():
        pts = np.concatenate(pts)
        if k in reached:
            from scipy.spatial import cKDTree

            d, _ = cKDTree(np.concatenate(reached[k])).query(pts, distance_upper_bound=5.0)
            pts = pts[~np.isfinite(d)]
        report["arm_unreachable_points"] += len(pts)
        report["unreachable_points"].extend(pts.tolist())
    passes = []
    chip = tool.max_chip_depth_mm
    report["strokes_without_safe_link"] = 0
    report["no_safe_route_points"] = []
    report["passes_not_parked"] = 0
    for k in sorted(by_band):
        items = by_band[k]
        ml = MoveList()
        theta = bands.turntable(k)
        f = bands.direction(k)
        top = k >= bands.n_side
        n_strokes = 0
        prev = None  # (position, frame) where the last emitted stroke lifted out

        def emit(lp, lfr, lnrm):
            nonlocal prev, n_strokes
            nxt = _emit_stroke(ml, air, tool, lp, lfr, lnrm, theta, f, prev, top)
            if nxt is None:
                return False
            prev = nxt
            n_strokes += 1
            return True

        def layer(it: dict, j: int) -> None:
            """Emit layer j of a stroke (``it``: pos, fr, nrm, depth, layers, alive, why)
            where the layers above it were cut, over the wood left now."""
            pos, fr, nrm = it["pos"], it["fr"], it["nrm"]
            alive, why = it["alive"], it["why"]
            lp = pos + nrm * (it["depth"] * j / it["layers"])
            good = alive.copy()
            if j > 0:  # outer layers: checked too (offsets can near other parts)
                good &= penetration(query, lp, fr, cut_local, 1.0) <= GOUGE_TOL_MM
                good &= ~body_inside(query, lp, fr, body_local)
                chord = _between_penetration(query, lp, fr, cut_local) > GOUGE_TOL_MM
                good[:-1] &= ~chord
                good[1:] &= ~chord
                if reach is not None:
                    good &= reach.ok(lp, fr, theta)
                why[alive & ~good] = LEFT_LAYER
            # the shank, holder and the arm's last link keep off the wood left now
            in_wood = good & ~air.body_clear(lp, fr)
            why[in_wood] = LEFT_BODY
            good &= ~in_wood
            cut_here = np.zeros(len(pos), bool)
            idx = np.flatnonzero(good)
            for part in np.split(idx, np.flatnonzero(np.diff(idx) > 1) + 1):
                if len(part) < 2:
                    continue
                if emit(lp[part], fr[part], nrm[part]):
                    wood.carve_gouge(lp[part], fr[part], tool, chip)
                    cut_here[part] = True
                    report["extra_layers"] += int(j > 0)
                else:
                    why[part] = LEFT_ROUTE
            why[good & ~cut_here & (why == 0)] = LEFT_ROUTE
            alive &= cut_here

        def start(pos, fr, nrm) -> dict:
            depth = float(wood.thickness_along(pos, nrm, chip * max_layers + 2.0).max())
            layers = max(1, int(math.ceil(depth / chip - 1e-6)))
            it = {"pos": pos, "fr": fr, "nrm": nrm, "depth": depth, "layers": layers,
                  "alive": np.ones(len(pos), bool), "why": np.zeros(len(pos), np.int8)}
            if layers > max_layers:  # more rest than the strokes may take: leave, report
                report["rest_over_layers_mm"] = max(report["rest_over_layers_mm"], depth)
                it["alive"][:] = False
                it["why"][:] = LEFT_DEEP
            else:
                report["max_chip_depth_mm"] = max(report["max_chip_depth_mm"],
                                                  min(depth, chip * layers) / layers)
            return it

        # layer by layer over the whole band (outermost first, as a carver takes the wood
        # down evenly: the shank then never meets a neighbour's thick rest); then rounds
        # for the points the body or the routes kept out, once their neighbours are cut
        pending = list(items)
        left: list[dict] = []
        for rnd in range(ROUNDS):
            before = wood.stats["carved_voxels"]
            its = [start(*x) for x in pending]
            for j in reversed(range(max([it["layers"] for it in its
                                         if it["alive"].any()] + [0]))):
                for it in its:
                    if j < it["layers"] and it["alive"].any():
                        layer(it, j)
            left, pending = [], []
            for it in its:
                it["why"][it["alive"]] = 0
                bad = np.flatnonzero(it["why"] > 0)
                if len(bad) == 0:
                    continue
                left.append(it)
                for part in np.split(bad, np.flatnonzero(np.diff(bad) > 1) + 1):
                    if len(part) >= 2:
                        pending.append((it["pos"][part], it["fr"][part], it["nrm"][part]))
            if not pending or wood.stats["carved_voxels"] == before:
                break
        for it in left:
            pts, why = it["pos"], it["why"]
            report["too_deep_points"].extend(pts[(why == LEFT_DEEP) | (why == LEFT_BODY)
                                                 | (why == LEFT_LAYER)].tolist())
            report["body_in_rest_points"] += int(np.sum(why == LEFT_BODY))
            report["no_safe_route_points"].extend(pts[why == LEFT_ROUTE].tolist())
            report["strokes_without_safe_link"] += int(np.any(why == LEFT_ROUTE))
        if prev is not None:  # out to the parking place, where the table may turn
            way = air.park_route(prev[0], prev[1], f, theta, top, inward=False)
            if way is None:
                report["passes_not_parked"] += 1
            else:
                ml.add(way, prev[1], tool.feed_mm_s, MoveKind.RAPID, theta)
        passes.append(ml.to_pass(
            name=f"finish-{bands.names[k]}", operation="finish", strategy="gouge-strokes",
            tool_id=tool.name, setup_turntable_deg=math.degrees(theta),
            stats={"strokes": n_strokes, "band": bands.names[k]}))
    report["air_links"] = dict(air.stats)
    return passes, report


def _first_ok(cands, test):
    for c in cands:
        if test(c):
            return c
    return None


def _emit_stroke(ml: MoveList, air: AirRoutes, tool: GougeTool, pos, fr, nrm, theta, f, prev,
                 top: bool):
    """Air route from ``prev`` (position, frame) or from the parking place, lead-in,
    plunge, cut and lift-out of one stroke. Lead-in and lift-out are the first of a few
    variants the arm reaches whose plunge / lift cuts nothing of the design; the route is
    :class:`AirRoutes`'s. Returns the new (position, frame) after the lift-out, or None
    (nothing emitted) when no variant or no route is safe."""
    t0, t1 = _tangent(pos, 0), _tangent(pos, -1)
    leads = [pos[0] + nrm[0] * h - t0 * h for h in (6.0, 9.0, 12.0)] + \
        [pos[0] + nrm[0] * h for h in (6.0, 9.0)] + [pos[0] + f * 6.0, pos[0] + f * 10.0,
                                                     pos[0] + nrm[0] * 3.0 - t0 * 2.0]
    outs = [pos[-1] + nrm[-1] * h + t1 * 4.0 for h in (5.0, 8.0, 11.0)] + \
        [pos[-1] + nrm[-1] * 5.0, pos[-1] + f * 5.0, pos[-1] + f * 10.0,
         pos[-1] + nrm[-1] * 3.0]
    floor = BASE_CLEAR_MM
    leads = [np.array([p[0], p[1], max(p[2], floor)]) for p in leads]
    outs = [np.array([p[0], p[1], max(p[2], floor, pos[-1][2] if not top else floor)])
            for p in outs]
    lead = _first_ok(leads, lambda p: air.reaches(p[None], fr[0], theta)
                     and air.clear(p[None], fr[0])
                     and air.check_entry(p, pos[0], fr[0]))
    out = _first_ok(outs, lambda p: air.reaches(p[None], fr[-1], theta)
                    and air.clear(p[None], fr[-1])
                    and air.check_entry(pos[-1], p, fr[-1]))
    if lead is None or out is None:
        return None
    if prev is None:
        way = air.park_route(lead, fr[0], f, theta, top, inward=True)
    else:
        way = air.link(prev[0], prev[1], lead, fr[0], f, theta)
    if way is None:
        return None
    if len(way):
        ml.add(way, fr[0], tool.feed_mm_s, MoveKind.RAPID, theta)
    ml.add(lead[None], fr[0], tool.feed_mm_s, MoveKind.RAPID, theta)
    ml.add(pos[:1], fr[0], tool.plunge_feed_mm_s, MoveKind.PLUNGE, theta)
    ml.add(pos[1:], fr[1:], tool.feed_mm_s, MoveKind.CUT, theta)
    ml.add(out[None], fr[-1], tool.feed_mm_s, MoveKind.RETRACT, theta)
    return out, fr[-1]


def _tangent(pos, i):
    if len(pos) < 2:
        return np.zeros(3)
    d = pos[1] - pos[0] if i == 0 else pos[-1] - pos[-2]
    return d / max(np.linalg.norm(d), 1e-12)
