"""Trial bodies (plain Python, ``run_trial(config, report)``) and their Ray wrapper.

:data:`TRAINABLES` names every trainable a sweep spec may use. Each entry
knows how to validate a config (``parse_config``) and run a trial
(``run_trial``); modules are imported lazily so that parsing a spec stays cheap.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping


@dataclass(frozen=True)
class TrainableEntry:
    """Attributes:
        name: the ``trainable:`` value in a sweep spec.
        module: module defining ``parse_config(mapping)`` and ``run_trial(config, report, *, resume, out_dir)``.
        metrics: metric names the trainable reports (a spec's ``metric`` must be one of them).
        smoke: config overrides for ``xaisweep run --smoke-test``.
    """

    name: str
    module: str
    metrics: tuple[str, ...]
    smoke: Mapping[str, Any] = field(default_factory=dict)

    def load(self):
        return importlib.import_module(self.module)

    @property
    def parse_config(self) -> Callable[[Mapping[str, Any]], Any]:
        return self.load().parse_config

    @property
    def run_trial(self) -> Callable[..., Any]:
        return self.load().run_trial


_CLASSIFIER_METRICS = tuple(
    [f"{split}/{m}" for split in ("valid", "test") for m in ("accuracy", "f1", "roc_auc")]
    + ["test/corr", "train/loss", "train/ce", "train/reg", "train/step_time"]
    + [f"best/valid_{m}" for m in ("accuracy", "f1", "roc_auc")]
)

#: attribution methods of xaicore.attribution.ATTRIBUTION_METHODS (a test keeps the two in sync)
ATTRIBUTION_METHOD_NAMES = (
    "saliency", "saliency_signed", "input_x_gradient", "integrated_gradients", "attention", "leave_one_out",
)
_PER_METHOD = ("deletion", "weak_f1", "shuffle_tvd", "comprehensiveness", "sufficiency", "rationale_auprc",
               "rationale_roc_auc")
#: cancel-out methods the faithfulness trainable (word-level BiLSTM) accepts (xaicore.cancel_out.LSTM_METHODS;
#: a test keeps the two in sync); "pad" is the default and keeps the plain metric names
FAITH_CANCEL_OUTS = ("pad", "delete", "zero_vector", "attention_mask")
DEFAULT_CANCEL_OUT = "pad"
#: metrics that remove tokens, and so depend on the cancel-out method
CANCEL_DEPENDENT = ("deletion", "comprehensiveness", "sufficiency")


def faith_method_name(method: str, cancel_out: str = DEFAULT_CANCEL_OUT) -> str:
    """``leave_one_out`` removes tokens itself: it is ``leave_one_out.<cancel_out>`` when not the default."""
    if method == "leave_one_out" and cancel_out != DEFAULT_CANCEL_OUT:
        return f"{method}.{cancel_out}"
    return method


def faith_metric_name(metric: str, method: str, cancel_out: str = DEFAULT_CANCEL_OUT) -> str:
    """``faith/<metric>[.<cancel_out>]/<method>``: token-removing metrics carry a non-default cancel-out method."""
    if metric in CANCEL_DEPENDENT and cancel_out != DEFAULT_CANCEL_OUT:
        metric = f"{metric}.{cancel_out}"
    return f"faith/{metric}/{faith_method_name(method, cancel_out)}"


def _faith_metrics() -> tuple[str, ...]:
    names: dict[str, None] = {}
    for c in FAITH_CANCEL_OUTS:
        methods = [faith_method_name(a, c) for a in ATTRIBUTION_METHOD_NAMES]
        for m in _PER_METHOD:
            for a in ATTRIBUTION_METHOD_NAMES:
                names[faith_metric_name(m, a, c)] = None
        for b in ("uniform", "random"):
            names[f"faith/weak_f1/{b}"] = None
        for m in ("kendall_tau", "pearson"):
            for i, a in enumerate(methods):
                for b in methods[i + 1:]:
                    names[f"faith/{m}/{a}__{b}"] = None
    return tuple(names)


_FAITH_METRICS = _faith_metrics()

#: cancel-out methods a restorability trial may use (every xaicore.cancel_out method but "delete"; tested in sync)
RESTORABILITY_CANCEL_OUTS = ("pad", "zero_vector", "mask_token", "attention_mask", "weighted_marginalize",
                             "uniform_marginalize")

TRAINABLES: dict[str, TrainableEntry] = {
    "classifier": TrainableEntry(
        name="classifier",
        module="trainables.classifier",
        metrics=_CLASSIFIER_METRICS,
        smoke={"epochs": 1, "synthetic_size": 200, "max_train_examples": 200},
    ),
    "faithfulness": TrainableEntry(
        name="faithfulness",
        module="trainables.faithfulness",
        metrics=_CLASSIFIER_METRICS + _FAITH_METRICS,
        smoke={"epochs": 1, "synthetic_size": 200, "max_train_examples": 200, "eval_examples": 32,
               "ig_steps": 8, "tvd_permutations": 10, "weak_epochs": 1, "weak_train_examples": 200},
    ),
    "mlm": TrainableEntry(
        name="mlm",
        module="trainables.mlm",
        metrics=("heldout/accuracy", "heldout/loss", "heldout/n_masked", "heldout/initial_accuracy",
                 "best/heldout_accuracy", "train/loss", "train/ce", "train/reg", "train/step_time", "train/lr"),
        smoke={"epochs": 1, "max_sentences": 200, "heldout": 40, "num_layers": 1, "max_length": 32},
    ),
    "restorability": TrainableEntry(
        name="restorability",
        module="trainables.restorability",
        metrics=tuple(
            [f"restore/{q}_{s}/{m}" for q in ("p_original", "p_max") for s in ("mean", "median", "share_above_0.5")
             for m in ("original",) + RESTORABILITY_CANCEL_OUTS]
            + [f"restore/seconds/{m}" for m in ("original",) + RESTORABILITY_CANCEL_OUTS]
            + ["restore/n_tokens", "restore/n_sentences"]
        ),
        smoke={"n_tokens": 60, "k": 2, "batch_size": 16},
    ),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
