"""The corpus as a dataset: layout, split, gallery, determinism and the shipped copy."""

import json
import shlex

import numpy as np
from scipy import ndimage
import pytest
import trimesh
from PIL import Image

from sculptor.artifacts.sdf import SdfGrid
from sculptor.corpus import (
    KINDS, default_dataset_path, generate_corpus, make_piece_sdf, piece_kind, piece_seed,
    sdf_grid, validate_piece,
)
from sculptor.dataset import load_grids, load_manifest, split_of


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("c") / "corpus"
    m = generate_corpus(5, 21, out, res=20, progress=False, gallery=5)
    return m, out


def test_layout_split_and_gallery(corpus):
    m, out = corpus
    assert m.source == "corpus" and m.res == 20 and len(m.pieces) == 5
    man, root = load_manifest(out)
    assert [p.id for p in man.pieces] == [p.id for p in m.pieces]
    _, entries, grids = load_grids(out)
    assert grids.shape == (5, 20, 20, 20) and np.abs(grids).max() <= 1.0 + 1e-3
    for e, g in zip(entries, grids):
        assert e.split == split_of(e.id)
        assert e.kind in KINDS and e.parameters["kind"] == e.kind
        assert 250 <= e.height_mm <= 600 and e.title
        mesh = trimesh.load(root / e.mesh, force="mesh")
        assert mesh.is_watertight and mesh.body_count == 1
        assert validate_piece(mesh) is None
        assert abs(mesh.bounds[1, 2] - e.height_mm) < 1e-3
        assert (g < 0).any() and (g > 0).any()
    im = np.asarray(Image.open(out / "gallery.png").convert("RGB"))
    assert im.shape[0] > 100 and (im.min(-1) < 200).mean() > 0.05
    assert not list(out.parent.glob(".*tmp*"))


def test_workers_give_the_same_dataset(corpus, tmp_path):
    m, out = corpus
    m2 = generate_corpus(5, 21, tmp_path / "c2", res=20, progress=False, gallery=0,
                         meshes=False, workers=2)
    assert [p.model_dump(exclude={"mesh"}) for p in m2.pieces] == \
        [p.model_dump(exclude={"mesh"}) for p in m.pieces]
    for p in m.pieces:
        a = SdfGrid.load(out / p.grid).values
        b = SdfGrid.load(tmp_path / "c2" / p.grid).values
        assert a.dtype == np.float16 and np.array_equal(a, b)
    assert not (tmp_path / "c2" / "meshes").exists()
    assert not (tmp_path / "c2" / "gallery.png").exists()


def test_shipped_dataset_is_there_and_regenerates_bit_for_bit():
    root = default_dataset_path()
    m, _ = load_manifest(root)
    assert m.source == "corpus" and len(m.pieces) >= 100 and m.res >= 32
    assert sum((root / p.grid).with_suffix(".npz").stat().st_size for p in m.pieces) < 8e6
    held = len(m.split("held_out")) / len(m.pieces)
    assert 0.05 < held < 0.3
    assert {p.kind for p in m.pieces} == set(KINDS)
    assert all(250 <= p.height_mm <= 600 for p in m.pieces)
    # every grid holds one solid (26-connected) whose lowest voxel layer is its base
    _, entries, grids = load_grids(root)
    for e, g in zip(entries, grids):
        lab, n = ndimage.label(g < 0, structure=np.ones((3, 3, 3)))
        assert n == 1, e.id
        k = np.flatnonzero((g < 0).any(axis=(0, 1)))
        assert (g[:, :, k[0]] < 0).sum() >= 4, e.id
    argv = shlex.split(m.regenerate_command)
    assert argv[:2] == ["sculptor", "corpus"]
    opt = dict(zip(argv[2::2], argv[3::2]))
    seed, res = int(opt["--seed"]), int(opt["--res"])
    assert int(opt["--n"]) == len(m.pieces) and res == m.res
    kinds = tuple(opt["--kinds"].split(","))
    for i in (0, 7):
        entry = m.pieces[i]
        mesh, sdf = make_piece_sdf(piece_seed(seed, i), piece_kind(seed, i, kinds))
        vals, _ = sdf_grid(sdf, mesh, res)
        g = SdfGrid.load(root / entry.grid)
        fresh = np.clip(vals, -g.truncation_mm, g.truncation_mm).astype(np.float16)
        # bit for bit on the machine that made it; elsewhere float32 sin/cos/sqrt kernels
        # (SIMD variants) may move a value across a float16 rounding step
        same = fresh == g.values
        assert same.mean() > 0.995, entry.id
        diff = np.abs(fresh.astype(np.float32) - g.values.astype(np.float32))
        assert diff.max() <= 0.02 * g.voxel_mm, entry.id
        assert entry.parameters["seed"] == piece_seed(seed, i)
        assert json.loads(json.dumps(entry.parameters))["kind"] == entry.kind
