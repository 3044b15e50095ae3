"""Classifier training with any regulariser of the AT/VAT family: the body of a trial.

:data:`TRAINABLE` follows the trial protocol (:mod:`trainables.protocol`): ``run(cfg, trial)``
reports every epoch but the last (``trial.report``) and the final result once (``trial.finish``);
the checkpoint is a picklable dict that a trial resumed from it (``trial.resume``) continues from
exactly (weights, optimiser, schedule, RNG states, history). ``run_trial(config, report)`` runs it in
plain Python (the tests, ``xaisweep reproduce``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from trainables.classifier.artifacts import write_artifacts
from trainables.classifier.config import ClassifierTrialConfig, parse_config, preflight
from trainables.classifier.metrics import (
    CORR_KEYS,
    FIXED_EPOCH,
    METRIC_KEYS,
    RATIONALE_DOCUMENTS_KEY,
    RATIONALE_SCORES,
    VALID_INTERPRETABILITY,
    fixed_metric,
    rationale_key,
)
from trainables.classifier.setup import ClassifierSetup
from trainables.data_setup import dropped_metrics
from trainables.loop_metrics import split_metric
from trainables.protocol import Report, Trainable, Trial, TrialResult, fit_and_report, start_runtime
from xaicore.faithfulness.rationale_metrics import attention_rationale_scores
from xaicore.metrics import attention_gradient_correlations


def corr_scores(model: torch.nn.Module, setup: ClassifierSetup, split: str) -> dict[str, float]:
    """Corr. of ``model`` on the ``valid`` or ``test`` batches, keyed by :data:`CORR_KEYS` (``corr``: the mean of
    per-sentence Pearsons, ``corr_pooled``): :func:`xaicore.metrics.attention_gradient_correlations` (eval
    mode, fp32, batched)."""
    corr = attention_gradient_correlations(model, setup.split_batches(split), setup.device)
    return dict(zip(CORR_KEYS, (corr["mean"], corr["pooled"])))


def rationale_scores(model: torch.nn.Module, setup: ClassifierSetup, split: str) -> dict[str, float]:
    """Attention weights of ``model`` vs the ``split``'s human rationales (attention-vat.txt Table 2, ERASER
    soft-token convention: :func:`xaicore.faithfulness.rationale_metrics.attention_rationale_scores`), keyed
    ``rationale_<score>`` (:func:`rationale_key`) and ``rationale_documents``; empty without rationales."""
    scores = attention_rationale_scores(model, setup.split_batches(split), setup.device)
    if scores is None:
        return {}
    out: dict[str, float] = {rationale_key(k): float(scores[k]) for k in RATIONALE_SCORES}
    out[RATIONALE_DOCUMENTS_KEY] = int(scores["n_documents"])
    return out


def valid_interpretability(setup: ClassifierSetup, model: torch.nn.Module) -> dict[str, float]:
    """The validation split's interpretability metrics of the current weights, every epoch: Corr. with
    ``correlation`` and the rationale scores where the split has rationales, keyed as the trainer's
    evaluation metrics (reported as ``valid/<key>`` and, those of
    :data:`trainables.classifier.metrics.VALID_INTERPRETABILITY` at the selected epoch, ``best/valid_<key>``)."""
    out = corr_scores(model, setup, "valid") if setup.cfg.correlation else {}
    return {**out, **rationale_scores(model, setup, "valid")}


def _test(metrics: dict[str, Any]) -> dict[str, Any]:
    return {split_metric("test", k): v for k, v in metrics.items()}


@dataclass
class TrainedClassifier:
    """A trained classifier (best epoch's weights loaded) and what its training reported."""

    setup: ClassifierSetup
    history: list[dict[str, Any]]
    final: dict[str, Any]
    checkpoint: Callable[[], dict[str, Any]]


def train_classifier(
    config: Mapping[str, Any] | ClassifierTrialConfig,
    report: Report,
    *,
    resume: Optional[dict[str, Any]] = None,
    interim_dir: Optional[Path] = None,
    on_interim: Optional[Callable[[Callable[[], Any]], None]] = None,
) -> TrainedClassifier:
    """Train (or resume) per ``config``, reporting every epoch but the last.

    With ``interim_dir``, the curves and heatmaps so far are written there before each of
    those reports, through ``on_interim(write)`` when given (a body passes ``trial.interim_artifacts``: it
    runs ``write`` for a report that keeps them or at which the scheduler stops the trial, ASHA); else always.

    Every epoch also reports the validation split's Corr. (``valid/corr``, ``valid/corr_pooled``, with
    ``correlation``) and rationale scores (``valid/rationale_*``, where it has rationales) of that epoch's
    weights, and their values at the selected epoch (``best/valid_corr``, ...), so selection never reads
    test data.

    The last epoch's metrics, plus ``test/*`` of the best epoch's weights,
    ``test/corr`` and ``best_epoch``, are returned in ``final`` for the caller
    to extend and report (so a trainable that evaluates more, e.g. faithfulness,
    reports everything in one last result).
    """
    cfg = parse_config(config)
    start_runtime(cfg)
    setup = ClassifierSetup(cfg)
    trainer = setup.trainer
    if resume is not None:
        trainer.load_state_dict(resume["trainer"])
    fixed: dict[str, Any] = dict((resume or {}).get("fixed", {}))  # the corr_epoch measurements

    def fixed_epoch(result) -> dict[str, Any]:
        # a corr_epoch beyond a shortened run (smoke tests) is measured at the last epoch: fixed/epoch says which
        if cfg.correlation and cfg.corr_epoch is not None and result.epoch == min(cfg.corr_epoch, cfg.epochs):
            fixed[FIXED_EPOCH] = result.epoch
            fixed.update({fixed_metric(k): v for k, v in setup.evaluate(setup.model, "test").items()})
            fixed.update({fixed_metric(k): v for k, v in corr_scores(setup.model, setup, "test").items()})
            return dict(fixed)
        return {}

    interim = None
    if interim_dir is not None:
        def interim(history: list[dict[str, Any]]) -> None:
            def write() -> None:
                write_artifacts(setup, history, interim_dir, final=False)
            if on_interim is None:
                write()
            else:
                on_interim(write)
    history, final, checkpoint = fit_and_report(
        setup, cfg, report, before_report=interim, epoch_extras=fixed_epoch, extra_state=lambda: {"fixed": dict(fixed)},
        valid_extras=lambda model: valid_interpretability(setup, model),
        at_selected=METRIC_KEYS + VALID_INTERPRETABILITY)
    if cfg.correlation:
        final.update(_test(corr_scores(setup.model, setup, "test")))
        final.update(fixed)
    final.update(_test(rationale_scores(setup.model, setup, "test")))
    final.update(dropped_metrics(setup.splits.dropped_empty))
    return TrainedClassifier(setup=setup, history=history, final=final, checkpoint=checkpoint)


def run(cfg: ClassifierTrialConfig, trial: Trial) -> TrialResult:
    """Train one classifier; report every epoch; finish with the final (best-epoch) test metrics
    (``test/*``, ``test/corr``, ...) and the artifacts (config, curves, heatmaps, weights) in ``trial.out_dir``."""
    trained = train_classifier(cfg, trial.report, resume=trial.resume, interim_dir=trial.out_dir,
                               on_interim=trial.interim_artifacts)
    checkpoint = trained.checkpoint()
    artifacts = write_artifacts(trained.setup, trained.history, trial.out_dir) if trial.out_dir is not None else []
    return trial.finish(trained.final, checkpoint, history=trained.history, artifacts=artifacts)


TRAINABLE = Trainable(name="classifier", config=ClassifierTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
