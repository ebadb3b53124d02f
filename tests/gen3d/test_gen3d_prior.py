"""The prior's space: top principal directions of the training latents (prior_dims),
stored in the checkpoint, the refit of the prior on a finished VAE, old checkpoints."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.gen3d.conftest import TINY


def test_principal_directions_whiten_the_latents_and_map_back():
    from sculptor.gen3d.model import ModelConfig, StyleModel

    g = torch.Generator().manual_seed(0)
    # 40 latents in 12 dimensions that vary along 3 directions only (+ a little noise)
    basis = torch.linalg.qr(torch.randn(12, 12, generator=g))[0][:3]
    z = 5.0 + (torch.randn(40, 3, generator=g) * torch.tensor([4.0, 2.0, 1.0])) @ basis
    z = z + 1e-3 * torch.randn(40, 12, generator=g)
    m = StyleModel(ModelConfig(width=4, max_width=8, latent=12, prior_dims=3))
    m.fit_prior_space(z)
    c = m.to_prior(z)
    assert c.shape == (40, 3)
    # whitened: unit variance, uncorrelated coefficients
    assert torch.allclose(torch.cov(c.T), torch.eye(3), atol=1e-4)
    # the 3 directions hold (nearly) all of the variance: the map back loses ~nothing
    assert (m.from_prior(c) - z).abs().max() < 0.01
    # the other directions sit at the mean unless prior_rest asks for their Gaussian
    rest = torch.randn(40, 9, generator=g)
    assert torch.equal(m.from_prior(c, rest), m.from_prior(c))
    m.cfg.prior_rest = 1.0
    assert 0 < (m.from_prior(c, rest) - m.from_prior(c)).abs().max() < 0.05
    # prior_dims = 0: the former per-dimension standardisation
    m0 = StyleModel(ModelConfig(width=4, max_width=8, latent=12))
    m0.fit_prior_space(z)
    assert "pc_dirs" not in m0.state_dict() and m0.to_prior(z).shape == (40, 12)
    assert torch.allclose(m0.from_prior(m0.to_prior(z)), z, atol=1e-5)


def test_checkpoint_stores_the_basis_and_samples_through_it(syn_data, tmp_path):
    from sculptor.gen3d.sample import Sampler, generate
    from sculptor.gen3d.train import PRIOR_DIMS, TrainConfig, train

    assert TrainConfig(data="", out="").prior_dims == PRIOR_DIMS
    run = tmp_path / "run"
    # (one encoding per piece: the basis is fitted to exactly the stored latents)
    train(TrainConfig(data=str(syn_data), out=str(run),
                      **dict(TINY, prior_dims=3, aug_copies=1)))
    ck = torch.load(run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["config"]["prior_dims"] == 3
    L = TINY["latent"]
    assert ck["ema"]["pc_dirs"].shape == (L, L) and ck["ema"]["pc_sd"].shape == (L,)
    assert ck["ema"]["prior.inp.weight"].shape[1] == 3
    assert ck["ema"]["prior.out.1.weight"].shape[0] == 3
    # the basis is orthonormal and fitted to the training latents it stores
    V = ck["ema"]["pc_dirs"]
    assert torch.allclose(V @ V.T, torch.eye(L), atol=1e-5)
    s = Sampler(run)
    c = s.model.to_prior(ck["data"]["train_latents"])
    assert torch.allclose(c.std(0), torch.ones(3), atol=1e-3)
    designs = generate(tmp_path / "g", run, n=2, seed=0, height_mm=300.0, progress=False)
    assert all(d.valid for d in designs)


def test_refit_prior_reuses_phase_1_and_equals_a_run_from_scratch(tiny_run, syn_data,
                                                                  tmp_path):
    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = torch.load(run / "checkpoint.pt", weights_only=True)
    cfg = dict(TINY, prior_dims=3)
    train(TrainConfig(data=str(syn_data), out=str(run), refit_prior=True, **cfg))
    after = torch.load(run / "checkpoint.pt", weights_only=True)
    assert after["complete"] and after["config"]["prior_dims"] == 3
    assert after["step"] == TINY["steps"] + TINY["prior_steps"]
    assert all(torch.equal(before["ema"][k], after["ema"][k]) for k in before["ema"]
               if k.startswith("vae."))
    ph1 = before["losses"][before["losses"][:, 1] == 1]
    assert torch.equal(after["losses"][: len(ph1)], ph1)
    # the same options from scratch reach the same prior: the refit is that run
    scratch = tmp_path / "scratch"
    train(TrainConfig(data=str(syn_data), out=str(scratch), **cfg))
    fresh = torch.load(scratch / "checkpoint.pt", weights_only=True)
    for k, v in fresh["ema"].items():
        assert torch.allclose(v.float(), after["ema"][k].float(), atol=1e-5), k


def test_refit_prior_refuses_another_phase_1(tiny_run, syn_data, tmp_path):
    from sculptor.errors import UserError
    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    with pytest.raises(UserError, match="phase 1 with other options.*lr"):
        train(TrainConfig(data=str(syn_data), out=str(run), refit_prior=True,
                          **dict(TINY, lr=1e-3)))
    # (an inference export's VAE can be kept: test_gen3d_blend.py)
    # a plain rerun with another prior space is refused, with the way out in the message
    with pytest.raises(UserError, match="--refit-prior"):
        train(TrainConfig(data=str(syn_data), out=str(run), **dict(TINY, prior_dims=3)))


def test_checkpoint_without_prior_dims_still_loads_and_samples(syn_data, tmp_path):
    """Checkpoints written before prior_dims (config without the key, no basis buffers)."""
    from sculptor.gen3d.sample import generate
    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    train(TrainConfig(data=str(syn_data), out=str(run),
                      **dict(TINY, prior_dims=0, steps=3, prior_steps=5)))
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert "pc_dirs" not in ck["ema"]
    for key in ("prior_dims", "prior_rest"):
        del ck["config"][key]
    old = tmp_path / "old.pt"
    torch.save(ck, old)
    designs = generate(tmp_path / "g", old, n=1, seed=0, height_mm=300.0, progress=False)
    assert len(designs) == 1 and designs[0].mesh
