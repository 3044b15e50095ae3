"""Every spec shipped in sweeps/ parses and passes the pre-Ray config checks."""
from pathlib import Path

import pytest

from sweeps.preflight import check_trial_configs
from sweeps.spec import load_spec
from trainables import TRAINABLES

SPECS = sorted((Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml"))


def test_specs_are_shipped():
    names = {p.name for p in SPECS}
    assert {"demo.yaml", "attention_vat_sst.yaml", "attention_vat_imdb.yaml", "unlabeled_ratio_sst.yaml"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_is_valid(path, monkeypatch):
    spec = load_spec(path, known_trainables=list(TRAINABLES))
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # specs with local data name it relative to the repository root (../shared/data)
    problems = check_trial_configs(spec)
    if problems and all("../shared/data/" in p for p in problems) and not (repo / ".." / "shared" / "data").is_dir():
        pytest.skip("local data ../shared/data is not next to this checkout (the spec names what is missing)")
    assert problems == []


def test_demo_is_small_and_uses_asha():
    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / "demo.yaml")
    assert spec.num_samples >= 8 and spec.scheduler is not None and spec.resources.gpu == 0
    assert spec.config["dataset"] == "synthetic"
