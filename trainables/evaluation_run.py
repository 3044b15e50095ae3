"""One evaluation of a saved model (``xaisweep evaluate``), as a worker runs it: download the model from its
trial's MLflow run, run the evaluation trainable's body on it (the plain trial protocol,
:meth:`trainables.protocol.Trainable.run_trial`) and log into that same run:

* every metric the body reports as ``eval/<name>/<metric>`` (step 0), a metric the run already holds
  left alone (so an evaluation interrupted after some of its metrics were logged logs the others only);
* the evaluation's files under ``eval/<name>/``, with ``evaluation.yaml`` (the trainable and its config,
  the model as ``runs:/<run>/<artifact>``), ``evaluation_spec.yaml`` (the spec as given) and
  ``provenance.json`` (spec path and sha256, the point's knobs, model artifact and sha256, git commit and
  dirty flag, host, device, date, seconds);
* the tags ``eval/<name>/config_sha256`` and, last, ``eval/<name>/done`` (the date): the completion marker
  that makes a rerun skip this (model, evaluation) pair.

Runs inside a Ray task (:mod:`sweeps.evaluation.run`) or in plain Python (the tests).
"""
from __future__ import annotations

import datetime
import hashlib
import json
import socket
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from trainables import get_trainable, mlflow_names
from trainables.artifacts import write_config_yaml
from trainables.protocol import is_bookkeeping


@dataclass(frozen=True)
class EvaluationJob:
    """One (model, evaluation config) pair, plain data (it travels to a Ray worker).

    Attributes:
        tracking_uri: the sweep's MLflow store.
        run_id: the trial run that saved the model (the evaluation logs into it).
        name: the evaluation's name (``eval/<name>/...``).
        trainable: the evaluation trainable (it declares a :class:`trainables.protocol.ModelEvaluation`).
        config: its config, the model's local path aside (added once the model is downloaded).
        config_sha256: :func:`config_fingerprint` of ``trainable`` and ``config``.
        provenance: what made the evaluation (spec path, sha256 and text, the point's knobs).
    """

    tracking_uri: str
    run_id: str
    name: str
    trainable: str
    config: dict[str, Any]
    config_sha256: str
    provenance: dict[str, Any] = field(default_factory=dict)


def config_fingerprint(trainable: str, config: Mapping[str, Any]) -> str:
    """sha256 of the evaluation trainable and its config (JSON, sorted keys): equal configs, equal prints."""
    text = json.dumps({"trainable": trainable, "config": dict(config)}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def tree_sha256(path: Path) -> str:
    """sha256 of a file, or of a directory's files (their relative paths and contents, sorted)."""
    from trainables.tracking import sha256_file

    if path.is_file():
        return sha256_file(path)
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(f.relative_to(path).as_posix().encode() + b"\0" + sha256_file(f).encode())
    return h.hexdigest()


def run_evaluation(job: EvaluationJob) -> dict[str, Any]:
    """Evaluate the model of ``job.run_id`` and log the results into that run (see the module docstring).

    Returns ``{"run_id", "name", "logged", "already", "seconds"}``: metrics logged now and metrics the run
    held already. Raises what the evaluation body raises (nothing is marked done then).
    """
    from mlflow.entities import Metric, RunTag
    from mlflow.tracking import MlflowClient

    from trainables.protocol import device_tag
    from trainables.tracking import git_state, numeric_metrics

    t0 = time.time()
    entry = get_trainable(job.trainable)
    evaluation = entry.trainable.evaluation
    client = MlflowClient(job.tracking_uri)
    artifact_dir = mlflow_names.eval_artifact_dir(job.name)
    with tempfile.TemporaryDirectory(prefix="xaisweep-eval-") as tmp:
        model = Path(client.download_artifacts(job.run_id, evaluation.model_artifact, str(Path(tmp) / "model")))
        model_sha = tree_sha256(model)
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        result = entry.trainable.run_trial({**job.config, evaluation.model_key: str(model)}, out_dir=out_dir)
        values = {k: v for k, v in numeric_metrics(result.metrics).items() if not is_bookkeeping(k)}
        held = set(client.get_run(job.run_id).data.metrics)
        now = int(time.time() * 1000)
        batch = [Metric(mlflow_names.eval_metric(job.name, k), v, now, 0) for k, v in values.items()
                 if mlflow_names.eval_metric(job.name, k) not in held]
        for i in range(0, len(batch), 200):
            client.log_batch(job.run_id, metrics=batch[i:i + 200])
        for f in result.artifacts:
            rel = Path(f).resolve().relative_to(out_dir.resolve()).parent.as_posix()
            client.log_artifact(job.run_id, str(f), artifact_dir if rel in ("", ".") else f"{artifact_dir}/{rel}")
        model_uri = f"runs:/{job.run_id}/{evaluation.model_artifact}"
        side = Path(tmp) / "side"
        resolved = {"trainable": job.trainable, "config": {**job.config, evaluation.model_key: model_uri}}
        files = [write_config_yaml(resolved, side / "evaluation.yaml")]
        spec_text = job.provenance.get("spec_text")
        if spec_text is not None:
            (side / "evaluation_spec.yaml").write_text(spec_text, encoding="utf-8")
            files.append(side / "evaluation_spec.yaml")
        commit, dirty, _diff = git_state()
        record = {
            "evaluation": job.name, "trainable": job.trainable, "config_sha256": job.config_sha256,
            **{k: v for k, v in job.provenance.items() if k != "spec_text"},
            "model": {"run_id": job.run_id, "artifact": model_uri, "sha256": model_sha},
            "code": {mlflow_names.GIT_COMMIT: commit, mlflow_names.GIT_DIRTY: dirty},
            "host": socket.gethostname(), "device": device_tag(str(job.config.get("device", "auto"))),
            "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "seconds": round(time.time() - t0, 3), "metrics": len(values),
        }
        (side / "provenance.json").write_text(json.dumps(record, indent=2, sort_keys=True, default=str))
        files.append(side / "provenance.json")
        for f in files:
            client.log_artifact(job.run_id, str(f), artifact_dir)
    client.log_batch(job.run_id, tags=[RunTag(mlflow_names.eval_config_tag(job.name), job.config_sha256)])
    # the completion marker, last: a rerun skips this pair only once everything above is logged
    client.log_batch(job.run_id, tags=[RunTag(mlflow_names.eval_done_tag(job.name), record["date"])])
    return {"run_id": job.run_id, "name": job.name, "logged": len(batch), "already": len(values) - len(batch),
            "seconds": time.time() - t0}
