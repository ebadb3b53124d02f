"""The four kinds of carving, as SDF compositions in normalised units (height about 1).

Piece frame (as everywhere in sculptor): +Z up, the base plane at z = 0, the base
centred on the origin, the figure faces -Y (towards the viewer of the ``front`` view).
Each builder draws its proportions and pose from ``rng`` and returns the normalised SDF
and the parameters it drew; :data:`STYLE` is the carver's hand, the same for every piece.
"""

from __future__ import annotations

import math
from typing import Any, Callable

import numpy as np

from sculptor.corpus.sdf import (
    F32, Points, capsule, ellipsoid, rot, round_box, round_cone, slab_z, smax, smin,
    swept_body,
)

# The carver's hand: constant across the corpus.
STYLE: dict[str, Any] = {
    "head_fraction": 0.098,  # head height / figure height: elongated, about 1 : 10
    "shoulder_fraction": 0.105,  # half shoulder width / height: narrow, Gothic
    "gouge_pitch_mm": 11.0,  # width of one gouge cut
    "gouge_depth_mm": 1.0,  # depth of the dish it leaves
    "fold_sharpness": 0.55,  # < 1: blocky carved folds with sharp valleys
    "nod_mean_deg": 12.0,  # heads bow slightly: humility
    "blend": 0.012,  # smooth-union radius between masses (normalised)
}
KINDS = ("standing", "bust", "seated", "abstract")

NormSdf = Callable[[Points], np.ndarray]


def _u(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(rng.uniform(lo, hi))


def _folds(n: int, depth: float, phase: float, twist: float, z_top: float, z_full: float,
           back: float = 0.45) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """Radial factor for vertical robe folds: none above ``z_top``, full depth at
    ``z_full`` and below; shallower at the back (-> ``back``); blocky carved profile."""
    sharp = F32(STYLE["fold_sharpness"])

    def radial(th: np.ndarray, z: np.ndarray) -> np.ndarray:
        w = np.clip((F32(z_top) - z) / F32(max(z_top - z_full, 1e-3)), 0, 1)
        w = w * w * (3 - 2 * w)
        c = np.cos(F32(n) * th + F32(phase) + F32(twist) * z)
        prof = np.sign(c) * np.abs(c) ** sharp
        # front (-y: th = -pi/2) full depth, back reduced
        facing = F32(0.5) * (1 - np.sin(th))
        amp = F32(depth) * (F32(back) + (1 - F32(back)) * facing)
        return 1 + amp * w * prof

    return radial


def _head(P: Points, c: tuple[float, float, float], hh: float, nod: float, turn: float,
          tilt: float, veil: bool, k: float) -> np.ndarray:
    """A head of height ``hh`` centred at ``c`` facing -y, with nose, brows, eye hollows,
    chin; optionally a veil/hood falling behind to the shoulders."""
    R = rot(yaw=turn, pitch=tilt, roll=-nod)
    s = hh / 0.11  # features designed for a head 0.11 tall
    d = ellipsoid(P, c, (0.040 * s, 0.050 * s, 0.055 * s), R)
    off = lambda v: tuple(np.asarray(c) + R @ (np.asarray(v) * s))  # noqa: E731
    d = smin(d, ellipsoid(P, off((0, -0.026, -0.030)), (0.022 * s, 0.022 * s, 0.022 * s), R),
             0.012 * s)  # jaw and chin
    d = smin(d, ellipsoid(P, off((0, -0.049, -0.004)), (0.0075 * s, 0.012 * s, 0.017 * s),
                          R @ rot(roll=0.35)), 0.006 * s)  # nose
    for sx in (-1, 1):
        d = smax(d, -ellipsoid(P, off((sx * 0.016, -0.046, 0.009)),
                               (0.011 * s, 0.008 * s, 0.0065 * s), R), 0.004 * s)
    d = smax(d, -ellipsoid(P, off((0, -0.047, -0.026)), (0.012 * s, 0.006 * s, 0.003 * s), R),
             0.003 * s)  # mouth line
    if veil:
        v = ellipsoid(P, off((0, 0.012, 0.004)), (0.050 * s, 0.052 * s, 0.064 * s), R)
        v = smin(v, round_cone(P, off((0, 0.02, 0.0)), off((0, 0.03, -0.10)),
                               0.050 * s, 0.064 * s), 0.02 * s)
        # open in front of the face
        lx, ly, lz = (P[0] - F32(c[0]), P[1] - F32(c[1]), P[2] - F32(c[2]))
        fy = R[:, 1]
        front = -(lx * F32(fy[0]) + ly * F32(fy[1]) + lz * F32(fy[2])) - F32(0.022 * s)
        v = smax(v, front, 0.006 * s)
        d = smin(d, v, 0.004 * s)
    else:  # hair: a cap over the crown and the back of the head, a hairline in front
        hair = ellipsoid(P, off((0, 0.008, 0.014)), (0.045 * s, 0.052 * s, 0.052 * s), R)
        lx, ly, lz = (P[0] - F32(c[0]), P[1] - F32(c[1]), P[2] - F32(c[2]))
        fy, fz = R[:, 1], R[:, 2]
        yl = lx * F32(fy[0]) + ly * F32(fy[1]) + lz * F32(fy[2])
        zl = lx * F32(fz[0]) + ly * F32(fz[1]) + lz * F32(fz[2])
        hair = smax(hair, -(yl + F32(0.5) * zl) - F32(0.012 * s), 0.004 * s)
        d = smin(d, hair, 0.002 * s)
    return d


def _base(P: Points, rng: np.random.Generator, bx: float, by: float, bh: float
          ) -> tuple[np.ndarray, dict]:
    shape = str(rng.choice(["oval", "block", "octagon"]))
    if shape == "oval":
        d = smax(ellipsoid(P, (0, 0, 0), (bx, by, 10.0)), slab_z(P, -0.05, bh), 0.006)
    elif shape == "block":
        d = round_box(P, (0, 0, (bh - 0.05) / 2), (bx, by, (bh + 0.05) / 2), 0.012)
    else:
        x, y = np.abs(P[0]), np.abs(P[1])
        d = np.maximum(np.maximum(x - F32(bx), y - F32(by)),
                       (x + y) * F32(0.7071) - F32(0.78 * (bx + by)))
        d = smax(d, slab_z(P, -0.05, bh), 0.005)
    return d, {"base_shape": shape, "base_half_mm_norm": [bx, by], "base_height_norm": bh}


def build(kind: str, rng: np.random.Generator) -> tuple[NormSdf, dict]:
    """Draw the parameters of one piece of ``kind``; return (sdf(P) in normalised units,
    parameters)."""
    if kind == "standing":
        return _standing(rng)
    if kind == "bust":
        return _bust(rng)
    if kind == "seated":
        return _seated(rng)
    if kind == "abstract":
        return _abstract(rng)
    raise ValueError(f"unknown kind {kind!r}")


def _arms(P: Points, pose: str, zs: float, sw: float, yfront: float, zc: float, r_arm: float,
          k: float, child_side: float) -> np.ndarray:
    """Sleeved arms (and what the hands hold) for a figure whose chest front is at
    ``yfront`` (negative) and shoulders at height ``zs``, half width ``sw``."""
    d = None
    elbow_z = zs - 0.20
    for sx in (-1, 1):
        sh = (sx * (sw - 0.022), yfront * 0.2, zs - 0.03)
        el = (sx * (sw - 0.012), yfront * 0.55, elbow_z)
        upper = round_cone(P, sh, el, r_arm, r_arm * 1.1)
        d = upper if d is None else smin(d, upper, k)
        if pose == "prayer":
            wr = (sx * 0.016, yfront - 0.030, zc)
        elif pose == "crossed":
            wr = (-sx * 0.045, yfront - 0.018, zc + 0.01 * sx)
        elif pose == "child":
            wr = (child_side * 0.01 + sx * 0.035, yfront - 0.035, zc - 0.06 + 0.04 * sx)
        elif pose == "book":
            wr = (sx * 0.042, yfront - 0.030, zc - 0.02)
        else:  # folded at the waist, in the sleeves
            wr = (sx * 0.018, yfront - 0.022, zc - 0.10)
        d = smin(d, round_cone(P, el, wr, r_arm * 1.05, r_arm * 0.85), k)
        # the wide sleeve hanging from the forearm
        hang = (el[0] * 0.85 + wr[0] * 0.15, el[1] * 0.7 + wr[1] * 0.3, elbow_z - 0.07)
        d = smin(d, round_cone(P, ((el[0] + wr[0]) / 2, (el[1] + wr[1]) / 2, (el[2] + wr[2]) / 2),
                               hang, r_arm * 0.95, r_arm * 0.8), k * 2.5)
    if pose == "prayer":
        hands = ellipsoid(P, (0, yfront - 0.040, zc + 0.040), (0.016, 0.024, 0.048),
                          rot(roll=-0.35))
        d = smin(d, hands, k * 0.6)
    elif pose == "crossed":
        for sx in (-1, 1):
            d = smin(d, ellipsoid(P, (-sx * 0.060, yfront - 0.012, zc + 0.02 * sx),
                                  (0.03, 0.014, 0.022)), k * 0.6)
    elif pose == "book":
        d = smin(d, round_box(P, (0, yfront - 0.05, zc + 0.01), (0.055, 0.018, 0.07), 0.006,
                              rot(roll=-0.3)), k * 0.5)
    elif pose == "child":
        cx = child_side * 0.035
        body = ellipsoid(P, (cx, yfront - 0.048, zc - 0.01), (0.045, 0.04, 0.085),
                         rot(pitch=child_side * 0.5))
        head = ellipsoid(P, (cx + child_side * 0.045, yfront - 0.05, zc + 0.085),
                         (0.028, 0.028, 0.032))
        d = smin(d, smin(body, head, 0.012), k)
    else:
        d = smin(d, ellipsoid(P, (0, yfront - 0.03, zc - 0.10), (0.04, 0.022, 0.03)), k)
    return d


def _standing(rng: np.random.Generator) -> tuple[NormSdf, dict]:
    hh = STYLE["head_fraction"] * _u(rng, 0.95, 1.08)
    sw = STYLE["shoulder_fraction"] * _u(rng, 0.9, 1.1)
    bh = _u(rng, 0.035, 0.06)
    zs = 1.0 - hh - 0.045  # shoulder line
    hem_rx, hem_ry = _u(rng, 0.12, 0.155), _u(rng, 0.09, 0.115)
    waist = _u(rng, 0.70, 0.82)
    nfold = int(rng.integers(5, 11))
    fold_depth = _u(rng, 0.10, 0.20)
    sway = _u(rng, -0.025, 0.025)
    lean = _u(rng, -0.03, 0.02)
    pose = str(rng.choice(["prayer", "prayer", "crossed", "child", "book", "folded"]))
    veil = bool(rng.random() < (0.9 if pose == "child" else 0.5))
    nod = math.radians(STYLE["nod_mean_deg"] + _u(rng, -8, 10))
    turn = math.radians(_u(rng, -14, 14))
    tilt = math.radians(_u(rng, -10, 10))
    child_side = float(rng.choice([-1.0, 1.0]))
    phase, twist = _u(rng, 0, 2 * math.pi), _u(rng, -3, 3)
    bx, by = hem_rx + _u(rng, 0.02, 0.05), hem_ry + _u(rng, 0.02, 0.05)
    k = STYLE["blend"]
    zk = [bh - 0.02, bh + 0.05, 0.30, 0.52, zs - 0.12, zs - 0.03, zs]
    rxk = [hem_rx * 1.06, hem_rx, hem_rx * 0.78, sw * 0.80 * waist / 0.76, sw * 0.90,
           sw * 0.94, sw * 0.82]
    ryk = [hem_ry * 1.04, hem_ry, hem_ry * 0.82, 0.060, 0.066, 0.062, 0.050]
    cxk = [0, 0, sway * 0.5, sway, sway * 0.6, sway * 0.3, sway * 0.2]
    cyk = [0, 0, lean * 0.3, lean * 0.6, lean * 0.85, lean * 0.95, lean]
    radial = _folds(nfold, fold_depth, phase, twist, z_top=0.66, z_full=0.25)
    head_c = (sway * 0.2 + math.sin(tilt) * 0.01, lean - 0.006,
              zs + 0.035 + hh / 2 - 0.008)
    yfront = lean * 0.85 - 0.066
    zc = zs - 0.17
    params = dict(head_fraction=hh, shoulder_half_width=sw, base_height=bh,
                  hem_radii=[hem_rx, hem_ry], waist=waist, folds=nfold,
                  fold_depth=fold_depth, sway=sway, lean=lean, pose=pose, veil=veil,
                  head_nod_deg=math.degrees(nod), head_turn_deg=math.degrees(turn),
                  head_tilt_deg=math.degrees(tilt))
    base_seed = int(rng.integers(2**31))
    params.update(_base((np.zeros(1, F32),) * 3, np.random.default_rng(base_seed), bx, by,
                        bh)[1])

    def f(P: Points) -> np.ndarray:
        body = smax(swept_body(P, zk, rxk, ryk, cxk, cyk, radial), slab_z(P, -1, zs), 0.01)
        d = smin(body, ellipsoid(P, (sway * 0.2, lean, zs - 0.02), (sw, 0.056, 0.05)), 0.04)
        d = smin(d, capsule(P, (sway * 0.2, lean, zs - 0.02), (head_c[0], lean, zs + 0.05),
                            0.027), k)
        d = smin(d, _head(P, head_c, hh, nod, turn, tilt, veil, k), k * 0.6)
        d = smin(d, _arms(P, pose, zs, sw, yfront, zc, 0.030, k * 1.5, child_side), k * 1.5)
        # feet peeping out under the hem, at the front
        for sx in (-1, 1):
            d = smin(d, ellipsoid(P, (sx * 0.035, -hem_ry * 0.95, bh + 0.012),
                                  (0.024, 0.04, 0.018)), 0.01)
        base, _ = _base(P, np.random.default_rng(base_seed), bx, by, bh)
        return smin(d, base, 0.015)

    return f, params


def _bust(rng: np.random.Generator) -> tuple[NormSdf, dict]:
    hh = _u(rng, 0.34, 0.40)
    plinth_h = _u(rng, 0.08, 0.14)
    chest_w, chest_d = _u(rng, 0.28, 0.34), _u(rng, 0.15, 0.18)
    veil = bool(rng.random() < 0.5)
    nod = math.radians(STYLE["nod_mean_deg"] + _u(rng, -10, 8))
    turn = math.radians(_u(rng, -20, 20))
    tilt = math.radians(_u(rng, -12, 12))
    nfold = int(rng.integers(4, 9))
    fold_depth = _u(rng, 0.03, 0.08)
    phase, twist = _u(rng, 0, 2 * math.pi), _u(rng, -2, 2)
    plinth = str(rng.choice(["block", "round"]))
    zs = 1.0 - hh - 0.07
    head_c = (0.0, -0.015, zs + 0.07 + hh / 2 - 0.02)
    k = STYLE["blend"] * 2.5
    radial = _folds(nfold, fold_depth, phase, twist, z_top=zs - 0.02, z_full=plinth_h + 0.1,
                    back=0.8)
    zk = [plinth_h - 0.02, plinth_h + 0.06, zs - 0.12, zs - 0.02]
    rxk = [chest_w * 0.72, chest_w * 0.86, chest_w, chest_w * 0.96]
    ryk = [chest_d * 0.8, chest_d * 0.92, chest_d, chest_d * 0.9]
    params = dict(head_fraction=hh, plinth=plinth, plinth_height=plinth_h,
                  chest_radii=[chest_w, chest_d], veil=veil, folds=nfold,
                  fold_depth=fold_depth, head_nod_deg=math.degrees(nod),
                  head_turn_deg=math.degrees(turn), head_tilt_deg=math.degrees(tilt))

    def f(P: Points) -> np.ndarray:
        body = smax(swept_body(P, zk, rxk, ryk, radial=radial), slab_z(P, -1, zs - 0.08),
                    0.02)
        d = smin(body, ellipsoid(P, (0, 0.005, zs - 0.09), (chest_w * 0.98, chest_d * 0.92,
                                                            0.13)), 0.05)
        d = smin(d, capsule(P, (0, 0.0, zs - 0.02), (0, -0.005, zs + 0.1), 0.075), k)
        d = smin(d, _head(P, head_c, hh, nod, turn, tilt, veil, k), k * 0.6)
        if plinth == "block":
            pl = round_box(P, (0, 0, (plinth_h - 0.05) / 2),
                           (chest_w * 0.72, chest_d * 0.95, (plinth_h + 0.05) / 2), 0.015)
        else:
            pl = smax(ellipsoid(P, (0, 0, 0), (chest_w * 0.7, chest_d * 0.95, 10.0)),
                      slab_z(P, -0.05, plinth_h), 0.01)
        return smin(d, pl, 0.02)

    return f, params


def _seated(rng: np.random.Generator) -> tuple[NormSdf, dict]:
    hh = STYLE["head_fraction"] * _u(rng, 1.35, 1.5)  # seated: the head counts for more
    sw = STYLE["shoulder_fraction"] * _u(rng, 1.25, 1.4)
    bh = _u(rng, 0.035, 0.055)
    seat_z = _u(rng, 0.36, 0.42)
    zs = 1.0 - hh - 0.055
    knee_y = -_u(rng, 0.17, 0.21)
    pose = str(rng.choice(["knees", "prayer", "child", "child"]))
    throne = bool(rng.random() < 0.5)
    veil = bool(rng.random() < (0.85 if pose == "child" else 0.5))
    nod = math.radians(STYLE["nod_mean_deg"] + _u(rng, -8, 6))
    turn = math.radians(_u(rng, -10, 10))
    tilt = math.radians(_u(rng, -8, 8))
    nfold = int(rng.integers(5, 10))
    fold_depth = _u(rng, 0.05, 0.11)
    phase = _u(rng, 0, 2 * math.pi)
    k = STYLE["blend"] * 1.3
    yb = 0.06  # torso centre, set back over the seat
    bx, by = sw + _u(rng, 0.05, 0.08), (abs(knee_y) + 0.1) / 2 + _u(rng, 0.02, 0.04)
    byc = (knee_y - 0.06 + yb + 0.14) / 2  # base centred under the whole figure
    params = dict(head_fraction=hh, shoulder_half_width=sw, base_height=bh, seat_height=seat_z,
                  knee_forward=-knee_y, pose=pose, throne=throne, veil=veil, folds=nfold,
                  fold_depth=fold_depth, head_nod_deg=math.degrees(nod),
                  head_turn_deg=math.degrees(turn), head_tilt_deg=math.degrees(tilt))
    radial = _folds(nfold, fold_depth, phase, 0.0, z_top=seat_z - 0.02, z_full=bh + 0.1,
                    back=0.2)
    head_c = (0.0, yb - 0.01 - byc, zs + 0.04 + hh / 2 - 0.01)
    yfront = yb - 0.085 - byc

    def f(P: Points) -> np.ndarray:
        P = (P[0], P[1] + F32(byc), P[2])  # figure frame: base centred under it
        torso = smax(swept_body(P, [seat_z - 0.05, seat_z + 0.1, zs - 0.1, zs],
                                [sw * 0.95, sw * 0.85, sw * 0.92, sw * 0.88],
                                [0.105, 0.09, 0.085, 0.065], [0, 0, 0, 0],
                                [yb, yb, yb, yb]),
                     slab_z(P, seat_z - 0.1, zs), 0.01)
        d = smin(torso, ellipsoid(P, (0, yb, zs - 0.005), (sw, 0.06, 0.04)), 0.03)
        # lap and knees under the robe
        lap = round_box(P, (0, (yb + knee_y) / 2, seat_z - 0.01),
                        (sw * 0.9, (yb - knee_y) / 2 + 0.02, 0.07), 0.05)
        d = smin(d, lap, 0.03)
        # the robe falls from the knees to the base, with folds
        drape = smax(swept_body(P, [bh - 0.02, bh + 0.05, seat_z - 0.03],
                                [sw * 1.0, sw * 0.92, sw * 0.86],
                                [0.07, 0.06, 0.055], [0, 0, 0],
                                [knee_y + 0.035, knee_y + 0.045, knee_y + 0.05], radial),
                     slab_z(P, -1, seat_z + 0.02), 0.01)
        d = smin(d, drape, 0.03)
        seat = round_box(P, (0, yb + 0.02, seat_z / 2), (sw * 0.95, 0.11, seat_z / 2), 0.02)
        d = smin(d, seat, 0.02)
        if throne:
            d = smin(d, round_box(P, (0, yb + 0.10, (seat_z + zs) / 2 - 0.05),
                                  (sw * 0.9, 0.025, (zs - seat_z) / 2), 0.015), 0.02)
        d = smin(d, capsule(P, (0, yb, zs - 0.02), (0, yb - 0.005, zs + 0.05), 0.03), k)
        d = smin(d, _head(P, (head_c[0], head_c[1] + byc, head_c[2]), hh, nod, turn, tilt,
                          veil, k), k * 0.6)
        if pose == "knees":
            for sx in (-1, 1):
                el = (sx * (sw - 0.005), yb - 0.02, zs - 0.19)
                d = smin(d, round_cone(P, (sx * (sw - 0.02), yb, zs - 0.03), el, 0.036, 0.038),
                         k * 1.5)
                hand = (sx * 0.06, knee_y + 0.03, seat_z + 0.045)
                d = smin(d, round_cone(P, el, hand, 0.038, 0.03), k * 1.5)
                d = smin(d, ellipsoid(P, (sx * 0.06, knee_y + 0.0, seat_z + 0.035),
                                      (0.024, 0.035, 0.02)), k * 0.6)
        else:
            zc = zs - 0.16 if pose == "prayer" else seat_z + 0.12
            d = smin(d, _arms(P, "child" if pose == "child" else "prayer", zs, sw,
                              yfront + byc, zc, 0.036, k * 1.5, 1.0), k * 1.5)
        base = round_box(P, (0, byc, (bh - 0.05) / 2), (bx, by, (bh + 0.05) / 2), 0.012)
        return smin(d, base, 0.015)

    return f, params


def _abstract(rng: np.random.Generator) -> tuple[NormSdf, dict]:
    form = str(rng.choice(["twisted_column", "embrace", "pierced"]))
    bh = _u(rng, 0.03, 0.06)
    k = STYLE["blend"]
    params: dict[str, Any] = dict(form=form, base_height=bh)
    if form == "twisted_column":
        lobes = int(rng.integers(2, 5))
        lobe = _u(rng, 0.12, 0.25)
        twist = _u(rng, 2.0, 6.0) * float(rng.choice([-1, 1]))
        r0, r1, r2 = _u(rng, 0.07, 0.10), _u(rng, 0.09, 0.14), _u(rng, 0.04, 0.07)
        params.update(lobes=lobes, lobe_depth=lobe, twist_rad=twist, radii=[r0, r1, r2])

        def radial(th: np.ndarray, z: np.ndarray) -> np.ndarray:
            return 1 + F32(lobe) * np.cos(F32(lobes) * th + F32(twist) * z)

        def f(P: Points) -> np.ndarray:
            d = swept_body(P, [0.0, 0.35, 0.7, 0.93, 1.0], [r0, r1, r1 * 0.8, r2, 0.01],
                           [r0, r1, r1 * 0.8, r2, 0.01], radial=radial)
            d = smax(d, slab_z(P, -1, 0.985), 0.02)
            base = round_box(P, (0, 0, (bh - 0.05) / 2), (r1 + 0.05, r1 + 0.05,
                                                          (bh + 0.05) / 2), 0.012)
            return smin(d, base, 0.02)

        return f, params
    if form == "embrace":
        turns = _u(rng, 0.35, 0.8)
        rad = _u(rng, 0.035, 0.06)
        thick = _u(rng, 0.05, 0.07)
        phase = _u(rng, 0, 2 * math.pi)
        params.update(turns=turns, helix_radius=rad, thickness=thick)
        segs = []
        for j in (0, 1):
            pts = []
            for t in np.linspace(0, 1, 9):
                a = phase + j * math.pi + 2 * math.pi * turns * t
                zt = bh + t * (0.86 - bh)
                r = rad * (1 + 0.6 * math.sin(math.pi * t))
                pts.append((r * math.cos(a), r * math.sin(a), zt))
            segs.append(pts)

        def f(P: Points) -> np.ndarray:
            d = None
            for j, pts in enumerate(segs):
                for a, b in zip(pts[:-1], pts[1:]):
                    t = a[2]
                    w = thick * (1.05 - 0.35 * t)
                    c = round_cone(P, a, b, w, w * 0.97)
                    d = c if d is None else smin(d, c, 0.02)
                top = pts[-1]
                d = smin(d, ellipsoid(P, (top[0] * 1.2, top[1] * 1.2, top[2] + 0.06),
                                      (0.045, 0.05, 0.075)), 0.02)
            base = round_box(P, (0, 0, (bh - 0.05) / 2), (0.16, 0.16, (bh + 0.05) / 2), 0.012)
            return smin(d, base, 0.02)

        return f, params
    # pierced: an elongated egg on a stem, opened by a hole through it
    egg_r = _u(rng, 0.16, 0.22)
    hole = _u(rng, 0.35, 0.5) * egg_r
    stem = _u(rng, 0.05, 0.07)
    yaw = _u(rng, -0.6, 0.6)
    params.update(egg_radius=egg_r, hole_radius=hole, stem_radius=stem, hole_yaw_rad=yaw)
    ez = 1.0 - 0.36

    def f(P: Points) -> np.ndarray:
        egg = ellipsoid(P, (0, 0, ez), (egg_r, egg_r * 0.75, 0.36))
        egg = smin(egg, round_cone(P, (0, 0, bh), (0, 0, ez - 0.2), stem * 1.4, stem), 0.05)
        x, y, z = P
        R = rot(yaw=yaw)
        lx = F32(R[0, 0]) * x + F32(R[1, 0]) * y
        lz = z - F32(ez + 0.04)
        cyl = np.sqrt(lx * lx + lz * lz) - F32(hole)
        d = smax(egg, -cyl, 0.03)
        base = round_box(P, (0, 0, (bh - 0.05) / 2), (egg_r * 0.9, egg_r * 0.9,
                                                      (bh + 0.05) / 2), 0.012)
        return smin(d, base, 0.02)

    return f, params
