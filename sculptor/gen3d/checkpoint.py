"""Checkpoints of the style model: one ``torch.save`` dict of tensors and plain values,
read back with ``torch.load(weights_only=True)`` (no pickled code).

Keys: ``format`` ("sculptor-gen3d"), ``format_version``, ``sculptor_version``,
``config`` (ModelConfig dict), ``train`` (TrainConfig dict), ``step``, ``complete``,
``model`` / ``ema`` (state dicts), ``optimizer`` (state of the current phase, absent in
the shipped inference export), ``losses`` ((k, 3) float: step, phase, loss),
``data`` (dataset hash, res, train ids, train latents (n, L), train surface points
(n, P, 3) float16 in grid units).
"""

from __future__ import annotations

import io
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch

from sculptor import __version__
from sculptor.artifacts.core import atomic_write_bytes, sha256_file
from sculptor.errors import UserError
from sculptor.gen3d.model import ModelConfig, StyleModel

FORMAT = "sculptor-gen3d"
FORMAT_VERSION = 1
CHECKPOINT_NAME = "checkpoint.pt"
# kept in float32 by the inference export (tiny; the latent maps need the precision)
FLOAT32_BUFFERS = ("alphas_bar", "z_mean", "z_std", "pc_dirs", "pc_sd", "blend_means")


def save_checkpoint(path: str | os.PathLike, state: dict[str, Any]) -> Path:
    """Write ``state`` (plus format and version keys) atomically."""
    state = {"format": FORMAT, "format_version": FORMAT_VERSION,
             "sculptor_version": __version__, **state}
    buf = io.BytesIO()
    torch.save(state, buf)
    return atomic_write_bytes(path, buf.getvalue())


def load_checkpoint(path: str | os.PathLike, need_complete: bool = False) -> dict[str, Any]:
    """Read and check a checkpoint; any problem is a one-line UserError."""
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"checkpoint not found: {path} (train one with 'sculptor train')")
    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, EOFError, zipfile.BadZipFile, ValueError,
            OSError, AttributeError, TypeError) as e:
        raise UserError(f"{path} is not a readable sculptor checkpoint "
                        f"({e.__class__.__name__}); re-train or re-download it") from None
    if not isinstance(ck, dict) or ck.get("format") != FORMAT:
        raise UserError(f"{path} is not a sculptor style-model checkpoint (foreign file); "
                        "give a checkpoint written by 'sculptor train'")
    if ck.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} has checkpoint format {ck.get('format_version')}, this "
                        f"sculptor reads {FORMAT_VERSION}; re-train with this version")
    for key in ("config", "step", "ema", "data"):
        if key not in ck:
            raise UserError(f"{path} lacks '{key}'; the checkpoint is damaged, re-train it")
    if need_complete and not ck.get("complete"):
        raise UserError(f"{path} is from an unfinished training run (step {ck['step']}); "
                        "rerun 'sculptor train' with the same --out to finish it")
    ck["path"] = str(path)
    return ck


def model_from_checkpoint(ck: dict[str, Any], use_ema: bool = True) -> StyleModel:
    """The StyleModel of a checkpoint (EMA weights by default), in eval mode, on CPU."""
    cfg = ModelConfig.from_dict(ck["config"])
    model = StyleModel(cfg)
    try:
        model.load_state_dict(ck["ema" if use_ema else "model"])
    except (RuntimeError, KeyError) as e:
        raise UserError(f"{ck.get('path')}: weights do not fit its config "
                        f"({str(e).splitlines()[0]}); the checkpoint is damaged") from None
    return model.eval()


def checkpoint_sha256(ck: dict[str, Any]) -> str:
    return sha256_file(ck["path"])


def export_inference(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Slim copy for shipping: EMA weights (float16 storage) and data, no optimizer."""
    ck = load_checkpoint(src, need_complete=True)
    keep = {k: v for k, v in ck.items()
            if k not in ("optimizer", "model", "path", "format", "format_version",
                         "sculptor_version")}
    keep["ema"] = {k: (v.half() if v.is_floating_point() and k not in FLOAT32_BUFFERS else v)
                   for k, v in ck["ema"].items()}
    keep["inference_only"] = True
    return save_checkpoint(dst, keep)


def main(argv: list[str] | None = None) -> int:
    """``python -m sculptor.gen3d.checkpoint RUN/checkpoint.pt OUT.pt``: slim export."""
    import sys

    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m sculptor.gen3d.checkpoint RUN/checkpoint.pt OUT.pt",
              file=sys.stderr)
        return 2
    try:
        p = export_inference(args[0], args[1])
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(f"wrote {p} ({p.stat().st_size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
