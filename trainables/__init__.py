"""Trial bodies (the trial protocol of :mod:`trainables.protocol`) and their Ray wrapper.

:data:`TRAINABLES` names every trainable a sweep spec may use, with the metrics it
emits and its smoke-test overrides. Each entry knows how to validate a config
(``parse_config``) and run a trial; modules are imported lazily so that parsing a
spec stays cheap.

A trainable module defines ``TRAINABLE`` (a :class:`trainables.protocol.Trainable`) with:

* ``config``: a frozen dataclass; ``parse_config(mapping)`` does the pure checks only (types,
  ranges, known names), every problem at once (:func:`trainables.config.build_config`).
* ``run(cfg, trial)``: the trial body: ``trial.report(metrics, checkpoint)`` every epoch but the
  last, ``trial.finish(...)`` exactly once for the final result; ``trial.resume``, ``trial.out_dir``.
  ``run_trial(config, report, *, resume=None, out_dir=None)`` runs it in plain Python.
* ``preflight(cfg) -> list[str]``: the checks that need I/O, run by
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
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence


@dataclass(frozen=True)
class TrainableEntry:
    """Attributes:
        name: the ``trainable:`` value in a sweep spec.
        module: module defining ``TRAINABLE`` (:class:`trainables.protocol.Trainable`) of that name.
        metrics: metric names the trainable reports (a spec's ``metric`` must be one of them); a tuple,
            or :class:`LazyNames` where they come from the plug-in registries (imported on first use).
        smoke: config overrides for ``xaisweep run --smoke-test``.
    """

    name: str
    module: str
    metrics: Sequence[str]
    smoke: Mapping[str, Any] = field(default_factory=dict)

    def load(self):
        return importlib.import_module(self.module)

    @property
    def trainable(self):
        """The module's :class:`trainables.protocol.Trainable` (config class, ``run``, ``preflight``)."""
        return self.load().TRAINABLE

    @property
    def parse_config(self) -> Callable[[Mapping[str, Any]], Any]:
        return self.trainable.parse_config

    @property
    def run_trial(self) -> Callable[..., Any]:
        """``run_trial(config, report, *, resume=None, out_dir=None)``: one trial in plain Python."""
        return self.trainable.run_trial

    @property
    def preflight(self) -> Optional[Callable[[Any], list[str]]]:
        """The trainable's ``preflight(cfg)`` hook (``[]`` when it needs no I/O check)."""
        return self.trainable.preflight


_CLASSIFIER_METRICS = tuple(
    [f"{split}/{m}" for split in ("valid", "test") for m in ("accuracy", "f1", "roc_auc", "f1_pos")]
    + ["test/corr", "test/corr_pooled", "train/loss", "train/ce", "train/reg", "train/step_time", "train/lr"]
    + [f"best/valid_{m}" for m in ("accuracy", "f1", "roc_auc", "f1_pos")]
    + [f"test/rationale_{m}" for m in ("auprc", "avg_precision", "roc_auc", "documents")]
    # corr_epoch: the test metrics and both Corr.s at one fixed epoch for every method
    + ["fixed/epoch"] + [f"fixed/test_{m}" for m in ("accuracy", "f1", "roc_auc", "f1_pos", "corr", "corr_pooled")]
)

class LazyNames(Sequence):
    """A tuple of names computed on first use: the plug-in registries (:mod:`xaicore.faithfulness.attribution`,
    :mod:`xaicore.cancel_out.methods`) import torch, and ``import trainables`` (spec parsing, the CLI) stays cheap."""

    def __init__(self, compute: Callable[[], Sequence[str]]) -> None:
        self._compute, self._names = compute, None

    @property
    def names(self) -> tuple[str, ...]:
        if self._names is None:
            self._names = tuple(self._compute())
        return self._names

    def __getitem__(self, i):
        return self.names[i]

    def __len__(self) -> int:
        return len(self.names)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names)

    def __contains__(self, name: object) -> bool:
        return name in self.names

    def __eq__(self, other: object) -> bool:
        return tuple(self) == tuple(other) if isinstance(other, Sequence) else NotImplemented

    def __repr__(self) -> str:
        return repr(self.names)


def _attribution_method_names() -> tuple[str, ...]:
    from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS

    return tuple(ATTRIBUTION_METHODS)


def _faith_cancel_outs() -> tuple[str, ...]:
    """Cancel-out methods the faithfulness trainable (word-level BiLSTM) accepts: those needing no mask token."""
    from xaicore.cancel_out.methods import cancel_out_methods

    return cancel_out_methods(needs_mask_token=False)


def _restorability_cancel_outs() -> tuple[str, ...]:
    """Cancel-out methods a restorability trial may use: those that keep every position (not ``delete``)."""
    from xaicore.cancel_out.methods import cancel_out_methods

    return cancel_out_methods(keeps_positions=True)


#: taken from the registries on first use (module ``__getattr__``): the attribution methods
#: (xaicore.faithfulness.attribution.ATTRIBUTION_METHODS), the faithfulness trainable's cancel-out methods
#: ("pad" is the default and keeps the plain metric names) and the restorability trainable's
_LAZY = {"ATTRIBUTION_METHOD_NAMES": _attribution_method_names, "FAITH_CANCEL_OUTS": _faith_cancel_outs,
         "RESTORABILITY_CANCEL_OUTS": _restorability_cancel_outs}
_LAZY_VALUES: dict[str, tuple[str, ...]] = {}


def __getattr__(name: str):
    if name in _LAZY:
        if name not in _LAZY_VALUES:
            _LAZY_VALUES[name] = _LAZY[name]()
        return _LAZY_VALUES[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


_PER_METHOD = ("deletion", "weak_f1", "weak_f1_abs", "shuffle_tvd", "comprehensiveness", "sufficiency", "rationale_auprc",
               "rationale_roc_auc")
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
    attributions = __getattr__("ATTRIBUTION_METHOD_NAMES")
    for c in __getattr__("FAITH_CANCEL_OUTS"):
        methods = [faith_method_name(a, c) for a in attributions]
        for m in _PER_METHOD:
            for a in attributions:
                names[faith_metric_name(m, a, c)] = None
        for b in ("uniform", "random"):
            names[f"faith/weak_f1/{b}"] = None
        for m in ("kendall_tau", "pearson"):
            for i, a in enumerate(methods):
                for b in methods[i + 1:]:
                    names[f"faith/{m}/{a}__{b}"] = None
    return tuple(names)



def _restorability_metrics() -> tuple[str, ...]:
    methods = ("original",) + __getattr__("RESTORABILITY_CANCEL_OUTS")
    return tuple(
        [f"restore/{q}_{s}/{m}" for q in ("p_original", "p_max") for s in ("mean", "median", "share_above_0.5")
         for m in methods]
        + [f"restore/seconds/{m}" for m in methods]
        + ["restore/n_tokens", "restore/n_sentences"]
    )


_FINETUNE_METRICS = tuple(
    [f"{split}/{m}" for split in ("valid", "test") for m in ("accuracy", "f1", "roc_auc", "f1_pos")]
    + [f"{split}/accuracy_{r}" for split in ("valid", "test") for r in ("A1", "A2", "A3")]
    + ["train/loss", "train/ce", "train/reg", "train/step_time", "train/noise_ratio", "train/frac_changed", "train/lr"]
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
        metrics=LazyNames(lambda: _CLASSIFIER_METRICS + _faith_metrics()),
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
        metrics=LazyNames(_restorability_metrics),
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
                                     "bias/n_professions"),
        smoke={"epochs": 1, "synthetic_per_profession": 8, "max_eval_examples": 32, "max_length": 48,
               "batch_size": 8},
    ),
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
