"""Cleaning a reconstructed mesh and posing it upright in the piece frame.

Piece frame (see `sculptor.artifacts.sdf`): mm, +Z up, base plane at z = 0, base centred
on the origin. The base is found, in order of preference, as

1. ``ransac``: the largest plane (RANSAC) that *supports* the piece: at least 99% of the
   vertices lie on one side of it, and its inliers span a real footprint;
2. ``open_base``: a mesh scanned standing (open at the base): the plane through most
   of its hole boundaries, the piece on one side;
3. ``stable_face``: the convex hull facet on which the piece stands stably (centre of
   mass inside the facet) with the most of its own surface touching the floor;
4. ``principal_axes``: the longest principal axis is vertical, the heavier end down.

Yaw is fixed by the principal axes of the footprint (largest spread along +X).
"""

from __future__ import annotations

import numpy as np

SUPPORT_FRACTION = 0.99
MIN_BASE_FRACTION = 0.15  # base footprint span / largest extent


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

    method : auto|ransac|open_base|stable_face|principal_axes
    Returns (mesh_upright, piece_from_input (4, 4), method used).
    """
    extent = float(mesh.extents.max())
    up, used = None, "principal_axes"
    if method in ("auto", "ransac"):
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
