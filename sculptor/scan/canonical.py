"""Cleaning a reconstructed mesh and posing it upright in the piece frame.

Piece frame (see `sculptor.artifacts.sdf`): mm, +Z up, base plane at z = 0, base centred
on the origin. The base is found, in order of preference, as

1. ``flat_base``: the flat face at an extreme of the piece it stands on (see
   `_flat_base`; Igea on her neck, Nefertiti on her shoulders, not on her crown's top);
2. ``ransac``: the largest plane (RANSAC) that *supports* the piece: at least 99% of the
   vertices lie on one side of it, and its inliers span a real footprint;
3. ``open_base``: a mesh scanned standing (open at the base): the plane through most
   of its hole boundaries, the piece on one side;
4. ``stable_face``: the convex hull facet on which the piece stands stably (centre of
   mass inside the facet) with the most of its own surface touching the floor;
5. ``principal_axes``: the longest principal axis is vertical, the heavier end down.

Yaw is fixed by the principal axes of the footprint (largest spread along +X).
"""

from __future__ import annotations

import numpy as np

SUPPORT_FRACTION = 0.99
MIN_BASE_FRACTION = 0.15  # base footprint span / largest extent
NORMAL_BINS = 2000  # directions on a half sphere for the face-normal histogram
FLAT_CANDIDATES = 12  # histogram peaks tried as base directions
FLAT_ANGLE_DEG = 25.0
FLAT_TOL = 0.02  # of the largest extent, distance of base faces from the extreme plane
MIN_FLAT_AREA = 0.004  # of the piece's surface area, a base near the file's up axis
LARGE_FLAT_AREA = 0.02  # ... any other stable base
FILE_UP_DEG = 35.0


def clean_mesh(mesh):
    """Largest connected component, degenerate/duplicate faces removed, winding fixed.

    mesh : trimesh.Trimesh ; returns a new trimesh.Trimesh
    """
    import trimesh

    m = trimesh.Trimesh(mesh.vertices, mesh.faces, process=True, validate=True)
    m.remove_unreferenced_vertices()
    comps = m.split(only_watertight=False)
    if len(comps) > 1:
        m = max(comps, key=lambda c: len(c.faces))
    trimesh.repair.fix_winding(m)
    if m.is_watertight and m.volume < 0:
        m.invert()
    return m


def _frame_from_up(up: np.ndarray) -> np.ndarray:
    """3x3 rotation taking ``up`` to +Z."""
    up = up / np.linalg.norm(up)
    z = np.array([0.0, 0.0, 1.0])
    v = np.cross(up, z)
    s, c = np.linalg.norm(v), float(up @ z)
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([1.0, -1.0, -1.0])
    k = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]]) / s
    ang = np.arctan2(s, c)
    return np.eye(3) + np.sin(ang) * k + (1 - np.cos(ang)) * k @ k


def _flat_base(mesh, extent: float) -> np.ndarray | None:
    """Up vector of the flat face the piece stands on, or None.

    Candidate down directions are the file's -Y and -Z and the peaks of the area-weighted
    face-normal histogram (both signs). For each, the base is the mesh area that faces
    that way (within FLAT_ANGLE_DEG) and lies within FLAT_TOL of the extreme plane: a sawn
    or carved base, however rough, not a curved side touching the floor along a line; it
    must span MIN_BASE_FRACTION of the extent. A base whose up is within FILE_UP_DEG of the
    file's +Y or +Z (scanners and modelling tools write y-up or z-up) wins when it holds
    MIN_FLAT_AREA of the surface, stable or not (a bust broken at the neck stands on a
    mount); otherwise the largest stable base (centre of mass over it) holding
    LARGE_FLAT_AREA. The file's axes only choose among real flat bases: a piece whose
    file axes are arbitrary still gets its largest stable flat base.
    """
    from scipy.spatial import cKDTree
    from shapely.geometry import MultiPoint, Point

    n = np.asarray(mesh.face_normals)
    area = np.asarray(mesh.area_faces)
    cent = np.asarray(mesh.triangles_center)
    ok = np.isfinite(n).all(axis=1) & (area > 0)
    n, area, cent = n[ok], area[ok], cent[ok]
    # histogram of normals (sign folded) on a Fibonacci sphere of directions
    k = np.arange(NORMAL_BINS) + 0.5
    phi, z = np.pi * (1 + 5**0.5) * k, 1 - k / NORMAL_BINS  # upper hemisphere
    dirs = np.stack([np.sqrt(1 - z**2) * np.cos(phi), np.sqrt(1 - z**2) * np.sin(phi), z], 1)
    folded = n * np.where(n[:, 2:3] < 0, -1.0, 1.0)
    _, b = cKDTree(np.concatenate([dirs, -dirs])).query(folded)
    b %= NORMAL_BINS
    hist = np.bincount(b, weights=area, minlength=NORMAL_BINS)
    cos_flat = np.cos(np.radians(FLAT_ANGLE_DEG))
    com = mesh.center_mass if mesh.is_watertight else mesh.centroid
    cands = []  # (flat area, up, stable)
    starts = [np.array([0.0, -1.0, 0.0]), np.array([0.0, 0.0, -1.0])]  # the file's up axes
    for peak in np.argsort(hist)[::-1][:FLAT_CANDIDATES]:
        sel = b == peak
        d0 = (folded[sel] * area[sel, None]).sum(axis=0)
        starts += [d0 / np.linalg.norm(d0), -d0 / np.linalg.norm(d0)]
    for down in starts:
        floor = (np.asarray(mesh.vertices) @ down).max()
        contact = (n @ down > cos_flat) & (cent @ down > floor - FLAT_TOL * extent)
        if area[contact].sum() < MIN_FLAT_AREA * area.sum():
            continue
        down = (n[contact] * area[contact, None]).sum(axis=0)  # refined on the contact
        down /= np.linalg.norm(down)
        r = _frame_from_up(-down)
        foot = (cent[contact] @ r.T)[:, :2]
        if np.ptp(foot, axis=0).min() < MIN_BASE_FRACTION * extent:
            continue
        poly = MultiPoint(foot).convex_hull
        stable = bool(poly.area > 0 and poly.buffer(0.02 * extent).contains(
            Point((r @ com)[:2])))
        cands.append((float(area[contact].sum()), -down, stable))
    # the file's own up convention (+Y: Stanford/OBJ, +Z: CAD/STL) decides between bases;
    # a bust on a broken neck stands on a mount, so stability is not asked of it
    conv = [c for c in cands if max(c[1][1], c[1][2]) > np.cos(np.radians(FILE_UP_DEG))]
    if conv:
        return max(conv, key=lambda c: c[0])[1]
    big = [c for c in cands if c[2] and c[0] >= LARGE_FLAT_AREA * area.sum()]
    return max(big, key=lambda c: c[0])[1] if big else None


def _ransac_base(mesh, extent: float) -> np.ndarray | None:
    """Up vector of a supporting base plane, or None."""
    import open3d as o3d

    pts = np.asarray(mesh.vertices)
    if len(pts) > 50_000:
        pts = pts[np.random.default_rng(0).choice(len(pts), 50_000, replace=False)]
    pc = o3d.geometry.PointCloud(o3d.utility.Vector3dVector(pts))
    o3d.utility.random.seed(0)
    remaining = pc
    for _ in range(3):  # a few largest planes
        if len(remaining.points) < 100:
            break
        plane, inl = remaining.segment_plane(0.004 * extent, 3, 500)
        n = np.asarray(plane[:3])
        nn = np.linalg.norm(n)
        d = plane[3] / nn
        n = n / nn
        side = pts @ n + d
        for up in (n, -n):
            s = side if up is n else -side
            if (s >= -0.01 * extent).mean() >= SUPPORT_FRACTION:
                ip = np.asarray(remaining.points)[inl]
                r = _frame_from_up(up)
                span = np.ptp((ip @ r.T)[:, :2], axis=0).min()
                if span >= MIN_BASE_FRACTION * extent:
                    return up
        remaining = remaining.select_by_index(inl, invert=True)
    return None


def _open_base(mesh, extent: float) -> np.ndarray | None:
    """Up vector from the holes of a mesh scanned standing on a turntable (open at the
    base): most boundary vertices lie on one plane with the piece on one side of it."""
    edges = mesh.edges_sorted
    uniq, count = np.unique(edges, axis=0, return_counts=True)
    bverts = np.unique(uniq[count == 1])
    if len(bverts) < 20:
        return None
    pts = np.asarray(mesh.vertices)
    bp = pts[bverts]
    rng = np.random.default_rng(0)
    best, best_n = None, 0
    for _ in range(200):
        a, b, c = bp[rng.choice(len(bp), 3, replace=False)]
        n = np.cross(b - a, c - a)
        if np.linalg.norm(n) < 1e-12:
            continue
        n /= np.linalg.norm(n)
        inl = np.abs((bp - a) @ n) < 0.02 * extent
        if inl.sum() > best_n:
            best, best_n = (n, a), int(inl.sum())
    if best is None or best_n < 0.5 * len(bp):
        return None
    n, a = best
    side = (pts - a) @ n
    for up in (n, -n):
        if ((side if up is n else -side) >= -0.02 * extent).mean() >= 0.97:
            return up
    return None


def _stable_face_base(mesh, extent: float) -> np.ndarray | None:
    """Up vector of the convex hull facet the piece stands on stably with the most of its
    own surface touching the floor (a carved base), or None."""
    from shapely.geometry import MultiPoint, Point

    hull = mesh.convex_hull
    com = mesh.center_mass if mesh.is_watertight else mesh.centroid
    tri_c = mesh.triangles_center
    tri_a = mesh.area_faces
    best, best_contact = None, 0.005 * mesh.area
    order = np.argsort(hull.facets_area)[::-1][:30]
    for f in order:
        facet, normal = hull.facets[f], hull.facets_normal[f]
        up = -normal
        r = _frame_from_up(up)
        verts = hull.vertices[np.unique(hull.faces[facet])] @ r.T
        c = r @ com
        poly = MultiPoint(verts[:, :2]).convex_hull
        if not (poly.area > 0 and poly.contains(Point(c[:2]))):
            continue
        if np.ptp(verts[:, :2], axis=0).min() < MIN_BASE_FRACTION * extent:
            continue
        floor = verts[:, 2].min()
        contact = tri_a[(tri_c @ r.T)[:, 2] - floor < 0.005 * extent].sum()
        if contact > best_contact:
            best, best_contact = up, contact
    return best


def _principal_up(mesh) -> np.ndarray:
    v = np.asarray(mesh.vertices)
    c = v.mean(axis=0)
    _, _, vt = np.linalg.svd(v - c, full_matrices=False)
    a = vt[0]
    h = (v - c) @ a
    # heavier (wider) end down: the end whose cross-section spreads more
    lo, hi = h < np.percentile(h, 20), h > np.percentile(h, 80)
    spread = lambda m: np.linalg.norm((v[m] - c) - np.outer(h[m], a), axis=1).mean()  # noqa: E731
    return a if spread(lo) >= spread(hi) else -a


def canonical_pose(mesh):
    """Upright copy of ``mesh`` (trimesh.Trimesh, mm) and the 4x4 ``piece_from_input``."""
    upright, piece_from_input, _ = canonical_pose_method(mesh)
    return upright, piece_from_input


def canonical_pose_method(mesh, method: str = "auto"):
    """Like `canonical_pose`, also returning which base finder was used.

    method : auto|flat_base|ransac|open_base|stable_face|principal_axes
    Returns (mesh_upright, piece_from_input (4, 4), method used).
    """
    extent = float(mesh.extents.max())
    up, used = None, "principal_axes"
    if method in ("auto", "flat_base"):
        up, used = _flat_base(mesh, extent), "flat_base"
    if up is None and method in ("auto", "ransac"):
        up, used = _ransac_base(mesh, extent), "ransac"
    if up is None and method in ("auto", "open_base"):
        up, used = _open_base(mesh, extent), "open_base"
    if up is None and method in ("auto", "stable_face"):
        up, used = _stable_face_base(mesh, extent), "stable_face"
    if up is None:
        up, used = _principal_up(mesh), "principal_axes"
    r = _frame_from_up(up)
    v = np.asarray(mesh.vertices) @ r.T
    # yaw: principal axes of the footprint, largest spread along +X, deterministic sign
    xy = v[:, :2] - v[:, :2].mean(axis=0)
    _, _, vt = np.linalg.svd(xy, full_matrices=False)
    ax = vt[0] * (1 if np.sum((xy @ vt[0]) ** 3) >= 0 else -1)
    yaw = np.array([[ax[0], ax[1], 0], [-ax[1], ax[0], 0], [0, 0, 1.0]])
    r = yaw @ r
    v = np.asarray(mesh.vertices) @ r.T
    zmin = v[:, 2].min()
    base = v[v[:, 2] <= zmin + 0.01 * extent]
    centre = np.array([(base[:, 0].min() + base[:, 0].max()) / 2,
                       (base[:, 1].min() + base[:, 1].max()) / 2, zmin])
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = -centre
    out = mesh.copy()
    out.apply_transform(m)
    return out, m, used
