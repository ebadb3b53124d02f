"""Sampling and evaluation with a tiny trained checkpoint; metric sanity on known sets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sculptor.artifacts.design import Design
from sculptor.gen3d.metrics import chamfer_matrix, set_metrics


def test_generate_is_deterministic_and_valid(tiny_run, tmp_path):
    from sculptor.gen3d import generate

    ck = tiny_run / "checkpoint.pt"
    a = generate(tmp_path / "a", ck, n=2, seed=5, height_mm=300.0, progress=False)
    b = generate(tmp_path / "b", ck, n=1, seed=5, height_mm=300.0, progress=False)
    # same seed, same design (design i depends only on the seed and i, not on --n)
    assert b[0].sha256 == a[0].sha256 and b[0].noise_seed == a[0].noise_seed
    assert (tmp_path / "a" / "design-000.stl").read_bytes() == (
        tmp_path / "b" / "design-000.stl").read_bytes()
    c = generate(tmp_path / "c", ck, n=1, seed=6, height_mm=300.0, progress=False)
    assert c[0].sha256 != a[0].sha256
    import trimesh

    for d in a:
        m = trimesh.load(tmp_path / "a" / d.mesh)
        assert m.is_watertight and m.is_winding_consistent
        assert len(m.split(only_watertight=False)) == 1
        assert abs(m.bounds[0, 2]) < 1e-4 and abs(m.extents[2] - 300.0) < 0.01
        assert d.valid and d.nearest_train_id.startswith("fig-")
        assert Design.load(tmp_path / "a" / d.mesh.replace(".stl", ".json")).sha256 == d.sha256
    meta = json.loads((tmp_path / "a" / "designs.json").read_text())
    rec = meta["designs"][0]
    for key in ("noise_seed", "checks", "volume_mm3", "bbox_mm", "nearest_train_id",
                "nearest_train_chamfer"):
        assert rec[key] is not None, key
    assert meta["seed"] == 5 and len(meta["checkpoint_sha256"]) == 64
    assert (tmp_path / "a" / "gallery.png").stat().st_size > 2000


def test_interpolation_between_training_piece_and_design(tiny_run, tmp_path):
    from sculptor.gen3d import generate

    ck = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    first = ck["data"]["train_ids"][0]
    ds = generate(tmp_path / "i", tiny_run / "checkpoint.pt", seed=1, progress=False,
                  interpolate=(first, "0"), frames=3)
    assert [d.interpolation_t for d in ds] == [0.0, 0.5, 1.0]
    assert all(d.watertight for d in ds)


def test_metrics_on_known_sets():
    rng = np.random.default_rng(0)
    base = torch.from_numpy(rng.random((12, 256, 3)).astype(np.float32))
    d = chamfer_matrix(base, base)
    assert torch.allclose(d.diagonal(), torch.zeros(12, dtype=d.dtype), atol=1e-6)
    assert torch.allclose(d, d.T, atol=1e-6)
    ref = [rng.normal(0, 1, (256, 3)).astype(np.float32) * s for s in rng.uniform(.5, 1, 16)]
    same = [rng.normal(0, 1, (256, 3)).astype(np.float32) * s for s in rng.uniform(.5, 1, 16)]
    far = [p + 5.0 for p in same]
    R = torch.from_numpy(np.stack(ref))
    for S, lo, hi in ((np.stack(same), 0.2, 0.8), (np.stack(far), 0.99, 1.0)):
        S = torch.from_numpy(S)
        m = set_metrics(chamfer_matrix(S, S).numpy(), chamfer_matrix(R, R).numpy(),
                        chamfer_matrix(S, R).numpy(), bootstrap=20)
        assert lo <= m["one_nna"] <= hi, m
        assert m["one_nna_ci95"][0] <= m["one_nna_ci95"][1]


def test_chamfer_is_exact_against_brute_force():
    rng = np.random.default_rng(1)
    a = rng.random((3, 200, 3)).astype(np.float32)
    b = rng.random((4, 150, 3)).astype(np.float32)
    d = chamfer_matrix(a, b).numpy()
    for i in range(3):
        for j in range(4):
            sq = ((a[i][:, None].astype(np.float64) - b[j][None]) ** 2).sum(-1)
            assert abs(d[i, j] - (sq.min(1).mean() + sq.min(0).mean())) < 1e-12
    s = chamfer_matrix(a).numpy()
    assert np.array_equal(s, s.T) and np.all(np.diag(s) == 0)


def test_paired_bootstrap_tells_a_good_method_from_a_far_one():
    from sculptor.gen3d.metrics import paired_one_nna

    rng = np.random.default_rng(2)

    def clouds(n, shift=0.0):
        return np.stack([rng.normal(0, 1, (128, 3)) * s + shift for s in rng.uniform(.5, 1, n)])

    R = clouds(24)
    d_rr = chamfer_matrix(R).numpy()
    sets = {}
    for name, S in (("good", clouds(24)), ("far", clouds(24, 0.8)), ("same", None)):
        S = sets["good"][2] if S is None else S
        sets[name] = (chamfer_matrix(S).numpy(), chamfer_matrix(S, R).numpy(), S)
    mats = {k: v[:2] for k, v in sets.items()}
    p = paired_one_nna(d_rr, mats, "good", bootstrap=60, seed=0)
    assert p["far"]["gap_difference"] > 0.2 and p["far"]["significantly_better"]
    assert p["far"]["fraction_not_better"] < 0.05
    # the same samples again: no difference, an interval around 0 (each method's samples
    # are resampled on their own, so the rounds still differ)
    assert p["same"]["gap_difference"] == 0.0 and not p["same"]["significantly_better"]
    lo, hi = p["same"]["gap_difference_ci95"]
    assert lo < 0.0 < hi and 0.1 < p["same"]["fraction_not_better"] < 0.9


def test_eval_reports_model_and_baselines(tiny_run, syn_data, tmp_path):
    from sculptor.gen3d.metrics import evaluate

    kw = dict(n_points=128, bootstrap=10, validity_samples=4, progress=False,
              cache_dir=tmp_path / "cache")
    r = evaluate(tiny_run / "checkpoint.pt", syn_data, tmp_path / "eval.json", **kw)
    assert not r["cache"]["hit"] and r["reference"]["set"].startswith("held-out")
    # the second run reads the reference set and baselines from the cache: same figures
    r2 = evaluate(tiny_run / "checkpoint.pt", syn_data, tmp_path / "eval2.json", **kw)
    assert r2["cache"]["hit"]
    for name in ("model", "pca_gaussian", "random_interpolation"):
        assert r2[name] == r[name], name
    assert set(r["model_vs_baselines_1nna"]) == {"pca_gaussian", "random_interpolation"}
    saved = json.loads((tmp_path / "eval.json").read_text())
    for name in ("model", "pca_gaussian", "random_interpolation"):
        m = saved[name]
        assert 0.0 <= m["one_nna"] <= 1.0 and 0.0 < m["cov"] <= 1.0 and m["mmd"] > 0
        assert 0.0 <= m["validity_rate"] <= 1.0
        assert "significant_copying" in m["novelty"]
    assert set(r["targets"]) >= {"one_nna_at_most_60pct", "better_than_baselines_on_1nna"}


def test_eval_on_a_reference_set_of_unseen_pieces(tiny_run, syn_data, tmp_path):
    from sculptor.errors import UserError
    from sculptor.gen3d.metrics import evaluate
    from sculptor.gen3d.synthetic import write_synthetic_dataset

    ref = tmp_path / "ref"
    write_synthetic_dataset(ref, n=5, res=32, seed=11)
    # the synthetic ids (fig-000 ...) repeat across seeds: the training pieces are refused
    with pytest.raises(UserError, match="training piece"):
        evaluate(tiny_run / "checkpoint.pt", syn_data, tmp_path / "e.json", reference=ref,
                 n_points=64, bootstrap=4, validity_samples=2, progress=False,
                 use_cache=False)
    manifest = json.loads((ref / "manifest.json").read_text())
    for p in manifest["pieces"]:
        p["id"] = "unseen-" + p["id"]
    (ref / "manifest.json").write_text(json.dumps(manifest))
    r = evaluate(tiny_run / "checkpoint.pt", syn_data, tmp_path / "e.json", reference=ref,
                 n_points=64, bootstrap=4, validity_samples=2, progress=False,
                 use_cache=False)
    assert r["reference"]["pieces"] == 5 and r["cache"]["path"] is None
    assert r["model"]["validity_samples"] == 5
    assert (tmp_path / "e.json").is_file()
