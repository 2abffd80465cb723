"""What a run is doing, for a reader of a six-minute run: one line as each phase starts
(its number, what it measures, about how long it and the rest of the run take) and one as
it ends. The estimates come from the options (wrk runs times --duration and the warm-up);
once a phase has run, the rest is scaled by how far off the estimates were so far."""

import argparse
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from bench.wrk import WARMUP_SECONDS


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.1f} min"


@dataclass
class Progress:
    phases: list[tuple[str, float]]  # (name, estimated seconds), in the order they run
    clock: Callable[[], float] = time.monotonic
    _done: int = 0
    _estimated_done: float = 0.0
    _spent: float = 0.0

    def _left(self) -> float:
        left = sum(estimate for _, estimate in self.phases[self._done :])
        if self._estimated_done > 0:
            left *= self._spent / self._estimated_done
        return left

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        number, total = self._done + 1, len(self.phases)
        estimate = dict(self.phases)[name]
        print(
            f"\n== [{number}/{total}] {name}: about {_minutes(estimate)}, "
            f"about {_minutes(self._left())} left in all",
            flush=True,
        )
        started = self.clock()
        yield
        spent = self.clock() - started
        self._done += 1
        self._estimated_done += estimate
        self._spent += spent
        tail = f", about {_minutes(self._left())} left" if self._done < total else ""
        print(f"== [{number}/{total}] {name}: done in {_minutes(spent)}{tail}", flush=True)


def plan(args: argparse.Namespace) -> Progress:
    """The phases `args` will run, with their estimates."""
    wrk = WARMUP_SECONDS + args.duration  # one measured wrk run, its warm-up included
    phases: list[tuple[str, float]] = [("users/me against /healthz", 2 * wrk)]
    if not args.skip_versus:
        phases.append(("every request next to a bare FastAPI app", args.versus_repetitions * 5 * wrk + 5))
    if not args.skip_bearer:
        phases.append(("users/me by token against by cookie", args.versus_repetitions * 2 * wrk))
    if not args.skip_login_storm:
        phases.append(("users/me and items during a login storm", 4 * wrk + 10))
    if not args.skip_fanout:
        phases.append((f"fan-out to {args.fanout_sockets:,} WebSockets", 10 + args.fanout_sockets / 100))
    if not args.skip_scale:
        phases.append(("GET /items on 1k and 1M items", 60 + 2 * 18 * (args.scale_requests + 5) * 0.02))
    return Progress(phases)
