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
``V x V`` matrix. Ties in similarity are broken as ``torch.topk`` breaks them
(exactly equal similarities may come in another order when the bf16 screen of
:func:`nearest_neighbours` picks the candidates).

The disk cache (:func:`cached_neighbours`) is a pure function of a directory:
the file name carries the model id, a hash of the vocabulary (token strings in
id order), ``k`` and a hash of the exclusion mask.
"""
from __future__ import annotations

import contextlib
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
    "bf16_screen_available",
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


#: a bf16 similarity (operands and result rounded to bf16, fp32 accumulation) is within this of the fp32 one
#: for unit rows: each operand's rounding moves a product by at most 2^-8 of |a_i b_i| and the result's by
#: 2^-8 of |s| <= 1, and sum_i |a_i b_i| <= ||a|| ||b|| = 1 (Cauchy-Schwarz); 1e-4 covers the fp32
#: accumulation (384 terms: ~2e-5), the normalisation and the reference's own rounding
BF16_SIMILARITY_ERROR = 3 * 2.0 ** -8 + 1e-4
#: rows per exact similarity block of the screened path's candidates (a block multiplies the union of its
#: rows' candidates once); smaller blocks are padded to it: MKL (2024.2, AVX-512) computes blocks of 1-3,
#: 5-7 and 9-11 rows with kernels whose sums differ in the last bits from the large blocks' (measured)
EXACT_ROWS = 64


def _topk_exact(unit: Tensor, rows: Tensor, k: int, col_penalty: Tensor, cols: Optional[Tensor] = None):
    """Top-``k`` columns of ``unit[rows] @ unit.T`` in fp32 with ``col_penalty`` added and each row's own
    column at ``-inf``. With ``cols`` ``(R, m)`` (per-row candidates, ``-1`` = none), only those: the union of
    the candidates is multiplied once and the others count as ``-inf``. Returns ids ``(R, k)``."""
    if cols is None:
        block = unit[rows] @ unit.T  # (R, V)
        block += col_penalty
        block[torch.arange(rows.numel(), device=rows.device), rows] = float("-inf")
        return block.topk(k, dim=1).indices
    union, where = torch.unique(cols, return_inverse=True)  # sorted union (-1 first when present)
    values = (unit[rows] @ unit[union.clamp_min(0)].T).gather(1, where)  # (R, m) of the (R, |union|) block
    safe = cols.clamp_min(0)
    values = values + col_penalty[safe]
    values = values.masked_fill((cols < 0) | (cols == rows.unsqueeze(1)), float("-inf"))
    return safe.gather(1, values.topk(k, dim=1).indices)


def nearest_neighbours(
    weight: Tensor, k: int, *, exclude: Optional[Tensor] = None, chunk_size: int = 1024, screen: int = 64
) -> NeighbourTable:
    """Top-``k`` cosine neighbours of every row of ``weight``.

    The ranking is the one of the fp32 similarity matrix ``unit @ unit.T`` (MKL sgemm on the CPU, any
    block of 12 or more rows gives the same bits): blocks of ``chunk_size`` rows, each row's top-``k`` by
    ``torch.topk``. On a CPU with native bf16 matmuls (:func:`bf16_screen_available`) in fp32, with
    ``screen`` > ``k``, the similarities are first computed in
    bf16 (4-5x the fp32 matmul's speed where the CPU has bf16 dot products) and only each row's ``screen``
    best candidates are recomputed in fp32: when the bf16 ``k``-th and ``screen``-th values of a row are
    more than ``2 * BF16_SIMILARITY_ERROR`` apart, no column outside the candidates can be among the fp32
    top-``k`` (each bf16 value is within that bound of the fp32 one), so the candidates' fp32 values give
    the same ids; the other rows (about 3% on the MiniLM vocabulary) are computed in full in fp32. The
    table is therefore the same as the plain fp32 one (tests/test_neighbours.py; the benchmark asserts it
    on the 30,522-entry vocabulary).

    Args:
        weight: ``(V, E)`` embedding matrix (any float dtype; computed in
            float32 or the weight's dtype if wider) on any device.
        k: neighbours per entry, ``1 <= k < V - #excluded``.
        exclude: ``(V,)`` bool, entries never returned as neighbours; their own
            rows are skipped (see the module docstring for their contents).
        chunk_size: rows per similarity block (memory ``chunk_size * V`` floats).
        screen: candidates per row of the bf16 screen (CPU, fp32 only); ``0`` or ``<= k``: the fp32
            matrix in full.

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
    if screen < 0:
        raise ValueError(f"screen must be >= 0, got {screen}")

    with torch.no_grad():
        dtype = torch.float64 if weight.dtype == torch.float64 else torch.float32
        unit = weight.detach().to(dtype)
        unit = unit / unit.norm(dim=1, keepdim=True).clamp_min(1e-12)  # (V, E)
        ids = torch.arange(V, device=device).unsqueeze(1).repeat(1, k)  # (V, k): excluded rows map to themselves
        sims = torch.zeros(V, k, dtype=dtype, device=device)
        rows = torch.nonzero(~exclude).squeeze(1)  # (R,)
        col_penalty = torch.zeros(V, dtype=dtype, device=device).masked_fill(exclude, float("-inf"))  # (V,)
        screened = (dtype == torch.float32 and device.type == "cpu" and k < screen < candidates - 1
                    and bf16_screen_available())
        if screened:
            _screened_ids(unit, rows, k, screen, chunk_size, col_penalty, ids)
        else:
            for start in range(0, rows.numel(), chunk_size):
                r = rows[start : start + chunk_size]  # (C,)
                ids[r] = _topk_exact(unit, r, k, col_penalty)
        # the kept similarities are recomputed row by row (elementwise product summed over E): the value
        # then does not depend on how the matmul was blocked (chunked == unchunked, bitwise)
        for start in range(0, rows.numel(), chunk_size):
            r = rows[start : start + chunk_size]
            sims[r] = (unit[r].unsqueeze(1) * unit[ids[r]]).sum(-1)  # (C, k)
    return NeighbourTable(ids=ids, sims=sims.float() if dtype != torch.float64 else sims)


def bf16_screen_available() -> bool:
    """Whether this CPU runs oneDNN's bf16 matmul natively (AVX-512 / bf16 dot products; else the fp32 path)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


@contextlib.contextmanager
def _one_thread():
    """torch's intra-op threads set to 1 inside the block (restored after)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _screened_ids(unit: Tensor, rows: Tensor, k: int, screen: int, chunk_size: int, col_penalty: Tensor,
                  ids: Tensor) -> None:
    """The bf16 screen of :func:`nearest_neighbours`: fills ``ids[rows]``.

    Per row, of the ``screen`` best bf16 columns only those within ``2 * BF16_SIMILARITY_ERROR`` of the
    ``k``-th are candidates (the others cannot reach the fp32 top-``k``); rows whose ``screen``-th value is
    still that close may have candidates beyond the screen and are computed in full."""
    device = unit.device
    low = unit.to(torch.bfloat16)  # (V, E)
    low_penalty = col_penalty.to(torch.bfloat16)
    margin = 2 * BF16_SIMILARITY_ERROR
    full: list[Tensor] = []  # rows whose screen is not conclusive
    for start in range(0, rows.numel(), chunk_size):
        r = rows[start : start + chunk_size]  # (C,)
        approx = low[r] @ low.T  # (C, V) bf16
        approx += low_penalty
        approx[torch.arange(r.numel(), device=device), r] = float("-inf")
        top = approx.topk(screen, dim=1)
        del approx
        vals = top.values.float()  # (C, screen), descending
        kth = vals[:, k - 1 : k]
        ok = (kth[:, 0] - vals[:, -1]) > margin  # (C,): every possible neighbour is among the screen
        cand = top.indices.masked_fill(vals < kth - margin, -1)  # (C, screen), -1: provably not a neighbour
        r_ok, cand_ok = r[ok], cand[ok]
        width = int((cand_ok >= 0).sum(1).max()) if r_ok.numel() else 0
        cand_ok = cand_ok[:, :width]  # candidates come first (descending values)
        # many small blocks: one thread (the sgemm bits do not depend on it); with two threads on a
        # loaded machine each small parallel region waits for a descheduled thread (7x slower, measured)
        with _one_thread():
            for s in range(0, r_ok.numel(), EXACT_ROWS):
                rr, cc = r_ok[s : s + EXACT_ROWS], cand_ok[s : s + EXACT_ROWS]
                n = rr.numel()
                if n < EXACT_ROWS:  # padded with copies of a row: the same sgemm kernel (and bits) as full blocks
                    pad = EXACT_ROWS - n
                    rr, cc = torch.cat([rr, rr[:1].expand(pad)]), torch.cat([cc, cc[:1].expand(pad, -1)])
                ids[rr[:n]] = _topk_exact(unit, rr, k, col_penalty, cc)[:n]
        full.append(r[~ok])
    rest = torch.cat(full)
    for s in range(0, rest.numel(), chunk_size):
        rr = rest[s : s + chunk_size]
        n = rr.numel()
        if n < EXACT_ROWS:
            rr = torch.cat([rr, rr[:1].expand(EXACT_ROWS - n)])
        ids[rr[:n]] = _topk_exact(unit, rr, k, col_penalty)[:n]


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
