"""Controls for `sculptor eval`: how training pieces themselves score against a reference
set of unseen pieces, i.e. what a model that draws exactly from the data distribution can
reach with the same protocol and set size (1-NNA is only 50 % in the limit: with finite
sets it depends on their size). Uses the first |R| training pieces as the "samples".

With ``--checkpoint C`` the same training pieces are encoded and decoded by the
checkpoint's VAE (posterior means, EMA weights) and repaired like samples: the
reconstruction-only score, the best any latent prior can reach with that decoder (a
prior that draws exactly the training latents).

    .venv/bin/python benchmarks/bench_gen3d_control.py --data sculptor/data/corpus \\
        --reference REF [--checkpoint C] [--n-points 2048] [--bootstrap 200]

Prints one JSON line: COV, MMD, 1-NNA with 95 % bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import time


def reconstruct(checkpoint: str, grids):
    """(n, R, R, R) grids -> the checkpoint VAE's reconstructions from posterior means."""
    import numpy as np
    import torch

    from sculptor.gen3d.sample import Sampler

    s = Sampler(checkpoint)
    out = []
    with torch.no_grad():
        for i in range(0, len(grids), 32):
            mu, _ = s.model.vae.enc(torch.from_numpy(grids[i:i + 32]).unsqueeze(1))
            out.append(s.decode(mu))
    return np.concatenate(out)


def main() -> None:
    import numpy as np

    from sculptor.dataset import load_grids
    from sculptor.gen3d.metrics import chamfer_matrix, set_metrics, shapes_from_grids

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--checkpoint", default=None,
                    help="score the VAE reconstructions of the training pieces instead")
    ap.add_argument("--n-points", type=int, default=2048)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    _, _, ref = load_grids(a.reference)
    _, _, train = load_grids(a.data, "train")
    n = min(len(ref), len(train))
    R = np.stack(shapes_from_grids(ref[:n], a.n_points, a.seed, design_checks=False).points)
    samples = train[:n] if a.checkpoint is None else reconstruct(a.checkpoint, train[:n])
    # reconstructions are repaired and meshed like the model's samples
    S = np.stack(shapes_from_grids(samples, a.n_points, a.seed + 10_000,
                                   design_checks=a.checkpoint is not None).points)
    m = set_metrics(chamfer_matrix(S).numpy(), chamfer_matrix(R).numpy(),
                    chamfer_matrix(S, R).numpy(), a.bootstrap, a.seed)
    what = "training pieces" if a.checkpoint is None else f"VAE reconstructions ({a.checkpoint})"
    print(json.dumps({"samples": what, "n": n, **m, "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
