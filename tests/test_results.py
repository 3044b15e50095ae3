"""``xaisweep best`` / ``reproduce`` on a hand-written MLflow store (no Ray): seed-aware ranking,
inactive parameters, run-id prefixes, bad input (items 7 and 11 of issue 12)."""
from __future__ import annotations

import pytest
import yaml

pytest.importorskip("mlflow")

from sweeps import cli  # noqa: E402
from sweeps.results.best import best_configs, best_runs, export_best, resolve_run_id  # noqa: E402
from test_report import Store  # noqa: E402

SPEC = {
    "name": "seeds", "trainable": "classifier", "config": {"epochs": 3, "dataset": "synthetic"},
    "search_space": {
        "regularizer": {"type": "choice", "values": ["none", "attention_vat"]},
        "eps": {"type": "uniform", "low": 0.1, "high": 10.0, "when": {"regularizer": ["attention_vat"]}},
    },
    "metric": "best/valid_f1", "mode": "max", "num_samples": 2, "repeats": 3,
}
STEADY = [0.80, 0.90, 0.70]  # regularizer none: mean 0.80, sd 0.10
LUCKY = [0.95, 0.50, 0.55]  # attention_vat, eps 2: one lucky seed, mean 0.6667


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    s = Store(tmp_path_factory.mktemp("results"))
    exp = s.experiment("seeds")
    parent = s.parent(exp, SPEC)
    ids = {}
    for seed, v in enumerate(STEADY):
        ids[("none", seed)] = s.child(exp, parent, {"regularizer": "none", "eps": 1.0, "seed": seed}, [v - 0.1, v])
    for seed, v in enumerate(LUCKY):
        ids[("vat", seed)] = s.child(exp, parent, {"regularizer": "attention_vat", "eps": 2.0, "seed": seed},
                                     [v - 0.1, v])
    return s, ids


def test_per_run_ranking_puts_the_lucky_seed_first(store):
    s, ids = store
    _, _, rows = best_runs(s.uri, "seeds", top=2)
    assert rows[0].run_id == ids[("vat", 0)] and rows[0].value == pytest.approx(0.95)


def test_configs_are_ranked_by_the_mean_over_seeds(store):
    s, ids = store
    _, _, rows = best_configs(s.uri, "seeds")
    assert [r.n for r in rows] == [3, 3]
    assert rows[0].value == pytest.approx(0.80) and rows[0].sd == pytest.approx(0.10)
    assert rows[0].params["regularizer"] == "none" and "eps" in rows[0].inactive
    assert rows[1].value == pytest.approx(sum(LUCKY) / 3)
    assert rows[0].run_id == ids[("none", 1)]  # the configuration's best run


def test_best_cli_shows_mean_sd_n_and_dashes_inactive_params(store, capsys):
    s, _ = store
    assert cli.main(["best", "seeds", "--tracking-uri", s.uri]) == 0
    out = capsys.readouterr().out
    assert "configurations by the mean over seeds" in out
    first = out.splitlines()[2].split()
    assert first[2:5] == ["0.8000", "±", "0.1000"] and first[5] == "3" and "–" in first, out
    assert cli.main(["best", "seeds", "--per-run", "--top", "1", "--tracking-uri", s.uri]) == 0
    assert "0.9500" in capsys.readouterr().out


def test_export_writes_the_mean_and_its_seeds(store, tmp_path):
    s, ids = store
    s.client.log_text(ids[("none", 1)], yaml.safe_dump({"trainable": "classifier", "config": {"seed": 1}}),
                      "config.yaml")
    doc = export_best(s.uri, "seeds", tmp_path / "best.yaml")
    assert doc["value"] == pytest.approx(0.80) and doc["n"] == 3 and doc["sd"] == pytest.approx(0.10)
    assert sorted(doc["seeds"]) == ["0", "1", "2"] and doc["source_run_id"] == ids[("none", 1)]
    assert yaml.safe_load((tmp_path / "best.yaml").read_text())["n"] == 3


@pytest.mark.parametrize("top", ["0", "-2", "x"])
def test_best_top_must_be_positive(store, capsys, top):
    s, _ = store
    with pytest.raises(SystemExit) as exit_:
        cli.main(["best", "seeds", "--top", top, "--tracking-uri", s.uri])
    assert exit_.value.code == 2 and "expected an integer >= 1" in capsys.readouterr().err


def test_run_id_prefixes_resolve_and_missing_files_are_named(store, capsys, tmp_path):
    s, ids = store
    full = ids[("none", 0)]
    assert resolve_run_id(s.client, full[:12]) == full
    with pytest.raises(ValueError, match="no MLflow run 'zzzz'"):
        resolve_run_id(s.client, "zzzz")
    rc = cli.main(["reproduce", str(tmp_path / "nope" / "best.yaml"), "--tracking-uri", s.uri])
    err = capsys.readouterr().err
    assert rc == 2 and "no such file" in err and "no MLflow run" not in err


def test_reproduce_seeds_join_their_configuration(tmp_path):
    """Item 11: the seeds of `xaisweep reproduce --seeds N` count in the configuration's mean;
    a seed the sweep already ran counts once (the trial's value)."""
    from mlflow.entities import Metric, Param

    s = Store(tmp_path)
    exp = s.experiment("seeds")
    parent = s.parent(exp, SPEC)
    for seed, v in enumerate(STEADY):
        s.child(exp, parent, {"regularizer": "none", "eps": 1.0, "seed": seed}, [v])
    lucky = s.child(exp, parent, {"regularizer": "attention_vat", "eps": 2.0, "seed": 0}, [0.95])
    repro = s.client.create_run(exp, tags={"xaisweep.role": "reproduce", "reproduces": lucky})
    rid = repro.info.run_id
    # seeds 0, 1, 2: seed 0 is the sweep's own trial (0.95 stays), 1 and 2 are new
    s.client.log_batch(rid, metrics=[Metric("best/valid_f1", v, 0, i) for i, v in enumerate([0.90, 0.50, 0.55])],
                       params=[Param(k, str(v)) for k, v in {"regularizer": "attention_vat", "eps": 2.0,
                                                              "seed": 0}.items()])
    s.client.set_terminated(rid, "FINISHED")
    _, _, rows = best_configs(s.uri, "seeds")
    vat = next(r for r in rows if r.params["regularizer"] == "attention_vat")
    assert vat.n == 3 and vat.value == pytest.approx((0.95 + 0.50 + 0.55) / 3)
    assert [r.value for r in rows] == sorted((r.value for r in rows), reverse=True)
    assert rows[0].params["regularizer"] == "none"  # 0.80 beats the lucky config's 0.667 mean


def test_one_seed_reproduction_prints_no_spread():
    from sweeps.results.best import Reproduction

    one = Reproduction(["m"], {"m": 0.5}, [{"m": 0.5}], None).table()
    assert "±" not in one and "+-" not in one
    three = Reproduction(["m"], {"m": 0.5}, [{"m": 0.4}, {"m": 0.5}, {"m": 0.6}], None).table()
    assert "0.500000 ± 0.100000" in three and "n=3" in three
