"""The shared offline renderer: non-blank pictures whose silhouettes match the geometry."""

from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image

from sculptor.render import VIEWS, project_points, render_gallery, render_mesh

DATA = Path(__file__).resolve().parents[1] / "data"


def _mask(img: np.ndarray, bg=(255, 255, 255)) -> np.ndarray:
    return np.any(img != np.asarray(bg, np.uint8), axis=-1)


def _box():
    m = trimesh.creation.box(extents=(100.0, 60.0, 300.0))
    m.apply_translation((0, 0, 150))
    return m


@pytest.mark.parametrize("view", VIEWS)
def test_silhouette_matches_projected_extent(view):
    m = _box()
    size = (200, 160)
    img = render_mesh(m, view, size)
    assert img.shape == (160, 200, 3) and img.dtype == np.uint8
    mask = _mask(img)
    ys, xs = np.nonzero(mask)
    corners = np.array([[x, y, z] for x in m.bounds[:, 0] for y in m.bounds[:, 1]
                        for z in m.bounds[:, 2]])
    p = project_points(corners, view, m.bounds, size)
    # pixel centres covered: from ceil(min-0.5) to floor(max-0.5), within one pixel
    assert abs(xs.min() - p[:, 0].min()) <= 1.0 and abs(xs.max() + 1 - p[:, 0].max()) <= 1.0
    assert abs(ys.min() - p[:, 1].min()) <= 1.0 and abs(ys.max() + 1 - p[:, 1].max()) <= 1.0
    # convex box: its silhouette is the convex hull of the projected corners (area check)
    from scipy.spatial import ConvexHull

    hull_area = ConvexHull(p).volume
    assert abs(mask.sum() - hull_area) / hull_area < 0.03


def test_sphere_area_and_shading_from_upper_left():
    s = trimesh.creation.icosphere(subdivisions=4, radius=50.0)
    img = render_mesh(s, "front", (256, 256))
    mask = _mask(img)
    scale = 256 * (1 - 2 * 0.06) / 100.0
    assert abs(mask.sum() - np.pi * (50 * scale) ** 2) / mask.sum() < 0.02
    lum = img.astype(float).mean(-1)
    ys, xs = np.nonzero(mask)
    cy, cx = ys.mean(), xs.mean()
    upper_left = lum[int(cy - 40), int(cx - 30)]
    lower_right = lum[int(cy + 40), int(cx + 30)]
    assert upper_left > lower_right + 30


def test_real_scan_mesh_renders_face_detail():
    m = trimesh.load(DATA / "render" / "nefertiti_20k.ply", force="mesh")
    img = render_mesh(m, "front", (256, 256), background=(0, 0, 0))
    mask = _mask(img, (0, 0, 0))
    assert 0.15 < mask.mean() < 0.7
    # a shaded surface, not a flat silhouette: many distinct grey levels
    assert len(np.unique(img[mask].mean(-1).round())) > 60


def test_vertex_colors_and_bad_input():
    m = _box()
    red = np.tile([1.0, 0.0, 0.0], (len(m.vertices), 1))
    img = render_mesh(m, "three_quarter", (64, 64), vertex_colors=red)
    px = img[_mask(img)]
    assert (px[:, 1] == 0).all() and px[:, 0].max() > 100
    with pytest.raises(ValueError):
        render_mesh(m, "under", (64, 64))
    with pytest.raises(ValueError):
        render_mesh(m, "front", (64, 64), vertex_colors=np.zeros((3, 3)))
    with pytest.raises(ValueError):
        project_points(np.zeros((4, 2)), "front", m.bounds, (64, 64))


def test_gallery_grid(tmp_path):
    out = render_gallery([_box(), trimesh.creation.icosphere(radius=30)], tmp_path / "g.png",
                         titles=["box", "ball"], cell_px=96)
    im = np.asarray(Image.open(out).convert("RGB"))
    assert im.shape[1] >= 2 * 96 and im.shape[0] >= 96
    assert _mask(im).mean() > 0.1
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())


def test_depth_and_visibility_of_points():
    m = _box()  # front face at y = -30 (nearest in the front view), back face at y = +30
    z = render_mesh(m, "front", (120, 120))
    from sculptor.render import depth_map, points_visible

    d = depth_map(m, "front", (120, 120))
    assert np.isfinite(d).sum() == _mask(z).sum()
    assert np.allclose(d[np.isfinite(d)], 30.0)
    front = np.array([[0, -30, 100], [20, -30, 250], [-49, -30, 10]], float)
    back = front * [1, -1, 1]
    assert points_visible(front, m, "front", (120, 120)).all()
    assert not points_visible(back, m, "front", (120, 120)).any()
    # from the side (+X) the x = +50 face shows and the x = -50 face does not
    side = np.array([[50, 0, 100], [-50, 0, 100]], float)
    assert points_visible(side, m, "side", (120, 120)).tolist() == [True, False]
