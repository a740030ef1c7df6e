"""``make fuzz``: run every fuzzer of :mod:`tests.hardening.fuzzers` for
many examples and print the count and time of each.

    python -m tests.hardening.run_fuzz [--examples N] [--only NAME ...] [--seed S]

Exits non-zero at the first failing input (hypothesis prints it, shrunk).
"""

from __future__ import annotations

import argparse
import sys
import time

from hypothesis import HealthCheck, given, seed, settings


def _counter(check):
    """A function calling ``check`` that counts its calls (``.calls``)."""

    def one(case) -> None:
        one.calls += 1
        check(case)

    one.calls = 0
    return one


def main() -> int:
    from tests.hardening.fuzzers import FUZZERS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=1000)
    parser.add_argument("--only", nargs="*", choices=sorted(FUZZERS))
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    failed = False
    total_examples, total_seconds = 0, 0.0
    for name, (strategy, check) in FUZZERS.items():
        if args.only and name not in args.only:
            continue
        count = _counter(check)

        test = settings(max_examples=args.examples, deadline=None, database=None,
                        suppress_health_check=list(HealthCheck))(given(strategy())(count))
        if args.seed is not None:
            test = seed(args.seed)(test)
        wall, cpu = time.perf_counter(), time.process_time()
        outcome = "ok"
        try:
            test()
        except Exception as err:  # noqa: BLE001 - reported, then the run fails
            outcome = f"FAILED ({type(err).__name__})"
            failed = True
            import traceback

            traceback.print_exc()
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        total_examples += count.calls
        total_seconds += wall
        print(f"fuzz {name:<8} {count.calls:>6} examples (incl. shrinking) in {wall:7.1f} s "
              f"({cpu:.1f} s CPU): {outcome}", flush=True)
    print(f"fuzz total    {total_examples:>6} examples in {total_seconds:7.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
