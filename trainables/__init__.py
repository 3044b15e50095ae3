"""Trial bodies (plain Python, ``run_trial(config, report)``) and their Ray wrapper.

:data:`TRAINABLES` names every trainable a sweep spec may use. Each entry
knows how to validate a config (``parse_config``) and run a trial
(``run_trial``); modules are imported lazily so that parsing a spec stays cheap.

A trainable module defines:

* ``parse_config(mapping) -> Config``: a frozen dataclass; pure checks only (types,
  ranges, known names), every problem at once (:func:`trainables.config.build_config`).
* ``run_trial(config, report, *, resume=None, out_dir=None)``: the trial body.
* optionally ``preflight(cfg) -> list[str]``: the checks that need I/O, run by
  ``xaisweep run`` on the driver before Ray starts (:func:`sweeps.preflight.check_trial_io`):
  validate every line of the data files and the splits' consistency
  (:func:`trainables.data_setup.data_source_problems`, cached per file), a model
  directory or hub id that must be there (:func:`trainables.hub_checks.hub_model_problems`),
  WordNet installed, ... ``cfg`` is the parsed config. It is called for the base config and
  for every distinct config of the search space's categorical values (under ``--smoke-test``
  with the smoke overrides). Return one line per problem, prefixed with the config key
  (``"dataset: ..."``), naming the file/line/column or the missing resource and how to fix
  it; return ``[]`` when all is well. Never raise for bad input, never train, never touch
  the network when ``HF_HUB_OFFLINE`` is set (tests set it); keep it to seconds.
  The problems are printed with all others and ``xaisweep run`` exits 2 before Ray starts.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Optional


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

    @property
    def preflight(self) -> Optional[Callable[[Any], list[str]]]:
        """The module's ``preflight(cfg)`` hook, or ``None`` if it has none."""
        return getattr(self.load(), "preflight", None)


_CLASSIFIER_METRICS = tuple(
    [f"{split}/{m}" for split in ("valid", "test") for m in ("accuracy", "f1", "roc_auc", "f1_pos")]
    + ["test/corr", "test/corr_pooled", "train/loss", "train/ce", "train/reg", "train/step_time"]
    + [f"best/valid_{m}" for m in ("accuracy", "f1", "roc_auc", "f1_pos")]
    + [f"test/rationale_{m}" for m in ("auprc", "avg_precision", "roc_auc", "documents")]
    # corr_epoch: the test metrics and both Corr.s at one fixed epoch for every method
    + ["fixed/epoch"] + [f"fixed/test_{m}" for m in ("accuracy", "f1", "roc_auc", "f1_pos", "corr", "corr_pooled")]
)

#: attribution methods of xaicore.attribution.ATTRIBUTION_METHODS (a test keeps the two in sync)
ATTRIBUTION_METHOD_NAMES = (
    "saliency", "saliency_signed", "input_x_gradient", "integrated_gradients", "attention", "leave_one_out",
)
_PER_METHOD = ("deletion", "weak_f1", "weak_f1_abs", "shuffle_tvd", "comprehensiveness", "sufficiency", "rationale_auprc",
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

_FINETUNE_METRICS = tuple(
    [f"{split}/{m}" for split in ("valid", "test") for m in ("accuracy", "f1", "roc_auc")]
    + [f"{split}/accuracy_{r}" for split in ("valid", "test") for r in ("A1", "A2", "A3")]
    + ["train/loss", "train/ce", "train/reg", "train/step_time", "train/noise_ratio", "train/frac_changed"]
    + [f"best/valid_{m}" for m in ("accuracy", "f1", "roc_auc")]
)

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
        smoke={"epochs": 1, "max_sentences": 200, "heldout": 40, "num_layers": 1, "max_length": 32, "save_dir": None},
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
    "finetune": TrainableEntry(
        name="finetune",
        module="trainables.finetune",
        metrics=_FINETUNE_METRICS,
        smoke={"epochs": 1, "max_train_examples": 32, "max_eval_examples": 32, "max_length": 64, "batch_size": 8,
               "synthetic_size": 64},
    ),
    "bios_debias": TrainableEntry(
        name="bios_debias",
        module="trainables.bios_debias",
        metrics=_FINETUNE_METRICS + ("train/cancelled", "bias/gap_r", "bias/gap_p_value", "bias/mean_abs_gap",
                                     "bias/n_professions", "train/lr"),
        smoke={"epochs": 1, "synthetic_per_profession": 8, "max_eval_examples": 32, "max_length": 48,
               "batch_size": 8},
    ),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
