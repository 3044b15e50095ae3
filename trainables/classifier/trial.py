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
    CORR,
    CORR_POOLED,
    FIXED_EPOCH,
    RATIONALE_DOCUMENTS,
    fixed_metric,
    rationale_metric,
)
from trainables.classifier.setup import ClassifierSetup
from trainables.data_setup import dropped_metrics
from trainables.protocol import Report, Trainable, Trial, TrialResult, fit_and_report, start_runtime
from xaicore.metrics import attention_gradient_correlations
from xaicore.models.protocol import forward_batch


def _rationale_scores(setup: "ClassifierSetup") -> dict[str, float]:
    """Attention weights vs the test set's human rationales (attention-vat.txt Table 2, ERASER soft-token
    convention: :func:`xaicore.faithfulness.rationale_metrics.eraser_soft_token_scores`); empty without rationales."""
    from xaicore.faithfulness.rationale_metrics import eraser_soft_token_scores

    docs = []
    model = setup.model.eval()
    with torch.no_grad():
        for batch in setup.test_batches:
            if batch.rationale_mask is None:
                return {}
            batch = batch.to(setup.device)
            attention = forward_batch(model, batch).attention
            for i in range(batch.size):
                m = batch.content_mask[i]
                docs.append((batch.rationale_mask[i][m].cpu().numpy().astype(bool), attention[i][m].cpu().numpy()))
    if not docs:
        return {}
    scores = eraser_soft_token_scores(docs)
    out = {rationale_metric(k): float(v) for k, v in scores.items() if k != "n_documents"}
    out[RATIONALE_DOCUMENTS] = int(scores["n_documents"])
    return out


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
) -> TrainedClassifier:
    """Train (or resume) per ``config``, reporting every epoch but the last.

    With ``interim_dir``, the curves and heatmaps so far are written there before each of
    those reports, so a trial the scheduler stops early still has them (ASHA).

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
            corr = attention_gradient_correlations(setup.model, setup.test_batches, setup.device)
            fixed[fixed_metric("corr")], fixed[fixed_metric("corr_pooled")] = corr["mean"], corr["pooled"]
            return dict(fixed)
        return {}

    interim = None
    if interim_dir is not None:
        def interim(history: list[dict[str, Any]]) -> None:
            write_artifacts(setup, history, interim_dir, final=False)
    history, final, checkpoint = fit_and_report(setup, cfg, report, before_report=interim, epoch_extras=fixed_epoch,
                                                extra_state=lambda: {"fixed": dict(fixed)})
    if cfg.correlation:
        corr = attention_gradient_correlations(setup.model, setup.test_batches, setup.device)
        final[CORR], final[CORR_POOLED] = corr["mean"], corr["pooled"]
        final.update(fixed)
    final.update(_rationale_scores(setup))
    final.update(dropped_metrics(setup.splits.dropped_empty))
    return TrainedClassifier(setup=setup, history=history, final=final, checkpoint=checkpoint)


def run(cfg: ClassifierTrialConfig, trial: Trial) -> TrialResult:
    """Train one classifier; report every epoch; finish with the final (best-epoch) test metrics
    (``test/*``, ``test/corr``, ...) and the artifacts (config, curves, heatmaps, weights) in ``trial.out_dir``."""
    trained = train_classifier(cfg, trial.report, resume=trial.resume, interim_dir=trial.out_dir)
    checkpoint = trained.checkpoint()
    artifacts = write_artifacts(trained.setup, trained.history, trial.out_dir) if trial.out_dir is not None else []
    return trial.finish(trained.final, checkpoint, history=trained.history, artifacts=artifacts)


TRAINABLE = Trainable(name="classifier", config=ClassifierTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
