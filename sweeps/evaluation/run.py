"""The Ray part of ``xaisweep evaluate``: the plan's jobs as Ray tasks, ``max_concurrent`` at a time, each
with the spec's ``resources`` checked against the nodes as ``xaisweep run`` checks a trial's
(:func:`sweeps.launch.plan.check_resources`: a GPU request on a machine without one runs on CPU with a
warning on the local Ray). Each task is :func:`trainables.evaluation_run.run_evaluation`: it logs into the
model's run itself and writes the ``done`` marker last.

Ctrl-C (SIGINT): the tasks in flight are cancelled and :attr:`EvaluateOutcome.interrupted` is set; what
they had not marked done runs again next time (the metrics they had logged are not logged twice).
A failed evaluation is reported (the run keeps no marker, so the next run retries it) and the others go on.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Optional

from sweeps.evaluation.plan import EvaluationPlan, EvaluationPreflightError
from sweeps.launch.plan import check_resources


@dataclass
class EvaluateOutcome:
    """What :func:`run_evaluations` did: ``results`` of the finished jobs, ``failures`` as
    ``(job, error text)``, ``interrupted`` by Ctrl-C, ``warnings`` about resources."""

    results: list[dict] = field(default_factory=list)
    failures: list[tuple] = field(default_factory=list)
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)


def run_evaluations(plan: EvaluationPlan, *, address: Optional[str] = None, num_cpus: Optional[int] = None,
                    verbose: int = 1, on_result: Optional[Callable[[str], None]] = None) -> EvaluateOutcome:
    """Run the plan's pending jobs on Ray (connect to ``address`` or start a local Ray with ``num_cpus``;
    a Ray started here is shut down on return). ``on_result(line)`` gets one line per finished job (and the
    resource warnings, before the first starts).

    Raises:
        EvaluationPreflightError: no node can hold one evaluation's resources.
    """
    import ray

    from sweeps.launcher import init_ray, ray_nodes
    from trainables.evaluation_run import run_evaluation

    outcome = EvaluateOutcome()
    say = on_result or (lambda line: None)
    if not plan.jobs:
        return outcome
    started = init_ray(address, num_cpus, verbose)
    try:
        nodes, max_cluster = ray_nodes()
        resources, warnings, problems = check_resources(plan.spec.resources, nodes, local=not address,
                                                        smoke_test=False, max_cluster=max_cluster)
        if problems:
            raise EvaluationPreflightError(problems)
        outcome.warnings += warnings
        for warning in warnings:
            say(f"warning: {warning}")
        task = ray.remote(run_evaluation).options(num_cpus=resources.cpu, num_gpus=resources.gpu or 0,
                                                  max_retries=0)
        queue = list(plan.jobs)
        running: dict = {}
        total, n = len(queue), 0
        try:
            while queue or running:
                while queue and len(running) < plan.spec.max_concurrent:
                    job = queue.pop(0)
                    running[task.remote(job)] = (job, time.time())
                ready, _ = ray.wait(list(running), num_returns=1)
                for ref in ready:
                    job, _t0 = running.pop(ref)
                    n += 1
                    try:
                        result = ray.get(ref)
                    except Exception as err:  # noqa: BLE001 - one failed evaluation; the others go on
                        cause = getattr(err, "cause", None) or err
                        text = f"{type(cause).__name__}: {cause}".splitlines()[0][:500]
                        outcome.failures.append((job, text))
                        say(f"[{n}/{total}] {job.run_id[:12]} {job.name}: FAILED ({text})")
                        continue
                    outcome.results.append(result)
                    say(f"[{n}/{total}] {job.run_id[:12]} {job.name}: {result['logged']} metrics logged"
                        + (f" ({result['already']} were there)" if result["already"] else "")
                        + f" in {result['seconds']:.1f} s")
        except KeyboardInterrupt:
            outcome.interrupted = True
            for ref in running:
                try:
                    ray.cancel(ref, force=True)
                except Exception:  # noqa: BLE001 - the shutdown below stops it anyway
                    pass
    finally:
        if started:
            ray.shutdown()
    return outcome


__all__ = ["EvaluateOutcome", "run_evaluations"]
