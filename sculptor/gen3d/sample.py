"""Sampling: noise -> DDIM in latent space -> decoder -> repaired mesh -> design files.

Each design's noise comes from its own seed (``noise_seed`` in designs.json), derived
from ``--seed`` and the design's index, so a design is reproduced exactly from the
pair (checkpoint, noise seed). A design that fails a validity check after repair is
redrawn with the next attempt's noise seed (``attempts`` says how many it took).
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sculptor.artifacts.core import (Provenance, atomic_output_dir, atomic_write_json,
                                     atomic_write_mesh, sha256_file)
from sculptor.artifacts.design import Design
from sculptor.errors import UserError
from sculptor.gen3d.checkpoint import load_checkpoint, model_from_checkpoint
from sculptor.gen3d.meshing import MeshResult, grid_to_design_mesh
from sculptor.gen3d.model import StyleModel, cpu_threads, ddim_sample

MAX_ATTEMPTS = 8
DDIM_STEPS = 50
NEAREST_POINTS = 512


def default_checkpoint() -> Path:
    """The checkpoint shipped with the package (trained on the shipped corpus)."""
    return Path(str(resources.files("sculptor") / "data" / "model" / "style-32.pt"))


def noise_seed(seed: int, index: int, attempt: int = 0) -> int:
    """31-bit seed of design ``index``'s noise at ``attempt`` (stable across versions)."""
    h = hashlib.sha256(f"sculptor-gen3d:{seed}:{index}:{attempt}".encode()).digest()
    return int.from_bytes(h[:4], "big") & 0x7FFFFFFF


def noise_for(seed_value: int, latent: int) -> torch.Tensor:
    """(latent,) standard normal noise of one noise seed."""
    return torch.randn(latent, generator=torch.Generator().manual_seed(seed_value))


class Sampler:
    """A loaded model with the helpers to turn noise or latents into grids."""

    def __init__(self, checkpoint: str | os.PathLike | None = None) -> None:
        path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
        if checkpoint is None and not path.is_file():
            raise UserError(f"the shipped model {path} is missing from this install; pass "
                            "--checkpoint RUN/checkpoint.pt")
        self.ck = load_checkpoint(path, need_complete=True)
        self.model: StyleModel = model_from_checkpoint(self.ck)
        self.sha256 = sha256_file(self.ck["path"])
        self.res = int(self.ck["config"]["res"])
        data = self.ck["data"]
        self.train_ids: list[str] = list(data.get("train_ids", []))
        self.train_points = data.get("train_points")
        self.train_latents = data.get("train_latents")

    @torch.no_grad()
    def latents_from_noise(self, noise: torch.Tensor) -> torch.Tensor:
        """(B, L) noise -> (B, L) VAE latents. The DDPM starts from the first
        ``prior_width`` numbers; the rest feed the other principal directions (used only
        when the model's ``prior_rest`` > 0). The blend prior uses the first three
        (``StyleModel.sample_blend``)."""
        m = self.model
        if m.cfg.prior_kind == "blend":
            return m.sample_blend(noise)
        k = m.cfg.prior_width
        with cpu_threads(1):  # 50 tiny MLP calls: threads only spin on a busy machine
            c = ddim_sample(m.prior, noise[:, :k], m.alphas_bar, DDIM_STEPS)
        return m.from_prior(c, noise[:, k:])

    @torch.no_grad()
    def decode(self, z: torch.Tensor) -> np.ndarray:
        """(B, L) latents -> (B, R, R, R) float32 normalised SDF grids."""
        return self.model.vae.dec(z).squeeze(1).float().numpy()

    def latent_of(self, ref: str, seed: int) -> torch.Tensor:
        """(L,) latent of a design index ('3': design 3 of ``seed``) or a training id."""
        if ref.isdigit():
            return self.latents_from_noise(noise_for(noise_seed(seed, int(ref)),
                                                     self.model.cfg.latent)[None])[0]
        if ref in self.train_ids and self.train_latents is not None:
            return self.train_latents[self.train_ids.index(ref)].float()
        raise UserError(f"--interpolate {ref!r}: give a design index (0, 1, ...) or a "
                        f"training piece id of this checkpoint (e.g. {self.train_ids[:2]})")

    def nearest_train(self, unit_points: np.ndarray | None) -> tuple[str | None, float | None]:
        """Nearest training piece by Chamfer distance (grid units^2, 512 points)."""
        if unit_points is None or self.train_points is None or not self.train_ids:
            return None, None
        from sculptor.gen3d.metrics import chamfer_matrix

        d = chamfer_matrix(torch.from_numpy(unit_points[None]),
                           self.train_points.float())[0]
        j = int(torch.argmin(d))
        return self.train_ids[j], float(d[j])


def _design_files(tmp: Path, name: str, res: MeshResult, sampler: Sampler, prov: Provenance,
                  **fields: Any) -> Design:
    stl = tmp / f"{name}.stl"
    atomic_write_mesh(stl, res.mesh)
    nearest, dist = sampler.nearest_train(res.unit_points)
    m = res.mesh
    design = Design(provenance=prov, mesh=stl.name, sha256=sha256_file(stl),
                    height_mm=float(m.extents[2]), bbox_mm=[float(x) for x in m.extents],
                    volume_mm3=float(m.volume), watertight=bool(m.is_watertight),
                    checkpoint_sha256=sampler.sha256, checks=res.checks, valid=res.valid,
                    nearest_train_id=nearest, nearest_train_chamfer=dist, **fields)
    design.save(tmp / f"{name}.json")
    return design


def _gallery(meshes: list, titles: list[str], png: Path) -> None:
    from sculptor.render import render_gallery

    render_gallery(meshes, png, titles=titles, cell_px=220)


def generate(out: str | os.PathLike, checkpoint: str | os.PathLike | None = None,
             n: int = 4, seed: int = 0, height_mm: float = 400.0, progress: bool = True,
             interpolate: Sequence[str] | None = None, frames: int = 8) -> list[Design]:
    """Sample ``n`` designs (or an ``interpolate`` = (A, B) morph of ``frames`` frames)
    into ``out``: design-000.stl + design-000.json per design, designs.json, gallery.png.

    Every design is one watertight, winding-consistent mesh in mm in the piece frame
    (flat base at z = 0, base centroid on the origin), scaled to ``height_mm``.
    """
    if n < 1 or n > 1000:
        raise UserError(f"--n {n}: give between 1 and 1000 designs")
    if not (10.0 <= height_mm <= 5000.0):
        raise UserError(f"--height-mm {height_mm}: give a height between 10 and 5000 mm")
    if interpolate is not None and (len(interpolate) != 2 or not 2 <= frames <= 200):
        raise UserError("--interpolate takes two references A B and --frames 2..200")
    if seed < 0:
        raise UserError(f"--seed {seed}: give a non-negative seed")
    sampler = Sampler(checkpoint)
    prov = Provenance.make("sculptor generate", {
        "n": n, "seed": seed, "height_mm": height_mm, "checkpoint": sampler.ck["path"],
        "interpolate": list(interpolate) if interpolate else None, "frames": frames})
    records: list[dict] = []
    designs: list[Design] = []
    meshes = []
    count = frames if interpolate else n
    with atomic_output_dir(out) as tmp:
        from rich.progress import track

        it = range(count)
        if progress:
            it = track(it, description="interpolating" if interpolate else "sampling")
        if interpolate:
            za, zb = (sampler.latent_of(r, seed) for r in interpolate)
        for i in it:
            name = f"design-{i:03d}"
            if interpolate:
                t = i / (count - 1)
                grid = sampler.decode(((1 - t) * za + t * zb)[None])[0]
                res = grid_to_design_mesh(grid, height_mm, n_points=NEAREST_POINTS, seed=i)
                if res.mesh is None:
                    raise UserError(f"frame {i} of the interpolation is empty; pick other "
                                    "end points")
                extra = {"seed": seed, "interpolation_t": t,
                         "interpolate": list(interpolate), "attempts": 1}
            else:
                for attempt in range(MAX_ATTEMPTS):
                    ns = noise_seed(seed, i, attempt)
                    z = sampler.latents_from_noise(noise_for(ns, sampler.model.cfg.latent)[None])
                    res = grid_to_design_mesh(sampler.decode(z)[0], height_mm,
                                              n_points=NEAREST_POINTS, seed=ns)
                    if res.valid:
                        break
                if res.mesh is None:
                    raise UserError(f"design {i}: every sample was empty; the checkpoint "
                                    "is not trained enough")
                extra = {"seed": seed, "noise_seed": ns, "attempts": attempt + 1}
            d = _design_files(tmp, name, res, sampler, prov, **extra)
            designs.append(d)
            meshes.append(res.mesh)
            records.append({"file": d.mesh, "header": f"{name}.json",
                            **d.model_dump(exclude={"provenance", "kind", "schema_version"})})
        atomic_write_json(tmp / "designs.json", {
            "kind": "design_set", "schema_version": 1,
            "provenance": prov.model_dump(), "seed": seed,
            "checkpoint": sampler.ck["path"], "checkpoint_sha256": sampler.sha256,
            "nearest_metric": "Chamfer (mean squared, grid units, 512 points) to the "
                              "training pieces stored in the checkpoint",
            "designs": records})
        titles = [f"{i:03d} " + ("valid" if d.valid else "INVALID") for i, d in
                  enumerate(designs)]
        _gallery(meshes, titles, tmp / "gallery.png")
    return designs
