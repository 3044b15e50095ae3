"""Pre-Ray part of ``xaisweep evaluate SWEEP --with SPEC``: the :class:`EvaluationPlan` and every check.

Reads the sweep back from MLflow, keeps its FINISHED trial runs, finds which saved a model (the evaluation
trainable's ``ModelEvaluation.model_artifact``), builds one :class:`trainables.evaluation_run.EvaluationJob`
per (model, point of the evaluation spec) and sorts them into done (the run holds the point's ``done``
marker with the same config fingerprint) and to run. Every problem is collected and raised at once
(:class:`EvaluationPreflightError`, a :class:`sweeps.launch.plan.PreflightError`) before Ray starts:

* an unknown sweep, an evaluation spec that does not parse, a trainable that evaluates no saved model;
* a spec key that is no knob of the evaluation (a data or model key: those come from each model's own
  trial, so that the vocabulary and data are the model's);
* a sweep whose trials come from a trainable the evaluation cannot read (restorability needs a masked LM:
  ``mlm`` trials), a sweep without any saved model;
* a model whose data file changed since it was trained (the sha256 its run recorded differs from the
  file's now: the vocabulary and splits would differ), a config the evaluation trainable refuses, an I/O
  problem of the evaluation's own data (``ModelEvaluation.io_checks``);
* an evaluation name that a run already holds from a different config.
"""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeps.launch.plan import PreflightError
from sweeps.spec.evaluation import EvaluationSpec, evaluation_points, load_evaluation_spec
from trainables import TRAINABLES, get_trainable, mlflow_names
from trainables.evaluation_run import EvaluationJob, config_fingerprint

#: ``--with NAME``: the evaluation specs shipped under sweeps/ (``evaluate_<name>.yaml``)
NAMED_EVALUATIONS = ("faithfulness", "faithfulness_transformer", "correlation", "rationale", "restorability")
SPEC_DIR = Path(__file__).resolve().parents[1]


class EvaluationPreflightError(PreflightError):
    """The evaluation cannot start; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        ValueError.__init__(self, "the evaluation cannot start:\n" + "\n".join(f"  - {p}" for p in problems))


@dataclass(frozen=True)
class SkippedRun:
    """A finished trial run without a saved model: its id, name, why, and whether ASHA stopped it."""

    run_id: str
    run_name: str
    reason: str
    early_stopped: bool = False


@dataclass(frozen=True)
class EvaluationPlan:
    """A checked evaluation of a sweep (nothing started yet).

    Attributes:
        sweep: the sweep (MLflow experiment) name as given; ``experiment_id`` its id.
        tracking_uri: the MLflow store.
        spec: the evaluation spec; ``spec_path`` the file it was read from.
        models: the runs with a saved model, in start order.
        jobs: the (model, point) pairs to evaluate; ``done``: those already complete.
        skipped: finished trial runs without a saved model.
    """

    sweep: str
    experiment_id: str
    tracking_uri: str
    spec: EvaluationSpec
    spec_path: str
    models: tuple[str, ...]
    jobs: tuple[EvaluationJob, ...]
    done: tuple[EvaluationJob, ...]
    skipped: tuple[SkippedRun, ...]


def resolve_spec_path(value: str) -> Path:
    """``--with`` value: a named default (``faithfulness`` -> ``sweeps/evaluate_faithfulness.yaml``) unless a
    file of that name exists, else the path as given."""
    path = Path(value)
    if value in NAMED_EVALUATIONS and not path.exists():
        return SPEC_DIR / f"evaluate_{value}.yaml"
    return path


def _readers_hint(model_trainables: list[str]) -> str:
    """``" (faithfulness_transformer reads finetune models)"``: the evaluation trainables that read them."""
    readers = []
    for name, entry in TRAINABLES.items():
        evaluation = entry.trainable.evaluation
        if evaluation is not None and set(model_trainables) <= set(evaluation.model_trainables):
            readers.append(name)
    return f" ({', '.join(readers)} reads {', '.join(model_trainables)} models)" if readers else ""


def _finished_trial_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every FINISHED trial run (a Ray trial of a launch; not reproductions) of the experiment, oldest first."""
    runs, token = [], None
    query = f"attributes.status = 'FINISHED' and tags.{mlflow_names.RAY_TRIAL_ID} != ''"
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token,
                                  order_by=["attributes.start_time ASC"])
        runs += list(page)
        token = page.token
        if not token:
            return runs


def _has_artifact(client: Any, run_id: str, artifact: str) -> bool:
    parent = str(Path(artifact).parent)
    listed = client.list_artifacts(run_id, None if parent in ("", ".") else parent)
    return any(f.path == artifact for f in listed)


def _data_changes(run: Any, config: dict[str, Any]) -> list[str]:
    """Data files of the model's config whose sha256 differs from what its run recorded (or that are gone)."""
    from trainables.tracking import data_files

    recorded = {k[len("data_sha256."):]: v for k, v in run.data.tags.items() if k.startswith("data_sha256.")}
    if not recorded:
        return []
    now = data_files(config)
    now_by_key: dict[str, list[str]] = {}
    for info in now.values():
        now_by_key.setdefault(info["key"], []).append(info["sha256"])
    out = []
    for tag_key, sha in sorted(recorded.items()):
        # data_sha256.<config key>, or data_sha256.<config key>.<i> for one of several files of a key
        stem, _, index = tag_key.rpartition(".")
        key = stem if index.isdigit() and tag_key not in now_by_key else tag_key
        current = now_by_key.get(key, [])
        if sha not in current:
            what = f"now {current[0][:12]}" if current else "the file is gone"
            out.append(f"config.{key}: the data file of {config.get(key)!r} changed since run "
                       f"{run.info.run_id[:12]} trained its model (sha256 {sha[:12]} then, {what}): its vocabulary "
                       f"and splits would differ; restore that file (or evaluate models trained on this one)")
    return out


def _trial_config(client: Any, run_id: str) -> dict[str, Any]:
    from sweeps.results.best import trial_config

    return dict(trial_config(client, run_id).get("config") or {})


def plan_evaluation(sweep: str, spec_value: str, *, tracking_uri: str) -> EvaluationPlan:
    """Every check of ``xaisweep evaluate SWEEP --with SPEC`` and the jobs; raises :class:`EvaluationPreflightError`
    (or :class:`sweeps.spec.checks.SpecError` for a spec that does not parse) listing every problem."""
    from mlflow.tracking import MlflowClient

    from sweeps.launch.preflight import config_problems
    from sweeps.results.report_data import find_experiment

    path = resolve_spec_path(spec_value)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        named = ", ".join(NAMED_EVALUATIONS)
        raise EvaluationPreflightError([f"--with {spec_value}: cannot read evaluation spec {path} "
                                        f"({err.strerror or err}); give a spec file or one of {named}"]) from None
    except UnicodeDecodeError:
        text = None
    spec = load_evaluation_spec(path, known_trainables=list(TRAINABLES))  # SpecError: every problem of the spec
    entry = get_trainable(spec.trainable)
    evaluation = entry.trainable.evaluation
    if evaluation is None:
        able = sorted(n for n, e in TRAINABLES.items() if e.trainable.evaluation is not None)
        raise EvaluationPreflightError([f"trainable: {spec.trainable!r} evaluates no saved model; an evaluation "
                                        f"spec names one of {', '.join(able)}"])
    problems: list[str] = []
    fields = {f.name for f in dataclasses.fields(entry.trainable.config)}
    knobs = sorted(evaluation.knobs)
    for where, keys in (("config", list(spec.config)), ("search_space", [p.name for p in spec.params])):
        for key in keys:
            if key == evaluation.model_key:
                problems.append(f"{where}.{key}: the model is each trial's saved model; do not set it")
            elif key not in evaluation.knobs:
                source = ("comes from each model's own trial config (the data, vocabulary and model it was "
                          "trained with)") if key in fields and evaluation.inherits_trial_config else \
                    "is no setting of this evaluation"
                problems.append(f"{where}.{key}: {key!r} {source}; an evaluation with {spec.trainable} sets only "
                                f"its knobs: {', '.join(knobs)}")
    client = MlflowClient(tracking_uri)
    try:
        experiment = find_experiment(client, sweep)
    except ValueError as err:
        raise EvaluationPreflightError(problems + [f"sweep: {err}"]) from None
    if problems:
        raise EvaluationPreflightError(problems)

    runs = _finished_trial_runs(client, experiment.experiment_id)
    if not runs:
        raise EvaluationPreflightError([f"sweep {sweep!r} has no finished trial run (run it first: xaisweep run SPEC)"])
    foreign = sorted({r.data.tags.get(mlflow_names.TRAINABLE, "?") for r in runs} - set(evaluation.model_trainables))
    if foreign:
        raise EvaluationPreflightError([
            f"--with {spec_value}: {spec.trainable} evaluates models saved by {', '.join(evaluation.model_trainables)} "
            f"trials ({evaluation.model_artifact}); sweep {sweep!r} has {', '.join(foreign)} trials, whose models it "
            f"cannot read" + _readers_hint(foreign)])
    models, skipped = [], []
    for r in runs:
        if _has_artifact(client, r.info.run_id, evaluation.model_artifact):
            models.append(r)
        else:
            early = mlflow_names.is_early_stopped(r.data.tags)
            why = ("stopped early by the scheduler (a model is saved when a trial finishes)" if early else
                   f"no {evaluation.model_artifact} (save_model: {r.data.params.get('save_model', 'false').lower()})")
            skipped.append(SkippedRun(r.info.run_id, r.info.run_name or "", why, early))
    if not models:
        raise EvaluationPreflightError([
            f"sweep {sweep!r} has no saved model: none of its {len(runs)} finished trial runs has "
            f"{evaluation.model_artifact} ({sum(s.early_stopped for s in skipped)} stopped early); set "
            f"save_model: true in the sweep's config and run it again"])

    points = evaluation_points(spec)
    spec_sha = hashlib.sha256(path.read_bytes()).hexdigest()
    jobs, done, seen_problems, checked = [], [], set(), set()
    conflicts: dict[str, list[str]] = {}
    for r in models:
        base: dict[str, Any] = {}
        if evaluation.inherits_trial_config:
            try:
                trained = _trial_config(client, r.info.run_id)
            except ValueError as err:
                problems.append(f"run {r.info.run_id[:12]}: {err}")
                continue
            base = {k: v for k, v in trained.items() if k in fields and k != evaluation.model_key}
            for line in _data_changes(r, trained):
                if line not in seen_problems:
                    seen_problems.add(line)
                    problems.append(line)
        for point in points:
            config = {**base, **dict(evaluation.fixed), **spec.config, **point.values}
            for line in config_problems(entry, config):
                line = f"{point.name}: {line}"
                if line not in seen_problems:
                    seen_problems.add(line)
                    problems.append(line)
            key = repr(sorted(config.items(), key=lambda kv: kv[0]))
            if key not in checked:
                checked.add(key)
                try:
                    parsed = entry.parse_config(config)
                except ValueError:
                    parsed = None
                for line in (evaluation.io_checks(parsed) if parsed is not None else []):
                    if line not in seen_problems:
                        seen_problems.add(line)
                        problems.append(f"{point.name}: {line}")
            sha = config_fingerprint(spec.trainable, config)
            job = EvaluationJob(tracking_uri=tracking_uri, run_id=r.info.run_id, name=point.name,
                                trainable=spec.trainable, config=config, config_sha256=sha,
                                provenance={"spec": {"path": str(path.resolve()), "sha256": spec_sha},
                                            "point": dict(point.values), "spec_text": text})
            tags = r.data.tags
            if mlflow_names.eval_done_tag(point.name) in tags:
                if tags.get(mlflow_names.eval_config_tag(point.name)) != sha:
                    conflicts.setdefault(point.name, []).append(r.info.run_id)
                done.append(job)
            else:
                jobs.append(job)
    for point_name, run_ids in conflicts.items():
        problems.append(f"evaluation {point_name!r} is already in {len(run_ids)} run(s) (e.g. {run_ids[0][:12]}) from "
                        f"another config (its tag {mlflow_names.eval_config_tag(point_name)} differs): give this "
                        f"evaluation spec another name: (its metrics are eval/<name>/...)")
    if problems:
        raise EvaluationPreflightError(problems)
    return EvaluationPlan(sweep=sweep, experiment_id=experiment.experiment_id, tracking_uri=tracking_uri, spec=spec,
                          spec_path=str(path), models=tuple(r.info.run_id for r in models), jobs=tuple(jobs),
                          done=tuple(done), skipped=tuple(skipped))


def pending_summary(plan: EvaluationPlan) -> list[str]:
    """The lines ``xaisweep evaluate`` prints before it starts: skipped runs (one each, then a count), the
    points, the pairs already done and those to run."""
    lines = [f"skipped {s.run_id[:12]} ({s.run_name}): {s.reason}" for s in plan.skipped]
    if plan.skipped:
        lines.append(f"{len(plan.skipped)} finished trial run(s) without a saved model skipped")
    names = sorted({j.name for j in plan.jobs + plan.done})
    lines.append(f"{len(plan.models)} model(s) x {len(names)} evaluation(s) ({', '.join(names)}): "
                 f"{len(plan.done)} pair(s) done already, {len(plan.jobs)} to run")
    return lines


__all__ = ["NAMED_EVALUATIONS", "EvaluationPlan", "EvaluationPreflightError", "SkippedRun", "pending_summary",
           "plan_evaluation", "resolve_spec_path"]
