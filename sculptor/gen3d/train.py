"""Training of the style model (layer 3: the trainer).

Phase 1 trains the VAE on augmented grids; phase 2 encodes every training piece with the
EMA encoder, fits the prior's space to those latent means (standardisation and, with
``prior_dims`` = k, their top-k principal directions, whitened) and trains the latent
DDPM there. ``--refit-prior`` keeps a run's finished phase 1 and redoes phase 2 from
scratch: every random draw of a step comes from that step's own seed, so this is exactly
the run a fresh start with the same options would make. Both phases run under
PyTorch DDP when launched with ``torchrun --nproc_per_node=K -m sculptor.gen3d.train``
(NCCL on CUDA, gloo on CPU); on CUDA the forward passes run in mixed precision.
Checkpoints go to ``RUN/checkpoint.pt`` every ``save_every`` steps; rerunning the same
command resumes from it.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel as DDP

from sculptor.artifacts.core import atomic_write_json, sha256_file
from sculptor.dataset import load_grids
from sculptor.errors import UserError
from sculptor.gen3d.augment import augment
from sculptor.gen3d.checkpoint import CHECKPOINT_NAME, load_checkpoint, save_checkpoint
from sculptor.gen3d.device import DistContext, init_distributed, shutdown_distributed
from sculptor.gen3d.model import (ModelConfig, StyleModel, blend_pairs, cpu_threads,
                                  diffusion_loss, nearest_neighbours, vae_loss)

TRAIN_POINTS = 512  # surface points per training piece kept for nearest-piece lookups
# The prior learns the distribution of the training pieces' latent means as they are:
# turned or rescaled copies, or the posterior's noise (as large as the spread of the
# means), drew its samples off the pieces' distribution (docs/gen3d.md, "Diagnosis").
PRIOR_COPIES = 1
PRIOR_TURN_DEG = 0.0
PRIOR_SCALE = 0.0
PRIOR_SIGMA = 0.0
# The prior's space: 0 = every latent dimension, standardised. On a selection set of
# 100 unseen pieces a prior over the top k = 8..32 whitened principal directions drew
# samples closer to the training pieces than unseen pieces are (significant copying),
# and no k (also 64) scored a better 1-NNA (docs/gen3d.md, "Prior space").
PRIOR_DIMS = 0
PRIOR_KIND = "ddpm"
PRIOR_KINDS = ("ddpm", "blend")
# what must match for --refit-prior to reuse a run's phase 1 (the VAE)
PHASE1_OPTIONS = ("res", "steps", "batch", "lr", "kl_weight", "ema", "max_turn_deg",
                  "max_scale", "seed", "width", "max_width", "latent")


@dataclass
class TrainConfig:
    data: str
    out: str
    res: int = 32
    steps: int = 3000  # VAE steps (phase 1)
    prior_steps: int = 3000  # latent DDPM steps (phase 2)
    batch: int = 16  # per process
    prior_batch: int = 256
    lr: float = 2e-3
    prior_lr: float = 1e-3
    kl_weight: float = 1e-4
    ema: float = 0.995
    aug_copies: int = PRIOR_COPIES  # encodings per piece for the prior (first: as is)
    max_turn_deg: float = 20.0  # augmentation: turn about the vertical axis
    max_scale: float = 0.1  # augmentation: plan scale in [1 - s, 1 + s] per axis
    # the prior's data (docs/gen3d.md, "Diagnosis"): augmentation of the encoded copies
    # and the share of the posterior's noise added to their means
    prior_turn_deg: float = PRIOR_TURN_DEG
    prior_scale: float = PRIOR_SCALE
    prior_sigma: float = PRIOR_SIGMA
    prior_dims: int = PRIOR_DIMS  # 0: all latent dimensions (the former prior)
    prior_rest: float = 0.0  # sampling: Gaussian in the other directions (x their spread)
    # latent mixup: this share of each prior batch is replaced by convex blends
    # (1 - w) z_i + w z_j of a training latent and one of its blend_k nearest neighbours
    # (standardised latents), w ~ U(blend_lo, blend_hi)
    prior_mixup: float = 0.0
    prior_kind: str = PRIOR_KIND  # "ddpm" or "blend" (ModelConfig.prior_kind)
    blend_k: int = 8
    blend_lo: float = 0.2
    blend_hi: float = 0.8
    refit_prior: bool = False  # keep the run's finished phase 1, redo phase 2 from scratch
    device: str = "auto"
    seed: int = 0
    width: int = 8
    max_width: int = 64
    latent: int = 64
    save_every: int = 250
    log_every: int = 10
    threads: int = 0  # torch CPU threads (0: auto, see cpu_thread_count)
    progress: bool = True
    model: dict = field(default_factory=dict)  # filled from the above

    def model_config(self, pieces: int = 0) -> ModelConfig:
        """The networks' config; ``pieces``: training pieces (the blend prior stores
        ``pieces * aug_copies`` latent means)."""
        blend = self.prior_kind == "blend"
        return ModelConfig(res=self.res, width=self.width, max_width=self.max_width,
                           latent=self.latent, prior_dims=min(self.prior_dims, self.latent),
                           prior_rest=self.prior_rest, prior_kind=self.prior_kind,
                           blend_pieces=pieces * self.aug_copies if blend else 0,
                           blend_k=self.blend_k, blend_lo=self.blend_lo,
                           blend_hi=self.blend_hi)


# --------------------------------------------------------------------------- helpers
def cpu_thread_count() -> int:
    """Threads for CPU training: the idle cores (cores - 1-min load average), at least 1.
    On a shared, busy machine extra threads only spin-wait and run 5-8x slower."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (
        os.cpu_count() or 1)
    try:
        idle = cores - os.getloadavg()[0]
    except OSError:
        idle = cores
    return max(1, min(torch.get_num_threads(), int(idle)))


def _lr_at(step: int, total: int, base: float, warmup: int = 100) -> float:
    if step < warmup:
        return base * (step + 1) / warmup
    p = (step - warmup) / max(1, total - warmup)
    return base * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, p))))


def _f32(v: torch.Tensor) -> torch.Tensor:
    """EMA copies are float32; integer buffers (the blend prior's neighbours) stay."""
    return v.float() if v.is_floating_point() else v


@torch.no_grad()
def _ema_update(ema: dict[str, torch.Tensor], module: torch.nn.Module, prefix: str,
                decay: float) -> None:
    for name, p in module.state_dict().items():
        e = ema[prefix + name]
        if p.is_floating_point():
            e.mul_(decay).add_(p.detach().to(e.dtype), alpha=1 - decay)
        else:
            e.copy_(p)


def _autocast(device: torch.device):
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def _scaler(device: torch.device):
    use = device.type == "cuda" and not torch.cuda.is_bf16_supported()
    return torch.amp.GradScaler("cuda", enabled=use)


class _Progress:
    """rich progress bar with loss and ETA on a terminal, plain lines in a log file."""

    def __init__(self, enabled: bool, total: int, start: int) -> None:
        self.enabled, self.total, self.start = enabled, total, start
        self.t0 = time.time()
        self.bar = None
        self.last_line = 0.0
        if enabled and sys.stdout.isatty():
            from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                       TimeElapsedColumn, TimeRemainingColumn)
            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                                TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn())
            self.task = self.bar.add_task("training", total=total, completed=start, loss="-")
            self.bar.start()

    def update(self, step: int, phase: str, loss: float) -> None:
        if not self.enabled:
            return
        if self.bar is not None:
            self.bar.update(self.task, completed=step, description=phase, loss=f"{loss:.4f}")
            return
        now = time.time()
        if now - self.last_line > 30 or step == self.total:
            done = step - self.start
            rate = done / max(1e-9, now - self.t0)
            eta = (self.total - step) / rate if rate > 0 else float("nan")
            print(f"{phase} step {step}/{self.total} loss {loss:.4f} "
                  f"{1 / max(rate, 1e-9):.2f} s/step ETA {eta / 60:.1f} min", flush=True)
            self.last_line = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def plot_losses(losses: np.ndarray, png: Path) -> None:
    """Loss curves (k, 3: step, phase, loss) of both phases -> PNG, log scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sculptor.artifacts.core import atomic_write_bytes
    import io

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.2))
    for ax, ph, title in zip(axes, (1, 2), ("phase 1: VAE (weighted L1 + KL)",
                                            "phase 2: latent DDPM (eps MSE)")):
        sel = losses[losses[:, 1] == ph] if len(losses) else losses
        if len(sel):
            ax.plot(sel[:, 0], sel[:, 2], lw=0.6, alpha=0.4, color="tab:blue")
            k = max(1, len(sel) // 50)
            sm = np.convolve(sel[:, 2], np.ones(k) / k, mode="valid")
            ax.plot(sel[k - 1:, 0], sm, lw=1.5, color="tab:blue")
            ax.set_yscale("log")
        ax.set_title(title, fontsize=9)
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    plt.close(fig)
    atomic_write_bytes(png, buf.getvalue())


@torch.no_grad()
def encode_augmented(model: StyleModel, grids: torch.Tensor, copies: int, seed: int,
                     max_scale: float = 0.1, max_turn_deg: float = 20.0, batch: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """(n * copies, L) means and std devs of the encodings of augmented grids; the first
    ``n`` rows are the un-augmented pieces."""
    gen = torch.Generator().manual_seed(seed + 7919)
    mus, sds = [], []
    for c in range(copies):
        for i in range(0, len(grids), batch):
            x = grids[i:i + batch]
            if c > 0:
                x = augment(x.cpu(), gen, max_scale, max_turn_deg).to(x.device)
            mu, logvar = model.vae.enc(x)
            mus.append(mu.float().cpu())
            sds.append((0.5 * logvar.float()).exp().cpu())
    return torch.cat(mus), torch.cat(sds)


def _train_points(grids: np.ndarray, seed: int) -> torch.Tensor:
    from sculptor.gen3d.meshing import grid_to_unit_mesh, sample_surface

    pts = np.zeros((len(grids), TRAIN_POINTS, 3), np.float32)
    for i, g in enumerate(grids):
        mesh, _, _ = grid_to_unit_mesh(g)
        if mesh is not None:
            pts[i] = sample_surface(mesh, TRAIN_POINTS, seed + i)
    return torch.from_numpy(pts).half()


@torch.no_grad()
def replica_divergence(module: torch.nn.Module, ctx: DistContext) -> float:
    """Largest |parameter difference| between this process and rank 0, over all ranks
    (0.0 when not distributed). DDP must keep this at exactly 0."""
    if not ctx.active:
        return 0.0
    import torch.distributed as dist

    v = torch.cat([p.detach().float().reshape(-1) for p in module.parameters()])
    v0 = v.clone()
    dist.broadcast(v0, src=0)
    d = (v - v0).abs().max().reshape(1)
    dist.all_reduce(d, op=dist.ReduceOp.MAX)
    return float(d)


def mixup(z: torch.Tensor, mus: torch.Tensor, nbrs: torch.Tensor, idx: torch.Tensor,
          gen: torch.Generator, frac: float, lo: float, hi: float) -> torch.Tensor:
    """Latent mixup of a prior batch: each row of ``z`` (B, L), drawn from ``mus[idx]``,
    is replaced with probability ``frac`` by a blend ``(1 - w) mus[i] + w mus[j]`` of its
    piece i = idx and one of i's neighbours j (``nbrs`` (n, k)), w ~ U(lo, hi); the
    draws come from ``gen`` (CPU)."""
    B = len(idx)
    mix = (torch.rand(B, generator=gen) < frac).to(z.device)
    pick = torch.randint(0, nbrs.shape[1], (B,), generator=gen)
    w = lo + (hi - lo) * torch.rand(B, generator=gen)
    dev = mus.device
    blends = blend_pairs(mus, nbrs, idx.to(dev), pick.to(dev), w.to(dev))
    return torch.where(mix[:, None], blends.to(z.dtype), z)


def _prior_phase(cfg: TrainConfig, ctx: DistContext, device: torch.device, model: StyleModel,
                 prior: torch.nn.Module, opt: torch.optim.Optimizer, ema: dict, mus: torch.Tensor,
                 sds: torch.Tensor, ab: torch.Tensor, step: int, total: int, losses: list,
                 bar: "_Progress", save) -> int:
    """Phase 2 steps from ``step`` to ``total``; returns the step reached."""
    mcfg = model.cfg
    nbrs = nearest_neighbours((mus - model.z_mean) / model.z_std, cfg.blend_k)
    while step < total:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 7 + ctx.rank)
        idx = torch.randint(0, len(mus), (cfg.prior_batch,), generator=gen)
        eps = torch.randn(cfg.prior_batch, mcfg.latent, generator=gen).to(device)
        z = mus[idx] + cfg.prior_sigma * sds[idx] * eps
        if cfg.prior_mixup > 0:  # (drawn after the above: mixup 0 is the former run)
            z = mixup(z, mus, nbrs, idx, gen, cfg.prior_mixup, cfg.blend_lo, cfg.blend_hi)
        z0 = model.to_prior(z)
        ps = step - cfg.steps
        for gr in opt.param_groups:
            gr["lr"] = _lr_at(ps, cfg.prior_steps, cfg.prior_lr)
        gdev = torch.Generator(device=device).manual_seed(cfg.seed + 31 * step + ctx.rank)
        loss = diffusion_loss(prior, z0, ab, gdev)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.prior.parameters(), 1.0)
        opt.step()
        _ema_update(ema, model.prior, "prior.", min(cfg.ema, (1 + ps) / (10 + ps)))
        step += 1
        if step % cfg.log_every == 0 or step == total:
            losses.append([step, 2, float(loss.detach())])
        bar.update(step, "phase 2 prior", float(loss.detach()))
        if (step % cfg.save_every == 0) and step < total:
            save(False, opt, 2)
            ctx.barrier()
    return step


def _phase1_of(ck: dict, cfg: TrainConfig, mcfg: ModelConfig, model: StyleModel,
               ema: dict) -> tuple[int, list]:
    """``--refit-prior``: load the finished phase 1 (VAE weights and their EMA) of
    checkpoint ``ck`` into ``model`` / ``ema``, whose prior stays freshly initialised
    from the seed, as in a run from scratch; returns (step, phase-1 losses). Phase 2
    never touches the VAE, so this is the state a run from scratch reaches after phase 1.
    Refused unless phase 1 was run with the same options and is finished. From an
    inference export (no raw weights) both are its EMA weights."""
    path = ck["path"]
    old = ck.get("train", {})
    differ = [k for k in PHASE1_OPTIONS if old.get(k) != getattr(cfg, k)]
    if differ:
        raise UserError(f"--refit-prior: {path} ran phase 1 with other options "
                        f"({', '.join(f'{k}={old.get(k)}' for k in differ)}); pass the same "
                        "ones or train a new --out")
    if int(ck["step"]) < cfg.steps:
        raise UserError(f"--refit-prior: {path} has not finished phase 1 (step "
                        f"{ck['step']} of {cfg.steps}); rerun without --refit-prior first")
    # an inference export (the shipped model) keeps only the EMA weights, as float16: they
    # are its VAE (sampling never used the raw weights); phase 2 then encodes the pieces
    # with those weights, so the refit is not bit-equal to one of the full run
    weights = ck["model"] if "model" in ck else ck["ema"]
    vae = {k[len("vae."):]: v.float() if v.is_floating_point() else v
           for k, v in weights.items() if k.startswith("vae.")}
    try:
        model.vae.load_state_dict(vae)
    except RuntimeError as e:
        raise UserError(f"--refit-prior: the VAE of {path} does not fit this config "
                        f"({str(e).splitlines()[0]})") from None
    for k, v in ck["ema"].items():
        if k.startswith("vae."):
            ema[k] = v.float()
    losses = [row for row in ck["losses"].tolist() if row[1] == 1 and row[0] <= cfg.steps]
    return cfg.steps, losses


# --------------------------------------------------------------------------- the run
def train(cfg: TrainConfig) -> Path:
    """Train (or resume) a run; returns RUN/checkpoint.pt. Works under torchrun."""
    ctx, device = init_distributed(cfg.device)
    try:
        return _train(cfg, ctx, device)
    finally:
        shutdown_distributed()


def _train(cfg: TrainConfig, ctx: DistContext, device: torch.device) -> Path:
    if cfg.res not in (32, 64):
        raise UserError(f"--res {cfg.res}: use 32 or 64")
    if cfg.steps < 1 or cfg.prior_steps < 1:
        raise UserError("--steps and --prior-steps must be at least 1")
    if cfg.prior_dims < 0 or not cfg.prior_rest >= 0:
        raise UserError("--prior-dims and --prior-rest must not be negative "
                        "(--prior-dims 0: a prior over all latent dimensions)")
    if cfg.prior_kind not in PRIOR_KINDS:
        raise UserError(f"--prior-kind {cfg.prior_kind!r}: use {' or '.join(PRIOR_KINDS)}")
    if cfg.prior_kind == "blend" and cfg.prior_dims:
        raise UserError("--prior-kind blend blends the latents themselves; leave "
                        "--prior-dims at 0")
    if not (0 <= cfg.prior_mixup <= 1) or cfg.blend_k < 1 or not (
            0 <= cfg.blend_lo <= cfg.blend_hi <= 1):
        raise UserError("--prior-mixup must be in [0, 1], --blend-k at least 1 and "
                        "0 <= --blend-lo <= --blend-hi <= 1")
    if device.type == "cpu":
        torch.set_num_threads(cfg.threads or cpu_thread_count())
    data = Path(cfg.data)
    manifest, entries, grids_np = load_grids(data, "train")
    if manifest.res != cfg.res:
        raise UserError(f"dataset {data} has res {manifest.res} but --res is {cfg.res}; "
                        f"pass --res {manifest.res}")
    if len(entries) < 2:
        raise UserError(f"dataset {data} has {len(entries)} training piece(s); need >= 2")
    mcfg = cfg.model_config(len(entries))
    cfg.model = mcfg.to_dict()
    out = Path(cfg.out)
    ckpt_path = out / CHECKPOINT_NAME
    data_sha = sha256_file(data / "manifest.json" if data.is_dir() else data)

    torch.manual_seed(cfg.seed)
    model = StyleModel(mcfg).to(device)
    ema = {k: _f32(v.detach().clone()) for k, v in model.state_dict().items()}
    step, losses, opt_state = 0, [], (None, None)
    if cfg.refit_prior and not ckpt_path.is_file():
        raise UserError(f"--refit-prior: no checkpoint in {cfg.out} to keep the VAE of; "
                        "train the run first (without --refit-prior)")
    if ckpt_path.is_file():
        ck = load_checkpoint(ckpt_path)
        if ck["data"].get("manifest_sha256") != data_sha:
            raise UserError(f"{ckpt_path} was trained on another dataset; use a new --out")
        if cfg.refit_prior:
            step, losses = _phase1_of(ck, cfg, mcfg, model, ema)
            if ctx.main:
                print(f"refitting the prior on the VAE of {ckpt_path} (phase 1 done at "
                      f"step {step})", flush=True)
        elif ModelConfig.from_dict(ck["config"]) != mcfg:
            raise UserError(f"{ckpt_path} was trained with another model config "
                            f"({ck['config']}); use a new --out or the same options "
                            "(or --refit-prior to keep its VAE and retrain the prior)")
        else:
            model.load_state_dict(ck["model"])
            ema = {k: _f32(v) for k, v in ck["ema"].items()}
            step = int(ck["step"])
            losses = ck["losses"].tolist()
            opt_state = (ck.get("optimizer_phase"), ck.get("optimizer"))
            if ck.get("complete") and step >= cfg.steps + cfg.prior_steps:
                if ctx.main:
                    print(f"{ckpt_path} is complete at step {step}; nothing to do",
                          flush=True)
                return ckpt_path
            if ctx.main:
                print(f"resuming {ckpt_path} at step {step}", flush=True)
    total = cfg.steps + cfg.prior_steps
    ema = {k: v.to(device) for k, v in ema.items()}
    X = torch.from_numpy(grids_np).unsqueeze(1).to(device)
    n = len(X)

    def save(complete: bool, opt: torch.optim.Optimizer | None, phase: int,
             extra: dict | None = None) -> None:
        if not ctx.main:
            return
        state = {
            "config": mcfg.to_dict(), "train": asdict(cfg), "step": step,
            "complete": complete,
            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "ema": {k: v.detach().cpu() for k, v in ema.items()},
            "optimizer": opt.state_dict() if opt is not None else {},
            "optimizer_phase": phase,
            "losses": torch.tensor(losses, dtype=torch.float64).reshape(-1, 3),
            "data": {"manifest_sha256": data_sha, "path": str(data), "res": manifest.res,
                     "source": manifest.source, "train_ids": [e.id for e in entries],
                     **(extra or {})},
        }
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(ckpt_path, state)
        plot_losses(np.asarray(losses, float).reshape(-1, 3), out / "loss.png")

    bar = _Progress(cfg.progress and ctx.main, total, step)
    if ctx.main:
        out.mkdir(parents=True, exist_ok=True)
        atomic_write_json(out / "train_config.json", asdict(cfg))
    scaler = _scaler(device)
    # ---------------------------------------------------------------- phase 1: VAE
    vae = DDP(model.vae) if ctx.active else model.vae
    opt = torch.optim.AdamW(model.vae.parameters(), lr=cfg.lr, weight_decay=1e-4)
    if opt_state[0] == 1 and step < cfg.steps:
        opt.load_state_dict(opt_state[1])
    model.train()
    while step < cfg.steps:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 7 + ctx.rank)
        idx = torch.randint(0, n, (cfg.batch,), generator=gen)
        x = augment(X[idx].cpu(), gen, cfg.max_scale, cfg.max_turn_deg).to(device)
        for gr in opt.param_groups:
            gr["lr"] = _lr_at(step, cfg.steps, cfg.lr)
        with _autocast(device):
            recon, mu, logvar = vae(x, gen)
        loss, _ = vae_loss(recon, x, mu, logvar, cfg.kl_weight)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.unscale_(opt)
        torch.nn.utils.clip_grad_norm_(model.vae.parameters(), 1.0)
        scaler.step(opt)
        scaler.update()
        _ema_update(ema, model.vae, "vae.", min(cfg.ema, (1 + step) / (10 + step)))
        step += 1
        if step % cfg.log_every == 0 or step == cfg.steps:
            losses.append([step, 1, float(loss.detach())])
        bar.update(step, "phase 1 VAE", float(loss.detach()))
        if step % cfg.save_every == 0 or step == cfg.steps:
            save(False, opt, 1)
            ctx.barrier()
    # ---------------------------------------------------------------- phase 2: prior
    enc_model = StyleModel(mcfg).to(device)
    enc_model.load_state_dict(ema)
    enc_model.eval()
    mus, sds = encode_augmented(enc_model, X, cfg.aug_copies, cfg.seed, cfg.prior_scale,
                                cfg.prior_turn_deg)
    mus, sds = mus.to(device), sds.to(device)
    model.fit_prior_space(mus)
    with torch.no_grad():
        for k in ("z_mean", "z_std", "pc_dirs", "pc_sd", "blend_means", "blend_nbrs"):
            if k in ema:
                ema[k].copy_(getattr(model, k))
    if model.prior is None:  # the blend prior: fitted above, nothing to train
        step = total
        opt = None
    else:
        prior = DDP(model.prior) if ctx.active else model.prior
        opt = torch.optim.AdamW(model.prior.parameters(), lr=cfg.prior_lr, weight_decay=0.0)
        if opt_state[0] == 2 and cfg.steps <= step < total:
            opt.load_state_dict(opt_state[1])
        ab = model.alphas_bar.to(device)
        model.prior.train()
        threads = cpu_threads(1) if device.type == "cpu" else contextlib.nullcontext()
        with threads:
            step = _prior_phase(cfg, ctx, device, model, prior, opt, ema, mus, sds, ab, step,
                                total, losses, bar, save)
    bar.close()
    # ---------------------------------------------------------------- final
    extra = {"world_size": ctx.world, "replica_max_abs_diff": replica_divergence(model, ctx)}
    if extra["replica_max_abs_diff"] != 0.0:
        raise RuntimeError(f"DDP replicas diverged by {extra['replica_max_abs_diff']}")
    if ctx.main:
        enc_model.load_state_dict(ema)
        with torch.no_grad():
            extra["train_latents"] = enc_model.vae.enc(X)[0].float().cpu() if n <= 64 else \
                torch.cat([enc_model.vae.enc(X[i:i + 32])[0].float().cpu()
                           for i in range(0, n, 32)])
        extra["train_points"] = _train_points(grids_np, cfg.seed)
    save(True, opt, 2, extra)
    ctx.barrier()
    return ckpt_path


# --------------------------------------------------------------------------- torchrun entry
def parse_args(argv: list[str] | None = None) -> TrainConfig:
    p = argparse.ArgumentParser(prog="python -m sculptor.gen3d.train",
                                description="Train the sculptor style model (DDP-ready).")
    d = TrainConfig(data="", out="")
    p.add_argument("--data", required=True)
    p.add_argument("--out", required=True)
    for name in ("res", "steps", "prior_steps", "batch", "prior_batch", "aug_copies", "seed",
                 "width", "max_width", "latent", "prior_dims", "blend_k", "save_every",
                 "log_every", "threads"):
        p.add_argument("--" + name.replace("_", "-"), type=int, default=getattr(d, name))
    for name in ("lr", "prior_lr", "kl_weight", "ema", "max_turn_deg", "max_scale",
                 "prior_turn_deg", "prior_scale", "prior_sigma", "prior_rest", "prior_mixup",
                 "blend_lo", "blend_hi"):
        p.add_argument("--" + name.replace("_", "-"), type=float, default=getattr(d, name))
    p.add_argument("--device", default="auto")
    p.add_argument("--prior-kind", default=d.prior_kind,
                   help="ddpm (latent diffusion) or blend (neighbour blends of the "
                        "training latents)")
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--refit-prior", action="store_true",
                   help="keep the finished phase 1 (VAE) of the run in --out and retrain "
                        "the prior from scratch (e.g. with another --prior-dims)")
    a = vars(p.parse_args(argv))
    a["progress"] = not a.pop("no_progress")
    return TrainConfig(**a)


def main(argv: list[str] | None = None) -> int:
    try:
        cfg = parse_args(argv)
        train(cfg)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
