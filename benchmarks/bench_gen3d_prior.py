"""Prior candidates for the style model's VAE, scored like `sculptor eval` on a selection
set, with paired bootstraps against the shipped prior and both baselines.

Every candidate keeps the checkpoint's VAE and only changes how latents are drawn:

    ddpm                      the checkpoint's own prior (as `sculptor eval` samples it)
    ddpm:temp=0.9             its DDIM started from noise x 0.9
    ddpm:clip=1.0             standardised latents beyond 1.0 x the largest training
                              latent's norm pulled back onto that sphere
    ddpm:nnclip=2             latents farther from their nearest training latent than 2 x
                              the training latents' median nearest-neighbour distance
                              pulled towards it to that distance
    blend:k=8,lo=0.2,hi=0.8   latent blend prior: a training latent mean, one of its k
                              nearest neighbours, w ~ U(lo, hi)  (model.blend_from_noise)
    kde:h=0.5                 a training latent mean plus a Gaussian of h x the latents'
                              per-dimension spread (kernel density estimate)
    mixup:frac=0.5,k=8,lo=0.2,hi=0.8,steps=2000
                              a DDPM retrained from scratch (the trainer's phase-2 loop,
                              train._prior_phase) on the stored training latent means, a
                              share frac of each batch replaced by neighbour blends

Samples use the eval's noise seeds (`noise_seed(0, i)`), repair (`shapes_from_grids` with
the design checks), 2,048 points, `set_metrics`, `novelty` and `paired_one_nna`. The
reference set and both baselines are read from `sculptor eval`'s cache, so run
`sculptor eval --checkpoint C --data DATA --reference REF` once first. Each candidate's
distance matrices are kept in --work (rerunning skips it) so any two can be paired.

    .venv/bin/python benchmarks/bench_gen3d_prior.py --reference REF --work DIR \\
        [--checkpoint C] [--data sculptor/data/corpus] CANDIDATE [CANDIDATE ...]

Prints one JSON line per candidate, then writes DIR/summary.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch


def parse(spec: str) -> tuple[str, dict[str, float]]:
    kind, _, rest = spec.partition(":")
    opts = {}
    for kv in filter(None, rest.split(",")):
        k, v = kv.split("=")
        opts[k] = float(v)
    return kind, opts


def retrained_prior(ck: dict, opts: dict, data: str):
    """A StyleModel with the checkpoint's VAE and a DDPM trained from scratch by the
    trainer's phase-2 loop on the stored training latents (mixup options)."""
    from sculptor.gen3d.checkpoint import model_from_checkpoint
    from sculptor.gen3d.device import DistContext
    from sculptor.gen3d.model import StyleModel
    from sculptor.gen3d.train import TrainConfig, _prior_phase, _Progress

    old = ck["train"]
    cfg = TrainConfig(data=data, out="", steps=int(old["steps"]),
                      prior_steps=int(opts.get("steps", old["prior_steps"])),
                      prior_mixup=opts.get("frac", 0.0), blend_k=int(opts.get("k", 8)),
                      blend_lo=opts.get("lo", 0.2), blend_hi=opts.get("hi", 0.8),
                      prior_lr=opts.get("lr", old["prior_lr"]), seed=int(opts.get("seed", 0)),
                      progress=False)
    base = model_from_checkpoint(ck)
    torch.manual_seed(cfg.seed)
    model = StyleModel(base.cfg)
    model.load_state_dict({k: v.float() for k, v in ck["ema"].items()})
    torch.manual_seed(cfg.seed)
    fresh = StyleModel(base.cfg)  # the prior's initial weights of a run from scratch
    model.prior.load_state_dict(fresh.prior.state_dict())
    mus = ck["data"]["train_latents"].float()
    model.fit_prior_space(mus)
    ema = {k: v.detach().clone().float() for k, v in model.state_dict().items()}
    opt = torch.optim.AdamW(model.prior.parameters(), lr=cfg.prior_lr, weight_decay=0.0)
    model.prior.train()
    _prior_phase(cfg, DistContext(), torch.device("cpu"), model, model.prior, opt, ema, mus,
                 torch.zeros_like(mus), model.alphas_bar, cfg.steps,
                 cfg.steps + cfg.prior_steps, [], _Progress(False, 0, 0),
                 lambda *a, **k: None)
    model.load_state_dict(ema)
    return model.eval()


def latent_sampler(spec: str, checkpoint: str, data: str):
    """-> (function noise (B, L) -> latents (B, L), decoder function)."""
    from sculptor.gen3d.model import (blend_from_noise, cpu_threads, ddim_sample,
                                      nearest_neighbours)
    from sculptor.gen3d.sample import DDIM_STEPS, Sampler

    s = Sampler(checkpoint)
    kind, o = parse(spec)
    m = s.model
    mus = s.train_latents.float()
    r_max = ((mus - m.z_mean) / m.z_std).norm(dim=1).max()

    ut = (mus - m.z_mean) / m.z_std
    d_tt = torch.cdist(ut, ut).fill_diagonal_(float("inf"))
    nn_med = d_tt.min(1).values.median()

    def clip(z: torch.Tensor) -> torch.Tensor:
        """clip=c: standardised latents beyond c x the largest training norm are pulled
        back onto that sphere; nnclip=c: latents farther than c x the median
        nearest-neighbour distance of the training latents from their nearest training
        latent are pulled towards it to that distance (the DDPM's over-dispersed tail)."""
        u = (z - m.z_mean) / m.z_std
        if "clip" in o:
            r = o["clip"] * r_max
            u = u * (r / u.norm(dim=1, keepdim=True)).clamp(max=1.0)
        if "nnclip" in o:
            d = torch.cdist(u, ut)
            j = d.argmin(1)
            dj = d.min(1).values[:, None]
            f = (o["nnclip"] * nn_med / dj).clamp(max=1.0)
            u = ut[j] + f * (u - ut[j])
        return u * m.z_std + m.z_mean

    if kind == "ddpm":
        t = o.get("temp", 1.0)
        return (lambda nz: clip(s.latents_from_noise(nz * t))), s
    if kind == "blend":
        nbrs = nearest_neighbours((mus - m.z_mean) / m.z_std, int(o.get("k", 8)))
        return (lambda nz: blend_from_noise(mus, nbrs, nz, o.get("lo", 0.2),
                                            o.get("hi", 0.8))), s
    if kind == "kde":
        h = o.get("h", 0.5)

        def kde(nz: torch.Tensor) -> torch.Tensor:
            # a random training latent (from the first noise number) plus a Gaussian of h
            # x the latents' spread (its own generator, seeded from the same noise row)
            u = 0.5 * (1 + torch.erf(nz[:, 0].double() / 2 ** 0.5))
            i = (u * len(mus)).long().clamp(max=len(mus) - 1)
            g = [torch.Generator().manual_seed(int(abs(float(r[1])) * 1e6) + 1) for r in nz]
            e = torch.stack([torch.randn(mus.shape[1], generator=gg) for gg in g])
            return mus[i] + h * m.z_std * e
        return kde, s
    if kind == "mixup":
        with cpu_threads(1):
            rm = retrained_prior(s.ck, o, data)

        def f(nz):
            with cpu_threads(1), torch.no_grad():
                c = ddim_sample(rm.prior, nz * o.get("temp", 1.0), rm.alphas_bar, DDIM_STEPS)
            return clip(rm.from_prior(c))
        return f, s
    raise SystemExit(f"unknown candidate {spec!r}")


def cache_of(data: Path, reference: Path, m: int):
    from sculptor.artifacts.core import sha256_file
    from sculptor.gen3d.metrics import (N_POINTS, NOVELTY_POINTS, _Cache, _code_hash,
                                        default_cache_dir)

    c = _Cache(default_cache_dir(), {
        "data": sha256_file(data / "manifest.json"),
        "reference": sha256_file(reference / "manifest.json"),
        "n_points": N_POINTS, "n_novelty": NOVELTY_POINTS, "seed": 0, "samples": m,
        "code": _code_hash()})
    if not c.hit:
        raise SystemExit(f"no eval cache for {reference}: run sculptor eval --reference "
                         f"{reference} first")
    return c


def main() -> None:
    from sculptor.dataset import load_grids
    from sculptor.gen3d.metrics import (N_POINTS, NOVELTY_POINTS, VALIDITY_SAMPLES,
                                        chamfer_matrix, novelty, paired_one_nna,
                                        set_metrics, shapes_from_grids)
    from sculptor.gen3d.sample import default_checkpoint, noise_for, noise_seed

    ap = argparse.ArgumentParser()
    ap.add_argument("candidates", nargs="+")
    ap.add_argument("--reference", required=True, type=Path)
    ap.add_argument("--work", required=True, type=Path)
    ap.add_argument("--checkpoint", default=str(default_checkpoint()))
    ap.add_argument("--data", default="sculptor/data/corpus", type=Path)
    a = ap.parse_args()
    torch.set_num_threads(1)
    a.work.mkdir(parents=True, exist_ok=True)
    _, _, held = load_grids(a.reference)
    nr = len(held)
    m = max(nr, VALIDITY_SAMPLES)
    cache = cache_of(a.data, a.reference, m)
    d_rr, R, T = cache.data["reference/d_rr"], cache.data["reference/R"], cache.data["reference/T"]
    d_r_train = cache.data["reference/d_r_train"]
    mats = {b: (cache.data[f"{b}/d_ss"], cache.data[f"{b}/d_sr"])
            for b in ("pca_gaussian", "random_interpolation")}
    summary = {}
    for spec in a.candidates:
        f = a.work / (spec.replace(":", "_").replace(",", "_").replace("=", "") + ".npz")
        t0 = time.time()
        if not f.is_file():
            sample, s = latent_sampler(spec, a.checkpoint, str(a.data))
            noise = torch.stack([noise_for(noise_seed(0, i), s.model.cfg.latent)
                                 for i in range(m)])
            with torch.no_grad():
                grids = np.concatenate([s.decode(sample(noise[j:j + 32]).float())
                                        for j in range(0, m, 32)])
            shp = shapes_from_grids(grids, N_POINTS, 20_000)
            S = np.stack(shp.points[:nr])
            np.savez(f, d_ss=chamfer_matrix(S).numpy(), d_sr=chamfer_matrix(S, R).numpy(),
                     d_s_train=chamfer_matrix(S[:, :NOVELTY_POINTS], T).numpy(),
                     valid=np.asarray(shp.valid))
        z = np.load(f)
        res = set_metrics(z["d_ss"], d_rr, z["d_sr"], 200, 0)
        res["validity_rate"] = float(np.mean(z["valid"]))
        res["novelty"] = novelty(z["d_s_train"], d_r_train)
        sets = {"cand": (z["d_ss"], z["d_sr"]), **mats}
        ship = a.work / "ddpm.npz"
        if ship.is_file() and f != ship:
            zs = np.load(ship)
            sets["shipped_ddpm"] = (zs["d_ss"], zs["d_sr"])
        res["paired"] = paired_one_nna(d_rr, sets, "cand", 200, 0)
        res["seconds"] = round(time.time() - t0, 1)
        summary[spec] = res
        nov = res["novelty"]
        print(json.dumps({"candidate": spec, "one_nna": res["one_nna"],
                          "one_nna_ci95": res["one_nna_ci95"], "cov": res["cov"],
                          "cov_ci95": res["cov_ci95"], "mmd": res["mmd"],
                          "valid": res["validity_rate"],
                          "copy_p": nov["mannwhitney_p_closer"],
                          "ratio": nov["ratio_of_medians"],
                          "paired": {k: [round(v["gap_difference"], 3),
                                         [round(x, 3) for x in v["gap_difference_ci95"]],
                                         v["fraction_not_better"]]
                                     for k, v in res["paired"].items()},
                          "seconds": res["seconds"]}), flush=True)
    out = a.work / "summary.json"
    old = json.loads(out.read_text()) if out.is_file() else {}
    out.write_text(json.dumps({**old, **summary}, indent=1))


if __name__ == "__main__":
    main()
