"""The Pareto set (non-dominated points) and the hypervolume of a multi-objective sweep: pure Python.

Conventions:

* a point is a sequence of objective values, one per objective, with ``modes[j]`` (``"max"`` or
  ``"min"``) saying which way objective ``j`` is better. Internally every objective is turned into one
  to minimise (a ``max`` objective is negated), so mixed modes need no special case;
* ``a`` *dominates* ``b`` when ``a`` is at least as good in every objective and strictly better in one.
  Equal points (duplicates) do not dominate each other: all copies stay in the Pareto set; a point that
  ties another in one objective and is worse in another is dominated;
* the *hypervolume* of a set is the volume of the region its points dominate, bounded by a reference
  point: the union over the points of the boxes between the point and the reference. By default the
  reference is the worst value seen per objective over the points given (the nadir of the table), so a
  point at the worst value of some objective spans no volume; pass ``reference`` (in the objectives'
  own units and directions) to fix it, e.g. to compare sweeps or to follow a sweep trial after trial
  (:func:`hypervolume_history` fixes it over the whole history). Points that do not strictly dominate
  the reference in every objective add nothing. Values are the objectives' own units (no rescaling):
  the hypervolume of a ``[0, 1]`` F1 and a ``[-1, 1]`` correlation is in F1 x correlation units.

The hypervolume is exact for any number of objectives (slicing along the last objective, the 2-d case
by a sweep: O(n log n) for 2, O(n^2 log n) for 3 objectives), meant for the tens to hundreds of points
of a sweep.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Optional

__all__ = ["dominates", "hypervolume", "hypervolume_history", "nadir", "non_dominated", "pareto_mask", "seed_points"]


def seed_points(values: Sequence[Sequence[float]], seeds: Sequence[Optional[str]]) -> list[tuple[float, ...]]:
    """The points of one configuration, one per seed: the mean of the rows of each seed, in the order the
    seeds first appear. A searcher that draws a configuration twice (vanilla, with no active parameter,
    is drawn again and again by TPE) runs each of its ``repeats`` seeds twice: without this the
    configuration's mean weights those seeds twice and its sd and n count copies. A row whose seed is
    ``None`` (unknown) counts as a seed of its own.

    Args:
        values: one row of objective values per run.
        seeds: each run's seed (as logged), same order.
    """
    if len(values) != len(seeds):
        raise ValueError(f"{len(values)} rows of values for {len(seeds)} seeds")
    groups: dict[object, list[Sequence[float]]] = {}
    for i, (row, seed) in enumerate(zip(values, seeds)):
        groups.setdefault(("seed", seed) if seed is not None else ("run", i), []).append(row)
    return [tuple(math.fsum(c) / len(c) for c in zip(*rows)) for rows in groups.values()]


def _check(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[tuple[float, ...]]:
    """``points`` as tuples to minimise (``max`` objectives negated); ``ValueError`` on bad input."""
    if not modes:
        raise ValueError("at least one objective (mode) is needed")
    bad = [m for m in modes if m not in ("min", "max")]
    if bad:
        raise ValueError(f"modes must be 'min' or 'max' (got {bad})")
    out = []
    for i, p in enumerate(points):
        if len(p) != len(modes):
            raise ValueError(f"point {i} has {len(p)} values for {len(modes)} objectives")
        if any(not math.isfinite(float(v)) for v in p):
            raise ValueError(f"point {i} has a value that is not finite: {list(p)}")
        out.append(tuple(-float(v) if m == "max" else float(v) for v, m in zip(p, modes)))
    return out


def _dominates_min(a: Sequence[float], b: Sequence[float]) -> bool:
    return all(x <= y for x, y in zip(a, b)) and any(x < y for x, y in zip(a, b))


def dominates(a: Sequence[float], b: Sequence[float], modes: Sequence[str]) -> bool:
    """Whether point ``a`` dominates ``b`` (at least as good everywhere, strictly better somewhere)."""
    na, nb = _check([a, b], modes)
    return _dominates_min(na, nb)


def pareto_mask(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[bool]:
    """``mask[i]``: whether point ``i`` is non-dominated (in the Pareto set)."""
    pts = _check(points, modes)
    order = sorted(range(len(pts)), key=lambda i: pts[i])  # lexicographic: a dominator sorts first
    front: list[int] = []
    mask = [False] * len(pts)
    for i in order:
        if not any(_dominates_min(pts[j], pts[i]) for j in front):
            front.append(i)
            mask[i] = True
    return mask


def non_dominated(points: Sequence[Sequence[float]], modes: Sequence[str]) -> list[int]:
    """Indices of the non-dominated points, in input order (duplicates of a Pareto point all kept)."""
    return [i for i, keep in enumerate(pareto_mask(points, modes)) if keep]


def nadir(points: Sequence[Sequence[float]], modes: Sequence[str]) -> tuple[float, ...]:
    """The worst value per objective over ``points`` (the default reference point), in the objectives'
    own directions (the minimum of a ``max`` objective)."""
    pts = _check(points, modes)
    if not pts:
        raise ValueError("no points: the reference point cannot be derived")
    worst = [max(p[j] for p in pts) for j in range(len(modes))]
    return tuple(-w if m == "max" else w for w, m in zip(worst, modes))


def _hv2(pts: list[tuple[float, ...]], ref: Sequence[float]) -> float:
    """2-d hypervolume (minimisation) of points that strictly dominate ``ref``."""
    area, best_y = 0.0, ref[1]
    for x, y in sorted(pts):
        if y < best_y:
            area += (ref[0] - x) * (best_y - y)
            best_y = y
    return area


def _hv(pts: list[tuple[float, ...]], ref: Sequence[float]) -> float:
    d = len(ref)
    if not pts:
        return 0.0
    if d == 1:
        return ref[0] - min(p[0] for p in pts)
    if d == 2:
        return _hv2(pts, ref)
    # slice along the last objective: between consecutive levels z_k < z_{k+1} the dominated region is
    # the (d-1)-d hypervolume of the points with z <= z_k, times the slab's thickness
    pts = sorted(pts, key=lambda p: p[-1])
    volume = 0.0
    for k, p in enumerate(pts):
        top = pts[k + 1][-1] if k + 1 < len(pts) else ref[-1]
        if top > p[-1]:
            volume += _hv([q[:-1] for q in pts[: k + 1]], ref[:-1]) * (top - p[-1])
    return volume


def hypervolume(
    points: Sequence[Sequence[float]], modes: Sequence[str], reference: Optional[Sequence[float]] = None
) -> float:
    """The hypervolume the points dominate up to ``reference`` (default :func:`nadir` of ``points``).

    Args:
        points: objective values, one row per point (dominated points may be included: they add nothing).
        modes: ``"max"`` / ``"min"`` per objective.
        reference: the reference point in the objectives' own directions; it must be worse than a point
            in every objective for that point to count.

    Returns:
        The volume (``0.0`` for no points, or when no point strictly dominates the reference).
    """
    pts = _check(points, modes)
    if not pts:
        return 0.0
    ref = nadir(points, modes) if reference is None else tuple(reference)
    if len(ref) != len(modes):
        raise ValueError(f"the reference point has {len(ref)} values for {len(modes)} objectives")
    nref = _check([ref], modes)[0]
    inside = [p for p in pts if all(x < r for x, r in zip(p, nref))]
    front = [inside[i] for i in non_dominated(inside, ["min"] * len(modes))]
    return _hv(sorted(set(front)), nref)


def hypervolume_history(
    points: Sequence[Sequence[float]], modes: Sequence[str], reference: Optional[Sequence[float]] = None
) -> list[float]:
    """``hv[i]``: the hypervolume of the first ``i + 1`` points (e.g. trials in completion order), all
    against one reference (default: :func:`nadir` of *all* points), so the series never decreases."""
    if not points:
        return []
    ref = nadir(points, modes) if reference is None else tuple(reference)
    pts = _check(points, modes)
    front: list[int] = []  # indices of the non-dominated points so far
    out: list[float] = []
    for i, p in enumerate(pts):
        if out and any(all(x <= y for x, y in zip(pts[j], p)) for j in front):
            out.append(out[-1])  # dominated by (or equal to) a point of the front: the volume stays
            continue
        front = [j for j in front if not _dominates_min(p, pts[j])] + [i]
        out.append(hypervolume([points[j] for j in front], modes, ref))
    return out
