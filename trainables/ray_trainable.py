"""The Ray Tune function trainable: config -> trial body, with MLflow and checkpoints.

Launcher metadata travels in ``config["_xaisweep"]`` (trainable name,
tracking URI, experiment id, parent run id, sweep name). Every epoch the body's
report is logged to the trial's MLflow child run first, then passed to
``tune.report`` with a checkpoint (weights, optimiser, schedule, RNG states).
A retried or restored trial resumes from ``tune.get_checkpoint()`` and
re-opens its MLflow run, skipping epochs already logged.
"""
from __future__ import annotations

import dataclasses
import tempfile
import traceback
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from trainables import get_trainable
from trainables.artifacts import write_config_yaml

STATE_FILE = "trial_state.pt"
META_KEY = "_xaisweep"
REPEAT_KEY = "__trial_index__"


def trial_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """The trainable's own config: drop launcher keys; a repeat index offsets the seed."""
    cfg = {k: v for k, v in config.items() if not k.startswith("_")}
    if REPEAT_KEY in config:
        cfg["seed"] = int(cfg.get("seed", 0)) + int(config[REPEAT_KEY])
    return cfg


def _load_state(checkpoint) -> Optional[dict[str, Any]]:
    if checkpoint is None:
        return None
    with checkpoint.as_directory() as d:
        return torch.load(Path(d) / STATE_FILE, map_location="cpu", weights_only=False)


def ray_trainable(config: dict[str, Any]) -> None:
    """Entry point given to ``tune.Tuner`` (wrapped with resources by the launcher)."""
    from ray import tune

    from trainables.tracking import TrialRun, device_tag

    meta = dict(config.get(META_KEY, {}))
    entry = get_trainable(meta.get("trainable", "classifier"))
    cfg = trial_config(config)
    ctx = tune.get_context()
    trial_id, trial_name = ctx.get_trial_id(), ctx.get_trial_name()

    run = None
    if meta.get("tracking_uri"):
        run = TrialRun(
            meta["tracking_uri"], meta["experiment_id"], meta.get("parent_run_id"), trial_id, trial_name,
            tags={"sweep": meta.get("sweep", ""), "trainable": entry.name, "seed": cfg.get("seed", 0),
                  "device": device_tag(), "ray_trial_name": trial_name},
        )
    try:
        parsed = entry.parse_config(cfg)
        resolved = dataclasses.asdict(parsed)
        if run is not None:
            run.log_params(resolved)
            with tempfile.TemporaryDirectory() as tmp:  # typed config of every trial, even failed ones
                path = write_config_yaml({"trainable": entry.name, "config": resolved}, Path(tmp) / "config.yaml")
                run.log_artifacts([path], Path(tmp))
        state = _load_state(tune.get_checkpoint())

        def report(metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]]) -> None:
            step = int(metrics.get("epoch", 0))
            if run is not None:
                run.log_metrics(metrics, step=step)
            result = dict(metrics)
            if run is not None:
                result["mlflow_run_id"] = run.run_id
            if checkpoint is None:
                tune.report(result)
                return
            with tempfile.TemporaryDirectory() as tmp:
                torch.save(checkpoint, Path(tmp) / STATE_FILE)
                tune.report(result, checkpoint=tune.Checkpoint.from_directory(tmp))

        with tempfile.TemporaryDirectory() as out:
            result = entry.run_trial(parsed, report, resume=state, out_dir=Path(out))
            if run is not None:
                run.log_artifacts(result.artifacts, Path(out))
        if run is not None:
            run.finish("FINISHED")
    except BaseException as err:  # noqa: BLE001 - recorded, then re-raised for Ray
        if run is not None:
            reason = f"{type(err).__name__}: {err}"
            try:
                run.set_tags({"failure_traceback": "".join(traceback.format_exception(err))[-4000:]})
                run.finish("FAILED", reason=reason[:4000])
            except Exception:  # the tracking server may be what failed
                pass
        raise
