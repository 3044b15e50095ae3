"""Ray + MLflow overhead per trial vs calling the trainable body directly (issue 18: <= 3% of a 30 s trial).

Measured in one run, interleaved (direct, sweep, direct, sweep, direct) so that drifts
in machine load affect both:

* direct: ``trainables.classifier.trial.run_trial(config, report)`` in this process (warm);
* sweep: the same config as a sweep of ``--trials`` trials (no search space, one at a
  time) through the real launcher: Ray trial actor, MLflow child run logging params,
  per-epoch metrics and artifacts from the worker (since 2026-12-02 from the worker's tracking
  process, :mod:`trainables.tracking_process`), the checkpoints of the shipped
  ``checkpoint_every_s`` (every epoch before 2026-12-02), the driver callback closing each run. Ray's
  cluster start (``ray.init``) is excluded (once per sweep); everything inside ``tuner.fit()`` counts.
  Both paths draw the interim artifacts only for a report that keeps them (``Trial.artifacts_due``;
  before the third 2026-12-02 session, for every report in both).

Reported, against the mean direct time:

* **amortised overhead** (the headline): ``tuner.fit()`` wall / trials; it includes the
  one-time start-up of the trial worker (process, torch/MLflow imports, first-use
  initialisation), paid once per worker in a sweep with ``reuse_workers: true``;
* **marginal overhead**: the median "slot" of a trial after the first (MLflow start of
  one trial to the MLflow start of the next): what each extra trial costs;
* the one-time start-up: ``tuner.fit()`` start to the first trial's run, plus the first
  trial's extra time over the later ones.

The shipped launcher reuses a Ray worker from trial to trial (spec ``reuse_workers: true``,
the default); a sweep with ``reuse_workers: false`` (a fresh worker process per trial) is
measured side by side (``--fresh-trials``, 0 skips it).

Each timed phase starts after ``--settle`` seconds of idle (default 10): Ray's start (it prestarts
worker processes) and a sweep's teardown take the CPU for a few seconds, and on this 2-core VM a
direct run started right after a sweep took up to 38% longer than the one before it.

With ``--repeats N`` the run is direct, (sweep, direct) x N: each sweep is compared with the two direct runs
around it, and the headline is the mean ± sd over the N cycles (on this VM two direct runs of one 30-s trial
have differed by 28%, so one cycle says little).

Usage: python tests/benchmarks/bench_sweep_overhead.py [--target-seconds 30] [--trials 8] [--repeats 3] [--settle 10] [--out FILE]
"""
from __future__ import annotations

import argparse
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO as ROOT, write_output  # noqa: E402 (also puts the repository on sys.path)

#: the issue-18 must-reach (round 1 asked for <= 10%)
TARGET = 0.03
BASE = dict(dataset="synthetic", synthetic_size=2000, batch_size=32, embedding_dim=64, hidden_dim=64,
            attention_dim=64, regularizer="attention_vat", eps=1.0, num_threads=1, heatmaps=3, correlation=True)


def direct(config: dict) -> float:
    from trainables.classifier.trial import run_trial

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_trial(config, lambda m, c: None, out_dir=Path(out))
    return time.perf_counter() - t0


def sweep(config: dict, trials: int, home: Path, *, reuse: bool) -> dict:
    """Run the sweep; wall time of ``tuner.fit()``, per-trial Ray times and MLflow run start/end times."""
    from mlflow.tracking import MlflowClient

    from sweeps.launcher import build_tuner
    from sweeps.launch.plan import plan_sweep
    from sweeps.launch.sweep_runs import start_parent_run
    from sweeps.spec.parse import parse_spec
    from sweeps.workdir import Workdir

    name = f"overhead-{'reuse' if reuse else 'fresh'}-{int(time.time())}"
    spec = parse_spec({"name": name, "trainable": "classifier", "config": config, "metric": "best/valid_f1",
                       "mode": "max", "num_samples": 1, "repeats": trials, "max_concurrent": 1,
                       "resources": {"cpu": 1}, "scheduler": None, "reuse_workers": reuse})
    plan = plan_sweep(spec, workdir=Workdir(home))
    launch = start_parent_run(plan, resume=False)
    tuner = build_tuner(plan, launch, resume=False, verbose=0)
    t0 = time.time()
    results = tuner.fit()
    wall = time.time() - t0
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"sweep trials failed: {errors[0]}")
    ordered = sorted(results, key=lambda r: r.metrics["trial_id"])
    runs = MlflowClient(plan.tracking_uri).search_runs(
        [launch["experiment_id"]], "tags.ray_trial_id != ''", order_by=["attributes.start_time ASC"])
    starts = [r.info.start_time / 1000 - t0 for r in runs]
    ends = [r.info.end_time / 1000 - t0 for r in runs]
    slots = [b - a for a, b in zip(starts, starts[1:])]
    return {"trials": trials, "wall": wall, "per_trial": wall / trials,
            "ray_time_total_s": [float(r.metrics["time_total_s"]) for r in ordered],
            "worker_pids": [int(r.metrics["pid"]) for r in ordered],
            "run_start_s": starts, "run_end_s": ends, "slots_s": slots,
            "first_run_start_s": starts[0] if starts else float("nan")}


def _cycle(shipped: dict, directs: list[float]) -> dict:
    """One sweep against the mean of the direct runs just before and just after it."""
    d = statistics.fmean(directs)
    marginal = statistics.median(shipped["slots_s"][1:])
    return {"direct_mean": d, "sweep_per_trial": shipped["per_trial"],
            "amortised_overhead": (shipped["per_trial"] - d) / d, "marginal_seconds": marginal,
            "startup_seconds": shipped["first_run_start_s"] + shipped["slots_s"][0] - marginal}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-seconds", type=float, default=30.0, help="duration of one direct trial")
    ap.add_argument("--trials", type=int, default=8, help="trials of the shipped-settings sweep (>= 3)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="cycles of (sweep, direct run) after the first direct run; the headline is their mean ± sd")
    ap.add_argument("--fresh-trials", type=int, default=3,
                    help="trials of the comparison sweep with reuse_workers: false (0: skip it)")
    ap.add_argument("--settle", type=float, default=10.0,
                    help="seconds of idle before each timed phase (Ray's start and a sweep's teardown use the CPU)")
    ap.add_argument("--out", default=str(ROOT / "tests" / "benchmarks" / "results" / "sweep_overhead.json"))
    args = ap.parse_args()
    if args.trials < 3:
        ap.error("--trials must be >= 3 (the marginal overhead needs two later trials)")
    if args.repeats < 1:
        ap.error("--repeats must be >= 1")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    # calibrate epochs so that one direct trial lasts about --target-seconds
    direct({**BASE, "epochs": 1})  # warm-up: first-call imports and caches
    one, three = direct({**BASE, "epochs": 1}), direct({**BASE, "epochs": 3})
    per_epoch = max(1e-3, (three - one) / 2)
    epochs = max(1, math.ceil((args.target_seconds - (one - per_epoch)) / per_epoch))
    config = {**BASE, "epochs": epochs}
    fresh = None
    repeats = []  # one (direct before, sweep, direct after) cycle each; consecutive cycles share a direct run
    with tempfile.TemporaryDirectory() as home:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            settle = lambda: time.sleep(args.settle)  # noqa: E731
            settle()
            directs = [direct(config)]
            for _ in range(args.repeats):
                settle()
                shipped = sweep(config, args.trials, Path(home), reuse=True)
                settle()
                directs.append(direct(config))
                repeats.append(_cycle(shipped, directs[-2:]))
            if args.fresh_trials > 0:
                settle()
                fresh = sweep(config, args.fresh_trials, Path(home), reuse=False)
                settle()
                directs.append(direct(config))
        finally:
            ray.shutdown()
    d = statistics.fmean(directs)

    def pct(seconds: float, base: float = d) -> str:
        return f"{100 * (seconds - base) / base:+.1f}%"

    last = repeats[-1]["direct_mean"]  # the last cycle's rows are against its own two direct runs, as the headline

    # the last cycle's details; the headline is the mean over the cycles, each against its own two direct runs
    marginal, startup = repeats[-1]["marginal_seconds"], repeats[-1]["startup_seconds"]
    amortised_each = [r["amortised_overhead"] for r in repeats]
    amortised = statistics.fmean(amortised_each)
    amortised_sd = statistics.stdev(amortised_each) if len(repeats) > 1 else float("nan")
    rows = [
        (f"direct run_trial (mean of {len(directs)}: " + ", ".join(f"{x:.1f}" for x in directs) + ")", f"{d:.2f}", ""),
        (f"sweep, {args.trials} trials, shipped (reuse_workers: true), last of {args.repeats}", "", ""),
        ("  tuner.fit() wall / trials  [amortised]", f"{shipped['per_trial']:.2f}", pct(shipped["per_trial"], last)),
        ("  trial slot after the first (median)  [marginal]", f"{marginal:.2f}", pct(marginal, last)),
        ("  one-time start-up (worker, imports, first use)", f"{startup:.2f}", ""),
        ("  Ray time_total_s per trial", " / ".join(f"{t:.1f}" for t in shipped["ray_time_total_s"]), ""),
        ("  worker processes", str(len(set(shipped["worker_pids"]))), ""),
    ]
    if args.repeats > 1:
        rows.append(("amortised, each cycle vs its two direct runs",
                     " / ".join(f"{100 * a:+.1f}%" for a in amortised_each), ""))
    if fresh is not None:
        rows += [
            (f"sweep, {args.fresh_trials} trials, reuse_workers: false", "", ""),
            ("  tuner.fit() wall / trials", f"{fresh['per_trial']:.2f}", pct(fresh["per_trial"])),
            ("  Ray time_total_s per trial", " / ".join(f"{t:.1f}" for t in fresh["ray_time_total_s"]), ""),
            ("  worker processes", str(len(set(fresh["worker_pids"]))), ""),
        ]
    print(f"config: epochs={epochs} ({per_epoch:.2f} s per epoch, {one - per_epoch:.2f} s fixed), "
          f"regularizer=attention_vat, MLflow metrics every epoch, the spec's default checkpoint_every_s")
    print(f"{'measurement':<58}{'seconds':>24}{'vs direct':>11}")
    for label, value, rel in rows:
        print(f"{label:<58}{value:>24}{rel:>11}")
    passed = amortised <= TARGET
    sd = f" ± {100 * amortised_sd:.1f}% (sd of {len(repeats)} cycles)" if len(repeats) > 1 else ""
    print(f"amortised overhead per trial {100 * amortised:.1f}%{sd} (target <= {100 * TARGET:g}%): "
          f"{'PASS' if passed else 'MISS'}")
    write_output(args.out, {
        "benchmark": "sweep_overhead", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "config": config, "direct_seconds": directs, "direct_mean": d,
        "shipped": shipped, "cycles": repeats, "amortised_overhead": amortised, "amortised_sd": amortised_sd,
        "marginal_seconds": marginal, "marginal_overhead": (marginal - d) / d, "startup_seconds": startup,
        "fresh_workers": fresh, "fresh_overhead": None if fresh is None else (fresh["per_trial"] - d) / d,
        "target_fraction": TARGET, "passed": passed,
    })
    return 0 if passed else 1

if __name__ == "__main__":
    sys.exit(main())
