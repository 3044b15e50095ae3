"""``xaisweep best`` and ``xaisweep reproduce``: read sweeps back from MLflow and re-run trials locally."""
from __future__ import annotations

import math
import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from sweeps.results.report_data import all_runs, find_experiment, load_run_spec
from sweeps.spec.parse import SpecError, read_yaml
from trainables import mlflow_names


Objectives = tuple[tuple[str, str], ...]
"""``((metric, mode), ...)``: what ``best`` ranks by (one pair) or the Pareto set is over (several)."""


def sweep_objectives(client: MlflowClient, experiment_id: str) -> Objectives:
    """Every ``(metric, mode)`` of the experiment's latest sweep launch (its parent run's tags; a launch
    from before multi-objective sweeps has the one ``metric`` / ``mode`` pair)."""
    parents = client.search_runs(
        [experiment_id], mlflow_names.SWEEP_LAUNCHES, order_by=["attributes.start_time DESC"], max_results=1
    )
    if not parents:
        raise ValueError(f"the experiment has no xaisweep launch (parent run with tag "
                         f"{mlflow_names.ROLE}={mlflow_names.ROLE_SWEEP})")
    return mlflow_names.objectives_of(parents[0].data.tags)


def sweep_objective(client: MlflowClient, experiment_id: str) -> tuple[str, str]:
    """(metric, mode) of the experiment's latest sweep launch: its first objective."""
    return sweep_objectives(client, experiment_id)[0]


def resolve_objectives(
    sweep: Objectives, metrics: Sequence[str] = (), modes: Sequence[str] = ()
) -> Objectives:
    """What to rank by: ``metrics`` (any metric the runs logged, e.g. ``eval/<name>/...``) with
    ``modes`` (one per metric, or none), else the sweep's own objectives.

    A metric given without a mode takes the sweep's mode when it is one of the sweep's objectives,
    else the paper table's rule (:func:`sweeps.results.paper_table.lower_is_better`: ``*loss*``,
    ``*deletion*``, ``*sufficiency*``, ``*step_time*`` are minimised, the rest maximised).

    Raises:
        ValueError: modes given but not one per metric, a mode that is not min/max, a metric twice.
    """
    from sweeps.results.paper_table import lower_is_better

    if not metrics:
        if modes:
            raise ValueError("--mode needs a --metric to go with it")
        return tuple(sweep)
    if modes and len(modes) != len(metrics):
        raise ValueError(f"{len(modes)} --mode for {len(metrics)} --metric: give none, or one per --metric in "
                         f"the same order")
    bad = [m for m in modes if m not in ("min", "max")]
    if bad:
        raise ValueError(f"--mode must be min or max (got {', '.join(bad)})")
    twice = sorted({m for m in metrics if list(metrics).count(m) > 1})
    if twice:
        raise ValueError(f"--metric {', '.join(twice)} given twice")
    known = dict(sweep)
    return tuple((m, modes[i] if modes else known.get(m, "min" if lower_is_better(m) else "max"))
                 for i, m in enumerate(metrics))


def trial_config(client: MlflowClient, run_id: str) -> dict[str, Any]:
    """``{"trainable": ..., "config": {...}}`` from the run's ``config.yaml`` artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, mlflow_names.CONFIG_ARTIFACT, tmp)
        except Exception as err:  # noqa: BLE001
            raise ValueError(f"run {run_id} has no config.yaml artifact ({err})") from None
        return yaml.safe_load(Path(path).read_text())


@dataclass(frozen=True)
class BestRow:
    """One run: ``value`` is its first objective, ``values`` every objective (in order)."""

    run_id: str
    run_name: str
    value: float
    params: dict[str, str]
    early_stopped: bool
    seed: Optional[str] = None
    #: search parameters whose ``when`` clause does not hold for this run (shown as "–")
    inactive: frozenset = frozenset()
    values: tuple[float, ...] = ()

    @property
    def objective_values(self) -> tuple[float, ...]:
        return self.values or (self.value,)

    @property
    def sds(self) -> tuple[float, ...]:
        return tuple(math.nan for _ in self.objective_values)

    @property
    def n(self) -> int:
        return 1


@dataclass(frozen=True)
class ConfigRow:
    """One configuration (the search parameters without ``seed``) over its seeds.

    ``value`` is the mean of the runs' metric, ``sd`` the sample standard deviation
    (``nan`` for one run), ``n`` the number of runs; ``runs`` best first. With several objectives
    ``values`` / ``sds`` hold the mean / sd of each (``value``, ``sd``: the first).
    """

    key: tuple
    value: float
    sd: float
    n: int
    runs: tuple[BestRow, ...]
    values: tuple[float, ...] = ()
    sds: tuple[float, ...] = ()

    @property
    def objective_values(self) -> tuple[float, ...]:
        return self.values or (self.value,)

    @property
    def run_id(self) -> str:
        return self.runs[0].run_id

    @property
    def params(self) -> dict[str, str]:
        return self.runs[0].params

    @property
    def inactive(self) -> frozenset:
        return self.runs[0].inactive

    @property
    def early_stopped(self) -> bool:
        return any(r.early_stopped for r in self.runs)

    @property
    def seeds(self) -> list[str]:
        return [r.seed for r in self.runs if r.seed is not None]


SEED_KEYS = ("seed",)


def _latest_spec(client: MlflowClient, experiment_id: str):
    parents = client.search_runs([experiment_id], mlflow_names.SWEEP_LAUNCHES,
                                 order_by=["attributes.start_time DESC"], max_results=1)
    if not parents:
        return None
    try:
        return load_run_spec(client, parents[0].info.run_id)
    except ValueError:
        return None


def _inactive(spec, params: dict[str, str]) -> frozenset:
    """Search parameters of ``spec`` whose ``when`` clause does not hold for the logged ``params``."""
    if spec is None:
        return frozenset()
    active: dict[str, Any] = {}
    out = set()
    for p in spec.params:
        raw = params.get(p.name)
        value = next((v for v in p.values if str(v) == raw), raw) if p.is_categorical else raw
        if p.is_active(active):
            active[p.name] = value
        else:
            out.add(p.name)
    return frozenset(out)


def _check_top(top: int) -> None:
    if isinstance(top, bool) or not isinstance(top, int) or top < 1:
        raise ValueError(f"--top must be an integer >= 1, got {top!r}")


def objective_trials(
    tracking_uri: str, experiment: str, objectives: Optional[Objectives] = None
) -> tuple[Objectives, list[BestRow], Any]:
    """Every finished trial run of ``experiment`` that logged every objective (a finite value), best
    first by the first objective: ``(objectives, rows, spec)``. ``objectives`` default to the sweep's
    (:func:`sweep_objectives`); ``spec`` is the latest launch's (``None`` if unknown)."""
    client = MlflowClient(tracking_uri)
    exp = find_experiment(client, experiment)
    objectives = tuple(objectives or sweep_objectives(client, exp.experiment_id))
    spec = _latest_spec(client, exp.experiment_id)
    runs = client.search_runs(
        [exp.experiment_id], f"attributes.status = 'FINISHED' and tags.{mlflow_names.RAY_TRIAL_ID} != ''", max_results=5000
    )
    rows = []
    for r in runs:
        values = [r.data.metrics.get(m) for m, _ in objectives]
        if all(v is not None and math.isfinite(v) for v in values):
            params = dict(r.data.params)
            rows.append(BestRow(r.info.run_id, r.info.run_name or "", float(values[0]), params,
                                mlflow_names.is_early_stopped(r.data.tags),
                                params.get("seed", r.data.tags.get(mlflow_names.SEED)),
                                _inactive(spec, params), tuple(float(v) for v in values)))
    rows.sort(key=lambda row: row.value, reverse=(objectives[0][1] == "max"))
    if not rows:
        what = " and ".join(repr(m) for m, _ in objectives)
        raise ValueError(f"experiment {experiment!r} has no finished trial with metric {what}")
    return objectives, rows, spec


def finished_trials(tracking_uri: str, experiment: str) -> tuple[str, str, list[BestRow], Any]:
    """Every finished trial run of ``experiment`` with the sweep metric (its first objective), best first:
    ``(metric, mode, rows, spec)`` (``spec``: the latest launch's, ``None`` if unknown)."""
    client = MlflowClient(tracking_uri)
    first = sweep_objective(client, find_experiment(client, experiment).experiment_id)
    (metric, mode), rows, spec = _first(objective_trials(tracking_uri, experiment, (first,)))
    return metric, mode, rows, spec


def best_runs(tracking_uri: str, experiment: str, *, top: int = 5,
              objectives: Optional[Objectives] = None) -> tuple[str, str, list[BestRow]]:
    """Top finished trial runs of ``experiment`` by the sweep metric (or the first of ``objectives``),
    one row per run: ``(metric, mode, rows)``."""
    _check_top(top)
    client = MlflowClient(tracking_uri)
    objectives = objectives or (sweep_objective(client, find_experiment(client, experiment).experiment_id),)
    (metric, mode), rows, _ = _first(objective_trials(tracking_uri, experiment, objectives[:1]))
    return metric, mode, rows[:top]


def _first(found: tuple[Objectives, list[BestRow], Any]) -> tuple[tuple[str, str], list[BestRow], Any]:
    return found[0][0], found[1], found[2]


def config_key(row: BestRow, spec) -> tuple:
    """What identifies a configuration: the active search parameters (all logged params when the
    spec is unknown) without :data:`SEED_KEYS`."""
    names = [p.name for p in spec.params] if spec is not None and spec.params else sorted(row.params)
    if spec is not None and not spec.params:
        names = []
    return tuple((k, row.params.get(k)) for k in names if k not in SEED_KEYS and k not in row.inactive)


def group_by_config(rows: list[BestRow], spec, mode: str) -> list[ConfigRow]:
    """Runs grouped by :func:`config_key`, ranked by the mean metric over seeds (best first); with
    several objectives per row (``values``) each one's mean and sd, ranked by the first. Runs of the same
    seed (a configuration drawn twice) are averaged into one point first (:func:`sweeps.results.pareto.seed_points`):
    ``n`` counts seeds, ``runs`` every run."""
    groups: dict[tuple, list[BestRow]] = {}
    for r in rows:
        groups.setdefault(config_key(r, spec), []).append(r)
    from sweeps.results.pareto import seed_points

    out = []
    for key, members in groups.items():
        # one point per seed: a configuration the searcher drew twice counts each seed once
        points = seed_points([m.objective_values for m in members], [m.seed for m in members])
        columns = list(zip(*points))
        means = tuple(statistics.fmean(c) for c in columns)
        sds = tuple(statistics.stdev(c) if len(c) > 1 else float("nan") for c in columns)
        multi = len(columns) > 1
        out.append(ConfigRow(key, means[0], sds[0], len(points), tuple(members),
                             means if multi else (), sds if multi else ()))
    out.sort(key=lambda c: c.value, reverse=(mode == "max"))
    return out


def reproduction_rows(client: MlflowClient, experiment_id: str, metric: str | Sequence[str], spec) -> list[BestRow]:
    """One row per seed of every ``xaisweep reproduce`` run of the experiment: step ``i`` of its
    metric history is seed ``seed + i`` (its logged ``seed`` param is the first seed). With several
    metrics, a seed counts when it has every one of them (``values`` in that order)."""
    metrics = [metric] if isinstance(metric, str) else list(metric)
    out = []
    runs = client.search_runs([experiment_id], f"tags.`{mlflow_names.ROLE}` = '{mlflow_names.ROLE_REPRODUCE}' and attributes.status = 'FINISHED'",
                              max_results=5000)
    for r in runs:
        params = dict(r.data.params)
        try:
            base = int(params.get("seed", "0"))
        except ValueError:
            continue
        per_step: dict[int, dict[str, float]] = {}
        for name in metrics:
            for m in client.get_metric_history(r.info.run_id, name):
                if m.value == m.value:
                    per_step.setdefault(int(m.step), {})[name] = float(m.value)
        for step, got in sorted(per_step.items()):
            if len(got) < len(metrics):
                continue
            values = tuple(got[name] for name in metrics)
            out.append(BestRow(r.info.run_id, r.info.run_name or "", values[0],
                               {**params, "seed": str(base + step)}, False, str(base + step),
                               _inactive(spec, params), values if len(metrics) > 1 else ()))
    return out


def _rows_with_reproductions(tracking_uri: str, experiment: str, objectives: Optional[Objectives]
                             ) -> tuple[Objectives, list[BestRow], Any]:
    objectives, rows, spec = objective_trials(tracking_uri, experiment, objectives)
    client = MlflowClient(tracking_uri)
    exp = find_experiment(client, experiment)
    seen = {(config_key(r, spec), r.seed) for r in rows}
    for r in reproduction_rows(client, exp.experiment_id, [m for m, _ in objectives], spec):
        key = (config_key(r, spec), r.seed)
        if key not in seen:
            seen.add(key)
            rows.append(r)
    rows.sort(key=lambda row: row.value, reverse=(objectives[0][1] == "max"))
    return objectives, rows, spec


def best_configs(tracking_uri: str, experiment: str, *, top: int = 5,
                 objectives: Optional[Objectives] = None) -> tuple[str, str, list[ConfigRow]]:
    """Top configurations of ``experiment`` ranked by the mean over their seeds: ``(metric, mode, rows)``.

    The seeds of a configuration are its trial runs (``repeats``, a ``seed`` axis) and the seeds
    of ``xaisweep reproduce --seeds N`` runs of it; a (configuration, seed) pair counts once,
    the sweep's trial first. ``objectives``: rank by the first of these instead of the sweep metric.
    """
    _check_top(top)
    if objectives is None:
        client = MlflowClient(tracking_uri)
        objectives = (sweep_objective(client, find_experiment(client, experiment).experiment_id),)
    objectives, rows, spec = _rows_with_reproductions(tracking_uri, experiment, objectives[:1])
    (metric, mode), = objectives
    return metric, mode, group_by_config(rows, spec, mode)[:top]


@dataclass(frozen=True)
class ParetoSet:
    """The Pareto set of a sweep over ``objectives``: ``front`` (non-dominated rows, best first by the
    first objective) and ``dominated`` (the others), rows of configurations (mean over seeds) or of
    runs (``per_run``)."""

    objectives: Objectives
    front: tuple
    dominated: tuple
    per_run: bool
    #: runs left out: stopped early by the scheduler (their values are not final)
    early_stopped: int = 0


def pareto_set(tracking_uri: str, experiment: str, *, objectives: Optional[Objectives] = None,
               per_run: bool = False) -> ParetoSet:
    """The non-dominated configurations of ``experiment`` over ``objectives`` (default: the sweep's),
    each by its mean over seeds (:func:`group_by_config`, reproductions included), or single runs with
    ``per_run``. Ties and duplicates: equal means do not dominate each other, so both stay. Runs stopped
    early by the scheduler are left out (counted in ``early_stopped``)."""
    from sweeps.results.pareto import pareto_mask

    objectives, rows, spec = _rows_with_reproductions(tracking_uri, experiment, objectives)
    final = [r for r in rows if not r.early_stopped]
    if not final:
        raise ValueError(f"experiment {experiment!r}: every run with {' and '.join(m for m, _ in objectives)} "
                         f"was stopped early by the scheduler: no final values for a Pareto set")
    modes = [d for _, d in objectives]
    items = final if per_run else group_by_config(final, spec, modes[0])
    mask = pareto_mask([r.objective_values for r in items], modes)
    return ParetoSet(objectives, tuple(r for r, keep in zip(items, mask) if keep),
                     tuple(r for r, keep in zip(items, mask) if not keep), per_run, len(rows) - len(final))


def _nan_none(x: float) -> Optional[float]:
    return None if x != x else x


#: the key of an exported Pareto member: its objectives, its means (sds) and its place in the set
PARETO_KEY = "pareto"


def export_pareto(tracking_uri: str, experiment: str, path: Path, *, objectives: Optional[Objectives] = None,
                  per_run: bool = False) -> list[tuple[Path, dict[str, Any]]]:
    """Write one reproducible YAML per member of the Pareto set: ``path`` with ``-1``, ``-2``, ... before
    its suffix (``best.yaml`` -> ``best-1.yaml``, ...), in the order ``best`` prints them.

    Each file is a :func:`export_best` document (``metric`` / ``mode`` / ``value``: the first objective,
    so ``xaisweep reproduce FILE`` works as for a single objective) plus ``pareto``: ``metrics``,
    ``modes``, ``means`` and ``sds`` (per objective), ``member`` (1-based) and ``of`` (the set's size).
    """
    client = MlflowClient(tracking_uri)
    found = pareto_set(tracking_uri, experiment, objectives=objectives, per_run=per_run)
    path = Path(path)
    out = []
    for k, row in enumerate(found.front, 1):
        run = row if per_run else row.runs[0]
        cfg = trial_config(client, run.run_id)
        means = list(row.objective_values)
        sds = [math.nan] * len(means) if per_run else list(row.sds or (row.sd,))
        doc: dict[str, Any] = {
            "trainable": cfg["trainable"], "config": cfg["config"],
            "metric": found.objectives[0][0], "mode": found.objectives[0][1], "value": means[0],
        }
        if not per_run:
            doc.update({"sd": _nan_none(row.sd), "n": row.n, "seeds": row.seeds, "runs": [r.run_id for r in row.runs]})
        doc[PARETO_KEY] = {"metrics": [m for m, _ in found.objectives], "modes": [d for _, d in found.objectives],
                           "means": means, "sds": [_nan_none(x) for x in sds], "member": k, "of": len(found.front)}
        doc.update({"source_run_id": run.run_id, "experiment": experiment, "tracking_uri": tracking_uri})
        target = path.with_name(f"{path.stem}-{k}{path.suffix}")
        target.write_text(yaml.safe_dump(doc, sort_keys=False))
        out.append((target, doc))
    return out


def export_best(tracking_uri: str, experiment: str, path: Path, *, per_run: bool = False,
                objectives: Optional[Objectives] = None) -> dict[str, Any]:
    """Write the best configuration as a reproducible YAML (trainable, typed config, metric, source run).

    By default the best configuration by the mean over its seeds (``value`` is that mean,
    with ``sd``, ``n`` and the ``seeds`` it was measured on; the config is that of its best
    run); ``per_run`` takes the single best run instead. ``objectives``: rank by the first of
    these instead of the sweep metric.
    """
    client = MlflowClient(tracking_uri)
    if per_run:
        metric, mode, rows = best_runs(tracking_uri, experiment, top=1, objectives=objectives)
        best, extra = rows[0], {}
    else:
        metric, mode, configs = best_configs(tracking_uri, experiment, top=1, objectives=objectives)
        best = configs[0].runs[0]
        c = configs[0]
        extra = {"sd": None if c.sd != c.sd else c.sd, "n": c.n, "seeds": c.seeds,
                 "runs": [r.run_id for r in c.runs]}
    cfg = trial_config(client, best.run_id)
    doc = {
        "trainable": cfg["trainable"],
        "config": cfg["config"],
        "metric": metric,
        "mode": mode,
        "value": best.value if per_run else configs[0].value,
        **extra,
        "source_run_id": best.run_id,
        "experiment": experiment,
        "tracking_uri": tracking_uri,
    }
    Path(path).write_text(yaml.safe_dump(doc, sort_keys=False))
    return doc


def resolve_run_id(client: MlflowClient, prefix: str) -> str:
    """The one run whose id starts with ``prefix`` (``best`` prints 12-character prefixes)."""
    try:
        return client.get_run(prefix).info.run_id
    except Exception:  # noqa: BLE001 - not a full id: look for a prefix
        pass
    matches = []
    token = None
    while True:
        page = client.search_experiments(max_results=1000, page_token=token)
        for exp in page:
            matches += [r.info.run_id for r in all_runs(client, exp.experiment_id)
                        if r.info.run_id.startswith(prefix)]
        token = page.token
        if not token:
            break
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise ValueError(f"run id prefix {prefix!r} is ambiguous: {', '.join(sorted(matches)[:5])}")
    raise ValueError(f"no MLflow run {prefix!r} (or run id starting with it) in {client.tracking_uri}")


def exported_tracking_uri(source: str) -> Optional[str]:
    """The ``tracking_uri`` recorded in a ``best --export`` YAML (``None`` for a run id or no such key)."""
    path = Path(source)
    if not path.is_file():
        return None
    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError):
        return None
    uri = doc.get("tracking_uri") if isinstance(doc, dict) else None
    return uri if isinstance(uri, str) and uri else None


@dataclass
class Reproduction:
    metrics: list[str]
    original: dict[str, float]
    reproduced: list[dict[str, float]]
    run_id: Optional[str]
    notes: list[str] = field(default_factory=list)
    experiment_id: Optional[str] = None  # the experiment ``run_id`` was logged to

    def summary(self) -> dict[str, tuple[float, float]]:
        out = {}
        for m in self.metrics:
            vals = [r[m] for r in self.reproduced if m in r]
            if vals:
                out[m] = (statistics.fmean(vals), statistics.stdev(vals) if len(vals) > 1 else 0.0)
        return out

    def table(self) -> str:
        n = len(self.reproduced)
        head = "reproduced" if n == 1 else f"reproduced (mean ± sd, n={n})"
        lines = [f"{'metric':<22} {'original':>10} {head:>28}"]
        for m, (mean, sd) in self.summary().items():
            orig = self.original.get(m)
            orig_s = f"{orig:.6f}" if orig is not None else "-"
            lines.append(f"{m:<22} {orig_s:>10} " + (f"{mean:>28.6f}" if n == 1 else f"{mean:>17.6f} ± {sd:.6f}"))
        return "\n".join(lines)


def reproduce(
    source: str,
    *,
    tracking_uri: str,
    seeds: int = 1,
    device: Optional[str] = None,
    log: bool = True,
) -> Reproduction:
    """Re-run a trial's body locally (no Ray) with its config, ``seeds`` seeds from its own seed on.

    Args:
        source: an MLflow run id, or a YAML written by :func:`export_best`.
        tracking_uri: MLflow store to read the run from and log the reproduction to.
        seeds: number of seeds (``seed, seed+1, ...``); ``1`` re-runs the exact trial.
        device: ``cpu`` / ``cuda`` override of the config's device.
        log: log a run (tag ``reproduces=<run id>``) in the same experiment.
    """
    from trainables import get_trainable

    if seeds < 1:
        raise ValueError(f"--seeds must be >= 1, got {seeds}")
    client = MlflowClient(tracking_uri)
    notes: list[str] = []
    also: list[str] = []
    looks_like_path = source.endswith((".yaml", ".yml", ".json")) or "/" in source or "\\" in source
    if looks_like_path and not Path(source).exists():
        raise ValueError(f"no such file {source!r} (reproduce takes an MLflow run id, or a YAML written by "
                         f"`xaisweep best --export`)")
    if Path(source).is_file():
        try:
            doc = read_yaml(Path(source).read_text(encoding="utf-8"), source)
        except (SpecError, UnicodeDecodeError) as err:
            raise ValueError(f"{source}: not a valid YAML file ({err})") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{source}: not a `xaisweep best --export` file")
        missing = [k for k in ("trainable", "config", "metric") if k not in doc]
        if missing:
            raise ValueError(f"{source}: missing keys {missing} (write it with `xaisweep best --export`)")
        run_id = doc.get("source_run_id")
        trainable, config, metric = doc["trainable"], dict(doc["config"]), doc["metric"]
        pareto = doc.get(PARETO_KEY)
        if isinstance(pareto, dict) and isinstance(pareto.get("metrics"), list):
            also = [str(m) for m in pareto["metrics"] if m != metric]
    else:
        run_id = resolve_run_id(client, source)
        run = client.get_run(run_id)
        cfg = trial_config(client, run_id)
        trainable, config = cfg["trainable"], dict(cfg["config"])
        found = sweep_objectives(client, run.info.experiment_id)
        metric, also = found[0][0], [m for m, _ in found[1:]]
    original: dict[str, float] = {}
    experiment_id = None
    if run_id:
        try:
            run = client.get_run(run_id)
        except Exception:  # noqa: BLE001 - the YAML alone is enough to re-run the trial
            run = None
            notes.append(f"source run {run_id} is not in {tracking_uri}: nothing to compare with, nothing logged")
        if run is not None:
            original = dict(run.data.metrics)
            experiment_id = run.info.experiment_id
            if mlflow_names.is_early_stopped(run.data.tags):
                notes.append(f"the source run was stopped early by the scheduler (after "
                             f"{run.data.tags.get(mlflow_names.STOPPED_AT_ITERATION, '?')} iterations): its metrics are "
                             f"not final, the reproduction trains all {config.get('epochs', '?')} epochs")
            elif run.info.status != "FINISHED":
                notes.append(f"the source run's status is {run.info.status}: its metrics may not be final")
    if device is not None:
        config["device"] = device
    entry = get_trainable(trainable)
    base_seed = int(config.get("seed", 0))
    results = []
    import torch

    threads = torch.get_num_threads()  # run_trial sets the config's num_threads: restore the caller's
    try:
        for i in range(seeds):
            cfg = {**config, "seed": base_seed + i}
            res = entry.run_trial(entry.parse_config(cfg), lambda metrics, checkpoint: None)
            results.append({k: float(v) for k, v in res.metrics.items()
                            if isinstance(v, (int, float)) and not isinstance(v, bool)})
    finally:
        torch.set_num_threads(threads)
    first = [metric] + [m for m in also if m in results[0]]  # every objective of a multi-objective sweep
    compared = first + sorted(k for k in results[0] if k.startswith("test/") and k not in first)
    repro = Reproduction(compared, {k: v for k, v in original.items() if k in compared}, results, None, notes)
    if log and experiment_id is not None:
        tags = {mlflow_names.ROLE: mlflow_names.ROLE_REPRODUCE, mlflow_names.REPRODUCES: run_id,
                mlflow_names.SEEDS: str(seeds)}
        new = client.create_run(experiment_id, run_name=f"reproduce-{run_id[:8]}", tags=tags)
        for k, v in config.items():
            client.log_param(new.info.run_id, k, str(v)[:6000])
        now = int(time.time() * 1000)
        batch = [Metric(k, v, now, i) for i, r in enumerate(results) for k, v in r.items()]
        for k, (mean, sd) in repro.summary().items():
            batch += [Metric(f"{k}_mean", mean, now, 0), Metric(f"{k}_sd", sd, now, 0)]
        for j in range(0, len(batch), 500):
            client.log_batch(new.info.run_id, metrics=batch[j : j + 500])
        client.set_terminated(new.info.run_id, "FINISHED")
        repro.run_id, repro.experiment_id = new.info.run_id, experiment_id
    return repro
