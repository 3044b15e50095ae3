"""Trial bodies (the trial protocol of :mod:`trainables.protocol`) and their Ray wrapper.

:data:`TRAINABLES` names every trainable a sweep spec may use. Each is a package
``trainables/<name>/``, one per paper family: ``classifier`` (attention VAT), ``faithfulness``
(faithfulness evaluation), ``finetune`` (similar-word noise), ``mlm``, ``restorability`` and
``bios_debias`` (cancel-out). A package holds, as needed:

* ``metrics.py``: ``METRICS`` (the metric names it reports, built from the names its code emits;
  a tuple, or :class:`LazyNames` where they come from the plug-in registries) and ``SMOKE`` (the
  ``xaisweep run --smoke-test`` overrides), optionally ``metric_problems(metric, config)`` (why a config
  would never report a declared metric). Torch-free: checking a spec imports nothing else.
* ``config.py``: the frozen config dataclass; ``parse_config(mapping)`` does the pure checks only
  (types, ranges, known names), every problem at once (:func:`trainables.config.build_config`);
  ``preflight(cfg)``, the I/O checks.
* ``setup.py`` (data, model, trainer), ``artifacts.py`` (the files a trial writes) and
  ``trial.py``: ``TRAINABLE`` (a :class:`trainables.protocol.Trainable`) and ``run_trial``.

The registry maps a name to its package and imports its modules only when asked (``metrics.py`` for
``metrics`` / ``smoke``, ``trial.py`` for the rest), so parsing a spec stays cheap.

A trainable's ``TRAINABLE`` (:class:`trainables.protocol.Trainable`) has:

* ``config``: the frozen config dataclass (``parse_config`` validates a mapping into it).
* ``run(cfg, trial)``: the trial body: ``trial.report(metrics, checkpoint)`` every epoch but the
  last, ``trial.finish(...)`` exactly once for the final result; ``trial.resume``, ``trial.out_dir``.
  ``run_trial(config, report, *, resume=None, out_dir=None)`` runs it in plain Python.
* ``preflight(cfg) -> list[str]``: the checks that need I/O, run by
  ``xaisweep run`` on the driver before Ray starts (:func:`sweeps.launch.preflight.check_trial_io`):
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
* ``evaluation`` (optional): a trainable that scores a model another trial saved declares how
  (:class:`trainables.protocol.ModelEvaluation`: the model trainables and artifact it reads, the config key
  that receives the model, the knobs an evaluation spec may set); ``xaisweep evaluate`` runs it on every
  saved model of a sweep (:mod:`sweeps.evaluation.plan`, :mod:`trainables.evaluation_run`). Today:
  ``faithfulness`` (classifier models), ``faithfulness_transformer`` (finetune models) and ``restorability``
  (mlm models).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence


@dataclass(frozen=True)
class TrainableEntry:
    """Attributes:
        name: the ``trainable:`` value in a sweep spec.
        module: the trainable's package (``trainables.<name>``): ``trial.py`` defines ``TRAINABLE``
            (:class:`trainables.protocol.Trainable`) of that name, ``metrics.py`` ``METRICS`` and ``SMOKE``.
    """

    name: str
    module: str

    def declarations(self):
        """The package's torch-free ``metrics`` module (``METRICS``, ``SMOKE``)."""
        return importlib.import_module(f"{self.module}.metrics")

    @property
    def metrics(self) -> Sequence[str]:
        """Metric names the trainable reports (a spec's ``metric`` must be one of them); a tuple, or
        :class:`LazyNames` where they come from the plug-in registries (computed on first use)."""
        return self.declarations().METRICS

    @property
    def smoke(self) -> Mapping[str, Any]:
        """Config overrides for ``xaisweep run --smoke-test``."""
        return self.declarations().SMOKE

    def metric_problems(self, metric: str, config: Mapping[str, Any]) -> list[str]:
        """Why a trial of the raw ``config`` would never report the declared ``metric`` (e.g. a Corr. metric
        with ``correlation: false``): the ``metric_problems`` of ``metrics.py``, where it has one; ``[]``."""
        check = getattr(self.declarations(), "metric_problems", None)
        return list(check(metric, config)) if check is not None else []

    def load(self):
        """The package's ``trial`` module (imports torch)."""
        return importlib.import_module(f"{self.module}.trial")

    @property
    def trainable(self):
        """The package's :class:`trainables.protocol.Trainable` (config class, ``run``, ``preflight``)."""
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


#: every trainable a sweep spec may name -> its package (imported on first use)
TRAINABLES: dict[str, TrainableEntry] = {
    name: TrainableEntry(name=name, module=f"trainables.{name}")
    for name in ("classifier", "faithfulness", "mlm", "restorability", "finetune", "bios_debias",
                 "faithfulness_transformer")
}


def get_trainable(name: str) -> TrainableEntry:
    try:
        return TRAINABLES[name]
    except KeyError:
        raise ValueError(f"unknown trainable {name!r}; known: {', '.join(sorted(TRAINABLES))}") from None
