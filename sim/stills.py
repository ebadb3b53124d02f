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
from sculptor.render import (Framing, depth_map, project_points, render_mesh, view_rotation,
                             write_png)

STATUS_RGB = {1: (240, 150, 0), 2: (200, 0, 200), 3: (220, 0, 0)}
STATUS_NAME = {1: "near a limit", 2: "unreachable", 3: "colliding / through wood"}
STILL_VIEWS = ("front", "side", "top")
BACKGROUND = (0.97, 0.97, 0.96)
STILL_MAX_PX = (620, 720)  # the render of one view fits in this (w, h)
LEGEND_PX = 330
MARKER_CELL_PX = 24
LIGHT_FACES = 500_000  # heavier carved meshes are drawn from a vertex-clustered copy
ON_SURFACE, IN_AIR, HIDDEN, OUTSIDE = 0, 1, 2, 3  # where a marked point lies in a view
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
    pts, status = failing_points(toolpath, move_status)
    light, light_cols = lighter(mesh, cols)
    renders = {}
    for v in STILL_VIEWS:
        size = render_size(mesh.bounds, v)
        renders[v] = render_mesh(light, v, size, vertex_colors=light_cols,
                                 background=BACKGROUND, bounds=mesh.bounds)
        atomic_write_bytes(out / f"{v}.png", still_png(mesh, d, renders[v], v, tol_mm,
                                                       gouge_limit_mm, pts, status, rep,
                                                       light))
    atomic_write_bytes(out / "deviation.png",
                       deviation_png([renders[v] for v in STILL_VIEWS], tol_mm,
                                     gouge_limit_mm, rep))


def deviation_png(imgs: list[np.ndarray], tol_mm: float, gouge_limit_mm: float, rep) -> bytes:
    """The three views (renders in deviation colours) side by side, with a colour bar."""
    matplotlib, plt = _pyplot()
    span = span_for(tol_mm)
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


def lighter(mesh, cols: np.ndarray, max_faces: int = LIGHT_FACES):
    """(mesh, vertex colours) with at most about ``max_faces`` faces for drawing: vertices
    clustered in cells of about a pixel of the largest still (open3d, colours averaged);
    the mesh itself when it is light enough."""
    if len(mesh.faces) <= max_faces:
        return mesh, cols
    import open3d as o3d
    import trimesh

    cell = float(np.max(mesh.extents)) / max(STILL_MAX_PX) * 1.5
    m = o3d.geometry.TriangleMesh(o3d.utility.Vector3dVector(np.asarray(mesh.vertices, float)),
                                  o3d.utility.Vector3iVector(np.asarray(mesh.faces, np.int32)))
    m.vertex_colors = o3d.utility.Vector3dVector(np.asarray(cols, float))
    s = m.simplify_vertex_clustering(cell, o3d.geometry.SimplificationContraction.Average)
    return (trimesh.Trimesh(np.asarray(s.vertices), np.asarray(s.triangles), process=False),
            np.asarray(s.vertex_colors))


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


def classify_points(pts: np.ndarray, mesh, view: str, size: tuple[int, int],
                    near_mm: float = 4.0, drawn=None) -> np.ndarray:
    """(n,) int8 where piece-frame points (n, 3) mm lie in a render of ``mesh``:
    ON_SURFACE within ``near_mm`` of the visible surface, IN_AIR in front of it or with no
    surface behind, HIDDEN behind it, OUTSIDE the picture. ``drawn``: the mesh the picture
    shows (a lighter copy), framed by ``mesh``'s bounds."""
    w, h = size
    out = np.full(len(pts), OUTSIDE, np.int8)
    if len(pts) == 0:
        return out
    fr = Framing.fit(view, mesh.bounds, size)
    xy, z = fr.project(pts)
    inside = (xy[:, 0] >= 0) & (xy[:, 0] < w) & (xy[:, 1] >= 0) & (xy[:, 1] < h)
    zbuf = depth_map(mesh if drawn is None else drawn, view, size, mesh.bounds)
    ix = np.clip(xy[:, 0].astype(np.int64), 0, w - 1)
    iy = np.clip(xy[:, 1].astype(np.int64), 0, h - 1)
    surf = zbuf[iy, ix]
    out[inside & (z < surf - near_mm)] = HIDDEN
    out[inside & (z >= surf - near_mm)] = ON_SURFACE
    out[inside & ((z > surf + near_mm) | ~np.isfinite(surf))] = IN_AIR
    return out



def still_png(mesh, d: np.ndarray, img: np.ndarray, view: str, tol_mm: float,
              gouge_limit_mm: float, pts: np.ndarray, status: np.ndarray, rep,
              drawn=None) -> bytes:
    """One view: ``img`` (the render of the carved piece in deviation colours, of
    ``drawn`` when it is a lighter copy of ``mesh``), failing moves on the surface as
    sparse rings, those in the air as small dots, and a legend panel (see the module
    docstring)."""
    matplotlib, plt = _pyplot()
    from matplotlib.lines import Line2D

    h, w = img.shape[:2]
    size = (w, h)
    fig_w, fig_h = w + LEGEND_PX, max(h, 600)
    fig = plt.figure(figsize=(fig_w / DPI, fig_h / DPI), dpi=DPI)
    ax = fig.add_axes((0, (fig_h - h) / fig_h, w / fig_w, h / fig_h))
    ax.imshow(img, interpolation="nearest")
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")

    # failing moves (and the deepest gouge, last): binned rings on the surface, dots in
    # the air, the others counted
    gouge = len(d) and -float(d.min()) > gouge_limit_mm
    gp = np.asarray(mesh.vertices)[[int(np.argmin(d))]] if gouge else np.zeros((0, 3))
    allp = np.concatenate([pts, gp]) if len(pts) else gp
    where = classify_points(allp, mesh, view, size, drawn=drawn)
    xy = project_points(allp, view, mesh.bounds, size) if len(allp) else np.zeros((0, 2))
    where, gwhere, gxy = where[:len(pts)], where[len(pts):], xy[len(pts):]
    xy = xy[:len(pts)]
    for cls, cell, ring in ((IN_AIR, MARKER_CELL_PX // 2, False),
                            (ON_SURFACE, MARKER_CELL_PX, True)):
        sel = where == cls
        pos, worst, count = marker_bins(xy[sel], status[sel], cell)
        order = np.argsort(worst, kind="stable")  # the worst drawn last, on top
        if not len(pos):
            continue
        rgb = np.array([STATUS_RGB[int(s)] for s in worst[order]]) / 255
        if ring:
            ax.scatter(pos[order, 0], pos[order, 1], s=30 + 40 * np.log10(count[order]),
                       facecolors="none", edgecolors=rgb, linewidths=1.6)
        else:
            ax.scatter(pos[order, 0], pos[order, 1], s=5, c=rgb, alpha=0.55, linewidths=0)
    m = rep.material
    if gouge and gwhere[0] == ON_SURFACE:
        gx, gy = gxy[0]
        ax.annotate(f"deepest gouge {-float(d.min()):.1f} mm", (gx, gy),
                    xytext=(gx + (40 if gx < w / 2 else -40), gy - 40),
                    ha="left" if gx < w / 2 else "right", fontsize=9,
                    color=(0.6, 0, 0), arrowprops={"arrowstyle": "->", "color": (0.6, 0, 0)},
                    bbox={"boxstyle": "round,pad=0.2", "fc": "white", "ec": (0.6, 0, 0)})

    # legend panel
    lg = fig.add_axes((w / fig_w, 0, LEGEND_PX / fig_w, 1))
    lg.axis("off")
    lg.set_xlim(0, LEGEND_PX)
    lg.set_ylim(fig_h, 0)  # pixels from the top

    def text(y, s, size=8, **kw):
        lg.text(12, y, s, fontsize=size, va="top", **kw)
        return y + (s.count("\n") + 1) * size * 1.45 + 4

    y = text(8, f"{'GO' if rep.go else 'NO-GO'}   ({view} view)", 15, weight="bold",
             color=(0, 0.5, 0) if rep.go else (0.7, 0, 0)) + 6
    for r in rep.reasons[:3]:
        y = text(y, "- " + "\n  ".join(textwrap.wrap(
            textwrap.shorten(r, 130, placeholder=" ..."), 46))) + 3
    if len(rep.reasons) > 3:
        y = text(y, f"(+{len(rep.reasons) - 3} more: report.md)")
    y = text(y + 10, f"max gouge {m.get('max_gouge_mm')} mm (limit {gouge_limit_mm:.2f})\n"
             f"rest max {m.get('rest_max_mm')} mm\n"
             f"{100 * (m.get('area_within_tol_ratio') or 0):.0f} % of the area within "
             f"{tol_mm} mm ({rep.res_mm} mm grid)")
    # colour key of the surface
    y = text(y + 8, "surface: carved - design, mm", 9, weight="bold")
    span = span_for(tol_mm)
    cmap, norm = deviation_colormap(tol_mm, span)
    bar_h = 120
    cax = fig.add_axes(((w + 14) / fig_w, 1 - (y + bar_h) / fig_h, 14 / fig_w, bar_h / fig_h))
    cb = fig.colorbar(matplotlib.cm.ScalarMappable(norm=norm, cmap=cmap), cax=cax)
    cb.ax.tick_params(labelsize=7)
    lg.text(75, y, f"below -{tol_mm}: gouge (red)\n+-{tol_mm}: within tolerance\n"
            f"above +{tol_mm}: rest material\n(blue; saturated beyond\n+-{span:g} mm)",
            fontsize=8, va="top")
    y += bar_h + 14
    # marker key with counts
    y = text(y, "failing moves", 9, weight="bold")
    handles, labels = [], []
    for s_ in (3, 2, 1):
        handles.append(Line2D([], [], marker="o", ls="", mfc="none", ms=8, mew=1.6,
                              mec=np.array(STATUS_RGB[s_]) / 255))
        labels.append(f"{STATUS_NAME[s_]}: {int((status == s_).sum()):,} moves")
    lg.legend(handles, labels, loc="upper left", frameon=False, fontsize=8,
              bbox_to_anchor=(0.0, 1 - y / fig_h))
    y += 3 * 22 + 8
    counts = [int((where == c).sum()) for c in (ON_SURFACE, IN_AIR, HIDDEN, OUTSIDE)]
    text(y, "\n".join(textwrap.wrap(
        f"Rings: moves ending on the surface, one per {MARKER_CELL_PX} px at the worst "
        f"status there, larger where more fail ({counts[0]:,} moves). Dots: in the air "
        f"({counts[1]:,}). Not drawn: {counts[2]:,} behind the piece in this view, "
        f"{counts[3]:,} outside the picture. Every failing move: report.json, report.md.",
        52)), 7, color=(0.3, 0.3, 0.3))
    return _fig_png(fig)
