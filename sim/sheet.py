"""The gouge's swept edge in closed form along lines of voxel centres.

The gouge cutter of :func:`sim.carve.make_cutter` is the circular segment S (the disk of
radius r about (cx, 0) cut by x <= x_max) in the tool plane z = 0, given a thickness
|z| <= tau so that a moving edge is caught where it crosses a voxel centre. A
sub-segment moves it by d at a constant orientation R (workpiece_from_tool): in the tool
frame a voxel centre q is cut when its path q - t e (e = R^T d, t in [0, 1]) passes
through the cutter.

Take the voxel centres on one line along a grid axis m, layer index l: their tool-frame
points q(l) are affine in l, so every condition below that is linear in q gives an
interval of l in closed form, and the one quadratic condition too:

- the swept tool-frame box (what the voxel engine's cull keeps): along each tool axis u,
  q_u in [lo_u + min(0, e_u), hi_u + max(0, e_u)], lo / hi the cutter's box;
- when the motion crosses the edge's plane (|e_z| >= MIN_CROSSING |e_xy|: the gouge
  cutting forward, every cutting move of a stroke): the point w(l) = q_xy - (q_z / e_z)
  e_xy where the centre's path crosses z = 0 is affine in l too. A path passes through
  the thick cutter while |q_z - t e_z| <= tau, i.e. within delta = tau / |e_z| of that
  crossing time, over which it moves by at most rho = delta |e_xy|; so a cut centre has
  w_x <= x_max + rho and |w - (cx, 0)| <= r + rho.

The intersection is one interval of layers per line, a tight superset of the voxels the
sub-segment cuts (about its swept volume; plus a rho-wide rim, rho <= 2 tau = 0.1 voxel),
found at a cost of one line through its projection plus one entry per voxel:
:func:`sim.carve.carve_pass` tests each candidate exactly, so the result is the voxel
engine's, voxel for voxel, without enumerating the blocks of each sub-segment's
axis-aligned box. Lines run along the grid axis that needs the fewest (the projection of
the sub-segment's world box), i.e. near the normal of the swept sheet.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

MIN_CROSSING = 0.5  # |e_z| >= MIN_CROSSING |e_xy|: crossing conditions apply (rho <= 2 tau)
MARGIN = 1e-3  # of a voxel: widening of every bound (the exact test runs in float32)
EPS = 1e-12
OFF = 1e30  # a bound that never binds
N_COEF = 28


def applies(cutter) -> bool:
    """Is ``cutter`` the thin gouge segment this module carves (one cylinder primitive cut
    by x <= x_max, symmetric about z = 0)?"""
    p = cutter.primitives
    return (len(p) == 1 and p[0].kind == "cylinder" and p[0].x_max is not None
            and abs(p[0].z_lo + p[0].z_hi) < 1e-12)


@dataclass
class LinePlan:
    """The lines of each sub-segment of a pass (torch tensors on the grid's device).

    lines (n,) int64 numpy: how many lines each sub-segment evaluates (its cost);
    axis (n,) int64: grid axis of the lines; ilo, ihi (n, 3) int64: the index box of its
    candidate voxels (inclusive); coef (n, N_COEF) float64: see :func:`_coefficients`.
    """

    lines: np.ndarray
    axis: torch.Tensor
    ilo: torch.Tensor
    ihi: torch.Tensor
    coef: torch.Tensor


def plan(grid, subs, cutter) -> LinePlan:
    """Axis, index box and closed-form coefficients of every sub-segment of ``subs``."""
    prim = cutter.primitives[0]
    res = grid.res
    a, d, rot = subs.a, subs.d, subs.rot
    e = np.einsum("nji,nj->ni", rot, d)  # motion in the tool frame
    margin = MARGIN * res
    box_lo = np.asarray(cutter.box_lo, float) + np.minimum(e, 0) - margin
    box_hi = np.asarray(cutter.box_hi, float) + np.maximum(e, 0) + margin
    # world box of the swept tool-frame box: its 8 corners (relative to a)
    corners = np.stack([np.stack([xx, yy, zz], 1) for xx in (box_lo[:, 0], box_hi[:, 0])
                        for yy in (box_lo[:, 1], box_hi[:, 1])
                        for zz in (box_lo[:, 2], box_hi[:, 2])], 1)  # (n, 8, 3)
    cw = np.einsum("nij,ncj->nci", rot, corners) + a[:, None]
    shape = np.array(grid.shape)
    lo = np.ceil((cw.min(1) - grid.origin) / res - 0.5 - 1e-9).astype(np.int64)
    hi = np.floor((cw.max(1) - grid.origin) / res - 0.5 + 1e-9).astype(np.int64)
    lo, hi = np.maximum(lo, 0), np.minimum(hi, shape - 1)
    ext = np.maximum(hi - lo + 1, 0)
    # lines along axis m: the product of the other two extents; take the fewest
    per_axis = np.stack([ext[:, 1] * ext[:, 2], ext[:, 2] * ext[:, 0], ext[:, 0] * ext[:, 1]], 1)
    axis = np.argmin(per_axis, 1)
    lines = np.where(ext.min(1) > 0, per_axis[np.arange(len(a)), axis], 0)
    coef = _coefficients(grid, a, rot, e, axis, box_lo, box_hi, prim)
    dev = grid.occ.device
    return LinePlan(lines, torch.as_tensor(axis, device=dev), torch.as_tensor(lo, device=dev),
                    torch.as_tensor(hi, device=dev),
                    torch.as_tensor(coef, dtype=torch.float64, device=dev))


def _coefficients(grid, a, rot, e, axis, box_lo, box_hi, prim) -> np.ndarray:
    """(n, N_COEF) per sub-segment. The line through voxel (i_p, i_q) (p, q: the axes after
    m, cyclically) has at layer l the tool-frame point q = Q + i_p Gp + i_q Gq + l Gm, and
    crosses the edge's plane at w - c = W + i_p Wp + i_q Wq + l W1 (2-vectors).

    Columns: 0-2 Q, 3-5 Gp, 6-8 Gq, 9-11 Gm, 12-14 the box's lower bounds, 15-17 its upper
    bounds, 18-19 W, 20-21 Wp, 22-23 Wq, 24-25 W1, 26 x bound of w - c, 27 squared radius
    bound (OFF where the motion does not cross the plane)."""
    n = len(a)
    res = grid.res
    rows = np.arange(n)
    # R^T (origin + res/2 - a); R[m, :] is R^T e_m
    Q = np.einsum("nji,nj->ni", rot, grid.origin + 0.5 * res - a)
    Gp = res * rot[rows, (axis + 1) % 3]
    Gq = res * rot[rows, (axis + 2) % 3]
    Gm = res * rot[rows, axis]
    exy = np.hypot(e[:, 0], e[:, 1])
    ez = np.abs(e[:, 2])
    cross = (ez >= MIN_CROSSING * exy) & (ez > 1e-6 * res)
    ez_s = np.where(cross, e[:, 2], 1.0)
    kap = np.where(cross[:, None], e[:, :2] / ez_s[:, None], 0.0)
    c = np.array([prim.cx, prim.cy])
    tau = prim.z_hi
    rho = np.where(cross, (tau + MARGIN * res) / np.where(cross, ez, 1.0) * exy, 0.0) \
        + MARGIN * res
    out = np.empty((n, 28))
    out[:, 0:3], out[:, 3:6], out[:, 6:9], out[:, 9:12] = Q, Gp, Gq, Gm
    out[:, 12:15], out[:, 15:18] = box_lo, box_hi
    out[:, 18:20] = Q[:, :2] - Q[:, 2:3] * kap - c
    out[:, 20:22] = Gp[:, :2] - Gp[:, 2:3] * kap
    out[:, 22:24] = Gq[:, :2] - Gq[:, 2:3] * kap
    out[:, 24:26] = Gm[:, :2] - Gm[:, 2:3] * kap
    out[:, 26] = np.where(cross, prim.x_max + rho - prim.cx, OFF)
    out[:, 27] = np.where(cross, (prim.radius + rho) ** 2, OFF)
    out[~cross, 18:26] = 0.0
    return out


def _linear(L, H, ok, q0, g, lo, hi):
    """Narrow [L, H] to the l with lo <= q0 + l g <= hi (elementwise tensors)."""
    moves = g.abs() > EPS
    g_s = torch.where(moves, g, torch.ones_like(g))
    la, lb = (lo - q0) / g_s, (hi - q0) / g_s
    L = torch.where(moves, torch.maximum(L, torch.minimum(la, lb)), L)
    H = torch.where(moves, torch.minimum(H, torch.maximum(la, lb)), H)
    return L, H, ok & (moves | ((q0 >= lo) & (q0 <= hi)))


def candidates(grid, lp: LinePlan, subs_idx: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Voxels that the sub-segments ``subs_idx`` (int64 indices into the plan) may cut:
    (flat voxel index (v,), sub-segment index (v,)), both int64."""
    dev = grid.occ.device
    m, lo, hi = lp.axis[subs_idx], lp.ilo[subs_idx], lp.ihi[subs_idx]
    p_ax, q_ax = (m + 1) % 3, (m + 2) % 3
    ar = torch.arange(len(subs_idx), device=dev)
    p_lo, q_lo = lo[ar, p_ax], lo[ar, q_ax]
    nq = (hi[ar, q_ax] - q_lo + 1).clamp_min(0)
    nl = (hi[ar, p_ax] - p_lo + 1).clamp_min(0) * nq
    s = torch.repeat_interleave(ar, nl)  # line -> local sub-segment
    if len(s) == 0:
        z = torch.zeros(0, dtype=torch.int64, device=dev)
        return z, z
    local = torch.arange(len(s), device=dev) - (torch.cumsum(nl, 0) - nl)[s]
    nqs = nq[s]
    ip = p_lo[s] + torch.div(local, nqs, rounding_mode="floor")
    iq = q_lo[s] + local - (ip - p_lo[s]) * nqs
    del local, nqs
    c = lp.coef[subs_idx][s]  # (lines, 28)
    fp, fq = ip.to(torch.float64), iq.to(torch.float64)
    L = torch.full_like(fp, -OFF)
    H = torch.full_like(fp, OFF)
    ok = torch.ones_like(fp, dtype=torch.bool)
    for u in range(3):  # the swept tool-frame box
        q0 = c[:, u] + fp * c[:, 3 + u] + fq * c[:, 6 + u]
        L, H, ok = _linear(L, H, ok, q0, c[:, 9 + u], c[:, 12 + u], c[:, 15 + u])
    # crossing point relative to the disk centre: w0 + l w1
    w0x = c[:, 18] + fp * c[:, 20] + fq * c[:, 22]
    w0y = c[:, 19] + fp * c[:, 21] + fq * c[:, 23]
    w1x, w1y = c[:, 24], c[:, 25]
    L, H, ok = _linear(L, H, ok, w0x, w1x, torch.full_like(fp, -OFF), c[:, 26])
    A = w1x * w1x + w1y * w1y  # |w0 + l w1|^2 <= rr: A l^2 + 2 B l + C <= 0
    B = w0x * w1x + w0y * w1y
    C = w0x * w0x + w0y * w0y - c[:, 27]
    quad = A > EPS
    disc = B * B - A * C
    sq = torch.sqrt(disc.clamp_min(0))
    A_s = torch.where(quad, A, torch.ones_like(A))
    L = torch.where(quad, torch.maximum(L, (-B - sq) / A_s), L)
    H = torch.where(quad, torch.minimum(H, (-B + sq) / A_s), H)
    ok &= torch.where(quad, disc >= 0, C <= 0)
    del c, w0x, w0y, A, B, C, disc, sq, fp, fq
    ms = m[s]
    k0 = torch.maximum(torch.ceil(L.clamp(-1e9, 1e9)).long(), lo[s, ms])
    k1 = torch.minimum(torch.floor(H.clamp(-1e9, 1e9)).long(), hi[s, ms])
    cnt = torch.where(ok, (k1 - k0 + 1).clamp_min(0), torch.zeros_like(k0))
    keep = cnt.nonzero().squeeze(1)  # most lines of a sub-segment's box miss it
    cnt, k0, s, ms = cnt[keep], k0[keep], s[keep], ms[keep]
    ny, nz = grid.shape[1], grid.shape[2]
    stride = torch.tensor([ny * nz, nz, 1], device=dev)
    # flat index of the line's layer 0, and the step per layer
    base = ip[keep] * stride[p_ax[s]] + iq[keep] * stride[q_ax[s]]
    step = stride[ms]
    line = torch.repeat_interleave(torch.arange(len(s), device=dev), cnt)
    first = base + k0 * step - (torch.cumsum(cnt, 0) - cnt) * step
    flat = first[line] + torch.arange(len(line), device=dev) * step[line]
    return flat, subs_idx[s[line]]
