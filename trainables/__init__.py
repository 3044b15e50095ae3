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

TRAINABLES: dict[str, TrainableEntry] = {
    "classifier": TrainableEntry(
        name="classifier",
        module="trainables.classifier",
        metrics=_CLASSIFIER_METRICS,
        smoke={"epochs": 1, "synthetic_size": 200, "max_train_examples": 200},
    ),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
