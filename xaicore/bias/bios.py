"""Bias in Bios (De-Arteaga et al. 2019) for cancel-out.txt section 4: gender words and a synthetic generator.

Gender words (what is cancelled during debiased training):

* pronouns and gendered titles, always (:data:`PRONOUNS`, :data:`TITLES`);
* first names from a names list: a user-given file (one name per line) or,
  when it is installed, NLTK's ``names`` corpus (``male.txt`` / ``female.txt``);
  without either, names are not cancelled (:func:`load_names` says which).

Positions are word tokens of :func:`xaicore.data.vocab.word_tokenize`, stored as a
dataset's ``rationales`` so that :class:`xaicore.data.vocab.HFEncoder` maps them onto
sub-word positions (``Batch.rationale_mask`` = the tokens to cancel).

:func:`synthetic_bios` generates biographies with a *planted* profession x
gender skew carried only by gender words: professions come in pairs that share
their content vocabulary; a profession-specific cue word appears in only
``cue_rate`` of the bios, so the rest are ambiguous within the pair, and the
pair's two professions have mirrored training female rates. A classifier
that reads gender words resolves the ambiguity by gender (a TPR gap that
follows the female rate); cancelling the gender words removes the only gender
signal there is. Test sets are gender-balanced per profession.
"""
from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path
from typing import Iterable, Optional, Sequence, Union

from xaicore.data.text_dataset import TextDataset
from xaicore.data.vocab import word_tokenize

__all__ = ["PRONOUNS", "TITLES", "load_names", "gender_word_positions", "with_gender_rationales",
           "SYNTHETIC_PROFESSIONS", "synthetic_bios", "planted_female_rates", "synthetic_vocabulary", "load_bios"]

PRONOUNS = ("he", "she", "him", "her", "his", "hers", "himself", "herself")
TITLES = ("mr", "mrs", "ms", "miss", "mister", "sir", "madam", "madame", "lady", "lord", "mx")


def load_names(path: Union[None, str, Path] = None) -> tuple[frozenset[str], str]:
    """First names (lower-cased) to cancel and where they came from.

    Args:
        path: a UTF-8 file with one name per line; default: NLTK's ``names`` corpus when installed.

    Returns:
        ``(names, source)`` with ``source`` one of ``"file:<path>"``, ``"nltk:names"``, ``"none"``.
    """
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ValueError(f"names file not found: {p}")
        names = {w.strip().lower() for w in p.read_text(encoding="utf-8").splitlines() if w.strip()}
        return frozenset(names), f"file:{p}"
    try:
        from nltk.corpus import names as corpus

        words = corpus.words("male.txt") + corpus.words("female.txt")
    except (LookupError, OSError, ImportError):
        return frozenset(), "none"
    return frozenset(w.lower() for w in words), "nltk:names"


def gender_word_positions(text: str, names: Iterable[str] = ()) -> tuple[int, ...]:
    """Indices of :func:`~xaicore.data.vocab.word_tokenize` tokens of ``text`` that are gender words."""
    words = set(PRONOUNS) | set(TITLES) | set(names)
    return tuple(i for i, w in enumerate(word_tokenize(text)) if w in words)


def with_gender_rationales(data: TextDataset, names: Iterable[str] = ()) -> TextDataset:
    """``data`` with ``rationales`` = the gender-word positions of each text (the tokens to cancel)."""
    names = frozenset(names)
    return replace(data, rationales=tuple(gender_word_positions(t, names) for t in data.texts))


# ----------------------------------------------------------------- synthetic
#: (profession, shared domain words, profession cue word): two professions per domain
SYNTHETIC_PROFESSIONS = (
    ("nurse", ("hospital", "patients", "care", "ward"), "injections"),
    ("surgeon", ("hospital", "patients", "care", "ward"), "operations"),
    ("teacher", ("school", "students", "lessons", "class"), "homework"),
    ("professor", ("school", "students", "lessons", "class"), "research"),
    ("paralegal", ("law", "clients", "cases", "court"), "filings"),
    ("attorney", ("law", "clients", "cases", "court"), "trials"),
    ("dietitian", ("food", "health", "plans", "clinic"), "nutrition"),
    ("chef", ("food", "health", "plans", "clinic"), "kitchen"),
)
_FEMALE_NAMES = ("mary", "anna", "linda", "susan", "karen", "emma", "olivia", "sophia", "julia", "laura")
_MALE_NAMES = ("john", "james", "robert", "david", "peter", "mark", "paul", "thomas", "daniel", "george")
_FILLER = ("works", "with", "many", "in", "the", "city", "and", "has", "years", "of", "experience", "local",
           "team", "at", "a", "large", "center", "enjoys", "daily", "new")


def planted_female_rates(n_professions: int = len(SYNTHETIC_PROFESSIONS), high: float = 0.9,
                         low_pair: float = 0.6) -> tuple[float, ...]:
    """Training female rate per profession: pair ``p`` gets ``(r_p, 1 - r_p)`` with ``r_p`` evenly spaced
    from ``high`` down to ``low_pair`` (4 pairs: 0.9/0.1, 0.8/0.2, 0.7/0.3, 0.6/0.4)."""
    pairs = n_professions // 2
    out: list[float] = []
    for p in range(pairs):
        r = high - (high - low_pair) * p / max(1, pairs - 1)
        out += [r, 1 - r]
    return tuple(round(x, 6) for x in out)


def _bio(rng: random.Random, female: bool, domain: Sequence[str], cue: Optional[str]) -> str:
    name = rng.choice(_FEMALE_NAMES if female else _MALE_NAMES)
    subj, poss = ("she", "her") if female else ("he", "his")
    title = "ms" if female else "mr"
    content = rng.sample(list(domain), 3) + ([cue] if cue else [])
    rng.shuffle(content)
    filler = rng.sample(_FILLER, 4)
    return (f"{name} {filler[0]} {filler[1]} {content[0]} {content[1]} . {subj} {filler[2]} {poss} {content[2]} "
            + (f"{content[3]} " if len(content) > 3 else "") + f"{filler[3]} . {title} {name} .")


def synthetic_bios(
    n_per_profession: int,
    *,
    female_rates: Optional[Sequence[float]] = None,
    cue_rate: float = 0.5,
    seed: int = 0,
    name: str = "synthetic_bios",
) -> TextDataset:
    """Synthetic biographies with a planted profession x gender skew carried only by gender words.

    Args:
        n_per_profession: bios per profession.
        female_rates: share of female bios per profession (default :func:`planted_female_rates`;
            use 0.5 everywhere for a gender-balanced test set).
        cue_rate: share of bios that contain their profession's cue word (the rest are ambiguous
            between the two professions of a domain).
        seed: RNG seed.

    Returns:
        :class:`TextDataset` with ``labels`` (profession ids), ``label_names``, ``extras["gender"]``
        (``"f"``/``"m"``) and ``rationales`` = gender-word positions (pronouns, titles, the names).
    """
    rates = tuple(female_rates) if female_rates is not None else planted_female_rates()
    if len(rates) != len(SYNTHETIC_PROFESSIONS):
        raise ValueError(f"female_rates needs {len(SYNTHETIC_PROFESSIONS)} values, got {len(rates)}")
    if any(not 0 <= r <= 1 for r in rates) or not 0 <= cue_rate <= 1:
        raise ValueError("female_rates and cue_rate must be in [0, 1]")
    rng = random.Random(seed)
    rows = []
    for label, ((_, domain, cue), rate) in enumerate(zip(SYNTHETIC_PROFESSIONS, rates)):
        n_f = round(rate * n_per_profession)
        for i in range(n_per_profession):
            female = i < n_f
            rows.append((_bio(rng, female, domain, cue if rng.random() < cue_rate else None), label,
                         "f" if female else "m"))
    rng.shuffle(rows)
    names = set(_FEMALE_NAMES) | set(_MALE_NAMES)
    texts = tuple(r[0] for r in rows)
    return TextDataset(
        texts=texts, labels=tuple(r[1] for r in rows), extras={"gender": tuple(r[2] for r in rows)},
        label_names=tuple(p for p, _, _ in SYNTHETIC_PROFESSIONS),
        rationales=tuple(gender_word_positions(t, names) for t in texts), name=name,
    )


def synthetic_vocabulary() -> list[str]:
    """Every word the generator writes (for a word-level WordPiece vocabulary of a tiny test model)."""
    words = set(PRONOUNS) | set(TITLES) | set(_FEMALE_NAMES) | set(_MALE_NAMES) | set(_FILLER) | {"."}
    for _, domain, cue in SYNTHETIC_PROFESSIONS:
        words |= set(domain) | {cue}
    return sorted(words)


# ---------------------------------------------------------------- real data
def load_bios(
    source: str,
    *,
    split: Optional[str] = None,
    names: Iterable[str] = (),
    text_column: str = "text",
    label_column: str = "profession",
    gender_column: str = "gender",
    label_names: Optional[Sequence[str]] = None,
    drop_empty: bool = False,
) -> TextDataset:
    """Bias in Bios from the hub (``bias_in_bios`` = ``LabHC/bias_in_bios``) or a local file (jsonl/csv/...)
    with text, profession and gender columns; ``rationales`` = gender-word positions.

    Raises:
        ValueError: the data has no gender column (the TPR gap needs it), or a gender value is not
            ``f``/``female``/``1`` or ``m``/``male``/``0``.
    """
    from xaicore.data.loading import KNOWN_DATASETS, load_dataset

    if source in KNOWN_DATASETS:
        data = load_dataset(source, split=split)
    else:
        data = load_dataset(source, split=split, columns={"text": text_column, "label": label_column},
                            label_names=label_names, drop_empty=drop_empty)
    if gender_column not in data.extras:
        raise ValueError(f"{source}: no {gender_column!r} column (found {sorted(data.extras)}); "
                         "the TPR gap needs each bio's gender")
    genders = tuple(_normalise_gender(g) for g in data.extras[gender_column])
    extras = dict(data.extras)
    extras["gender"] = genders
    return with_gender_rationales(replace(data, extras=extras), names)


def _normalise_gender(value) -> str:
    v = str(value).strip().lower()
    if v in ("f", "female", "1", "woman"):
        return "f"
    if v in ("m", "male", "0", "man"):
        return "m"
    raise ValueError(f"gender value {value!r} is neither female (f/female/1) nor male (m/male/0)")
