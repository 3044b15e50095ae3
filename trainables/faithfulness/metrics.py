"""What the ``faithfulness`` trainable reports and its smoke-test overrides (torch-free: checking a spec
imports this module only; the attribution and cancel-out methods come from the plug-in registries,
:mod:`xaicore.faithfulness.attribution` and :mod:`xaicore.cancel_out.methods`, on first use). The evaluation names its
results with the same constants and functions."""
from __future__ import annotations

import functools
from typing import Optional, Sequence

from trainables import LazyNames
from trainables.classifier.metrics import METRICS as CLASSIFIER_METRICS
from trainables.classifier.metrics import metric_problems as classifier_metric_problems

#: the default ``cancel_out``: it keeps the plain metric names
DEFAULT_CANCEL_OUT = "pad"
#: metrics that remove tokens, and so depend on the cancel-out method
CANCEL_DEPENDENT = ("deletion", "comprehensiveness", "sufficiency")
#: the metrics of every attribution method, in the column order of the faithfulness table
PER_METHOD = ("deletion", "weak_f1", "weak_f1_abs", "shuffle_tvd", "comprehensiveness", "sufficiency",
              "rationale_auprc", "rationale_roc_auc")
#: the weak learner's feature maps that are no attribution method (its baselines, ``faith/weak_f1/<b>``)
BASELINES = ("uniform", "random")
#: agreement of two methods' maps (``faith/<stat>/<a>__<b>``)
AGREEMENT = ("kendall_tau", "pearson")
#: why a config would never report a metric: the trained classifier's rule (Corr. needs ``correlation: true``)
metric_problems = classifier_metric_problems
#: mean forward/backward passes Integrated Gradients took per evaluated test batch (``ig_internal_batch_size``)
IG_PASSES_PER_BATCH = "faith/ig_passes_per_batch"
#: with ``compile: true``: the graphs torch.compile compiled while the faithfulness metrics ran (after training)
RECOMPILES = "faith/recompiles"


@functools.cache
def attribution_method_names() -> tuple[str, ...]:
    """Every registered attribution method (:data:`xaicore.faithfulness.attribution.ATTRIBUTION_METHODS`), on first use."""
    from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS

    return tuple(ATTRIBUTION_METHODS)


@functools.cache
def faith_cancel_outs() -> tuple[str, ...]:
    """Cancel-out methods this trainable (word-level BiLSTM) accepts: those needing no mask token (on first use)."""
    from xaicore.cancel_out.methods import cancel_out_methods

    return tuple(cancel_out_methods(needs_mask_token=False))


def faith_method_name(method: str, cancel_out: str = DEFAULT_CANCEL_OUT) -> str:
    """An attribution that removes tokens itself (its attributor declares ``takes_cancel_out``, e.g.
    ``leave_one_out``) is ``<method>.<cancel_out>`` when the cancel-out method is not the default."""
    from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS

    attributor = ATTRIBUTION_METHODS.get(method)
    if attributor is not None and attributor.takes_cancel_out and cancel_out != DEFAULT_CANCEL_OUT:
        return f"{method}.{cancel_out}"
    return method


def faith_metric_name(metric: str, method: str, cancel_out: str = DEFAULT_CANCEL_OUT) -> str:
    """``faith/<metric>[.<cancel_out>]/<method>``: token-removing metrics carry a non-default cancel-out method."""
    if metric in CANCEL_DEPENDENT and cancel_out != DEFAULT_CANCEL_OUT:
        metric = f"{metric}.{cancel_out}"
    return f"faith/{metric}/{faith_method_name(method, cancel_out)}"


def agreement_metric_name(stat: str, a: str, b: str) -> str:
    """``faith/<stat>/<a>__<b>``: a statistic of :data:`AGREEMENT` between the maps of methods ``a`` and ``b``
    (their names as :func:`faith_method_name` gives them)."""
    return f"faith/{stat}/{a}__{b}"


def faith_metrics(cancel_outs: Optional[Sequence[str]] = None) -> tuple[str, ...]:
    """Every ``faith/*`` name, for every registered attribution method and accepted cancel-out method
    (``cancel_outs``; default :func:`faith_cancel_outs`, the word-level BiLSTM's)."""
    names: dict[str, None] = {IG_PASSES_PER_BATCH: None, RECOMPILES: None}
    attributions = attribution_method_names()
    for c in (faith_cancel_outs() if cancel_outs is None else cancel_outs):
        methods = [faith_method_name(a, c) for a in attributions]
        for m in PER_METHOD:
            for a in attributions:
                names[faith_metric_name(m, a, c)] = None
        for b in BASELINES:
            names[faith_metric_name("weak_f1", b, c)] = None
        for m in AGREEMENT:
            for i, a in enumerate(methods):
                for b in methods[i + 1:]:
                    names[agreement_metric_name(m, a, b)] = None
    return tuple(names)


#: the classifier's metrics (the trained model) and every ``faith/*`` name, computed on first use
METRICS = LazyNames(lambda: CLASSIFIER_METRICS + faith_metrics())
SMOKE = {"epochs": 1, "synthetic_size": 200, "max_train_examples": 200, "eval_examples": 32,
         "ig_steps": 8, "tvd_permutations": 10, "weak_epochs": 1, "weak_train_examples": 200}
