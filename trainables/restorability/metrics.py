"""What the ``restorability`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only; the cancel-out methods come from the plug-in registry, :mod:`xaicore.cancel_out.methods`,
on first use). The trial names its results with the same constants and functions."""
from __future__ import annotations

import functools

from trainables import LazyNames

#: the baseline row: the masked LM reads the unchanged input
ORIGINAL = "original"
#: what is read at the cancelled position (:func:`xaicore.cancel_out.restorability.restorability`): the probability of
#: the original token and the maximum probability
QUANTITIES = ("p_original", "p_max")
#: the summaries of each quantity over the sampled tokens (:func:`xaicore.cancel_out.restorability.summarize`)
STATS = ("mean", "median", "share_above_0.5")
#: the sampled (sentence, token) pairs and the sentences they come from
N_TOKENS, N_SENTENCES = "restore/n_tokens", "restore/n_sentences"
#: with ``compile: true``: the graphs torch.compile compiled during the trial (:mod:`xaicore.compilation`)
RECOMPILES = "restore/recompiles"


@functools.cache
def allowed_methods() -> tuple[str, ...]:
    """``original`` and the cancel-out methods that keep every position (not ``delete``), on first use."""
    from xaicore.cancel_out.methods import cancel_out_methods

    return (ORIGINAL,) + tuple(cancel_out_methods(keeps_positions=True))


def stat_metric(quantity: str, stat: str, method: str) -> str:
    """``restore/<quantity>_<stat>/<method>``."""
    return f"restore/{quantity}_{stat}/{method}"


def seconds_metric(method: str) -> str:
    """``restore/seconds/<method>``: wall time of the method's MLM passes."""
    return f"restore/seconds/{method}"


def metric_names(methods=None) -> tuple[str, ...]:
    """Every metric of a trial running ``methods`` (default: every allowed method)."""
    methods = allowed_methods() if methods is None else tuple(methods)
    return tuple(stat_metric(q, s, m) for q in QUANTITIES for s in STATS for m in methods) + tuple(
        seconds_metric(m) for m in methods) + (N_TOKENS, N_SENTENCES, RECOMPILES)


METRICS = LazyNames(metric_names)
SMOKE = {"n_tokens": 60, "k": 2, "batch_size": 16}
