"""The CLI contract: every command listed, profiles, user errors as one line + exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from sculptor import profiles
from sculptor.cli import app, main
from sculptor.errors import UserError

runner = CliRunner()
COMMANDS = ["scan", "corpus", "train", "generate", "eval", "cam", "sim", "post", "stream",
            "profiles", "demo"]


def test_help_lists_every_command():
    r = runner.invoke(app, ["--help"])
    assert r.exit_code == 0
    for c in COMMANDS:
        assert c in r.output
    r = runner.invoke(app, ["scan", "--help"])
    assert "register" in r.output and "prepare" in r.output


def test_profiles_list_and_show():
    r = runner.invoke(app, ["profiles", "list"])
    assert r.exit_code == 0
    for name in ["kuka-kr6-r900", "gouge-12mm", "ball-6mm", "flat-10mm", "grbl-6axis",
                 "kuka-krc4", "kuka-kr6-r900-turntable"]:
        assert name in r.output
    r = runner.invoke(app, ["profiles", "show", "gouge-12mm"])
    assert r.exit_code == 0 and '"edge_arc_radius_mm"' in r.output and '"sweep": 7' in r.output


def test_unknown_profile_is_one_line_exit_2():
    r = runner.invoke(app, ["profiles", "show", "no-such-tool"])
    assert r.exit_code == 2
    assert "no profile named 'no-such-tool'" in r.output
    assert "Traceback" not in r.output


def test_console_script_runs_and_bad_option_exits_2(tmp_path):
    exe = Path(sys.executable).parent / "sculptor"
    r = subprocess.run([str(exe), "profiles", "show", "nope"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "Traceback" not in r.stderr
    r = subprocess.run([str(exe), "profiles", "frobnicate"], capture_output=True, text=True)
    assert r.returncode == 2
    r = subprocess.run([str(exe), "--version"], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("sculptor ")


def test_debug_flag_shows_traceback(capsys):
    assert main(["--debug", "profiles", "show", "nope"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_profiles_found_from_extra_dir_and_validated(tmp_path, monkeypatch):
    d = tmp_path / "prof" / "tools"
    d.mkdir(parents=True)
    good = Path(profiles.profile_dirs()[-1]) / "tools" / "ball-6mm.toml"
    (d / "ball-8mm.toml").write_text(good.read_text().replace("ball-6mm", "ball-8mm")
                                     .replace("diameter_mm = 6.0", "diameter_mm = 8.0")
                                     .replace("corner_radius_mm = 3.0", "corner_radius_mm = 4.0"))
    (d / "broken.toml").write_text(good.read_text().replace("diameter_mm = 6.0",
                                                             "diameter_mm = -6.0"))
    (d / "notoml.toml").write_text("this is [ not toml")
    monkeypatch.setenv("SCULPTOR_PROFILES", str(tmp_path / "prof"))
    assert "ball-8mm" in profiles.list_profiles("tools")
    assert profiles.load_tool("ball-8mm").radius_mm == 4.0
    with pytest.raises(UserError, match="diameter_mm"):
        profiles.load_tool("broken")
    with pytest.raises(UserError, match="not valid TOML"):
        profiles.load_tool("notoml")
    r = runner.invoke(app, ["profiles", "show", "broken"])
    assert r.exit_code == 2 and "diameter_mm" in r.output


def test_every_shipped_profile_validates_and_cross_references():
    for kind in profiles.KINDS:
        for name in profiles.list_profiles(kind):
            profiles.load_profile(kind, name)
    for name in profiles.list_profiles("cells"):
        cell = profiles.load_cell(name)
        profiles.load_controller(cell.controller)
        profiles.load_tool(cell.default_tool)
        if cell.robot:
            profiles.load_robot(cell.robot)


def test_gouge_geometry():
    g = profiles.load_tool("gouge-12mm")
    assert g.kind == "gouge" and g.sweep == 7
    assert 1.5 < g.arc_depth_mm < 3.5  # a #7 sweep is a medium-deep arc
    assert g.flange_from_tcp.matrix()[2, 3] > 0  # the tool reaches along +Z
