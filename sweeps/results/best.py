"""``xaisweep best`` and ``xaisweep reproduce``: read sweeps back from MLflow and re-run trials locally."""
from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient

from sweeps.results.report_data import all_runs, find_experiment, load_run_spec
from sweeps.spec.parse import SpecError, read_yaml
from trainables import mlflow_names


def sweep_objective(client: MlflowClient, experiment_id: str) -> tuple[str, str]:
    """(metric, mode) of the experiment's latest sweep launch (its parent run's tags)."""
    parents = client.search_runs(
        [experiment_id], mlflow_names.SWEEP_LAUNCHES, order_by=["attributes.start_time DESC"], max_results=1
    )
    if not parents:
        raise ValueError(f"the experiment has no xaisweep launch (parent run with tag "
                         f"{mlflow_names.ROLE}={mlflow_names.ROLE_SWEEP})")
    tags = parents[0].data.tags
    return tags[mlflow_names.METRIC], tags[mlflow_names.MODE]


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
    run_id: str
    run_name: str
    value: float
    params: dict[str, str]
    early_stopped: bool
    seed: Optional[str] = None
    #: search parameters whose ``when`` clause does not hold for this run (shown as "–")
    inactive: frozenset = frozenset()


@dataclass(frozen=True)
class ConfigRow:
    """One configuration (the search parameters without ``seed``) over its seeds.

    ``value`` is the mean of the runs' metric, ``sd`` the sample standard deviation
    (``nan`` for one run), ``n`` the number of runs; ``runs`` best first.
    """

    key: tuple
    value: float
    sd: float
    n: int
    runs: tuple[BestRow, ...]

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


def finished_trials(tracking_uri: str, experiment: str) -> tuple[str, str, list[BestRow], Any]:
    """Every finished trial run of ``experiment`` with the sweep metric, best first:
    ``(metric, mode, rows, spec)`` (``spec``: the latest launch's, ``None`` if unknown)."""
    client = MlflowClient(tracking_uri)
    exp = find_experiment(client, experiment)
    metric, mode = sweep_objective(client, exp.experiment_id)
    spec = _latest_spec(client, exp.experiment_id)
    runs = client.search_runs(
        [exp.experiment_id], f"attributes.status = 'FINISHED' and tags.{mlflow_names.RAY_TRIAL_ID} != ''", max_results=5000
    )
    rows = []
    for r in runs:
        if metric in r.data.metrics and r.data.metrics[metric] == r.data.metrics[metric]:
            params = dict(r.data.params)
            rows.append(BestRow(r.info.run_id, r.info.run_name or "", r.data.metrics[metric], params,
                                mlflow_names.is_early_stopped(r.data.tags),
                                params.get("seed", r.data.tags.get(mlflow_names.SEED)),
                                _inactive(spec, params)))
    rows.sort(key=lambda row: row.value, reverse=(mode == "max"))
    if not rows:
        raise ValueError(f"experiment {experiment!r} has no finished trial with metric {metric!r}")
    return metric, mode, rows, spec


def best_runs(tracking_uri: str, experiment: str, *, top: int = 5) -> tuple[str, str, list[BestRow]]:
    """Top finished trial runs of ``experiment`` by the sweep metric, one row per run: ``(metric, mode, rows)``."""
    _check_top(top)
    metric, mode, rows, _ = finished_trials(tracking_uri, experiment)
    return metric, mode, rows[:top]


def config_key(row: BestRow, spec) -> tuple:
    """What identifies a configuration: the active search parameters (all logged params when the
    spec is unknown) without :data:`SEED_KEYS`."""
    names = [p.name for p in spec.params] if spec is not None and spec.params else sorted(row.params)
    if spec is not None and not spec.params:
        names = []
    return tuple((k, row.params.get(k)) for k in names if k not in SEED_KEYS and k not in row.inactive)


def group_by_config(rows: list[BestRow], spec, mode: str) -> list[ConfigRow]:
    """Runs grouped by :func:`config_key`, ranked by the mean metric over seeds (best first)."""
    groups: dict[tuple, list[BestRow]] = {}
    for r in rows:
        groups.setdefault(config_key(r, spec), []).append(r)
    out = []
    for key, members in groups.items():
        vals = [m.value for m in members]
        sd = statistics.stdev(vals) if len(vals) > 1 else float("nan")
        out.append(ConfigRow(key, statistics.fmean(vals), sd, len(vals), tuple(members)))
    out.sort(key=lambda c: c.value, reverse=(mode == "max"))
    return out


def reproduction_rows(client: MlflowClient, experiment_id: str, metric: str, spec) -> list[BestRow]:
    """One row per seed of every ``xaisweep reproduce`` run of the experiment: step ``i`` of its
    metric history is seed ``seed + i`` (its logged ``seed`` param is the first seed)."""
    out = []
    runs = client.search_runs([experiment_id], f"tags.`{mlflow_names.ROLE}` = '{mlflow_names.ROLE_REPRODUCE}' and attributes.status = 'FINISHED'",
                              max_results=5000)
    for r in runs:
        params = dict(r.data.params)
        try:
            base = int(params.get("seed", "0"))
        except ValueError:
            continue
        for m in client.get_metric_history(r.info.run_id, metric):
            if m.value == m.value:
                out.append(BestRow(r.info.run_id, r.info.run_name or "", float(m.value),
                                   {**params, "seed": str(base + int(m.step))}, False, str(base + int(m.step)),
                                   _inactive(spec, params)))
    return out


def best_configs(tracking_uri: str, experiment: str, *, top: int = 5) -> tuple[str, str, list[ConfigRow]]:
    """Top configurations of ``experiment`` ranked by the mean over their seeds: ``(metric, mode, rows)``.

    The seeds of a configuration are its trial runs (``repeats``, a ``seed`` axis) and the seeds
    of ``xaisweep reproduce --seeds N`` runs of it; a (configuration, seed) pair counts once,
    the sweep's trial first.
    """
    _check_top(top)
    metric, mode, rows, spec = finished_trials(tracking_uri, experiment)
    client = MlflowClient(tracking_uri)
    exp = find_experiment(client, experiment)
    seen = {(config_key(r, spec), r.seed) for r in rows}
    for r in reproduction_rows(client, exp.experiment_id, metric, spec):
        key = (config_key(r, spec), r.seed)
        if key not in seen:
            seen.add(key)
            rows.append(r)
    rows.sort(key=lambda row: row.value, reverse=(mode == "max"))
    return metric, mode, group_by_config(rows, spec, mode)[:top]


def export_best(tracking_uri: str, experiment: str, path: Path, *, per_run: bool = False) -> dict[str, Any]:
    """Write the best configuration as a reproducible YAML (trainable, typed config, metric, source run).

    By default the best configuration by the mean over its seeds (``value`` is that mean,
    with ``sd``, ``n`` and the ``seeds`` it was measured on; the config is that of its best
    run); ``per_run`` takes the single best run instead.
    """
    client = MlflowClient(tracking_uri)
    if per_run:
        metric, mode, rows = best_runs(tracking_uri, experiment, top=1)
        best, extra = rows[0], {}
    else:
        metric, mode, configs = best_configs(tracking_uri, experiment, top=1)
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
    else:
        run_id = resolve_run_id(client, source)
        run = client.get_run(run_id)
        cfg = trial_config(client, run_id)
        trainable, config = cfg["trainable"], dict(cfg["config"])
        metric, _ = sweep_objective(client, run.info.experiment_id)
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
    compared = [metric] + sorted(k for k in results[0] if k.startswith("test/") and k != metric)
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
