"""Evaluation: COV, MMD and 1-NNA with Chamfer distance (PointFlow's protocol), with
bootstrap intervals; validity rate; novelty against the training set; two baselines.

Shapes are compared as surface point clouds in grid units (the grid cube is [0, 1]^3,
so every piece is scaled by its largest extent, as in the dataset). Chamfer distance is
the symmetric mean of squared nearest-neighbour distances.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy import stats

from sculptor.artifacts.core import Provenance, atomic_write_json, sha256_file
from sculptor.dataset import load_grids, load_manifest
from sculptor.errors import UserError
from sculptor.gen3d.meshing import grid_to_design_mesh, grid_to_unit_mesh, sample_surface

N_POINTS = 2048
NOVELTY_POINTS = 512  # nearest-training-piece distances (n_train x n distances)
VALIDITY_SAMPLES = 100


def chamfer_matrix(a: torch.Tensor, b: torch.Tensor | None = None, chunk: int = 8
                   ) -> torch.Tensor:
    """(n, m) Chamfer distances between clouds a (n, P, 3) and b (m, Q, 3); with b None,
    the symmetric (n, n) matrix of a against itself (upper triangle computed)."""
    sym = b is None
    a = a.float()
    b = a if sym else b.float()
    out = torch.zeros(len(a), len(b))
    for i in range(len(a)):
        ai = a[i]
        for j in range(i + 1 if sym else 0, len(b), chunk):
            bj = b[j:j + chunk]
            d = torch.cdist(ai[None].expand(len(bj), -1, -1), bj,
                            compute_mode="use_mm_for_euclid_dist") ** 2  # (c, P, Q)
            out[i, j:j + chunk] = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    if sym:
        out = out + out.T
    return out


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


def evaluate(checkpoint: str | os.PathLike, data: str | os.PathLike, out: str | os.PathLike,
             n_points: int = N_POINTS, bootstrap: int = 200, seed: int = 0,
             validity_samples: int = VALIDITY_SAMPLES, progress: bool = True,
             n_novelty: int = NOVELTY_POINTS) -> dict:
    """Evaluate a checkpoint and both baselines on the held-out split of ``data``;
    writes ``out`` (JSON) and returns the same dict."""
    from rich.progress import Progress

    from sculptor.gen3d.train import cpu_thread_count

    torch.set_num_threads(cpu_thread_count())
    model_s = model_sampler(checkpoint, seed)
    s = model_s.sampler  # type: ignore[attr-defined]
    manifest, _ = load_manifest(data)
    if manifest.res != s.res:
        raise UserError(f"dataset {data} has res {manifest.res} but the checkpoint was "
                        f"trained at res {s.res}; evaluate on a res-{s.res} dataset")
    manifest, tr_entries, train = load_grids(data, "train")
    _, ho_entries, held = load_grids(data, "held_out")
    if len(held) < 2:
        raise UserError(f"dataset {data} has {len(held)} held-out piece(s); need >= 2")
    nr = len(held)
    methods = {"model": model_s, "pca_gaussian": pca_gaussian_sampler(train, seed + 1),
               "random_interpolation": interpolation_sampler(train, seed + 2)}
    results: dict = {}
    with Progress(disable=not progress, transient=True) as bar:
        task = bar.add_task("meshing reference sets", total=5 + 4 * len(methods))
        ref = shapes_from_grids(held, n_points, seed, design_checks=False)
        bar.advance(task)
        tr = shapes_from_grids(train, n_points, seed + 10_000, design_checks=False)
        bar.advance(task)
        R = torch.from_numpy(np.stack(ref.points))
        T = torch.from_numpy(np.stack(tr.points)[:, :n_novelty])
        d_rr = chamfer_matrix(R).numpy()
        bar.advance(task)
        d_r_train = chamfer_matrix(R[:, :n_novelty], T).numpy()
        bar.advance(task)
        results["reference"] = {"held_out": nr, "train": len(train),
                                "held_out_to_train": novelty(d_r_train, d_r_train)[
                                    "held_out_to_train_median"]}
        bar.advance(task)
        for name, sampler in methods.items():
            bar.update(task, description=f"{name}: sampling")
            m = max(nr, validity_samples)
            grids = sampler(m)
            shp = shapes_from_grids(grids, n_points, seed + 20_000)
            bar.advance(task)
            bar.update(task, description=f"{name}: Chamfer distances")
            S = torch.from_numpy(np.stack(shp.points[:nr]))
            d_ss = chamfer_matrix(S).numpy()
            d_sr = chamfer_matrix(S, R).numpy()
            bar.advance(task)
            d_s_train = chamfer_matrix(S[:, :n_novelty], T).numpy()
            bar.advance(task)
            res = set_metrics(d_ss, d_rr, d_sr, bootstrap, seed)
            res["validity_rate"] = float(np.mean(shp.valid))
            res["validity_samples"] = m
            res["novelty"] = novelty(d_s_train, d_r_train)
            results[name] = res
            bar.advance(task)
    mdl, pca, itp = results["model"], results["pca_gaussian"], results["random_interpolation"]
    report = {
        "kind": "gen3d_eval", "schema_version": 1,
        "provenance": Provenance.make("sculptor eval", {
            "checkpoint": str(checkpoint), "data": str(data), "n_points": n_points,
            "bootstrap": bootstrap, "seed": seed, "validity_samples": validity_samples},
            {"checkpoint": s.ck["path"], "manifest": Path(data) / "manifest.json"}
        ).model_dump(),
        "checkpoint_sha256": s.sha256,
        "protocol": (f"{n_points} area-uniform surface points per shape in grid units; "
                     "Chamfer = mean squared NN distance both ways; "
                     f"|S| = |R| = {nr} held-out pieces; 95 % bootstrap ({bootstrap}); "
                     f"novelty on the first {n_novelty} points of each cloud (a random "
                     "subset: the points are area-uniform samples in random order)"),
        **results,
        "targets": {
            "one_nna_at_most_60pct": mdl["one_nna"] <= 0.60,
            "cov_at_least_45pct": mdl["cov"] >= 0.45,
            "validity_at_least_99pct": mdl["validity_rate"] >= 0.99,
            "no_significant_copying": not mdl["novelty"]["significant_copying"],
            "better_than_baselines_on_1nna": abs(mdl["one_nna"] - 0.5) < min(
                abs(pca["one_nna"] - 0.5), abs(itp["one_nna"] - 0.5)),
        },
    }
    atomic_write_json(out, report)
    return report
