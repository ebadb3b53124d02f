"""Training: checkpoint contents, weights_only loading, resume, loss curve, DDP replicas."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import torch

from tests.gen3d.conftest import TINY


def test_checkpoint_carries_config_step_optimizer_ema_version(tiny_run):
    ck = torch.load(tiny_run / "checkpoint.pt", map_location="cpu", weights_only=True)
    assert ck["format"] == "sculptor-gen3d" and ck["sculptor_version"]
    assert ck["complete"] and ck["step"] == TINY["steps"] + TINY["prior_steps"]
    assert ck["config"]["latent"] == TINY["latent"] and ck["config"]["res"] == 32
    assert ck["optimizer"]["state"] and ck["optimizer_phase"] == 2
    assert set(ck["ema"]) == set(ck["model"])
    # EMA differs from the live weights after training
    assert any(not torch.equal(ck["ema"][k], ck["model"][k]) for k in ck["model"]
               if k.startswith("prior.") and ck["model"][k].is_floating_point())
    assert ck["data"]["train_points"].shape[1:] == (512, 3)
    assert len(ck["data"]["train_ids"]) == ck["data"]["train_latents"].shape[0]
    assert ck["losses"].shape[1] == 3 and len(ck["losses"]) >= TINY["steps"]
    assert (tiny_run / "loss.png").stat().st_size > 5000


def test_rerun_resumes_and_extends(tiny_run, syn_data, tmp_path):
    import shutil

    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = torch.load(run / "checkpoint.pt", weights_only=True)
    cfg = dict(TINY, prior_steps=TINY["prior_steps"] + 4)
    train(TrainConfig(data=str(syn_data), out=str(run), **cfg))
    after = torch.load(run / "checkpoint.pt", weights_only=True)
    assert after["step"] == before["step"] + 4
    # phase 1 was not redone: the VAE weights are the same
    assert all(torch.equal(before["model"][k], after["model"][k])
               for k in before["model"] if k.startswith("vae."))
    # losses continue the old log instead of starting over
    assert torch.equal(after["losses"][: len(before["losses"])], before["losses"])


def test_interrupted_run_resumes_mid_phase(syn_data, tmp_path):
    from sculptor.gen3d.train import TrainConfig, train

    run = tmp_path / "run"
    # "killed" after 3 steps: same as a run whose checkpoint says step 3
    train(TrainConfig(data=str(syn_data), out=str(run), **dict(TINY, steps=3, prior_steps=1)))
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    ck["complete"], ck["step"] = False, 3
    ck["losses"] = ck["losses"][ck["losses"][:, 1] == 1]
    # (the saved optimizer state is phase 2's: it must not be fed to phase 1)
    torch.save(ck, run / "checkpoint.pt")
    train(TrainConfig(data=str(syn_data), out=str(run), **dict(TINY, steps=5, prior_steps=2)))
    after = torch.load(run / "checkpoint.pt", weights_only=True)
    assert after["complete"] and after["step"] == 7
    assert after["losses"][:, 0].tolist() == sorted(after["losses"][:, 0].tolist())


def test_prior_learns_the_pieces_latent_means_as_they_are(syn_data, tmp_path):
    """The prior's data are the training pieces' posterior means, un-augmented, without
    the posterior's noise (docs/gen3d.md, "Diagnosis": augmented or noised latents drew
    samples off the pieces' distribution); its standardisation is theirs."""
    from sculptor.gen3d.train import TrainConfig, train

    d = TrainConfig(data="", out="")
    assert d.aug_copies == 1 and d.prior_sigma == 0.0
    run = tmp_path / "run"
    cfg = {k: v for k, v in TINY.items() if k != "aug_copies"}
    train(TrainConfig(data=str(syn_data), out=str(run), **dict(cfg, steps=3, prior_steps=2)))
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    lat = ck["data"]["train_latents"]
    assert torch.allclose(ck["ema"]["z_mean"], lat.mean(0), atol=1e-5)
    assert torch.allclose(ck["ema"]["z_std"], lat.std(0).clamp_min(1e-3), atol=1e-5)


def test_torchrun_two_cpu_processes_keep_replicas_identical(syn_data, tmp_path):
    run = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(Path.cwd()))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           "--master_port=0", "--rdzv-backend=c10d", "--rdzv-endpoint=localhost:0",
           "-m", "sculptor.gen3d.train", "--data", str(syn_data), "--out", str(run),
           "--device", "cpu", "--steps", "3", "--prior-steps", "4", "--batch", "2",
           "--width", "4", "--max-width", "8", "--latent", "8", "--aug-copies", "1",
           "--threads", "1", "--no-progress"]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stderr[-3000:]
    ck = torch.load(run / "checkpoint.pt", weights_only=True)
    assert ck["data"]["world_size"] == 2
    assert ck["data"]["replica_max_abs_diff"] == 0.0
    assert ck["step"] == 7 and ck["complete"]
