"""``sweeps.results.report.make_report`` on a hand-written MLflow SQLite store (no Ray)."""
from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import yaml

mlflow = pytest.importorskip("mlflow")
pytest.importorskip("optuna")
pytest.importorskip("matplotlib")

from mlflow.entities import Metric, Param  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

from sweeps.results.report import make_report  # noqa: E402

METRIC = "best/valid_f1"
N_GRID = 12
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def spec_dict(name: str, **space_overrides) -> dict:
    space = {
        "regularizer": {"type": "choice", "values": ["none", "attention_vat"]},
        "lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2},
        "eps": {"type": "uniform", "low": 0.1, "high": 10.0},
    }
    space.update(space_overrides)
    return {
        "name": name, "trainable": "classifier", "config": {"epochs": 3, "dataset": "synthetic"},
        "search_space": space, "metric": METRIC, "mode": "max",
        "sampler": {"type": "tpe", "seed": 0}, "num_samples": N_GRID,
    }


class Store:
    """A SQLite MLflow store written the way the launcher and ``TrialRun`` write it."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.uri = f"sqlite:///{root / 'mlflow.db'}"
        self.client = MlflowClient(self.uri)
        self.clock = int(time.time() * 1000) - 10_000_000
        self.n_children = 0

    def tick(self) -> int:
        self.clock += 1000
        return self.clock

    def experiment(self, name: str) -> str:
        art = self.root / "artifacts" / name
        art.mkdir(parents=True)
        return self.client.create_experiment(name, artifact_location=art.as_uri())

    def parent(self, exp_id: str, spec: dict) -> str:
        run = self.client.create_run(
            exp_id, start_time=self.tick(), run_name=f"{spec['name']}-launch",
            tags={"xaisweep.role": "sweep", "sweep": spec["name"], "trainable": spec["trainable"],
                  "metric": spec["metric"], "mode": spec["mode"]},
        )
        rid = run.info.run_id
        self.client.log_text(rid, yaml.safe_dump(spec, sort_keys=False), "spec.yaml")
        self.client.set_terminated(rid, "FINISHED")
        return rid

    def child(self, exp_id: str, parent: str, params: dict, curve: list[float] | None,
              status: str = "FINISHED", tags: dict | None = None) -> str:
        self.n_children += 1
        n = self.n_children
        run = self.client.create_run(
            exp_id, start_time=self.tick(), run_name=f"trial_{n:05d}",
            tags={"mlflow.parentRunId": parent, "ray_trial_id": f"t{n:05d}", **(tags or {})},
        )
        rid = run.info.run_id
        # All resolved config values (strings), as the trainable logs them: eps is logged even
        # when the regularizer makes it inactive.
        resolved = {"epochs": 3, "dataset": "synthetic", "regularizer": "none", "eps": 1.0, "lr": 1e-3}
        resolved.update(params)
        now = self.clock
        metrics = []
        for epoch, v in enumerate(curve or [], 1):
            metrics += [Metric(METRIC, v, now + epoch, epoch), Metric("valid/f1", v, now + epoch, epoch),
                        Metric("train/loss", 1.0 / epoch, now + epoch, epoch)]
        self.client.log_batch(rid, metrics=metrics,
                              params=[Param(k, str(v)) for k, v in resolved.items()])
        self.client.set_terminated(rid, status)
        return rid


def score(lr: float, peak: float) -> float:
    """The final metric: depends on lr only (a parabola in log10(lr) peaking at ``peak``)."""
    return 1.0 - (math.log10(lr) - peak) ** 2 / 10.0


def write_sweep(store: Store, name: str, peak: float, spec: dict | None = None) -> dict:
    """12 finished trials on a log-grid of lr (eps spread so that it carries no signal),
    one FAILED trial with a great-looking metric and one early-stopped trial."""
    spec = spec or spec_dict(name)
    exp = store.experiment(name)
    parent = store.parent(exp, spec)
    ids = {}
    order = [(7 * i) % N_GRID for i in range(N_GRID)]  # start-time order != lr order
    for k in order:
        lr = 10 ** (-4 + 2 * k / (N_GRID - 1))
        eps = 0.1 + 9.9 * ((5 * k) % N_GRID) / (N_GRID - 1)
        reg = "attention_vat" if k % 2 else "none"
        final = score(lr, peak)
        ids[k] = store.child(exp, parent, {"lr": lr, "eps": eps, "regularizer": reg},
                             [final - 0.2, final - 0.05, final])
    ids["failed"] = store.child(exp, parent, {"lr": 1e-3}, [5.0], status="FAILED",
                                tags={"failure_reason": "RuntimeError: CUDA out of memory"})
    ids["early"] = store.child(exp, parent, {"lr": 1.2e-4, "eps": 3.0}, [score(1.2e-4, peak) - 0.3],
                               tags={"early_stopped": "true", "stopped_at_iteration": "1"})
    return {"exp": exp, "parent": parent, "ids": ids}


def _sqlite_no_fsync(dbapi_conn, _record) -> None:
    # Test speed only: creating MLflow's schema is ~50 fsync'ed migrations (5-10 s on a busy disk).
    if type(dbapi_conn).__module__.startswith("sqlite3"):
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA synchronous=OFF")
        cur.close()


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    event.listen(Engine, "connect", _sqlite_no_fsync)
    try:
        s = Store(tmp_path_factory.mktemp("mlruns"))
        s.sweeps = {
            "centre": write_sweep(s, "centre", peak=-3.1),  # best lr = 10**-3.09: mid-range
            "edge": write_sweep(s, "edge", peak=-2.0),  # best lr = 1e-2 = high
        }
        yield s
    finally:
        event.remove(Engine, "connect", _sqlite_no_fsync)


def _table_rows(markdown: str) -> list[str]:
    lines = markdown.splitlines()
    start = next(i for i, ln in enumerate(lines) if ln.startswith("| rank |"))
    rows = []
    for ln in lines[start + 2:]:
        if not ln.startswith("|"):
            return rows
        rows.append(ln)
    return rows


def test_report_files_table_and_importances(store, tmp_path):
    sweep = store.sweeps["centre"]
    res = make_report(store.uri, "centre", tmp_path / "rep")

    names = {f.name for f in res.files}
    assert {"optimization_history.png", "parallel_coordinates.png", "param_importances.png",
            "report.md", "report.html"} <= names
    for f in res.files:
        assert f.is_file() and f.stat().st_size > 0, f
        if f.suffix == ".png":
            assert f.read_bytes()[:8] == PNG_MAGIC
    page = (tmp_path / "rep" / "report.html").read_text()
    assert page.count("data:image/png;base64,") == 3
    assert (tmp_path / "rep" / "report.md").read_text() == res.markdown

    # Counts: 12 normal + 1 early-stopped finished, 1 failed; the failed run's 5.0 is ignored.
    assert (res.n_finished, res.n_failed, res.n_early_stopped) == (13, 1, 1)
    best_k = min(range(N_GRID), key=lambda k: abs(-4 + 2 * k / (N_GRID - 1) + 3.1))
    best_id = sweep["ids"][best_k]
    assert res.best.run_id == best_id
    rows = _table_rows(res.markdown)
    assert len(rows) == 10
    assert f"`{best_id}`" in rows[0] and rows[0].startswith("| 1 |")
    assert sweep["ids"]["failed"] not in res.markdown

    # Conditional-free spec here: eps is a plain uniform parameter; lr drives the metric.
    assert set(res.importances) == {"lr", "eps", "regularizer"}
    assert res.importances["lr"] > res.importances["eps"]
    assert abs(sum(res.importances.values()) - 1.0) < 1e-6
    assert "| lr |" in res.markdown

    assert not [w for w in res.warnings if "boundary" in w]

    # Logged to the (only) parent run under report/.
    assert res.logged_to == sweep["parent"]
    logged = {f.path for f in store.client.list_artifacts(sweep["parent"], "report")}
    assert {"report/report.md", "report/report.html", "report/optimization_history.png"} <= logged

    # The paper table (issue 12, item 11): one row per configuration (no seeds here: n = 1 each,
    # early-stopped run left out), the sweep's metric as column, best in bold; logged too.
    assert {"report/paper_table.md", "report/paper_table.tex"} <= logged
    paper = (tmp_path / "rep" / "paper_table.md").read_text()
    assert "## Paper table" in res.markdown and paper in res.markdown
    body = [line for line in paper.splitlines() if line.startswith("| ") and "configuration" not in line]
    assert len(body) == 12 and sum("**" in line for line in body) == 1
    assert "\\begin{tabular}" in (tmp_path / "rep" / "paper_table.tex").read_text()


def test_boundary_warning_when_best_on_upper_edge(store, tmp_path):
    sweep = store.sweeps["edge"]
    res = make_report(store.uri, sweep["exp"], tmp_path / "rep", parent_run_id=sweep["parent"])
    assert res.best.run_id == sweep["ids"][N_GRID - 1]
    assert res.best.params["lr"] == pytest.approx(1e-2)
    boundary = [w for w in res.warnings if "boundary" in w]
    assert boundary == ["best lr=0.01 sits on the upper boundary of [0.0001, 0.01]: "
                        "consider widening the search space"]
    assert boundary[0] in res.markdown
    assert res.importances["lr"] > res.importances["eps"]


def test_conditional_params_and_launch_selection(store, tmp_path):
    # eps only active with the VAT regularizer; the trainable still logs a value for it.
    spec = spec_dict("cond", eps={"type": "uniform", "low": 0.1, "high": 10.0,
                                  "when": {"regularizer": ["attention_vat"]}})
    exp = store.experiment("cond")
    first = store.parent(exp, spec)
    old = {reg: store.child(exp, first, {"lr": 1e-3, "eps": 2.0, "regularizer": reg}, [value])
           for reg, value in (("none", 0.999), ("attention_vat", 0.8))}
    old["x"] = store.child(exp, first, {"lr": 3e-3, "eps": 5.0, "regularizer": "attention_vat"}, [0.7])
    second = store.parent(exp, spec)
    extra = [store.child(exp, second, {"lr": lr, "eps": 0.5, "regularizer": "none"},
                         [score(lr, -3.0)]) for lr in (2e-4, 5e-4, 9e-3)]

    res = make_report(store.uri, "cond", tmp_path / "all")
    assert (res.n_finished, res.n_analysed) == (6, 6)
    assert res.parent_run_ids == (second, first)
    assert res.logged_to == second  # the latest launch
    by_id = {r.run_id: r for r in res.trials}
    assert by_id[old["none"]].params == {"regularizer": "none", "lr": pytest.approx(1e-3)}
    assert by_id[old["attention_vat"]].params == {
        "regularizer": "attention_vat", "lr": pytest.approx(1e-3), "eps": pytest.approx(2.0)}
    assert set(res.importances) == {"regularizer", "lr", "eps"}
    best_row = _table_rows(res.markdown)[0]
    assert f"`{old['none']}`" in best_row and "–" in best_row  # eps inactive in the best trial

    only = make_report(store.uri, "cond", tmp_path / "second", parent_run_id=second)
    assert (only.n_finished, only.n_failed, only.n_early_stopped) == (3, 0, 0)
    assert {r.run_id for r in only.trials} == set(extra)
    assert only.logged_to == second
    assert [f.path for f in store.client.list_artifacts(first)] == ["spec.yaml"]


def test_importances_unavailable_is_reported(store, tmp_path):
    spec = spec_dict("single")
    spec["search_space"] = {"lr": spec["search_space"]["lr"]}
    exp = store.experiment("single")
    parent = store.parent(exp, spec)
    for lr in (1e-4, 1e-3):
        store.child(exp, parent, {"lr": lr}, [score(lr, -4.5)])
    res = make_report(store.uri, "single", tmp_path / "rep", log_artifacts=False)
    assert res.importances == {}
    assert "only one search parameter" in res.importance_note
    assert any("importances" in w for w in res.warnings)
    assert "Parameter importances not computed" in res.markdown
    assert (tmp_path / "rep" / "param_importances.png").stat().st_size > 0
    assert res.logged_to is None
    # Best lr=1e-4 is on the lower edge.
    assert any("lower boundary" in w for w in res.warnings)


def test_errors(store, tmp_path):
    with pytest.raises(ValueError, match="nope") as err:
        make_report(store.uri, "nope", tmp_path)
    assert "'centre'" in str(err.value) and "'edge'" in str(err.value)

    exp = store.experiment("allfailed")
    parent = store.parent(exp, spec_dict("allfailed"))
    store.child(exp, parent, {"lr": 1e-3}, [0.5], status="FAILED")
    with pytest.raises(ValueError, match="no finished trial"):
        make_report(store.uri, "allfailed", tmp_path)
    with pytest.raises(ValueError, match="not a sweep launch"):
        make_report(store.uri, "centre", tmp_path, parent_run_id=store.sweeps["edge"]["parent"])


def test_report_cli_prints_the_classic_page_of_the_parent_run_it_logged_to(store, tmp_path, capsys):
    from sweeps import cli

    sweep = store.sweeps["edge"]
    assert cli.main(["report", "edge", "--out", str(tmp_path / "rep"), "--tracking-uri", store.uri]) == 0
    out = capsys.readouterr().out
    assert (f"logged to the sweep's parent run under report/: http://127.0.0.1:5000/#/experiments/{sweep['exp']}"
            f"/runs/{sweep['parent']}?workflowType=machine_learning") in out
