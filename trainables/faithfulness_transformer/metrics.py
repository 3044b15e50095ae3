"""What the ``faithfulness_transformer`` trainable reports and its smoke-test overrides (torch-free): the
``finetune`` trainable's metrics (the evaluated model's test metrics) and the ``faith/*`` names of
:mod:`trainables.faithfulness.metrics` for every cancel-out method (a sub-word vocabulary has a [MASK])."""
from __future__ import annotations

import functools

from trainables import LazyNames
from trainables.faithfulness.metrics import faith_metrics
from trainables.finetune.metrics import METRICS as FINETUNE_METRICS

#: the default ``cancel_out``: ``pad`` would feed [PAD] ids inside the attention mask, which a transformer
#: never saw in training; the zero word vector keeps the position, type embeddings and LayerNorm
DEFAULT_CANCEL_OUT = "zero_vector"


@functools.cache
def transformer_cancel_outs() -> tuple[str, ...]:
    """Every registered cancel-out method (on first use): a transformer's tokenizer has a [MASK] id, and the
    marginalize methods take the masked LM of the ``mlm`` key."""
    from xaicore.cancel_out.methods import cancel_out_methods

    return tuple(cancel_out_methods())


METRICS = LazyNames(lambda: FINETUNE_METRICS + faith_metrics(transformer_cancel_outs()))
SMOKE = {"epochs": 1, "max_train_examples": 32, "max_eval_examples": 32, "max_length": 64, "batch_size": 8,
         "synthetic_size": 64, "eval_examples": 16, "ig_steps": 4, "tvd_permutations": 5, "weak_epochs": 1,
         "weak_train_examples": 32, "k": 2}
