"""Control for `sculptor eval`: how training pieces themselves score against a reference
set of unseen pieces, i.e. what a model that draws exactly from the data distribution can
reach with the same protocol and set size (1-NNA is only 50 % in the limit: with finite
sets it depends on their size). Uses the first |R| training pieces as the "samples".

    .venv/bin/python benchmarks/bench_gen3d_control.py --data sculptor/data/corpus \\
        --reference REF [--n-points 2048] [--bootstrap 200]

Prints one JSON line: COV, MMD, 1-NNA with 95 % bootstrap intervals.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    import numpy as np

    from sculptor.dataset import load_grids
    from sculptor.gen3d.metrics import chamfer_matrix, set_metrics, shapes_from_grids

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--n-points", type=int, default=2048)
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    t0 = time.time()
    _, _, ref = load_grids(a.reference)
    _, _, train = load_grids(a.data, "train")
    n = min(len(ref), len(train))
    R = np.stack(shapes_from_grids(ref[:n], a.n_points, a.seed, design_checks=False).points)
    S = np.stack(shapes_from_grids(train[:n], a.n_points, a.seed + 10_000,
                                   design_checks=False).points)
    m = set_metrics(chamfer_matrix(S).numpy(), chamfer_matrix(R).numpy(),
                    chamfer_matrix(S, R).numpy(), a.bootstrap, a.seed)
    print(json.dumps({"samples": "training pieces", "n": n, **m,
                      "seconds": round(time.time() - t0, 1)}))


if __name__ == "__main__":
    main()
