"""Real local Ray through ``xaisweep run`` (one small sweep, ~30 s): a GPU request on a machine
without GPUs runs on CPU with one warning, a relative dataset path reaches the trials as an
absolute path, an existing sweep name needs --resume/--name/--fresh, and a resume with a changed
spec is refused before Ray starts."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
from mlflow.tracking import MlflowClient  # noqa: E402

from sweeps import cli  # noqa: E402

pytestmark = pytest.mark.timeout(600)

TINY = {"synthetic_size": 200, "epochs": 1, "batch_size": 32, "embedding_dim": 8, "hidden_dim": 8,
        "attention_dim": 8, "heatmaps": 0, "correlation": False}


def _write(path: Path, **overrides) -> Path:
    doc = {"name": "round2", "trainable": "classifier", "config": {**TINY, "dataset": "data/{split}.csv"},
           "metric": "best/valid_f1", "mode": "max", "num_samples": 2, "max_concurrent": 2,
           "search_space": {"lr": {"type": "choice", "values": [0.01, 0.003]}},
           "resources": {"cpu": 1, "gpu": 0.5}, **overrides}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    root = tmp_path_factory.mktemp("round2")
    (root / "data").mkdir()
    rows = "".join(f"{'good great' if i % 2 else 'bad awful'} film {i},{'pos' if i % 2 else 'neg'}\n" for i in range(60))
    for split in ("train", "validation", "test"):
        (root / "data" / f"{split}.csv").write_text("text,label\n" + rows)
    spec = _write(root / "spec.yaml")
    mp = pytest.MonkeyPatch()
    mp.chdir(root)
    mp.setenv("XAISWEEP_HOME", str(root / "home"))
    mp.delenv("MLFLOW_TRACKING_URI", raising=False)
    yield root, spec
    mp.undo()


def _run(capsys, *argv):
    rc = cli.main(list(argv))
    out, err = capsys.readouterr()
    return rc, out, err


def test_gpu_request_runs_on_cpu_and_relative_path_is_absolute_in_trials(swept, capsys):
    root, spec = swept
    rc, out, err = _run(capsys, "run", str(spec), "--num-cpus", "2", "--quiet")
    assert rc == 0, out + err
    assert err.count("resources.gpu: 0.5 GPU per trial requested but this machine's Ray has no GPU") == 1, err
    client = MlflowClient(f"sqlite:///{root / 'home' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("round2")
    trials = client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != ''")
    assert len(trials) == 2 and all(r.info.status == "FINISHED" for r in trials)
    assert {r.data.params["dataset"] for r in trials} == {str(root / "data" / "{split}.csv")}
    # launcher metadata (tracking URI, parent run) is not part of the trial config / progress table
    params = list((root / "home" / "ray" / "round2").glob("trial_*/params.json"))
    assert len(params) == 2 and all("_xaisweep" not in p.read_text() for p in params)


def test_same_name_again_needs_a_choice_and_resume_refuses_a_changed_spec(swept, capsys):
    root, spec = swept
    rc, _, err = _run(capsys, "run", str(spec), "--quiet")
    assert rc == 2 and "already exists" in err and "--resume" in err and "--fresh" in err, err
    rc, _, err = _run(capsys, "run", str(_write(root / "more.yaml", num_samples=4)), "--resume", "--quiet")
    assert rc == 2 and "num_samples: 2 -> 4" in err, err
    rc, _, err = _run(capsys, "run", str(spec), "--resume", "--fresh")
    assert rc == 2 and "not both" in err


def test_trial_runs_record_provenance(swept):
    """Item 14: git commit + dirty flag (+ diff when dirty), package versions, data file sha256."""
    import hashlib

    root, _ = swept
    client = MlflowClient(f"sqlite:///{root / 'home' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("round2")
    run = client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != ''")[0]
    tags = run.data.tags
    assert len(tags["git_commit"]) == 40 and tags["git_dirty"] in ("true", "false")
    names = {a.path for a in client.list_artifacts(run.info.run_id, "provenance")}
    assert {"provenance/packages.txt", "provenance/data_files.json"} <= names
    assert ("provenance/git_diff.patch" in names) == (tags["git_dirty"] == "true")
    want = hashlib.sha256((root / "data" / "train.csv").read_bytes()).hexdigest()
    assert want in tags.values()
    packages = client.download_artifacts(run.info.run_id, "provenance/packages.txt", str(root))
    assert any(line.startswith("torch==") for line in Path(packages).read_text().splitlines())


def test_time_budget_ends_the_sweep_cleanly_and_resume_finishes_it(swept, capsys):
    """Item 13: time_budget stops the sweep like one Ctrl-C (state saved); --resume completes it."""
    root, _ = swept
    spec = _write(root / "budget.yaml", name="budget", num_samples=3, max_concurrent=1, time_budget=1,
                  resources={"cpu": 1}, config={**TINY, "dataset": "data/{split}.csv", "epochs": 2})
    rc, out, err = _run(capsys, "run", str(spec), "--num-cpus", "2", "--quiet")
    assert rc == 0 and "reached its time_budget (1 s)" in out and "--resume" in out, out + err
    # the budget counts per launch; a resume may change it (here: none)
    spec = _write(root / "budget.yaml", name="budget", num_samples=3, max_concurrent=1, time_budget=None,
                  resources={"cpu": 1}, config={**TINY, "dataset": "data/{split}.csv", "epochs": 2})
    rc, out, err = _run(capsys, "run", str(spec), "--resume", "--num-cpus", "2", "--quiet")
    assert rc == 0 and "sweep budget done" in out, out + err
    assert "Failed to fetch metrics" not in err and "Tuner.restore" not in err, err
    client = MlflowClient(f"sqlite:///{root / 'home' / 'mlflow.db'}")
    exp = client.get_experiment_by_name("budget")
    trials = client.search_runs([exp.experiment_id], "tags.`mlflow.parentRunId` != ''")
    assert len(trials) == 3 and all(r.info.status == "FINISHED" for r in trials)
    # the parent's metric: under the metric's own name, logged once, not again by a later resume
    rc, out, err = _run(capsys, "run", str(spec), "--resume", "--num-cpus", "2", "--quiet")
    assert rc == 0, out + err
    parent = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")[0]
    assert "best/best/valid_f1" not in parent.data.metrics
    assert len(client.get_metric_history(parent.info.run_id, "best/valid_f1")) == 1
