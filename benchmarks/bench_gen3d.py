"""Benchmark of the style model: train step time, sampling time per design, samples/s.

    .venv/bin/python benchmarks/bench_gen3d.py [--checkpoint C] [--data D] [--device cpu]

Train step: the shipped config (res 32, batch 16) on the dataset, after 3 warm-up steps.
Sampling: DDIM (50 steps) + decode + repair + marching cubes + checks, per design, on the
shipped checkpoint; the first design is warm-up. Chamfer: pairs of 2,048-point clouds per
second, the evaluation's k-d tree implementation against dense pairwise distances (the
implementation it replaced). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import torch


def _dense_chamfer(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The former evaluation Chamfer: dense (P, Q) distances per pair, chunks of 8."""
    out = torch.zeros(len(a), len(b))
    for i in range(len(a)):
        for j in range(0, len(b), 8):
            bj = b[j:j + 8]
            d = torch.cdist(a[i][None].expand(len(bj), -1, -1), bj,
                            compute_mode="use_mm_for_euclid_dist") ** 2
            out[i, j:j + 8] = d.min(2).values.mean(1) + d.min(1).values.mean(1)
    return out


def _pairs_per_s(fn, a: torch.Tensor, b: torch.Tensor) -> float:
    t = time.perf_counter()
    fn(a, b)
    return len(a) * len(b) / (time.perf_counter() - t)


def main() -> None:
    from sculptor.dataset import load_grids
    from sculptor.gen3d.augment import augment
    from sculptor.gen3d.device import resolve_device
    from sculptor.gen3d.meshing import grid_to_design_mesh
    from sculptor.gen3d.metrics import chamfer_matrix
    from sculptor.gen3d.model import ModelConfig, StyleModel, vae_loss
    from sculptor.gen3d.sample import Sampler, default_checkpoint, noise_for, noise_seed
    from sculptor.gen3d.train import cpu_thread_count

    from sculptor.corpus import default_dataset_path

    ap = argparse.ArgumentParser()
    ap.add_argument("--checkpoint", default=None)
    ap.add_argument("--data", default=None)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--designs", type=int, default=6)
    a = ap.parse_args()
    device = resolve_device(a.device)
    threads = cpu_thread_count() if device.type == "cpu" else torch.get_num_threads()
    torch.set_num_threads(threads)
    _, _, g = load_grids(a.data or default_dataset_path(), "train")
    X = torch.from_numpy(g).unsqueeze(1)
    model = StyleModel(ModelConfig()).to(device)
    opt = torch.optim.AdamW(model.vae.parameters(), lr=1e-3)
    times = []
    for i in range(a.steps + 3):
        gen = torch.Generator().manual_seed(i)
        t = time.perf_counter()
        x = augment(X[torch.randint(0, len(X), (16,), generator=gen)], gen).to(device)
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.type == "cuda"):
            r, mu, lv = model.vae(x, gen)  # as the trainer: noise from the step's seed
        loss, _ = vae_loss(r, x, mu, lv, 1e-4)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= 3:
            times.append(time.perf_counter() - t)
    s = Sampler(a.checkpoint or default_checkpoint())
    per = []
    for i in range(a.designs + 1):
        t = time.perf_counter()
        z = s.latents_from_noise(noise_for(noise_seed(0, i), s.model.cfg.latent)[None])
        grid_to_design_mesh(s.decode(z)[0], 400.0, n_points=512)
        if i:
            per.append(time.perf_counter() - t)
    clouds = torch.rand(16, 2048, 3, generator=torch.Generator().manual_seed(0))
    kd = _pairs_per_s(chamfer_matrix, clouds[:8], clouds[8:])
    dense = _pairs_per_s(_dense_chamfer, clouds[:4], clouds[12:])
    print(json.dumps({
        "machine": platform.machine(), "device": str(device), "threads": threads,
        "train_step_s_batch16": sum(times) / len(times),
        "train_grids_per_s": 16 * len(times) / sum(times),
        "sample_s_per_design": sum(per) / len(per), "samples_per_s": len(per) / sum(per),
        "chamfer_pairs_per_s_2048_kdtree": kd, "chamfer_pairs_per_s_2048_dense": dense}))


if __name__ == "__main__":
    main()
