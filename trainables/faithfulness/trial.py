"""Faithfulness trial: train (or load) the attention LSTM, then evaluate every attribution
method with every faithfulness metric (faithfulness-evaluation.txt).

Metric names (MLflow / Ray): ``faith/<metric>/<method>`` with metrics

* ``deletion`` - mean fraction of content tokens removed (descending attribution,
  cancel-out method ``cancel_out``, default ``pad``: replace by PAD keeping length)
  until the predicted label flips; 1.0 if it never flips (Table 3; lower = better).
* ``weak_f1`` - test F1 of a context-free MLP weak learner pooling with the frozen,
  unit-L2-norm feature map with its signs (Table 4; plus ``faith/weak_f1/uniform`` and ``/random``);
  ``weak_f1_abs`` - the same with the absolute map ``|w|`` (signs dropped before the norm;
  equal to ``weak_f1`` for maps without negative entries: attention, saliency). The paper does
  not say which it uses; IG and InputXGradient maps are signed, so both rows are reported.
* ``shuffle_tvd`` - median over ``tvd_permutations`` shuffles of the feature map among
  real tokens of TVD = 1/2 sum|p - q| of the weak learner's output, mean over examples
  (Table 5; higher = the map matters more).
* ``comprehensiveness`` / ``sufficiency`` - ERASER AOPC over bins 1, 5, 10, 20, 50 %.
* ``rationale_auprc`` / ``rationale_roc_auc`` - agreement with rationale tokens (when the
  dataset has them: the synthetic task's planted cues, ERASER movie rationales).
* ``kendall_tau`` / ``pearson`` with method ``<a>__<b>`` - agreement between methods.

With a non-default ``cancel_out`` (``delete``, ``zero_vector``, ``attention_mask``;
:mod:`xaicore.cancel_out`) the token-removing metrics are named
``faith/deletion.<cancel_out>/<method>`` (likewise comprehensiveness, sufficiency) and
the ``leave_one_out`` attribution, which removes tokens itself, ``leave_one_out.<cancel_out>``
(:func:`trainables.faith_metric_name`).

Artifacts: ``faithfulness_table.md`` / ``.csv`` (methods x metrics, shaped like the
paper's tables), ``attribution_heatmaps.html``, ``weak_learner_valid_loss.png``.
"""
from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import torch

from trainables.artifacts import token_heatmap_html
from trainables.classifier import (
    EVAL_BATCH_SIZE,
    ClassifierTrialConfig,
    _write_artifacts,
    train_classifier,
)
from trainables.classifier import preflight as _classifier_preflight
from trainables.protocol import Trainable, Trial, TrialResult, start_runtime
from xaicore.attribution import ATTRIBUTION_METHODS, IG_BASELINES, IG_METHODS
from xaicore.state_io import load_state_file
from trainables import FAITH_CANCEL_OUTS, faith_method_name, faith_metric_name
from xaicore.cancel_out import CANCEL_OUT_REGISTRY
from xaicore.faithfulness import (
    deletion_until_flip,
    erasure_curves,
    nanmean,
    rank_agreement,
    rationale_agreement,
    shuffle_tvd,
    train_weak_learner,
    with_feature_maps,
)

FAITH_METRICS = ("deletion", "weak_learner", "shuffle_tvd", "eraser", "agreement", "rationale")
DEFAULT_METHODS = ("saliency", "integrated_gradients", "input_x_gradient", "attention")


@dataclass(frozen=True)
class FaithfulnessTrialConfig(ClassifierTrialConfig):
    """A :class:`ClassifierTrialConfig` plus the faithfulness evaluation settings.

    Attributes:
        methods: attribution methods (``xaicore.attribution.ATTRIBUTION_METHODS``).
        faith_metrics: subset of ``deletion, weak_learner, shuffle_tvd, eraser, agreement, rationale``.
        eval_examples: test examples evaluated: a random subset of the test split drawn with ``data_seed``
            (the same examples for every seed and method; all of them when the split is not larger), so a
            test file sorted by label is not evaluated on one class.
        ig_steps / ig_method / ig_baseline: IntegratedGradients settings.
        ig_internal_batch_size: interpolation rows per forward/backward pass
            (``None``: all ``batch x ig_steps`` rows at once; results do not depend on it).
        cancel_out: how the erasure metrics and leave-one-out remove a token, one of
            ``pad`` (replace by PAD, keep length), ``delete``, ``zero_vector``, ``attention_mask``.
        deletion_step: tokens removed per step.
        tvd_permutations: shuffles per example.
        weak_epochs / weak_lr / weak_train_examples: weak-learner training.
        model_checkpoint: a ``best_model.pt`` (``save_model: true`` of a classifier trial)
            to evaluate instead of training; it must come from the same data/vocab config.
    """

    methods: tuple = DEFAULT_METHODS
    faith_metrics: tuple = FAITH_METRICS
    eval_examples: int = 500
    ig_steps: int = 50
    ig_method: str = "gausslegendre"
    ig_baseline: str = "zeros"
    ig_internal_batch_size: Optional[int] = 256
    cancel_out: str = "pad"
    deletion_step: int = 1
    tvd_permutations: int = 100
    weak_epochs: int = 10
    weak_lr: float = 1e-3
    weak_train_examples: int = 2000
    model_checkpoint: Optional[str] = None

    def problems(self) -> list[str]:
        p = super().problems()
        unknown = [m for m in self.methods if m not in ATTRIBUTION_METHODS]
        if unknown:
            p.append(f"methods: unknown {unknown}; known: {', '.join(ATTRIBUTION_METHODS)}")
        if not self.methods:
            p.append("methods: at least one attribution method is needed")
        bad = [m for m in self.faith_metrics if m not in FAITH_METRICS]
        if bad:
            p.append(f"faith_metrics: unknown {bad}; known: {', '.join(FAITH_METRICS)}")
        if self.ig_method not in IG_METHODS:
            p.append(f"ig_method: must be one of {', '.join(IG_METHODS)}, got {self.ig_method!r}")
        if self.ig_baseline not in IG_BASELINES:
            p.append(f"ig_baseline: must be one of {', '.join(IG_BASELINES)}, got {self.ig_baseline!r}")
        if self.cancel_out in CANCEL_OUT_REGISTRY and CANCEL_OUT_REGISTRY[self.cancel_out].needs_mask_token:
            p.append(f"cancel_out: {self.cancel_out!r} needs a model with a mask token and a masked LM sharing its "
                     f"vocabulary; the attention-LSTM's word vocabulary has none: use one of {', '.join(FAITH_CANCEL_OUTS)}")
        elif self.cancel_out not in FAITH_CANCEL_OUTS:
            p.append(f"cancel_out: must be one of {', '.join(FAITH_CANCEL_OUTS)}, got {self.cancel_out!r}")
        if self.ig_internal_batch_size is not None and self.ig_internal_batch_size < 1:
            p.append(f"ig_internal_batch_size: must be >= 1 or null, got {self.ig_internal_batch_size}")
        for name in ("eval_examples", "ig_steps", "deletion_step", "tvd_permutations", "weak_epochs",
                     "weak_train_examples"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.model_checkpoint is not None and not Path(self.model_checkpoint).exists():
            p.append(f"model_checkpoint: no such file {self.model_checkpoint!r}")
        return p


def parse_config(config: Mapping[str, Any] | FaithfulnessTrialConfig) -> FaithfulnessTrialConfig:
    return TRAINABLE.parse_config(config)


def preflight(cfg: FaithfulnessTrialConfig) -> list[str]:
    """I/O checks before Ray starts: those of the classifier trainable (dry-load of every split,
    unlabeled pool, pretrained model), and ``model_checkpoint`` read as the trial reads it
    (tensors and plain types only: a file that would need the full unpickler is refused here)."""
    problems = list(_classifier_preflight(cfg))
    if cfg.model_checkpoint is not None and Path(cfg.model_checkpoint).is_file():
        try:
            _read_checkpoint(cfg.model_checkpoint)
        except ValueError as err:
            problems.append(str(err))
    return problems


def _attributor(cfg: FaithfulnessTrialConfig, method: str):
    """The attribution function of ``method`` with this config's options bound."""
    fn = ATTRIBUTION_METHODS[method]
    if fn.takes_cancel_out:
        return functools.partial(fn, cancel_out=cfg.cancel_out)
    if fn.path_integral:
        return functools.partial(fn, n_steps=cfg.ig_steps, method=cfg.ig_method, baseline=cfg.ig_baseline,
                                 internal_batch_size=cfg.ig_internal_batch_size)
    return fn


def _take(batches, n: int):
    out, seen = [], 0
    for b in batches:
        if seen >= n:
            break
        keep = min(b.size, n - seen)
        if keep < b.size:
            b = type(b)(**{f.name: (getattr(b, f.name)[:keep] if getattr(b, f.name) is not None else None)
                           for f in dataclasses.fields(b)})
        out.append(b)
        seen += keep
    return out


def eval_test_batches(setup, cfg: FaithfulnessTrialConfig) -> list:
    """The evaluated test examples: a seeded (``data_seed``) random subset of ``eval_examples`` of the test
    split in file order, batched as the setup's test batches; the whole split when it is not larger.
    Not the first N: local IMDB / 20News and hub IMDB test files are sorted by label."""
    from trainables.data_setup import subsample
    from xaicore.batching import batches as make_batches

    test = setup.splits.test
    if len(test) <= cfg.eval_examples:
        return list(setup.test_batches)
    return list(make_batches(subsample(test, cfg.eval_examples, cfg.data_seed), setup.encoder,
                             batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))


def evaluate_faithfulness(setup, cfg: FaithfulnessTrialConfig, out_dir: Optional[Path] = None):
    """Every method x every metric on ``eval_examples`` test examples (:func:`eval_test_batches`).

    Returns ``(metrics, table, artifacts)``: ``faith/<metric>/<method>`` floats, the
    methods x metrics table as ``{method: {metric: value}}`` and artifact paths.
    """
    from xaicore.batching import batches as make_batches

    model, device = setup.model.eval(), setup.device
    test = [b.to(device) for b in eval_test_batches(setup, cfg)]
    maps = {m: with_feature_maps(model, test, _attributor(cfg, m)) for m in cfg.methods}
    table: dict[str, dict[str, float]] = {faith_method_name(m, cfg.cancel_out): {} for m in cfg.methods}
    metrics: dict[str, float] = {}
    gen = torch.Generator().manual_seed(cfg.seed)

    def put(metric: str, method: str, value: float) -> None:
        metrics[faith_metric_name(metric, method, cfg.cancel_out)] = float(value)
        table.setdefault(faith_method_name(method, cfg.cancel_out), {})[metric] = float(value)

    for method, pairs in maps.items():
        if "deletion" in cfg.faith_metrics:
            put("deletion", method, nanmean([
                deletion_until_flip(model, b, s, cancel_out=cfg.cancel_out, step=cfg.deletion_step)
                for b, s in pairs]))
        if "eraser" in cfg.faith_metrics:
            curves = [erasure_curves(model, b, s, cancel_out=cfg.cancel_out) for b, s in pairs]
            put("comprehensiveness", method, nanmean([c["aopc_comprehensiveness"] for c in curves]))
            put("sufficiency", method, nanmean([c["aopc_sufficiency"] for c in curves]))
        if "rationale" in cfg.faith_metrics and all(b.rationale_mask is not None for b, _ in pairs):
            agg = [rationale_agreement(s, b.rationale_mask, b.content_mask) for b, s in pairs]
            put("rationale_auprc", method, nanmean([torch.tensor(a["auprc"]) for a in agg]))
            put("rationale_roc_auc", method, nanmean([torch.tensor(a["roc_auc"]) for a in agg]))

    if "agreement" in cfg.faith_metrics:
        order = list(ATTRIBUTION_METHODS)  # canonical pair names: a before b in the registry's order
        for a, b in itertools.combinations(sorted(set(cfg.methods), key=order.index), 2):
            ags = [rank_agreement(sa, sb, batch.content_mask) for (batch, sa), (_, sb) in zip(maps[a], maps[b])]
            na, nb = faith_method_name(a, cfg.cancel_out), faith_method_name(b, cfg.cancel_out)
            metrics[f"faith/kendall_tau/{na}__{nb}"] = nanmean([torch.tensor(x["kendall_tau"]) for x in ags])
            metrics[f"faith/pearson/{na}__{nb}"] = nanmean([torch.tensor(x["pearson"]) for x in ags])

    curves: dict[str, list[float]] = {}
    if {"weak_learner", "shuffle_tvd"} & set(cfg.faith_metrics):
        train_b = [b.to(device) for b in _take(
            make_batches(setup.splits.train, setup.encoder, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed),
            cfg.weak_train_examples)]
        valid_b = [b.to(device) for b in setup.valid_batches]
        common = dict(vocab_size=setup.encoder.vocab_size, num_classes=setup.num_classes, epochs=cfg.weak_epochs,
                      lr=cfg.weak_lr, seed=cfg.seed, device=device, pad_id=setup.encoder.pad_token_id)
        for method in list(cfg.methods) + ["uniform", "random"]:
            if method in cfg.methods:
                fn = _attributor(cfg, method)
                train_m, valid_m = with_feature_maps(model, train_b, fn), with_feature_maps(model, valid_b, fn)
                res = train_weak_learner(train_m, valid_m, maps[method], feature_map="given", **common)
                if "weak_learner" in cfg.faith_metrics:
                    signed = any(bool((s < 0).any()) for pairs in (train_m, valid_m, maps[method]) for _, s in pairs)
                    # |map| == map for a map without negative entries: the same learner, not trained twice
                    put("weak_f1_abs", method, train_weak_learner(train_m, valid_m, maps[method], feature_map="given",
                                                                  absolute=True, **common)["f1"]
                        if signed else res["f1"])
            else:
                res = train_weak_learner([(b, None) for b in train_b], [(b, None) for b in valid_b],
                                         [(b, None) for b in test], feature_map=method, **common)
            curves[method] = list(res["valid_loss_curve"])
            if "weak_learner" in cfg.faith_metrics:
                put("weak_f1", method, res["f1"])
            if "shuffle_tvd" in cfg.faith_metrics and method in cfg.methods:
                put("shuffle_tvd", method, nanmean([
                    shuffle_tvd(res["model"], b, s, n_permutations=cfg.tvd_permutations, generator=gen)
                    for b, s in maps[method]]))

    artifacts: list[Path] = []
    if out_dir is not None:
        artifacts += _write_tables(table, out_dir)
        artifacts.append(_write_heatmaps(setup, maps, out_dir))
        if curves:
            artifacts.append(_plot_curves(curves, out_dir / "weak_learner_valid_loss.png"))
    return metrics, table, artifacts


COLUMNS = ("deletion", "weak_f1", "weak_f1_abs", "shuffle_tvd", "comprehensiveness", "sufficiency", "rationale_auprc",
           "rationale_roc_auc")


def _write_tables(table: dict[str, dict[str, float]], out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    cols = [c for c in COLUMNS if any(c in row for row in table.values())]
    md = ["| method | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    csv = ["method," + ",".join(cols)]
    for method, row in table.items():
        vals = [f"{row[c]:.3f}" if c in row else "" for c in cols]
        md.append(f"| {method} | " + " | ".join(v or "-" for v in vals) + " |")
        csv.append(method + "," + ",".join(vals))
    (out_dir / "faithfulness_table.md").write_text("\n".join(md) + "\n")
    (out_dir / "faithfulness_table.csv").write_text("\n".join(csv) + "\n")
    return [out_dir / "faithfulness_table.md", out_dir / "faithfulness_table.csv"]


def _write_heatmaps(setup, maps, out_dir: Path, n: int = 4) -> Path:
    rows = []
    for method, pairs in maps.items():
        batch, scores = pairs[0]
        for i in range(min(n, batch.size)):
            length = int(batch.attention_mask[i].sum())
            tokens = [setup.vocab.itos[int(t)] for t in batch.input_ids[i, :length]]
            rows.append((tokens, scores[i, :length].tolist(), f"{method}: example {i}"))
    path = out_dir / "attribution_heatmaps.html"
    path.write_text(token_heatmap_html(rows, "feature maps per attribution method (test examples)"))
    return path


def _plot_curves(curves: dict[str, list[float]], path: Path) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.5))
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(111)
    for name, values in curves.items():
        ax.plot(range(1, len(values) + 1), values, marker="o", label=name)
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation loss")
    ax.set_title("weak learner")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def run(cfg: FaithfulnessTrialConfig, trial: Trial) -> TrialResult:
    """Train (or load) the classifier, then finish with classifier + ``faith/*`` metrics."""
    if cfg.model_checkpoint is not None:
        cfg_train = dataclasses.replace(cfg, epochs=1)
        trained = _load_trained(cfg_train, cfg.model_checkpoint)
    else:
        trained = train_classifier(cfg, trial.report, resume=trial.resume, interim_dir=trial.out_dir)
    metrics, _table, faith_artifacts = evaluate_faithfulness(trained.setup, cfg, trial.out_dir)
    final = {**trained.final, **metrics}
    checkpoint = trained.checkpoint()
    artifacts = list(faith_artifacts)
    if trial.out_dir is not None:
        artifacts += _write_artifacts(trained.setup, trained.history, trial.out_dir)
    return trial.finish(final, checkpoint, history=trained.history, artifacts=artifacts)


def _read_checkpoint(path: str) -> dict[str, Any]:
    """The ``best_model.pt`` dict (``state_dict``, ``config``, ``vocab``), read without unpickling code.

    Raises:
        ValueError: the file holds more than tensors and plain types, or is no such model.
    """
    state = load_state_file(path, what="model_checkpoint")
    if not isinstance(state, dict) or not {"state_dict", "vocab"} <= set(state):
        raise ValueError(f"model_checkpoint {path}: not a model saved by the classifier trainable "
                         "(`save_model: true` writes model/best_model.pt with state_dict, config and vocab)")
    return state


def _load_trained(cfg: FaithfulnessTrialConfig, path: str):
    """A :class:`TrainedClassifier` whose weights come from ``path`` (no training)."""
    from trainables.classifier import ClassifierSetup, TrainedClassifier

    start_runtime(cfg)
    setup = ClassifierSetup(cfg)
    state = _read_checkpoint(path)
    if state.get("vocab") != setup.vocab.to_dict():
        raise ValueError(f"model_checkpoint {path}: its vocabulary differs from this config's data; "
                         "use the data settings of the trial that saved it")
    setup.model.load_state_dict(state["state_dict"])
    final = {f"test/{k}": v for k, v in setup.evaluate(setup.model, "test").items()}
    return TrainedClassifier(setup=setup, history=[], final=final, checkpoint=lambda: None)


TRAINABLE = Trainable(name="faithfulness", config=FaithfulnessTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
