"""The ``xaisweep`` command line: run / best / reproduce / report / evaluate / ui.

Hyper-parameters never become CLI flags: they live in the sweep spec (YAML).
Bad input is reported as one clear message and exit status 2, before Ray starts.
"""
from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path
from typing import Optional, Sequence

from sweeps.mlflow_links import ui_link
from sweeps.workdir import Workdir, resolve_tracking_uri


def _print_problems(err: Exception | str) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from sweeps.launcher import TrackingUnavailable, run_link, run_sweep
    from sweeps.launch.plan import PreflightError, plan_sweep
    from sweeps.launch.preflight import check_raw_spec_config
    from sweeps.spec.parse import SpecError, load_spec
    from trainables import TRAINABLES

    try:
        spec = load_spec(args.spec, known_trainables=list(TRAINABLES))
    except SpecError as err:
        # the spec did not parse, so the trial-config checks never ran: run those that can
        # still run on the raw file, so that every problem is reported at once
        more = check_raw_spec_config(args.spec)
        return _print_problems(SpecError(err.problems + tuple(more), err.source) if more else err)
    except OSError as err:
        return _print_problems(f"cannot read sweep spec {args.spec}: {err.strerror or err}")
    if args.resume and args.fresh:
        return _print_problems("--resume finishes the existing sweep, --fresh discards it: not both")
    try:
        plan = plan_sweep(spec, tracking_uri=args.tracking_uri, storage=args.storage, name=args.name,
                          smoke_test=args.smoke_test)
    except (SpecError, PreflightError) as err:
        return _print_problems(err)
    objectives = ", ".join(f"{m} ({d})" for m, d in plan.spec.objectives)
    print(f"sweep {plan.spec.name}: {plan.spec.num_samples} x {plan.spec.repeats} trials of "
          f"{plan.spec.trainable}, metric{'s' if plan.spec.is_multi_objective else ''} {objectives}")
    print(f"  tracking: {plan.tracking_uri}\n  storage:  {plan.experiment_dir}")
    t0 = time.time()
    try:
        outcome = run_sweep(plan, address=args.address, resume=args.resume, fresh=args.fresh,
                            num_cpus=args.num_cpus, verbose=0 if args.quiet else 1)
    except PreflightError as err:
        return _print_problems(err)
    except TrackingUnavailable as err:
        print(f"error: {err}".replace("SPEC", args.spec), file=sys.stderr)
        return 1
    except KeyboardInterrupt:  # a second Ctrl-C, or one before Tune took over SIGINT
        print(f"\ninterrupted; finish the sweep with: xaisweep run {args.spec} --resume", file=sys.stderr)
        return 130
    elapsed = time.time() - t0
    results = outcome.results
    finished = len(results) - outcome.num_errors - len(outcome.unfinished_trials)
    if outcome.interrupted:
        why = (f"reached its time_budget ({plan.spec.time_budget:.0f} s)" if outcome.time_budget_reached
               else "interrupted")
        print(f"\nsweep {plan.spec.name} {why} after {elapsed:.0f} s: {finished} trials finished, "
              f"{outcome.num_errors} failed, {len(outcome.unfinished_trials)} unfinished "
              f"({plan.spec.num_samples * plan.spec.repeats} planned)")
        again = f"xaisweep run {args.spec} --resume" + (f" --name {args.name}" if args.name else "") + \
            (f" --storage {args.storage}" if args.storage else "") + \
            (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else "")
        print(f"finish it with: {again}")
        return 0 if outcome.time_budget_reached else 130
    print(f"\nsweep {plan.spec.name} done in {elapsed:.0f} s: {len(results)} trials, {finished} finished, "
          f"{outcome.num_errors} failed")
    if outcome.orphaned_runs:
        print(f"deleted {len(outcome.orphaned_runs)} MLflow run(s) of trials lost when the previous driver was killed")
    best = outcome.best
    if best is None:
        print("no trial reported the metric")
        return 1
    if plan.spec.is_multi_objective:
        return _print_pareto_trials(plan, outcome)
    width = max([len("MLflow run")] + [len(k) for k in best["params"]])
    print("\nbest trial")
    print(f"  {'metric'.ljust(width)}  {plan.spec.metric} = {best['metric']:.4f}  "
          f"(after {best['iterations']} iterations)")
    for k, v in best["params"].items():
        print(f"  {k.ljust(width)}  {v}")
    print(f"  {'MLflow run'.ljust(width)}  {run_link(plan.tracking_uri, outcome.experiment_id, best['mlflow_run_id'])}")
    print(f"\nnext: xaisweep best {plan.spec.name}   |   xaisweep reproduce {best['mlflow_run_id']}   |   xaisweep ui")
    return 0


def _print_pareto_trials(plan, outcome) -> int:
    from sweeps.launch.sweep_runs import pareto_of

    front = pareto_of(plan.spec, outcome.results)
    metrics = [m for m, _ in plan.spec.objectives]
    print(f"\nPareto set: {len(front)} non-dominated trial(s) over {', '.join(metrics)}")
    for row in front:
        values = "  ".join(f"{m} = {v:.4f}" for m, v in zip(metrics, row["values"]))
        params = ", ".join(f"{k}={v}" for k, v in row["params"].items())
        print(f"  {values}  ({params}; run {row['mlflow_run_id']})")
    print(f"\nnext: xaisweep best {plan.spec.name} (the Pareto set by the means over seeds)   |   "
          f"xaisweep report {plan.spec.name}   |   xaisweep ui")
    return 0


def _print_table(header: Sequence[str], table: Sequence[Sequence[str]]) -> None:
    """``header`` and the rows of ``table`` as left-aligned columns, two spaces apart."""
    widths = [max(len(h), *(len(row[j]) for row in table)) for j, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in table:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))


def cmd_best(args: argparse.Namespace) -> int:
    from mlflow.tracking import MlflowClient

    from sweeps.results.report_data import find_experiment
    from sweeps.results.best import best_configs, best_runs, export_best, resolve_objectives, sweep_objectives

    uri = resolve_tracking_uri(args.tracking_uri, None, Workdir.default())
    try:
        client = MlflowClient(uri)
        sweep = sweep_objectives(client, find_experiment(client, args.experiment).experiment_id)
        objectives = resolve_objectives(sweep, args.metric or (), args.mode or ())
        if len(objectives) > 1:
            return _best_pareto(args, uri, objectives)
        if args.per_run:
            metric, mode, rows = best_runs(uri, args.experiment, top=args.top, objectives=objectives)
        else:
            metric, mode, rows = best_configs(uri, args.experiment, top=args.top, objectives=objectives)
    except ValueError as err:
        return _print_problems(err)
    grouped = not args.per_run and any(r.n > 1 for r in rows)  # one run per configuration: a plain run table
    what = "configurations by the mean over seeds" if grouped else ("runs" if args.per_run else "trials")
    print(f"experiment {args.experiment}: top {len(rows)} {what}, {metric} ({mode})")
    keys = sorted(k for k in {k for r in rows for k in r.params if k in _varying(rows)}
                  if not (grouped and k == "seed"))
    header = ["rank", "run_id", metric] + (["n"] if grouped else []) + keys
    table = []
    for i, r in enumerate(rows):
        if grouped:
            value = f"{r.value:.4f}" + ("" if r.n == 1 else f" ± {r.sd:.4f}")
        else:
            value = f"{r.value:.4f}"
        value += "*" if r.early_stopped else ""
        cells = [str(i + 1), r.run_id[:12], value] + ([str(r.n)] if grouped else [])
        cells += ["–" if k in r.inactive else _short(r.params.get(k, "–")) for k in keys]
        table.append(cells)
    _print_table(header, table)
    if any(r.early_stopped for r in rows):
        print("(* stopped early by ASHA" + (": at least one run of the configuration" if grouped else "") + ")")
    if grouped:
        print("(run_id: the configuration's best run; – : parameter inactive for that configuration)")
    print(f"MLflow runs: {ui_link(uri, find_experiment(MlflowClient(uri), args.experiment).experiment_id)}")
    if args.export:
        doc = export_best(uri, args.experiment, Path(args.export), per_run=args.per_run, objectives=objectives)
        print(f"wrote {args.export} (run {doc['source_run_id']}); reproduce with: xaisweep reproduce {args.export}")
    return 0


def _best_pareto(args: argparse.Namespace, uri: str, objectives) -> int:
    """``best`` over several objectives: the Pareto set (non-dominated configurations by their means over
    seeds, or runs with ``--per-run``), best first by the first objective; ``--top`` counts its rows."""
    from mlflow.tracking import MlflowClient

    from sweeps.results.best import export_pareto, pareto_set
    from sweeps.results.report_data import find_experiment

    found = pareto_set(uri, args.experiment, objectives=objectives, per_run=args.per_run)
    rows = list(found.front)
    grouped = not args.per_run and any(r.n > 1 for r in rows)
    what = "configurations (means over seeds)" if grouped else ("runs" if args.per_run else "trials")
    names = ", ".join(f"{m} ({d})" for m, d in objectives)
    total = len(found.front) + len(found.dominated)
    print(f"experiment {args.experiment}: Pareto set over {names}: {len(rows)} non-dominated of {total} {what}"
          + (f" (first {args.top} shown)" if len(rows) > args.top else ""))
    shown = rows[:args.top]
    keys = sorted(k for k in {k for r in shown for k in r.params if k in _varying(shown)}
                  if not (grouped and k == "seed"))
    header = ["#", "run_id", *(m for m, _ in objectives)] + (["n"] if grouped else []) + keys
    table = []
    for i, r in enumerate(shown):
        cells = [str(i + 1), r.run_id[:12]]
        for v, sd in zip(r.objective_values, r.sds):
            cells.append(f"{v:.4f}" + ("" if not grouped or sd != sd else f" ± {sd:.4f}"))
        cells += ([str(r.n)] if grouped else [])
        cells += ["–" if k in r.inactive else _short(r.params.get(k, "–")) for k in keys]
        table.append(cells)
    _print_table(header, table)
    print("(non-dominated: no other " + ("configuration" if not args.per_run else "run") + " is at least as good "
          "in every objective and better in one" + ("; run_id: the configuration's best run" if grouped else "")
          + "; – : parameter inactive)")
    if found.early_stopped:
        print(f"({found.early_stopped} run(s) stopped early by ASHA left out: their values are not final)")
    print(f"MLflow runs: {ui_link(uri, find_experiment(MlflowClient(uri), args.experiment).experiment_id)}")
    if args.export:
        written = export_pareto(uri, args.experiment, Path(args.export), objectives=objectives, per_run=args.per_run)
        for path, doc in written:
            print(f"wrote {path} (run {doc['source_run_id']})")
        if written:
            print(f"reproduce one with: xaisweep reproduce {written[0][0]}")
    return 0


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {value}")
    return value


def _short(value: str) -> str:
    """A logged param for the table: numbers to 4 significant digits, other strings whole."""
    try:
        return f"{float(value):.4g}"
    except ValueError:
        return value


def _varying(rows) -> set[str]:
    """The columns of a ``best`` table: the search parameters of configuration rows (their keys and inactive
    parameters), shown also where every row has the same value (two Pareto members of one method: the
    method is still named), and every param whose values differ between ``rows``; every param where
    neither gives any (a single run), not only the ones that vary."""
    keys = {k for r in rows for k in r.params}
    varying = {k for k in keys if len({r.params.get(k) for r in rows}) > 1}
    searched = {k for r in rows for k, _ in getattr(r, "key", ())} | {k for r in rows for k in r.inactive}
    return (varying | searched) or keys


def cmd_reproduce(args: argparse.Namespace) -> int:
    from sweeps.results.best import exported_tracking_uri, reproduce

    # a best.yaml names the store it was exported from; an explicit flag still wins
    uri = resolve_tracking_uri(args.tracking_uri, exported_tracking_uri(args.source), Workdir.default())
    try:
        repro = reproduce(args.source, tracking_uri=uri, seeds=args.seeds, device=args.device)
    except ValueError as err:
        return _print_problems(err)
    print(repro.table())
    for note in repro.notes:
        print(f"note: {note}")
    if repro.run_id:
        print(f"logged reproduction run {repro.run_id}: {ui_link(uri, repro.experiment_id, repro.run_id)}")
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from sweeps.results.report import make_report

    uri = resolve_tracking_uri(args.tracking_uri, None, Workdir.default())
    out = Path(args.out or Workdir.default().root / "reports" / args.experiment)
    try:
        metrics = [m.strip() for m in args.metrics.split(",") if m.strip()] if args.metrics else None
        objectives = None
        if args.metric or args.mode:
            from mlflow.tracking import MlflowClient

            from sweeps.results.best import resolve_objectives, sweep_objectives
            from sweeps.results.report_data import find_experiment

            client = MlflowClient(uri)
            sweep = sweep_objectives(client, find_experiment(client, args.experiment).experiment_id)
            objectives = resolve_objectives(sweep, args.metric or (), args.mode or ())
        result = make_report(uri, args.experiment, out, metrics=metrics, objectives=objectives)
    except ValueError as err:
        return _print_problems(err)
    print(result.markdown)
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    print(f"\nwrote {', '.join(str(f) for f in result.files)}")
    if result.logged_to:
        print(f"logged to the sweep's parent run under report/: {ui_link(uri, result.experiment_id, result.logged_to)}")
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from sweeps.evaluation.plan import pending_summary, plan_evaluation
    from sweeps.evaluation.run import run_evaluations
    from sweeps.launch.plan import PreflightError
    from sweeps.spec.checks import SpecError

    uri = resolve_tracking_uri(args.tracking_uri, None, Workdir.default())
    try:
        plan = plan_evaluation(args.sweep, args.with_spec, tracking_uri=uri)
    except (SpecError, PreflightError) as err:
        return _print_problems(err)
    print(f"evaluate sweep {plan.sweep} with {plan.spec.trainable} ({plan.spec_path})")
    for line in pending_summary(plan):
        print(f"  {line}")
    link = ui_link(uri, plan.experiment_id)
    if not plan.jobs:
        print(f"nothing to evaluate: every pair is logged (eval/<name>/... in each model's run): {link}")
        return 0
    t0 = time.time()
    again = f"xaisweep evaluate {args.sweep} --with {args.with_spec}" + \
        (f" --tracking-uri {args.tracking_uri}" if args.tracking_uri else "")
    try:
        outcome = run_evaluations(plan, address=args.address, num_cpus=args.num_cpus, verbose=0 if args.quiet else 1,
                                  on_result=lambda line: print(f"  {line}", flush=True))
    except PreflightError as err:
        return _print_problems(err)
    except KeyboardInterrupt:  # before the loop took over
        print(f"\ninterrupted; continue with: {again}", file=sys.stderr)
        return 130
    elapsed = time.time() - t0
    if outcome.interrupted:
        print(f"\ninterrupted after {elapsed:.0f} s: {len(outcome.results)} of {len(plan.jobs)} evaluations done; "
              f"continue with: {again}", file=sys.stderr)
        return 130
    print(f"\n{len(outcome.results)} evaluation(s) done in {elapsed:.0f} s, {len(outcome.failures)} failed; "
          f"metrics under eval/<name>/ in the models' runs: {link}")
    if outcome.failures:
        print(f"the failed ones run again with: {again}", file=sys.stderr)
        return 1
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    wd = Workdir.default()
    uri = resolve_tracking_uri(args.tracking_uri, None, wd)
    if uri.startswith("http"):
        print(f"the tracking server already serves the UI: {uri}")
        return 0
    wd.artifacts.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri,
           "--default-artifact-root", wd.artifacts.resolve().as_uri(), "--host", args.host, "--port", str(args.port),
           "--workers", str(args.workers)]
    # MLflow's job runner serves GenAI features (scorers, ...) xaisweep never uses; on a small machine it costs
    # most of the UI's start-up. A user who wants it sets the variable.
    os.environ.setdefault("MLFLOW_SERVER_ENABLE_JOB_EXECUTION", "false")
    server = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {server}  (Ctrl-C to stop)")
    experiments = _experiments(uri)
    if experiments:
        print("runs of each experiment (classic view):")
        width = max(len(name) for name, _ in experiments)
        for name, exp_id in experiments:
            print(f"  {name.ljust(width)}  {ui_link(server, exp_id)}")
    elif experiments is not None:
        print(f"no experiment in {uri} yet: run a sweep first (xaisweep run SPEC)")
    sys.stdout.flush()  # exec does not flush Python's buffers
    os.execv(sys.executable, cmd)
    return 0  # not reached


def _experiments(uri: str) -> Optional[list[tuple[str, str]]]:
    """(name, id) of the store's active experiments, MLflow's own "Default" (xaisweep never logs there)
    left out; ``None`` if the store cannot be read (the server reports that itself)."""
    from mlflow.tracking import MlflowClient

    try:
        found = MlflowClient(uri).search_experiments()
    except Exception as err:  # noqa: BLE001 - the links are a convenience, the server still starts
        logging.getLogger(__name__).debug("cannot list the experiments of %s: %s", uri, err)
        return None
    return sorted((e.name, e.experiment_id) for e in found if not (e.experiment_id == "0" and e.name == "Default"))


def cmd_prepare(args: argparse.Namespace) -> int:
    from trainables.wordnet_data import prepare_wordnet

    try:
        path, how = prepare_wordnet(args.dir, source=args.debian_dir, network=not args.offline)
    except RuntimeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"WordNet 3.0 ready for NLTK at {path} ({how})")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xaisweep", description=__doc__.splitlines()[0])
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run (or resume) a sweep from a YAML spec")
    run.add_argument("spec", help="path to the sweep spec (YAML)")
    run.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    run.add_argument("--tracking-uri", help="MLflow tracking URI (default: spec, $MLFLOW_TRACKING_URI, or "
                                             "sqlite under ./xaisweep-runs)")
    run.add_argument("--storage", help="Ray storage path: shared directory or s3:// (default: ./xaisweep-runs/ray)")
    run.add_argument("--name", help="override the sweep name (MLflow experiment and Ray run name)")
    run.add_argument("--smoke-test", action="store_true",
                     help="2 trials, 1 epoch, tiny data, GPU requests dropped, always fresh: check the wiring "
                          "(the sweep is named <name>-smoke)")
    run.add_argument("--resume", action="store_true",
                     help="finish an interrupted sweep of the same name; the spec must be the one it was launched "
                          "with (changes of description and resources are accepted)")
    run.add_argument("--fresh", action="store_true",
                     help="discard an existing sweep of the same name first (its Ray state is deleted, its MLflow "
                          "runs are moved to MLflow's trash); --smoke-test runs are always fresh")
    run.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
    run.add_argument("--quiet", action="store_true", help="no live progress table")
    run.set_defaults(func=cmd_run)

    best = sub.add_parser("best", help="best trials of a sweep, read from MLflow")
    best.add_argument("experiment", help="sweep (MLflow experiment) name or id")
    best.add_argument("--top", type=_positive_int, default=5, help="how many rows to show (default 5)")
    best.add_argument("--per-run", action="store_true",
                      help="rank single runs instead of configurations by their mean over seeds")
    best.add_argument("--export", metavar="best.yaml",
                      help="write the best configuration's config (with its mean, sd, n and seeds) for `reproduce`; "
                           "over several objectives one file per Pareto member: best-1.yaml, best-2.yaml, ...")
    best.add_argument("--metric", action="append", metavar="NAME",
                      help="rank by this logged metric instead of the sweep's (any metric the runs logged, e.g. "
                           "eval/<name>/...); repeat it for the Pareto set over several (default: the sweep's "
                           "objectives: a multi-objective sweep prints its Pareto set)")
    best.add_argument("--mode", action="append", choices=["max", "min"],
                      help="direction of each --metric, in the same order (default: the sweep's mode for its own "
                           "objectives, else min for *loss*/*deletion*/*sufficiency*/*step_time*, max otherwise)")
    best.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the work dir's)")
    best.set_defaults(func=cmd_best)

    rep = sub.add_parser("reproduce", help="re-run a trial locally without Ray and compare")
    rep.add_argument("source", help="MLflow run id (or a unique prefix, as `best` prints) or a best.yaml "
                                    "from `best --export`")
    rep.add_argument("--seeds", type=int, default=1,
                     help="number of seeds: seed, seed+1, ... (default 1: the trial's own); data_seed stays, so "
                          "every seed trains and tests on the trial's split")
    rep.add_argument("--device", choices=["cpu", "cuda"], help="override the config's device")
    rep.add_argument("--tracking-uri", help="MLflow tracking URI (default: the best.yaml's, $MLFLOW_TRACKING_URI "
                                            "or the work dir's)")
    rep.set_defaults(func=cmd_reproduce)

    report = sub.add_parser(
        "report", help="plots, parameter importances, top trials and a paper table (mean ± sd over seeds, "
                       "paired significance) of a sweep",
        description="Reads the sweep back from MLflow and writes optimization_history.png, "
                    "parallel_coordinates.png, param_importances.png, report.md/.html, trials.csv and "
                    "paper_table.md/.tex (a multi-objective sweep also pareto_front.png and hypervolume.png), "
                    "also logged to the sweep's parent run under report/. A warning says "
                    "when the best value of a numeric parameter lies within 5%% of its range's edge: widen "
                    "the range there, the optimum may lie outside it.")
    report.add_argument("experiment", help="sweep (MLflow experiment) name or id")
    report.add_argument("--out", help="output directory (default: ./xaisweep-runs/reports/<experiment>)")
    report.add_argument("--metrics", help="comma-separated metric columns of the paper table (default: the sweep's "
                                          "objectives and every test/* and eval/* metric all runs logged)")
    report.add_argument("--metric", action="append", metavar="NAME",
                        help="judge the trials on this logged metric instead of the sweep's (e.g. eval/<name>/...); "
                             "repeat it for a Pareto front over several")
    report.add_argument("--mode", action="append", choices=["max", "min"],
                        help="direction of each --metric, in the same order (default as for `best`)")
    report.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the work dir's)")
    report.set_defaults(func=cmd_report)

    ev = sub.add_parser(
        "evaluate", help="score every saved model of a finished sweep with an evaluation trainable",
        description="For every FINISHED trial of SWEEP that saved its model (save_model: true), run the evaluation "
                    "spec's trainable on that model under every point of the spec's search space, on Ray (the "
                    "spec's resources and max_concurrent, as `run` does for trials), and log the metrics into the "
                    "trial's own MLflow run as eval/<evaluation>/<metric>, with the evaluation's config and "
                    "provenance as artifacts under eval/<evaluation>/. <evaluation> is the spec's name joined with "
                    "the point's varying knobs (e.g. faith_deletion_zero_vector). Trials without a model are listed and "
                    "skipped. Running it again evaluates only what is missing (a pair is complete once its tag "
                    "eval/<evaluation>/done is written, last), so an interrupted evaluation continues and nothing "
                    "is logged twice. Every problem (unknown sweep, spec errors, no saved model, a model the "
                    "evaluation cannot read, data changed since training) is reported before Ray starts.")
    ev.add_argument("sweep", help="sweep (MLflow experiment) name or id, as `best` and `report` take it")
    ev.add_argument("--with", dest="with_spec", required=True, metavar="SPEC",
                    help="evaluation spec (YAML: name, trainable, config, search_space of its knobs, resources, "
                         "max_concurrent) or a shipped default: faithfulness (deletion, weak learner, TVD of "
                         "saliency / IxG / IG / attention; deletion under three cancel-out methods), "
                         "faithfulness_transformer (the same for finetune sweeps' transformers, deletion under "
                         "zero_vector, mask_token and uniform_marginalize), correlation "
                         "(attention-gradient agreement), rationale (agreement with the data's rationales), "
                         "restorability (a masked LM's: for mlm sweeps); see sweeps/evaluate_*.yaml")
    ev.add_argument("--address", help="Ray cluster address (default: start a local Ray)")
    ev.add_argument("--num-cpus", type=int, help="CPUs for a local Ray (default: all)")
    ev.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the work dir's)")
    ev.add_argument("--quiet", action="store_true", help="no Ray worker output")
    ev.set_defaults(func=cmd_evaluate)

    prep = sub.add_parser("prepare", help="install data a trainable needs (wordnet: WordNet 3.0 for NLTK)")
    prep.add_argument("what", choices=["wordnet"], help="what to install: wordnet (WordNet 3.0 under <nltk_data>/corpora/wordnet)")
    prep.add_argument("--dir", help="NLTK data directory (default: NLTK's first search path, e.g. ~/nltk_data)")
    prep.add_argument("--debian-dir", default="/usr/share/wordnet",
                      help="where apt-get install wordnet-base wordnet-sense-index put WordNet")
    prep.add_argument("--offline", action="store_true", help="skip nltk.download; copy the Debian files only")
    prep.set_defaults(func=cmd_prepare)

    ui = sub.add_parser("ui", help="serve the MLflow UI on the embedded store")
    ui.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1: this machine only)")
    ui.add_argument("--port", type=int, default=5000, help="port (default 5000)")
    ui.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the work dir's)")
    ui.add_argument("--workers", type=int, default=1,
                    help="server worker processes (default 1: one person's UI; MLflow's own default is 4)")
    ui.set_defaults(func=cmd_ui)
    return p


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")  # keep tables readable
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
