"""Networks and the latent diffusion objective (layer 1 and 2 of the style model).

The model is a small 3D convolutional VAE over truncated SDF grids (``(B, 1, R, R, R)``,
values in [-1, 1], negative inside) with a global latent vector, and a DDPM over that
latent (an MLP denoiser that predicts the noise). See ``docs/gen3d.md`` for why.

Array axes follow `sculptor.artifacts.sdf`: grid axis 0 is x, 1 is y, 2 is z (up).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class ModelConfig:
    """Everything needed to rebuild the networks (stored in every checkpoint)."""

    res: int = 32
    width: int = 8  # channels at full resolution (unused: first conv is strided); x2 per level
    max_width: int = 64
    latent: int = 64
    prior_hidden: int = 256
    prior_blocks: int = 3
    timesteps: int = 1000
    # The prior's space. 0: every latent dimension, standardised one by one (checkpoints
    # before prior_dims). k > 0: the top-k principal directions of the standardised
    # training latents, whitened; the other directions sit at the mean, or get a Gaussian
    # of prior_rest times their own spread when sampling (docs/gen3d.md, "Prior space").
    prior_dims: int = 0
    prior_rest: float = 0.0
    # The prior itself. "ddpm": the latent DDPM. "blend": no network; a sample is a
    # convex blend (1 - w) z_i + w z_j of a stored training latent mean z_i and one of its
    # blend_k nearest neighbours z_j (standardised latents), w ~ U(blend_lo, blend_hi);
    # the blend_pieces means and their neighbour table are buffers of the model.
    prior_kind: str = "ddpm"
    blend_pieces: int = 0
    blend_k: int = 8
    blend_lo: float = 0.2
    blend_hi: float = 0.8

    @property
    def prior_width(self) -> int:
        """Dimension of the space the latent DDPM works in."""
        return self.prior_dims or self.latent

    @property
    def levels(self) -> int:
        """Strided levels down to a 4^3 bottleneck."""
        return int(round(math.log2(self.res // 4)))

    def widths(self) -> list[int]:
        return [min(self.width * 2 ** i, self.max_width) for i in range(self.levels + 1)]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})


def _norm(c: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, c), c)


class Encoder(nn.Module):
    """(B, 1, R, R, R) grid -> (mu, logvar), each (B, latent)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.widths()
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip([1] + w[1:-1], w[1:])):
            layers += [nn.Conv3d(a, b, 4, stride=2, padding=1), _norm(b), nn.SiLU()]
            if i > 0:  # no full-width conv at R/2: it would dominate CPU time
                layers += [nn.Conv3d(b, b, 3, padding=1), _norm(b), nn.SiLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(w[-1] * 64, 2 * cfg.latent)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.head(self.body(x).flatten(1))
        mu, logvar = h.chunk(2, dim=1)
        return mu, logvar.clamp(-12.0, 6.0)


class Decoder(nn.Module):
    """(B, latent) -> (B, 1, R, R, R) grid in [-1, 1]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        w = cfg.widths()[::-1]
        self.w0 = w[0]
        self.head = nn.Linear(cfg.latent, w[0] * 64)
        layers: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(w[:-2], w[1:-1])):
            layers += [nn.ConvTranspose3d(a, b, 4, stride=2, padding=1), _norm(b), nn.SiLU()]
            if i < len(w) - 3:  # no full-width conv at R/2 (mirrors the encoder; CPU time)
                layers += [nn.Conv3d(b, b, 3, padding=1), _norm(b), nn.SiLU()]
        layers += [nn.ConvTranspose3d(w[-2], 1, 4, stride=2, padding=1)]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        h = self.head(z).view(z.shape[0], self.w0, 4, 4, 4)
        return torch.tanh(self.body(F.silu(h)))


class VAE(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.enc = Encoder(cfg)
        self.dec = Decoder(cfg)

    def forward(self, x: torch.Tensor, gen: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Reconstruction from a posterior draw; its noise from ``gen`` (a CPU generator)
        when given, so a training step depends on its own seed only."""
        mu, logvar = self.enc(x)
        eps = (torch.randn(mu.shape, generator=gen).to(mu) if gen is not None
               else torch.randn_like(mu))
        z = mu + eps * (0.5 * logvar).exp()
        return self.dec(z), mu, logvar


def vae_loss(recon: torch.Tensor, x: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor,
             kl_weight: float) -> tuple[torch.Tensor, dict[str, float]]:
    """L1 on the truncated SDF, 4x heavier near the surface (|x| < 0.5), plus a small KL."""
    w = 1.0 + 4.0 * (x.abs() < 0.5).float()
    rec = (w * (recon.float() - x).abs()).mean()
    kl = 0.5 * (mu.float() ** 2 + logvar.float().exp() - 1.0 - logvar.float()).sum(1).mean()
    return rec + kl_weight * kl, {"rec": float(rec.detach()), "kl": float(kl.detach())}


# --------------------------------------------------------------------------- latent prior
def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """(B,) integer steps -> (B, dim) sinusoidal features."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device) / half)
    a = t.float()[:, None] * freqs[None]
    return torch.cat([a.sin(), a.cos()], dim=1)


class _Block(nn.Module):
    def __init__(self, h: int) -> None:
        super().__init__()
        self.norm = nn.LayerNorm(h)
        self.fc1 = nn.Linear(h, h)
        self.fc2 = nn.Linear(h, h)
        self.temb = nn.Linear(h, h)

    def forward(self, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
        h = F.silu(self.fc1(self.norm(x)) + self.temb(e))
        return x + self.fc2(h)


class Denoiser(nn.Module):
    """Predicts the noise eps of a noised, standardised latent: (B, L), (B,) -> (B, L)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        h = cfg.prior_hidden
        self.inp = nn.Linear(cfg.prior_width, h)
        self.t1 = nn.Linear(h, h)
        self.t2 = nn.Linear(h, h)
        self.blocks = nn.ModuleList(_Block(h) for _ in range(cfg.prior_blocks))
        self.out = nn.Sequential(nn.LayerNorm(h), nn.Linear(h, cfg.prior_width))
        self.h = h

    def forward(self, z: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        e = self.t2(F.silu(self.t1(timestep_embedding(t, self.h))))
        x = self.inp(z)
        for b in self.blocks:
            x = b(x, e)
        return self.out(x)


class StyleModel(nn.Module):
    """VAE + latent denoiser + the map between VAE latents and the prior's space
    (buffers, fitted to the training latents after phase 1 by ``fit_prior_space``)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.vae = VAE(cfg)
        self.prior = Denoiser(cfg) if cfg.prior_kind == "ddpm" else None
        if cfg.prior_kind == "blend":
            n = cfg.blend_pieces
            self.register_buffer("blend_means", torch.zeros(n, cfg.latent))  # (n, L)
            self.register_buffer("blend_nbrs", torch.zeros(  # (n, k) neighbour indices
                n, max(1, min(cfg.blend_k, n - 1)), dtype=torch.long))
        self.register_buffer("z_mean", torch.zeros(cfg.latent))
        self.register_buffer("z_std", torch.ones(cfg.latent))
        self.register_buffer("alphas_bar", cosine_alphas_bar(cfg.timesteps))
        if cfg.prior_dims:  # absent from checkpoints without a principal-direction prior
            # (L, L) rows: principal directions of the standardised latents, by variance
            self.register_buffer("pc_dirs", torch.eye(cfg.latent))
            self.register_buffer("pc_sd", torch.ones(cfg.latent))  # (L,) their spread

    @torch.no_grad()
    def fit_prior_space(self, mus: torch.Tensor) -> None:
        """Fit the standardisation (and principal directions) to latents ``mus`` (n, L)."""
        z_mean, z_std = mus.mean(0), mus.std(0).clamp_min(1e-3)
        self.z_mean.copy_(z_mean)
        self.z_std.copy_(z_std)
        if self.cfg.prior_kind == "blend":
            if len(mus) != self.cfg.blend_pieces:
                raise ValueError(f"blend prior built for {self.cfg.blend_pieces} latents, "
                                 f"got {len(mus)}")
            self.blend_means.copy_(mus)
            self.blend_nbrs.copy_(nearest_neighbours((mus - z_mean) / z_std,
                                                     self.cfg.blend_k))
        if self.cfg.prior_dims:
            u = ((mus - z_mean) / z_std).double()
            _, s, vt = torch.linalg.svd(u, full_matrices=True)
            sd = torch.zeros(self.cfg.latent, dtype=torch.float64, device=u.device)
            sd[:len(s)] = s / max(1, len(u) - 1) ** 0.5
            self.pc_dirs.copy_(vt.float())
            self.pc_sd.copy_(sd.float().clamp_min(1e-6))

    def to_prior(self, z: torch.Tensor) -> torch.Tensor:
        """(B, L) VAE latents -> (B, prior_width) coordinates the DDPM learns (whitened)."""
        u = (z - self.z_mean) / self.z_std
        k = self.cfg.prior_dims
        if not k:
            return u
        return (u @ self.pc_dirs[:k].T) / self.pc_sd[:k]

    def from_prior(self, c: torch.Tensor, rest: torch.Tensor | None = None) -> torch.Tensor:
        """(B, prior_width) prior coordinates -> (B, L) VAE latents. ``rest`` (B, L - k):
        standard normal noise for the other principal directions, scaled by
        ``prior_rest`` times their spread (ignored when prior_rest is 0)."""
        k = self.cfg.prior_dims
        u = c
        if k:
            u = (c * self.pc_sd[:k]) @ self.pc_dirs[:k]
            if rest is not None and self.cfg.prior_rest > 0 and k < self.cfg.latent:
                u = u + self.cfg.prior_rest * (rest * self.pc_sd[k:]) @ self.pc_dirs[k:]
        return u * self.z_std + self.z_mean


    @torch.no_grad()
    def sample_blend(self, noise: torch.Tensor) -> torch.Tensor:
        """The blend prior: (B, >= 3) standard normal noise -> (B, L) VAE latents."""
        return blend_from_noise(self.blend_means, self.blend_nbrs, noise,
                                self.cfg.blend_lo, self.cfg.blend_hi)


def cosine_alphas_bar(T: int, s: float = 0.008) -> torch.Tensor:
    """(T,) cumulative alpha products of the cosine schedule (Nichol & Dhariwal 2021)."""
    t = torch.arange(T + 1, dtype=torch.float64) / T
    f = torch.cos((t + s) / (1 + s) * math.pi / 2) ** 2
    ab = (f / f[0])[1:]
    return ab.clamp(1e-5, 1.0).float()


def diffusion_loss(prior: nn.Module, z0: torch.Tensor, alphas_bar: torch.Tensor,
                   gen: torch.Generator | None = None) -> torch.Tensor:
    """Epsilon-prediction MSE at uniformly drawn steps. z0: (B, L) standardised latents."""
    B = z0.shape[0]
    t = torch.randint(0, alphas_bar.shape[0], (B,), device=z0.device, generator=gen)
    eps = torch.randn(z0.shape, device=z0.device, generator=gen)
    ab = alphas_bar[t][:, None]
    zt = ab.sqrt() * z0 + (1 - ab).sqrt() * eps
    return F.mse_loss(prior(zt, t), eps)


@contextlib.contextmanager
def cpu_threads(n: int):
    """Run small CPU work (MLP steps) on ``n`` threads: on a busy shared machine more
    threads spin-wait and run many times slower."""
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


@torch.no_grad()
def ddim_sample(prior: nn.Module, noise: torch.Tensor, alphas_bar: torch.Tensor,
                steps: int = 50) -> torch.Tensor:
    """Deterministic DDIM (eta = 0) from ``noise`` (B, L) to standardised latents (B, L)."""
    T = alphas_bar.shape[0]
    ts = torch.linspace(T - 1, 0, steps, device=noise.device).round().long()
    z = noise
    for i, t in enumerate(ts):
        ab = alphas_bar[t]
        eps = prior(z, t.expand(z.shape[0]))
        z0 = (z - (1 - ab).sqrt() * eps) / ab.sqrt()
        z0 = z0.clamp(-5, 5)
        ab_prev = alphas_bar[ts[i + 1]] if i + 1 < len(ts) else torch.tensor(1.0, device=z.device)
        eps = (z - ab.sqrt() * z0) / (1 - ab).sqrt()
        z = ab_prev.sqrt() * z0 + (1 - ab_prev).sqrt() * eps
    return z


# --------------------------------------------------------------------------- latent blends
def nearest_neighbours(z: torch.Tensor, k: int) -> torch.Tensor:
    """(n, k) long: for each row of ``z`` (n, L) the indices of its ``k`` nearest other
    rows by Euclidean distance (nearest first; k is capped at n - 1)."""
    n = z.shape[0]
    k = max(1, min(k, n - 1))
    d = torch.cdist(z.double(), z.double())
    d.fill_diagonal_(float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def blend_pairs(means: torch.Tensor, nbrs: torch.Tensor, i: torch.Tensor, pick: torch.Tensor,
                w: torch.Tensor) -> torch.Tensor:
    """(B, L) convex blends ``(1 - w) means[i] + w means[j]`` of row ``i`` and its
    neighbour ``j = nbrs[i, pick]``; i, pick (B,) long, w (B,) in [0, 1]."""
    j = nbrs[i, pick]
    w = w.to(means.dtype)[:, None]
    return (1 - w) * means[i] + w * means[j]


def blend_from_noise(means: torch.Tensor, nbrs: torch.Tensor, noise: torch.Tensor,
                     lo: float, hi: float) -> torch.Tensor:
    """The latent blend prior: (B, >= 3) standard normal noise -> (B, L) latents. The
    first three numbers, mapped to uniforms, pick a training latent, one of its
    neighbours and the blend weight w in [lo, hi]; so one noise vector is one sample and
    the same noise seed gives the same design."""
    u = (0.5 * (1 + torch.erf(noise[:, :3].double() / math.sqrt(2)))).clamp(0, 1 - 1e-9)
    n, k = nbrs.shape
    i = (u[:, 0] * n).long()
    pick = (u[:, 1] * k).long()
    w = lo + (hi - lo) * u[:, 2]
    return blend_pairs(means, nbrs, i, pick, w).to(means.dtype)
