"""Ray + MLflow overhead of a sweep vs the same trials without them (issue 18: <= 3% of a 30 s trial).

Measured in one run, interleaved (loop, sweep, loop, sweep, ..., loop), each phase after ``--settle``
seconds of idle, so that drifts in machine load affect both sides:

* **loop** (the reference without Ray and MLflow): a fresh Python process that imports the trainable and calls
  ``trainables.classifier.trial.run_trial(config, report)`` for the ``--trials`` trials in a row (the seeds a
  sweep's ``repeats`` gives them), timed from its start to its exit. It pays what any plain script pays: the
  interpreter, ``import torch``, torch's first use (the first ``torch.optim`` call imports ``torch._dynamo``) and
  matplotlib's, once. Its trials after the first also give the **warm** per-trial time (a process that has all of
  that done already: the baseline of the benchmark's rounds 1-4).
* **sweep**: the same trials as a sweep (no search space, one trial at a time, ``repeats: --trials``) through the
  real launcher: Ray trial actor on a reused worker, the MLflow child run written by the worker's tracking process
  (:mod:`trainables.tracking_process`: params, per-epoch metrics, artifacts), the checkpoints of the shipped
  ``checkpoint_every_s``, the driver callback closing each run. Ray's cluster start (``ray.init``) is excluded (once
  per sweep); everything inside ``tuner.fit()`` counts. Both sides draw the interim artifacts only for a report
  that keeps them (``Trial.artifacts_due``).

Reported per cycle (each sweep against the mean of the two loops just before and after it), then mean ± sd over
the ``--repeats`` cycles, each **in seconds and in training steps** (a phase's wall divided by its own mean
``train/step_time``, measured over the same minutes: the host's speed drift cancels; this assumes that a trial in a
Ray worker computes as fast as one in a plain process, and the sweep / loop step-time ratio is printed as the check):

* **overhead vs the loop** (the headline, in steps: the issue's "Ray + MLflow around a trial"): ``tuner.fit()`` wall
  vs the loop process's wall, for the same trials;
* **overhead vs a warm process**: ``tuner.fit()`` wall / trials vs the loop's per-trial time after its first trial;
  it also charges the sweep with the torch / dynamo / matplotlib start-up that the loop pays too (reported as the
  loop's own start-up);
* the sweep's **marginal** trial (median MLflow start-to-start slot after the first trial) and its **one-time
  start-up** (``tuner.fit()`` start to the first trial's run, plus the first trial's extra time over the later
  ones).

The shipped launcher reuses a Ray worker from trial to trial (spec ``reuse_workers: true``, the default); a sweep
with ``reuse_workers: false`` (a fresh worker process per trial) is measured at the end (``--fresh-trials``, 0 skips
it), against the warm per-trial time.

On this 2-core VM two runs of one identical 30-s trial have differed by 28%, identical trials drifted from 45 s
to 29 s within one sweep, and the step time from 15 to 23 ms within one hour (host noise: no other process used the
CPU), hence the step count, the interleaving, the idle before each phase (Ray's start and a sweep's teardown take the
CPU for a few seconds) and the cycles.

Usage: python tests/benchmarks/bench_sweep_overhead.py [--target-seconds 30] [--trials 8] [--repeats 4]
       [--settle 10] [--fresh-trials 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import REPO as ROOT, loadavg, mean_sd, write_output  # noqa: E402 (also puts the repository on sys.path)

#: the issue-18 must-reach (round 1 asked for <= 10%)
TARGET = 0.03
BASE = dict(dataset="synthetic", synthetic_size=2000, batch_size=32, embedding_dim=64, hidden_dim=64,
            attention_dim=64, regularizer="attention_vat", eps=1.0, num_threads=1, heatmaps=3, correlation=True)

#: the loop process: the trials one after the other in plain Python, their times as JSON on stdout
LOOP = """
import json, sys, tempfile, time
from pathlib import Path
t0 = time.perf_counter()
from trainables.classifier.trial import run_trial
imported = time.perf_counter() - t0
config, trials = json.loads(sys.argv[1]), int(sys.argv[2])
times, steps = [], []
report = lambda m, c: steps.append(m["train/step_time"])  # one per epoch
for i in range(trials):
    t = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_trial({**config, "seed": int(config.get("seed", 0)) + i}, report, out_dir=Path(out))
    times.append(time.perf_counter() - t)
print(json.dumps({"import_s": imported, "trial_s": times, "step_time_s": steps}))
"""


def direct(config: dict) -> float:
    """One trial in this (warm) process: used to calibrate the epochs."""
    from trainables.classifier.trial import run_trial

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_trial(config, lambda m, c: None, out_dir=Path(out))
    return time.perf_counter() - t0


def loop(config: dict, trials: int) -> dict:
    """The trials in a fresh Python process (this repository first on its path): its wall from start to exit, its
    import of the trainable, each trial's time, and the warm per-trial time (the mean of the trials after the
    first)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", LOOP, json.dumps(config), str(trials)], cwd=ROOT, env=env,
                         check=True, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    got = json.loads(out.stdout.strip().splitlines()[-1])
    warm = statistics.fmean(got["trial_s"][1:])
    return {"wall": wall, "import_s": got["import_s"], "trial_s": got["trial_s"], "warm_per_trial": warm,
            "step_time": statistics.fmean(got["step_time_s"]),
            # what the process pays once: interpreter, imports, the first trial's first use of torch and matplotlib
            "startup_s": wall - warm * trials}


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
    client = MlflowClient(plan.tracking_uri)
    runs = client.search_runs(
        [launch["experiment_id"]], "tags.ray_trial_id != ''", order_by=["attributes.start_time ASC"])
    starts = [r.info.start_time / 1000 - t0 for r in runs]
    ends = [r.info.end_time / 1000 - t0 for r in runs]
    slots = [b - a for a, b in zip(starts, starts[1:])]
    steps = [m.value for r in runs for m in client.get_metric_history(r.info.run_id, "train/step_time")]
    return {"step_time": statistics.fmean(steps), "trials": trials, "wall": wall, "per_trial": wall / trials,
            "ray_time_total_s": [float(r.metrics["time_total_s"]) for r in ordered],
            "worker_pids": [int(r.metrics["pid"]) for r in ordered],
            "run_start_s": starts, "run_end_s": ends, "slots_s": slots,
            "first_run_start_s": starts[0] if starts else float("nan")}


def _cycle(shipped: dict, loops: list[dict]) -> dict:
    """One sweep against the mean of the loops just before and just after it: in seconds, and in training steps
    (each phase's wall divided by its own mean training step time, which removes the host's speed drift)."""
    cold = statistics.fmean(lp["wall"] for lp in loops)
    warm = statistics.fmean(lp["warm_per_trial"] for lp in loops)
    cold_steps = statistics.fmean(lp["wall"] / lp["step_time"] for lp in loops)
    warm_steps = statistics.fmean(lp["warm_per_trial"] / lp["step_time"] for lp in loops)
    sweep_steps = shipped["wall"] / shipped["step_time"]
    marginal = statistics.median(shipped["slots_s"][1:])
    return {"loop_wall": cold, "warm_per_trial": warm, "sweep_wall": shipped["wall"],
            "sweep_per_trial": shipped["per_trial"],
            "overhead_vs_loop": (shipped["wall"] - cold) / cold,
            "overhead_vs_warm": (shipped["per_trial"] - warm) / warm,
            "steps_overhead_vs_loop": sweep_steps / cold_steps - 1,
            "steps_overhead_vs_warm": sweep_steps / shipped["trials"] / warm_steps - 1,
            "step_time_ratio": shipped["step_time"] / statistics.fmean(lp["step_time"] for lp in loops),
            "loop_startup_seconds": statistics.fmean(lp["startup_s"] for lp in loops),
            "marginal_seconds": marginal, "marginal_overhead": (marginal - warm) / warm,
            "startup_seconds": shipped["first_run_start_s"] + shipped["slots_s"][0] - marginal,
            "loadavg_after": loadavg()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-seconds", type=float, default=30.0, help="duration of one direct trial")
    ap.add_argument("--trials", type=int, default=8, help="trials of a sweep and of a loop (>= 3)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="cycles of (sweep, loop) after the first loop; the headline is their mean ± sd")
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

    # calibrate epochs so that one warm trial lasts about --target-seconds
    direct({**BASE, "epochs": 1})  # warm-up: first-call imports and caches
    one, three = direct({**BASE, "epochs": 1}), direct({**BASE, "epochs": 3})
    per_epoch = max(1e-3, (three - one) / 2)
    epochs = max(1, math.ceil((args.target_seconds - (one - per_epoch)) / per_epoch))
    config = {**BASE, "epochs": epochs}
    fresh = None
    cycles, sweeps_run = [], []  # one (loop before, sweep, loop after) cycle each; consecutive cycles share a loop
    with tempfile.TemporaryDirectory() as home:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            settle = lambda: time.sleep(args.settle)  # noqa: E731
            settle()
            loops = [loop(config, args.trials)]
            for k in range(args.repeats):
                settle()
                shipped = sweep(config, args.trials, Path(home), reuse=True)
                sweeps_run.append(shipped)
                settle()
                loops.append(loop(config, args.trials))
                cycles.append(_cycle(shipped, loops[-2:]))
                c = cycles[-1]
                print(f"cycle {k + 1}/{args.repeats}: vs loop {100 * c['steps_overhead_vs_loop']:+.1f}% in steps, "
                      f"{100 * c['overhead_vs_loop']:+.1f}% in seconds; vs warm "
                      f"{100 * c['steps_overhead_vs_warm']:+.1f}% / {100 * c['overhead_vs_warm']:+.1f}%; "
                      f"step time sweep / loop {c['step_time_ratio']:.3f} (load {c['loadavg_after']})", flush=True)
            if args.fresh_trials > 0:
                settle()
                fresh = sweep(config, args.fresh_trials, Path(home), reuse=False)
        finally:
            ray.shutdown()
    warm_all = statistics.fmean(lp["warm_per_trial"] for lp in loops)
    vs_loop, vs_loop_sd = mean_sd([c["overhead_vs_loop"] for c in cycles])
    vs_warm, vs_warm_sd = mean_sd([c["overhead_vs_warm"] for c in cycles])
    st_loop, st_loop_sd = mean_sd([c["steps_overhead_vs_loop"] for c in cycles])
    st_warm, st_warm_sd = mean_sd([c["steps_overhead_vs_warm"] for c in cycles])
    ratio, ratio_sd = mean_sd([c["step_time_ratio"] for c in cycles])
    marg, marg_sd = mean_sd([c["marginal_seconds"] - c["warm_per_trial"] for c in cycles])
    start, start_sd = mean_sd([c["startup_seconds"] for c in cycles])
    lstart, lstart_sd = mean_sd([c["loop_startup_seconds"] for c in cycles])

    def ms(m: float, sd: float, unit: str = "", scale: float = 1.0, fmt: str = "+.1f") -> str:
        return f"{scale * m:{fmt}}{unit}" + ("" if len(cycles) < 2 else f" ± {scale * sd:{fmt.lstrip('+')}}{unit}")

    n = args.trials
    rows = [
        (f"loop: {n} trials in a fresh process, wall (s)", " / ".join(f"{lp['wall']:.1f}" for lp in loops)),
        ("  its warm trials (after the first), mean (s)", " / ".join(f"{lp['warm_per_trial']:.2f}" for lp in loops)),
        ("  its start-up: wall - trials x warm (s)", " / ".join(f"{lp['startup_s']:.1f}" for lp in loops)),
        (f"sweep: {n} trials, reuse_workers: true, tuner.fit() wall (s)",
         " / ".join(f"{sw['wall']:.1f}" for sw in sweeps_run)),
        ("  Ray time_total_s per trial, last sweep", " / ".join(f"{t:.1f}" for t in shipped["ray_time_total_s"])),
        ("  worker processes, last sweep", str(len(set(shipped["worker_pids"])))),
        ("  one-time start-up (s)", ms(start, start_sd, fmt=".1f")),
        ("  marginal trial - warm trial (s)", ms(marg, marg_sd, fmt="+.2f")),
        ("loop's own start-up (s)", ms(lstart, lstart_sd, fmt=".1f")),
        ("training step time (ms), loops", " / ".join(f"{1000 * lp['step_time']:.2f}" for lp in loops)),
        ("training step time (ms), sweeps", " / ".join(f"{1000 * sw['step_time']:.2f}" for sw in sweeps_run)),
        ("step time sweep / loops around it, each cycle", " / ".join(f"{c['step_time_ratio']:.3f}" for c in cycles)),
        ("overhead vs the loop in steps, each cycle",
         " / ".join(f"{100 * c['steps_overhead_vs_loop']:+.1f}%" for c in cycles)),
        ("overhead vs the loop in seconds, each cycle",
         " / ".join(f"{100 * c['overhead_vs_loop']:+.1f}%" for c in cycles)),
        ("overhead vs a warm process in steps, each cycle",
         " / ".join(f"{100 * c['steps_overhead_vs_warm']:+.1f}%" for c in cycles)),
        ("overhead vs a warm process in seconds, each cycle",
         " / ".join(f"{100 * c['overhead_vs_warm']:+.1f}%" for c in cycles)),
    ]
    if fresh is not None:
        rows += [
            (f"sweep, {args.fresh_trials} trials, reuse_workers: false, wall / trials vs warm",
             f"{fresh['per_trial']:.2f} s, {100 * (fresh['per_trial'] - warm_all) / warm_all:+.1f}%"),
            ("  Ray time_total_s per trial", " / ".join(f"{t:.1f}" for t in fresh["ray_time_total_s"])),
        ]
    print(f"config: epochs={epochs} ({per_epoch:.2f} s per epoch, {one - per_epoch:.2f} s fixed), "
          f"regularizer=attention_vat, MLflow metrics every epoch, the spec's default checkpoint_every_s; "
          f"{len(cycles)} cycles")
    for label, value in rows:
        print(f"{label:<62}{value:>40}")
    passed = st_loop <= TARGET
    print(f"step time in a sweep / in a plain process: {ms(ratio, ratio_sd, fmt='.3f')} (1: the worker computes as "
          f"fast; the step-normalised rows assume it)")
    print(f"Ray + MLflow overhead vs the same {n} trials in a plain process: {ms(st_loop, st_loop_sd, '%', 100)} "
          f"in training steps, {ms(vs_loop, vs_loop_sd, '%', 100)} in seconds "
          f"(target <= {100 * TARGET:g}%): {'PASS' if passed else 'MISS'}")
    print(f"vs a warm process (also charges the sweep with the start-up any process pays): "
          f"{ms(st_warm, st_warm_sd, '%', 100)} in steps, {ms(vs_warm, vs_warm_sd, '%', 100)} in seconds")
    write_output(args.out, {
        "benchmark": "sweep_overhead", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "config": config, "trials": n, "loops": loops, "sweeps": sweeps_run,
        "cycles": cycles, "overhead_vs_loop": vs_loop, "overhead_vs_loop_sd": vs_loop_sd,
        "overhead_vs_warm": vs_warm, "overhead_vs_warm_sd": vs_warm_sd,
        "steps_overhead_vs_loop": st_loop, "steps_overhead_vs_loop_sd": st_loop_sd,
        "steps_overhead_vs_warm": st_warm, "steps_overhead_vs_warm_sd": st_warm_sd,
        "step_time_ratio": ratio, "step_time_ratio_sd": ratio_sd,
        "marginal_minus_warm_seconds": marg, "startup_seconds": start, "loop_startup_seconds": lstart,
        "fresh_workers": fresh,
        "fresh_overhead_vs_warm": None if fresh is None else (fresh["per_trial"] - warm_all) / warm_all,
        "target_fraction": TARGET, "passed": passed,
    })
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
