"""The names of the MLflow tags and run roles that xaisweep writes and reads back.

Trials write some of them (:mod:`trainables.tracking`, :mod:`trainables.ray_trainable`), the
launcher and the readers in :mod:`sweeps` (``report``, ``best``, ``reproduce``, warm start,
resume) the others; every writer and reader takes the name from here. This module imports
nothing of the project, so both sides can use it without an import cycle.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

# ----------------------------------------------------------------------- MLflow's own tags
PARENT_RUN_ID = "mlflow.parentRunId"
RUN_NAME = "mlflow.runName"
EXPERIMENT_KIND = "mlflow.experimentKind"

# ----------------------------------------------------------------------- roles
#: tag naming what a run is: a launch of a sweep (the parent run) or a ``xaisweep reproduce``
ROLE = "xaisweep.role"
ROLE_SWEEP = "sweep"
ROLE_REPRODUCE = "reproduce"

# ----------------------------------------------------------------------- every run
GIT_COMMIT = "git_commit"
GIT_DIRTY = "git_dirty"
SWEEP = "sweep"
TRAINABLE = "trainable"
SEED = "seed"

# ----------------------------------------------------------------------- parent run (a launch)
METRIC = "metric"
MODE = "mode"
#: every objective of the launch, JSON ``[[metric, mode], ...]`` (spec order; one pair for a single
#: objective); ``metric`` / ``mode`` hold the first one. Launches older than the tag have only those two.
OBJECTIVES = "objectives"
SPEC_FINGERPRINT = "spec_fingerprint"
WARM_START = "warm_start"
RESUMES = "resumes"
BEST_RUN_ID = "best_run_id"

# ----------------------------------------------------------------------- trial runs
RAY_TRIAL_ID = "ray_trial_id"
RAY_TRIAL_NAME = "ray_trial_name"
DEVICE = "device"
HOST = "host"
ATTEMPTS = "attempts"
RESUMED = "resumed"
RESUMED_FROM_STEP = "resumed_from_step"
PREVIOUS_FAILURE_REASON = "previous_failure_reason"
DUPLICATE_OF = "duplicate_of"
RAY_FAILURES = "ray_failures"
ORPHANED = "orphaned"

# ----------------------------------------------------------------------- how a run ended
EARLY_STOPPED = "early_stopped"
STOPPED_AT_ITERATION = "stopped_at_iteration"
FAILURE_REASON = "failure_reason"
FAILURE_TRACEBACK = "failure_traceback"
#: a run (trial or launch) ended KILLED by an interruption; ``--resume`` continues it
INTERRUPTED = "interrupted"

# ----------------------------------------------------------------------- reproduce runs
REPRODUCES = "reproduces"
SEEDS = "seeds"

#: the value of a boolean tag that holds (``early_stopped``, ``interrupted``, ``resumed``)
TRUE = "true"

# ----------------------------------------------------------------------- artifacts
#: the spec of a launch, logged to its parent run (what ``report``, ``best`` and warm start read)
SPEC_ARTIFACT = "spec.yaml"
#: the typed config of a trial, logged to its run (what ``best --export`` and ``reproduce`` read)
CONFIG_ARTIFACT = "config.yaml"

# ----------------------------------------------------------------------- evaluations (xaisweep evaluate)
#: every evaluation's metrics, tags and artifacts in the model's run: ``eval/<evaluation name>/...``
EVAL_PREFIX = "eval/"


def eval_metric(name: str, metric: str) -> str:
    """``eval/<name>/<metric>``: a metric of evaluation ``name`` (``metric`` as the evaluation trainable names it)."""
    return f"{EVAL_PREFIX}{name}/{metric}"


def eval_done_tag(name: str) -> str:
    """``eval/<name>/done``: written last (the date), once every metric and artifact of the evaluation is logged."""
    return f"{EVAL_PREFIX}{name}/done"


def eval_config_tag(name: str) -> str:
    """``eval/<name>/config_sha256``: the fingerprint of the evaluation config (a rerun under the same name with
    another config is refused)."""
    return f"{EVAL_PREFIX}{name}/config_sha256"


def eval_artifact_dir(name: str) -> str:
    """``eval/<name>``: the artifact directory of the evaluation's config, provenance and files."""
    return f"{EVAL_PREFIX}{name}"


# ----------------------------------------------------------------------- search filters
#: ``search_runs`` filter for the parent runs (launches) of sweeps
SWEEP_LAUNCHES = f"tags.`{ROLE}` = '{ROLE_SWEEP}'"


def children_of(parent_run_id: str) -> str:
    """``search_runs`` filter for the child runs of launch ``parent_run_id``."""
    return f"tags.`{PARENT_RUN_ID}` = '{parent_run_id}'"


def objectives_value(objectives: Sequence[tuple[str, str]]) -> str:
    """The :data:`OBJECTIVES` tag value of ``((metric, mode), ...)``."""
    return json.dumps([[m, d] for m, d in objectives])


def objectives_of(tags: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """``((metric, mode), ...)`` of a launch (parent run) from its tags: :data:`OBJECTIVES`, else the
    single :data:`METRIC` / :data:`MODE` pair of a launch older than that tag.

    Raises:
        KeyError: the tags name no objective.
    """
    raw = tags.get(OBJECTIVES)
    if raw:
        try:
            pairs = json.loads(raw)
            if pairs and all(isinstance(p, list) and len(p) == 2 for p in pairs):
                return tuple((str(m), str(d)) for m, d in pairs)
        except ValueError:
            pass
    return ((tags[METRIC], tags[MODE]),)


def is_early_stopped(tags: Mapping[str, str]) -> bool:
    """Whether a run's tags say the scheduler stopped it early (its last metrics are not final)."""
    return tags.get(EARLY_STOPPED, "").lower() == TRUE


__all__ = [
    "ATTEMPTS", "BEST_RUN_ID", "CONFIG_ARTIFACT", "DEVICE", "DUPLICATE_OF", "EARLY_STOPPED", "EXPERIMENT_KIND", "FAILURE_REASON",
    "FAILURE_TRACEBACK", "GIT_COMMIT", "GIT_DIRTY", "HOST", "INTERRUPTED", "METRIC", "MODE", "OBJECTIVES", "ORPHANED",
    "PARENT_RUN_ID", "PREVIOUS_FAILURE_REASON", "RAY_FAILURES", "RAY_TRIAL_ID", "RAY_TRIAL_NAME", "REPRODUCES",
    "RESUMED", "RESUMED_FROM_STEP", "RESUMES", "ROLE", "ROLE_REPRODUCE", "ROLE_SWEEP", "RUN_NAME", "SEED", "SEEDS",
    "SPEC_ARTIFACT", "SPEC_FINGERPRINT", "STOPPED_AT_ITERATION", "SWEEP", "SWEEP_LAUNCHES", "TRAINABLE", "TRUE", "WARM_START",
    "EVAL_PREFIX", "children_of", "eval_artifact_dir", "eval_config_tag", "eval_done_tag", "eval_metric",
    "is_early_stopped", "objectives_of", "objectives_value",
]
