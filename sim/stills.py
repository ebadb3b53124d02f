"""PNG stills of a simulation for people who cannot open a browser.

- ``deviation.png``: the carved piece seen from the front, side and top, coloured by its
  signed deviation from the design (red: gouge, green: within tolerance, blue: rest
  material), with a colour bar and the key figures.
- ``front.png``, ``side.png``, ``top.png``: one view each, large: the carved piece in the
  same deviation colours, the moves that fail marked sparsely on it, and a legend panel
  with the verdict, its reasons, the colour key and how many moves fail how. Failing moves
  are binned on the picture (one hollow ring per MARKER_CELL_PX cell, coloured by the
  worst status there, larger where more moves fail), so thousands of failing moves do not
  hide the part; moves hidden behind the piece in that view or outside the picture are
  counted in the legend, not drawn. The deepest gouge is pointed out where it is visible.
"""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import numpy as np

from sculptor.artifacts.core import atomic_write_bytes
from sculptor.render import points_visible, project_points, render_mesh, view_rotation, \
    write_png

STATUS_RGB = {1: (240, 150, 0), 2: (200, 0, 200), 3: (220, 0, 0)}
STATUS_NAME = {1: "near a limit", 2: "unreachable", 3: "colliding / through wood"}
STILL_VIEWS = ("front", "side", "top")
STILL_MAX_PX = (620, 720)  # the render of one view fits in this (w, h)
LEGEND_PX = 330
MARKER_CELL_PX = 18
DPI = 100


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


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return matplotlib, plt


def _fig_png(fig, dpi: int = DPI) -> bytes:
    _, plt = _pyplot()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    plt.close(fig)
    return buf.getvalue()


def write_stills(out: Path, mesh, d: np.ndarray, tol_mm: float, gouge_limit_mm: float,
                 toolpath, move_status: list[np.ndarray], rep) -> None:
    """Write deviation.png and front/side/top.png into ``out``.

    mesh : carved mesh (mm, workpiece frame); d : (n_vertices,) signed deviation, mm;
    move_status : per pass, (n_moves,) int8 status (0 ok, see STATUS_NAME); rep : the
    SimReport (verdict, reasons, material figures)."""
    if len(mesh.faces) == 0:
        blank = np.full((560, 560, 3), 255, np.uint8)
        for v in STILL_VIEWS:
            write_png(out / f"{v}.png", blank)
        write_png(out / "deviation.png", blank)
        return
    cols = deviation_colors(d, tol_mm, span_for(tol_mm))
    atomic_write_bytes(out / "deviation.png",
                       deviation_png(mesh, cols, tol_mm, gouge_limit_mm, rep))
    pts, status = failing_points(toolpath, move_status)
    for v in STILL_VIEWS:
        atomic_write_bytes(out / f"{v}.png", still_png(mesh, d, cols, v, tol_mm,
                                                       gouge_limit_mm, pts, status, rep))


def deviation_png(mesh, cols: np.ndarray, tol_mm: float, gouge_limit_mm: float, rep) -> bytes:
    """The three views side by side in deviation colours, with a colour bar."""
    matplotlib, plt = _pyplot()
    span = span_for(tol_mm)
    imgs = [render_mesh(mesh, v, (560, 560), vertex_colors=cols, background=(1, 1, 1))
            for v in STILL_VIEWS]
    fig, axes = plt.subplots(1, 4, figsize=(15, 4.6),
                             gridspec_kw={"width_ratios": [1, 1, 1, 0.06]})
    for ax, img, v in zip(axes, imgs, STILL_VIEWS):
        ax.imshow(img)
        ax.set_title(v)
        ax.axis("off")
    cmap, norm = deviation_colormap(tol_mm, span)
    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=axes[3])
    cb.set_label("carved - design, mm  (- gouge, + rest material)")
    m = rep.material
    fig.suptitle(
        f"Deviation from the design ({rep.res_mm} mm grid): max gouge {m.get('max_gouge_mm')} mm"
        f" (limit {gouge_limit_mm:.2f}), rest max {m.get('rest_max_mm')} mm, "
        f"{100 * (m.get('area_within_tol_ratio') or 0):.0f} % of the area within "
        f"{tol_mm} mm", fontsize=11)
    fig.tight_layout()
    return _fig_png(fig, dpi=90)


def failing_points(toolpath, move_status: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(m, 3) end points (mm) of the moves whose status is not ok, and (m,) their status."""
    pts = [p.position_mm[s > 0] for p, s in zip(toolpath.passes, move_status)]
    st = [s[s > 0] for s in move_status]
    if not pts:
        return np.zeros((0, 3)), np.zeros(0, np.int8)
    return np.concatenate(pts).reshape(-1, 3), np.concatenate(st).astype(np.int8)


def render_size(bounds: np.ndarray, view: str) -> tuple[int, int]:
    """(w, h) pixels for ``view`` of a piece with ``bounds``: its aspect, within STILL_MAX_PX."""
    b = np.asarray(bounds, float)
    corners = np.array([[b[i, 0], b[j, 1], b[k, 2]] for i in (0, 1) for j in (0, 1)
                        for k in (0, 1)]) @ view_rotation(view).T
    ext = np.maximum(corners[:, :2].max(0) - corners[:, :2].min(0), 1e-6)
    s = min(STILL_MAX_PX[0] / ext[0], STILL_MAX_PX[1] / ext[1])
    return max(240, int(ext[0] * s)), max(240, int(ext[1] * s))


def marker_bins(xy: np.ndarray, status: np.ndarray, cell_px: int = MARKER_CELL_PX
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Bin projected points (n, 2) px into cells of ``cell_px``: per occupied cell the mean
    position (k, 2) of its worst-status points, that status (k,) and how many points it
    holds (k,)."""
    if len(xy) == 0:
        return np.zeros((0, 2)), np.zeros(0, np.int8), np.zeros(0, np.int64)
    cell = np.floor(xy / cell_px).astype(np.int64)
    key = cell[:, 0] * 1_000_003 + cell[:, 1]
    _, inv, count = np.unique(key, return_inverse=True, return_counts=True)
    worst = np.zeros(len(count), np.int8)
    np.maximum.at(worst, inv, status)
    top = status == worst[inv]
    n_top = np.bincount(inv[top], minlength=len(count))
    pos = np.stack([np.bincount(inv[top], xy[top, i], minlength=len(count)) for i in (0, 1)],
                   1) / n_top[:, None]
    return pos, worst, count


def still_png(mesh, d: np.ndarray, cols: np.ndarray, view: str, tol_mm: float,
              gouge_limit_mm: float, pts: np.ndarray, status: np.ndarray, rep) -> bytes:
    """One view: the carved piece in deviation colours, failing moves as sparse rings and
    a legend panel (see the module docstring)."""
    matplotlib, plt = _pyplot()
    from matplotlib.lines import Line2D

    size = render_size(mesh.bounds, view)
    img = render_mesh(mesh, view, size, vertex_colors=cols, background=(0.97, 0.97, 0.96))
    w, h = size
    fig_w, fig_h = w + LEGEND_PX, max(h, 560)
    fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    ax = fig.add_axes((0, (fig_h - h) / fig_h, w / fig_w, h / fig_h))
    ax.imshow(img, interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")

    # failing moves: visible ones binned into rings, the others counted
    xy = project_points(pts, view, mesh.bounds, size) if len(pts) else np.zeros((0, 2))
    in_frame = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    seen = in_frame.copy()
    if in_frame.any():
        seen[in_frame] = points_visible(pts[in_frame], mesh, view, size, tol_mm=3.0)
    pos, worst, count = marker_bins(xy[seen], status[seen])
    order = np.argsort(worst, kind="stable")  # the worst drawn last, on top
    if len(pos):
        rgb = np.array([STATUS_RGB[int(s)] for s in worst[order]]) / 255
        ax.scatter(pos[order, 0], pos[order, 1], s=22 + 26 * np.log10(count[order]),
                   facecolors="none", edgecolors=rgb, linewidths=1.8)

    # the deepest gouge, when it is beyond the limit and visible here
    m = rep.material
    if len(d) and -float(d.min()) > gouge_limit_mm:
        i = int(np.argmin(d))
        p = np.asarray(mesh.vertices)[i:i + 1]
        if points_visible(p, mesh, view, size, tol_mm=1.0)[0]:
            (gx, gy), = project_points(p, view, mesh.bounds, size)
            ax.annotate(f"deepest gouge {-float(d.min()):.1f} mm", (gx, gy),
                        xytext=(gx + (40 if gx < w / 2 else -40), gy - 40),
                        ha="left" if gx < w / 2 else "right", fontsize=9,
                        color=(0.6, 0, 0), arrowprops={"arrowstyle": "->",
                                                       "color": (0.6, 0, 0)},
                        bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": (0.6, 0, 0)})

    # legend panel
    lg = fig.add_axes((w / fig_w, 0, LEGEND_PX / fig_w, 1))
    lg.axis("off")
    verdict = "GO" if rep.go else "NO-GO"
    lg.text(0.05, 0.985, f"{verdict}   ({view} view)", fontsize=15, weight="bold", va="top",
            color=(0, 0.5, 0) if rep.go else (0.7, 0, 0))
    y = 0.93
    for r in rep.reasons[:3]:
        txt = textwrap.shorten(r, 150, placeholder=" ...")
        lines = textwrap.wrap(txt, 44)
        lg.text(0.05, y, "- " + "\n  ".join(lines), fontsize=8, va="top")
        y -= 0.03 * len(lines) + 0.01
    if len(rep.reasons) > 3:
        lg.text(0.05, y, f"(+{len(rep.reasons) - 3} more reasons: report.md)", fontsize=8,
                va="top")
        y -= 0.04
    lg.text(0.05, y - 0.01, f"max gouge {m.get('max_gouge_mm')} mm (limit "
            f"{gouge_limit_mm:.2f}), rest max {m.get('rest_max_mm')} mm,\n"
            f"{100 * (m.get('area_within_tol_ratio') or 0):.0f} % of the area within "
            f"{tol_mm} mm ({rep.res_mm} mm grid)", fontsize=8, va="top")
    y -= 0.08
    # colour key of the surface
    span = span_for(tol_mm)
    cmap, norm = deviation_colormap(tol_mm, span)
    cax = fig.add_axes(((w + 0.05 * LEGEND_PX) / fig_w, y - 0.03 - 0.22 * 560 / fig_h,
                        0.06 * LEGEND_PX / fig_w, 0.22 * 560 / fig_h))
    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    cb.ax.tick_params(labelsize=7)
    lg.text(0.05, y, "surface: carved - design, mm", fontsize=9, va="top", weight="bold")
    lg.text(0.3, y - 0.05, f"below -{tol_mm}: gouge (red)\n+-{tol_mm}: within tolerance\n"
            f"above +{tol_mm}: rest material\n(blue; beyond +-{span:g} mm\nsaturated)",
            fontsize=8, va="top")
    y -= 0.05 + 0.22 * 560 / fig_h
    # marker key with counts
    lg.text(0.05, y, "failing moves (rings)", fontsize=9, va="top", weight="bold")
    handles, labels = [], []
    for s in (3, 2, 1):
        n_all = int((status == s).sum())
        n_here = int((status[seen] == s).sum())
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", ms=8, mew=1.8,
                              mec=np.array(STATUS_RGB[s]) / 255))
        labels.append(f"{STATUS_NAME[s]}: {n_all:,}\n({n_here:,} visible here)")
    lg.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.02, y - 0.02),
              frameon=False, fontsize=8, labelspacing=1.0)
    hidden = int((in_frame & ~seen).sum())
    lg.text(0.05, max(y - 0.27, 0.01), textwrap.fill(
        f"One ring per {MARKER_CELL_PX} px cell at the worst status there, larger where more "
        f"moves fail. Not drawn: {hidden:,} behind the piece in this view, "
        f"{int((~in_frame).sum()):,} outside the picture. Every failing move: "
        "report.json / report.md.", 50), fontsize=7, va="bottom", color=(0.3, 0.3, 0.3))
    return _fig_png(fig)
