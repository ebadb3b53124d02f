"""Registration of partial scans of one piece from unknown poses.

Chain (open3d, numpy, scipy):

1. each scan to mm, voxel-downsampled at ``v`` (1/65 of the largest scan extent), normals
   oriented towards its estimated viewpoint (a single-view scan bulges towards its
   camera), FPFH features;
2. every pair: FPFH + RANSAC (mutual matches, edge-length and distance checkers), then
   point-to-plane ICP with a Tukey kernel. When that pose is not plausible (see 3) and
   both scans are elongated (smooth, near rotationally symmetric standing pieces, where
   FPFH matches slide), poses about the scans' long axis lines are swept instead
   (`axis_sweep`: the line is where the surface normals meet) and the best by
   point-to-plane residual ratio is kept;
3. pair results are verified by cycle consistency: an edge is kept when it closes at least
   one triangle ``i -> j -> k -> i`` with two other edges to within 5 deg / 3 v. A wrong
   alignment (a symmetric mirror of the back of a piece, or a scan of another object)
   almost never closes a loop. Strong unverified edges may still link a scan that has no
   loop (chains, two scans);
4. a maximum spanning tree of kept edges gives initial poses; scans outside the largest
   connected group are reported as not placed;
5. a multiway pose graph over the verified pair alignments (Levenberg-Marquardt,
   line-process pruning of bad loop closures), then every pose solved at once on
   point-to-plane matches of all overlapping pairs at near full resolution
   (`sculptor.scan.multiview`).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from sculptor.scan.multiview import refine_multiview, view_samples

VOXEL_PER_EXTENT = 1.0 / 65.0
FINE_VOXEL_FACTOR = 1.0 / 3.0
CYCLE_ROT_DEG = 5.0
CYCLE_TRANS_VOXELS = 3.0
UNVERIFIED_MIN_FITNESS = 0.3
RANSAC_MAX_ITER = 30_000
MIN_PAIR_FITNESS = 0.1
# RMS point-to-plane residual / correspondence distance: true overlaps of the real bunny
# scans <= 0.18, false alignments >= 0.45 (crossing surfaces look like uniform residuals)
MAX_PLANE_RATIO = 0.3
# rotations tried about the piece's long axis when FPFH finds no plausible alignment
AXIS_SWEEP_STEPS = 12
AXIS_SWEEP_KEEP = 2
AXIS_SWEEP_ICP_ITERS = 10  # per stage; the kept poses get the full v/2 ICP
# ... only when both scans are elongated (spread along the long axis / across it): the
# corpus pieces' views >= 3.6, the bunny's <= 1.9 (no well-defined axis, FPFH works there)
AXIS_MIN_ELONGATION = 2.5

Method = str  # registry key, see GLOBAL_METHODS


@dataclass
class PairResult:
    """dst_from_src for scans (i -> j) and how well it fits."""

    i: int
    j: int
    j_from_i: np.ndarray  # (4, 4)
    fitness: float
    rmse_mm: float
    ratio: float = 0.0
    plausible: bool = True
    support: int = 0


@dataclass
class RegistrationResult:
    """Poses (mm) of every scan in the frame of the first placed scan."""

    world_from_scan_mm: list[np.ndarray | None]  # (4, 4) each, None = not placed
    fitness: list[float]
    rmse_mm: list[float]
    reasons: list[str | None]
    pairs: list[PairResult] = field(default_factory=list)


def _o3d():
    import open3d as o3d

    o3d.utility.set_verbosity_level(o3d.utility.VerbosityLevel.Error)
    return o3d


def to_cloud(points: np.ndarray):
    o3d = _o3d()
    return o3d.geometry.PointCloud(o3d.utility.Vector3dVector(np.asarray(points, np.float64)))


def viewpoint_direction(points: np.ndarray) -> np.ndarray:
    """(3,) unit vector from a single-view scan towards its (unknown) scanner.

    The axis of least spread is the viewing axis; its sign is the side the surface bulges
    to (points near the middle of the view lie closer to the scanner than the rim).
    """
    c = points.mean(axis=0)
    _, _, vt = np.linalg.svd(points - c, full_matrices=False)
    a = vt[2]
    h = (points - c) @ a
    r = np.linalg.norm((points - c) - np.outer(h, a), axis=1)
    corr = np.corrcoef(h, r)[0, 1] if h.std() > 0 and r.std() > 0 else -1.0
    return a * (-np.sign(corr) if corr != 0 else 1.0)


def preprocess(points_mm: np.ndarray, voxel: float, features: bool = True):
    """Downsampled cloud with viewpoint-oriented normals and (optionally) FPFH features."""
    o3d = _o3d()
    down = to_cloud(points_mm).voxel_down_sample(voxel)
    down.estimate_normals(o3d.geometry.KDTreeSearchParamHybrid(radius=2.5 * voxel, max_nn=30))
    x = np.asarray(down.points)
    if len(x) >= 4:
        down.orient_normals_towards_camera_location(
            x.mean(axis=0) + viewpoint_direction(x) * 1e3 * (np.ptp(x, axis=0).max() + 1))
    if not features:
        return down, None
    fpfh = o3d.pipelines.registration.compute_fpfh_feature(
        down, o3d.geometry.KDTreeSearchParamHybrid(radius=5 * voxel, max_nn=100))
    return down, fpfh


def _ransac_fpfh(src, dst, fs, fd, voxel: float, max_iter: int):
    reg = _o3d().pipelines.registration
    r = reg.registration_ransac_based_on_feature_matching(
        src, dst, fs, fd, True, 1.5 * voxel,
        reg.TransformationEstimationPointToPoint(False), 3,
        [reg.CorrespondenceCheckerBasedOnEdgeLength(0.9),
         reg.CorrespondenceCheckerBasedOnDistance(1.5 * voxel)],
        reg.RANSACConvergenceCriteria(max_iter, 0.999))
    return r.transformation


def _fgr_fpfh(src, dst, fs, fd, voxel: float, max_iter: int):
    reg = _o3d().pipelines.registration
    r = reg.registration_fgr_based_on_feature_matching(
        src, dst, fs, fd, reg.FastGlobalRegistrationOption(
            maximum_correspondence_distance=1.5 * voxel, iteration_number=64))
    return r.transformation


GLOBAL_METHODS = {"fpfh_ransac": _ransac_fpfh, "fpfh_fgr": _fgr_fpfh}


def long_axis(cloud) -> tuple[np.ndarray, np.ndarray]:
    """(point (3,), unit direction (3,)) of a scan's long axis line.

    The direction is the axis of largest spread. The line is placed where the surface
    normals (projected across the axis) meet: every normal of a surface of revolution
    crosses its axis, so a partial view of a near-symmetric piece still finds it (the
    centroid of the view lies off the axis, towards the scanner). Along the axis the
    point sits level with the centroid.
    """
    x, nrm = np.asarray(cloud.points), np.asarray(cloud.normals)
    c = x.mean(axis=0)
    _, _, vt = np.linalg.svd(x - c, full_matrices=False)
    a = vt[0]
    n = nrm - np.outer(nrm @ a, a)
    w = np.linalg.norm(n, axis=1)
    keep = w > 0.3
    n, x = n[keep] / w[keep, None], x[keep]
    across = np.eye(3)[None] - n[:, :, None] * n[:, None, :]  # (k, 3, 3) I - n n^T
    lhs = across.sum(axis=0) + np.outer(a, a) * max(len(n), 1)
    rhs = np.einsum("kij,kj->i", across, x) + a * (a @ c) * max(len(n), 1)
    return np.linalg.solve(lhs, rhs), a


def _elongation(points: np.ndarray) -> float:
    """Spread along the long axis / spread along the second axis (singular values)."""
    s = np.linalg.svd(points - points.mean(axis=0), compute_uv=False)
    return float(s[0] / max(s[1], 1e-12))


def _rotation_onto(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(3, 3) smallest rotation taking unit vector a onto unit vector b."""
    from scipy.spatial.transform import Rotation

    axis = np.cross(a, b)
    s, c = np.linalg.norm(axis), float(a @ b)
    if s < 1e-9:  # parallel or opposite: any perpendicular axis
        if c > 0:
            return np.eye(3)
        axis = np.cross(a, np.eye(3)[np.argmin(np.abs(a))])
        return Rotation.from_rotvec(axis / np.linalg.norm(axis) * np.pi).as_matrix()
    return Rotation.from_rotvec(axis / s * np.arctan2(s, c)).as_matrix()


def axis_sweep(src, dst, voxel: float, steps: int = AXIS_SWEEP_STEPS) -> list[np.ndarray]:
    """dst_from_src hypotheses, best first: long axis lines matched (both senses), the turn
    about it swept in ``steps``, each refined by coarse point-to-plane ICP and ranked by
    its point-to-plane residual ratio (pairs with fitness below MIN_PAIR_FITNESS dropped).
    """
    from scipy.spatial.transform import Rotation

    ps, a_s = long_axis(src)
    pd, a_d = long_axis(dst)
    found = []
    for sense in (1.0, -1.0):
        onto = _rotation_onto(a_s, sense * a_d)
        for k in range(steps):
            rot = Rotation.from_rotvec(a_d * 2 * np.pi * k / steps).as_matrix() @ onto
            m = np.eye(4)
            m[:3, :3], m[:3, 3] = rot, pd - rot @ ps
            m, _, _ = icp(src, dst, m, 4 * voxel, 2 * voxel, iters=AXIS_SWEEP_ICP_ITERS)
            m, fit, _ = icp(src, dst, m, 1.5 * voxel, voxel, iters=AXIS_SWEEP_ICP_ITERS)
            if fit >= MIN_PAIR_FITNESS:
                found.append((plane_residual(src, dst, m, 1.5 * voxel), m))
    found.sort(key=lambda f: f[0])
    best: list[np.ndarray] = []
    for _, m in found:  # distinct poses only
        if all(rot_angle_deg(np.linalg.inv(b) @ m) > CYCLE_ROT_DEG
               or np.linalg.norm(b[:3, 3] - m[:3, 3]) > CYCLE_TRANS_VOXELS * voxel for b in best):
            best.append(m)
    return best


def icp(src, dst, init: np.ndarray, dist: float, kernel_scale: float, iters: int = 30):
    """Point-to-plane ICP with a Tukey kernel: (dst_from_src (4,4), fitness, rmse)."""
    reg = _o3d().pipelines.registration
    r = reg.registration_icp(
        src, dst, dist, init,
        reg.TransformationEstimationPointToPlane(reg.TukeyLoss(k=kernel_scale)),
        reg.ICPConvergenceCriteria(relative_fitness=1e-5, relative_rmse=1e-5,
                                   max_iteration=iters))
    return np.asarray(r.transformation), float(r.fitness), float(r.inlier_rmse)


def plane_residual(src, dst, dst_from_src: np.ndarray, dist: float) -> float:
    """RMS point-to-plane distance (mm) of src points within ``dist`` of dst after the move.

    Unlike the point-to-point RMSE it does not grow with the sampling spacing, so it
    tells a true overlap (residual ~ scan noise) from a false fit (surfaces cross).
    """
    from scipy.spatial import cKDTree

    p = np.asarray(src.points) @ dst_from_src[:3, :3].T + dst_from_src[:3, 3]
    q = np.asarray(dst.points)
    d, idx = cKDTree(q).query(p, distance_upper_bound=dist)
    ok = np.isfinite(d)
    if ok.sum() < 10:
        return float("inf")
    r = np.einsum("ij,ij->i", p[ok] - q[idx[ok]], np.asarray(dst.normals)[idx[ok]])
    return float(np.sqrt(np.mean(r**2)))


def rot_angle_deg(m: np.ndarray) -> float:
    return float(np.degrees(np.arccos(np.clip((np.trace(m[:3, :3]) - 1) / 2, -1, 1))))


def _loop_ok(loop: np.ndarray, points: np.ndarray, tol: float) -> bool:
    """A loop transform is near identity where it matters: on the scan's own points."""
    moved = points @ loop[:3, :3].T + loop[:3, 3]
    return bool(np.sqrt(np.mean(np.sum((moved - points) ** 2, axis=1))) < tol)


def register_points(scans_mm: list[np.ndarray], method: Method = "fpfh_ransac", seed: int = 0,
                    max_ransac_iter: int = RANSAC_MAX_ITER, progress=None) -> RegistrationResult:
    """Register partial scans (each (n_i, 3) mm, any pose) into the frame of scan 0.

    progress : optional callable(advance: int) for a progress bar (len(pairs) + 2 steps)
    """
    o3d = _o3d()
    reg = o3d.pipelines.registration
    o3d.utility.random.seed(seed)
    n = len(scans_mm)
    extent = max(float(np.ptp(p, axis=0).max()) for p in scans_mm)
    voxel = extent * VOXEL_PER_EXTENT
    fine = voxel * FINE_VOXEL_FACTOR
    coarse = [preprocess(p, voxel) for p in scans_mm]
    medium = [preprocess(p, voxel / 2, features=False)[0] for p in scans_mm]
    global_fn = GLOBAL_METHODS[method]
    elongation = [_elongation(np.asarray(c[0].points)) for c in coarse]

    # 2. all pairs
    pairs: dict[tuple[int, int], PairResult] = {}
    for i, j in itertools.combinations(range(n), 2):
        (s, fs), (d, fd) = coarse[i], coarse[j]
        init = global_fn(s, d, fs, fd, voxel, max_ransac_iter)
        m, _, _ = icp(s, d, init, 1.5 * voxel, voxel)
        m, fit, rmse = icp(medium[i], medium[j], m, 0.75 * voxel, 0.75 * voxel)
        ratio = plane_residual(medium[i], medium[j], m, 0.75 * voxel) / (0.75 * voxel)
        if (not (fit >= MIN_PAIR_FITNESS and ratio < MAX_PLANE_RATIO)
                and min(elongation[i], elongation[j]) >= AXIS_MIN_ELONGATION):
            # smooth, near rotationally symmetric pieces: FPFH matches slide; try poses
            # about the long axis instead, keep the best by point-to-plane ratio
            for m2 in axis_sweep(s, d, voxel)[:AXIS_SWEEP_KEEP]:
                m2, fit2, rmse2 = icp(medium[i], medium[j], m2, 0.75 * voxel, 0.75 * voxel)
                r2 = plane_residual(medium[i], medium[j], m2, 0.75 * voxel) / (0.75 * voxel)
                if fit2 >= MIN_PAIR_FITNESS and r2 < ratio:
                    m, fit, rmse, ratio = m2, fit2, rmse2, r2
        pairs[(i, j)] = PairResult(i, j, m, fit, rmse, ratio=ratio,
                                   plausible=fit >= MIN_PAIR_FITNESS and ratio < MAX_PLANE_RATIO)
        if progress:
            progress(1)

    # 3. verification by cycle consistency
    if n >= 3:
        _cycle_support_pts(pairs, n, [np.asarray(c[0].points) for c in coarse], voxel)
    kept = [p for p in pairs.values()
            if p.plausible and (p.support > 0 or p.fitness >= UNVERIFIED_MIN_FITNESS)]

    # 4. spanning tree (Kruskal on support, then fitness) from the largest group
    parent = list(range(n))

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    tree: list[PairResult] = []
    for p in sorted(kept, key=lambda p: (p.support > 0, p.support, p.fitness), reverse=True):
        ra, rb = find(p.i), find(p.j)
        if ra != rb:
            parent[ra] = rb
            tree.append(p)
    groups: dict[int, list[int]] = {}
    for k in range(n):
        groups.setdefault(find(k), []).append(k)
    main = max(groups.values(), key=lambda g: (len(g), -g[0]))
    ref = main[0]
    poses: list[np.ndarray | None] = [None] * n
    poses[ref] = np.eye(4)
    changed = True
    while changed:
        changed = False
        for p in tree:
            if poses[p.i] is not None and poses[p.j] is None:
                poses[p.j] = poses[p.i] @ np.linalg.inv(p.j_from_i)
                changed = True
            elif poses[p.j] is not None and poses[p.i] is None:
                poses[p.i] = poses[p.j] @ p.j_from_i
                changed = True
    _grow_by_agreement(poses, pairs, [np.asarray(c[0].points) for c in coarse], voxel, tree)

    # 5. pose graph over the verified pair alignments, then every pose at once on
    # near-full-resolution views (sculptor.scan.multiview)
    placed = [k for k in range(n) if poses[k] is not None]
    pose_graph(poses, kept + tree, {k: medium[k] for k in placed}, ref, 0.75 * voxel,
               {(p.i, p.j) for p in tree})
    if progress:
        progress(1)
    views = {k: view_samples(scans_mm[k], fine, seed=seed + k) for k in placed}
    fit, rmse = refine_multiview(poses, views, ref, fine)
    if progress:
        progress(1)
    reasons: list[str | None] = [None] * n
    for k in range(n):
        if poses[k] is None:
            reasons[k] = ("no consistent overlap with the other scans (another object, "
                          "or too little overlap)")
    return RegistrationResult(poses, fit, rmse, reasons, list(pairs.values()))


def _cycle_support_pts(pairs: dict[tuple[int, int], PairResult], n: int,
                       points: list[np.ndarray], voxel: float) -> None:
    """Cycle consistency measured as RMS motion of scan a's own points around the loop."""

    def t(a: int, b: int) -> np.ndarray:  # b_from_a
        return pairs[(a, b)].j_from_i if a < b else np.linalg.inv(pairs[(b, a)].j_from_i)

    for a, b, c in itertools.combinations(range(n), 3):
        if not all(pairs[e].plausible for e in ((a, b), (b, c), (a, c))):
            continue
        loop = t(c, a) @ t(b, c) @ t(a, b)
        if (rot_angle_deg(loop) < CYCLE_ROT_DEG
                and _loop_ok(loop, points[a], CYCLE_TRANS_VOXELS * voxel)):
            for e in ((a, b), (b, c), (a, c)):
                pairs[e].support += 1


def _grow_by_agreement(poses: list, pairs: dict[tuple[int, int], PairResult],
                       points: list[np.ndarray], voxel: float, tree: list[PairResult]) -> None:
    """Place left-over scans whose edges to two placed scans predict the same pose.

    This closes the longer loops a triangle test misses (e.g. a back view that overlaps
    only its two 90-degree neighbours, which do not overlap each other).
    """
    n = len(poses)
    changed = True
    while changed:
        changed = False
        for k in range(n):
            if poses[k] is not None:
                continue
            preds = []  # (fitness, world_from_k, edge)
            for q in range(n):
                if poses[q] is None or q == k:
                    continue
                e = pairs[(min(k, q), max(k, q))]
                if not e.plausible:
                    continue
                q_from_k = e.j_from_i if k < q else np.linalg.inv(e.j_from_i)
                preds.append((e.fitness, poses[q] @ q_from_k, e))
            preds.sort(key=lambda x: -x[0])
            for a, b in itertools.combinations(range(len(preds)), 2):
                loop = np.linalg.inv(preds[a][1]) @ preds[b][1]
                if (rot_angle_deg(loop) < CYCLE_ROT_DEG
                        and _loop_ok(loop, points[k], CYCLE_TRANS_VOXELS * voxel)):
                    poses[k] = preds[a][1]
                    tree.append(preds[a][2])
                    changed = True
                    break


def pose_graph(poses: list, edges: list[PairResult], clouds: dict, ref: int, dist: float,
               certain: set[tuple[int, int]]) -> None:
    """Multiway pose graph in place (Levenberg-Marquardt, line-process pruning).

    Nodes are the placed scans (``clouds``: {index: cloud}); edges are the verified pair
    alignments already computed (no new ICP), weighted by their information matrices at
    ``dist``. Spanning-tree edges (``certain``) are odometry; every other edge is a loop
    closure the optimiser may prune.
    """
    reg = _o3d().pipelines.registration
    placed = sorted(clouds)
    index = {k: a for a, k in enumerate(placed)}
    graph = reg.PoseGraph()
    for k in placed:
        graph.nodes.append(reg.PoseGraphNode(poses[k]))
    seen = set()
    for p in edges:
        if p.i not in index or p.j not in index or (p.i, p.j) in seen:
            continue
        seen.add((p.i, p.j))
        info = reg.get_information_matrix_from_point_clouds(clouds[p.i], clouds[p.j], dist,
                                                            p.j_from_i)
        graph.edges.append(reg.PoseGraphEdge(index[p.i], index[p.j], p.j_from_i, info,
                                             uncertain=(p.i, p.j) not in certain))
    reg.global_optimization(
        graph, reg.GlobalOptimizationLevenbergMarquardt(),
        reg.GlobalOptimizationConvergenceCriteria(),
        reg.GlobalOptimizationOption(max_correspondence_distance=dist,
                                     edge_prune_threshold=0.25, reference_node=index[ref]))
    for k in placed:
        poses[k] = np.asarray(graph.nodes[index[k]].pose)
