"""`sculptor corpus` on the command line: a small run works, bad input exits 2 cleanly."""

import pytest
from typer.testing import CliRunner

from sculptor.cli import app

runner = CliRunner()


@pytest.mark.parametrize("args,msg", [
    (["--n", "0"], "--n"),
    (["--n", "-3"], "--n"),
    (["--kinds", "standing,dragon"], "unknown kind"),
    (["--kinds", ","], "--kinds"),
    (["--res", "8"], "--res"),
    (["--res", "4096"], "--res"),
    (["--seed", "-1"], "--seed"),
    (["--workers", "-2"], "--workers"),
])
def test_bad_input_exits_2_with_one_line_and_writes_nothing(tmp_path, args, msg):
    out = tmp_path / "out"
    r = runner.invoke(app, ["corpus", "--out", str(out), "--n", "2", *args])
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0]
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_out_is_a_file(tmp_path):
    f = tmp_path / "f"
    f.write_text("x")
    r = runner.invoke(app, ["corpus", "--out", str(f), "--n", "1", "--res", "16"])
    assert r.exit_code == 2 and f.read_text() == "x"


def test_small_run(tmp_path):
    out = tmp_path / "c"
    r = runner.invoke(app, ["corpus", "--out", str(out), "--n", "1", "--res", "16",
                            "--kinds", "bust", "--gallery", "1"])
    assert r.exit_code == 0, r.output
    assert "wrote 1 pieces" in r.output
    assert (out / "manifest.json").is_file() and (out / "gallery.png").is_file()
    assert len(list((out / "meshes").glob("*.ply"))) == 1
