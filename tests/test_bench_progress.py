"""`make bench` says which phase runs and about how long the rest takes (bench/progress.py)."""

import argparse

from bench.progress import Progress, plan


def test_each_phase_says_its_number_and_the_time_left_scaled_by_the_phases_run_so_far(capsys):
    now = [0.0]
    progress = Progress([("first", 10.0), ("second", 20.0), ("third", 30.0)], clock=lambda: now[0])
    with progress.phase("first"):
        now[0] += 20.0  # twice as slow as estimated
    with progress.phase("second"):
        now[0] += 40.0
    lines = [line for line in capsys.readouterr().out.splitlines() if line]
    assert lines == [
        "== [1/3] first: about 10 s, about 60 s left in all",
        "== [1/3] first: done in 20 s, about 1.7 min left",
        "== [2/3] second: about 20 s, about 1.7 min left in all",
        "== [2/3] second: done in 40 s, about 60 s left",
    ]


def test_the_plan_has_the_phases_the_options_leave_in():
    args = argparse.Namespace(
        duration=10, versus_repetitions=3, fanout_sockets=1000, scale_requests=30,
        skip_versus=False, skip_bearer=True, skip_login_storm=True, skip_fanout=False, skip_scale=True,
    )  # fmt: skip
    names = [name for name, _ in plan(args).phases]
    assert names == [
        "users/me against /healthz",
        "every request next to a bare FastAPI app",
        "fan-out to 1,000 WebSockets",
    ]
