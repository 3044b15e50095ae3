"""Resume fingerprint, the sweep lock, existing sweeps (--fresh), resources vs cluster, relative
paths: pure parts and launcher checks without Ray (items 2, 3, 5, 6 of issue 12)."""
from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.launcher import check_existing_sweep
from sweeps.launch.plan import PreflightError, plan_sweep
from sweeps.launch.plan import check_resources, resolve_relative_paths
from sweeps.spec.parse import ResourcesSpec, parse_spec
from sweeps.launch.sweep_state import SweepLock, spec_changes, spec_fingerprint
from sweeps.workdir import Workdir

TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": 1, "embedding_dim": 8, "hidden_dim": 8,
        "attention_dim": 8}


def doc(**overrides):
    d = {"name": "st", "trainable": "classifier", "config": dict(TINY), "metric": "best/valid_f1", "mode": "max",
         "num_samples": 4, "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}}
    d.update(overrides)
    return d


@pytest.mark.parametrize("change, refused", [
    ({"num_samples": 12}, ["num_samples: 4 -> 12"]),
    ({"search_space": {"lr": {"type": "loguniform", "low": 1e-4, "high": 1e-2}}}, ["search_space.lr.low: 0.001 -> 0.0001"]),
    ({"config": {**TINY, "epochs": 3}}, ["config.epochs: 1 -> 3"]),
    ({"max_concurrent": 4}, ["max_concurrent: 2 -> 4"]),
    ({"resources": {"cpu": 2}}, []),
    ({"description": "now with words"}, []),
    ({"checkpoint_every_s": 0}, []),
])
def test_spec_changes_a_resume_refuses_or_accepts(change, refused):
    old, new = parse_spec(doc()).to_dict(), parse_spec(doc(**change)).to_dict()
    got_refused, accepted = spec_changes(old, new)
    assert got_refused == refused
    assert (spec_fingerprint(old) == spec_fingerprint(new)) == (not refused)
    assert bool(accepted) == (not refused)


def test_the_lock_admits_one_holder_and_is_released(tmp_path):
    a, b = SweepLock(str(tmp_path / "sw")), SweepLock(str(tmp_path / "sw"))
    assert a.acquire() is None
    holder = b.acquire()
    assert holder is not None and "pid" in holder
    a.release()
    assert b.acquire() is None
    b.release()


def _plan(tmp_path, **overrides):
    wd = Workdir(tmp_path / "home")
    return plan_sweep(parse_spec(doc(**overrides)), workdir=wd)


def _launch_existing(plan):
    """What an earlier launch leaves: the launch file with its spec, and a parent run in MLflow."""
    from mlflow.tracking import MlflowClient

    from sweeps.launch.sweep_runs import start_parent_run

    start_parent_run(plan, resume=False)
    return MlflowClient(plan.tracking_uri)


def test_existing_sweep_without_resume_names_the_choices_and_fresh_discards_it(tmp_path):
    plan = _plan(tmp_path)
    check_existing_sweep(plan, resume=False, fresh=False)  # nothing there yet
    client = _launch_existing(plan)
    with pytest.raises(PreflightError, match=r"already exists.*--resume.*--name NEW.*--fresh"):
        check_existing_sweep(plan, resume=False, fresh=False)
    (Path(plan.experiment_dir) / "tuner.pkl").write_text("x")
    check_existing_sweep(plan, resume=False, fresh=True)
    assert not (Path(plan.experiment_dir) / "tuner.pkl").exists()
    exp = client.get_experiment_by_name("st")
    assert client.search_runs([exp.experiment_id]) == []  # moved to the trash
    check_existing_sweep(plan, resume=False, fresh=False)


def test_resume_refuses_a_changed_spec_and_accepts_resources(tmp_path):
    _launch_existing(_plan(tmp_path))
    with pytest.raises(PreflightError) as err:
        check_existing_sweep(_plan(tmp_path, num_samples=12), resume=True, fresh=False)
    assert "num_samples: 4 -> 12" in str(err.value) and "--name NEW" in str(err.value)
    check_existing_sweep(_plan(tmp_path, resources={"cpu": 1, "gpu": 0.5}), resume=True, fresh=False)


@pytest.mark.parametrize("request_, nodes, local, smoke, want_gpu, n_warn, problem", [
    ((1, 0.5), [{"CPU": 2}], True, False, 0.0, 1, None),                      # local, no GPU: CPU + warning
    ((1, 0.5), [{"CPU": 8}], False, True, 0.0, 1, None),                      # cluster smoke test: CPU too
    ((1, 0.5), [{"CPU": 8}, {"CPU": 8}], False, False, 0.5, 0, "no node of the cluster (2 node(s)) has a GPU"),
    ((1, 0.5), [{"CPU": 8}, {"CPU": 8, "GPU": 1}], False, False, 0.5, 0, None),
    ((1, 2), [{"CPU": 8, "GPU": 1}], False, False, 2, 0, "requests 2 GPUs but the largest node"),
    ((4, 0), [{"CPU": 2}], True, False, 0, 0, "requests 4 CPUs but the largest node of this machine's Ray has 2"),
    ((1, 0), [{"CPU": 2}], True, False, 0, 0, None),
])
def test_resources_against_the_nodes(request_, nodes, local, smoke, want_gpu, n_warn, problem):
    got, warnings, problems = check_resources(ResourcesSpec(*request_), nodes, local=local, smoke_test=smoke)
    assert got.gpu == want_gpu and len(warnings) == n_warn
    assert (problems == []) if problem is None else (problem in problems[0]), problems


def test_autoscaler_gpu_node_types_count():
    _, _, problems = check_resources(ResourcesSpec(1, 0.5), [{"CPU": 8}], local=False, smoke_test=False,
                                     max_cluster={"CPU": 64, "GPU": 4})
    assert problems == []


def test_relative_paths_are_resolved_against_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "train.csv").write_text("text,label\na,1\n")
    (tmp_path / "one.csv").write_text("text,label\na,1\n")
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(doc(config={**TINY, "dataset": "data/{split}.csv", "regularizer": "none"},
                          search_space={"unlabeled": {"type": "choice", "values": ["one.csv", "synthetic"]}}))
    new, changed = resolve_relative_paths(spec, Path.cwd())
    assert new.config["dataset"] == str(tmp_path / "data" / "{split}.csv")
    assert new.param("unlabeled").values == (str(tmp_path / "one.csv"), "synthetic")
    assert new.config["regularizer"] == "none" and len(changed) == 2



def test_relative_paths_inside_list_and_mapping_values_are_resolved(tmp_path, monkeypatch):
    # no shipped trainable has a list-of-files key yet; the resolver must not depend on that, so the spec's
    # config is replaced after validation (resolve_relative_paths is a pure function of the spec)
    import dataclasses

    (tmp_path / "a.txt").write_text("x\n")
    (tmp_path / "b.txt").write_text("y\n")
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(doc(config={**TINY, "regularizer": "none"}))
    spec = dataclasses.replace(spec, config={**spec.config, "files": ["a.txt", "not-a-path"],
                                             "nested": {"file": "b.txt", "n": 3}, "pair": ("b.txt",)})
    new, changed = resolve_relative_paths(spec, Path.cwd())
    assert new.config["files"] == [str(tmp_path / "a.txt"), "not-a-path"]
    assert new.config["nested"] == {"file": str(tmp_path / "b.txt"), "n": 3}
    assert new.config["pair"] == (str(tmp_path / "b.txt"),)
    assert len(changed) == 3
