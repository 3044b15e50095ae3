"""Ray + MLflow overhead per trial vs calling the trainable body directly (issue: <= 10% of a 30 s trial).

Both are measured in the same run, interleaved (direct, sweep, direct) so machine load
drifts affect both:

* direct: ``trainables.classifier.run_trial(config, report)`` in this process;
* sweep: the same config as a sweep of ``--trials`` trials (no search space, one at a
  time) through the real launcher: Ray trial actor, MLflow child run logging params,
  per-epoch metrics and artifacts from inside the trial, checkpoint every epoch, the
  driver callback. Ray's cluster start (once per sweep, not per trial) is excluded; the
  per-trial time is the wall time of ``tuner.fit()`` divided by the number of trials.

Usage: python tests/benchmarks/bench_sweep_overhead.py [--target-seconds 30] [--trials 3] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

BASE = dict(dataset="synthetic", synthetic_size=2000, batch_size=32, embedding_dim=64, hidden_dim=64,
            attention_dim=64, regularizer="attention_vat", eps=1.0, num_threads=1, heatmaps=3, correlation=True)


def direct(config: dict) -> float:
    from trainables.classifier import run_trial

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as out:
        run_trial(config, lambda m, c: None, out_dir=Path(out))
    return time.perf_counter() - t0


def sweep(config: dict, trials: int, home: Path) -> tuple[float, list[float]]:
    from ray import tune  # noqa: F401

    from sweeps.launcher import build_tuner, plan_sweep, start_parent_run
    from sweeps.spec import parse_spec
    from sweeps.workdir import Workdir

    name = f"overhead-{int(time.time())}"
    spec = parse_spec({"name": name, "trainable": "classifier", "config": config, "metric": "best/valid_f1",
                       "mode": "max", "num_samples": 1, "repeats": trials, "max_concurrent": 1,
                       "resources": {"cpu": 1}, "scheduler": None})
    plan = plan_sweep(spec, workdir=Workdir(home))
    launch = start_parent_run(plan, resume=False)
    tuner = build_tuner(plan, launch, resume=False, verbose=0)
    t0 = time.perf_counter()
    results = tuner.fit()
    wall = time.perf_counter() - t0
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise RuntimeError(f"sweep trials failed: {errors[0]}")
    return wall / trials, [float(r.metrics["time_total_s"]) for r in results]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--target-seconds", type=float, default=30.0, help="duration of one direct trial")
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--out", default=str(ROOT / "tests" / "benchmarks" / "results" / "sweep_overhead.json"))
    args = ap.parse_args()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    import ray

    # calibrate epochs so that one direct trial lasts about --target-seconds
    direct({**BASE, "epochs": 1})  # warm-up: first-call imports and caches
    one, three = direct({**BASE, "epochs": 1}), direct({**BASE, "epochs": 3})
    per_epoch = max(1e-3, (three - one) / 2)
    epochs = max(1, math.ceil((args.target_seconds - (one - per_epoch)) / per_epoch))
    config = {**BASE, "epochs": epochs}
    with tempfile.TemporaryDirectory() as home:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
        try:
            d1 = direct(config)
            per_trial, ray_times = sweep(config, args.trials, Path(home))
            d2 = direct(config)
        finally:
            ray.shutdown()
    d = statistics.fmean([d1, d2])
    overhead = (per_trial - d) / d
    rows = [("direct run_trial (mean of 2)", d), ("sweep, wall per trial", per_trial),
            ("sweep, Ray time_total_s (mean)", statistics.fmean(ray_times))]
    print(f"config: epochs={epochs} ({per_epoch:.1f} s per epoch, {one - per_epoch:.1f} s fixed), "
          f"trials={args.trials}, regularizer=attention_vat")
    print(f"{'measurement':<34}{'seconds':>10}")
    for label, v in rows:
        print(f"{label:<34}{v:>10.2f}")
    print(f"{'overhead per trial':<34}{100 * overhead:>9.1f}%   (target <= 10%)")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({
        "benchmark": "sweep_overhead", "date": time.strftime("%Y-%m-%d %H:%M:%S"), "machine": platform.platform(),
        "cpus": os.cpu_count(), "config": config, "direct_seconds": [d1, d2], "sweep_wall_per_trial": per_trial,
        "ray_time_total_s": ray_times, "overhead_fraction": overhead, "target_fraction": 0.10,
        "passed": overhead <= 0.10,
    }, indent=2))
    print(f"wrote {out}")
    return 0 if overhead <= 0.10 else 1


if __name__ == "__main__":
    sys.exit(main())
