"""A built-in synthetic sentiment task with exact rationales (no network needed).

Each example is a space-separated sequence of lower-case words (so that
:func:`xaicore.data.vocab.word_tokenize` returns exactly those words). Most words
are neutral distractors; a few are planted *cue* words of positive or negative
polarity. The label is the majority polarity of the planted cues (1 = positive,
0 = negative); ties are never generated. ``rationales`` hold the word
positions of *all* planted cues (both polarities): exactly the words the label
is a function of. Confounder words are sampled independently of the label, so
they are equally frequent in both classes and carry no signal.

A bag-of-words model with weights +1 / -1 on cues solves the task exactly, so
a small BiLSTM reaches > 90 % accuracy within a couple of epochs.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from xaicore.data.loading import TextDataset

__all__ = [
    "POSITIVE_CUES",
    "NEGATIVE_CUES",
    "CONFOUNDER_WORDS",
    "DISTRACTOR_WORDS",
    "make_synthetic_sentiment",
    "synthetic_splits",
]

POSITIVE_CUES: tuple[str, ...] = (
    "excellent", "wonderful", "brilliant", "superb", "delightful",
    "fantastic", "charming", "splendid", "marvelous", "terrific",
)
NEGATIVE_CUES: tuple[str, ...] = (
    "awful", "terrible", "horrible", "dreadful", "boring",
    "mediocre", "disappointing", "painful", "tedious", "lousy",
)
CONFOUNDER_WORDS: tuple[str, ...] = ("movie", "plot", "actor", "director")

DISTRACTOR_WORDS: tuple[str, ...] = tuple(
    """
    the a an this that these those some any each every other another such same
    of in on at by for with from into onto over under between through during
    before after above below across along around behind beside near toward
    and or but so then also just still even only quite rather very too
    it he she they we you i me him her them us his its their our your my
    is was are were be been being has had have do does did will would can could
    may might shall should must
    table chair window door floor wall roof garden street road bridge river lake
    hill valley forest field farm village town city station train bus car truck
    bicycle boat ship plane ticket map bag box bottle cup plate bowl spoon fork
    knife kettle lamp clock phone radio camera paper pencil pen book page letter
    envelope stamp coin wallet key lock shelf drawer cabinet carpet curtain pillow
    blanket sheet towel soap brush comb mirror bucket ladder rope wire pipe tool
    hammer nail screw bolt board brick stone sand soil grass leaf branch tree root
    seed flower fruit apple orange banana grape lemon bread butter cheese rice
    salt pepper sugar flour milk water coffee tea juice soup egg onion garlic
    carrot potato tomato bean corn wheat cloud rain snow wind fog sun moon star
    sky sea ocean island coast beach desert mountain cave rock metal wood glass
    plastic cotton wool silk leather iron copper silver steel cat dog horse cow
    sheep goat pig chicken duck fish bird mouse rabbit fox deer bear wolf owl
    monday tuesday wednesday thursday friday saturday sunday morning evening
    afternoon night week month year season spring summer autumn winter hour minute
    walk run sit stand open close carry bring take give send hold move turn push
    pull lift drop place put set keep leave enter arrive return travel visit wait
    watch look see hear listen read write speak say tell ask answer call meet
    cook eat drink wash clean build paint draw count measure weigh fold cut mix
    pour fill empty wear buy sell pay order list note record report print copy
    red blue green yellow brown grey black white purple round square flat tall
    short long wide narrow thick thin heavy light early late first second third
    north south east west left right upper lower inner outer middle central
    teacher student doctor driver farmer baker clerk pilot sailor worker neighbor
    cousin uncle aunt brother sister mother father child family friend guest
    office school hospital library museum market shop bank hotel kitchen bedroom
    hallway basement attic corner edge side top bottom front back center
    """.split()
)


def _check_vocab(
    positive: Sequence[str], negative: Sequence[str], distractors: Sequence[str], confounders: Sequence[str]
) -> None:
    groups = {"positive_cues": positive, "negative_cues": negative, "distractor_vocab": distractors, "confounders": confounders}
    for name, words in groups.items():
        if name != "confounders" and not words:
            raise ValueError(f"{name} must not be empty")
        bad = [w for w in words if not (w.isalpha() and w.islower())]
        if bad:
            raise ValueError(f"{name} must be lower-case alphabetic words, got {bad[:5]!r}")
    names = list(groups)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            common = sorted(set(groups[a]) & set(groups[b]))
            if common:
                raise ValueError(f"{a} and {b} share words {common[:5]!r}")


def make_synthetic_sentiment(
    n: int,
    *,
    seed: int,
    min_len: int = 8,
    max_len: int = 20,
    n_cues: tuple[int, int] = (1, 3),
    p_opposite: float = 0.25,
    confounder_rate: float = 0.1,
    positive_cues: Sequence[str] = POSITIVE_CUES,
    negative_cues: Sequence[str] = NEGATIVE_CUES,
    distractor_vocab: Sequence[str] = DISTRACTOR_WORDS,
    confounders: Sequence[str] = CONFOUNDER_WORDS,
    name: str = "synthetic_sentiment",
) -> TextDataset:
    """Generate ``n`` labelled sentences with planted cue words.

    Per example (all randomness from one ``numpy.random.Generator(seed)``):

    1. Labels are exactly balanced (``n // 2`` or ``n // 2 + 1`` positives),
       in random order.
    2. Length ``L ~ U{min_len..max_len}``; ``k ~ U{n_cues[0]..n_cues[1]}``
       cues of the label's polarity; with probability ``p_opposite`` (and
       ``k >= 2``) also ``m ~ U{1..k-1}`` cues of the opposite polarity, else
       ``m = 0``. Hence ``label = 1`` iff #positive > #negative cues.
    3. The ``k + m`` cues go to distinct random positions; every other position
       is a confounder with probability ``confounder_rate`` (uniform among
       ``confounders``), else a uniform distractor word.

    Args:
        n: number of examples (>= 1).
        seed: random seed (non-negative int); equal seeds give equal datasets.
        min_len, max_len: sentence length range in words (inclusive).
        n_cues: inclusive range of majority-polarity cue counts, ``1 <= lo <= hi``.
        p_opposite: probability of adding minority-polarity cues.
        confounder_rate: per-position probability of a confounder word.
        positive_cues, negative_cues, distractor_vocab, confounders: the word
            lists (lower-case alphabetic, pairwise disjoint).
        name: dataset name.

    Returns:
        A :class:`TextDataset` with ``label_names=("negative", "positive")``,
        ``rationales`` = sorted positions of all planted cues, and extras
        ``n_positive`` / ``n_negative`` (cue counts per example).
    """
    if n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    lo, hi = n_cues
    if not 1 <= lo <= hi:
        raise ValueError(f"n_cues must satisfy 1 <= lo <= hi, got {n_cues}")
    if not 1 <= min_len <= max_len:
        raise ValueError(f"need 1 <= min_len <= max_len, got {min_len}, {max_len}")
    if 2 * hi - 1 > min_len:
        raise ValueError(f"min_len={min_len} is too short for up to {2 * hi - 1} cues (n_cues={n_cues})")
    if not 0.0 <= p_opposite <= 1.0 or not 0.0 <= confounder_rate <= 1.0:
        raise ValueError("p_opposite and confounder_rate must be probabilities in [0, 1]")
    if confounder_rate > 0 and not confounders:
        raise ValueError("confounder_rate > 0 needs a non-empty confounders list")
    _check_vocab(positive_cues, negative_cues, distractor_vocab, confounders)

    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % 2)
    texts, rationales, n_pos, n_neg = [], [], [], []
    for y in labels.tolist():
        length = int(rng.integers(min_len, max_len + 1))
        k = int(rng.integers(lo, hi + 1))
        m = int(rng.integers(1, k)) if k >= 2 and rng.random() < p_opposite else 0
        positions = rng.choice(length, size=k + m, replace=False)
        majority, minority = (positive_cues, negative_cues) if y == 1 else (negative_cues, positive_cues)
        words: list[str] = []
        for _ in range(length):
            if confounders and rng.random() < confounder_rate:
                words.append(confounders[int(rng.integers(len(confounders)))])
            else:
                words.append(distractor_vocab[int(rng.integers(len(distractor_vocab)))])
        for j, pos in enumerate(positions.tolist()):
            pool = majority if j < k else minority
            words[pos] = pool[int(rng.integers(len(pool)))]
        texts.append(" ".join(words))
        rationales.append(tuple(sorted(positions.tolist())))
        n_pos.append(k if y == 1 else m)
        n_neg.append(m if y == 1 else k)
    return TextDataset(
        texts=tuple(texts),
        labels=tuple(int(y) for y in labels),
        rationales=tuple(rationales),
        extras={"n_positive": tuple(n_pos), "n_negative": tuple(n_neg)},
        label_names=("negative", "positive"),
        name=name,
    )


def synthetic_splits(
    seed: int, n_train: int = 2000, n_dev: int = 500, n_test: int = 500, **kwargs
) -> dict[str, TextDataset]:
    """Train / dev / test synthetic datasets with independent derived seeds.

    Args:
        seed: master seed (non-negative int); split ``s`` uses the seed derived
            from ``numpy.random.SeedSequence([seed, s])`` with ``s`` = 0, 1, 2.
        n_train, n_dev, n_test: split sizes.
        **kwargs: forwarded to :func:`make_synthetic_sentiment`.

    Returns:
        ``{"train": ..., "dev": ..., "test": ...}``, named
        ``"synthetic_sentiment:<split>"``.
    """
    out = {}
    for s, (split, n) in enumerate((("train", n_train), ("dev", n_dev), ("test", n_test))):
        sub_seed = int(np.random.SeedSequence([seed, s]).generate_state(1)[0])
        out[split] = make_synthetic_sentiment(n, seed=sub_seed, name=f"synthetic_sentiment:{split}", **kwargs)
    return out
