"""Real Ray sweeps end to end: MLflow runs, failures and retries, ASHA, reproduce, resume.

One module-scoped sweep (``sweep``, ~1 min on 2 cores) is shared by the smoke, failure,
retry, early-stopping and reproduce tests. It runs through ``xaisweep run`` in this
process (local Ray, ``--num-cpus 2``, MLflow SQLite under a tmp dir) with three grid
points, arranged so that every outcome happens deterministically:

* ``GOOD`` (lr 1e-2) trains normally; its worker process is SIGKILLed right after its
  first checkpoint (a test-only ``tune.Callback`` passed to ``run_sweep``), so with
  ``max_failures: 1`` Ray retries it from that checkpoint;
* ``NAN`` (lr 1e30) makes the loss non-finite: the body raises ``FloatingPointError``
  (twice: the retry starts from scratch and fails again);
* ``BAD`` (lr 1e-6) is suggested third (after ``GOOD`` reached ASHA's first rung) and
  is worse there, so ASHA stops it after one epoch.

The resume test (``slow``) drives the ``xaisweep`` CLI in subprocesses and interrupts it
with SIGINT, then with SIGKILL.
"""
from __future__ import annotations

import contextlib
import io
import itertools
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
from mlflow.tracking import MlflowClient  # noqa: E402
from ray import tune  # noqa: E402

from sweeps import cli, launcher  # noqa: E402
from sweeps.launch import sweep_runs  # noqa: E402
from sweeps.spec.parse import parse_spec  # noqa: E402
from multinode_utils import kill_session  # noqa: E402

pytestmark = pytest.mark.timeout(900)  # a hung Ray must not hang CI (each test here takes < 4 min)

GOOD, NAN, BAD = 1.0e-2, 1.0e30, 1.0e-6
EPOCHS = 2
TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": EPOCHS, "batch_size": 32, "embedding_dim": 8,
        "hidden_dim": 8, "attention_dim": 8, "heatmaps": 2}
XAISWEEP = str(Path(sys.executable).parent / "xaisweep")


# ----------------------------------------------------------------------------- helpers
def grid_values_with_last(values: list[float], last: float, seed: int = 0) -> list[float]:
    """``values`` ordered so that the grid sampler suggests ``last`` third.

    With ``max_concurrent: 2`` the first two suggestions start together; the third is
    asked for only when one of them has ended, and a grid sampler then offers the one
    point left. Which two come first depends on the sampler's seeded shuffle: try the
    orders with the sampler the launcher builds.
    """
    import optuna

    from sweeps.launch.space import make_optuna_sampler, optuna_define_by_run

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    for order in itertools.permutations(values):
        spec = parse_spec({"name": "probe", "trainable": "classifier", "metric": "best/valid_f1", "mode": "max",
                           "search_space": {"lr": {"type": "grid", "values": list(order)}},
                           "sampler": {"type": "grid", "seed": seed}})
        study = optuna.create_study(sampler=make_optuna_sampler(spec.sampler, spec.params), direction="maximize")
        space = optuna_define_by_run(spec.params)
        first_two = [space(study.ask())["lr"] for _ in range(2)]
        if last not in first_two:
            return list(order)
    raise AssertionError("no order of the grid puts the value last")


class KillWorkerAfterFirstCheckpoint(tune.Callback):
    """SIGKILL the worker process of the trial with ``lr == target`` once, right after Tune
    registered its first checkpoint (a crash between two epochs)."""

    def __init__(self, target_lr: float) -> None:
        self.target_lr = target_lr
        self.killed: dict[str, int] = {}

    def on_trial_save(self, iteration, trials, trial, **info):
        result = trial.last_result or {}
        if self.killed or trial.config.get("lr") != self.target_lr or result.get("training_iteration") != 1:
            return
        pid = int(result["pid"])  # Tune fills in the reporting worker's pid
        os.kill(pid, signal.SIGKILL)
        self.killed[trial.trial_id] = pid


def write_spec(path: Path, **overrides) -> Path:
    doc = {"name": "smoke", "trainable": "classifier", "config": dict(TINY), "metric": "best/valid_f1",
           "mode": "max", "num_samples": 3, "max_concurrent": 2, "resources": {"cpu": 1}, **overrides}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def child_runs(client: MlflowClient, experiment_id: str, parent_run_id: str):
    return client.search_runs([experiment_id], f"tags.`mlflow.parentRunId` = '{parent_run_id}'", max_results=1000)


def steps(client: MlflowClient, run_id: str, key: str = "training_iteration") -> list[int]:
    return sorted(int(m.step) for m in client.get_metric_history(run_id, key))


# ----------------------------------------------------------------------------- the shared sweep
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Run the three-trial sweep once through ``xaisweep run`` (in this process)."""
    root = tmp_path_factory.mktemp("sweep")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = write_spec(
        root / "smoke.yaml",
        search_space={"lr": {"type": "grid", "values": grid_values_with_last([GOOD, NAN, BAD], BAD)}},
        sampler={"type": "grid", "seed": 0},
        scheduler={"type": "asha", "max_t": EPOCHS, "grace_period": 1, "reduction_factor": 2},
        max_failures=1,
    )
    killer = KillWorkerAfterFirstCheckpoint(GOOD)
    outcomes = []
    real_run_sweep = launcher.run_sweep

    def run_sweep(plan, **kwargs):
        outcome = real_run_sweep(plan, callbacks=[killer], **kwargs)
        outcomes.append(outcome)
        return outcome

    out = io.StringIO()
    t0 = time.time()
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAISWEEP_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        mp.setattr(launcher, "run_sweep", run_sweep)
        try:
            with contextlib.redirect_stdout(out):
                rc = cli.main(["run", str(spec), "--num-cpus", "2", "--quiet", "--tracking-uri", uri,
                               "--storage", str(root / "ray")])
        finally:
            if ray.is_initialized():  # run_sweep shuts down the Ray it started; be sure
                ray.shutdown()
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name("smoke")
    outcome = outcomes[0]
    runs = {r.data.tags["ray_trial_id"]: r for r in child_runs(client, exp.experiment_id, outcome.parent_run_id)}
    by_lr = {}
    for r in outcome.results:
        by_lr[r.config["lr"]] = r
    return {"rc": rc, "stdout": out.getvalue(), "uri": uri, "client": client, "experiment": exp, "root": root,
            "outcome": outcome, "runs": runs, "by_lr": by_lr, "killer": killer, "seconds": time.time() - t0,
            "spec": spec}


def run_of(sweep, lr):
    result = sweep["by_lr"][lr]
    return sweep["client"].get_run(sweep["runs"][sweep_runs.result_trial_id(result)].info.run_id)


# ----------------------------------------------------------------------------- smoke
def test_sweep_logs_parent_and_child_runs(sweep):
    client, exp, outcome = sweep["client"], sweep["experiment"], sweep["outcome"]
    assert sweep["rc"] == 0, sweep["stdout"]
    parents = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")
    assert [p.info.run_id for p in parents] == [outcome.parent_run_id]
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    # MLflow 3's UI opens it as a classic ML experiment (runs table), not in the GenAI view
    assert client.get_experiment(exp.experiment_id).tags["mlflow.experimentKind"] == "custom_model_development"
    assert parent.data.params["num_samples"] == "3"
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["spec.yaml"]
    # one child run per Ray trial, and nothing else in the experiment
    ray_ids = {sweep_runs.result_trial_id(r) for r in outcome.results}
    assert len(ray_ids) == 3 and set(sweep["runs"]) == ray_ids
    assert len(client.search_runs([exp.experiment_id])) == 1 + 3


def test_finished_trial_run_has_params_metrics_tags_artifacts(sweep):
    client = sweep["client"]
    run = run_of(sweep, GOOD)
    assert run.info.status == "FINISHED"
    params = run.data.params
    assert float(params["lr"]) == GOOD and params["epochs"] == str(EPOCHS) and params["synthetic_size"] == "200"
    assert params["regularizer"] == "none" and params["num_threads"] == "1"
    for key in ("train/loss", "valid/f1", "valid/accuracy", "best/valid_f1", "training_iteration"):
        assert steps(client, run.info.run_id, key) == list(range(1, EPOCHS + 1)), key
    for key in ("test/f1", "test/accuracy", "test/roc_auc", "test/corr"):
        assert key in run.data.metrics, key
    tags = run.data.tags
    assert tags["mlflow.parentRunId"] == sweep["outcome"].parent_run_id
    assert tags["ray_trial_id"] == sweep_runs.result_trial_id(sweep["by_lr"][GOOD])
    assert tags["sweep"] == "smoke" and tags["seed"] == "0" and tags["device"] == "cpu"
    assert tags["host"] == socket.gethostname() and len(tags["git_commit"]) >= 7
    assert "early_stopped" not in tags  # ASHA stops every trial at max_t: that is not early
    arts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "training_curves.png", "attention_heatmaps.html"} <= arts
    # the Ray side agrees
    result = sweep["by_lr"][GOOD]
    assert result.error is None and result.metrics["mlflow_run_id"] == run.info.run_id
    assert result.metrics["test/f1"] == pytest.approx(run.data.metrics["test/f1"])


def test_cli_prints_best_trial_with_mlflow_link(sweep):
    out = sweep["stdout"]
    best = run_of(sweep, GOOD)
    assert "3 trials, 2 finished, 1 failed" in out
    assert (f"http://127.0.0.1:5000/#/experiments/{sweep['experiment'].experiment_id}/runs/{best.info.run_id}"
            "?workflowType=machine_learning") in out  # the classic run page, not MLflow 3's GenAI one
    assert f"xaisweep reproduce {best.info.run_id}" in out


# ----------------------------------------------------------------------------- failures and retries
def test_nan_trial_is_failed_in_ray_and_mlflow_and_the_sweep_goes_on(sweep):
    result = sweep["by_lr"][NAN]
    assert result.error is not None and "FloatingPointError" in str(result.error)
    run = run_of(sweep, NAN)
    assert run.info.status == "FAILED"
    assert run.data.tags["failure_reason"].startswith("FloatingPointError: non-finite training loss")
    assert "failure_traceback" in run.data.tags
    assert run.data.tags["attempts"] == "2"  # max_failures: 1 -> retried once, failed again
    assert sweep["outcome"].num_errors == 1
    assert run_of(sweep, GOOD).info.status == "FINISHED" and run_of(sweep, BAD).info.status == "FINISHED"


def test_retried_trial_resumes_from_its_checkpoint_in_the_same_run(sweep):
    client, killer = sweep["client"], sweep["killer"]
    result = sweep["by_lr"][GOOD]
    trial_id = sweep_runs.result_trial_id(result)
    assert list(killer.killed) == [trial_id], "the worker of the GOOD trial was not killed"
    run = run_of(sweep, GOOD)
    tags = {k: v for k, v in run.data.tags.items() if k != "failure_traceback"}
    assert tags.get("resumed") == "true" and tags.get("attempts") == "2", tags
    assert tags.get("resumed_from_step") == "1", tags
    assert tags.get("ray_failures") == "1" and "failure_reason" not in tags, tags
    assert len(client.search_runs([sweep["experiment"].experiment_id], f"tags.ray_trial_id = '{trial_id}'")) == 1
    # no epoch logged twice, none missing
    for key in ("training_iteration", "train/loss", "valid/f1"):
        assert steps(client, run.info.run_id, key) == [1, 2], key
    # Ray went on from the checkpoint: one iteration (epoch 2) since the restore, in a new
    # worker; from scratch it would have run two. (Not Ray's metrics_dataframe: the result
    # files of a restarted trial may keep only the rows of its last attempt.)
    last = result.metrics
    assert last["training_iteration"] == EPOCHS and last["epoch"] == EPOCHS
    assert last["iterations_since_restore"] == 1, {k: last.get(k) for k in ("training_iteration", "pid")}
    assert last["pid"] != killer.killed[trial_id]


# ----------------------------------------------------------------------------- ASHA
def test_asha_stopped_trial_is_finished_and_tagged(sweep):
    client = sweep["client"]
    result = sweep["by_lr"][BAD]
    assert result.error is None and result.metrics["training_iteration"] == 1 and result.metrics["done"]
    run = run_of(sweep, BAD)
    assert run.info.status == "FINISHED"
    assert run.data.tags["early_stopped"] == "true" and run.data.tags["stopped_at_iteration"] == "1"
    assert "failure_reason" not in run.data.tags
    assert steps(client, run.info.run_id) == [1]
    # the curves and heatmaps of the epochs it ran, not only its config (issue 12, item 9)
    assert {"config.yaml", "training_curves.png", "attention_heatmaps.html"} <= {
        a.path for a in client.list_artifacts(run.info.run_id)}


def test_best_lists_finished_trials_and_marks_early_stopped(sweep, capsys):
    assert cli.main(["best", "smoke", "--tracking-uri", sweep["uri"]]) == 0
    out = capsys.readouterr().out
    assert run_of(sweep, GOOD).info.run_id[:12] in out and run_of(sweep, BAD).info.run_id[:12] in out
    assert run_of(sweep, NAN).info.run_id[:12] not in out
    assert "(* stopped early by ASHA)" in out


# ----------------------------------------------------------------------------- reproduce
def test_reproduce_run_id_matches_the_ray_trial(sweep, capsys):
    client, exp = sweep["client"], sweep["experiment"]
    source = run_of(sweep, GOOD)
    assert cli.main(["reproduce", source.info.run_id, "--tracking-uri", sweep["uri"]]) == 0
    out = capsys.readouterr().out
    assert "logged reproduction run" in out
    repros = client.search_runs([exp.experiment_id], f"tags.reproduces = '{source.info.run_id}'")
    assert len(repros) == 1
    repro = repros[0]
    for key in ("best/valid_f1", "test/f1", "test/accuracy", "test/roc_auc", "test/corr"):
        assert repro.data.metrics[key] == pytest.approx(source.data.metrics[key], abs=1e-6), key
    assert repro.data.tags["xaisweep.role"] == "reproduce" and "mlflow.parentRunId" not in repro.data.tags


def test_best_export_then_reproduce_yaml(sweep, tmp_path, capsys, monkeypatch):
    client, exp = sweep["client"], sweep["experiment"]
    source = run_of(sweep, GOOD)
    path = tmp_path / "best.yaml"
    assert cli.main(["best", "smoke", "--export", str(path), "--tracking-uri", sweep["uri"]]) == 0
    doc = yaml.safe_load(path.read_text())
    assert doc["source_run_id"] == source.info.run_id and doc["config"]["lr"] == GOOD
    before = {r.info.run_id for r in client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'reproduce'")}
    # no --tracking-uri: the exported file names its store (and beats a default work dir)
    monkeypatch.setenv("XAISWEEP_HOME", str(tmp_path / "elsewhere"))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cli.main(["reproduce", str(path)]) == 0
    capsys.readouterr()
    after = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'reproduce'")
    new = [r for r in after if r.info.run_id not in before]
    assert len(new) == 1 and new[0].data.tags["reproduces"] == source.info.run_id
    assert new[0].data.metrics["best/valid_f1"] == pytest.approx(doc["value"], abs=1e-6)


def test_reproduce_early_stopped_run_says_so(sweep, capsys):
    assert cli.main(["reproduce", run_of(sweep, BAD).info.run_id, "--tracking-uri", sweep["uri"]]) == 0
    assert "stopped early by the scheduler" in capsys.readouterr().out


# ----------------------------------------------------------------------------- resume after a killed driver
def _spawn(spec: Path, home: Path, log: Path, *extra: str) -> subprocess.Popen:
    env = {**os.environ, "XAISWEEP_HOME": str(home), "RAY_AIR_NEW_OUTPUT": "0", "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.pop("RAY_ADDRESS", None)
    with open(log, "ab") as f:
        return subprocess.Popen([XAISWEEP, "run", str(spec), "--num-cpus", "2", "--quiet", *extra], env=env,
                                stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)


def _wait_finished(client: MlflowClient, name: str, n: int, proc: subprocess.Popen, log: Path, timeout: float = 240):
    deadline = time.time() + timeout
    while time.time() < deadline:
        exited = proc.poll() is not None  # read before the count: a driver may finish the n-th and exit
        exp = client.get_experiment_by_name(name)
        if exp is not None:
            done = client.search_runs([exp.experiment_id],
                                      "attributes.status = 'FINISHED' and tags.ray_trial_id != ''")
            if len(done) >= n:
                return {r.info.run_id for r in done}
        assert not exited, f"the sweep ended early (rc={proc.returncode}):\n{log.read_text()[-3000:]}"
        time.sleep(0.5)
    raise AssertionError(f"fewer than {n} trials finished in {timeout} s:\n{log.read_text()[-3000:]}")


def _saved_trial_statuses(experiment_dir: Path) -> dict[str, str]:
    """Trial id -> status in Tune's saved experiment state (what a resume starts from)."""
    from ray.tune import ExperimentAnalysis

    return {t.trial_id: t.status for t in ExperimentAnalysis(str(experiment_dir)).trials}


@pytest.mark.slow
def test_resume_after_sigint_and_sigkill_reruns_nothing_finished(tmp_path):
    home = tmp_path / "home"
    num_samples = 4
    spec = write_spec(tmp_path / "resume.yaml", name="resume", num_samples=num_samples,
                      search_space={"lr": {"type": "loguniform", "low": 3.0e-3, "high": 3.0e-2}},
                      sampler={"type": "random", "seed": 1})
    client = MlflowClient(f"sqlite:///{home / 'mlflow.db'}")
    exp_dir = home / "ray" / "resume"
    log = tmp_path / "driver.log"
    sessions = []
    try:
        # 1. Ctrl-C: Tune stops, saves its state, the CLI says how to finish (exit 130)
        proc = _spawn(spec, home, log)
        sessions.append(proc.pid)
        finished_1 = _wait_finished(client, "resume", 1, proc, log)
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()[-3000:]
        assert "--resume" in log.read_text()
        exp = client.get_experiment_by_name("resume")
        parents = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")
        assert len(parents) == 1 and parents[0].info.status == "KILLED"
        assert parents[0].data.tags["interrupted"] == "true"
        parent_id = parents[0].info.run_id
        assert not [r for r in child_runs(client, exp.experiment_id, parent_id) if r.info.status == "RUNNING"]
        saved = _saved_trial_statuses(exp_dir)
        assert len(saved) < num_samples or any(s != "TERMINATED" for s in saved.values())
        terminated_1 = {t for t, s in saved.items() if s == "TERMINATED"}
        assert terminated_1
        kill_session(proc.pid)  # Ray daemons of a stopped driver may outlive it

        # 2. resume, then SIGKILL the driver alone once one more trial finished: Ray's daemons
        #    of that driver are left behind, as after a crash
        # (count what had finished when the first driver was gone: a trial may have ended
        # while the Ctrl-C was being handled, and must not be taken for one the resume ran)
        finished_before_2 = client.search_runs([exp.experiment_id],
                                               "attributes.status = 'FINISHED' and tags.ray_trial_id != ''")
        proc = _spawn(spec, home, log, "--resume")
        sessions.append(proc.pid)
        _wait_finished(client, "resume", min(num_samples, max(2, len(finished_before_2) + 1)), proc, log)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        terminated = {t for t, s in _saved_trial_statuses(exp_dir).items() if s == "TERMINATED"}
        runs_at_kill = {r.info.run_id: r for r in child_runs(client, exp.experiment_id, parent_id)}

        # 3. resume again: the sweep completes
        proc = _spawn(spec, home, log, "--resume")
        sessions.append(proc.pid)
        assert proc.wait(300) == 0, log.read_text()[-3000:]
    finally:
        for sid in sessions:  # the drivers, their Ray daemons and workers
            kill_session(sid)

    # one parent, re-used by both resumes
    parents = client.search_runs([exp.experiment_id], "tags.`xaisweep.role` = 'sweep'")
    assert [p.info.run_id for p in parents] == [parent_id]
    assert parents[0].info.status == "FINISHED" and parents[0].data.tags["resumes"] == "2"
    assert "interrupted" not in parents[0].data.tags
    # one MLflow run per Ray trial, every trial once
    ray_trials = _saved_trial_statuses(exp_dir)
    assert len(ray_trials) == num_samples and set(ray_trials.values()) == {"TERMINATED"}
    runs = child_runs(client, exp.experiment_id, parent_id)
    run_trial_ids = [r.data.tags["ray_trial_id"] for r in runs]
    assert sorted(run_trial_ids) == sorted(ray_trials)
    for run in runs:
        assert run.info.status == "FINISHED", run.data.tags
        assert steps(client, run.info.run_id) == list(range(1, EPOCHS + 1))
        assert steps(client, run.info.run_id, "valid/f1") == list(range(1, EPOCHS + 1))
        assert "test/f1" in run.data.metrics and "interrupted" not in run.data.tags
    # trials finished before an interruption were not run again
    by_id = {r.info.run_id: r for r in runs}
    assert finished_1 <= set(by_id)
    for run in runs:
        if run.data.tags["ray_trial_id"] in terminated_1:
            assert "resumed" not in run.data.tags
    for run_id, before in runs_at_kill.items():
        if before.data.tags["ray_trial_id"] in terminated:
            # (a trial interrupted by the Ctrl-C may have been resumed once, by the first resume,
            # and finished then: it carries "resumed" from that attempt, but is not opened again)
            after = by_id[run_id]
            assert after.data.tags["attempts"] == before.data.tags["attempts"]
            assert after.data.tags.get("resumed") == before.data.tags.get("resumed")
            if before.info.status == "FINISHED":
                assert after.info.end_time == before.info.end_time
            assert after.data.metrics == before.data.metrics


# ----------------------------------------------------------------------------- pieces, in the sweep's store
def _experiment(client: MlflowClient, name: str) -> str:
    from trainables.tracking import get_or_create_experiment

    return get_or_create_experiment(client, f"{name}-{time.time_ns()}")


def test_trial_run_reopens_its_run_and_skips_logged_steps(sweep):
    from trainables.tracking import TrialRun

    uri, client = sweep["uri"], sweep["client"]
    exp = _experiment(client, "unit-trialrun")
    parent = client.create_run(exp).info.run_id
    first = TrialRun(uri, exp, parent, "t1", "trial-1", tags={"seed": 3})
    assert first.log_metrics({"epoch": 1, "loss": 0.5, "note": "text"}, step=1)
    first.finish("FAILED", reason="RuntimeError: boom")
    again = TrialRun(uri, exp, parent, "t1", "trial-1", tags={"seed": 3})
    assert again.run_id == first.run_id and again.resumed
    run = client.get_run(again.run_id)
    assert run.info.status == "RUNNING"
    assert run.data.tags["attempts"] == "2" and run.data.tags["previous_failure_reason"] == "RuntimeError: boom"
    assert "failure_reason" not in run.data.tags and run.data.tags["seed"] == "3"
    assert not again.log_metrics({"epoch": 1, "loss": 0.1}, step=1)
    assert again.log_metrics({"epoch": 2, "loss": 0.4}, step=2)
    assert steps(client, again.run_id, "loss") == [1, 2]
    assert [m.value for m in client.get_metric_history(again.run_id, "loss")] == [0.5, 0.4]
    # the same trial id under another launch (parent) is another trial
    other = TrialRun(uri, exp, client.create_run(exp).info.run_id, "t1", "trial-1", tags={})
    assert other.run_id != first.run_id and not other.resumed


def test_status_callback_closes_runs_the_trial_could_not(sweep, tmp_path):
    from types import SimpleNamespace

    from trainables.tracking import TrialRun

    uri, client = sweep["uri"], sweep["client"]
    exp = _experiment(client, "unit-callback")
    parent = client.create_run(exp).info.run_id
    cb = sweep_runs.mlflow_callback_cls()(uri, exp, parent)
    stopped = TrialRun(uri, exp, parent, "s1", "stopped", tags={})
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="s1", last_result={"training_iteration": 3}))
    run = client.get_run(stopped.run_id)
    assert run.info.status == "FINISHED" and run.data.tags["early_stopped"] == "true"
    assert run.data.tags["stopped_at_iteration"] == "3"
    complete = TrialRun(uri, exp, parent, "f1", "complete", tags={})
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="f1", last_result={
        "mlflow_run_id": complete.run_id, "training_iteration": 2, "trial_complete": True}))
    run = client.get_run(complete.run_id)
    assert run.info.status == "FINISHED" and "early_stopped" not in run.data.tags
    done = TrialRun(uri, exp, parent, "d1", "done", tags={})
    done.finish("FAILED")
    cb.on_trial_complete(0, [], SimpleNamespace(trial_id="d1", last_result={"mlflow_run_id": done.run_id}))
    run = client.get_run(done.run_id)  # closed by the trial: left alone
    assert run.info.status == "FAILED" and "early_stopped" not in run.data.tags
    crashed = TrialRun(uri, exp, parent, "c1", "crashed", tags={})
    error = tmp_path / "error.txt"
    error.write_text("Failure # 1\nray.exceptions.ActorDiedError: the worker died (OOM)\n")
    trial = SimpleNamespace(trial_id="c1", last_result={}, error_file=str(error), num_failures=2)
    cb.on_trial_recover(0, [], trial)
    cb.on_trial_error(0, [], trial)
    run = client.get_run(crashed.run_id)
    assert run.info.status == "FAILED" and "ActorDiedError" in run.data.tags["failure_reason"]
    assert run.data.tags["ray_failures"] == "2"
    cb.on_trial_error(0, [], SimpleNamespace(trial_id="nobody", last_result={}, error_file=None))  # no run: no-op


def test_status_callback_pickles_by_reference():
    import ray.cloudpickle as cloudpickle

    cls = sweep_runs.mlflow_callback_cls()
    blob = cloudpickle.dumps(cls("sqlite:///x.db", "1", "p"))
    assert b"sweeps.launcher" in blob and b"_close" not in blob  # the class by name, not its code
    copy = cloudpickle.loads(blob)
    assert type(copy) is cls and copy.parent_run_id == "p"


def test_orphaned_runs_of_a_killed_driver_are_deleted(sweep):
    from types import SimpleNamespace

    from trainables.tracking import TrialRun

    uri, client = sweep["uri"], sweep["client"]
    exp = _experiment(client, "unit-orphans")
    parent = client.create_run(exp).info.run_id
    runs = {t: TrialRun(uri, exp, parent, t, t, tags={}).run_id for t in ("a1", "b2", "c3")}
    results = [SimpleNamespace(path=f"/x/trial_{t}", metrics={}) for t in ("a1", "b2")]
    assert sweep_runs.delete_orphans(client, exp, parent, results) == [runs["c3"]]
    assert sorted(r.data.tags["ray_trial_id"] for r in child_runs(client, exp, parent)) == ["a1", "b2"]
    gone = client.get_run(runs["c3"])
    assert gone.info.lifecycle_stage == "deleted" and gone.info.status == "KILLED" and "orphaned" in gone.data.tags
    # trial ids it cannot read: keep everything
    assert sweep_runs.delete_orphans(client, exp, parent, [SimpleNamespace(path=None, metrics={})]) == []
