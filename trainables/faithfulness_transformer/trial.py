"""Faithfulness trial of a transformer classifier: read a ``finetune`` trial's saved model (``model_dir``) or
fine-tune one (the ``finetune`` trainable's loop), then evaluate every attribution method with every
faithfulness metric, as the ``faithfulness`` trainable does for the attention LSTM
(:func:`trainables.faithfulness.evaluate.evaluate_faithfulness`; metric names and artifacts are the same,
``faith/<metric>[.<cancel_out>]/<method>``). Only content tokens are removed or scored: [CLS], [SEP] and
padding never (``Batch.content_mask``). The evaluated model's test metrics come with them (``test/*``).
"""
from __future__ import annotations

import dataclasses

from trainables.faithfulness.config import FaithfulnessSettings
from trainables.faithfulness.evaluate import evaluate_faithfulness
from trainables.faithfulness_transformer.config import (
    FaithfulnessTransformerTrialConfig,
    evaluation_problems,
    preflight,
)
from trainables.faithfulness_transformer.setup import FaithfulnessTransformerSetup
from trainables.finetune.artifacts import write_artifacts
from trainables.finetune.trial import train_finetune
from trainables.loop_metrics import split_metric
from trainables.protocol import ModelEvaluation, Trainable, Trial, TrialResult, start_runtime


def run(cfg: FaithfulnessTransformerTrialConfig, trial: Trial) -> TrialResult:
    """Read (or fine-tune) the classifier, then finish with its ``test/*`` and the ``faith/*`` metrics."""
    history, steps, checkpoint = [], [], None
    if cfg.model_dir is not None:
        start_runtime(cfg)
        setup = FaithfulnessTransformerSetup(cfg)
        final = {split_metric("test", k): v for k, v in setup.evaluate(setup.model, "test").items()}
    else:
        setup, history, final, make_checkpoint, steps = train_finetune(
            cfg, trial.report, resume=trial.resume, setup_cls=FaithfulnessTransformerSetup, interim_dir=trial.out_dir,
            on_interim=trial.interim_artifacts)
        checkpoint = make_checkpoint()
    metrics, _table, artifacts = evaluate_faithfulness(setup, cfg, trial.out_dir, test=setup.test,
                                                       cancel_out=setup.cancel_out(), id_tokens=setup.id_tokens)
    artifacts = list(artifacts)
    if trial.out_dir is not None and cfg.model_dir is None:
        artifacts += write_artifacts(setup, history, steps, trial.out_dir)
    return trial.finish({**final, **metrics}, checkpoint, history=history, artifacts=artifacts)


def _settings_keys() -> frozenset[str]:
    """The evaluation settings this trainable adds to the ``finetune`` keys (``model_dir`` aside)."""
    return frozenset({f.name for f in dataclasses.fields(FaithfulnessSettings)} | {"mlm", "k"})


#: ``xaisweep evaluate`` with this trainable: the ``model/`` directory of a ``finetune`` trial (``save_model:
#: true``) evaluated on the data it was trained with (its trial config is the base: dataset, splits,
#: ``max_length``, ``data_seed``); an evaluation sets the evaluation settings (methods, metrics, cancel-out, the
#: masked LM and ``k``, IG, deletion, weak learner), the seed or runtime keys, never a data key. The training
#: keys are neutralised (no regulariser table is built for an evaluation).
EVALUATION = ModelEvaluation(
    model_trainables=("finetune",), model_artifact="model", model_key="model_dir",
    knobs=_settings_keys() | {"seed", "device", "num_threads", "precision"},
    inherits_trial_config=True,
    fixed={"save_model": False, "method": None, "regularizer": "none", "pca_figure": False},
    io_checks=evaluation_problems)
TRAINABLE = Trainable(name="faithfulness_transformer", config=FaithfulnessTransformerTrialConfig, run=run,
                      preflight=preflight, evaluation=EVALUATION)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
