"""The senders as pure state machines, driven by a scripted fake controller (no port)."""

from __future__ import annotations

import random

import pytest

from sculptor.stream.machine import (AckSender, GrblSender, Item, MarlinSender, State,
                                     marlin_frame)
from sculptor.stream.responses import parse_response
from sim.controller import Faults, VirtualController


def items(n, size=30):
    return [Item(i + 1, (f"G1X{i:0{size - 4}d}").encode()[:size - 1] + b"\n", True)
            for i in range(n)]


def R(text):
    return parse_response(text)


def test_grbl_counts_exact_bytes_and_never_overfills():
    its = items(20, size=40)                 # 40 bytes each: 3 fit in 127
    s = GrblSender(its, rx_buffer=128, planner_blocks=15)
    s.start(0.0)
    out = [o for o in s.poll(0.0) if not o.realtime]
    assert [o.data for o in out] == [it.data for it in its[:3]]
    assert s.used == 120 and s.used <= 127
    assert s.poll(0.01) == [] or all(o.realtime for o in s.poll(0.01))
    s.feed(R("ok"), 0.02)                    # frees 40 bytes: exactly one more fits
    out = [o for o in s.poll(0.02) if not o.realtime]
    assert [o.data for o in out] == [its[3].data] and s.used == 120
    ev = [e.kind for e in s.drain()]
    assert ev.count("sent") == 4 and ev.count("ack") == 1


def test_grbl_error_stops_feeding_holds_and_names_the_line():
    its = items(10, size=30)
    s = GrblSender(its, rx_buffer=128, planner_blocks=15)
    s.start(0.0)
    s.poll(0.0)                              # 4 lines in flight
    s.feed(R("ok"), 0.01)
    s.feed(R("error:20"), 0.02)              # answers item 1 (file line 2)
    assert s.state == State.FAILED
    out = s.poll(0.03)
    assert out[0].realtime and out[0].data == b"!"
    assert not any(not o.realtime for o in out)        # nothing more is fed
    errs = [e for e in s.drain() if e.kind == "error"]
    assert errs[0].index == 1 and "error:20" in errs[0].text
    assert "unsupported" in errs[0].text
    s.feed(R("ok"), 0.04)                    # lines already in the buffer still answer
    assert s.acked == 3
    s.feed(R("<Idle|MPos:0,0,0|Bf:15,127|FS:0,0>"), 0.05)
    assert s.exec_upto == 1                  # never past the failed line, even when Idle


def test_grbl_alarm_silence_garbage_and_reset():
    s = GrblSender(items(5), rx_buffer=128)
    s.start(0.0)
    s.poll(0.0)
    s.feed(R("ALARM:1"), 0.1)
    assert s.state == State.ALARM and "hard limit" in s.reason

    s = GrblSender(items(5), rx_buffer=128, silence_s=1.5)
    s.start(0.0)
    s.poll(0.0)
    s.feed(R("ok"), 0.2)
    s.poll(1.0)
    assert s.state == State.RUNNING
    s.poll(1.8)                              # 1.6 s with no byte while lines are in flight
    assert s.state == State.FAILED and "silent" in s.reason

    s = GrblSender(items(5), rx_buffer=128)
    s.start(0.0)
    s.poll(0.0)
    s.feed(R("o\x7fk"), 0.1)
    assert s.state == State.FAILED and "garbled" in s.reason

    s = GrblSender(items(5), rx_buffer=128)
    s.start(0.0)
    s.poll(0.0)
    s.feed(R("Grbl 1.1h ['$' for help]"), 0.1)
    assert s.state == State.FAILED and "reset" in s.reason


def test_grbl_done_waits_for_idle_and_tracks_executed_lines():
    its = items(4, size=20)
    s = GrblSender(its, rx_buffer=128, planner_blocks=15)
    s.start(0.0)
    s.poll(0.0)
    for k in range(4):
        s.feed(R("ok"), 0.01 * k)
    assert s.state == State.RUNNING          # all acknowledged, still moving
    s.feed(R("<Run|MPos:0,0,0|Bf:13,127|FS:0,0>"), 0.1)   # 2 blocks still planned
    assert s.exec_upto == 2
    s.feed(R("<Idle|MPos:0,0,0|Bf:15,127|FS:0,0>"), 0.2)
    assert s.state == State.DONE and s.exec_upto == 4


def test_hold_resume_abort_bytes():
    s = GrblSender(items(5), rx_buffer=128)
    s.start(0.0)
    assert s.hold(0.1) == b"!" and s.state == State.HOLDING
    assert not any(not o.realtime for o in s.poll(0.2))   # holding: no lines fed
    assert s.resume(0.3) == b"~" and s.state == State.RUNNING
    assert s.abort(0.4) == b"!" and s.state == State.FAILED


def test_marlin_resend_and_lost_ok():
    its = items(3, size=12)
    s = MarlinSender(its, retry_s=0.5)
    s.start(0.0)
    assert s.poll(0.0)[0].data == marlin_frame(1, its[0].data)
    # checksum error on N1: Error, Resend: 1, ok -> the same line again
    for t in ("Error:checksum mismatch, Last Line: 0", "Resend: 1", "ok"):
        s.feed(R(t), 0.1)
    assert s.acked == 0
    assert s.poll(0.1)[0].data == marlin_frame(1, its[0].data)
    s.feed(R("ok"), 0.2)
    assert s.poll(0.2)[0].data == marlin_frame(2, its[1].data)
    # the ok for N2 is lost: after retry_s the same number is sent again
    out = s.poll(0.8)
    assert out[0].data == marlin_frame(2, its[1].data)
    # the controller had it: it asks for N3
    for t in ("Error:Line Number is not Last Line Number+1, Last Line: 2", "Resend: 3", "ok"):
        s.feed(R(t), 0.9)
    assert s.acked == 2
    assert s.poll(0.9)[0].data == marlin_frame(3, its[2].data)
    s.feed(R("ok"), 1.0)
    assert s.state == State.DONE


def test_ack_one_line_in_flight():
    its = items(3)
    s = AckSender(its)
    s.start(0.0)
    assert len(s.poll(0.0)) == 1 and s.poll(0.1) == []
    s.feed(R("busy"), 1.0)
    s.poll(2.0)
    assert s.state == State.RUNNING          # busy keep-alives are not silence
    s.feed(R("ok"), 2.1)
    assert s.exec_upto == 1 and len(s.poll(2.1)) == 1


def _run_against(controller, sender, steps=200000, dt=0.0005):
    """Wire a sender to an in-process virtual controller (no pty)."""
    t = 0.0
    sender.start(t)
    max_used = 0
    for _ in range(steps):
        for o in sender.poll(t):
            controller.receive(o.data, t)
        max_used = max(max_used, getattr(sender, "used", 0))
        controller.step(t)
        for line in controller.take_output().decode("latin-1").split("\r\n"):
            if line:
                sender.feed(parse_response(line), t)
        if sender.finished:
            break
        t += dt
    return max_used


def test_grbl_sender_against_virtual_controller_random_lengths():
    rnd = random.Random(3)
    lines = [f"G1X{rnd.uniform(-99, 99):.{rnd.randint(0, 4)}f}Y{rnd.uniform(-9, 9):.3f}F6000"
             for _ in range(400)]
    its = [Item(i + 1, (t + "\n").encode(), True) for i, t in enumerate(lines)]
    c = VirtualController("grbl", time_scale=20)
    s = GrblSender(its, rx_buffer=128, planner_blocks=15, silence_s=1e9)
    max_used = _run_against(c, s)
    assert s.state == State.DONE
    assert max_used <= 127 and c.overrun_dropped == 0
    assert c.executed == lines                   # 0 lost, 0 duplicated, in order


def test_marlin_sender_survives_noise_in_process():
    lines = [f"G1X{i}.5Y{i % 7}F3000" for i in range(150)]
    its = [Item(i + 1, (t + "\n").encode(), True) for i, t in enumerate(lines)]
    c = VirtualController("marlin", time_scale=50,
                          faults=Faults(corrupt_in=[100, 900, 2500], drop_in=[1700],
                                        drop_out=[50, 600], corrupt_out=[300]))
    s = MarlinSender(its, retry_s=0.05, silence_s=1e9)
    _run_against(c, s)
    assert s.state == State.DONE
    c.run_until_idle(0.0)                        # "ok" = queued: let the queue finish
    assert c.executed == lines


def test_executed_bound_never_runs_ahead_of_the_controller():
    """At every status report, the sender's 'known executed' count must not exceed what
    the controller really finished: zero-length moves, modal-only lines and an error line
    (none of which take a planner block) must not fool the walk-back."""
    rnd = random.Random(7)
    texts, blocks = [], []
    x = 0.0
    for i in range(300):
        r = rnd.random()
        if r < 0.1:
            texts.append(f"G1X{x:.3f}F3000")              # zero-length: no block
            blocks.append(False)
        elif r < 0.15:
            texts.append("G90")
            blocks.append(False)
        else:
            x += rnd.uniform(0.5, 3.0)
            texts.append(f"G1X{x:.3f}F3000")
            blocks.append(True)
    its = [Item(i + 1, (t + "\n").encode(), b) for i, (t, b) in enumerate(zip(texts, blocks))]
    c = VirtualController("grbl", time_scale=5, faults=Faults(error_at_line=200))
    s = GrblSender(its, rx_buffer=128, planner_blocks=15, silence_s=1e9, status_every_s=0.002)
    t, checked = 0.0, 0
    s.start(t)
    while not s.finished and t < 60:
        for o in s.poll(t):
            c.receive(o.data, t)
        c.step(t)
        for line in c.take_output().decode("latin-1").split("\r\n"):
            if line:
                s.feed(parse_response(line), t)
                if line.startswith("<"):
                    assert s.exec_upto <= len(c.executed), (s.exec_upto, len(c.executed))
                    checked += 1
        t += 0.0005
    assert s.state == State.FAILED and checked > 100 and s.exec_upto > 150


def test_status_work_position():
    st = R("<Idle|MPos:10.000,5.000,1.000|Bf:15,127|FS:0,0|WCO:1.000,2.000,0.500>").status
    assert st.work_position() == (9.0, 3.0, 0.5)
    st = R("<Idle|WPos:1.000,2.000,3.000|FS:0,0>").status
    assert st.work_position() == (1.0, 2.0, 3.0)
    st = R("<Idle|MPos:1.000,2.000,3.000|FS:0,0>").status
    assert st.work_position() == (1.0, 2.0, 3.0) and st.work_position((1, 1, 1)) == (0, 1, 2)


def test_marlin_random_noise_both_ways():
    """Random lost and garbled bytes in both directions, 8 seeds. Invariant: what runs is
    always an exact prefix of the program (nothing lost, repeated or altered); when noise
    hits a reply so that its meaning is ambiguous the sender stops instead of guessing."""
    done = 0
    for seed in range(8):
        rnd = random.Random(seed)
        lines = [f"G1X{i}.25Y{(i * 7) % 13}Z{i % 5}F2400" for i in range(120)]
        its = [Item(i + 1, (t + "\n").encode(), True) for i, t in enumerate(lines)]
        n_in, n_out = 120 * 30, 120 * 6

        def pick(n, k):
            return sorted(rnd.sample(range(40, n), k))
        c = VirtualController("marlin", time_scale=50, faults=Faults(
            drop_in=pick(n_in, 4), corrupt_in=pick(n_in, 4), drop_out=pick(n_out, 3),
            corrupt_out=pick(n_out, 3)))
        s = MarlinSender(its, retry_s=0.05, silence_s=1e9)
        _run_against(c, s)
        c.run_until_idle(0.0)
        assert c.executed == lines[:len(c.executed)], seed
        if s.state == State.DONE:
            assert c.executed == lines
            done += 1
        else:
            assert s.state == State.FAILED and "Error" in s.reason, (seed, s.reason)
    assert done >= 6
