"""Latent blends: the blend prior (prior_kind "blend", stored in the checkpoint), latent
mixup for the DDPM's data (prior_mixup), the refit of an inference export, bad values."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.gen3d.conftest import TINY


def _on_segments(z: torch.Tensor, means: torch.Tensor, nbrs: torch.Tensor, lo: float,
                 hi: float, atol: float = 1e-5) -> torch.Tensor:
    """(B,) bool: each row of z is (1 - w) means[i] + w means[j] for some i, j in
    nbrs[i] and w in [lo, hi]."""
    ok = torch.zeros(len(z), dtype=torch.bool)
    for i in range(len(means)):
        for j in nbrs[i].tolist():
            d = (means[j] - means[i]).double()
            w = ((z.double() - means[i].double()) @ d) / (d @ d)
            on = ((means[i].double() + w[:, None] * d - z.double()).abs().max(1).values
                  < atol) & (w >= lo - 1e-6) & (w <= hi + 1e-6)
            ok |= on
    return ok


def test_neighbours_and_blends_from_noise():
    from sculptor.gen3d.model import blend_from_noise, nearest_neighbours

    z = torch.tensor([[0.0, 0.0], [1.0, 0.0], [5.0, 0.0], [5.0, 1.5]])
    nb = nearest_neighbours(z, 1)
    assert nb[:, 0].tolist() == [1, 0, 3, 2]
    assert nearest_neighbours(z, 10).shape == (4, 3)  # k capped at n - 1
    noise = torch.randn(200, 8, generator=torch.Generator().manual_seed(0))
    out = blend_from_noise(z, nb, noise, 0.2, 0.8)
    assert _on_segments(out, z, nb, 0.2, 0.8).all()
    # never a training latent itself, and only pairs of neighbours: no blend of 0 and 2
    assert (torch.cdist(out, z).min(1).values > 0.19).all()
    assert torch.equal(out, blend_from_noise(z, nb, noise, 0.2, 0.8))


def test_mixup_rows_lie_between_a_piece_and_its_neighbours():
    from sculptor.gen3d.model import nearest_neighbours
    from sculptor.gen3d.train import mixup

    g = torch.Generator().manual_seed(1)
    mus = torch.randn(30, 6, generator=g) * 3
    nbrs = nearest_neighbours(mus, 4)
    idx = torch.randint(0, 30, (500,), generator=g)
    z = mixup(mus[idx], mus, nbrs, idx, torch.Generator().manual_seed(2), 0.5, 0.2, 0.8)
    same = (z == mus[idx]).all(1)
    assert 0.35 < same.float().mean() < 0.65  # about half the rows are blends
    blended = z[~same]
    assert _on_segments(blended, mus, nbrs, 0.2, 0.8).all()
    # each blend starts at its own row's piece: w of the segment from mus[idx] is in range
    far = torch.cdist(blended, mus[idx[~same]]).diagonal()
    assert (far > 0).all()
    assert torch.equal(z, mixup(mus[idx], mus, nbrs, idx, torch.Generator().manual_seed(2),
                                0.5, 0.2, 0.8))
    # frac 0: the batch as it was
    assert torch.equal(mixup(mus[idx], mus, nbrs, idx, g, 0.0, 0.2, 0.8), mus[idx])


def test_blend_prior_round_trips_through_the_checkpoint(tiny_run, syn_data, tmp_path):
    from sculptor.gen3d.checkpoint import export_inference
    from sculptor.gen3d.sample import Sampler, generate, noise_for
    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    cfg = dict(TINY, aug_copies=1, prior_kind="blend", blend_k=3, blend_lo=0.3,
               blend_hi=0.7)
    train(TrainConfig(data=str(syn_data), out=str(run), refit_prior=True, **cfg))
    slim = tmp_path / "slim.pt"
    export_inference(run / "checkpoint.pt", slim)
    ck = torch.load(slim, map_location="cpu", weights_only=True)
    c = ck["config"]
    assert (c["prior_kind"], c["blend_k"], c["blend_lo"], c["blend_hi"]) == (
        "blend", 3, 0.3, 0.7)
    assert not any(k.startswith("prior.") for k in ck["ema"])  # no network to store
    means, nbrs = ck["ema"]["blend_means"], ck["ema"]["blend_nbrs"]
    n = len(ck["data"]["train_ids"])
    assert means.dtype == torch.float32 and means.shape == (n, TINY["latent"])
    assert nbrs.shape == (n, 3) and nbrs.dtype == torch.long
    # the means are the stored training latents, the neighbours fitted to them
    assert torch.allclose(means, ck["data"]["train_latents"], atol=1e-5)
    s = Sampler(slim)
    z = s.latents_from_noise(torch.stack([noise_for(i, TINY["latent"]) for i in range(40)]))
    assert _on_segments(z, means, nbrs, 0.3, 0.7, atol=1e-4).all()
    a = generate(tmp_path / "a", slim, n=2, seed=5, height_mm=300.0, progress=False)
    b = generate(tmp_path / "b", slim, n=2, seed=5, height_mm=300.0, progress=False)
    assert [d.sha256 for d in a] == [d.sha256 for d in b]
    assert (tmp_path / "a" / "design-000.stl").read_bytes() == (
        tmp_path / "b" / "design-000.stl").read_bytes()


def test_refit_of_an_inference_export_keeps_its_vae(tiny_run, syn_data, tmp_path):
    from sculptor.gen3d.checkpoint import export_inference
    from sculptor.gen3d.train import TrainConfig, train

    slim = tmp_path / "slim"
    export_inference(tiny_run / "checkpoint.pt", slim / "checkpoint.pt")
    before = torch.load(slim / "checkpoint.pt", weights_only=True)
    train(TrainConfig(data=str(syn_data), out=str(slim), refit_prior=True,
                      **dict(TINY, prior_mixup=0.5, blend_k=2)))
    after = torch.load(slim / "checkpoint.pt", weights_only=True)
    assert after["complete"] and after["train"]["prior_mixup"] == 0.5
    for k, v in before["ema"].items():
        if k.startswith("vae."):
            assert torch.equal(v.float(), after["ema"][k].float()), k
    # the prior was retrained (mixup data): not the exported one
    assert not torch.equal(before["ema"]["prior.inp.weight"].float(),
                           after["ema"]["prior.inp.weight"].float())


@pytest.mark.parametrize("args, msg", [
    (["--prior-kind", "gauss"], "--prior-kind"),
    (["--prior-mixup", "1.5"], "--prior-mixup"),
    (["--blend-lo", "0.9", "--blend-hi", "0.1"], "--blend-lo"),
    (["--blend-k", "0"], "--blend-k"),
    (["--prior-kind", "blend", "--prior-dims", "8"], "--prior-dims"),
])
def test_bad_blend_options_are_one_line_errors(syn_data, tmp_path, capsys, args, msg):
    from sculptor.gen3d.train import main

    assert main(["--data", str(syn_data), "--out", str(tmp_path / "r"), "--steps", "1",
                 "--prior-steps", "1", "--no-progress", *args]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and msg in err and "\n" not in err
