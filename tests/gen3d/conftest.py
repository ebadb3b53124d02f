"""Shared fixtures: a small synthetic figure dataset and one tiny trained checkpoint."""

from __future__ import annotations

from pathlib import Path

import pytest

TINY = dict(steps=6, prior_steps=30, batch=4, prior_batch=64, width=4, max_width=8, latent=8,
            aug_copies=2, save_every=3, log_every=1, progress=False, threads=1)


@pytest.fixture(scope="session")
def syn_data(tmp_path_factory) -> Path:
    from sculptor.gen3d.synthetic import write_synthetic_dataset

    out = tmp_path_factory.mktemp("gen3d") / "syn"
    write_synthetic_dataset(out, n=20, res=32, seed=3)
    return out


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, syn_data) -> Path:
    from sculptor.gen3d.train import TrainConfig, train

    out = tmp_path_factory.mktemp("gen3d") / "run"
    train(TrainConfig(data=str(syn_data), out=str(out), **TINY))
    return out
