"""What the ``bios_debias`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only). The trial names its results with the same constants."""
from __future__ import annotations

from trainables.finetune.metrics import METRICS as FINETUNE_METRICS
from trainables.loop_metrics import train_metric

#: the per-step statistic of the cancel-out objective (:func:`xaicore.cancel_out.methods.cancel_out_loss`): the mean
#: number of cancelled tokens per example, ``train/cancelled``
CANCELLED_STAT = "cancelled"
#: Pearson r of the per-profession TPR gap (test) vs the training female rate, its p-value, the mean
#: absolute gap and the professions counted (:func:`trainables.bios_debias.trial.bias_report`)
GAP_R, GAP_P_VALUE, MEAN_ABS_GAP, N_PROFESSIONS = "bias/gap_r", "bias/gap_p_value", "bias/mean_abs_gap", \
    "bias/n_professions"
BIAS_METRICS = (GAP_R, GAP_P_VALUE, MEAN_ABS_GAP, N_PROFESSIONS)

#: the ``finetune`` metrics plus the cancel-out statistic and the bias metrics
METRICS = FINETUNE_METRICS + (train_metric(CANCELLED_STAT),) + BIAS_METRICS
SMOKE = {"epochs": 1, "synthetic_per_profession": 8, "max_eval_examples": 32, "max_length": 48, "batch_size": 8}
