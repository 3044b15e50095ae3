"""Reading sweeps back from MLflow (experiments, runs, the launches' specs) and the trial rows and
parameter values of ``xaisweep report``; ``best``, ``reproduce`` and warm start read through here too."""
from __future__ import annotations

import math
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml

from sweeps.spec.parse import ParamSpec, SpecError, SweepSpec, parse_spec
from trainables.mlflow_names import SPEC_ARTIFACT

ARTIFACT_DIR = "report"
BOUNDARY_FRACTION = 0.05

HISTORY_PNG = "optimization_history.png"
PARALLEL_PNG = "parallel_coordinates.png"
IMPORTANCE_PNG = "param_importances.png"
REPORT_MD = "report.md"
REPORT_HTML = "report.html"
TRIALS_CSV = "trials.csv"

# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class TrialRow:
    """One analysed (FINISHED) trial run: ``value`` is its first objective, ``values`` every objective
    of the report (spec order)."""

    run_id: str
    run_name: str
    parent_run_id: str
    start_time: int  # ms since the epoch
    value: float
    params: dict[str, Any]  # active search parameters only, typed as in the spec
    early_stopped: bool
    values: tuple[float, ...] = ()
    end_time: int = 0  # ms since the epoch (0: unknown)
    seed: Optional[str] = None  # the logged ``seed`` param (None: unknown)


@dataclass(frozen=True)
class ReportResult:
    """What :func:`make_report` produced.

    Attributes:
        out_dir: the output directory.
        files: the files written (PNGs, ``report.md``, ``report.html``, ``trials.csv``).
        markdown: the text of ``report.md``.
        warnings: boundary warnings and problems met (skipped runs, importances unavailable, ...).
        importances: ``{param: importance}`` (sums to 1, descending); empty if not computable.
        importance_note: why importances are missing, or a caution about them; ``None`` if none.
        n_finished: FINISHED trial runs (early-stopped ones included).
        n_failed: FAILED trial runs.
        n_early_stopped: FINISHED runs tagged ``early_stopped=true`` (a subset of ``n_finished``).
        n_analysed: finished runs that reported the metric and entered the analysis.
        experiment_id, metric, mode: the sweep's experiment and objective.
        parent_run_ids: the parent runs whose trials were read.
        logged_to: the parent run the files were logged to (``None`` if not logged).
        best: the best trial (by the first objective).
        trials: every analysed trial, in start-time order.
        objectives: every ``(metric, mode)`` the report judged the trials on (one pair for a single objective).
        pareto: a multi-objective report's configurations (Pareto members first,
            :class:`sweeps.results.pareto_report.ConfigPoint`); ``()`` for one objective.
        hypervolume: ``(run_id, hypervolume after that trial completed)`` in completion order (multi-objective).
    """

    out_dir: Path
    files: tuple[Path, ...]
    markdown: str
    warnings: tuple[str, ...]
    importances: dict[str, float]
    importance_note: Optional[str]
    n_finished: int
    n_failed: int
    n_early_stopped: int
    n_analysed: int
    experiment_id: str
    metric: str
    mode: str
    parent_run_ids: tuple[str, ...]
    logged_to: Optional[str]
    best: TrialRow
    trials: tuple[TrialRow, ...] = field(repr=False, default=())
    objectives: tuple[tuple[str, str], ...] = ()
    pareto: tuple = field(repr=False, default=())
    hypervolume: tuple[tuple[str, float], ...] = field(repr=False, default=())


# --------------------------------------------------------------------------- MLflow reading


def find_experiment(client: Any, experiment: str) -> Any:
    """The MLflow experiment named ``experiment`` (or with that id).

    Raises:
        ValueError: no such experiment (the message lists the existing ones), or it is deleted.
    """
    from mlflow.exceptions import MlflowException

    exp = client.get_experiment_by_name(experiment)
    if exp is None:
        try:
            exp = client.get_experiment(experiment)
        except MlflowException:
            exp = None
        except Exception:  # noqa: BLE001 - e.g. a non-numeric id on a SQLite store
            exp = None
    if exp is None:
        names = _experiment_names(client)
        shown = ", ".join(repr(n) for n in names[:50]) + (" ..." if len(names) > 50 else "")
        raise ValueError(
            f"no MLflow experiment {experiment!r} (neither a name nor an id); "
            f"existing experiments: {shown or '(none)'}"
        )
    if exp.lifecycle_stage == "deleted":
        raise ValueError(f"MLflow experiment {experiment!r} is deleted (restore it first)")
    return exp


def _experiment_names(client: Any) -> list[str]:
    names: list[str] = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        names += [e.name for e in page]
        token = page.token
        if not token:
            return sorted(names)


def all_runs(client: Any, experiment_id: str) -> list[Any]:
    """Every run of the experiment (every page of ``search_runs``)."""
    runs: list[Any] = []
    token = None
    while True:
        page = client.search_runs([experiment_id], max_results=1000, page_token=token)
        runs += list(page)
        token = page.token
        if not token:
            return runs


def load_run_spec(client: Any, run_id: str) -> Optional[SweepSpec]:
    """The parent run's ``spec.yaml`` artifact as a spec, ``None`` if it has none.

    Raises:
        ValueError: the artifact is not a valid spec.
    """
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, SPEC_ARTIFACT, tmp)
        except Exception:  # noqa: BLE001 - missing artifact / unreachable store: treated alike
            return None
        text = Path(path).read_text(encoding="utf-8")
    try:
        return parse_spec(yaml.safe_load(text), source=f"runs:/{run_id}/{SPEC_ARTIFACT}")
    except (SpecError, yaml.YAMLError) as err:
        raise ValueError(f"the {SPEC_ARTIFACT} of parent run {run_id} is invalid: {err}") from err


# --------------------------------------------------------------------------- params


def _parse_value(p: ParamSpec, raw: str) -> Any:
    """A logged (string) param value as the spec type; ``ValueError`` if it does not fit."""
    if p.is_categorical:
        for v in p.values:
            if str(v) == raw:
                return v
        try:  # e.g. a choice of [16, 32] logged as "16.0" after the trainable coerced it
            x = float(raw)
        except ValueError:
            x = None
        if x is not None:
            for v in p.values:
                if isinstance(v, (int, float)) and not isinstance(v, bool) and float(v) == x:
                    return v
        raise ValueError(f"{raw!r} is not one of {list(p.values)!r}")
    if p.type == "int":
        x = float(raw)
        if not x.is_integer():
            raise ValueError(f"{raw!r} is not an integer")
        return int(x)
    x = float(raw)
    if not math.isfinite(x):
        raise ValueError(f"{raw!r} is not finite")
    return x


def active_params(spec: SweepSpec, logged: Mapping[str, str]) -> dict[str, Any]:
    """The search parameters a run sampled: spec order, ``when`` clauses honoured."""
    out: dict[str, Any] = {}
    for p in spec.params:
        if not p.is_active(out) or p.name not in logged:
            continue
        out[p.name] = _parse_value(p, logged[p.name])
    return out


def is_log_scale(p: ParamSpec) -> bool:
    """Whether the parameter is searched in log space (``loguniform``, ``int`` with ``log``)."""
    return p.type == "loguniform" or (p.type == "int" and p.log)


def range_position(p: ParamSpec, v: Any) -> float:
    """``v`` on ``[0, 1]`` along the spec's range (log space for log params, index for categories)."""
    if p.is_categorical:
        idx = next(i for i, c in enumerate(p.values) if c == v and type(c) is type(v))
        return idx / (len(p.values) - 1) if len(p.values) > 1 else 0.5
    lo, hi, x = float(p.low), float(p.high), float(v)
    if is_log_scale(p):
        lo, hi, x = math.log(lo), math.log(hi), math.log(x)
    return (x - lo) / (hi - lo)


def format_value(v: Any) -> str:
    """A parameter value as the report shows it (floats to 4 significant digits)."""
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def boundary_warnings(spec: SweepSpec, best_params: Mapping[str, Any]) -> list[str]:
    """Warnings for numeric parameters of the best trial within 5% of the range from a bound."""
    out = []
    for p in spec.params:
        if p.is_categorical or p.name not in best_params:
            continue
        pos = range_position(p, best_params[p.name])
        side = "lower" if pos <= BOUNDARY_FRACTION else "upper" if pos >= 1 - BOUNDARY_FRACTION else None
        if side:
            out.append(
                f"best {p.name}={format_value(best_params[p.name])} sits on the {side} boundary of "
                f"[{p.low:g}, {p.high:g}]: consider widening the search space"
            )
    return out


__all__ = [
    "ARTIFACT_DIR", "BOUNDARY_FRACTION", "HISTORY_PNG", "IMPORTANCE_PNG", "PARALLEL_PNG", "REPORT_HTML", "REPORT_MD",
    "TRIALS_CSV", "ReportResult", "TrialRow", "active_params", "all_runs", "boundary_warnings", "find_experiment",
    "format_value", "is_log_scale", "load_run_spec", "range_position",
]
