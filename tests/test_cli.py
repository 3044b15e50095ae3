"""``xaisweep`` CLI: bad input is one clear message and exit status 2, before Ray starts."""
from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest
import yaml

from sweeps import cli

ray = pytest.importorskip("ray")

TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": 2, "embedding_dim": 8, "hidden_dim": 8,
        "attention_dim": 8}


@pytest.fixture(autouse=True)
def no_ray(monkeypatch, tmp_path):
    """Fail the test if anything tries to start Ray; keep every store under tmp_path."""
    def boom(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", boom)
    monkeypatch.setenv("XAISWEEP_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield
    assert not ray.is_initialized()


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """One SQLite MLflow store for the module (creating one costs seconds)."""
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path_factory.mktemp('store') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def write(path: Path, **overrides) -> Path:
    doc = {"name": "cli", "trainable": "classifier", "config": dict(TINY), "metric": "best/valid_f1", "mode": "max",
           "num_samples": 2, "search_space": {"lr": {"type": "loguniform", "low": 1.0e-3, "high": 1.0e-2}}}
    doc.update(overrides)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_unreachable_tracking_uri(tmp_path, capsys):
    uri = f"http://127.0.0.1:{closed_port()}"
    rc, out, err = run(capsys, "run", str(write(tmp_path / "s.yaml")), "--tracking-uri", uri)
    assert rc == 2 and out == ""
    assert err.startswith("error: the sweep cannot start:")
    assert f"tracking URI {uri} is unreachable" in err and "Traceback" not in err


def test_unreachable_tracking_uri_from_the_spec(tmp_path, capsys):
    uri = f"http://127.0.0.1:{closed_port()}"
    rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml", tracking_uri=uri)))
    assert rc == 2 and f"tracking URI {uri} is unreachable" in err


def test_unwritable_storage(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    storage = tmp_path / "file" / "ray"
    rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml")), "--storage", str(storage))
    assert rc == 2 and f"storage path {storage}" in err and "not writable" in err


def test_bad_trial_config_lists_every_problem(tmp_path, capsys):
    spec = write(tmp_path / "s.yaml", config={**TINY, "dropuot": 0.1, "dropout": 1.5},
                 search_space={"regularizer": {"type": "choice", "values": ["none", "attention_vta"]}},
                 metric="valid/nonsense")
    rc, _, err = run(capsys, "run", str(spec))
    assert rc == 2
    for part in ("metric: 'valid/nonsense' is not reported", "dropuot: unknown key (did you mean 'dropout'?)",
                 "dropout: must be in [0, 1), got 1.5", "regularizer: unknown 'attention_vta'"):
        assert part in err, err


def test_bad_spec_lists_spec_and_config_problems(tmp_path, capsys):
    spec = write(tmp_path / "s.yaml", num_sample=4, max_concurrent=0, config={**TINY, "dropout": -1},
                 search_space={"regularizer": {"type": "choice", "values": ["none", "bogus"]}},
                 metric="valid/nonsense")
    rc, out, err = run(capsys, "run", str(spec))
    assert rc == 2 and out == ""
    for part in ("num_sample: unknown key (did you mean 'num_samples'?)", "max_concurrent: must be an integer >= 1",
                 "metric: 'valid/nonsense'", "dropout: must be in [0, 1), got -1", "regularizer: unknown 'bogus'"):
        assert part in err, err
    listed = [line for line in err.splitlines() if line.startswith("  ")]
    assert f"({len(listed)} problems)" in err, err  # the header counts the config problems too


def test_bad_override_and_missing_file(tmp_path, capsys):
    rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml")), "--name", "no spaces allowed")
    assert rc == 2 and "name: must match" in err
    rc, _, err = run(capsys, "run", str(tmp_path / "missing.yaml"))
    assert rc == 2 and "cannot read sweep spec" in err and "Traceback" not in err
    rc, _, err = run(capsys, "run", str(tmp_path))  # a directory
    assert rc == 2 and "cannot read sweep spec" in err


def test_resume_with_another_tracking_store_stops_before_ray(tmp_path, capsys, store):
    storage = tmp_path / "ray"
    (storage / "cli").mkdir(parents=True)
    (storage / "cli" / "xaisweep_launch.json").write_text(json.dumps(
        {"experiment_id": "1", "parent_run_id": "0123456789abcdef0123456789abcdef",
         "tracking_uri": "sqlite:////somewhere/else/mlflow.db"}))
    rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml")), "--resume", "--storage", str(storage),
                     "--tracking-uri", store)
    assert rc == 2 and "--resume" in err and "sqlite:////somewhere/else/mlflow.db" in err


def test_best_and_reproduce_report_bad_input(tmp_path, capsys, store):
    uri = store
    rc, _, err = run(capsys, "best", "nope", "--tracking-uri", uri)
    assert rc == 2 and "no MLflow experiment 'nope'" in err
    rc, _, err = run(capsys, "reproduce", "0123456789abcdef", "--tracking-uri", uri)
    assert rc == 2 and "no MLflow run '0123456789abcdef'" in err
    bad = tmp_path / "best.yaml"
    bad.write_text("trainable: classifier\n")
    rc, _, err = run(capsys, "reproduce", str(bad), "--tracking-uri", uri)
    assert rc == 2 and "missing keys ['config', 'metric']" in err
    rc, _, err = run(capsys, "reproduce", "x", "--seeds", "0", "--tracking-uri", uri)
    assert rc == 2 and "--seeds must be >= 1" in err


def test_reproduce_yaml_without_its_source_run_still_runs(tmp_path, capsys, store):
    doc = {"trainable": "classifier", "config": {**TINY, "epochs": 1, "heatmaps": 0}, "metric": "best/valid_f1",
           "mode": "max", "value": 0.5, "source_run_id": "0123456789abcdef", "experiment": "gone",
           "tracking_uri": store}
    path = tmp_path / "best.yaml"
    path.write_text(yaml.safe_dump(doc))
    rc, out, _ = run(capsys, "reproduce", str(path))
    assert rc == 0
    assert "best/valid_f1" in out and "is not in" in out and "logged reproduction run" not in out


# ------------------------------------------------------------------ data problems (item 4): before Ray, exit 2
def _data_case(tmp_path: Path, case: str) -> tuple[dict, str]:
    """(config overrides, expected message part) for one bad data set-up."""
    d = tmp_path / case
    d.mkdir()
    good = "text,label\n" + "".join(f"word{i} film,{'pos' if i % 2 else 'neg'}\n" for i in range(30))
    for split in ("train", "validation", "test"):
        (d / f"{split}.csv").write_text(good)
    cfg = {"dataset": str(d / "{split}.csv")}
    if case == "missing_label_column":
        (d / "train.csv").write_text(good.replace("text,label", "text,sentiment", 1))
        return cfg, "no label column (the file has columns ['text', 'sentiment']); name the label column"
    if case == "missing_text_column":
        (d / "test.csv").write_text(good.replace("text,label", "sentence,label", 1))
        return cfg, f"{d / 'test.csv'}: missing column 'text' (for 'text'); available columns: ['sentence', 'label']"
    if case == "empty_file":
        (d / "validation.csv").write_text("")
        return cfg, f"{d / 'validation.csv'}: empty file"
    if case == "non_utf8":
        (d / "train.csv").write_bytes((good + "caf\xe9,pos\n").encode("latin-1"))
        return cfg, f"{d / 'train.csv'}: line 32, column 4: byte 0xe9 is not valid UTF-8"
    if case == "no_validation_file":
        (d / "validation.csv").unlink()
        (d / "dev.csv").write_text(good)
        return cfg, (f"no file '{d / 'validation.csv'}' for valid_split 'validation' (files in {d}: dev.csv, test.csv, "
                     f"train.csv); set valid_split")
    if case == "unlabeled_test_split":
        (d / "test.csv").write_text(good.replace("text,label", "text,sentiment", 1))
        return cfg, f"{d / 'test.csv'}: no label column (the file has columns ['text', 'sentiment'])"
    if case == "bad_column_role":
        return {**cfg, "columns": {"text": "text", "label": "gold"}}, "missing column 'gold' (for 'label')"
    raise AssertionError(case)


@pytest.mark.parametrize("case", ["missing_label_column", "missing_text_column", "empty_file", "non_utf8",
                                  "no_validation_file", "bad_column_role", "unlabeled_test_split"])
def test_data_problems_stop_before_ray_naming_file_line_column(tmp_path, capsys, case):
    overrides, expected = _data_case(tmp_path, case)
    spec = write(tmp_path / "s.yaml", config={**TINY, **overrides})
    rc, out, err = run(capsys, "run", str(spec))
    assert rc == 2 and "Traceback" not in err, err
    assert expected in err, err


@pytest.mark.parametrize("trainable", ["classifier", "faithfulness"])
def test_search_space_datasets_are_each_dry_loaded(tmp_path, capsys, trainable):
    """The preflight hook runs for every dataset the search space can reach, under --smoke-test too."""
    ok, bad = tmp_path / "ok.csv", tmp_path / "bad.csv"
    ok.write_text("text,label\n" + "".join(f"w{i} x,{i % 2}\n" for i in range(40)))
    bad.write_text("text,gold\n" + "".join(f"w{i} x,{i % 2}\n" for i in range(40)))
    config = {k: v for k, v in TINY.items() if k != "dataset"}
    spec = write(tmp_path / "s.yaml", trainable=trainable, metric="best/valid_f1", config=config,
                 search_space={"dataset": {"type": "choice", "values": [str(ok), str(bad)]}})
    for extra in ((), ("--smoke-test",)):
        rc, _, err = run(capsys, "run", str(spec), *extra)
        assert rc == 2 and f"{bad}: no label column (the file has columns ['text', 'gold'])" in err, err
        assert str(ok) not in err.replace(str(bad), "")


def test_non_utf8_spec_file_is_one_clear_error(tmp_path, capsys):
    path = tmp_path / "s.yaml"
    path.write_bytes(b"name: x\ntrainable: classifier\ndescription: caf\xe9\n")
    rc, out, err = run(capsys, "run", str(path))
    assert rc == 2 and "Traceback" not in err
    assert f"{path}" in err and "line 3, column 17: byte 0xe9 is not valid UTF-8" in err, err


def test_hub_dataset_offline_names_it_and_the_local_alternative(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # an empty cache
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.delenv("HF_DATASETS_CACHE", raising=False)
    spec = write(tmp_path / "s.yaml", config={**TINY, "dataset": "sst2", "unlabeled": "wikitext", "ratio": 1.0,
                                              "pretrained_embeddings": "bert-base-uncased"})
    rc, _, err = run(capsys, "run", str(spec), "--smoke-test")
    assert rc == 2, err
    assert "dataset: 'sst2' is the Hugging Face hub dataset 'stanfordnlp/sst2'" in err
    assert "unlabeled: 'wikitext' is the Hugging Face hub dataset 'Salesforce/wikitext'" in err
    assert "pretrained_embeddings: 'bert-base-uncased' is a Hugging Face hub model" in err
    assert "config.dataset: /path/to/data/{split}.csv" in err and "offline mode is on" in err
    # a populated cache passes the check (no network either way)
    (tmp_path / "hf" / "hub" / "datasets--stanfordnlp--sst2" / "snapshots").mkdir(parents=True)
    rc, _, err = run(capsys, "run", str(spec), "--smoke-test")
    assert "'sst2' is the Hugging Face hub dataset" not in err and "'wikitext'" in err


def test_every_cli_flag_has_help_text():
    """Item 15: every argument of every subcommand explains itself in --help."""
    import argparse

    parser = cli.build_parser()
    subs = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {action.dest}" for name, sub in subs.choices.items() for action in sub._actions
               if not isinstance(action, argparse._HelpAction) and not action.help]
    assert missing == []


def test_a_second_driver_of_the_same_sweep_stops_before_ray(tmp_path, capsys):
    """Item 6: while a driver holds the sweep directory's lock, another run (resume or not) stops."""
    from sweeps.launch.sweep_state import SweepLock

    storage = tmp_path / "ray"
    holder = SweepLock(str(storage / "cli"))
    assert holder.acquire() is None
    try:
        for extra in ((), ("--resume",)):
            rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml")), "--storage", str(storage), *extra)
            assert rc == 2 and "is running in another driver (pid" in err and "--name" in err, err
    finally:
        holder.release()


def test_the_drivers_mlflow_retry_policy_reaches_every_trial(monkeypatch, tmp_path):
    """MLFLOW_HTTP_REQUEST_* of the driver go into Ray's runtime_env: trials on other nodes retry as long."""
    from sweeps import launcher

    seen = {}
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda **kwargs: seen.update(kwargs))
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "10")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
    from sweeps.spec.parse import load_spec

    from sweeps.launch.plan import plan_sweep

    plan = plan_sweep(load_spec(write(tmp_path / "s.yaml")))
    launcher._start_ray(plan, None, 1, 0)
    env = seen["runtime_env"]["env_vars"]
    assert env["MLFLOW_HTTP_REQUEST_MAX_RETRIES"] == "10" and env["MLFLOW_HTTP_REQUEST_TIMEOUT"] == "30"


def test_a_tracking_server_down_at_the_end_of_a_sweep_is_one_message(monkeypatch, tmp_path, capsys):
    from sweeps import launcher

    def down(*args, **kwargs):
        raise launcher.TrackingUnavailable("the sweep ran (2 trials, ...) but the tracking server http://h:5000 did not "
                                           "answer ...: `xaisweep run SPEC --resume` closes the launch")

    monkeypatch.setattr(launcher, "run_sweep", down)
    spec = write(tmp_path / "s.yaml")
    rc, out, err = run(capsys, "run", str(spec))
    assert rc == 1 and "Traceback" not in err
    assert f"`xaisweep run {spec} --resume` closes the launch" in err


@pytest.mark.parametrize("overrides, expected", [
    ({"metric": ["best/valid_f1", "train/step_time"], "mode": "max"},
     "mode: a list of metrics needs a list of modes, one per metric in the same order"),
    ({"metric": ["best/valid_f1", "train/step_time"], "mode": ["max", "min"], "scheduler": {"type": "asha", "max_t": 2}},
     "scheduler: ASHA stops trials on one metric, and this sweep has 2 objectives"),
    ({"metric": "test/f1"}, "metric: 'test/f1' is measured on test data, and selection must not read test data: "
                            "select on its validation counterpart 'best/valid_f1'"),
    ({"metric": ["best/valid_f1", "test/corr"], "mode": ["max", "max"]},
     "metric[1]: 'test/corr' is measured on test data"),
    ({"metric": ["best/valid_f1", "valid/nope"], "mode": ["max", "max"]},
     "metric[1]: 'valid/nope' is not reported by trainable 'classifier'"),
])
def test_objective_problems_stop_the_run_before_ray(tmp_path, capsys, overrides, expected):
    rc, _, err = run(capsys, "run", str(write(tmp_path / "s.yaml", **overrides)))
    assert rc == 2 and "Traceback" not in err and expected in err, err
