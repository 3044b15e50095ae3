"""The trial protocol: what a trainable declares, the trial object its body runs against, and the
pieces every trial body shares (runtime prologue, epoch loop).

A trainable module defines ``TRAINABLE = Trainable(name, config, run, preflight)``:

* ``config``: the frozen config dataclass (``problems()`` lists every pure check);
  :meth:`Trainable.parse_config` validates a mapping into it.
* ``preflight(cfg) -> list[str]``: the checks that need I/O, on the *parsed* config, run on the
  driver before Ray starts; one line per problem, ``[]`` when all is well, never raises for bad input.
* ``run(cfg, trial)``: the trial body. It calls ``trial.report(metrics, checkpoint)`` for every
  interim result and ``trial.finish(metrics, checkpoint, history=..., artifacts=...)`` exactly once,
  last, for the final one; it continues from ``trial.resume`` (a checkpoint it reported before) and
  writes its artifacts under ``trial.out_dir`` (none when ``None``): the final ones before
  ``finish``, interim ones (e.g. the curves so far) through ``trial.interim_artifacts(write)`` before a report.

A trainable is a package ``trainables/<name>/`` whose ``trial.py`` defines ``TRAINABLE`` and whose
torch-free ``metrics.py`` declares ``METRICS`` (what it reports, built from the names its code emits)
and ``SMOKE`` (its smoke-test overrides); :data:`trainables.TRAINABLES` maps the name to the package
lazily (checking a spec reads ``metrics.py`` only).

The same body runs in plain Python (:meth:`Trainable.run_trial`, with a ``report(metrics, checkpoint)``
callback: the tests, ``xaisweep reproduce``) and under Ray (:mod:`trainables.ray_trainable`, whose
:class:`Trial` subclass logs to MLflow and hands the final result to Tune after the artifacts).
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence

import torch

from trainables.config import build_config
from trainables.loop_metrics import best_metric, split_metric, train_metric
from xaicore.compilation import EAGER, Compilation, forget_compiled
from xaicore.precision import PRECISIONS, Precision
from xaicore.seeding import seed_everything

Report = Callable[[dict[str, Any], Optional[dict[str, Any]]], None]
#: keys a trial may report besides its declared metrics (the epoch, the selected epoch)
BOOKKEEPING_KEYS = ("epoch", "best_epoch")
#: counts about the data rather than results (``data/dropped_empty.<split>``: the rows ``drop_empty``
#: dropped); their split names depend on the data, so they are a declared family, not a list
DATA_COUNT_PREFIX = "data/dropped_empty."


def is_bookkeeping(name: str) -> bool:
    """A key every trainable may emit besides its declared metrics (epoch counters, data counts)."""
    return name in BOOKKEEPING_KEYS or name.startswith(DATA_COUNT_PREFIX)


@dataclass
class TrialResult:
    """What a trial returns: the final metrics, per-epoch history and artifact files."""

    metrics: dict[str, Any]
    history: list[dict[str, Any]] = field(default_factory=list)
    artifacts: list[Path] = field(default_factory=list)


class TrialProtocolError(RuntimeError):
    """A trial body broke the protocol (finished twice, reported after finishing, never finished)."""


class Trial:
    """The trial object a body runs against.

    Attributes:
        resume: the checkpoint to continue from (one the body passed to :meth:`report`), or ``None``.
        out_dir: where the body writes its artifacts, or ``None`` for none.
        result: the :class:`TrialResult` once :meth:`finish` was called, else ``None``.

    This base class hands every result to a ``report(metrics, checkpoint)`` callback (the final one
    last); :mod:`trainables.ray_trainable` overrides :meth:`_interim` and :meth:`_final`.
    """

    def __init__(self, report: Optional[Report] = None, *, resume: Optional[dict[str, Any]] = None,
                 out_dir: Optional[Path] = None) -> None:
        self._callback = report
        self.resume = resume
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.result: Optional[TrialResult] = None

    def report(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]] = None) -> None:
        """An interim result (one per epoch but the last) and the checkpoint to resume from after it."""
        if self.result is not None:
            raise TrialProtocolError("trial.report() after trial.finish()")
        self._interim(metrics, checkpoint)

    def finish(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]] = None, *,
               history: Optional[Sequence[dict[str, Any]]] = None,
               artifacts: Sequence[Path] = ()) -> TrialResult:
        """The final result, exactly once, after the artifacts are written; returns the :class:`TrialResult`."""
        if self.result is not None:
            raise TrialProtocolError("trial.finish() called twice")
        self.result = TrialResult(metrics=metrics, history=list(history or []), artifacts=list(artifacts))
        self._final(metrics, checkpoint, self.result)
        return self.result

    def artifacts_due(self) -> bool:
        """Whether the next :meth:`report` keeps what the body has written under ``out_dir`` so far, so that the
        body writes its interim artifacts (the curves so far, for a trial the scheduler may stop after that
        report) only then. The plain-Python trial keeps only the final artifacts (``trial.finish``): ``False``.
        The answer holds until that report (a subclass may decide once per report)."""
        return False

    def interim_artifacts(self, write: Callable[[], Any]) -> None:
        """Called by the body before an interim report with ``write()``, which writes its interim artifacts as of
        that report under ``out_dir``: runs it when :meth:`artifacts_due` (the Ray trial also runs it when Tune stops
        the trial at that report, so a stopped trial keeps its curves)."""
        if self.artifacts_due():
            write()

    def _interim(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]]) -> None:
        if self._callback is not None:
            self._callback(metrics, checkpoint)

    def _final(self, metrics: dict[str, Any], checkpoint: Optional[dict[str, Any]], result: TrialResult) -> None:
        if self._callback is not None:
            self._callback(metrics, checkpoint)


def no_io_checks(cfg: Any) -> list[str]:
    """The preflight of a trainable that needs no I/O check."""
    return []


@dataclass(frozen=True)
class ModelEvaluation:
    """How a trainable evaluates a model that a finished trial saved (``xaisweep evaluate``).

    Attributes:
        model_trainables: the trainables whose trials save the models it reads.
        model_artifact: the saved model's artifact path in the trial's MLflow run (a file or a directory).
        model_key: the config key that receives the downloaded model's local path.
        knobs: the config keys an evaluation spec may set; every other key comes from the model's own
            trial config (``inherits_trial_config``) or keeps its default.
        inherits_trial_config: the model's trial config is the base of the evaluation config (the data,
            vocabulary and model shape it was trained with; its keys the evaluation's config class lacks
            are left out).
        fixed: values every evaluation config takes (``save_model: false``: the model is not saved again).
        io_checks: ``io_checks(cfg) -> list[str]``, the I/O checks of an evaluation config before Ray starts,
            the model aside (it is downloaded in the evaluation).
    """

    model_trainables: tuple[str, ...]
    model_artifact: str
    model_key: str
    knobs: frozenset[str]
    inherits_trial_config: bool = False
    fixed: Mapping[str, Any] = field(default_factory=dict)
    io_checks: Callable[[Any], list[str]] = no_io_checks


@dataclass(frozen=True)
class Trainable:
    """A trainable's declaration (``TRAINABLE`` of its module).

    Attributes:
        name: the ``trainable:`` value of a sweep spec (a key of :data:`trainables.TRAINABLES`).
        config: the frozen config dataclass.
        run: ``run(cfg, trial, **options) -> TrialResult`` (the body; ends with ``trial.finish``).
        preflight: ``preflight(cfg) -> list[str]`` (I/O checks on the parsed config).
        evaluation: a trainable that evaluates saved models declares how (:class:`ModelEvaluation`);
            ``None`` for the others.
    """

    name: str
    config: type
    run: Callable[..., TrialResult]
    preflight: Callable[[Any], list[str]] = no_io_checks
    evaluation: Optional[ModelEvaluation] = None

    def parse_config(self, config: Any) -> Any:
        """Validate a config mapping (an instance of ``config`` passes as is); raises
        :class:`trainables.config.ConfigError` listing every problem."""
        return parse_trial_config(self.config, self.name, config)

    def run_trial(self, config: Mapping[str, Any] | Any, report: Optional[Report] = None, *,
                  resume: Optional[dict[str, Any]] = None, out_dir: Optional[Path] = None,
                  **options: Any) -> TrialResult:
        """Run one trial in plain Python (no Ray): ``report(metrics, checkpoint)`` gets every interim
        result and, last, the final one; returns the :class:`TrialResult`."""
        return run_body(self, self.parse_config(config), Trial(report, resume=resume, out_dir=out_dir), **options)


def parse_trial_config(config_cls: type, name: str, config: Any) -> Any:
    """``config`` validated into ``config_cls`` (an instance passes as is), problems named for trainable
    ``name``; raises :class:`trainables.config.ConfigError` listing every problem. The ``parse_config``
    of a trainable's ``config.py`` and :meth:`Trainable.parse_config`."""
    if isinstance(config, config_cls):
        return config
    return build_config(config_cls, config, where=f"{name} trial config")


def run_body(trainable: Trainable, cfg: Any, trial: Trial, **options: Any) -> TrialResult:
    """``trainable.run(cfg, trial)``, checking that the body called ``trial.finish`` (the final result)."""
    trainable.run(cfg, trial, **options)
    if trial.result is None:
        raise TrialProtocolError(f"trainable {trainable.name!r}: run() returned without trial.finish()")
    return trial.result


# ----------------------------------------------------------------------------- runtime prologue
def resolve_device(name: str) -> torch.device:
    """``auto`` -> the GPU Ray assigned (``cuda``) when there is one, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but CUDA is not available")
    return torch.device(name)


def device_tag(requested: str = "auto") -> str:
    """Where the trial trains: ``cpu`` or ``cuda:<name> (CUDA_VISIBLE_DEVICES=...)``.

    ``requested`` is the trial config's ``device`` (``auto``, ``cpu``, ``cuda[:N]``).
    """
    if requested == "cpu" or not torch.cuda.is_available():
        return "cpu"
    index = int(requested.split(":", 1)[1]) if requested.startswith("cuda:") else 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "")
    try:
        name = torch.cuda.get_device_name(index)
    except Exception:  # noqa: BLE001 - a bad index fails in the trial itself, with a clear error
        name = "?"
    return f"cuda:{index} {name} (CUDA_VISIBLE_DEVICES={visible})"


def start_runtime(cfg: Any) -> torch.device:
    """The one prologue of every trial body: torch's thread count (``num_threads``; 0 leaves it),
    every seed (``seed``, with ``deterministic`` kernels where the config has that key) and the device.
    On CUDA, fp32 matmuls and convolutions use TF32 (PyTorch leaves them in full IEEE fp32 by default);
    perturbation arithmetic is not affected where it matters: see :mod:`xaicore.precision`.
    With ``compile: true`` the compiled code of earlier trials in this process is dropped
    (``torch._dynamo.reset()``): a reused Ray worker would otherwise pile every trial's graphs onto the
    same functions until dynamo's recompile limit sends them back to eager."""
    if getattr(cfg, "compile", False):
        forget_compiled()
    if getattr(cfg, "num_threads", 0):
        torch.set_num_threads(cfg.num_threads)
    seed_everything(cfg.seed, deterministic=bool(getattr(cfg, "deterministic", False)))
    device = resolve_device(cfg.device)
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device


def runtime_precision(cfg: Any, device: torch.device | str) -> Precision:
    """The config's ``precision`` (``auto`` | ``fp32`` | ``bf16`` | ``fp16``) on ``device``:
    ``auto`` is bf16 autocast on a CUDA device that supports it and fp32 elsewhere (so CPU results
    never move); perturbations stay fp32 under every setting (:mod:`xaicore.precision`)."""
    return Precision.resolve(getattr(cfg, "precision", "auto"), device)


def precision_problems(value: Any) -> list[str]:
    """The config check of ``precision`` (every trainable that trains or evaluates a model)."""
    return [] if value in PRECISIONS else [f"precision: must be one of {', '.join(PRECISIONS)}, got {value!r}"]


def runtime_compilation(cfg: Any) -> Compilation:
    """The config's ``compile`` / ``compile_backend`` as a :class:`xaicore.compilation.Compilation`: the
    model compiled once per trial (by :class:`xaicore.training.Trainer`, or restorability's MLM passes) and
    padded lengths rounded up to a multiple of 8; :data:`~xaicore.compilation.EAGER` when ``compile`` is off."""
    if not getattr(cfg, "compile", False):
        return EAGER
    return Compilation(enabled=True, backend=getattr(cfg, "compile_backend", "inductor"))


def compile_problems(cfg: Any) -> list[str]:
    """The config checks of ``compile`` (true/false) and ``compile_backend`` (a :func:`torch.compile`
    backend, checked when ``compile`` is on) of every trainable that trains or evaluates a model."""
    value = getattr(cfg, "compile", False)
    if not isinstance(value, bool):
        return [f"compile: must be true or false, got {value!r}"]
    backend = getattr(cfg, "compile_backend", "inductor")
    if not value:
        return []
    from xaicore.compilation import known_backends

    known = known_backends()
    if backend not in known:
        return [f"compile_backend: unknown torch.compile backend {backend!r}; choose one of {', '.join(known)}"]
    return []


# ----------------------------------------------------------------------------- epoch loop
def epoch_metrics(result: Any, selection_metric: str, valid: str = "valid") -> dict[str, Any]:
    """Per-epoch report: ``epoch``, ``train/*``, ``<valid>/*`` and ``best/<valid>_<metric>``, the running
    best (monotone: safe for ASHA and the searcher)."""
    out: dict[str, Any] = {"epoch": result.epoch}
    out.update({train_metric(k): v for k, v in result.train.items()})
    out.update({split_metric(valid, k): v for k, v in result.valid.items()})
    out[best_metric(valid, selection_metric)] = result.best
    return out


def fit_epochs(
    trainer: Any,
    cfg: Any,
    report: Report,
    *,
    epoch_batches: Callable[[int], Any],
    evaluate: Callable[[Any], dict[str, float]],
    valid: str = "valid",
    selection_metric: Optional[str] = None,
    extra_state: Optional[Callable[[], dict[str, Any]]] = None,
    on_step: Optional[Callable[[int, dict[str, float]], None]] = None,
    before_report: Optional[Callable[[list[dict[str, Any]]], None]] = None,
    epoch_extras: Optional[Callable[[Any], dict[str, Any]]] = None,
    at_selected: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any], Callable[[], dict[str, Any]]]:
    """The one epoch loop adapter: run ``trainer`` (:class:`xaicore.training.Trainer`) to ``cfg.epochs``,
    reporting every epoch but the last (the body reports that one with ``trial.finish``).

    Args:
        trainer: the trainer (resumed already, when the trial resumes).
        cfg: the trial config (``epochs``; ``dataclasses.asdict`` goes in the checkpoint).
        report: ``report(metrics, checkpoint)`` (``trial.report``).
        epoch_batches / evaluate: what :meth:`Trainer.fit` takes.
        valid: prefix of the evaluation metrics (``valid/*``; ``heldout/*`` for the masked LM).
        selection_metric: the metric of ``best/<valid>_<metric>`` (default ``cfg.selection_metric``).
        extra_state: more entries for the checkpoint (e.g. per-step statistics).
        on_step: per-step callback of :meth:`Trainer.fit`.
        before_report: called with the history so far before each interim report (e.g. to write the
            curves of a trial that ASHA may stop after this report).
        epoch_extras: ``epoch_extras(epoch_result) -> dict`` of more metrics for that epoch.
        at_selected: keys of the ``evaluate`` metrics also reported at the selected epoch so far, as
            ``best/<valid>_<key>`` (the value of the last epoch the selection metric picked: the weights the
            trainer ends with; not monotone), when that epoch's metrics have the key; the selection metric
            itself is the running best. Rebuilt from the trainer's history on resume, like the rest. A
            trainable that declares ``best/valid_<key>`` for every classification metric passes them all:
            an objective ``best/valid_f1`` under ``selection_metric: roc_auc`` is then the F1 of the
            selected epoch, not a metric Tune never receives.

    Returns:
        ``(history, last, checkpoint)``: per-epoch metrics (resumed epochs included), a copy of the last
        epoch's metrics (the base of the final result) and the checkpoint function.
    """
    selection_metric = selection_metric or cfg.selection_metric
    selected: dict[str, Any] = {}  # the evaluate metrics of the selected epoch so far

    def metrics_of(result: Any) -> dict[str, Any]:
        nonlocal selected
        if result.is_best:
            selected = result.valid
        metrics = epoch_metrics(result, selection_metric, valid)
        # the selection metric's running best is already there (the same number as at the selected epoch)
        metrics.update({best_metric(valid, k): selected[k] for k in at_selected
                        if k in selected and k != selection_metric})
        return metrics

    history = [metrics_of(r) for r in trainer.result.history]

    def checkpoint() -> dict[str, Any]:
        state = {"trainer": trainer.state_dict(), "config": dataclasses.asdict(cfg)}
        return {**state, **(extra_state() if extra_state is not None else {})}

    def on_epoch_end(result: Any, _trainer: Any) -> None:
        metrics = metrics_of(result)
        if epoch_extras is not None:
            metrics.update(epoch_extras(result))
        history.append(metrics)
        if result.epoch < cfg.epochs:
            if before_report is not None:
                before_report(history)
            report(metrics, checkpoint())

    trainer.fit(epoch_batches, evaluate, on_epoch_end=on_epoch_end, on_step=on_step)
    last = dict(history[-1]) if history else {"epoch": trainer.epoch}
    return history, last, checkpoint


def fit_and_report(
    setup: Any,
    cfg: Any,
    report: Report,
    *,
    extra_state: Optional[Callable[[], dict[str, Any]]] = None,
    on_step: Optional[Callable[[int, dict[str, float]], None]] = None,
    before_report: Optional[Callable[[list[dict[str, Any]]], None]] = None,
    epoch_extras: Optional[Callable[[Any], dict[str, Any]]] = None,
    valid_extras: Optional[Callable[[Any], dict[str, Any]]] = None,
    at_selected: Sequence[str] = (),
) -> tuple[list[dict[str, Any]], dict[str, Any], Callable[[], dict[str, Any]]]:
    """:func:`fit_epochs` for a setup with ``trainer``, ``epoch_batches(epoch)``, ``evaluate(model, "valid" |
    "test")`` and ``model`` (the classifier and finetune trainables); the final metrics add ``test/*`` of the
    best epoch's weights and ``best_epoch``. Returns ``(history, final, checkpoint)``.

    ``valid_extras(model) -> dict``: more validation metrics of the epoch's weights (``valid/<key>``, kept in
    the trainer's history and so in its checkpoint: a resumed trial has them). It runs inside the trainer's
    autocast context: a metric that needs fp32 turns autocast off itself. ``at_selected``: see
    :func:`fit_epochs` (e.g. keys of ``valid_extras`` reported as ``best/valid_<key>``)."""

    def evaluate(model: Any) -> dict[str, Any]:
        metrics = setup.evaluate(model, "valid")
        if valid_extras is not None:
            metrics.update(valid_extras(model))
        return metrics

    history, final, checkpoint = fit_epochs(
        setup.trainer, cfg, report, epoch_batches=setup.epoch_batches, evaluate=evaluate,
        extra_state=extra_state, on_step=on_step, before_report=before_report, epoch_extras=epoch_extras,
        at_selected=at_selected)
    final.update({split_metric("test", k): v for k, v in setup.evaluate(setup.model, "test").items()})
    final["best_epoch"] = setup.trainer.result.best_epoch
    return history, final, checkpoint
