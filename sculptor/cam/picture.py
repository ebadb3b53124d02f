"""``JOB/toolpath.png``: the passes drawn over a shaded render of the design.

Left: three-quarter view with the finishing passes (each band its own colour); right:
front view with the roughing passes. Only moves whose tool faces the viewer are drawn
(the others are on the far side of the piece).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sculptor.artifacts.toolpath import MoveKind

_COLORS = [(200, 40, 40), (40, 110, 200), (30, 150, 60), (200, 120, 0), (140, 50, 170),
           (0, 150, 150), (170, 150, 0), (220, 60, 140), (90, 90, 90)]


def draw_job(path: Path, mesh, passes, size: int = 640) -> Path:
    from PIL import Image, ImageDraw

    from sculptor.render import project_points, render_mesh, view_rotation, write_png

    panels = []
    for view, op in (("three_quarter", "finish"), ("front", "rough")):
        b = np.asarray(mesh.bounds, float).copy()
        pts = [p.position_mm[p.kind == MoveKind.CUT] for p in passes
               if p.operation == op and p.n_moves]
        if pts and sum(len(x) for x in pts):
            allp = np.concatenate(pts)
            b = np.stack([np.minimum(b[0], allp.min(0)), np.maximum(b[1], allp.max(0))])
        img = Image.fromarray(render_mesh(mesh, view, (size, size), bounds=b))
        draw = ImageDraw.Draw(img, "RGBA")
        toward = view_rotation(view)[2]
        ci = 0
        for p in passes:
            if p.operation != op and not (op == "rough" and p.operation == "rest"):
                continue
            col = _COLORS[ci % len(_COLORS)]
            ci += 1
            if p.n_moves < 2:
                continue
            xy = project_points(p.position_mm, view, b, (size, size))
            if p.strategy.startswith("gouge"):
                face = p.tool_frame[:, :, 0] @ toward > 0.25  # x ~ surface normal
            else:
                face = -p.tool_frame[:, :, 2] @ toward > 0.25
            cut = (p.kind == MoveKind.CUT) & np.roll(p.kind != MoveKind.RAPID, 0)
            ok = cut[1:] & face[1:] & face[:-1]
            alpha = 200 if op == "finish" else 110
            for i in np.flatnonzero(ok):
                draw.line([tuple(xy[i]), tuple(xy[i + 1])], fill=(*col, alpha), width=1)
        draw.text((8, 6), f"{op}ing passes ({view.replace('_', '-')} view)",
                  fill=(0, 0, 0, 255))
        panels.append(np.asarray(img))
    return write_png(path, np.concatenate(panels, axis=1))
