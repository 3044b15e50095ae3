"""What the ``mlm`` trainable reports and its smoke-test overrides (torch-free: checking a spec imports this
module only). The trial names its results with the same constants."""
from __future__ import annotations

from trainables.loop_metrics import TRAIN_STATS, best_metric, split_metric, train_metric

#: the evaluated split: the held-out sentences (``heldout/*``)
HELDOUT = "heldout"
#: what :func:`xaicore.models.masked_lm.masked_accuracy` measures on them (masked top-1 accuracy, loss, masked tokens)
EVAL_STATS = ("accuracy", "loss", "n_masked")
#: the selection metric (the best epoch's weights are saved)
SELECTION_METRIC = "accuracy"
#: the masked accuracy of the base model, before the first epoch
INITIAL_ACCURACY = split_metric(HELDOUT, "initial_accuracy")

METRICS = tuple(
    [split_metric(HELDOUT, s) for s in EVAL_STATS]
    + [INITIAL_ACCURACY, best_metric(HELDOUT, SELECTION_METRIC)]
    + [train_metric(s) for s in TRAIN_STATS]
)
SMOKE = {"epochs": 1, "max_sentences": 200, "heldout": 40, "num_layers": 1, "max_length": 32, "save_dir": None}
