"""`sculptor train|generate|eval` (issue: generative model)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from sculptor.cli._app import app, echo, user_errors


@app.command("train")
@user_errors
def train_cmd(
    data: Annotated[Path, typer.Option("--data", help="dataset directory (manifest.json)")],
    out: Annotated[Path, typer.Option("--out", help="run directory")],
    res: Annotated[int, typer.Option(help="32 or 64 (must match the dataset)")] = 32,
    steps: Annotated[int, typer.Option(help="VAE training steps (phase 1)")] = 3000,
    prior_steps: Annotated[int, typer.Option("--prior-steps",
                                             help="latent DDPM steps (phase 2)")] = 3000,
    batch: Annotated[int, typer.Option(help="grids per step and process")] = 16,
    device: Annotated[str, typer.Option(help="auto|cpu|cuda")] = "auto",
    seed: Annotated[int, typer.Option()] = 0,
    prior_dims: Annotated[int, typer.Option(
        "--prior-dims", help="prior over the top-k principal latent directions "
        "(0: all latent dimensions, the shipped model)")] = 0,
    prior_rest: Annotated[float, typer.Option(
        "--prior-rest", help="with --prior-dims: Gaussian in the other directions when "
        "sampling (x their spread)")] = 0.0,
    refit_prior: Annotated[bool, typer.Option(
        "--refit-prior", help="keep the finished VAE of the run in --out and retrain the "
        "prior from scratch")] = False,
) -> None:
    """Train the style model on an SDF dataset (resumes when RUN has a checkpoint).
    For several GPUs: torchrun --nproc_per_node=K -m sculptor.gen3d.train --data ... --out ..."""
    from sculptor.gen3d.train import TrainConfig, train

    path = train(TrainConfig(data=str(data), out=str(out), res=res, steps=steps,
                             prior_steps=prior_steps, batch=batch, device=device, seed=seed,
                             prior_dims=prior_dims, prior_rest=prior_rest,
                             refit_prior=refit_prior))
    echo(f"checkpoint: {path}")


@app.command("generate")
@user_errors
def generate_cmd(
    out: Annotated[Path, typer.Option("--out", help="output directory")],
    checkpoint: Annotated[Path | None, typer.Option(help="default: the shipped model")] = None,
    n: Annotated[int, typer.Option("--n", help="number of designs")] = 4,
    seed: Annotated[int, typer.Option()] = 0,
    height_mm: Annotated[float, typer.Option("--height-mm")] = 400.0,
    interpolate: Annotated[tuple[str, str] | None, typer.Option(
        help="A B: morph between two designs (index under --seed) or training piece ids"
    )] = None,
    frames: Annotated[int, typer.Option(help="frames of --interpolate")] = 8,
) -> None:
    """Sample new sculptures as watertight meshes in mm."""
    from sculptor.gen3d.sample import generate

    designs = generate(out, checkpoint, n=n, seed=seed, height_mm=height_mm,
                       interpolate=interpolate, frames=frames)
    echo(f"{len(designs)} designs in {out} ({sum(bool(d.valid) for d in designs)} valid)")


@app.command("eval")
@user_errors
def eval_cmd(
    checkpoint: Annotated[Path, typer.Option(help="checkpoint to evaluate")],
    data: Annotated[Path, typer.Option("--data", help="its training dataset")],
    out: Annotated[Path, typer.Option("--out")] = Path("eval.json"),
    reference: Annotated[Path | None, typer.Option(
        help="dataset of unseen pieces to compare with (default: the held-out split of "
             "--data), e.g. 'sculptor corpus --seed 1 --n 100 --res 32'")] = None,
    bootstrap: Annotated[int, typer.Option(help="bootstrap resamples")] = 200,
    seed: Annotated[int, typer.Option()] = 0,
    cache: Annotated[bool, typer.Option(
        help="reuse the reference set and baselines from ~/.cache/sculptor/gen3d-eval")
    ] = True,
) -> None:
    """COV / MMD / 1-NNA, validity and novelty against baselines on unseen pieces."""
    from sculptor.gen3d.metrics import evaluate

    r = evaluate(checkpoint, data, out, bootstrap=bootstrap, seed=seed, reference=reference,
                 use_cache=cache)
    for name in ("model", "pca_gaussian", "random_interpolation"):
        m = r[name]
        echo(f"{name:21s} 1-NNA {m['one_nna']:.3f}  COV {m['cov']:.3f}  MMD {m['mmd']:.5f}  "
             f"valid {m['validity_rate']:.2f}  copying {m['novelty']['significant_copying']}")
    for name, v in r["model_vs_baselines_1nna"].items():
        lo, hi = v["gap_difference_ci95"]
        echo(f"model vs {name}: |1-NNA - 50 %| smaller by {v['gap_difference']:+.3f} "
             f"(95 % CI {lo:+.3f} .. {hi:+.3f}, not better in "
             f"{100 * v['fraction_not_better']:.0f} % of paired resamples)")
    echo(f"wrote {out} ({r['reference']['pieces']} reference pieces, {r['seconds']:.0f} s)")
