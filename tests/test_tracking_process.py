"""The trial's MLflow client in a child process (:mod:`trainables.tracking_process`) and the checkpoint
cadence of :class:`trainables.ray_trainable.RayTrial`: what reaches MLflow, in what order, when a report
waits, what happens to errors, and that a Ray worker never imports MLflow."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from trainables import mlflow_names
from trainables.tracking_process import RemoteTrialRun, TrackingError, TrackingProcess


@pytest.fixture
def store(tmp_path):
    from mlflow.tracking import MlflowClient

    from trainables.tracking import get_or_create_experiment

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    experiment = get_or_create_experiment(client, "tp")
    parent = client.create_run(experiment).info.run_id
    return uri, client, experiment, parent


@pytest.fixture
def process():
    p = TrackingProcess()
    yield p
    p.close()


def test_the_child_runs_at_a_lower_priority_than_its_worker(process):
    import os
    import time

    from trainables.tracking_process import CHILD_NICENESS

    worker = os.getpriority(os.PRIO_PROCESS, 0)
    expected = min(19, worker + CHILD_NICENESS)
    deadline = time.monotonic() + 30
    while os.getpriority(os.PRIO_PROCESS, process._proc.pid) != expected and time.monotonic() < deadline:
        time.sleep(0.05)  # the child lowers its own priority first thing
    assert os.getpriority(os.PRIO_PROCESS, process._proc.pid) == expected
    assert os.getpriority(os.PRIO_PROCESS, 0) == worker  # the worker's own is kept


def _open(process, store, trial_id="t1"):
    uri, _, experiment, parent = store
    return RemoteTrialRun(process, uri, experiment, parent, trial_id, f"run-{trial_id}", tags={"seed": 3})


def test_a_run_gets_everything_it_was_sent_in_order(process, store, tmp_path):
    _, client, _, parent = store
    run = _open(process, store)
    run.start({"lr": 0.01, "model": {"hidden": 8}})
    run.log_text("a: 1\n", mlflow_names.CONFIG_ARTIFACT)
    for epoch in range(1, 6):
        run.log_metrics({"valid/f1": epoch / 10, "note": "not a number"}, step=epoch)
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "curves.txt").write_text("x")
    run.log_artifacts([tmp_path / "out" / "curves.txt"], tmp_path / "out")
    run.finish()
    got = client.get_run(run.run_id)
    assert run.resumed is False and run.finished
    assert got.info.status == "FINISHED"
    assert got.data.params["lr"] == "0.01" and got.data.params["model.hidden"] == "8"
    assert got.data.tags["seed"] == "3" and got.data.tags[mlflow_names.PARENT_RUN_ID] == parent
    assert mlflow_names.GIT_COMMIT in got.data.tags  # the provenance of a new run
    history = client.get_metric_history(run.run_id, "valid/f1")
    assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == [(e, e / 10) for e in range(1, 6)]
    assert "note" not in got.data.metrics
    paths = {a.path for a in client.list_artifacts(run.run_id)}
    assert {"curves.txt", mlflow_names.CONFIG_ARTIFACT} <= paths


def test_a_metric_is_stamped_when_the_trial_logged_it_not_when_the_child_wrote_it(process, store, monkeypatch):
    import trainables.tracking_process as tp

    _, client, _, _ = store
    run = _open(process, store, "t8")
    monkeypatch.setattr(tp.time, "time", lambda: 1_000_000_000.0)  # the trial's clock (2001-09-09)
    run.log_metrics({"valid/f1": 0.5}, step=1)
    monkeypatch.undo()
    run.flush()
    (metric,) = client.get_metric_history(run.run_id, "valid/f1")
    assert metric.timestamp == 1_000_000_000_000


def test_a_retried_trial_reopens_its_run_and_skips_steps_already_logged(process, store):
    _, client, _, _ = store
    first = _open(process, store, "t2")
    first.log_metrics({"valid/f1": 0.1}, step=1)
    first.flush()
    second = _open(process, store, "t2")  # the same Ray trial id: a retry
    assert second.resumed is True and second.run_id == first.run_id
    second.log_metrics({"valid/f1": 0.9}, step=1)  # already logged: skipped
    second.log_metrics({"valid/f1": 0.2}, step=2)
    second.finish()
    history = sorted(client.get_metric_history(first.run_id, "valid/f1"), key=lambda m: m.step)
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.2)]
    assert client.get_run(first.run_id).data.tags[mlflow_names.ATTEMPTS] == "2"


def test_an_error_of_a_call_not_waited_for_is_raised_at_the_next_wait_of_its_run_only(process, store):
    run, other = _open(process, store, "t3"), _open(process, store, "t4")
    run.set_tags({"x" * 300: "a tag key MLflow refuses"})  # sent without waiting
    other.log_metrics({"valid/f1": 0.5}, step=1)
    other.flush()  # the other run's calls are fine
    with pytest.raises(TrackingError, match="exceeds the maximum length"):
        run.flush()
    run.log_metrics({"valid/f1": 0.5}, step=1)
    run.flush()  # raised once: later calls go on


def test_a_run_that_cannot_be_opened_fails_its_first_wait(process, tmp_path):
    run = RemoteTrialRun(process, f"sqlite:///{tmp_path / 'm.db'}", "12345", None, "t5", "r", tags={})
    run.log_metrics({"a": 1.0}, step=1)
    with pytest.raises(TrackingError):
        run.run_id


def test_the_child_writes_what_was_sent_after_the_worker_closed_its_end(store):
    _, client, _, _ = store
    process = TrackingProcess()
    run = _open(process, store, "t6")
    run_id = run.run_id
    for epoch in range(1, 41):
        run.log_metrics({"train/loss": 1.0 / epoch}, step=epoch)  # none waited for
    process.close()  # as when the worker exits: the child drains, then ends
    assert process._proc.returncode == 0
    assert len(client.get_metric_history(run_id, "train/loss")) == 40


def test_a_dead_tracking_process_is_a_clear_error_and_the_worker_starts_another(monkeypatch):
    import trainables.ray_trainable as rt

    monkeypatch.setattr(rt, "_TRACKING", [])
    first = rt.tracking_process()
    first._proc.kill()
    first._proc.wait()
    with pytest.raises(TrackingError, match="gone"):
        RemoteTrialRun(first, "sqlite:///nowhere.db", "0", None, "t7", "r", tags={}).flush()
    second = rt.tracking_process()
    assert second is not first and second.alive()
    second.close()


def test_a_ray_worker_imports_neither_mlflow_nor_its_store():
    """What a worker imports to run any trainable: no MLflow (the child process has it)."""
    code = ("import sys, trainables.ray_trainable as rt\n"
            "from trainables import TRAINABLES, get_trainable\n"
            "[get_trainable(n).trainable for n in TRAINABLES]\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'mlflow', 'sqlalchemy', 'alembic'}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]", out.stdout


# ----------------------------------------------------------------------------- the checkpoint cadence
class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class _Run:
    """Records the calls a RayTrial makes to its run (no MLflow)."""

    run_id = "r1"

    def __init__(self, calls: list) -> None:
        self.calls = calls

    def log_metrics(self, metrics, step):
        self.calls.append(("log", step))

    def log_artifacts(self, files, root, timeout=None):
        self.calls.append(("artifacts", sorted(Path(f).name for f in files)))

    def flush(self, timeout=None):
        self.calls.append(("flush",))


def _recorded_trial(monkeypatch, tmp_path, *, early_stopping=True):
    """A RayTrial (checkpoint_every_s 60, a test clock) whose run and ``tune.report`` calls are recorded in
    ``calls``, with one file written in its out_dir: ``(trial, calls, clock)``."""
    import trainables.ray_trainable as rt

    calls: list = []
    monkeypatch.setattr(rt, "_tune_report", lambda result, ckpt, step: calls.append(("tune", step, ckpt is not None)))
    clock = _Clock()
    trial = rt.RayTrial(_Run(calls), resume=None, out_dir=tmp_path, checkpoint_every_s=60,
                        early_stopping=early_stopping, clock=clock)
    (tmp_path / "curves.png").write_text("x")
    return trial, calls, clock


def test_reports_carry_a_checkpoint_first_then_every_interval_and_last(monkeypatch, tmp_path):
    trial, calls, clock = _recorded_trial(monkeypatch, tmp_path)
    asked = []
    for epoch, now in zip(range(1, 7), (5, 30, 65, 100, 126, 127)):
        clock.now = now
        asked.append(trial.artifacts_due())
        trial.report({"epoch": epoch}, {"w": epoch})
    trial.finish({"epoch": 7}, {"w": 7}, artifacts=[tmp_path / "curves.png"])
    tune = [c for c in calls if c[0] == "tune"]
    # epoch 1 (the first), 3 (60 s after it), 5 (61 s after epoch 3), and the final one
    assert [(step, has) for _, step, has in tune] == [(1, True), (2, False), (3, True), (4, False), (5, True),
                                                      (6, False), (7, True)]
    assert sum(has for _, _, has in tune) == 4
    # a report with a checkpoint waits for MLflow first; the others wait for nothing
    i = calls.index(("tune", 3, True))
    assert calls[i - 3:i] == [("log", 3), ("artifacts", ["curves.png"]), ("flush",)]
    j = calls.index(("tune", 4, False))
    assert calls[j - 1] == ("log", 4)
    # the interim artifacts are drawn and uploaded with the checkpoints only
    assert asked == [True, False, True, False, True, False]
    assert calls[:4] == [("log", 1), ("artifacts", ["curves.png"]), ("flush",), ("tune", 1, True)]
    assert [c for c in calls if c[0] == "artifacts"] == [("artifacts", ["curves.png"])] * 4  # epochs 1, 3, 5, final


def test_without_early_stopping_the_first_checkpoint_carries_no_artifacts(monkeypatch, tmp_path):
    # FIFO: the scheduler never stops a trial at its first report, so a trial shorter than checkpoint_every_s
    # draws its artifacts once, at the end (as a direct run does)
    trial, calls, clock = _recorded_trial(monkeypatch, tmp_path, early_stopping=False)
    asked = []
    for epoch, now in zip(range(1, 5), (5, 30, 65, 100)):
        clock.now = now
        asked.append(trial.artifacts_due())
        trial.report({"epoch": epoch}, {"w": epoch})
    assert asked == [False, False, True, False]  # the checkpoints of epochs 1 and 3; artifacts with the second
    assert calls[:3] == [("log", 1), ("flush",), ("tune", 1, True)]
    assert [c for c in calls if c[0] == "artifacts"] == [("artifacts", ["curves.png"])]


def test_the_launcher_tells_the_trial_whether_its_scheduler_stops_early(monkeypatch, tmp_path):
    from ray import tune

    import trainables.ray_trainable as rt
    from sweeps.launcher import build_tuner
    from sweeps.launch.plan import plan_sweep
    from sweeps.spec.parse import parse_spec
    from sweeps.workdir import Workdir

    metas = []

    def with_parameters(fn, **kwargs):  # what the trial body gets as ``xaisweep_meta`` (no Ray object store here)
        metas.append(kwargs["xaisweep_meta"])
        return fn

    monkeypatch.setattr(tune, "with_parameters", with_parameters)
    launch = {"experiment_id": "1", "parent_run_id": None}
    for scheduler in (None, {"type": "asha", "max_t": 3}):
        spec = parse_spec({"name": "meta", "trainable": "classifier", "config": {"dataset": "synthetic"},
                           "metric": "best/valid_f1", "mode": "max", "scheduler": scheduler})
        build_tuner(plan_sweep(spec, workdir=Workdir(tmp_path)), launch, resume=False, verbose=0)
    assert [m[rt.EARLY_STOPPING_KEY] for m in metas] == [False, True]


def test_the_artifacts_decision_holds_until_the_report(monkeypatch, tmp_path):
    trial, calls, clock = _recorded_trial(monkeypatch, tmp_path)
    clock.now = 90  # a long first epoch
    assert trial.artifacts_due()
    trial.report({"epoch": 1}, {"w": 1})
    assert calls == [("log", 1), ("artifacts", ["curves.png"]), ("flush",), ("tune", 1, True)]
    # the answer holds until the report: the body wrote nothing on "no", so nothing is uploaded
    clock.now = 140
    assert not trial.artifacts_due()  # 50 s after that checkpoint
    clock.now = 160  # the interval passes while the body finishes its epoch
    trial.report({"epoch": 2}, {"w": 2})
    assert calls[4:] == [("log", 2), ("flush",), ("tune", 2, True)]


def test_a_trial_that_tune_stops_between_uploads_draws_and_uploads_that_reports_artifacts(monkeypatch, tmp_path):
    import trainables.ray_trainable as rt

    trial, calls, clock = _recorded_trial(monkeypatch, tmp_path)
    drawn = []

    def write(epoch):
        drawn.append(epoch)
        (tmp_path / "heatmaps.html").write_text(str(epoch))

    def report(result, ckpt, step):
        if step == 2:
            raise SystemExit(0)  # ASHA stops the trial at its second report

    clock.now = 5
    trial.interim_artifacts(lambda: write(1))  # the first report: drawn and uploaded
    trial.report({"epoch": 1}, {"w": 1})
    monkeypatch.setattr(rt, "_tune_report", report)
    clock.now = 10
    trial.interim_artifacts(lambda: write(2))  # 5 s after the checkpoint: kept back, not drawn
    with pytest.raises(SystemExit):
        trial.report({"epoch": 2}, {"w": 2})
    assert drawn == [1, 2]  # the second one only because Tune stopped the trial at it
    assert calls[-1] == ("artifacts", ["curves.png", "heatmaps.html"])


def test_the_plain_trial_keeps_only_the_final_artifacts(tmp_path):
    from trainables.protocol import Trial

    trial = Trial(lambda m, c: None, out_dir=tmp_path)
    assert trial.artifacts_due() is False
    trial.interim_artifacts(lambda: pytest.fail("drawn for a plain trial"))


def test_every_report_carries_a_checkpoint_with_interval_zero(monkeypatch, tmp_path):
    import trainables.ray_trainable as rt

    sent = []
    monkeypatch.setattr(rt, "_tune_report", lambda result, ckpt, step: sent.append(ckpt is not None))
    trial = rt.RayTrial(None, resume=None, out_dir=tmp_path, checkpoint_every_s=0)
    for epoch in range(1, 4):
        trial.report({"epoch": epoch}, {"w": epoch})
    assert sent == [True, True, True]


def test_a_trial_that_tune_stops_uploads_what_it_wrote_before_it_exits(monkeypatch, tmp_path):
    import trainables.ray_trainable as rt

    calls: list = []

    def report(result, ckpt, step):
        if step == 2:
            raise SystemExit(0)  # what tune.report does when the scheduler stops the trial

    monkeypatch.setattr(rt, "_tune_report", report)
    trial = rt.RayTrial(_Run(calls), resume=None, out_dir=tmp_path, checkpoint_every_s=600, clock=_Clock())
    (tmp_path / "curves.png").write_text("x")
    trial.report({"epoch": 1}, {"w": 1})
    with pytest.raises(SystemExit):
        trial.report({"epoch": 2}, {"w": 2})
    assert calls[-2:] == [("log", 2), ("artifacts", ["curves.png"])]
