"""Every MLflow UI link xaisweep prints opens the classic view (``workflowType=machine_learning``),
issue 16 item 2: the link function, and ``best`` / ``reproduce`` / ``ui`` printing it (no Ray, no server;
tests/test_ui_browser.py opens the links in Chromium)."""
from __future__ import annotations

import pytest
import yaml

pytest.importorskip("mlflow")

from sweeps import cli  # noqa: E402
from sweeps.launcher import run_link  # noqa: E402
from sweeps.mlflow_links import ui_link  # noqa: E402
from test_report import Store  # noqa: E402

C = "workflowType=machine_learning"


@pytest.mark.parametrize("uri, run_id, want", [
    ("sqlite:////w/mlflow.db", "abc", f"http://127.0.0.1:5000/#/experiments/7/runs/abc?{C}"),
    ("sqlite:////w/mlflow.db", None, f"http://127.0.0.1:5000/#/experiments/7/runs?{C}"),
    ("file:///w/mlruns", None, f"http://127.0.0.1:5000/#/experiments/7/runs?{C}"),
    (None, "abc", f"http://127.0.0.1:5000/#/experiments/7/runs/abc?{C}"),
    ("http://head:5000/", "abc", f"http://head:5000/#/experiments/7/runs/abc?{C}"),
    ("https://mlflow.lab.org/mlflow", None, f"https://mlflow.lab.org/mlflow/#/experiments/7/runs?{C}"),
    ("http://127.0.0.1:5001", "abc", f"http://127.0.0.1:5001/#/experiments/7/runs/abc?{C}"),
])
def test_ui_link_opens_the_classic_runs_table_or_run_page(uri, run_id, want):
    assert ui_link(uri, "7", run_id) == want
    assert run_link(uri or "", "7", run_id) == want  # what `xaisweep run` prints: the same function


SPEC = {"name": "links", "trainable": "classifier", "metric": "best/valid_f1", "mode": "max", "num_samples": 1,
        "config": {"dataset": "synthetic", "synthetic_size": 200, "epochs": 1, "embedding_dim": 8,
                   "hidden_dim": 8, "attention_dim": 8, "heatmaps": 0},
        "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("links"))
    exp = s.experiment("links")
    parent = s.parent(exp, SPEC)
    trial = s.child(exp, parent, {"lr": 1e-3}, [0.5, 0.6])
    s.client.log_text(trial, yaml.safe_dump({"trainable": "classifier", "config": SPEC["config"]}), "config.yaml")
    return s, exp, trial


def test_best_prints_the_classic_runs_table_of_the_sweep(store, capsys):
    s, exp, _ = store
    assert cli.main(["best", "links", "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert f"MLflow runs: http://127.0.0.1:5000/#/experiments/{exp}/runs?{C}" in out


def test_reproduce_prints_the_classic_page_of_its_run(store, capsys):
    s, exp, trial = store
    assert cli.main(["reproduce", trial, "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    [repro] = s.client.search_runs([exp], f"tags.reproduces = '{trial}'")
    assert (f"logged reproduction run {repro.info.run_id}: "
            f"http://127.0.0.1:5000/#/experiments/{exp}/runs/{repro.info.run_id}?{C}") in out


def test_ui_prints_each_experiments_classic_runs_table_before_it_serves(store, tmp_path, capsys, monkeypatch):
    s, exp, _ = store
    monkeypatch.setenv("XAISWEEP_HOME", str(tmp_path / "home"))
    served = []
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: served.append(argv))
    assert cli.main(["ui", "--tracking-uri", s.uri, "--port", "5077"]) == 0
    out = capsys.readouterr().out
    assert served and served[0][served[0].index("--port") + 1] == "5077"
    assert f"links  http://127.0.0.1:5077/#/experiments/{exp}/runs?{C}" in out
    assert "Default" not in out  # MLflow's own empty experiment


def test_ui_on_an_empty_store_says_so(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(cli.os, "execv", lambda path, argv: None)
    monkeypatch.setenv("XAISWEEP_HOME", str(tmp_path / "home"))
    assert cli.main(["ui", "--tracking-uri", f"sqlite:///{tmp_path / 'empty.db'}"]) == 0
    assert "no experiment in sqlite:///" in capsys.readouterr().out
