"""The main job on a busy machine: default BLAS threads against BLAS pinned to one thread.

The main job is ``tinygrad-nn train`` (Network([64, 30, 10]).SGD on the embedded digits, 30
epochs, mini-batch 10, eta 3.0, as tinygrad_nn.cli runs it), timed inside a fresh Python
process per run so that each starts its BLAS anew. Rows:

  default BLAS threads        the environment without OPENBLAS_NUM_THREADS / OMP_NUM_THREADS
                              (OpenBLAS starts one thread per core)
  pinned: OPENBLAS_NUM_THREADS=1   the environment variables set before numpy is imported
  limited at run time         default environment, the job inside
                              tinygrad_nn._threads.blas_threads(threads_for(...)) -- what
                              training.fit does once the limiter is wired in

each quiet and then under contention: one busy-loop process per core (multiprocessing), all
ended when the runs are done. Runs are taken in turn, `--repeat` rounds; best and median.
``--large`` adds the batch-128 [784, 256, 256, 10] epoch of benchmarks/large_batch.py (its
tinygrad_nn eager loop, float64, on `--examples` rows). ``--steps`` adds the table the rule
`threads_for` was decided from: one training step per shape at the default thread count
against one thread, quiet and contended, in this process (fastest step and mean step).

"Quiet" means no busy loops of ours: other work on the machine is not ours to stop, so each
table prints the load average at its start and end. Read a quiet table with a load average
above the core count as a contended one.

Run: python benchmarks/contention.py [--repeat N] [--large] [--steps]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "GOTO_NUM_THREADS",
                    "MKL_NUM_THREADS")
LARGE_SIZES, LARGE_BATCH = [784, 256, 256, 10], 128
MAIN_SIZES, MAIN_BATCH = [64, 30, 10], 10
ROWS = ("default BLAS threads", "pinned: OPENBLAS_NUM_THREADS=1", "limited at run time")
STEP_SHAPES = [([64, 30, 10], 10), ([784, 30, 10], 10), ([784, 100, 10], 10),
               ([784, 30, 10], 100), ([784, 256, 256, 10], 16), ([784, 256, 256, 10], 32),
               ([784, 256, 256, 10], 128), ([784, 256, 256, 10], 512)]


# --- the child: one run of one workload in a fresh process --------------------------------------


def _main_job() -> None:
    from tinygrad_nn import cli

    with contextlib.redirect_stdout(io.StringIO()):
        status = cli.main(["train", "--quiet", "--no-progress"])
    if status != 0:
        raise SystemExit(f"tinygrad-nn train exited with {status}")


def _large_job(examples: int) -> Callable[[], None]:
    sys.path.insert(0, HERE)
    import numpy as np
    from common import training_data
    from large_batch import run_ours

    X, Y, _ = training_data(examples, np.float64)
    return lambda: run_ours(X, Y, np.float64)


def child(workload: str, limited: bool, examples: int) -> None:
    """Time one run of `workload`; print {"seconds", "threads", "limit"} as one JSON line."""
    from tinygrad_nn._threads import blas_threads, dense_shapes, get_blas_threads, threads_for

    if workload == "main":
        job, shapes = _main_job, dense_shapes(MAIN_SIZES, MAIN_BATCH)
    else:
        job, shapes = _large_job(examples), dense_shapes(LARGE_SIZES, LARGE_BATCH)
    limit = threads_for(shapes) if limited else None
    threads = get_blas_threads()
    start = time.perf_counter()
    with blas_threads(limit):
        job()
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": threads, "limit": limit}))


# --- the parent ---------------------------------------------------------------------------------


def _environment(pinned: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in THREAD_VARIABLES}
    if pinned:
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (os.path.dirname(HERE),
                                                    os.environ.get("PYTHONPATH")) if p)
    return env


def run_child(workload: str, row: str, examples: int) -> dict:
    command = [sys.executable, os.path.abspath(__file__), "--child", workload,
               "--examples", str(examples)] + (["--limited"] if row == ROWS[2] else [])
    done = subprocess.run(command, env=_environment(row == ROWS[1]), capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{workload} / {row} failed:\n{done.stderr}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def _busy() -> None:
    while True:
        pass


@contextlib.contextmanager
def contention(processes: int) -> Iterator[None]:
    """`processes` busy loops for the duration of the block, all ended after it."""
    busy = [multiprocessing.Process(target=_busy, daemon=True) for _ in range(processes)]
    for p in busy:
        p.start()
    try:
        time.sleep(0.2)
        yield
    finally:
        for p in busy:
            p.terminate()
        for p in busy:
            p.join()


def measure(workload: str, repeat: int, examples: int) -> dict[str, list[dict]]:
    """Every row `repeat` times, taken in turn."""
    found: dict[str, list[dict]] = {row: [] for row in ROWS}
    for _ in range(repeat):
        for row in ROWS:
            found[row].append(run_child(workload, row, examples))
    return found


def report(title: str, found: dict[str, list[dict]]) -> dict[str, float]:
    best = {row: min(r["seconds"] for r in runs) for row, runs in found.items()}
    median = {row: statistics.median(r["seconds"] for r in runs) for row, runs in found.items()}
    width = max(len(row) for row in ROWS) + 2
    print(f"\n{title}")
    print(f"{'':<{width}}{'best (s)':>10}{'median (s)':>12}{'/ pinned':>10}{'BLAS threads':>14}"
          f"{'limit':>7}")
    pinned = best[ROWS[1]]
    for row, runs in found.items():
        print(f"{row:<{width}}{best[row]:>10.3f}{median[row]:>12.3f}{best[row] / pinned:>10.2f}"
              f"{runs[0]['threads'] or '-':>14}{runs[0]['limit'] or '-':>7}")
    return best


def _load() -> str:
    try:
        return "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "load average unknown"


def describe_blas() -> str:
    import numpy as np

    from tinygrad_nn._threads import openblas_libraries

    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        built = f"{blas.get('name')} {blas.get('version')}"
    except Exception:
        built = "unknown (numpy.show_config gave no BLAS)"
    found = ", ".join(f"{b.path} ({b.get()} threads)" for b in openblas_libraries()) or "none"
    return f"numpy {np.__version__}, built with {built}\nOpenBLAS loaded: {found}"


# --- per-step table and overhead (in this process) ---------------------------------------------


def step_function(sizes: list[int], batch: int) -> Callable[[], None]:
    """One tinygrad_nn training step (linear + sigmoid layers, quadratic cost, SGD)."""
    import numpy as np
    from common import sigmoid_sgd_step

    from tinygrad_nn import Tensor
    from tinygrad_nn.optim import SGD

    rng = np.random.default_rng(0)
    params = [(Tensor(rng.standard_normal((b, a)) / np.sqrt(a), requires_grad=True),
               Tensor(np.zeros(b), requires_grad=True)) for a, b in zip(sizes, sizes[1:])]
    opt = SGD([p for pair in params for p in pair], 0.1)
    x = rng.random((batch, sizes[0]))
    y = np.eye(sizes[-1])[rng.integers(0, sizes[-1], batch)]

    step = sigmoid_sgd_step(params, opt)
    return lambda: step(x, y)


def per_step(step: Callable[[], None], seconds: float) -> tuple[float, float]:
    """(fastest, mean) seconds of one step over about `seconds` of steps.

    The fastest step is the figure of an undisturbed machine (a busy one pauses some steps,
    rarely all); the mean is what a run pays, pauses included.
    """
    times = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < 3:
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return min(times), sum(times) / len(times)


def step_table(title: str, seconds: float) -> None:
    from tinygrad_nn._threads import blas_threads, dense_shapes, threads_for

    print(f"\n{title}: one step, default BLAS threads (d) against blas_threads(1) (1), "
          f"{seconds:.1f} s of steps each in 4 turns; fastest step and mean step; {_load()}")
    print(f"{'sizes, batch':<26}{'m*k*n':>12}{'fastest d':>11}{'fastest 1':>11}{'d / 1':>7}"
          f"{'mean d':>11}{'mean 1':>11}{'d / 1':>7}{'rule':>6}   (us)")
    for sizes, batch in STEP_SHAPES:
        step = step_function(sizes, batch)
        found: dict[int | None, list[tuple[float, float]]] = {None: [], 1: []}
        for _ in range(2):
            for limit, runs in found.items():
                with blas_threads(limit):
                    runs.append(per_step(step, seconds / 2))
        fast = {limit: min(r[0] for r in runs) for limit, runs in found.items()}
        mean = {limit: sum(r[1] for r in runs) / len(runs) for limit, runs in found.items()}
        largest = max(m * k * n for m, k, n in dense_shapes(sizes, batch))
        rule = threads_for(dense_shapes(sizes, batch)) or "-"
        print(f"{str(sizes) + ', ' + str(batch):<26}{largest:>12,}{1e6 * fast[None]:>11.1f}"
              f"{1e6 * fast[1]:>11.1f}{fast[None] / fast[1]:>7.2f}{1e6 * mean[None]:>11.1f}"
              f"{1e6 * mean[1]:>11.1f}{mean[None] / mean[1]:>7.2f}{rule:>6}", flush=True)
    print(f"({_load()})")


def overhead() -> None:
    from tinygrad_nn import _threads

    _threads._found = None
    start = time.perf_counter()
    _threads.openblas_libraries()
    first = time.perf_counter() - start
    n = 20_000
    for limit in (1, None):
        start = time.perf_counter()
        for _ in range(n):
            with _threads.blas_threads(limit):
                pass
        each = (time.perf_counter() - start) / n
        print(f"entering and leaving blas_threads({limit}): {1e6 * each:.2f} us")
    print(f"finding the OpenBLAS libraries (once per process): {1e3 * first:.2f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--busy", type=int, default=os.cpu_count() or 1,
                        help="busy processes under contention (default: one per core)")
    parser.add_argument("--large", action="store_true",
                        help="also the batch-128 [784, 256, 256, 10] epoch")
    parser.add_argument("--examples", type=int, default=6_400,
                        help="rows of the --large epoch (default: 6,400, 50 steps)")
    parser.add_argument("--steps", action="store_true",
                        help="also the per-step table the rule threads_for was decided from")
    parser.add_argument("--step-seconds", type=float, default=1.0,
                        help="seconds of steps per shape, thread count and condition")
    parser.add_argument("--child", choices=("main", "large"), help=argparse.SUPPRESS)
    parser.add_argument("--limited", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.limited, args.examples)
        return
    print(describe_blas())
    print(f"{os.cpu_count()} cores; contention: {args.busy} busy-loop processes; "
          f"best and median of {args.repeat}, rows taken in turn, each in a fresh process")
    workloads = [("main", f"the main job, tinygrad-nn train ({MAIN_SIZES}, batch {MAIN_BATCH}, "
                          f"30 epochs)")]
    if args.large:
        workloads.append(("large", f"{LARGE_SIZES}, batch {LARGE_BATCH}, one epoch of "
                                   f"{args.examples} rows, float64"))
    results = {}
    for quiet in (True, False):
        with contextlib.nullcontext() if quiet else contention(args.busy):
            for name, title in workloads:
                condition = "quiet" if quiet else "contended"
                where = f"{condition} (at the start: {_load()})"
                results[name, condition] = report(
                    f"{title}, {where}", measure(name, args.repeat, args.examples))
                print(f"(at the end: {_load()})")
            if args.steps:
                step_table("quiet" if quiet else "contended", args.step_seconds)
    print("\nratios (best times):")
    for name, _ in workloads:
        for condition in ("quiet", "contended"):
            best = results[name, condition]
            print(f"  {name:<6}{condition:<10}"
                  f" default / pinned {best[ROWS[0]] / best[ROWS[1]]:5.2f}"
                  f"   limited / pinned {best[ROWS[2]] / best[ROWS[1]]:5.2f}"
                  f"   default / limited {best[ROWS[0]] / best[ROWS[2]]:5.2f}"
                  + ("   (target: default / pinned <= 1.1 contended)"
                     if (name, condition) == ("main", "contended") else ""))
    print()
    overhead()


if __name__ == "__main__":
    main()
