"""The Ray Tune function trainable: config -> trial body, with MLflow and checkpoints.

Launcher metadata (trainable name, tracking URI, experiment id, parent run id,
sweep name) arrives through ``tune.with_parameters`` (``xaisweep_meta``). The body runs
against a :class:`RayTrial` (the trial protocol, :mod:`trainables.protocol`): every interim
``trial.report`` is sent to the trial's MLflow child run first, then passed to ``tune.report``.
MLflow is written by a child process of the worker (:mod:`trainables.tracking_process`: the worker
never imports MLflow, and a per-epoch log is not waited for). A report carries the checkpoint
(weights, optimiser, schedule, RNG states) when it is the first one, or when ``checkpoint_every_s``
seconds (a sweep spec key, default 60; 0: every report) have passed since the last checkpoint, and
then also the interim artifacts (the body draws them only for such a report, ``Trial.artifacts_due``,
or when Tune stops the trial at a report in between; for the first report only where the scheduler
stops trials early, ``early_stopping``); a report with a checkpoint first waits until
everything sent to MLflow was written, so an epoch that a retried or resumed trial will not run again
is in MLflow. A retried or restored trial resumes from ``tune.get_checkpoint()`` (``trial.resume``)
and re-opens its MLflow run, skipping epochs already logged.

The *final* result (``trial.finish``, which carries the test metrics) is handed to
Ray only after the artifacts are uploaded, marked
with ``trial_complete: True``: Tune may stop a trial on any report (ASHA stops
every trial that reaches ``max_t``), and a stopped trial's thread never runs
again. The run is then closed FINISHED by the launcher's driver callback when
Tune records the trial as ended (``on_trial_complete``), so that MLflow never
says FINISHED for a trial that Tune's saved state would run again on resume;
a result without ``trial_complete`` means the scheduler stopped the trial early
(tag ``early_stopped``). A body that returns without ``trial.finish`` fails
(:class:`trainables.protocol.TrialProtocolError`).

A stop requested by Tune (``SystemExit`` raised inside ``tune.report``: early
stopping, end or interruption of the experiment) is not a failure: the run is
left to the driver, which marks early-stopped runs FINISHED and interrupted
ones KILLED. Failures are recorded by the trial itself (FAILED, tags
``failure_reason`` and ``failure_traceback``).
"""
from __future__ import annotations

import dataclasses
import json
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from trainables import get_trainable, mlflow_names
from trainables.artifacts import config_yaml
from trainables.protocol import Trial, TrialResult, device_tag, run_body
from trainables.tracking_process import RemoteTrialRun, TrackingProcess
from xaicore.state_io import load_state_file

STATE_FILE = "trial_state.pt"
CHECKPOINT_META = "xaisweep_checkpoint.json"
META_KEY = "_xaisweep"
COMPLETE_KEY = "trial_complete"
REPEAT_KEY = "__trial_index__"
#: launcher metadata key: seconds between two checkpoints (the spec's ``checkpoint_every_s``)
CHECKPOINT_EVERY_KEY = "checkpoint_every_s"
#: launcher metadata key: whether the sweep's scheduler stops trials early (ASHA), so that a trial's first report
#: keeps its interim artifacts; absent (a sweep saved by an earlier version): yes
EARLY_STOPPING_KEY = "early_stopping"
#: seconds a stopped trial waits for its last MLflow writes before it lets Tune go on
STOP_FLUSH_TIMEOUT_S = 10.0


def trial_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trainable's own config: drop launcher keys; a repeat index offsets the seed."""
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    if REPEAT_KEY in config:
        cfg["seed"] = int(cfg.get("seed", 0)) + int(config[REPEAT_KEY])
    return cfg


def _load_state(checkpoint) -> tuple[Optional[dict[str, Any]], Optional[int]]:
    """(trainable state, step it was taken at) of a Ray checkpoint, or ``(None, None)``."""
    if checkpoint is None:
        return None, None
    with checkpoint.as_directory() as d:
        state = load_state_file(Path(d) / STATE_FILE, what="trial checkpoint")
        meta = Path(d) / CHECKPOINT_META
        step = json.loads(meta.read_text()).get("step") if meta.exists() else None
    return state, step


def _tune_report(result: dict[str, Any], checkpoint: Optional[dict[str, Any]], step: int) -> None:
    from ray import tune

    if checkpoint is None:
        tune.report(result)
        return
    with tempfile.TemporaryDirectory() as tmp:
        torch.save(checkpoint, Path(tmp) / STATE_FILE)
        (Path(tmp) / CHECKPOINT_META).write_text(json.dumps({"step": step}))
        tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))


class RayTrial(Trial):
    """The trial object of a Ray trial: interim results go to MLflow, then to Tune; the first one and then one
    every ``checkpoint_every_s`` seconds (0: every one) carry the checkpoint, after waiting for MLflow, and upload
    the interim artifacts (the body draws them for these reports, :meth:`interim_artifacts`, and for a report at
    which Tune stops the trial); the final one is logged, its artifacts uploaded, then handed to Tune with its
    checkpoint, marked ``trial_complete``.

    ``early_stopping``: the scheduler may stop the trial at its first report (ASHA's first rung). Tune's stop is
    not always seen at the report it follows, so the first report then draws and uploads the artifacts too (an
    early-stopped trial keeps its curves). Without it (FIFO: trials end by themselves, or with the whole sweep),
    the first checkpoint carries none, and a trial shorter than ``checkpoint_every_s`` draws them once, at its end.

    ``clock``: seconds (``time.monotonic``; tests pass their own)."""

    def __init__(self, run: Optional[RemoteTrialRun], *, resume: Optional[dict[str, Any]], out_dir: Path,
                 checkpoint_every_s: float = 0.0, early_stopping: bool = True, clock=time.monotonic) -> None:
        super().__init__(resume=resume, out_dir=out_dir)
        self.run = run
        self.checkpoint_every_s = float(checkpoint_every_s)
        self.early_stopping = bool(early_stopping)
        self._clock = clock
        self._last_checkpoint: Optional[float] = None  # none yet: the first report carries one
        self._keep: Optional[bool] = None  # artifacts_due's answer for the next report, once asked
        self._pending: Optional[Any] = None  # the body's writer of the next report's artifacts, not yet run

    def _result(self, metrics: dict[str, Any]) -> tuple[dict[str, Any], int]:
        step = int(metrics.get("epoch", 0))
        if self.run is not None:
            self.run.log_metrics(metrics, step=step)
        result = dict(metrics)
        if self.run is not None:
            result["mlflow_run_id"] = self.run.run_id
        return result, step

    def checkpoint_due(self) -> bool:
        """Whether the next interim report carries the checkpoint (the first one, then every ``checkpoint_every_s``)."""
        return (self._last_checkpoint is None or self.checkpoint_every_s <= 0
                or self._clock() - self._last_checkpoint >= self.checkpoint_every_s)

    def artifacts_due(self) -> bool:
        """Whether the next interim report uploads the interim artifacts: when it carries the checkpoint, except
        the first one of a trial the scheduler cannot stop early (``early_stopping``). Decided once per report."""
        if self._keep is None:
            self._keep = (self.out_dir is not None and self.checkpoint_due()
                          and (self.early_stopping or self._last_checkpoint is not None))
        return self._keep

    def interim_artifacts(self, write) -> None:
        """Runs ``write`` now when the next report uploads the artifacts; otherwise keeps it for the case that Tune
        stops the trial at that report (then it runs, and what it wrote is uploaded before the trial exits)."""
        if self.artifacts_due():
            write()
        else:
            self._pending = write

    def _written_so_far(self) -> list[Path]:
        return [f for f in self.out_dir.rglob("*") if f.is_file()] if self.out_dir is not None else []

    def _interim(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]]) -> None:
        due, keep = self.checkpoint_due(), self.artifacts_due()  # (also for a body that reports no checkpoint)
        pending, self._keep, self._pending = self._pending, None, None
        result, step = self._result(metrics)
        if due and self.run is not None:
            if keep:  # what the trial wrote so far (curves, heatmaps): kept if the scheduler stops it
                self.run.log_artifacts(self._written_so_far(), self.out_dir)
            self.run.flush()  # every MLflow write sent before this checkpoint is done
        try:
            _tune_report(result, checkpoint if due else None, step)
        except SystemExit:  # Tune stops the trial here (scheduler, end of the sweep): keep its last epoch
            if self.run is not None and not keep:  # (a report that kept them uploaded them just before)
                try:
                    if pending is not None:  # the artifacts as of this report, not drawn for it so far
                        pending()
                    written = self._written_so_far()
                    if written:
                        self.run.log_artifacts(written, self.out_dir, timeout=STOP_FLUSH_TIMEOUT_S)
                except Exception:  # noqa: BLE001 - best effort: the metrics were sent, the child writes them
                    pass
            raise
        if due:
            self._last_checkpoint = self._clock()

    def _final(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]], final: TrialResult) -> None:
        result, step = self._result(metrics)
        if self.run is not None:
            self.run.log_artifacts(final.artifacts, self.out_dir)
            self.run.flush()
        _tune_report({**result, COMPLETE_KEY: True}, checkpoint, step)


_TRACKING: list[TrackingProcess] = []  # this worker's tracking process (one, started by its first trial)


def tracking_process() -> TrackingProcess:
    """This worker's MLflow :class:`~trainables.tracking_process.TrackingProcess`, started on first use (and
    again if it died): one per worker process, serving every trial the worker runs."""
    if not _TRACKING or not _TRACKING[0].alive():
        _TRACKING[:] = [TrackingProcess()]
    return _TRACKING[0]


def _placement_tags() -> dict[str, str]:
    """Where Ray placed this attempt: node id and IP, and the GPU ids it assigned (``none`` on CPU)."""
    import ray

    return {
        "ray_node_id": ray.get_runtime_context().get_node_id(),
        "ray_node_ip": ray.util.get_node_ip_address(),
        "ray_gpu_ids": ",".join(str(g) for g in ray.get_gpu_ids()) or "none",
    }


def ray_trainable(config: dict[str, Any], xaisweep_meta: Optional[Mapping[str, Any]] = None) -> None:
    """Entry point given to ``tune.Tuner`` (wrapped with its launcher metadata by
    ``tune.with_parameters`` and with resources by the launcher; sweeps saved by earlier
    versions carry the metadata in ``config["_xaisweep"]``)."""
    from ray import tune

    _release_memory()
    meta = dict(xaisweep_meta or config.get(META_KEY, {}))
    entry = get_trainable(meta.get("trainable", "classifier"))
    trainable = entry.trainable
    cfg = trial_config(config)
    ctx = tune.get_context()
    trial_id, trial_name = ctx.get_trial_id(), ctx.get_trial_name()

    run = None
    if meta.get("tracking_uri"):
        run = RemoteTrialRun(
            tracking_process(), meta["tracking_uri"], meta["experiment_id"], meta.get("parent_run_id"), trial_id,
            trial_name,
            tags={mlflow_names.SWEEP: meta.get("sweep", ""), mlflow_names.TRAINABLE: entry.name,
                  mlflow_names.SEED: cfg.get("seed", 0),
                  mlflow_names.DEVICE: device_tag(str(cfg.get("device", "auto"))),
                  mlflow_names.RAY_TRIAL_NAME: trial_name,
                  **_placement_tags()},
        )
    try:
        parsed = trainable.parse_config(cfg)
        resolved = dataclasses.asdict(parsed)
        if run is not None:  # sent, not waited for: the child writes them while the trial sets up
            run.start(resolved)  # params, and the provenance of a new run
            # typed config of every trial, even failed ones
            run.log_text(config_yaml({"trainable": entry.name, "config": resolved}), mlflow_names.CONFIG_ARTIFACT)
        state, resumed_step = _load_state(tune.get_checkpoint())
        if run is not None and state is not None:
            run.set_tags({mlflow_names.RESUMED_FROM_STEP: resumed_step if resumed_step is not None else "?"})

        with tempfile.TemporaryDirectory() as out:
            run_body(trainable, parsed, RayTrial(run, resume=state, out_dir=Path(out),
                                                 checkpoint_every_s=float(meta.get(CHECKPOINT_EVERY_KEY, 0.0)),
                                                 early_stopping=bool(meta.get(EARLY_STOPPING_KEY, True))))
    except (SystemExit, KeyboardInterrupt):
        # Tune stopped the trial (scheduler decision, end or interruption of the sweep): not a
        # failure. The driver knows which it was and closes the run accordingly.
        raise
    except BaseException as err:  # noqa: BLE001 - recorded, then re-raised for Ray
        if run is not None:
            reason = f"{type(err).__name__}: {err}"
            try:
                run.set_tags({mlflow_names.FAILURE_TRACEBACK: "".join(traceback.format_exception(err))[-4000:]})
                run.finish("FAILED", reason=reason[:4000])
            except Exception:  # the tracking server may be what failed
                pass
        raise


def _release_memory() -> None:
    """Collect what an earlier trial in this process left on the GPU and hand the cached memory back
    (with ``reuse_workers`` a worker runs trial after trial; trials sharing a GPU through a
    fractional ``gpu`` request need the room). Nothing on a worker that never used CUDA: its host memory
    is freed with the last reference or by Python's own collector, and a forced full collection of a
    process holding torch and Ray costs about 0.1 s a trial."""
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        import gc

        gc.collect()
        torch.cuda.empty_cache()
