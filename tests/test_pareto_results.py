"""``xaisweep best`` over several objectives (the Pareto set, seed-aware) and over any logged metric
(``--metric``, e.g. ``eval/...``), on a hand-written MLflow store (no Ray)."""
from __future__ import annotations

import json

import pytest
import yaml

pytest.importorskip("mlflow")

from mlflow.entities import Metric  # noqa: E402

from sweeps import cli  # noqa: E402
from sweeps.results.best import best_configs, export_pareto, pareto_set, resolve_objectives  # noqa: E402
from test_report import Store  # noqa: E402

F1, COST = "best/valid_f1", "train/step_time"
EVAL = "eval/faithfulness/faith/deletion/ig"
SPEC = {
    "name": "mo", "trainable": "classifier", "config": {"epochs": 3, "dataset": "synthetic"},
    "search_space": {
        "regularizer": {"type": "choice", "values": ["none", "attention_vat", "word_vat", "attention_ivat"]},
        "eps": {"type": "uniform", "low": 0.1, "high": 10.0, "when": {"regularizer": ["attention_vat", "word_vat",
                                                                                       "attention_ivat"]}},
    },
    "metric": [F1, COST], "mode": ["max", "min"], "num_samples": 4, "repeats": 2,
}
# per configuration, per seed: (f1, step time, eval deletion)
TABLE = {
    ("none", 1.0): [(0.80, 1.0, 0.5), (0.70, 1.2, 0.4)],             # mean (0.75, 1.1): cheap, the cheapest
    ("attention_vat", 2.0): [(0.90, 3.0, 0.2), (0.84, 2.6, 0.3)],    # mean (0.87, 2.8): best F1
    ("word_vat", 2.0): [(0.74, 2.0, 0.1), (0.74, 2.2, 0.1)],         # mean (0.74, 2.1): dominated by none
    # one lucky seed would make it non-dominated per run (0.95 F1), but its mean (0.70, 3.0) is dominated
    ("attention_ivat", 5.0): [(0.95, 3.5, 0.9), (0.45, 2.5, 0.9)],
}


def write_mo_sweep(s: Store, name: str = "mo") -> dict:
    exp = s.experiment(name)
    run = s.client.create_run(exp, start_time=s.tick(), run_name=f"{name}-launch", tags={
        "xaisweep.role": "sweep", "sweep": name, "trainable": "classifier", "metric": F1, "mode": "max",
        "objectives": json.dumps([[F1, "max"], [COST, "min"]])})
    parent = run.info.run_id
    s.client.log_text(parent, yaml.safe_dump({**SPEC, "name": name}, sort_keys=False), "spec.yaml")
    s.client.set_terminated(parent, "FINISHED")
    ids = {}
    for (reg, eps), seeds in TABLE.items():
        for seed, (f1, cost, deletion) in enumerate(seeds):
            rid = s.child(exp, parent, {"regularizer": reg, "eps": eps, "seed": seed}, [f1 - 0.1, f1])
            s.client.log_batch(rid, metrics=[Metric(COST, cost, s.clock, 2), Metric(EVAL, deletion, s.clock, 0)])
            s.client.log_text(rid, yaml.safe_dump({"trainable": "classifier",
                                                   "config": {"regularizer": reg, "eps": eps, "seed": seed}}),
                              "config.yaml")
            ids[(reg, seed)] = rid
    return {"exp": exp, "parent": parent, "ids": ids}


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("mo"))
    return s, write_mo_sweep(s)


def test_pareto_set_is_over_the_means_over_seeds(store):
    s, _ = store
    found = pareto_set(s.uri, "mo")
    assert found.objectives == ((F1, "max"), (COST, "min"))
    front = [r.params["regularizer"] for r in found.front]
    assert front == ["attention_vat", "none"]  # best first by the first objective
    vat = found.front[0]
    assert vat.n == 2 and vat.objective_values == pytest.approx((0.87, 2.8))
    assert vat.sds[0] == pytest.approx(0.0424264, abs=1e-6)
    assert sorted(r.params["regularizer"] for r in found.dominated) == ["attention_ivat", "word_vat"]
    # per run, the lucky seed (0.95 F1) is non-dominated
    per_run = pareto_set(s.uri, "mo", per_run=True)
    assert (per_run.front[0].params["regularizer"], per_run.front[0].value) == ("attention_ivat", 0.95)


def test_best_prints_the_pareto_set_with_mean_sd_and_n(store, capsys):
    s, _ = store
    assert cli.main(["best", "mo", "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert f"Pareto set over {F1} (max), {COST} (min): 2 non-dominated of 4 configurations" in out, out
    lines = out.splitlines()
    assert lines[1].split()[:4] == ["#", "run_id", F1, COST]
    first = lines[2].split()
    assert first[2:8] == ["0.8700", "±", "0.0424", "2.8000", "±", "0.2828"] and first[8] == "2", out
    assert "attention_vat" in lines[2] and "none" in lines[3] and "word_vat" not in out


def test_a_single_row_shows_the_search_parameters_not_every_config_key(store, capsys):
    """A Pareto set of one configuration (or ``--top 1``) has no parameter that varies between its rows: the
    columns are the search parameters, not every key of the base config the runs logged (epochs, dataset, lr)."""
    s, _ = store
    assert cli.main(["best", "mo", "--top", "1", "--tracking-uri", s.uri]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["#", "run_id", F1, COST, "n", "eps", "regularizer"], header
    assert cli.main(["best", "mo", "--metric", F1, "--top", "1", "--tracking-uri", s.uri]) == 0
    header = capsys.readouterr().out.splitlines()[1].split()
    assert header == ["rank", "run_id", F1, "n", "eps", "regularizer"], header


def test_members_of_one_method_still_name_it(tmp_path, capsys):
    """Two Pareto members that share the method (word_vat at two eps): the regularizer column stays."""
    s = Store(tmp_path / "store")
    spec = {**SPEC, "name": "same-method"}
    exp = s.experiment("same-method")
    run = s.client.create_run(exp, start_time=s.tick(), run_name="launch", tags={
        "xaisweep.role": "sweep", "sweep": "same-method", "trainable": "classifier", "metric": F1, "mode": "max",
        "objectives": json.dumps([[F1, "max"], [COST, "min"]])})
    s.client.log_text(run.info.run_id, yaml.safe_dump(spec, sort_keys=False), "spec.yaml")
    s.client.set_terminated(run.info.run_id, "FINISHED")
    for eps, (f1, cost) in ((1.0, (0.9, 3.0)), (3.0, (0.8, 1.0))):  # neither dominates the other
        rid = s.child(exp, run.info.run_id, {"regularizer": "word_vat", "eps": eps, "seed": 0}, [f1 - 0.1, f1])
        s.client.log_batch(rid, metrics=[Metric(COST, cost, s.clock, 2)])
    assert cli.main(["best", "same-method", "--tracking-uri", s.uri]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["#", "run_id", F1, COST, "eps", "regularizer"], lines
    assert lines[2].split()[-2:] == ["1", "word_vat"] and lines[3].split()[-2:] == ["3", "word_vat"], lines


def test_a_configuration_drawn_twice_counts_each_seed_once(tmp_path):
    """TPE draws vanilla (no active parameter) again and again; with repeats, each draw runs seeds 0 and 1.
    `best`'s Pareto set and `report`'s front average the runs of a seed first: n = 2 seeds, the sd over the
    2 seed means (not over 4 runs, which would also count copies in a deterministic run)."""
    import statistics

    from sweeps.results.report import make_report

    s = Store(tmp_path / "store")
    exp = s.experiment("twice")
    run = s.client.create_run(exp, start_time=s.tick(), run_name="launch", tags={
        "xaisweep.role": "sweep", "sweep": "twice", "trainable": "classifier", "metric": F1, "mode": "max",
        "objectives": json.dumps([[F1, "max"], [COST, "min"]])})
    s.client.log_text(run.info.run_id, yaml.safe_dump({**SPEC, "name": "twice"}, sort_keys=False), "spec.yaml")
    s.client.set_terminated(run.info.run_id, "FINISHED")
    draws = [("none", 0, 0.80, 1.0), ("none", 1, 0.70, 1.2), ("attention_vat", 0, 0.90, 3.0),
             ("attention_vat", 1, 0.84, 2.6), ("none", 0, 0.90, 1.0), ("none", 1, 0.70, 1.2)]  # none drawn twice
    for reg, seed, f1, cost in draws:
        rid = s.child(exp, run.info.run_id, {"regularizer": reg, "eps": 2.0 if reg != "none" else 1.0,
                                              "seed": seed}, [f1 - 0.1, f1])
        s.client.log_batch(rid, metrics=[Metric(COST, cost, s.clock, 2)])
    found = pareto_set(s.uri, "twice")
    vanilla = next(r for r in found.front if r.params["regularizer"] == "none")
    seed_f1 = [0.85, 0.70]  # seed 0: mean of 0.80 and 0.90
    assert vanilla.n == 2 and len(vanilla.runs) == 4
    assert vanilla.objective_values == pytest.approx((0.775, 1.1))
    assert vanilla.sds[0] == pytest.approx(statistics.stdev(seed_f1)) and vanilla.sds[1] == pytest.approx(
        statistics.stdev([1.0, 1.2]))
    point = next(p for p in make_report(s.uri, "twice", tmp_path / "rep", log_artifacts=False).pareto
                 if p.params["regularizer"] == "none")
    assert point.n == 2 and len(point.run_ids) == 4
    assert point.means == pytest.approx((0.775, 1.1)) and point.sds[0] == pytest.approx(statistics.stdev(seed_f1))


def test_export_writes_one_reproducible_file_per_member(store, tmp_path, capsys):
    s, ids = store
    written = export_pareto(s.uri, "mo", tmp_path / "best.yaml")
    assert [p.name for p, _ in written] == ["best-1.yaml", "best-2.yaml"]
    doc = yaml.safe_load((tmp_path / "best-1.yaml").read_text())
    assert doc["trainable"] == "classifier" and doc["config"]["regularizer"] == "attention_vat"
    assert (doc["metric"], doc["mode"]) == (F1, "max") and doc["value"] == pytest.approx(0.87) and doc["n"] == 2
    assert doc["pareto"]["metrics"] == [F1, COST] and doc["pareto"]["modes"] == ["max", "min"]
    assert doc["pareto"]["means"] == pytest.approx([0.87, 2.8]) and (doc["pareto"]["member"], doc["pareto"]["of"]) == (1, 2)
    assert doc["source_run_id"] == ids["ids"][("attention_vat", 0)]  # the best run of the configuration
    assert cli.main(["best", "mo", "--export", str(tmp_path / "cli.yaml"), "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert "cli-1.yaml" in out and "cli-2.yaml" in out and "xaisweep reproduce" in out


def test_rank_by_any_logged_metric_and_pareto_over_chosen_columns(store, capsys):
    s, _ = store
    metric, mode, rows = best_configs(s.uri, "mo", objectives=resolve_objectives((), [EVAL], []))
    assert (metric, mode) == (EVAL, "min")  # *deletion*: lower is better, as in the paper table
    assert rows[0].params["regularizer"] == "word_vat" and rows[0].value == pytest.approx(0.1)
    assert cli.main(["best", "mo", "--metric", EVAL, "--mode", "max", "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert f"{EVAL} (max)" in out and out.splitlines()[2].split()[2] == "0.9000", out
    # a Pareto set over an eval column and the sweep's F1
    assert cli.main(["best", "mo", "--metric", F1, "--metric", EVAL, "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert f"Pareto set over {F1} (max), {EVAL} (min)" in out
    # one objective of a multi-objective sweep: a plain ranking by it
    assert cli.main(["best", "mo", "--metric", COST, "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert f"{COST} (min)" in out and "none" in out.splitlines()[2]


@pytest.mark.parametrize("argv, message", [
    (["--metric", F1, "--mode", "max", "--mode", "min"], "2 --mode for 1 --metric"),
    (["--mode", "max"], "--mode needs a --metric"),
    (["--metric", F1, "--metric", F1], f"--metric {F1} given twice"),
    (["--metric", "valid/never_logged"], "no finished trial with metric 'valid/never_logged'"),
])
def test_bad_metric_flags_are_one_clear_error(store, capsys, argv, message):
    s, _ = store
    assert cli.main(["best", "mo", *argv, "--tracking-uri", s.uri]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err, err


def test_report_draws_the_pareto_front_and_the_hypervolume_per_trial(store, tmp_path):
    import csv

    from sweeps.results.pareto import hypervolume, nadir
    from sweeps.results.report import make_report

    s, _ = store
    result = make_report(s.uri, "mo", tmp_path / "rep", log_artifacts=False)
    names = {f.name for f in result.files}
    assert {"pareto_front.png", "hypervolume.png", "trials.csv", "report.md"} <= names
    for png in ("pareto_front.png", "hypervolume.png"):
        assert (tmp_path / "rep" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert result.objectives == ((F1, "max"), (COST, "min"))
    front = [p for p in result.pareto if p.pareto]
    assert [p.params["regularizer"] for p in front] == ["attention_vat", "none"]
    assert front[0].means == pytest.approx((0.87, 2.8)) and front[0].n == 2
    md = result.markdown
    assert "## Pareto set" in md and "2 of 4 configurations are non-dominated" in md
    assert "| 1 | regularizer=attention_vat, eps=2 | 0.87 ± 0.042 | 2.8 ± 0.28 | 2 |" in md, md
    # the hypervolume column: every trial, never decreasing in completion order, the last one that of all runs
    with open(tmp_path / "rep" / "trials.csv", newline="") as f:
        table = list(csv.DictReader(f))
    assert len(table) == 8 and {F1, COST, "hypervolume"} <= set(table[0])
    runs = [(float(r[F1]), float(r[COST])) for r in table]
    hist = [h for _, h in result.hypervolume]
    assert all(b >= a for a, b in zip(hist, hist[1:]))
    assert hist[-1] == pytest.approx(hypervolume(runs, ["max", "min"], nadir(runs, ["max", "min"])))
    # by hand: nadir (0.45, 3.5); the front's staircase 0.45 x 0.5 + 0.39 x 0.4 + 0.35 x 1.6 (0.95/3.5 spans 0)
    assert hist[-1] == pytest.approx(0.225 + 0.156 + 0.56)
    assert f"{hist[-1]:.6g}" in md
    page = (tmp_path / "rep" / "report.html").read_text()
    assert "<h2>Pareto set</h2>" in page and "regularizer=attention_vat, eps=2" in page
    # the paper table: both objectives and the eval/* column every run logged
    paper = (tmp_path / "rep" / "paper_table.md").read_text()
    header = next(line for line in paper.splitlines() if line.startswith("|"))
    assert F1 in header and COST in header and EVAL in header, header


def test_figure_titles_of_a_long_sweep_name_stay_inside_the_figure(tmp_path, monkeypatch):
    """The one-panel Pareto front and the hypervolume plot of a sweep named like the benchmark's: every title
    line lies within the figure (a one-line title ran off both edges)."""
    import sweeps.results.pareto_report as pareto_report
    from sweeps.results.report import make_report

    checked = []
    real_save = pareto_report.save_figure

    def save_and_check(fig, path):
        out = real_save(fig, path)
        renderer = fig.canvas.get_renderer()
        width = fig.bbox.width
        for text in [*fig.texts, *(ax.title for ax in fig.axes)]:
            if text.get_text():
                box = text.get_window_extent(renderer)
                assert box.x0 >= -1 and box.x1 <= width + 1, (path.name, text.get_text(), box, width)
                checked.append(path.name)
        return out

    monkeypatch.setattr(pareto_report, "save_figure", save_and_check)
    s = Store(tmp_path / "store")
    name = "attention-vat-pareto-sst-bench-compare-full-resumed"
    write_mo_sweep(s, name)
    make_report(s.uri, name, tmp_path / "rep", log_artifacts=False)
    assert {"pareto_front.png", "hypervolume.png"} <= set(checked)


def test_report_by_another_metric(store, tmp_path):
    from sweeps.results.report import make_report

    s, _ = store
    result = make_report(s.uri, "mo", tmp_path / "one", log_artifacts=False, objectives=[(EVAL, "min")])
    assert result.objectives == ((EVAL, "min"),) and result.best.value == pytest.approx(0.1)
    assert not any(f.name == "pareto_front.png" for f in result.files) and result.pareto == ()
    assert "- objective: " + EVAL + " (min)" in result.markdown


def test_report_cli_metric_flags(store, tmp_path, capsys):
    s, _ = store
    rc = cli.main(["report", "mo", "--out", str(tmp_path / "r"), "--metric", F1, "--metric", EVAL,
                   "--tracking-uri", s.uri])
    out = capsys.readouterr().out
    assert rc == 0 and f"objectives: {F1} (max), {EVAL} (min)" in out and (tmp_path / "r" / "pareto_front.png").exists()
    rc = cli.main(["report", "mo", "--out", str(tmp_path / "r"), "--mode", "max", "--tracking-uri", s.uri])
    assert rc == 2 and "--mode needs a --metric" in capsys.readouterr().err
