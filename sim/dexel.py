"""Fixed-axis carving with sheared dexels: rotary cutters whose axis stays put in a pass.

Roughing passes (z-level or indexed side roughing) keep one tool axis ``a`` for the whole
pass. Along a ray parallel to ``a`` the swept volume of a cylinder translated along a
straight move is one interval, in closed form: the ray lies within the cutter's radius
for t in [t0, t1] (a quadratic in t), and over that time the cutter's body covers
[min(tip(t0), tip(t1)) + z_lo, max(tip(t0), tip(t1)) + z_hi] along the ray. A ball's
sphere swept along a move is a capsule, whose intersection with a ray is closed form too.
So a move costs (rays under its footprint), not (voxels in its box): path x tool width /
res^2 instead of path x cutter cross-section / res^3, and moves need no subdivision
(the orientation is constant, every move is exact whatever its length).

Rays: a lattice at voxel pitch in the plane ``x_m = origin_m`` of the grid axis m along
which ``a`` is largest, sheared along ``a``: the ray through lattice point (rp, rq) meets
voxel layer k at an offset of (k + 0.5) res a_pq / a_m, so each voxel centre takes the
ray nearest to it, (rp, rq) = (i_p, i_q) + off(k) with integer off(k). For an axis along
a grid axis the rays pass through the voxel centres (exact, like the voxel engine);
otherwise a voxel is decided by a ray at most res/2 away along each lattice axis (at most
res * sqrt(2) / 2 across the axis), below the grid's own resolution of the surface.

Per pass: all (move, ray) intervals -> difference array along the layers of the rays
touched -> cumulative sum -> covered rays per layer, cleared from the occupancy grid by
plain slices. A rapid's removed volume is exact in time order: the voxels a rapid sweeps
that held material before the pass are tracked through the pass, and count for the rapid
when no earlier move of the pass reached them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from sculptor.artifacts.toolpath import MoveKind
from sculptor.profiles import RotaryTool

AXIS_TOLERANCE_RAD = 1e-6  # a pass whose tool axis turns more than this uses the voxel engine
CHUNK_PAIRS = 1_000_000  # (move, ray) pairs per batch
SLAB_CELLS = 600_000_000  # ray x layer cells of one difference array (int16: 1.2 GB)
EPS = 1e-12


def pass_axis(frames: np.ndarray) -> np.ndarray | None:
    """The tool axis (3,) of a pass when it is the same for all moves, else None."""
    if len(frames) == 0:
        return None
    z = np.asarray(frames, float)[:, :, 2]
    a = z[0] / np.linalg.norm(z[0])
    cos = z @ a / np.linalg.norm(z, axis=1)
    return a if float(np.min(cos)) >= math.cos(AXIS_TOLERANCE_RAD) else None


@dataclass(frozen=True)
class AxialCutter:
    """A rotary cutter seen along its axis: cylinders (z_lo, z_hi, radius) in the tool frame
    (tip at 0, body along -z) and sphere centres (z, radius) of a ball end."""

    cylinders: tuple[tuple[float, float, float], ...]
    spheres: tuple[tuple[float, float], ...]

    @property
    def radius(self) -> float:
        return max(r for *_, r in self.cylinders)


def axial_cutter(tool: RotaryTool) -> AxialCutter:
    """Same solids as :func:`sim.carve.make_cutter` (bull: the three-cylinder staircase)."""
    rad, fl = tool.radius_mm, tool.flute_length_mm
    if tool.kind == "ball":
        top = -max(fl, rad)
        return AxialCutter(((top, -rad, rad),), ((-rad, rad), (top, rad)))
    if tool.kind == "flat":
        return AxialCutter(((-fl, 0.0, rad),), ())
    rc = tool.corner_radius_mm
    c45 = math.cos(math.radians(45.0))
    return AxialCutter(((-fl, 0.0, rad - rc), (-fl, -rc * (1 - c45), rad - rc * (1 - c45)),
                        (-fl, -rc, rad)), ())


def _roots(a, b, c):
    """Real roots of a x^2 + 2 b x + c = 0 (a > 0 where used): (lo, hi, ok)."""
    disc = b * b - a * c
    ok = (disc >= 0) & (a > EPS)
    sq = torch.sqrt(disc.clamp_min(0))
    a_s = torch.where(a > EPS, a, torch.ones_like(a))
    return (-b - sq) / a_s, (-b + sq) / a_s, ok


class Lattice:
    """The sheared ray lattice of one axis over one grid (see module docstring)."""

    def __init__(self, a: np.ndarray, origin: np.ndarray, res: float, shape) -> None:
        self.a = np.asarray(a, float) / np.linalg.norm(a)
        self.m = int(np.argmax(np.abs(self.a)))
        self.p, self.q = (i for i in range(3) if i != self.m)
        self.origin = np.asarray(origin, float)
        self.res = float(res)
        self.shape = tuple(int(s) for s in shape)
        nm = self.shape[self.m]
        k = np.arange(nm) + 0.5
        slope = self.a / self.a[self.m]
        self.off_p = np.rint(-k * slope[self.p]).astype(np.int64)  # (nm,)
        self.off_q = np.rint(-k * slope[self.q]).astype(np.int64)
        self.rp0, self.rq0 = int(self.off_p.min()), int(self.off_q.min())
        self.nrp = self.shape[self.p] + int(self.off_p.max()) - self.rp0
        self.nrq = self.shape[self.q] + int(self.off_q.max()) - self.rq0
        # oblique projection along a onto the plane x_m = origin_m: rho(X) = X_pq - X_m s_pq
        self.slope_pq = slope[[self.p, self.q]]

    def rho(self, x: np.ndarray) -> np.ndarray:
        """(n, 3) points -> (n, 2) lattice-plane coordinates (mm) of the rays through them."""
        return x[:, [self.p, self.q]] - (x[:, [self.m]] - self.origin[self.m]) * self.slope_pq

    def footprint_half(self, radius: float) -> np.ndarray:
        """(2,) half-extent along p, q of a disk of ``radius`` across the axis, projected."""
        e1 = np.cross(self.a, np.eye(3)[np.argmin(np.abs(self.a))])
        e1 /= np.linalg.norm(e1)
        e2 = np.cross(self.a, e1)
        r1 = e1[[self.p, self.q]] - e1[self.m] * self.slope_pq
        r2 = e2[[self.p, self.q]] - e2[self.m] * self.slope_pq
        return radius * np.hypot(r1, r2)


def _pairs(lat: Lattice, cut: AxialCutter, p0: torch.Tensor, d: torch.Tensor,
           move: torch.Tensor):
    """All (move, ray) pairs of a batch of moves with their covered layer ranges.

    p0, d : (n, 3) float64 start and motion of each move; move : (n,) move index.
    Returns ray id (m,) int64 (rp - rp0) * nrq + (rq - rq0), k0, k1 (m,) int64 (layers
    k0 <= k < k1 covered), move (m,) int64; several rows per pair for several solids.

    Rows (move, rp) carry the geometry; along a row the ray at s (mm from the move's
    start along the lattice's q axis) has offset u + s w - t e from the cutter axis at
    time t, all other figures are affine or quadratic in s, so a pair costs a few
    scalar operations.
    """
    dev = p0.device
    a = torch.as_tensor(lat.a, device=dev)
    res, (p, q, m) = lat.res, (lat.p, lat.q, lat.m)
    o = torch.as_tensor(lat.origin, device=dev)
    R = cut.radius
    half = torch.as_tensor(lat.footprint_half(R), device=dev)
    slope = torch.as_tensor(lat.slope_pq, device=dev)

    def rho(x):
        return x[:, [p, q]] - (x[:, [m]] - o[m]) * slope

    r0, r1 = rho(p0), rho(p0 + d)
    lo_pq = torch.minimum(r0, r1) - half
    hi_pq = torch.maximum(r0, r1) + half
    o_pq = o[[p, q]]
    ilo = torch.ceil((lo_pq - o_pq) / res - 0.5).long()
    ihi = torch.floor((hi_pq - o_pq) / res - 0.5).long()
    rmin = torch.tensor([lat.rp0, lat.rq0], device=dev)
    rmax = rmin + torch.tensor([lat.nrp - 1, lat.nrq - 1], device=dev)
    ilo, ihi = torch.maximum(ilo, rmin), torch.minimum(ihi, rmax)
    nrow = (ihi[:, 0] - ilo[:, 0] + 1).clamp_min(0)
    seg = torch.repeat_interleave(torch.arange(len(p0), device=dev), nrow)
    start = torch.cumsum(nrow, 0) - nrow
    rp = ilo[seg, 0] + torch.arange(len(seg), device=dev) - start[seg]

    def perp(v):
        return v - (v @ a)[:, None] * a

    # row: ray points X(s) = base + s e_q, s from the move start's lattice q coordinate
    sc = r0[seg, 1]
    base = torch.zeros(len(seg), 3, dtype=p0.dtype, device=dev)
    base[:, p] = o[p] + (rp + 0.5) * res
    base[:, q] = sc
    base[:, m] = o[m]
    eq = torch.zeros(3, dtype=p0.dtype, device=dev)
    eq[q] = 1.0
    P0, Dm = p0[seg], d[seg]
    u = perp(base - P0)
    w = perp(eq[None])[0]
    e = perp(Dm)
    A = float((w * w).sum())
    B = -(e @ w)
    C = (e * e).sum(1)
    D = u @ w
    E = -(u * e).sum(1)
    G = (u * u).sum(1)
    F = G - R * R
    # s-range of {Q(s, t) <= 0, 0 <= t <= 1}: ends on t = 0, t = 1, or where dQ/dt = 0
    A_ = torch.full_like(C, A)
    cands = [_roots(A_, D, F), _roots(A_, B + D, C + 2 * E + F)]
    big = C > EPS
    C_s = torch.where(big, C, torch.ones_like(C))
    x_lo, x_hi, x_ok = _roots(A - B * B / C_s, D - B * E / C_s, F - E * E / C_s)
    tol = 1e-9
    for s in (x_lo, x_hi):
        ts = -(B * s + E) / C_s
        ok = x_ok & big & (ts >= -tol) & (ts <= 1 + tol)
        cands.append((s, s, ok))
    s_lo = torch.full_like(C, math.inf)
    s_hi = torch.full_like(C, -math.inf)
    for lo, hi, ok in cands:
        s_lo = torch.where(ok, torch.minimum(s_lo, lo), s_lo)
        s_hi = torch.where(ok, torch.maximum(s_hi, hi), s_hi)
    jlo = torch.ceil((s_lo + sc - o[q]) / res - 0.5).clamp(-(2 ** 40), 2 ** 40).long()
    jhi = torch.floor((s_hi + sc - o[q]) / res - 0.5).clamp(-(2 ** 40), 2 ** 40).long()
    jlo = torch.maximum(jlo, torch.full_like(jlo, lat.rq0))
    jhi = torch.minimum(jhi, torch.full_like(jhi, lat.rq0 + lat.nrq - 1))
    ncol = (jhi - jlo + 1).clamp_min(0)
    row = torch.repeat_interleave(torch.arange(len(seg), device=dev), ncol)
    start = torch.cumsum(ncol, 0) - ncol
    rq = jlo[row] + torch.arange(len(row), device=dev) - start[row]
    del start
    # per pair (scalars): s, and the row's coefficients
    s = o[q] + (rq + 0.5) * res - sc[row]
    Et = E[row] + s * B[row]
    Ct = C[row]
    G2 = (A * s + 2 * D[row]) * s + G[row]  # |u + s w|^2
    tip = ((P0 - base) @ a)[row] - s * a[q]  # lambda of the tip at t = 0
    dtip = (Dm @ a)[row]
    ray = (rp[row] - lat.rp0) * lat.nrq + (rq - lat.rq0)
    mv = move[seg[row]]
    out = []
    lam_to_k = a[m] / res  # layer index per unit lambda, from the plane x_m = o_m

    def emit(lam_lo, lam_hi, ok):
        ka, kb = lam_lo * lam_to_k - 0.5, lam_hi * lam_to_k - 0.5
        k0 = torch.ceil(torch.minimum(ka, kb)).clamp(0, lat.shape[m]).long()
        k1 = (torch.floor(torch.maximum(ka, kb)) + 1).clamp(0, lat.shape[m]).long()
        ok = ok & (k1 > k0)
        out.append((ray[ok], k0[ok], k1[ok], mv[ok]))

    big = Ct > EPS
    Ct_s = torch.where(big, Ct, torch.ones_like(Ct))
    for z_lo, z_hi, r in cut.cylinders:
        Ft = G2 - r * r
        disc = Et * Et - Ct * Ft
        sq = torch.sqrt(disc.clamp_min(0))
        ta, tb = -Et - sq, -Et + sq
        t0 = torch.where(big, (ta / Ct_s).clamp(0, 1), torch.zeros_like(Ct))
        t1 = torch.where(big, (tb / Ct_s).clamp(0, 1), torch.ones_like(Ct))
        ok = torch.where(big, (disc >= 0) & (ta <= Ct) & (tb >= 0), Ft <= 0)
        l0, l1 = tip + t0 * dtip, tip + t1 * dtip
        emit(torch.minimum(l0, l1) + z_lo, torch.maximum(l0, l1) + z_hi, ok)
    for zc, r in cut.spheres:  # sphere centres P + zc a swept along D: a capsule
        x0 = base[row]
        x0[:, q] += s
        lo, hi, ok = _ray_capsule(x0 - (P0[row] + zc * a), a, Dm[row], r)
        emit(lo, hi, ok)
    return tuple(torch.cat(x) for x in zip(*out))


def _ray_capsule(w0: torch.Tensor, a: torch.Tensor, D: torch.Tensor, r: float):
    """lambda-interval of the line w0 + lambda a (|a| = 1) within r of the segment
    [0, D] (w0, D (m, 3) relative to the segment start): (lo, hi, ok)."""
    one = torch.ones_like(w0[:, 0])
    lo = torch.full_like(one, math.inf)
    hi = torch.full_like(one, -math.inf)
    for c in (w0, w0 - D):  # the two end spheres
        b = c @ a
        s_lo, s_hi, ok = _roots(one, b, (c * c).sum(1) - r * r)
        lo = torch.where(ok, torch.minimum(lo, s_lo), lo)
        hi = torch.where(ok, torch.maximum(hi, s_hi), hi)
    L = torch.linalg.norm(D, dim=1)
    has = L > 1e-9
    dn = D / torch.where(has, L, one)[:, None]
    da = dn @ a
    dw = (dn * w0).sum(1)
    # distance to the segment's line: (1 - da^2) l^2 + 2 (a.w0 - da dw) l + |w0|^2 - dw^2 - r^2
    A = 1 - da * da
    Bq = w0 @ a - da * dw
    Cq = (w0 * w0).sum(1) - dw * dw - r * r
    c_lo, c_hi, ok = _roots(A, Bq, Cq)
    par = A <= EPS  # the line runs along the segment: the spheres bound it
    # within the segment: 0 <= dw + l da <= L
    da_s = torch.where(da.abs() > EPS, da, one)
    ta, tb = -dw / da_s, (L - dw) / da_s
    slab_lo = torch.where(da.abs() > EPS, torch.minimum(ta, tb), torch.full_like(one, -math.inf))
    slab_hi = torch.where(da.abs() > EPS, torch.maximum(ta, tb), torch.full_like(one, math.inf))
    slab_ok = (da.abs() > EPS) | ((dw >= 0) & (dw <= L))
    c_lo, c_hi = torch.maximum(c_lo, slab_lo), torch.minimum(c_hi, slab_hi)
    ok = ok & ~par & has & slab_ok & (c_lo <= c_hi)
    lo = torch.where(ok, torch.minimum(lo, c_lo), lo)
    hi = torch.where(ok, torch.maximum(hi, c_hi), hi)
    return lo, hi, lo <= hi


def _move_batches(lat: Lattice, cut: AxialCutter, p0: np.ndarray, d: np.ndarray,
                  sel: np.ndarray) -> list[np.ndarray]:
    """Split the moves ``sel`` into batches of about CHUNK_PAIRS (bounding-box estimate)."""
    half = lat.footprint_half(cut.radius)
    r0, r1 = lat.rho(p0[sel]), lat.rho(p0[sel] + d[sel])
    ext = (np.abs(r1 - r0) + 2 * half) / lat.res + 1
    est = np.cumsum(ext[:, 0] * ext[:, 1])
    cuts = np.searchsorted(est, np.arange(CHUNK_PAIRS, est[-1] if len(est) else 0,
                                          CHUNK_PAIRS))
    return [b for b in np.split(sel, np.unique(cuts)) if len(b)]


def carve_pass_dexel(grid, position: np.ndarray, kind: np.ndarray, axis: np.ndarray,
                     tool: RotaryTool, progress: Callable[[int], None] | None = None
                     ) -> np.ndarray:
    """Remove the swept volume of a fixed-axis pass of a rotary ``tool`` from ``grid``.

    position (n, 3) TCP per move, kind (n,) MoveKind, axis (3,) the tool z axis. Move i
    runs from pose i-1 to pose i (move 0 stands at its pose). Returns (n,) removed volume
    per move, mm3, for the rapid moves (time-ordered, exact); 0 for the others.
    """
    dev = grid.occ.device
    n = len(position)
    removed = np.zeros(n)
    if n == 0:
        return removed
    lat = Lattice(axis, grid.origin, grid.res, grid.shape)
    cut = axial_cutter(tool)
    pos = np.asarray(position, float)
    p0 = np.concatenate([pos[:1], pos[:-1]])
    d = pos - p0
    t_p0 = torch.as_tensor(p0, dtype=torch.float64, device=dev)
    t_d = torch.as_tensor(d, dtype=torch.float64, device=dev)
    occ3 = grid.occ.view(grid.shape)
    is_rapid = np.asarray(kind) == int(MoveKind.RAPID)

    # the block of rays the pass reaches, and layer slabs whose difference array fits
    half = lat.footprint_half(cut.radius)
    r0, r1 = lat.rho(p0), lat.rho(pos)
    lo = np.floor((np.minimum(r0, r1) - half - lat.origin[[lat.p, lat.q]]) / lat.res - 0.5)
    hi = np.ceil((np.maximum(r0, r1) + half - lat.origin[[lat.p, lat.q]]) / lat.res - 0.5)
    rp_lo = int(max(lo[:, 0].min(), lat.rp0)) - lat.rp0
    rp_hi = int(min(hi[:, 0].max(), lat.rp0 + lat.nrp - 1)) - lat.rp0 + 1
    rq_lo = int(max(lo[:, 1].min(), lat.rq0)) - lat.rq0
    rq_hi = int(min(hi[:, 1].max(), lat.rq0 + lat.nrq - 1)) - lat.rq0 + 1
    if rp_hi <= rp_lo or rq_hi <= rq_lo:
        return removed
    nbp, nbq = rp_hi - rp_lo, rq_hi - rq_lo
    nm = lat.shape[lat.m]
    slab = max(1, min(nm, SLAB_CELLS // (nbp * nbq) - 1))
    slabs = [(s0, min(s0 + slab, nm)) for s0 in range(0, nm, slab)]
    batches = _move_batches(lat, cut, p0, d, np.arange(n))
    rapid_batches = _move_batches(lat, cut, p0, d, np.nonzero(is_rapid)[0])

    def batch_pairs(b):
        s_ = torch.as_tensor(b, device=dev)
        return _pairs(lat, cut, t_p0[s_], t_d[s_], s_)

    def accumulate(diff, pairs, s0, s1):
        ray, k0, k1, _ = pairs
        sel = (k0 < s1) & (k1 > s0)
        ray, k0, k1 = ray[sel], k0[sel], k1[sel]
        lr = (ray // lat.nrq - rp_lo) * nbq + (ray % lat.nrq - rq_lo)
        ones = torch.ones(len(lr), dtype=diff.dtype, device=dev)
        diff.index_add_(0, (k0.clamp(s0, s1) - s0) * (nbp * nbq) + lr, ones)
        diff.index_add_(0, (k1.clamp(s0, s1) - s0) * (nbp * nbq) + lr, -ones)

    def layers(diff, s0, s1):
        """Yield (k, covered rays of layer k as a view matching the voxels, voxel view)."""
        run = torch.zeros(nbp, nbq, dtype=diff.dtype, device=dev)
        dv = diff.view(s1 - s0 + 1, nbp, nbq)
        for k in range(s0, s1):
            run += dv[k - s0]
            op, oq = int(lat.off_p[k]) - lat.rp0, int(lat.off_q[k]) - lat.rq0
            # voxel i uses ray i + off: i in [lo - off, hi - off) within the grid
            ip0, ip1 = max(0, rp_lo - op), min(lat.shape[lat.p], rp_hi - op)
            iq0, iq1 = max(0, rq_lo - oq), min(lat.shape[lat.q], rq_hi - oq)
            if ip0 >= ip1 or iq0 >= iq1:
                continue
            bp0, bq0 = ip0 + op - rp_lo, iq0 + oq - rq_lo
            yield (k, run[bp0:bp0 + ip1 - ip0, bq0:bq0 + iq1 - iq0] > 0,
                   occ3.select(lat.m, k)[ip0:ip1, iq0:iq1], (ip0 + op, iq0 + oq))

    # ------------------------------------------------ rapids: cells with material before
    cand: list[torch.Tensor] = []
    if rapid_batches:
        for s0, s1 in slabs:
            diff = torch.zeros((s1 - s0 + 1) * nbp * nbq, dtype=torch.int16, device=dev)
            for b in rapid_batches:
                accumulate(diff, batch_pairs(b), s0, s1)
            for k, cov, vox, (rp_, rq_) in layers(diff, s0, s1):
                hit = (cov & vox).nonzero()
                if len(hit):
                    cand.append(((hit[:, 0] + rp_) * lat.nrq + hit[:, 1] + rq_) * nm + k)
            del diff
    c_key = torch.sort(torch.cat(cand)).values if cand else None  # ray * nm + layer
    first = (torch.full((len(c_key),), n, dtype=torch.int64, device=dev)
             if c_key is not None else None)
    # candidates not reached yet: batches come in time order, so a candidate reached by
    # a batch cannot be reached earlier by a later one and is dropped from the search
    active = torch.arange(len(c_key), device=dev) if c_key is not None else None
    a_key = c_key

    # ------------------------------------------------ all moves: clear slab by slab
    for si, (s0, s1) in enumerate(slabs):
        diff = torch.zeros((s1 - s0 + 1) * nbp * nbq, dtype=torch.int16, device=dev)
        for b in batches:
            pairs = batch_pairs(b)
            if si == 0 and first is not None and len(active):
                _earliest(first, a_key, active, nm, pairs)
                left = first[active] == n
                if int(left.sum()) < 0.9 * len(active):
                    active = active[left]
                    a_key = c_key[active]
            accumulate(diff, pairs, s0, s1)
            if progress and si == len(slabs) - 1:
                progress(len(b))
        for _, cov, vox, _ in layers(diff, s0, s1):
            vox &= ~cov
        del diff
    if first is not None:
        first = first[first < n]
        by_rapid = first[torch.as_tensor(is_rapid, device=dev)[first]]
        removed += torch.bincount(by_rapid, minlength=n).cpu().numpy() * grid.res ** 3
    return removed


def _earliest(first: torch.Tensor, c_key: torch.Tensor, c_index: torch.Tensor, nm: int,
              pairs) -> None:
    """first[c_index[i]] = min(first[c_index[i]], move) over pairs whose ray holds candidate
    cell i (key c_key[i] = ray * nm + layer, sorted) within their layer range."""
    ray, k0, k1, mv = pairs
    lo = torch.searchsorted(c_key, ray * nm + k0)
    hi = torch.searchsorted(c_key, ray * nm + k1)
    hit = (hi > lo).nonzero().squeeze(1)
    if len(hit) == 0:
        return
    cnt = hi[hit] - lo[hit]
    pi = torch.repeat_interleave(hit, cnt)
    st = torch.cumsum(cnt, 0) - cnt
    ci = lo[pi] + torch.arange(len(pi), device=c_key.device) - torch.repeat_interleave(st, cnt)
    first.scatter_reduce_(0, c_index[ci], mv[pi], reduce="amin")
