"""Nearest-neighbour tables of a word-embedding matrix (similar-word-noise.txt, sec. 3.1).

For every vocabulary entry ``v`` the table holds the ``k`` entries with the
highest cosine similarity of their word (token) embeddings to ``v``'s, in
descending order of similarity; ``v`` itself is never its own neighbour.
Special tokens and unused slots (``[unused17]``, ``<unusedN>``, ...) can be
excluded: they are never returned as neighbours and their own rows are not
computed.

Convention for excluded rows: ``ids[v] = v`` in every column and
``sims[v] = 0``, so that any noise built from the table
(``E[ids[v]] - E[v]``) is exactly zero for them.

Memory: similarities are computed ``chunk_size`` rows at a time on the
weight's device; the largest temporary is ``(chunk_size, V)`` floats, never a
``V x V`` matrix. Ties in similarity are broken as ``torch.topk`` breaks them.

The disk cache (:func:`cached_neighbours`) is a pure function of a directory:
the file name carries the model id, a hash of the vocabulary (token strings in
id order), ``k`` and a hash of the exclusion mask.
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import Tensor

__all__ = [
    "NeighbourTable",
    "nearest_neighbours",
    "excluded_tokens",
    "vocabulary_hash",
    "cached_neighbours",
    "readable_sample",
]

#: vocabulary entries that are placeholders, not words (BERT ``[unused0]``, T5/others ``<unused0>``)
UNUSED_RE = re.compile(r"^[\[<]unused\d+[\]>]$")


@dataclass(frozen=True)
class NeighbourTable:
    """Top-``k`` cosine neighbours of each vocabulary entry.

    Attributes:
        ids: ``(V, k)`` long neighbour ids, most similar first.
        sims: ``(V, k)`` float cosine similarities matching ``ids``.
    """

    ids: Tensor
    sims: Tensor

    def __post_init__(self) -> None:
        if self.ids.dim() != 2 or self.ids.shape != self.sims.shape:
            raise ValueError(f"ids and sims must both be (V, k), got {tuple(self.ids.shape)} and {tuple(self.sims.shape)}")
        if self.ids.dtype != torch.long:
            raise ValueError(f"ids must be int64, got {self.ids.dtype}")

    @property
    def vocab_size(self) -> int:
        return int(self.ids.shape[0])

    @property
    def k(self) -> int:
        return int(self.ids.shape[1])

    def to(self, device: torch.device | str) -> "NeighbourTable":
        return NeighbourTable(ids=self.ids.to(device), sims=self.sims.to(device))


def nearest_neighbours(
    weight: Tensor, k: int, *, exclude: Optional[Tensor] = None, chunk_size: int = 1024
) -> NeighbourTable:
    """Top-``k`` cosine neighbours of every row of ``weight``.

    Args:
        weight: ``(V, E)`` embedding matrix (any float dtype; computed in
            float32 or the weight's dtype if wider) on any device.
        k: neighbours per entry, ``1 <= k < V - #excluded``.
        exclude: ``(V,)`` bool, entries never returned as neighbours; their own
            rows are skipped (see the module docstring for their contents).
        chunk_size: rows per similarity block (memory ``chunk_size * V`` floats).

    Returns:
        :class:`NeighbourTable` on ``weight``'s device. A zero row has cosine 0
        to everything.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be (V, E), got shape {tuple(weight.shape)}")
    V = int(weight.shape[0])
    device = weight.device
    if exclude is None:
        exclude = torch.zeros(V, dtype=torch.bool, device=device)
    exclude = exclude.to(device=device, dtype=torch.bool)
    if exclude.shape != (V,):
        raise ValueError(f"exclude must be ({V},) bool, got shape {tuple(exclude.shape)}")
    candidates = V - int(exclude.sum())
    if not 1 <= k < candidates:
        raise ValueError(f"k must be in [1, {candidates - 1}] ({candidates} candidate entries), got {k}")
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    with torch.no_grad():
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        unit = weight.detach().to(dtype)
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (V, E)
        ids = torch.arange(V, device=device).unsqueeze(1).repeat(1, k)  # (V, k): excluded rows map to themselves
        sims = torch.zeros(V, k, dtype=dtype, device=device)
        rows = torch.nonzero(~exclude).squeeze(1)  # (R,)
        col_penalty = torch.zeros(V, dtype=dtype, device=device).masked_fill(exclude, float("-inf"))  # (V,)
        for start in range(0, rows.numel(), chunk_size):
            r = rows[start : start + chunk_size]  # (C,)
            block = unit[r] @ unit.T  # (C, V)
            block += col_penalty
            block[torch.arange(r.numel(), device=device), r] = float("-inf")  # never itself
            top = block.topk(k, dim=1)
            ids[r] = top.indices
            # the kept similarities are recomputed row by row (elementwise product summed over E):
            # the value then does not depend on how the matmul was blocked (chunked == unchunked, bitwise)
            sims[r] = (unit[r].unsqueeze(1) * unit[top.indices]).sum(-1)  # (C, k)
            del block, top
    return NeighbourTable(ids=ids, sims=sims.float() if dtype != torch.float64 else sims)


def excluded_tokens(tokens: Sequence[str], special_ids: Sequence[int] = ()) -> Tensor:
    """``(V,)`` bool mask of entries to exclude: ``special_ids`` and unused slots.

    Args:
        tokens: vocabulary entries in id order (e.g. ``tokenizer.convert_ids_to_tokens(range(V))``).
        special_ids: ids of special tokens (``tokenizer.all_special_ids``).
    """
    mask = torch.tensor([bool(UNUSED_RE.match(t or "")) for t in tokens], dtype=torch.bool)
    for i in special_ids:
        if 0 <= int(i) < len(tokens):
            mask[int(i)] = True
    return mask


def vocabulary_hash(tokens: Sequence[str]) -> str:
    """SHA-256 (hex) of the vocabulary: token strings in id order, NUL-separated."""
    h = hashlib.sha256()
    for t in tokens:
        h.update((t or "").encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


def _slug(model_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", model_id.strip("/")).strip("_")[-80:] or "model"


def cached_neighbours(
    directory: str | Path,
    *,
    model_id: str,
    tokens: Sequence[str],
    weight: Tensor,
    k: int,
    exclude: Optional[Tensor] = None,
    chunk_size: int = 1024,
) -> tuple[NeighbourTable, Path, bool]:
    """Load the table for (model, vocabulary, k, exclusion) from ``directory`` or compute and store it.

    Args:
        directory: cache directory (created if missing).
        model_id: hub id or local path of the model (part of the key).
        tokens: the vocabulary in id order (hashed into the key).
        weight, k, exclude, chunk_size: see :func:`nearest_neighbours`.

    Returns:
        ``(table, path, hit)`` with the table on ``weight``'s device and
        ``hit`` True when it was read from disk.
    """
    if len(tokens) != weight.shape[0]:
        raise ValueError(f"{len(tokens)} tokens but weight has {weight.shape[0]} rows")
    ex = exclude if exclude is not None else torch.zeros(len(tokens), dtype=torch.bool)
    ex_hash = hashlib.sha256(ex.to(torch.uint8).cpu().numpy().tobytes()).hexdigest()[:12]
    vhash = vocabulary_hash(tokens)
    path = Path(directory) / f"{_slug(model_id)}-{vhash[:16]}-k{k}-x{ex_hash}.pt"
    if path.is_file():
        state = torch.load(path, map_location=weight.device, weights_only=True)
        if state.get("vocab_hash") == vhash and int(state["ids"].shape[1]) == k:
            return NeighbourTable(ids=state["ids"], sims=state["sims"]), path, True
    table = nearest_neighbours(weight, k, exclude=exclude, chunk_size=chunk_size)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save({"ids": table.ids.cpu(), "sims": table.sims.cpu(), "vocab_hash": vhash, "model_id": model_id}, tmp)
    tmp.replace(path)  # atomic: concurrent trials never read a half-written file
    return table, path, False


def readable_sample(table: NeighbourTable, tokens: Sequence[str], words: Sequence[str], *, n: int = 5) -> list[str]:
    """Lines ``"good -> great, nice, ..."`` for those ``words`` that are vocabulary entries."""
    index = {t: i for i, t in enumerate(tokens)}
    lines = []
    for w in words:
        if w in index:
            i = index[w]
            shown = ", ".join(f"{tokens[int(j)]} ({float(s):.2f})" for j, s in zip(table.ids[i, :n], table.sims[i, :n]))
            lines.append(f"{w} -> {shown}")
    return lines
