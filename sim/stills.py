"""PNG stills of a simulation for people who cannot open a browser.

- ``deviation.png``: the carved piece seen from the front, side and top, coloured by its
  signed deviation from the design (red: gouge, green: within tolerance, blue: rest
  material), with a colour bar and the key figures.
- ``front.png``, ``side.png``, ``top.png``: the carved piece in wood with the moves that
  are near a limit (orange), unreachable (magenta) or colliding (red) marked on it, and the
  go / no-go verdict.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sculptor.artifacts.core import atomic_write_bytes
from sculptor.render import png_bytes, project_points, render_mesh, write_png

STATUS_RGB = {1: (240, 150, 0), 2: (200, 0, 200), 3: (220, 0, 0)}
STILL_VIEWS = ("front", "side", "top")


def deviation_colormap(tol_mm: float, span_mm: float):
    """(colormap, norm) for signed deviation in [-span, span] mm."""
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    t = min(tol_mm / (2 * span_mm), 0.45)
    stops = [(0.0, (0.70, 0.0, 0.0)), (0.5 - t - 0.02, (1.0, 0.55, 0.1)),
             (0.5 - t, (0.35, 0.75, 0.35)), (0.5 + t, (0.35, 0.75, 0.35)),
             (0.5 + t + 0.02, (0.55, 0.80, 0.95)), (1.0, (0.05, 0.15, 0.60))]
    return LinearSegmentedColormap.from_list("deviation", stops), Normalize(-span_mm, span_mm)


def deviation_colors(d: np.ndarray, tol_mm: float, span_mm: float) -> np.ndarray:
    """(n,) signed deviation, mm -> (n, 3) float RGB in [0, 1]."""
    cmap, norm = deviation_colormap(tol_mm, span_mm)
    return cmap(norm(np.clip(d, -span_mm, span_mm)))[:, :3]


def span_for(tol_mm: float) -> float:
    return max(4.0 * tol_mm, 2.0)


def write_stills(out: Path, mesh, d: np.ndarray, tol_mm: float, gouge_limit_mm: float,
                 toolpath, move_status: list[np.ndarray], rep) -> None:
    """Write deviation.png and front/side/top.png into ``out``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    span = span_for(tol_mm)
    size = (560, 560)
    if len(mesh.faces) == 0:
        blank = np.full((size[1], size[0], 3), 255, np.uint8)
        for v in STILL_VIEWS:
            write_png(out / f"{v}.png", blank)
        write_png(out / "deviation.png", blank)
        return
    cols = deviation_colors(d, tol_mm, span)
    bounds = mesh.bounds
    imgs = [render_mesh(mesh, v, size, vertex_colors=cols, background=(1, 1, 1))
            for v in STILL_VIEWS]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.6),
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
    for ax, img, v in zip(axes, imgs, STILL_VIEWS):
        ax.imshow(img)
        ax.set_title(v)
        ax.axis("off")
    cmap, norm = deviation_colormap(tol_mm, span)
    sm = matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap)
    cb = fig.colorbar(sm, cax=axes[3])
    cb.set_label("carved - design, mm  (- gouge, + rest material)")
    m = rep.material
    fig.suptitle(
        f"Deviation from the design ({rep.res_mm} mm grid): max gouge {m.get('max_gouge_mm')} mm"
        f" (limit {gouge_limit_mm:.2f}), rest max {m.get('rest_max_mm')} mm, "
        f"{100 * (m.get('area_within_tol_ratio') or 0):.0f} % of the area within "
        f"{tol_mm} mm", fontsize=11)
    fig.tight_layout()
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(out / "deviation.png", buf.getvalue())

    # wood stills with the problem moves marked
    from PIL import Image, ImageDraw

    a_l, b_l, st = [], [], []
    for p, s in zip(toolpath.passes, move_status):
        bad = np.nonzero(s > 0)[0]
        a_l.append(p.position_mm[np.maximum(bad - 1, 0)])  # each failing move as a segment
        b_l.append(p.position_mm[bad])
        st.append(s[bad])
    pa = np.concatenate(a_l) if a_l else np.zeros((0, 3))
    pts = np.concatenate(b_l) if b_l else np.zeros((0, 3))
    st = np.concatenate(st) if st else np.zeros(0, np.int8)
    verdict = "GO" if rep.go else "NO-GO"
    for v in STILL_VIEWS:
        img = Image.fromarray(render_mesh(mesh, v, size, background=(0.95, 0.95, 0.94)))
        dr = ImageDraw.Draw(img)
        if len(pts):
            k = max(1, len(pts) // 4000)
            qa = project_points(pa[::k], v, bounds, size)
            qb = project_points(pts[::k], v, bounds, size)
            for (xa, ya), (x, y), s in zip(qa, qb, st[::k]):
                dr.line([xa, ya, x, y], fill=STATUS_RGB[int(s)], width=2)
                dr.ellipse([x - 2, y - 2, x + 2, y + 2], fill=STATUS_RGB[int(s)])
        dr.rectangle([0, 0, size[0], 18], fill=(0, 120, 0) if rep.go else (170, 0, 0))
        dr.text((6, 3), f"{verdict}  {v} view   orange: near limit  magenta: unreachable  "
                f"red: colliding", fill=(255, 255, 255))
        atomic_write_bytes(out / f"{v}.png", png_bytes(np.asarray(img)))
