"""Benchmark `sculptor stream` against the virtual grbl controller in check mode ($C).

    .venv/bin/python benchmarks/bench_stream.py [--lines 10000]

The controller runs in its own process on a pty (as a real board would be on its own
CPU). Measured, on the same 10,000-line joint program:
  * lines/s of our sender (journal fsynced, status polling on, as in production);
  * lines/s of the obvious character-counting loop (grbl's stream.py approach);
  * sender overhead per line: CPU time of the sending process / lines, and the pure state
    machine's cost per line (feed + poll, no I/O);
  * lines lost / duplicated: the controller's list of accepted lines vs the program.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serial  # noqa: E402

from sculptor.stream.link import SerialLink  # noqa: E402
from sculptor.stream.machine import GrblSender, Item  # noqa: E402
from sculptor.stream.program import load_program  # noqa: E402
from sculptor.stream.responses import parse_response  # noqa: E402
from sculptor.stream.runner import Streamer  # noqa: E402
from sculptor.artifacts.core import Provenance  # noqa: E402
from sculptor.artifacts.journal import Journal, JournalHeader  # noqa: E402

CONTROLLER = """
import json, sys
from sim.controller import serve
s = serve("grbl")
print(s.port, flush=True)
sys.stdin.read()                       # until the benchmark closes our stdin
json.dump(s.controller.accepted, open(sys.argv[1], "w"))
s.stop()
"""


class ControllerProcess:
    def __init__(self, dump: Path) -> None:
        self.dump = dump
        self.p = subprocess.Popen([sys.executable, "-c", CONTROLLER, str(dump)], cwd=ROOT,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.port = self.p.stdout.readline().strip()

    def accepted(self) -> list[str]:
        self.p.stdin.close()
        self.p.wait(timeout=30)
        return json.loads(self.dump.read_text())


def write_program(path: Path, n: int) -> list[str]:
    import math
    lines = ["G90 G21 G93 (gcode-joint benchmark)"]
    for i in range(n - 1):
        t = i / n
        j = [30 * math.sin(7 * t), -45 + 20 * t, 60 * math.cos(5 * t), 5 * t,
             40 * math.sin(3 * t), -10 + 3 * t, 360 * t]
        lines.append("G1 " + " ".join(f"{a}{v:.3f}" for a, v in zip("XYZABCU", j)) + " F6000")
    path.write_text("\n".join(lines) + "\n")
    return [ln.split("(")[0].replace(" ", "") for ln in lines]


def enter_check_mode(ser_write, read_line) -> None:
    ser_write(b"$C\n")
    while True:
        ln = read_line()
        if ln == "ok":
            return


def bench_ours(prog_path: Path, tmp: Path, journal: bool = True, tag: str = "") -> dict:
    ctl = ControllerProcess(tmp / f"ours{tag}.json")
    prog = load_program(prog_path)
    link = SerialLink.open(ctl.port, 115200)
    enter_check_mode(link.write, lambda: link.rx.get(timeout=5)[1])
    items = [Item(ln.no, ln.data, ln.makes_block) for ln in prog.lines]
    jr = None
    jpath = tmp / f"bench{tag}.journal.jsonl"
    if journal:
        header = JournalHeader(provenance=Provenance.make("bench_stream"),
                               program=str(prog_path), program_sha256=prog.sha256,
                               n_lines=len(prog), port=ctl.port, protocol="grbl", baud=115200)
        jr = Journal(jpath, header)
    sender = GrblSender(items, rx_buffer=128, planner_blocks=15, wait_idle=False)
    st = Streamer(link, sender, items, journal=jr)
    cpu0, t0 = time.process_time(), time.perf_counter()
    st.run(drain_s=0.0)
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    if jr is not None:
        jr.close()
    link.close()
    acc = ctl.accepted()
    return dict(state=sender.state.value, wall_s=wall, cpu_s=cpu, accepted=acc,
                journal_lines=sum(1 for _ in open(jpath)) if journal else 0)


def bench_naive(lines: list[str], tmp: Path) -> dict:
    """grbl's stream.py, written the obvious way (character counting, blocking readline)."""
    ctl = ControllerProcess(tmp / "naive.json")
    s = serial.Serial(ctl.port, 115200, timeout=5)
    enter_check_mode(s.write, lambda: s.readline().decode().strip())
    RX_BUFFER_SIZE = 128
    c_line: list[int] = []
    cpu0, t0 = time.process_time(), time.perf_counter()
    for line in lines:
        l_block = line.strip()
        c_line.append(len(l_block) + 1)
        while sum(c_line) >= RX_BUFFER_SIZE - 1 or s.in_waiting:
            out = s.readline().strip()
            if b"ok" in out or b"error" in out:
                del c_line[0]
        s.write((l_block + "\n").encode())
    while c_line:
        out = s.readline().strip()
        if b"ok" in out or b"error" in out:
            del c_line[0]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    s.close()
    return dict(wall_s=wall, cpu_s=cpu, accepted=ctl.accepted())


def bench_machine(n: int) -> float:
    """Seconds per line of the pure state machine (poll + feed an ok), no I/O."""
    items = [Item(i + 1, b"G1X1.000Y2.000Z3.000A4.000B5.000C6.000U7.000F6000\n", True)
             for i in range(n)]
    s = GrblSender(items, rx_buffer=128, planner_blocks=15, wait_idle=False, silence_s=1e9)
    ok = parse_response("ok")
    t0 = time.perf_counter()
    now = 0.0
    s.start(now)
    pending = 0
    while not s.finished:
        now += 1e-4
        pending += sum(1 for o in s.poll(now) if not o.realtime)
        s.drain()
        if pending:
            s.feed(ok, now)
            pending -= 1
    return (time.perf_counter() - t0) / n


def lost_dup(expected: list[str], accepted: list[str]) -> tuple[int, int, bool]:
    from collections import Counter
    e, a = Counter(expected), Counter(accepted)
    lost = sum((e - a).values())
    dup = sum((a - e).values())
    return lost, dup, accepted == expected


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=10000)
    ap.add_argument("--rounds", type=int, default=5,
                    help="alternating rounds; medians are reported (the VM is shared)")
    args = ap.parse_args()
    runs: dict[str, list[dict]] = {"naive": [], "ours": [], "ours_nojournal": []}
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        prog = tmp / "bench.gcode"
        expected = write_program(prog, args.lines)
        for k in range(args.rounds):
            runs["naive"].append(bench_naive(expected, tmp))
            runs["ours"].append(bench_ours(prog, tmp, journal=True, tag=f"j{k}"))
            runs["ours_nojournal"].append(bench_ours(prog, tmp, journal=False, tag=f"n{k}"))
        per_line_machine = bench_machine(args.lines)
    n = len(expected)
    med = {}
    all_exact = True
    for name, rs in runs.items():
        rates = sorted(n / r["wall_s"] for r in rs)
        cpu = sorted(1e3 * r["cpu_s"] / n for r in rs)
        losses = [lost_dup(expected, r["accepted"]) for r in rs]
        exact = all(lo == 0 and du == 0 and same for lo, du, same in losses)
        all_exact &= exact if name != "naive" else True
        med[name] = rates[len(rates) // 2]
        print(f"{name:16s} median {med[name]:7.0f} lines/s (runs: "
              f"{', '.join(f'{x:.0f}' for x in rates)})  median CPU {cpu[len(cpu) // 2]:.3f} "
              f"ms/line  lost {sum(x[0] for x in losses)}  duplicated "
              f"{sum(x[1] for x in losses)}  all in order {exact}")
    print(f"ratio ours/naive (medians): {med['ours'] / med['naive']:.2f} with journal, "
          f"{med['ours_nojournal'] / med['naive']:.2f} without")
    print(f"state machine alone: {per_line_machine * 1e6:.1f} us/line")
    print(f"journal records per run: {runs['ours'][0]['journal_lines']} (fsynced, group commit)")
    cpu_ours = sorted(1e3 * r["cpu_s"] / n for r in runs["ours"])[len(runs["ours"]) // 2]
    print("PASS" if all_exact and cpu_ours < 1.0 else "FAIL")


if __name__ == "__main__":
    main()
