"""A small multi-objective sweep end to end (real Ray, 6 trials, ``--num-cpus 2``): Optuna's multi-objective
TPE through Ray Tune with ``repeats: 2`` (the ObjectivesRepeater), the objectives recorded on the launch,
``best`` printing the Pareto set, ``--export`` + ``reproduce`` of a member, and ``report`` drawing the front."""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
from mlflow.tracking import MlflowClient  # noqa: E402

from cli_sweeps import embedded_xaisweep, run_args  # noqa: E402
from sweeps import cli  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

F1, COST = "best/valid_f1", "train/step_time"
TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": 2, "batch_size": 32, "embedding_dim": 8,
        "hidden_dim": 8, "attention_dim": 8, "heatmaps": 2}


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    root = tmp_path_factory.mktemp("mo-sweep")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = root / "mo.yaml"
    spec.write_text(yaml.safe_dump({
        "name": "mo", "trainable": "classifier", "config": TINY,
        "search_space": {"regularizer": {"type": "choice", "values": ["none", "attention_vat"]},
                         "lr": {"type": "loguniform", "low": 1e-3, "high": 3e-2}},
        "metric": [F1, COST], "mode": ["max", "min"],
        "sampler": {"type": "tpe", "seed": 0}, "scheduler": "none",
        "num_samples": 3, "repeats": 2, "max_concurrent": 2, "resources": {"cpu": 1},
    }, sort_keys=False))
    t0 = time.time()
    with embedded_xaisweep(root) as xaisweep:
        rc, out = xaisweep(*run_args(spec, root, uri))
    return {"rc": rc, "stdout": out, "uri": uri, "root": root, "seconds": time.time() - t0}


def test_multi_objective_sweep_runs_and_records_its_objectives(sweep):
    assert sweep["rc"] == 0, sweep["stdout"]
    out = sweep["stdout"]
    assert f"metrics {F1} (max), {COST} (min)" in out and "Pareto set:" in out, out
    client = MlflowClient(sweep["uri"])
    exp = client.get_experiment_by_name("mo")
    parent, = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")
    assert json.loads(parent.data.tags["objectives"]) == [[F1, "max"], [COST, "min"]]
    assert (parent.data.tags["metric"], parent.data.tags["mode"]) == (F1, "max")  # the first, for older readers
    trials = client.search_runs([exp.experiment_id], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}'")
    assert len(trials) == 6 and all(r.info.status == "FINISHED" for r in trials)
    assert all(F1 in r.data.metrics and COST in r.data.metrics for r in trials)
    # repeats: 2 -> 3 configurations, each with seeds 0 and 1
    configs = {}
    for r in trials:
        configs.setdefault((r.data.params["regularizer"], r.data.params["lr"]), []).append(r.data.params["seed"])
    assert len(configs) == 3 and all(sorted(s) == ["0", "1"] for s in configs.values()), configs


def test_best_prints_the_pareto_set_and_exports_reproducible_members(sweep, capsys, tmp_path):
    uri = sweep["uri"]
    assert cli.main(["best", "mo", "--tracking-uri", uri, "--export", str(tmp_path / "best.yaml")]) == 0
    out = capsys.readouterr().out
    assert f"Pareto set over {F1} (max), {COST} (min):" in out and "of 3 configurations" in out, out
    header = out.splitlines()[1].split()
    assert header[:5] == ["#", "run_id", F1, COST, "n"], out
    files = sorted(tmp_path.glob("best-*.yaml"))
    assert files and f"wrote {files[0]}" in out
    doc = yaml.safe_load(files[0].read_text())
    assert doc["pareto"]["metrics"] == [F1, COST] and doc["n"] == 2
    assert cli.main(["reproduce", str(files[0]), "--tracking-uri", uri]) == 0
    out = capsys.readouterr().out
    assert F1 in out and COST in out, out  # every objective is compared with the original


def test_report_draws_the_pareto_front_and_hypervolume(sweep, capsys, tmp_path):
    rc = cli.main(["report", "mo", "--out", str(tmp_path / "rep"), "--tracking-uri", sweep["uri"]])
    out = capsys.readouterr().out
    assert rc == 0 and "## Pareto set" in out and "Hypervolume of the non-dominated trials after 6" in out, out
    for png in ("pareto_front.png", "hypervolume.png"):
        assert Path(tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
