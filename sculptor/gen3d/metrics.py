"""Evaluation: COV, MMD and 1-NNA with Chamfer distance (PointFlow's protocol), with
bootstrap intervals; validity rate; novelty against the training set; two baselines.

Shapes are compared as surface point clouds in grid units (the grid cube is [0, 1]^3,
so every piece is scaled by its largest extent, as in the dataset). Chamfer distance is
the symmetric mean of squared nearest-neighbour distances.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import stats
from scipy.spatial import cKDTree

from sculptor.artifacts.core import Provenance, atomic_write_json, sha256_file
from sculptor.dataset import load_grids, load_manifest
from sculptor.errors import UserError
from sculptor.gen3d.meshing import grid_to_design_mesh, grid_to_unit_mesh, sample_surface

N_POINTS = 2048
NOVELTY_POINTS = 512  # nearest-training-piece distances (n_train x n distances)
VALIDITY_SAMPLES = 100


def _clouds(x: torch.Tensor | np.ndarray) -> np.ndarray:
    a = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"point clouds must be (n, P, 3), got {a.shape}")
    return np.ascontiguousarray(a, np.float64)


def _one_way(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, m): mean over the points of a[i] of the squared distance to the nearest point
    of b[j]. One k-d tree per cloud of b, queried once with every point of a."""
    n, p = a.shape[:2]
    q = a.reshape(-1, 3)
    out = np.empty((n, len(b)))
    for j, cloud in enumerate(b):
        d, _ = cKDTree(cloud).query(q, k=1, workers=1)
        out[:, j] = np.square(d).reshape(n, p).mean(1)
    return out


def chamfer_matrix(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray | None = None
                   ) -> torch.Tensor:
    """(n, m) float64 Chamfer distances between clouds a (n, P, 3) and b (m, Q, 3); with
    b None, the symmetric (n, n) matrix of a against itself.

    Exact nearest neighbours from k-d trees (28x faster than dense pairwise
    distances on CPU, benchmarks/bench_gen3d.py): n + m trees, each queried once with a whole set, no loop over
    pairs. Chamfer = mean squared NN distance a -> b + the same b -> a."""
    A = _clouds(a)
    if b is None:
        ow = _one_way(A, A)
        return torch.from_numpy(ow + ow.T)
    B = _clouds(b)
    return torch.from_numpy(_one_way(A, B) + _one_way(B, A).T)


def _one_nna(d_ss: np.ndarray, d_rr: np.ndarray, d_sr: np.ndarray, si: np.ndarray,
             ri: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy over S u R. si / ri: original indices (bootstrap
    duplicates of the query itself are excluded)."""
    ss = d_ss[np.ix_(si, si)].copy()
    rr = d_rr[np.ix_(ri, ri)].copy()
    sr = d_sr[np.ix_(si, ri)]
    ss[si[:, None] == si[None, :]] = np.inf
    rr[ri[:, None] == ri[None, :]] = np.inf
    s_ok = ss.min(1) < sr.min(1)  # sample's nearest is a sample
    r_ok = rr.min(1) < sr.min(0)  # reference's nearest is a reference
    return float((s_ok.sum() + r_ok.sum()) / (len(si) + len(ri)))


def _cov_mmd(d_sr: np.ndarray, si: np.ndarray, ri: np.ndarray) -> tuple[float, float]:
    sr = d_sr[np.ix_(si, ri)]
    cov = len(np.unique(ri[sr.argmin(1)])) / len(np.unique(ri))
    mmd = float(sr.min(0).mean())
    return float(cov), mmd


def set_metrics(d_ss: np.ndarray, d_rr: np.ndarray, d_sr: np.ndarray, bootstrap: int = 200,
                seed: int = 0) -> dict:
    """COV, MMD, 1-NNA with 95 % bootstrap intervals from the three distance matrices."""
    ns, nr = d_sr.shape
    si, ri = np.arange(ns), np.arange(nr)
    cov, mmd = _cov_mmd(d_sr, si, ri)
    nna = _one_nna(d_ss, d_rr, d_sr, si, ri)
    rng = np.random.default_rng(seed)
    bs = {"cov": [], "mmd": [], "one_nna": []}
    for _ in range(bootstrap):
        bsi, bri = rng.integers(0, ns, ns), rng.integers(0, nr, nr)
        c, m = _cov_mmd(d_sr, bsi, bri)
        bs["cov"].append(c)
        bs["mmd"].append(m)
        bs["one_nna"].append(_one_nna(d_ss, d_rr, d_sr, bsi, bri))
    ci = {k: [float(np.percentile(v, 2.5)), float(np.percentile(v, 97.5))]
          for k, v in bs.items()}
    return {"cov": cov, "cov_ci95": ci["cov"], "mmd": mmd, "mmd_ci95": ci["mmd"],
            "one_nna": nna, "one_nna_ci95": ci["one_nna"]}


def novelty(d_s_train: np.ndarray, d_r_train: np.ndarray) -> dict:
    """Distance of each sample to its nearest training piece vs the same for held-out
    pieces. 'Copying' = samples significantly closer to the training set than unseen
    pieces of the same style are (one-sided Mann-Whitney U, p < 0.05)."""
    ds, dr = d_s_train.min(1), d_r_train.min(1)
    p = float(stats.mannwhitneyu(ds, dr, alternative="less").pvalue)
    return {"sample_to_train_median": float(np.median(ds)),
            "held_out_to_train_median": float(np.median(dr)),
            "ratio_of_medians": float(np.median(ds) / max(np.median(dr), 1e-12)),
            "near_copies": int((ds < dr.min()).sum()),
            "near_copy_threshold": float(dr.min()),
            "mannwhitney_p_closer": p, "significant_copying": bool(p < 0.05)}


@dataclass
class _Shapes:
    points: list[np.ndarray]
    valid: list[bool]


def shapes_from_grids(grids: np.ndarray, n_points: int, seed: int,
                      design_checks: bool = True) -> _Shapes:
    """Repair + mesh each grid (R, R, R); surface points in grid units; validity."""
    pts, valid = [], []
    for i, g in enumerate(grids):
        if design_checks:
            r = grid_to_design_mesh(g, 400.0, n_points=n_points, seed=seed + i)
            ok, p = r.valid, r.unit_points
        else:
            m, _, _ = grid_to_unit_mesh(g)
            ok, p = m is not None, (sample_surface(m, n_points, seed + i) if m is not None
                                     else None)
        valid.append(bool(ok))
        pts.append(p if p is not None else np.full((n_points, 3), 0.5, np.float32))
    return _Shapes(pts, valid)


def pca_gaussian_sampler(train: np.ndarray, seed: int, k: int = 32
                         ) -> Callable[[int], np.ndarray]:
    """Baseline: a Gaussian over the top-k PCA coefficients of the training grids."""
    n = len(train)
    X = train.reshape(n, -1).astype(np.float64)
    mean = X.mean(0)
    _, s, vt = np.linalg.svd(X - mean, full_matrices=False)
    k = max(1, min(k, n - 1))
    sd = s[:k] / np.sqrt(max(1, n - 1))
    rng = np.random.default_rng(seed)

    def sample(m: int) -> np.ndarray:
        c = rng.standard_normal((m, k)) * sd
        return np.clip(mean + c @ vt[:k], -1, 1).reshape((m,) + train.shape[1:]).astype(
            np.float32)
    return sample


def interpolation_sampler(train: np.ndarray, seed: int) -> Callable[[int], np.ndarray]:
    """Baseline: a random blend (1 - t) A + t B of two random training grids."""
    rng = np.random.default_rng(seed)

    def sample(m: int) -> np.ndarray:
        out = np.empty((m,) + train.shape[1:], np.float32)
        for i in range(m):
            a, b = rng.choice(len(train), 2, replace=False)
            t = rng.uniform()
            out[i] = (1 - t) * train[a] + t * train[b]
        return out
    return sample


def model_sampler(checkpoint: str | os.PathLike, seed: int) -> Callable[[int], np.ndarray]:
    from sculptor.gen3d.sample import Sampler, noise_for, noise_seed

    s = Sampler(checkpoint)
    counter = [0]

    def sample(m: int) -> np.ndarray:
        i0 = counter[0]
        counter[0] += m
        noise = torch.stack([noise_for(noise_seed(seed, i), s.model.cfg.latent)
                             for i in range(i0, i0 + m)])
        with torch.no_grad():
            return np.concatenate([s.decode(s.latents_from_noise(noise[j:j + 32]))
                                   for j in range(0, m, 32)])
    sample.sampler = s  # type: ignore[attr-defined]
    return sample


def paired_one_nna(d_rr: np.ndarray, sets: dict[str, tuple[np.ndarray, np.ndarray]],
                   first: str, bootstrap: int = 200, seed: int = 0) -> dict:
    """Paired bootstrap of the 1-NNA gap to 50 %: method ``first`` against every other.

    sets: name -> (d_ss, d_sr) of each method against the same reference set (d_rr).
    Every bootstrap round draws one resample of the reference set, shared by all
    methods (that is the pairing: the reference set is the noise the methods share),
    and an independent resample of each method's own samples. Returns, per other
    method, the difference ``|1-NNA(other) - 50 %| - |1-NNA(first) - 50 %|`` (positive:
    ``first`` is closer to the ideal 50 %), its 95 % interval and the fraction of rounds
    in which ``first`` was not better (a one-sided bootstrap p-value)."""
    nr = len(d_rr)
    rng = np.random.default_rng(seed)
    full = np.arange(nr)

    def gap(name: str, si: np.ndarray, ri: np.ndarray) -> float:
        d_ss, d_sr = sets[name]
        return abs(_one_nna(d_ss, d_rr, d_sr, si, ri) - 0.5)

    point = {k: gap(k, np.arange(len(v[0])), full) for k, v in sets.items()}
    rounds: dict[str, list[float]] = {k: [] for k in sets if k != first}
    for _ in range(bootstrap):
        ri = rng.integers(0, nr, nr)
        g = {k: gap(k, rng.integers(0, len(v[0]), len(v[0])), ri) for k, v in sets.items()}
        for k in rounds:
            rounds[k].append(g[k] - g[first])
    out = {}
    for k, v in rounds.items():
        a = np.asarray(v)
        out[k] = {"gap_difference": point[k] - point[first],
                  "gap_difference_ci95": [float(np.percentile(a, 2.5)),
                                          float(np.percentile(a, 97.5))],
                  "fraction_not_better": float(np.mean(a <= 0)),
                  "significantly_better": bool(np.percentile(a, 2.5) > 0)}
    return out


# --------------------------------------------------------------------------- cache
EVAL_PROTOCOL = 2  # bump when a cached quantity is computed differently


def _code_hash() -> str:
    """Hash of the code that computes the cached quantities (this module and the
    meshing), so a changed repair or metric never reads a stale cache."""
    from sculptor.gen3d import meshing

    h = hashlib.sha256(str(EVAL_PROTOCOL).encode())
    for mod_file in (__file__, meshing.__file__):
        h.update(Path(mod_file).read_bytes())
    return h.hexdigest()


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "sculptor" / "gen3d-eval"


class _Cache:
    """Checkpoint-independent parts of an evaluation (reference set, baselines) as one
    .npz per (dataset, reference, protocol options, code); ``None`` dir: no cache."""

    def __init__(self, directory: Path | None, key_parts: dict) -> None:
        key = hashlib.sha256(json.dumps(key_parts, sort_keys=True).encode()).hexdigest()
        self.path = None if directory is None else Path(directory) / f"{key[:32]}.npz"
        self.data: dict[str, np.ndarray] = {}
        self.hit = False
        if self.path is not None and self.path.is_file():
            try:
                with np.load(self.path) as z:
                    self.data = {k: z[k] for k in z.files}
                self.hit = True
            except (OSError, ValueError):  # a damaged cache file is recomputed
                self.data = {}

    def get(self, prefix: str, compute: Callable[[], dict[str, np.ndarray]]
            ) -> dict[str, np.ndarray]:
        names = [k for k in self.data if k.startswith(prefix + "/")]
        if names:
            return {k.split("/", 1)[1]: self.data[k] for k in names}
        got = compute()
        self.data.update({f"{prefix}/{k}": np.asarray(v) for k, v in got.items()})
        return got

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(tmp, **self.data)
        os.replace(tmp, self.path)


# --------------------------------------------------------------------------- evaluate
def _reference_split(data: Path, reference: Path | None, train_ids: list[str], res: int
                     ) -> tuple[str, np.ndarray]:
    """(description, grids) of the reference set: the held-out split of ``data``, or
    every piece of ``reference`` (pieces never seen in training)."""
    if reference is None:
        _, entries, held = load_grids(data, "held_out")
        return f"held-out split of {data}", held
    manifest, _ = load_manifest(reference)
    if manifest.res != res:
        raise UserError(f"reference {reference} has res {manifest.res}; the checkpoint "
                        f"was trained at res {res}")
    _, entries, held = load_grids(reference)
    seen = sorted({e.id for e in entries} & set(train_ids))
    if seen:
        raise UserError(f"reference {reference} holds {len(seen)} training piece(s) of "
                        f"the checkpoint (e.g. {seen[0]}); use pieces it never saw")
    return f"all pieces of {reference}", held


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
             n_points: int = N_POINTS, bootstrap: int = 200, seed: int = 0,
             validity_samples: int = VALIDITY_SAMPLES, progress: bool = True,
             n_novelty: int = NOVELTY_POINTS, reference: str | os.PathLike | None = None,
             cache_dir: str | os.PathLike | None = None, use_cache: bool = True) -> dict:
    """Evaluate a checkpoint and both baselines against a reference set of unseen pieces
    (the held-out split of ``data``, or all of ``reference``); writes ``out`` (JSON) and
    returns the same dict.

    |S| = |R|: each method contributes as many samples as there are reference pieces to
    COV / MMD / 1-NNA, and ``max(|R|, validity_samples)`` first draws to the validity
    rate. The checkpoint-independent parts (reference clouds and distances, baselines)
    are cached (``cache_dir``, default ``~/.cache/sculptor/gen3d-eval``), so evaluating
    the next checkpoint only samples and measures the model."""
    from rich.progress import Progress

    from sculptor.gen3d.train import cpu_thread_count

    t0 = time.time()
    torch.set_num_threads(cpu_thread_count())
    data = Path(data)
    reference = Path(reference) if reference is not None else None
    model_s = model_sampler(checkpoint, seed)
    s = model_s.sampler  # type: ignore[attr-defined]
    manifest, _ = load_manifest(data)
    if manifest.res != s.res:
        raise UserError(f"dataset {data} has res {manifest.res} but the checkpoint was "
                        f"trained at res {s.res}; evaluate on a res-{s.res} dataset")
    manifest, tr_entries, train = load_grids(data, "train")
    ref_name, held = _reference_split(data, reference, s.train_ids, s.res)
    if len(held) < 2:
        raise UserError(f"{ref_name} has {len(held)} piece(s); need >= 2")
    nr = len(held)
    m = max(nr, validity_samples)
    cache = _Cache(Path(cache_dir) if cache_dir else default_cache_dir() if use_cache
                   else None, {
        "data": sha256_file(data / "manifest.json"),
        "reference": sha256_file(reference / "manifest.json") if reference else None,
        "n_points": n_points, "n_novelty": n_novelty, "seed": seed, "samples": m,
        "code": _code_hash()})
    methods = {"model": model_s, "pca_gaussian": pca_gaussian_sampler(train, seed + 1),
               "random_interpolation": interpolation_sampler(train, seed + 2)}
    results: dict = {}
    mats: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("reference set", total=1 + 3 * len(methods))

        def reference_part() -> dict[str, np.ndarray]:
            ref = shapes_from_grids(held, n_points, seed, design_checks=False)
            tr = shapes_from_grids(train, n_points, seed + 10_000, design_checks=False)
            R = np.stack(ref.points)
            T = np.stack(tr.points)[:, :n_novelty]
            return {"R": R, "T": T, "d_rr": chamfer_matrix(R).numpy(),
                    "d_r_train": chamfer_matrix(R[:, :n_novelty], T).numpy()}

        rp = cache.get("reference", reference_part)
        R, T, d_rr, d_r_train = rp["R"], rp["T"], rp["d_rr"], rp["d_r_train"]
        results["reference"] = {"set": ref_name, "pieces": nr, "train": len(train),
                                "held_out_to_train": float(np.median(d_r_train.min(1)))}
        bar.advance(task)
        for name, sampler in methods.items():

            def method_part() -> dict[str, np.ndarray]:
                bar.update(task, description=f"{name}: sampling and meshing")
                shp = shapes_from_grids(sampler(m), n_points, seed + 20_000)
                bar.advance(task)
                bar.update(task, description=f"{name}: Chamfer distances")
                S = np.stack(shp.points[:nr])
                return {"d_ss": chamfer_matrix(S).numpy(),
                        "d_sr": chamfer_matrix(S, R).numpy(),
                        "d_s_train": chamfer_matrix(S[:, :n_novelty], T).numpy(),
                        "valid": np.asarray(shp.valid)}

            # the model is never cached: its part is what changes between checkpoints
            mp = method_part() if name == "model" else cache.get(name, method_part)
            bar.advance(task, 2)
            res = set_metrics(mp["d_ss"], d_rr, mp["d_sr"], bootstrap, seed)
            res["validity_rate"] = float(np.mean(mp["valid"]))
            res["validity_samples"] = m
            res["novelty"] = novelty(mp["d_s_train"], d_r_train)
            results[name] = res
            mats[name] = (mp["d_ss"], mp["d_sr"])
            bar.advance(task)
    cache.save()
    paired = paired_one_nna(d_rr, mats, "model", bootstrap, seed)
    mdl = results["model"]
    report = {
        "kind": "gen3d_eval", "schema_version": 2,
        "provenance": Provenance.make("sculptor eval", {
            "checkpoint": str(checkpoint), "data": str(data),
            "reference": str(reference) if reference else None, "n_points": n_points,
            "bootstrap": bootstrap, "seed": seed, "validity_samples": validity_samples},
            {"checkpoint": s.ck["path"], "manifest": data / "manifest.json",
             **({"reference": reference / "manifest.json"} if reference else {})}
        ).model_dump(),
        "checkpoint_sha256": s.sha256,
        "protocol": (f"{n_points} area-uniform surface points per shape in grid units; "
                     "Chamfer = mean squared NN distance both ways (exact, k-d trees); "
                     f"reference set: {ref_name}; |S| = |R| = {nr}; validity over {m} "
                     f"first draws; 95 % bootstrap ({bootstrap}); model vs baselines: "
                     "paired bootstrap of |1-NNA - 50 %| (shared reference resample); "
                     f"novelty on the first {n_novelty} points of each cloud (a random "
                     "subset: the points are area-uniform samples in random order)"),
        **results,
        "model_vs_baselines_1nna": paired,
        "targets": {
            "one_nna_at_most_60pct": mdl["one_nna"] <= 0.60,
            "cov_at_least_45pct": mdl["cov"] >= 0.45,
            "validity_at_least_99pct": mdl["validity_rate"] >= 0.99,
            "no_significant_copying": not mdl["novelty"]["significant_copying"],
            "better_than_baselines_on_1nna": all(v["gap_difference"] > 0
                                                 for v in paired.values()),
            "significantly_better_than_baselines_on_1nna": all(
                v["significantly_better"] for v in paired.values()),
        },
        "cache": {"path": str(cache.path) if cache.path else None, "hit": cache.hit},
        "seconds": round(time.time() - t0, 1),
    }
    atomic_write_json(out, report)
    return report
