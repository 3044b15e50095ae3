"""Pareto set and hypervolume (sweeps.results.pareto) against brute force on hand-made tables."""
from __future__ import annotations

import itertools
import math
import random

import pytest

from sweeps.results.pareto import dominates, hypervolume, hypervolume_history, nadir, non_dominated


def brute_front(points, modes):
    """Definition: i is in the set iff no j is >= in every objective (oriented) and > in one."""
    sign = [1 if m == "max" else -1 for m in modes]
    out = []
    for i, p in enumerate(points):
        beaten = False
        for j, q in enumerate(points):
            if j == i:
                continue
            ge = all(s * qv >= s * pv for s, pv, qv in zip(sign, p, q))
            gt = any(s * qv > s * pv for s, pv, qv in zip(sign, p, q))
            beaten |= ge and gt
        if not beaten:
            out.append(i)
    return out


def inclusion_exclusion(points, modes, ref):
    """Union volume of the boxes [point, ref] by inclusion-exclusion over every subset of points."""
    sign = [1 if m == "max" else -1 for m in modes]
    boxes = [p for p in points if all(s * (v - r) > 0 for s, v, r in zip(sign, p, ref))]
    total = 0.0
    for k in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, k):
            vol = 1.0
            for j, s in enumerate(sign):
                # the intersection's corner: the worst of the subset in objective j
                corner = min(s * p[j] for p in subset) * s
                vol *= abs(corner - ref[j])
            total += (-1) ** (k + 1) * vol
    return total


def grid_count(points, modes, ref):
    """Integer coordinates: count the unit cells dominated by some point (a second brute force)."""
    sign = [1 if m == "max" else -1 for m in modes]
    ranges = [range(min(int(r), *(int(p[j]) for p in points)), max(int(r), *(int(p[j]) for p in points)))
              for j, r in enumerate(ref)]
    n = 0
    for cell in itertools.product(*ranges):
        centre = [c + 0.5 for c in cell]
        inside_ref = all(s * (x - r) > 0 for s, x, r in zip(sign, centre, ref))
        if inside_ref and any(all(s * (v - x) >= 0 for s, v, x in zip(sign, p, centre)) for p in points):
            n += 1
    return n


TABLES = [
    # (id, points, modes, expected Pareto indices)
    ("single point", [(0.8, 0.3)], ["max", "max"], [0]),
    ("all dominated but one", [(0.9, 0.9), (0.5, 0.5), (0.9, 0.1), (0.1, 0.9)], ["max", "max"], [0]),
    ("ties: equal in one, worse in the other", [(1, 2), (1, 3), (2, 1)], ["max", "max"], [1, 2]),
    ("duplicates stay", [(1, 2), (1, 2), (0, 0), (2, 1)], ["max", "max"], [0, 1, 3]),
    ("mixed modes", [(0.9, 5.0), (0.8, 1.0), (0.95, 9.0), (0.7, 2.0), (0.9, 6.0)], ["max", "min"], [0, 1, 2]),
    ("both min", [(1, 4), (2, 2), (4, 1), (3, 3), (2, 2)], ["min", "min"], [0, 1, 2, 4]),
    ("three objectives", [(1, 0, 0), (0, 1, 0), (0, 0, 1), (0.5, 0.5, 0.5), (0.4, 0.4, 0.4), (1, 0, 0)],
     ["max", "max", "max"], [0, 1, 2, 3, 5]),
]


@pytest.mark.parametrize("points, modes, expected", [pytest.param(p, m, e, id=i) for i, p, m, e in TABLES])
def test_non_dominated_hand_tables(points, modes, expected):
    assert non_dominated(points, modes) == expected
    assert brute_front(points, modes) == expected


def test_non_dominated_matches_brute_force_on_random_tables():
    rng = random.Random(0)
    for trial in range(200):
        d = rng.choice([2, 3])
        modes = [rng.choice(["max", "min"]) for _ in range(d)]
        pts = [tuple(rng.randint(0, 4) for _ in range(d)) for _ in range(rng.randint(1, 12))]  # many ties
        assert non_dominated(pts, modes) == brute_front(pts, modes), (pts, modes)


def test_dominates():
    assert dominates((1, 2), (1, 1), ["max", "max"]) and not dominates((1, 1), (1, 1), ["max", "max"])
    assert dominates((1, 1), (1, 2), ["max", "min"]) and not dominates((1, 2), (2, 1), ["max", "max"])


def test_hypervolume_known_answers():
    # two boxes of 2x1 and 1x2 overlapping in 1x1: 3 (maximise, reference at the origin)
    assert hypervolume([(2, 1), (1, 2)], ["max", "max"], (0, 0)) == pytest.approx(3.0)
    # a dominated point and a duplicate add nothing
    assert hypervolume([(2, 1), (1, 2), (1, 1), (2, 1)], ["max", "max"], (0, 0)) == pytest.approx(3.0)
    # one point: its box
    assert hypervolume([(0.5, 0.25, 2.0)], ["max", "max", "min"], (0, 0, 4)) == pytest.approx(0.5 * 0.25 * 2)
    # unit cube corners on the axes plus the centre: inclusion-exclusion by hand = 3 * 0.5 - 3 * 0.25 + 0.125
    # for the three (1, .5, .5)-style points
    pts = [(1, 0.5, 0.5), (0.5, 1, 0.5), (0.5, 0.5, 1)]
    assert hypervolume(pts, ["max"] * 3, (0, 0, 0)) == pytest.approx(3 * 0.25 - 3 * 0.125 + 0.125)
    # points not beyond the reference add nothing; none at all: 0
    assert hypervolume([(2, 1), (-1, 5)], ["max", "max"], (0, 0)) == pytest.approx(2.0)
    assert hypervolume([], ["max", "max"], (0, 0)) == 0.0


def test_default_reference_is_the_worst_value_seen():
    pts = [(0.9, 0.2), (0.6, 0.5), (0.7, 0.3)]
    assert nadir(pts, ["max", "max"]) == (0.6, 0.2)
    assert nadir([(1, 4), (3, 2)], ["max", "min"]) == (1, 4)
    # against (0.6, 0.2): boxes (0.3 x 0) and (0 x 0.3) are flat; (0.7, 0.3) spans 0.1 x 0.1
    assert hypervolume(pts, ["max", "max"]) == pytest.approx(0.01)
    assert hypervolume([(0.8, 0.3)], ["max", "max"]) == 0.0  # a single point is its own nadir


@pytest.mark.parametrize("d", [2, 3])
def test_hypervolume_matches_inclusion_exclusion_and_grid(d):
    rng = random.Random(d)
    for _ in range(60):
        modes = [rng.choice(["max", "min"]) for _ in range(d)]
        n = rng.randint(1, 7)
        pts = [tuple(float(rng.randint(0, 6)) for _ in range(d)) for _ in range(n)]  # duplicates and ties
        ref = tuple(-1.0 if m == "max" else 7.0 for m in modes)
        hv = hypervolume(pts, modes, ref)
        assert hv == pytest.approx(inclusion_exclusion(pts, modes, ref)), (pts, modes)
        assert hv == pytest.approx(grid_count(pts, modes, ref)), (pts, modes)


def test_hypervolume_of_real_valued_points_matches_inclusion_exclusion():
    rng = random.Random(7)
    for d in (2, 3):
        for _ in range(40):
            modes = [rng.choice(["max", "min"]) for _ in range(d)]
            pts = [tuple(rng.random() for _ in range(d)) for _ in range(rng.randint(1, 8))]
            ref = nadir(pts, modes)
            assert hypervolume(pts, modes) == pytest.approx(inclusion_exclusion(pts, modes, ref), abs=1e-12)


def test_history_uses_one_reference_and_never_decreases():
    pts = [(0.5, 0.5), (0.9, 0.1), (0.1, 0.9), (0.6, 0.6), (0.2, 0.2)]
    hist = hypervolume_history(pts, ["max", "max"])
    ref = nadir(pts, ["max", "max"])
    assert ref == (0.1, 0.1)
    assert hist == pytest.approx([hypervolume(pts[: i + 1], ["max", "max"], ref) for i in range(len(pts))])
    assert hist[0] == pytest.approx(0.4 * 0.4) and all(b >= a for a, b in zip(hist, hist[1:]))
    assert hist[-1] == hist[-2]  # a dominated last point adds nothing


@pytest.mark.parametrize("points, modes, ref, message", [
    ([(1, 2)], ["max"], None, "has 2 values for 1 objectives"),
    ([(1, math.nan)], ["max", "max"], None, "not finite"),
    ([(1, 2)], ["max", "up"], None, "modes must be"),
    ([(1, 2)], ["max", "max"], (0,), "reference point has 1 values"),
])
def test_bad_input_is_one_clear_error(points, modes, ref, message):
    with pytest.raises(ValueError, match=message):
        hypervolume(points, modes, ref)


def test_history_equals_the_hypervolume_of_each_prefix_on_random_tables():
    rng = random.Random(3)
    for d in (2, 3):
        for _ in range(40):
            modes = [rng.choice(["max", "min"]) for _ in range(d)]
            pts = [tuple(float(rng.randint(0, 5)) for _ in range(d)) for _ in range(rng.randint(1, 10))]
            ref = nadir(pts, modes)
            assert hypervolume_history(pts, modes) == pytest.approx(
                [hypervolume(pts[: i + 1], modes, ref) for i in range(len(pts))]), (pts, modes)


def test_objectives_tag_round_trips_and_old_launches_fall_back_to_metric_and_mode():
    from trainables import mlflow_names as n

    pairs = (("best/valid_f1", "max"), ("train/step_time", "min"))
    assert n.objectives_of({n.OBJECTIVES: n.objectives_value(pairs), n.METRIC: "x", n.MODE: "min"}) == pairs
    assert n.objectives_of({n.METRIC: "best/valid_f1", n.MODE: "max"}) == (("best/valid_f1", "max"),)
    assert n.objectives_of({n.OBJECTIVES: "not json", n.METRIC: "m", n.MODE: "min"}) == (("m", "min"),)
    with pytest.raises(KeyError):
        n.objectives_of({})


def test_seed_points_average_the_runs_of_each_seed_in_first_seen_order():
    from sweeps.results.pareto import seed_points

    values = [(0.8, 1.0), (0.7, 2.0), (0.9, 3.0), (0.6, 4.0), (0.5, 5.0)]
    seeds = ["0", "1", "0", None, None]
    # seed 0: the mean of rows 0 and 2; seed 1 alone; each unknown seed alone
    assert seed_points(values, seeds) == [pytest.approx((0.85, 2.0)), (0.7, 2.0), (0.6, 4.0), (0.5, 5.0)]
    assert seed_points([], []) == []
    with pytest.raises(ValueError, match="2 rows of values for 1 seeds"):
        seed_points(values[:2], ["0"])
