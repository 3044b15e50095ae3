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
  dry-load the data files (:func:`trainables.data_setup.data_source_problems`), a model
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
_FAITH_METRICS = tuple(
    [f"faith/{m}/{a}" for m in _PER_METHOD for a in ATTRIBUTION_METHOD_NAMES]
    + [f"faith/weak_f1/{b}" for b in ("uniform", "random")]
    + [f"faith/{m}/{a}__{b}" for m in ("kendall_tau", "pearson")
       for i, a in enumerate(ATTRIBUTION_METHOD_NAMES) for b in ATTRIBUTION_METHOD_NAMES[i + 1:]]
)

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
    "finetune": TrainableEntry(
        name="finetune",
        module="trainables.finetune",
        metrics=_FINETUNE_METRICS,
        smoke={"epochs": 1, "max_train_examples": 32, "max_eval_examples": 32, "max_length": 64, "batch_size": 8,
               "synthetic_size": 64},
    ),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
