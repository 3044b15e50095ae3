"""Faithfulness trial: train (or load) the attention LSTM, then evaluate every attribution
method with every faithfulness metric (faithfulness-evaluation.txt).

Metric names (MLflow / Ray): ``faith/<metric>/<method>`` with metrics

* ``deletion`` - mean fraction of content tokens removed (descending attribution,
  cancel-out method ``cancel_out``, default ``pad``: replace by PAD keeping length)
  until the predicted label flips; 1.0 if it never flips (Table 3; lower = better).
* ``weak_f1`` - test F1 of a context-free MLP weak learner pooling with the frozen,
  unit-L2-norm feature map with its signs (Table 4; plus ``faith/weak_f1/uniform`` and ``/random``);
  ``weak_f1_abs`` - the same with the absolute map ``|w|`` (signs dropped before the norm;
  equal to ``weak_f1`` for maps without negative entries: attention, saliency). The paper does
  not say which it uses; IG and InputXGradient maps are signed, so both rows are reported.
* ``shuffle_tvd`` - median over ``tvd_permutations`` shuffles of the feature map among
  real tokens of TVD = 1/2 sum|p - q| of the weak learner's output, mean over examples
  (Table 5; higher = the map matters more).
* ``comprehensiveness`` / ``sufficiency`` - ERASER AOPC over bins 1, 5, 10, 20, 50 %.
* ``rationale_auprc`` / ``rationale_roc_auc`` - agreement with rationale tokens (when the
  dataset has them: the synthetic task's planted cues, ERASER movie rationales).
* ``kendall_tau`` / ``pearson`` with method ``<a>__<b>`` - agreement between methods.

Plus ``faith/ig_passes_per_batch`` (with ``integrated_gradients``): the mean forward/backward passes IG
took per evaluated test batch (``ig_internal_batch_size``, ``ig_memory_budget_mb``).

With a non-default ``cancel_out`` (``delete``, ``zero_vector``, ``attention_mask``;
:mod:`xaicore.cancel_out.methods`) the token-removing metrics are named
``faith/deletion.<cancel_out>/<method>`` (likewise comprehensiveness, sufficiency) and
the ``leave_one_out`` attribution, which removes tokens itself, ``leave_one_out.<cancel_out>``
(:func:`trainables.faithfulness.metrics.faith_metric_name`).

Artifacts: ``faithfulness_table.md`` / ``.csv`` (methods x metrics, shaped like the
paper's tables), ``attribution_heatmaps.html``, ``weak_learner_valid_loss.png``.
"""
from __future__ import annotations

import dataclasses

from trainables.classifier.artifacts import write_artifacts
from trainables.classifier.trial import train_classifier
from trainables.faithfulness.checkpoint import load_trained
from trainables.faithfulness.config import FaithfulnessTrialConfig, evaluation_problems, preflight
from trainables.faithfulness.evaluate import evaluate_faithfulness
from trainables.classifier.config import ClassifierTrialConfig
from trainables.protocol import ModelEvaluation, Trainable, Trial, TrialResult


def run(cfg: FaithfulnessTrialConfig, trial: Trial) -> TrialResult:
    """Train (or load) the classifier, then finish with classifier + ``faith/*`` metrics."""
    if cfg.model_checkpoint is not None:
        cfg_train = dataclasses.replace(cfg, epochs=1)
        trained = load_trained(cfg_train, cfg.model_checkpoint)
    else:
        trained = train_classifier(cfg, trial.report, resume=trial.resume, interim_dir=trial.out_dir,
                                   on_interim=trial.interim_artifacts)
    metrics, _table, faith_artifacts = evaluate_faithfulness(trained.setup, cfg, trial.out_dir)
    final = {**trained.final, **metrics}
    checkpoint = trained.checkpoint()
    artifacts = list(faith_artifacts)
    if trial.out_dir is not None:
        artifacts += write_artifacts(trained.setup, trained.history, trial.out_dir)
    return trial.finish(final, checkpoint, history=trained.history, artifacts=artifacts)


def _own_keys() -> frozenset[str]:
    """The evaluation settings this trainable adds to the classifier's keys (``model_checkpoint`` aside)."""
    ours = {f.name for f in dataclasses.fields(FaithfulnessTrialConfig)}
    return frozenset(ours - {f.name for f in dataclasses.fields(ClassifierTrialConfig)} - {"model_checkpoint"})


#: ``xaisweep evaluate`` with this trainable: the ``model/best_model.pt`` of a classifier (or faithfulness)
#: trial evaluated on the data it was trained with (its trial config is the base); an evaluation sets the
#: evaluation settings (attribution methods, metrics, cancel-out, IG, deletion, weak learner) and the seed
#: (weak learner, shuffles) or runtime keys, never a data or model key
EVALUATION = ModelEvaluation(
    model_trainables=("classifier", "faithfulness"), model_artifact="model/best_model.pt",
    model_key="model_checkpoint", knobs=_own_keys() | {"seed", "device", "num_threads", "precision"},
    inherits_trial_config=True, fixed={"save_model": False}, io_checks=evaluation_problems)
TRAINABLE = Trainable(name="faithfulness", config=FaithfulnessTrialConfig, run=run, preflight=preflight,
                      evaluation=EVALUATION)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
