"""Restorability trial (cancel-out.txt section 3, Figs. 3-6): can a masked LM restore a cancelled token?

The trial (:data:`TRAINABLE`, :mod:`trainables.protocol`; ``run_trial(config, report)`` in plain
Python) samples ``n_tokens`` (sentence, token) pairs
uniformly from the content sub-word tokens of a dataset split (seeded; special
tokens and [UNK] are never sampled), cancels each token with every method in
``methods`` (:mod:`xaicore.cancel_out.methods`; ``original`` = unchanged input, the
baseline row) and reads the masked LM at that position (:mod:`xaicore.cancel_out.restorability`).

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
from pathlib import Path
from typing import Any, Callable, Optional

import torch

from trainables.data_setup import dropped_metrics, log_dropped
from trainables.protocol import (
    ModelEvaluation, Trainable, Trial, TrialResult, runtime_compilation, runtime_precision, start_runtime,
)
from trainables.restorability.artifacts import write_outputs
from trainables.restorability.config import RestorabilityTrialConfig, data_problems, preflight
from trainables.restorability.metrics import N_SENTENCES, N_TOKENS, QUANTITIES, RECOMPILES, seconds_metric, stat_metric
from trainables.restorability.setup import pair_batches, sample_pairs
from xaicore.cancel_out.restorability import restorability, summarize


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
    from xaicore.data.loading import load_dataset
    from xaicore.models.masked_lm import load_masked_lm

    device = start_runtime(cfg)
    mlm, tok = load_masked_lm(cfg.mlm, local_files_only=cfg.local_files_only)
    mlm = mlm.to(device)
    compilation = runtime_compilation(cfg)  # compile: true pads to a multiple of 8 (pad_multiple)
    compiled = compilation.apply(mlm)  # the encoder layers; the last layer's query-only shortcut stays eager
    from xaicore.data.loading import KNOWN_DATASETS

    columns = None if cfg.dataset in KNOWN_DATASETS else {"text": cfg.text_column}
    local = cfg.dataset not in KNOWN_DATASETS
    data = load_dataset(cfg.dataset, split=cfg.split, columns=columns, drop_empty=cfg.drop_empty and local)
    dropped = {cfg.split: data.dropped_empty} if cfg.drop_empty and local else {}
    if dropped:
        log_dropped(dropped, cfg.dataset)
    ids, pairs = sample_pairs(data.texts, tok, cfg.n_tokens, cfg.max_length, cfg.seed)
    specials = set(tok.all_special_ids)
    batches = pair_batches(ids, pairs, cfg.batch_size, tok.pad_token_id, specials, compilation.pad_multiple)
    values: dict[str, dict[str, list]] = {m: {q: [] for q in QUANTITIES} for m in cfg.methods}
    seconds: dict[str, float] = {m: 0.0 for m in cfg.methods}  # per method; shared passes: see restorability()
    precision = runtime_precision(cfg, device)
    order = list(range(len(batches)))
    random.Random(cfg.seed).shuffle(order)
    for done, bi in enumerate(order, 1):
        batch, pos = batches[bi]
        with precision.autocast():  # softmax and the probabilities run in fp32 under autocast
            res = restorability(mlm, batch.to(device), pos.to(device), cfg.methods, k=cfg.k,
                                mask_token_id=tok.mask_token_id, exclude_ids=tuple(sorted(specials)), seconds=seconds)
        for m in cfg.methods:
            for q in QUANTITIES:
                values[m][q].append(res[m][q])
        if progress is not None:
            progress(done, len(batches), values, seconds)
    arrays = {m: {q: torch.cat(v).numpy() for q, v in d.items()} for m, d in values.items()}
    metrics: dict[str, Any] = {"epoch": 1, N_TOKENS: len(pairs),
                               N_SENTENCES: len({i for i, _ in pairs}),
                               **dropped_metrics(dropped)}
    for m, d in arrays.items():
        for q, v in d.items():
            for s, x in summarize(v).items():
                if s != "n":
                    metrics[stat_metric(q, s, m)] = x
        metrics[seconds_metric(m)] = seconds[m]
    if compiled is not None:
        metrics[RECOMPILES] = compiled.graphs
    artifacts: list[Path] = []
    if trial.out_dir is not None:
        trial.out_dir.mkdir(parents=True, exist_ok=True)
        artifacts += write_outputs(arrays, metrics, cfg, trial.out_dir)
    return trial.finish(metrics, None, history=[metrics], artifacts=artifacts)


#: ``xaisweep evaluate`` with this trainable: the masked LM an ``mlm`` trial saved (``<run>/mlm``, a HF directory)
#: restores the tokens of the evaluation's own data (no key comes from the mlm trial's config)
EVALUATION = ModelEvaluation(
    model_trainables=("mlm",), model_artifact="mlm", model_key="mlm",
    knobs=frozenset(f.name for f in dataclasses.fields(RestorabilityTrialConfig)) - {"mlm", "local_files_only"},
    fixed={"local_files_only": True}, io_checks=data_problems)
TRAINABLE = Trainable(name="restorability", config=RestorabilityTrialConfig, run=run, preflight=preflight,
                      evaluation=EVALUATION)
#: ``run_trial(config, report, *, resume=None, out_dir=None, progress=None) -> TrialResult``: one trial in
#: plain Python (``progress``: see :func:`run`)
run_trial = TRAINABLE.run_trial