"""Gender-bias mitigation on Bias in Bios by cancelling gender words during fine-tuning (cancel-out.txt section 4).

The ``finetune`` trainable (:mod:`trainables.finetune`: same model loading,
batching, the one training loop, checkpoints) with two hooks:

* data: ``dataset`` is ``bias_in_bios`` (hub ``LabHC/bias_in_bios``), a local file
  with ``text`` / ``profession`` / ``gender`` fields (``{split}`` placeholder
  allowed; one file is split into train/valid/test) or ``synthetic_bios``
  (:func:`xaicore.bias.bios.synthetic_bios`: planted skew carried only by gender
  words; gender-balanced test set). Gender words (pronouns and gendered
  titles always; first names from ``names_file`` or NLTK's ``names`` corpus
  when installed, see ``bias/names_source``) are each bio's rationale, so
  every batch carries them as ``rationale_mask``.
* objective: ``cancel_out`` (:mod:`xaicore.cancel_out.methods`) removes the gender words
  in every training batch (``original`` = plain fine-tuning); the
  marginalize methods use the masked LM ``mlm`` (default: ``model``, which
  must then have an MLM head and the same tokenizer) with ``k`` candidates;
  ``uniform_marginalize`` with ``k = 2`` is section 4.1 (greedy filling of every
  masked gender word from the top-2 candidates of the first, probabilities of
  the two sentences averaged before the loss). Evaluation reads the original,
  uncancelled test bios.

Metrics (final report): the ``finetune`` metrics plus ``bias/gap_r`` (Pearson r
between the per-profession TPR gap ``TPR_f - TPR_m`` on test, eq. 2, and the
*training* female rate), ``bias/gap_p_value``, ``bias/mean_abs_gap``,
``bias/n_professions``. Artifacts: ``fig7_gap_vs_female_rate.png`` (Fig. 7) and
``tpr_gap.csv`` (per profession: female rate, TPR_f, TPR_m, gap, counts).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from trainables.bios_debias.artifacts import plot_gap, write_gap_table
from trainables.bios_debias.config import BiosDebiasConfig, preflight
from trainables.bios_debias.metrics import GAP_P_VALUE, GAP_R, MEAN_ABS_GAP, N_PROFESSIONS
from trainables.bios_debias.setup import BiosSetup
from trainables.finetune.artifacts import write_artifacts
from trainables.finetune.trial import train_finetune
from trainables.protocol import Trainable, Trial, TrialResult
from xaicore.bias.fairness import female_rate, gap_correlation, tpr_gap
from xaicore.metrics import predict


def bias_report(setup: BiosSetup) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """TPR gap per profession on the (uncancelled) test split and its correlation with the training female rate."""
    labels, probs = predict(setup.model, setup.test_batches, setup.device)
    preds = probs.argmax(1)
    C = setup.num_classes
    gaps = tpr_gap(labels, preds, setup.test.extras["gender"], C)
    rate = female_rate(setup.train.labels, setup.train.extras["gender"], C)
    corr = gap_correlation(gaps["gap"], rate)
    metrics = {GAP_R: corr["r"], GAP_P_VALUE: corr["p_value"],
               MEAN_ABS_GAP: float(np.nanmean(np.abs(gaps["gap"]))), N_PROFESSIONS: corr["n_classes"]}
    return metrics, {**gaps, "female_rate": rate}


def run(cfg: BiosDebiasConfig, trial: Trial) -> TrialResult:
    """Fine-tune with the gender words cancelled; finish with accuracy and the gap correlation."""
    setup, history, final, checkpoint, steps = train_finetune(cfg, trial.report, resume=trial.resume,
                                                              setup_cls=BiosSetup, interim_dir=trial.out_dir,
                                                              on_interim=trial.interim_artifacts)
    bias, table = bias_report(setup)
    final = {**final, **bias}
    state = checkpoint()
    artifacts: list[Path] = []
    if trial.out_dir is not None:
        out = trial.out_dir
        artifacts += write_artifacts(setup, history, steps, out)
        names = setup.train.label_names or [str(i) for i in range(setup.num_classes)]
        artifacts.append(plot_gap(table, names, bias[GAP_R], out / "fig7_gap_vs_female_rate.png",
                                  f"{cfg.dataset}, {cfg.cancel_out}"))
        artifacts.append(write_gap_table(table, names, out / "tpr_gap.csv"))
    return trial.finish(final, state, history=history, artifacts=artifacts)


TRAINABLE = Trainable(name="bios_debias", config=BiosDebiasConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
