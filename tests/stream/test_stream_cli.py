"""`sculptor stream` bad input: one line, exit 2, nothing written, nothing moved."""

from __future__ import annotations

import errno

import pytest
import serial
from typer.testing import CliRunner

from sculptor.cli import app

runner = CliRunner()


def run(*args):
    return runner.invoke(app, ["stream", *map(str, args), "--no-progress"])


def _written(tmp_path, prog):
    return sorted(p.name for p in tmp_path.iterdir() if p != prog)


def _one_line_exit_2(res, needle):
    assert res.exit_code == 2, res.output
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], lines


def test_no_such_port(write_program, tmp_path):
    prog, _ = write_program(10)
    res = run(prog, "--port", "/dev/ttyNOPE0")
    _one_line_exit_2(res, "no such port")
    assert _written(tmp_path, prog) == []


def test_port_busy(write_program, controller, tmp_path):
    prog, _ = write_program(10)
    c = controller("grbl", time_scale=100)
    with serial.Serial(c.port, 115200, exclusive=True):
        res = run(prog, "--port", c.port)
    _one_line_exit_2(res, "busy")
    assert c.controller.received_lines == [] and _written(tmp_path, prog) == []


def test_no_permission(write_program, tmp_path, monkeypatch):
    prog, _ = write_program(10)
    fake_port = tmp_path / "ttyFAKE"
    fake_port.write_text("")

    def deny(*a, **kw):
        raise serial.SerialException(errno.EACCES, f"could not open port {fake_port}: "
                                     "[Errno 13] Permission denied")
    monkeypatch.setattr(serial, "Serial", deny)
    res = run(prog, "--port", fake_port)
    _one_line_exit_2(res, "dialout")
    assert _written(tmp_path, prog) == ["ttyFAKE"]


def test_wrong_baud_gives_garbage_error(write_program, controller, tmp_path):
    prog, _ = write_program(10)
    c = controller("grbl", time_scale=100)
    res = run(prog, "--port", c.port, "--baud", 9600)
    _one_line_exit_2(res, "wrong baud")
    assert c.controller.executed == [] and _written(tmp_path, prog) == []


@pytest.mark.parametrize("bad,needle", [
    ("G1 X" + "1.2345678" * 10 + " F100", "at most 80"),
    ("G1 X1 Y2 F100 @", "not accepted by the controller"),
    ("g1 x1 ~", "not accepted by the controller"),
])
def test_bad_program_refused_before_the_port(write_program, controller, tmp_path, bad, needle):
    prog, _ = write_program(20, extra={5: bad})
    c = controller("grbl", time_scale=100)
    res = run(prog, "--port", c.port)
    _one_line_exit_2(res, needle)
    assert f"{prog}:" in res.stderr
    assert c.controller.received_lines == [] and c.controller.rt_log == []
    assert _written(tmp_path, prog) == []


def test_controller_in_alarm_and_unknown_protocol(write_program, controller, tmp_path):
    prog, _ = write_program(10)
    c = controller("grbl", time_scale=100)
    c.controller.alarm(1)
    c.controller.take_output()
    res = run(prog, "--port", c.port)
    _one_line_exit_2(res, "ALARM")
    res = run(prog, "--port", c.port, "--protocol", "xmodem")
    _one_line_exit_2(res, "unknown protocol")
    res = run(prog, "--port", c.port, "--controller", "kuka-krc4")
    _one_line_exit_2(res, "not streamed")
    assert _written(tmp_path, prog) == []


def test_cli_streams_and_prints_summary(write_program, controller, tmp_path):
    prog, expected = write_program(40)
    c = controller("grbl", time_scale=300)
    res = run(prog, "--port", c.port, "--journal", tmp_path / "run.jsonl")
    assert res.exit_code == 0, res.output
    assert "done: 42/42 lines acknowledged" in res.stdout
    assert "journal: " in res.stderr
    assert c.controller.executed == expected


def test_cli_fault_exits_1_with_resume_hint(write_program, controller, tmp_path):
    prog, _ = write_program(100, feed_inv_min=3000)
    c = controller("grbl", time_scale=20, error_at_line=10)
    res = run(prog, "--port", c.port, "--journal", tmp_path / "run.jsonl")
    assert res.exit_code == 1
    assert "STOPPED" in res.stdout and "--resume" in res.stdout and "error:20" in res.stdout


def test_check_first_needs_grbl_and_check_mode_controller_refused(write_program, controller,
                                                                  tmp_path):
    prog, _ = write_program(10)
    res = run(prog, "--port", "/dev/ttyNOPE0", "--protocol", "marlin", "--check-first")
    _one_line_exit_2(res, "check mode")                  # refused before the port
    c = controller("grbl", time_scale=100)
    c.controller.check_mode = True                       # someone left it in $C
    res = run(prog, "--port", c.port)
    _one_line_exit_2(res, "check mode")
    assert c.controller.accepted == [] and _written(tmp_path, prog) == []
