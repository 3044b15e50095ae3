"""Every attribution method x every faithfulness metric on a trained classifier (:func:`evaluate_faithfulness`)."""
from __future__ import annotations

import dataclasses
import functools
import itertools
from pathlib import Path
from typing import Callable, Optional, Sequence, Union

import torch

from trainables.classifier.setup import EVAL_BATCH_SIZE
from trainables.faithfulness.artifacts import plot_curves, write_heatmaps, write_tables
from trainables.faithfulness.config import FaithfulnessSettings
from trainables.protocol import runtime_compilation
from trainables.faithfulness.metrics import (
    AGREEMENT,
    BASELINES,
    IG_PASSES_PER_BATCH,
    RECOMPILES,
    agreement_metric_name,
    faith_method_name,
    faith_metric_name,
)
from xaicore.cancel_out.methods import CancelOut
from xaicore.faithfulness.attribution import ATTRIBUTION_METHODS
from xaicore.faithfulness.agreement import rank_agreement, rationale_agreement
from xaicore.faithfulness.deletion import deletion_until_flip
from xaicore.faithfulness.eraser import erasure_curves
from xaicore.faithfulness.removal import nanmean
from xaicore.faithfulness.shuffle import shuffle_tvd
from xaicore.faithfulness.weak_learner import train_weak_learner, with_feature_maps


def _attributor(cfg: FaithfulnessSettings, method: str, passes: Optional[list[int]] = None,
                cancel_out: Union[str, CancelOut, None] = None):
    """The attribution function of ``method`` with this config's options bound; a path integral appends
    the forward/backward passes of every call to ``passes`` when given; ``cancel_out``: the config's
    ``cancel_out`` as an instance (a masked LM bound), default the name."""
    fn = ATTRIBUTION_METHODS[method]
    if fn.takes_cancel_out:
        return functools.partial(fn, cancel_out=cfg.cancel_out if cancel_out is None else cancel_out)
    if fn.path_integral:
        bound = functools.partial(fn, n_steps=cfg.ig_steps, method=cfg.ig_method, baseline=cfg.ig_baseline,
                                  internal_batch_size=cfg.ig_internal_batch_size,
                                  memory_budget_bytes=int(cfg.ig_memory_budget_mb * 2 ** 20))
        if passes is None:
            return bound

        def counted(model, batch, **opts):
            stats: dict = {}
            scores = bound(model, batch, stats=stats, **opts)
            passes.append(stats["passes"])
            return scores

        return counted
    return fn


def take_batches(batches, n: int):
    """The first ``n`` examples of ``batches`` (the last batch cut short)."""
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


def eval_test_batches(setup, cfg, test=None) -> list:
    """The evaluated test examples: a seeded (``data_seed``) random subset of ``eval_examples`` of the test
    split in file order, batched as the setup's test batches; the whole split when it is not larger.
    Not the first N: local IMDB / 20News and hub IMDB test files are sorted by label. ``test``: the test
    :class:`~xaicore.data.loading.TextDataset` (default ``setup.splits.test``, the classifier setup's)."""
    from trainables.data_setup import subsample
    from xaicore.data.batching import batches as make_batches
    from xaicore.data.batching import encode_dataset

    test = setup.splits.test if test is None else test
    if len(test) > cfg.eval_examples:
        test = subsample(test, cfg.eval_examples, cfg.data_seed)
    # file order, not the length-sorted test batches: the metrics are means of per-batch values (tokenised
    # here once, at the end of the trial); a compiled model's batches padded to a multiple of 8
    pad = runtime_compilation(cfg).pad_multiple
    return list(make_batches(test if pad is None else encode_dataset(test, setup.encoder), setup.encoder,
                             batch_size=EVAL_BATCH_SIZE, shuffle=False, seed=0, pad_multiple=pad))


def evaluate_faithfulness(setup, cfg, out_dir: Optional[Path] = None, *, test=None,
                          cancel_out: Optional[CancelOut] = None,
                          id_tokens: Optional[Callable[[Sequence[int]], list[str]]] = None):
    """Every method x every metric on ``eval_examples`` test examples (:func:`eval_test_batches`).

    ``setup``: a trained setup (``model``, ``device``, ``trainer``, ``encoder``, ``encoded["train"]``,
    ``valid_batches``, ``num_classes``; the classifier's or the transformer's); ``cfg``: its config with the
    :class:`~trainables.faithfulness.config.FaithfulnessSettings` keys. ``test``: the test dataset (default
    ``setup.splits.test``); ``cancel_out``: ``cfg.cancel_out`` as an instance (a transformer's masked LM,
    candidates ``k``; default the name); ``id_tokens(ids) -> tokens`` for the heatmaps (default
    ``setup.vocab.itos``). Only content tokens (``Batch.content_mask``: no special token, no padding) are
    removed or scored.

    Returns ``(metrics, table, artifacts)``: ``faith/<metric>/<method>`` floats (and
    ``faith/ig_passes_per_batch``, IG's mean passes per test batch, when IG is evaluated), the
    methods x metrics table as ``{method: {metric: value}}`` and artifact paths.
    """
    from xaicore.data.batching import batches as make_batches

    model, device = setup.model.eval(), setup.device
    compiled = setup.trainer.compiled  # the CompileCounter of a compiled model, else None
    graphs_before = compiled.graphs if compiled is not None else 0
    test = [b.to(device) for b in eval_test_batches(setup, cfg, test)]
    cancel = cfg.cancel_out if cancel_out is None else cancel_out
    passes: list[int] = []
    maps = {m: with_feature_maps(model, test, _attributor(cfg, m, passes, cancel)) for m in cfg.methods}
    table: dict[str, dict[str, float]] = {faith_method_name(m, cfg.cancel_out): {} for m in cfg.methods}
    metrics: dict[str, float] = {}
    if passes:
        metrics[IG_PASSES_PER_BATCH] = sum(passes) / len(passes)
    gen = torch.Generator().manual_seed(cfg.seed)

    def put(metric: str, method: str, value: float) -> None:
        metrics[faith_metric_name(metric, method, cfg.cancel_out)] = float(value)
        table.setdefault(faith_method_name(method, cfg.cancel_out), {})[metric] = float(value)

    for method, pairs in maps.items():
        if "deletion" in cfg.faith_metrics:
            put("deletion", method, nanmean([
                deletion_until_flip(model, b, s, cancel_out=cancel, step=cfg.deletion_step)
                for b, s in pairs]))
        if "eraser" in cfg.faith_metrics:
            curves = [erasure_curves(model, b, s, cancel_out=cancel) for b, s in pairs]
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
            for stat in AGREEMENT:
                metrics[agreement_metric_name(stat, na, nb)] = nanmean([torch.tensor(x[stat]) for x in ags])

    curves: dict[str, list[float]] = {}
    if {"weak_learner", "shuffle_tvd"} & set(cfg.faith_metrics):
        train_b = [b.to(device) for b in take_batches(
            make_batches(setup.encoded["train"], setup.encoder, batch_size=cfg.batch_size, shuffle=True, seed=cfg.seed,
                         pad_multiple=runtime_compilation(cfg).pad_multiple),
            cfg.weak_train_examples)]
        valid_b = [b.to(device) for b in setup.valid_batches]
        common = dict(vocab_size=setup.encoder.vocab_size, num_classes=setup.num_classes, epochs=cfg.weak_epochs,
                      lr=cfg.weak_lr, seed=cfg.seed, device=device, pad_id=setup.encoder.pad_token_id)
        for method in list(cfg.methods) + list(BASELINES):
            if method in cfg.methods:
                fn = _attributor(cfg, method, cancel_out=cancel)
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

    if compiled is not None:
        metrics[RECOMPILES] = float(compiled.graphs - graphs_before)
    artifacts: list[Path] = []
    if out_dir is not None:
        artifacts += write_tables(table, out_dir)
        if id_tokens is None:
            def id_tokens(ids):
                return [setup.vocab.itos[int(t)] for t in ids]
        artifacts.append(write_heatmaps(id_tokens, maps, out_dir))
        if curves:
            artifacts.append(plot_curves(curves, out_dir / "weak_learner_valid_loss.png"))
    return metrics, table, artifacts
