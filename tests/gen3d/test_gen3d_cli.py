"""Bad input at the CLI: one line on stderr, exit 2, nothing written."""

from __future__ import annotations

import pytest
import torch
from typer.testing import CliRunner

from sculptor.cli import app

runner = CliRunner()


def _fails(args: list[str], *must_not_exist) -> str:
    r = runner.invoke(app, args)
    assert r.exit_code == 2, (r.exit_code, r.output)
    lines = [ln for ln in r.output.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), r.output
    for p in must_not_exist:
        assert not p.exists(), p
    return lines[0]


def test_train_bad_inputs(tmp_path, syn_data):
    out = tmp_path / "run"
    empty = tmp_path / "empty"
    empty.mkdir()
    assert "manifest.json not found" in _fails(["train", "--data", str(empty), "--out",
                                                str(out)], out)
    assert "--res 32" in _fails(["train", "--data", str(syn_data), "--out", str(out),
                                 "--res", "64"], out)
    if not torch.cuda.is_available():
        assert "no CUDA" in _fails(["train", "--data", str(syn_data), "--out", str(out),
                                    "--device", "cuda"], out)
    assert "--prior-dims" in _fails(["train", "--data", str(syn_data), "--out", str(out),
                                     "--prior-dims", "-3"], out)
    assert "--refit-prior" in _fails(["train", "--data", str(syn_data), "--out", str(out),
                                      "--refit-prior"], out)


def test_train_refuses_to_resume_on_another_dataset(tmp_path, tiny_run):
    import shutil

    from sculptor.gen3d.synthetic import write_synthetic_dataset

    other = tmp_path / "other"
    write_synthetic_dataset(other, n=6, res=32, seed=99)
    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    before = (run / "checkpoint.pt").read_bytes()
    msg = _fails(["train", "--data", str(other), "--out", str(run), "--steps", "6",
                  "--prior-steps", "30"])
    assert "another" in msg
    assert (run / "checkpoint.pt").read_bytes() == before


def test_generate_bad_checkpoints(tmp_path):
    out = tmp_path / "designs"
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"\x00not a checkpoint" * 100)
    assert "not a readable" in _fails(["generate", "--checkpoint", str(corrupt), "--out",
                                       str(out)], out)
    foreign = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(3)}}, foreign)
    assert "foreign" in _fails(["generate", "--checkpoint", str(foreign), "--out", str(out)],
                               out)
    assert "not found" in _fails(["generate", "--checkpoint", str(tmp_path / "none.pt"),
                                  "--out", str(out)], out)


def test_generate_and_eval_bad_arguments(tmp_path, tiny_run):
    from sculptor.gen3d.synthetic import write_synthetic_dataset

    ck = str(tiny_run / "checkpoint.pt")
    out = tmp_path / "designs"
    _fails(["generate", "--checkpoint", ck, "--n", "0", "--out", str(out)], out)
    _fails(["generate", "--checkpoint", ck, "--height-mm", "-5", "--out", str(out)], out)
    _fails(["generate", "--checkpoint", ck, "--interpolate", "0", "no-such-piece",
            "--out", str(out)], out)
    d64 = tmp_path / "d64"
    write_synthetic_dataset(d64, n=3, res=64, seed=1)
    assert "res 64" in _fails(["eval", "--checkpoint", ck, "--data", str(d64), "--out",
                               str(tmp_path / "e.json")], tmp_path / "e.json")


def test_unfinished_checkpoint_is_refused_for_sampling(tmp_path, tiny_run):
    ck = torch.load(tiny_run / "checkpoint.pt", weights_only=True)
    ck["complete"] = False
    p = tmp_path / "half.pt"
    torch.save(ck, p)
    assert "unfinished" in _fails(["generate", "--checkpoint", str(p), "--out",
                                   str(tmp_path / "o")], tmp_path / "o")
