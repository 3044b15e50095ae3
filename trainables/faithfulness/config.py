"""The ``faithfulness`` trial config: the classifier's keys plus the evaluation settings, their pure checks
(:func:`parse_config`) and the I/O checks run before Ray starts (:func:`preflight`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional, Union

from trainables.classifier.config import ClassifierTrialConfig
from trainables.classifier.config import preflight as classifier_preflight
from trainables.faithfulness.checkpoint import read_checkpoint
from trainables.faithfulness.metrics import faith_cancel_outs
from trainables.protocol import parse_trial_config
from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS, IG_BASELINES, IG_METHODS
from xaicore.cancel_out.methods import CANCEL_OUT_REGISTRY

FAITH_METRICS = ("deletion", "weak_learner", "shuffle_tvd", "eraser", "agreement", "rationale")
DEFAULT_METHODS = ("saliency", "integrated_gradients", "input_x_gradient", "attention")


@dataclass(frozen=True)
class FaithfulnessSettings:
    """The evaluation settings of a faithfulness trial, whatever the model (mixed into
    :class:`FaithfulnessTrialConfig` and ``trainables.faithfulness_transformer``'s config; checked by
    :func:`settings_problems`).

    Attributes:
        methods: attribution methods (``xaicore.faithfulness.attribution.ATTRIBUTION_METHODS``).
        faith_metrics: subset of ``deletion, weak_learner, shuffle_tvd, eraser, agreement, rationale``.
        eval_examples: test examples evaluated: a random subset of the test split drawn with ``data_seed``
            (the same examples for every seed and method; all of them when the split is not larger), so a
            test file sorted by label is not evaluated on one class.
        ig_steps / ig_method / ig_baseline: IntegratedGradients settings.
        ig_internal_batch_size: interpolation rows per forward/backward pass: ``auto`` (default) as many
            steps per pass as ``ig_memory_budget_mb`` allows for the batch's shape and the model, an
            integer, or ``None`` (all ``batch x ig_steps`` rows at once); results do not depend on it.
            The mean passes per evaluated batch is reported as ``faith/ig_passes_per_batch``.
        ig_memory_budget_mb: working memory of one IG pass with ``ig_internal_batch_size: auto`` (MiB).
        cancel_out: how the erasure metrics and leave-one-out remove a token
            (:mod:`xaicore.cancel_out.methods`; which ones a model admits: its config class).
        deletion_step: tokens removed per step.
        tvd_permutations: shuffles per example.
        weak_epochs / weak_lr / weak_train_examples: weak-learner training.
    """

    methods: tuple = DEFAULT_METHODS
    faith_metrics: tuple = FAITH_METRICS
    eval_examples: int = 500
    ig_steps: int = 50
    ig_method: str = "gausslegendre"
    ig_baseline: str = "zeros"
    ig_internal_batch_size: Union[int, str, None] = "auto"
    ig_memory_budget_mb: float = 1024.0
    cancel_out: str = "pad"
    deletion_step: int = 1
    tvd_permutations: int = 100
    weak_epochs: int = 10
    weak_lr: float = 1e-3
    weak_train_examples: int = 2000


def settings_problems(cfg: FaithfulnessSettings) -> list[str]:
    """The pure checks of the :class:`FaithfulnessSettings` keys, ``cancel_out`` aside (what a model admits)."""
    p = []
    unknown = [m for m in cfg.methods if m not in ATTRIBUTION_METHODS]
    if unknown:
        p.append(f"methods: unknown {unknown}; known: {', '.join(ATTRIBUTION_METHODS)}")
    if not cfg.methods:
        p.append("methods: at least one attribution method is needed")
    bad = [m for m in cfg.faith_metrics if m not in FAITH_METRICS]
    if bad:
        p.append(f"faith_metrics: unknown {bad}; known: {', '.join(FAITH_METRICS)}")
    if cfg.ig_method not in IG_METHODS:
        p.append(f"ig_method: must be one of {', '.join(IG_METHODS)}, got {cfg.ig_method!r}")
    if cfg.ig_baseline not in IG_BASELINES:
        p.append(f"ig_baseline: must be one of {', '.join(IG_BASELINES)}, got {cfg.ig_baseline!r}")
    ibs = cfg.ig_internal_batch_size
    if (isinstance(ibs, str) and ibs != "auto") or (isinstance(ibs, int) and ibs < 1):
        p.append(f"ig_internal_batch_size: must be auto, an integer >= 1 or null, got {ibs!r}")
    if not cfg.ig_memory_budget_mb > 0:
        p.append(f"ig_memory_budget_mb: must be > 0, got {cfg.ig_memory_budget_mb}")
    for name in ("eval_examples", "ig_steps", "deletion_step", "tvd_permutations", "weak_epochs",
                 "weak_train_examples"):
        if getattr(cfg, name) < 1:
            p.append(f"{name}: must be >= 1, got {getattr(cfg, name)}")
    return p


@dataclass(frozen=True)
class FaithfulnessTrialConfig(FaithfulnessSettings, ClassifierTrialConfig):
    """A :class:`ClassifierTrialConfig` plus the :class:`FaithfulnessSettings`.

    Attributes:
        cancel_out: one of ``pad`` (replace by PAD, keep length), ``delete``, ``zero_vector``,
            ``attention_mask`` (the word vocabulary has no [MASK] and no masked LM shares it).
        model_checkpoint: a ``best_model.pt`` (``save_model: true`` of a classifier trial)
            to evaluate instead of training; it must come from the same data/vocab config.
    """

    model_checkpoint: Optional[str] = None

    def problems(self) -> list[str]:
        p = super().problems() + settings_problems(self)
        if self.cancel_out in CANCEL_OUT_REGISTRY and CANCEL_OUT_REGISTRY[self.cancel_out].needs_mask_token:
            p.append(f"cancel_out: {self.cancel_out!r} needs a model with a mask token and a masked LM sharing its "
                     f"vocabulary; the attention-LSTM's word vocabulary has none: use one of {', '.join(faith_cancel_outs())} "
                     "(or evaluate a transformer: trainable faithfulness_transformer)")
        elif self.cancel_out not in faith_cancel_outs():
            p.append(f"cancel_out: must be one of {', '.join(faith_cancel_outs())}, got {self.cancel_out!r}")
        if self.model_checkpoint is not None and not Path(self.model_checkpoint).exists():
            p.append(f"model_checkpoint: no such file {self.model_checkpoint!r}")
        return p


def parse_config(config: Mapping[str, Any] | FaithfulnessTrialConfig) -> FaithfulnessTrialConfig:
    return parse_trial_config(FaithfulnessTrialConfig, "faithfulness", config)


def preflight(cfg: FaithfulnessTrialConfig) -> list[str]:
    """I/O checks before Ray starts: those of the classifier trainable (dry-load of every split,
    unlabeled pool, pretrained model), and ``model_checkpoint`` read as the trial reads it
    (tensors and plain types only: a file that would need the full unpickler is refused here)."""
    problems = list(classifier_preflight(cfg))
    if cfg.model_checkpoint is not None and Path(cfg.model_checkpoint).is_file():
        try:
            read_checkpoint(cfg.model_checkpoint)
        except ValueError as err:
            problems.append(str(err))
    return problems


def has_rationales(cfg: ClassifierTrialConfig) -> bool:
    """Whether the config's data carry human rationales: the synthetic task (its planted cues), a local file
    with a ``rationale`` column role, or a registered hub dataset with a rationale column."""
    from xaicore.data.hub_datasets import KNOWN_DATASETS

    hub = KNOWN_DATASETS.get(cfg.dataset)
    return cfg.dataset == "synthetic" or "rationale" in dict(cfg.columns or {}) or (
        hub is not None and hub.rationale is not None)


def evaluation_problems(cfg: FaithfulnessTrialConfig) -> list[str]:
    """What ``xaisweep evaluate`` checks before Ray starts, besides the config: rationale agreement asked of
    models whose data have no rationales (the trial would leave those metrics out without a word)."""
    if "rationale" in cfg.faith_metrics and not has_rationales(cfg):
        return [f"faith_metrics: rationale needs human rationales, and these models' data ({cfg.dataset!r}) have "
                "none (the synthetic task, a local file with columns: {rationale: ...} or a hub dataset with "
                "rationales do); leave rationale out"]
    return []
