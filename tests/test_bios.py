"""BIOS pieces: TPR gap and its correlation (hand-computed), gender words, the synthetic generator."""
import math

import numpy as np
import pytest

from xaicore.bias.bios import (
    PRONOUNS,
    SYNTHETIC_PROFESSIONS,
    gender_word_positions,
    load_names,
    planted_female_rates,
    synthetic_bios,
)
from xaicore.bias.fairness import female_rate, gap_correlation, tpr_gap
from xaicore.data.vocab import word_tokenize

# class 0: f preds 0,0,0,1 (TPR 3/4), m preds 0,1 (1/2)      -> gap  0.25
# class 1: f preds 1,1 (1), m preds 1,0,0,0 (1/4)             -> gap  0.75
# class 2: f preds 0 (0), m preds 2,2,2 (1)                   -> gap -1.00
LABELS = [0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2]
PREDS = [0, 0, 0, 1, 0, 1, 1, 1, 1, 0, 0, 0, 0, 2, 2, 2]
GENDER = ["f", "f", "f", "f", "m", "m", "f", "f", "m", "m", "m", "m", "f", "m", "m", "m"]


def test_tpr_gap_against_a_hand_computed_table():
    out = tpr_gap(LABELS, PREDS, GENDER, 4)
    assert np.allclose(out["tpr_f"][:3], [0.75, 1.0, 0.0])
    assert np.allclose(out["tpr_m"][:3], [0.5, 0.25, 1.0])
    assert np.allclose(out["gap"][:3], [0.25, 0.75, -1.0])
    assert np.isnan(out["gap"][3]) and out["n_f"].tolist() == [4, 2, 1, 0]


def test_gap_correlation_against_hand_computation():
    # gaps (0.25, 0.75, -1), female rates (0.5, 0.8, 0.1): sum dx dg = 0.625, sum dx^2 = 0.246667, sum dg^2 = 1.625
    r = 0.625 / math.sqrt(0.7400000 / 3 * 1.625)
    assert r == pytest.approx(0.98719, abs=1e-4)
    t = r / math.sqrt(1 - r * r)  # n - 2 = 1 degree of freedom: Student t_1 is Cauchy
    p = 1 - 2 / math.pi * math.atan(t)
    res = gap_correlation([0.25, 0.75, -1.0, float("nan")], [0.5, 0.8, 0.1, 0.3])
    assert res["r"] == pytest.approx(r, abs=1e-6) and res["p_value"] == pytest.approx(p, abs=1e-6)
    assert res["n_classes"] == 3 and p == pytest.approx(0.1020, abs=1e-3)
    assert math.isnan(gap_correlation([0.1, 0.2], [0.3, 0.4])["r"])


def test_female_rate_and_bad_gender_values():
    assert np.allclose(female_rate(LABELS, GENDER, 3), [4 / 6, 2 / 6, 1 / 4])
    with pytest.raises(ValueError, match="gender values"):
        tpr_gap([0], [0], ["x"], 1)


def test_gender_words_pronouns_titles_and_names():
    text = "Dianne is registered, and she is a provider. Mr. Smith thanks her."
    names = {"dianne"}
    pos = gender_word_positions(text, names)
    words = word_tokenize(text)
    assert [words[i] for i in pos] == ["dianne", "she", "mr", "her"]
    assert [words[i] for i in gender_word_positions(text)] == ["she", "mr", "her"]


def test_names_from_a_user_file(tmp_path):
    f = tmp_path / "names.txt"
    f.write_text("Dianne\nPeter\n\n")
    names, source = load_names(f)
    assert names == {"dianne", "peter"} and source.startswith("file:")
    with pytest.raises(ValueError, match="names file"):
        load_names(tmp_path / "missing.txt")


def test_synthetic_bios_plant_the_skew_only_in_gender_words():
    rates = planted_female_rates()
    d = synthetic_bios(200, seed=0)
    g = np.array(d.extras["gender"])
    y = np.array(d.labels)
    assert np.allclose(female_rate(y, g, len(rates)), rates)
    # removing the gender words leaves texts whose word distribution does not depend on gender
    stripped = {"f": {}, "m": {}}
    for text, rat, gender in zip(d.texts, d.rationales, g):
        words = [w for i, w in enumerate(word_tokenize(text)) if i not in set(rat)]
        assert not set(words) & set(PRONOUNS)
        for w in words:
            stripped[gender][w] = stripped[gender].get(w, 0) + 1
    assert set(stripped["f"]) == set(stripped["m"])
    balanced = synthetic_bios(100, female_rates=[0.5] * len(SYNTHETIC_PROFESSIONS), seed=1)
    assert np.allclose(female_rate(balanced.labels, balanced.extras["gender"], len(rates)), 0.5)


def test_local_jsonl_loader_and_missing_gender_column(tmp_path):
    import json

    from xaicore.bias.bios import load_bios

    rows = [{"text": "She is a nurse at the ward.", "profession": "nurse", "gender": "f"},
            {"text": "He argues cases in court.", "profession": "attorney", "gender": "Male"}]
    p = tmp_path / "bios.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    d = load_bios(str(p))
    assert d.extras["gender"] == ("f", "m") and d.label_names == ("attorney", "nurse")
    assert d.rationales == ((0,), (0,))
    q = tmp_path / "nogender.jsonl"
    q.write_text("\n".join(json.dumps({k: v for k, v in r.items() if k != "gender"}) for r in rows) + "\n")
    with pytest.raises(ValueError, match="no 'gender' column"):
        load_bios(str(q))
