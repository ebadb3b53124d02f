"""The PNG stills: many failing moves must not drown the part (sparse rings, a legend)."""

from __future__ import annotations

import io

import numpy as np
import trimesh
from PIL import Image

from sculptor.artifacts.toolpath import Toolpath
from sim import stills
from sim.deviation import DesignDistance


def test_marker_bins_keep_the_worst_status_per_cell():
    xy = np.array([[1.0, 1.0], [5.0, 5.0], [30.0, 2.0], [31.0, 3.0], [33.0, 4.0]])
    st = np.array([1, 3, 1, 1, 2], np.int8)
    pos, worst, count = stills.marker_bins(xy, st, cell_px=24)
    order = np.argsort(pos[:, 0])
    np.testing.assert_array_equal(worst[order], [3, 2])
    np.testing.assert_array_equal(count[order], [2, 3])
    np.testing.assert_allclose(pos[order][0], [5.0, 5.0])  # where the worst one is


def test_classify_points_on_the_surface_in_the_air_and_behind():
    box = trimesh.creation.box((40.0, 40.0, 40.0))
    box.apply_translation((0, 0, 20))
    size = stills.render_size(box.bounds, "front")
    pts = np.array([[0, -20.0, 20],  # on the front face
                    [0, -60.0, 20],  # in front of it, in the air
                    [0, 20.0, 20],  # on the back face: hidden
                    [500, 0, 20]])  # outside the picture
    got = stills.classify_points(pts, box, "front", size)
    assert list(got) == [stills.ON_SURFACE, stills.IN_AIR, stills.HIDDEN, stills.OUTSIDE]


def test_thousands_of_failing_moves_leave_the_part_readable(tmp_path, good_job):
    d, rep = good_job
    tp = Toolpath.load(d / "job.json")
    mesh = trimesh.load(d / "sim" / "carved.stl", force="mesh")
    dev = DesignDistance(trimesh.load(d / "design.stl", force="mesh"))(mesh.vertices)
    # every move fails, and 3000 more points on and around the part
    rng = np.random.default_rng(0)
    p = tp.passes[0]
    extra = rng.uniform(mesh.bounds[0] - 5, mesh.bounds[1] + 5, (3000, 3))
    p.position_mm = np.concatenate([p.position_mm, extra])
    p.kind = np.concatenate([p.kind, np.full(3000, p.kind[-1])])
    status = [np.where(np.arange(len(p.position_mm)) % 2 == 0, 3, 1).astype(np.int8)]
    rep = rep.model_copy(update={"go": False, "reasons": ["many moves collide"]})
    stills.write_stills(tmp_path, mesh, dev, 0.5, 0.6, tp, status, rep)
    for v in ("front", "side", "top"):
        img = np.asarray(Image.open(io.BytesIO((tmp_path / f"{v}.png").read_bytes())).convert("RGB"))
        h, w = img.shape[:2]
        assert w >= 600 and h >= 560, (v, w, h)
        part = img[:, : w - stills.LEGEND_PX].astype(int)
        red = (part[..., 0] > 180) & (part[..., 1] < 60) & (part[..., 2] < 60)
        green = (part[..., 1] > 150) & (part[..., 0] < 140) & (part[..., 2] < 140)
        assert red.any()  # the failing moves are marked ...
        assert red.mean() < 0.08  # ... sparsely
        assert green.mean() > 0.1  # and the part (within tolerance: green) still shows
        legend = img[:, w - stills.LEGEND_PX:]
        assert (legend.sum(2) < 200).mean() > 0.005  # the legend has text
    assert (tmp_path / "deviation.png").stat().st_size > 10_000
