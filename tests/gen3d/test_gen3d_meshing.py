"""Grid -> design mesh repair on real (synthetic-analytic and corpus) grids."""

from __future__ import annotations

import numpy as np
import torch

from sculptor.dataset import load_grids
from sculptor.gen3d.augment import augment
from sculptor.gen3d.meshing import grid_to_design_mesh, repair_grid


def test_dataset_grids_become_valid_designs(syn_data):
    _, _, grids = load_grids(syn_data)
    for g in grids[:6]:
        r = grid_to_design_mesh(g, 400.0, n_points=256)
        assert r.valid, r.checks
        m = r.mesh
        assert m.is_watertight and m.is_winding_consistent and m.volume > 0
        assert abs(m.bounds[0, 2]) < 1e-9 and abs(m.bounds[1, 2] - 400.0) < 1e-6
        base = m.vertices[np.abs(m.vertices[:, 2]) < 1e-6]
        assert len(base) >= 3 and np.allclose(base[:, :2].mean(0), 0.0, atol=1e-6)
        assert r.unit_points.shape == (256, 3)


def test_repair_keeps_one_component_and_cuts_flat_base():
    R = 32
    c = (np.arange(R) + 0.5) / R
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    big = np.sqrt((x - .5) ** 2 + (y - .5) ** 2 + (z - .45) ** 2) - 0.3
    stray = np.sqrt((x - .85) ** 2 + (y - .85) ** 2 + (z - .9) ** 2) - 0.06
    g = np.clip(np.minimum(big, stray) * R / 4, -1, 1)
    r = grid_to_design_mesh(g, 250.0)
    assert r.valid, r.checks
    assert len(r.mesh.split(only_watertight=False)) == 1
    assert 0.9 < r.kept_fraction < 1.0  # the stray blob was dropped
    # a sphere cut flat: the base is a disc of real area at z = 0
    assert r.checks["flat_base"] and r.checks["stable"]
    g2, z_cut, kept = repair_grid(g)
    assert (g2[:, :, : int(z_cut)] > 0).all()


def test_empty_grid_is_invalid_not_a_crash():
    r = grid_to_design_mesh(np.ones((32, 32, 32), np.float32), 400.0)
    assert not r.valid and r.mesh is None


def test_augment_turns_about_z_only(syn_data):
    _, _, grids = load_grids(syn_data)
    x = torch.from_numpy(grids[:4]).unsqueeze(1)
    y = augment(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape
    # never tilt: the inside area of every horizontal layer is kept up to the plan scale
    ax = (x < 0).float().sum((1, 2, 3))
    ay = (y < 0).float().sum((1, 2, 3))
    big = ax > 80  # small layers change more from resampling alone
    assert torch.all((ay[big] / ax[big] - 1).abs() < 0.3)
    low_x = [(xi[0] < 0).any(dim=(0, 1)).nonzero()[0].item() for xi in x]
    low_y = [(yi[0] < 0).any(dim=(0, 1)).nonzero()[0].item() for yi in y]
    assert low_x == low_y
    assert not torch.allclose(x, y)


def test_corpus_pieces_become_valid_designs():
    from sculptor.corpus import default_dataset_path

    manifest, entries, grids = load_grids(default_dataset_path(), "held_out")
    kinds = {}
    for e, g in zip(entries, grids):
        kinds.setdefault(e.kind, g)  # one piece of each kind (bust, standing, ...)
    for kind, g in kinds.items():
        r = grid_to_design_mesh(g, 400.0)
        assert r.valid, (kind, r.checks)
        assert r.kept_fraction > 0.97, kind


def test_pointed_tip_below_the_foot_is_sawn_off_and_the_design_stands():
    """A figure on a cone tip (the failure of first draws that fell over): the base is
    cut where the section is real, not on the tip's last voxels."""
    from sculptor.gen3d.meshing import base_layer

    R = 32
    c = (np.arange(R) + 0.5) / R
    x, y, z = np.meshgrid(c, c, c, indexing="ij")
    body = np.sqrt((x - .5) ** 2 + (y - .5) ** 2 + ((z - .55) / 1.6) ** 2) - 0.22
    # a thin tip hanging below the body, off-centre: standing on it, the piece falls over
    tip = np.maximum(np.sqrt((x - .62) ** 2 + (y - .5) ** 2) - 0.03 - 0.25 * (z - .08),
                     .08 - z)
    g = np.clip(np.minimum(body, tip) * R / 4, -1, 1).astype(np.float32)
    areas = (g < 0).sum(axis=(0, 1))
    lo = int(np.nonzero(areas >= 2)[0][0])
    kb = base_layer(areas)
    assert kb > lo and areas[kb] >= 0.25 * areas[lo:lo + 10].max()
    r = grid_to_design_mesh(g, 300.0)
    assert r.valid, r.checks
    # a plinth is the lowest and largest section: the base stays on it
    assert base_layer(np.array([0, 0, 40, 40, 12, 12, 30, 30, 30, 20, 5, 0])) == 2
    assert base_layer(np.zeros(8)) is None
