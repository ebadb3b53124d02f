"""The generative model of the sculptor's style: a 3D conv VAE over SDF grids with a
DDPM in its latent space (`model`), its trainer (`train`, DDP-ready), sampling to
watertight designs (`sample`, `meshing`) and evaluation against baselines (`metrics`).

Heavy modules are imported lazily so ``import sculptor.gen3d`` stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from sculptor.gen3d.metrics import evaluate
    from sculptor.gen3d.sample import default_checkpoint, generate
    from sculptor.gen3d.train import TrainConfig, train

__all__ = ["generate", "default_checkpoint", "train", "TrainConfig", "evaluate"]


def __getattr__(name: str):
    if name in ("generate", "default_checkpoint"):
        from sculptor.gen3d import sample
        return getattr(sample, name)
    if name in ("train", "TrainConfig"):
        from sculptor.gen3d import train as _train
        return getattr(_train, name)
    if name == "evaluate":
        from sculptor.gen3d.metrics import evaluate
        return evaluate
    raise AttributeError(name)
