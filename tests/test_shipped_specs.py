"""Every spec shipped in sweeps/ (globbed, so new specs are covered): it parses, passes the
config checks, and its ``--smoke-test`` preflight on this machine (offline: no hub, no GPU)
either passes or stops before any trial with a message naming the unreachable dataset/model
and how to point the spec at a local copy. The cheapest offline spec of each trainable then
runs its smoke test end to end through ``xaisweep run`` on a local Ray."""
from __future__ import annotations

from pathlib import Path

import pytest

from sweeps.launch.plan import PreflightError, plan_sweep
from sweeps.launch.preflight import check_trial_configs
from sweeps.spec.parse import load_spec
from sweeps.workdir import Workdir
from trainables import TRAINABLES
from xaicore.data.loading import KNOWN_DATASETS

#: the sweep specs (``evaluate_*.yaml`` are the evaluation specs of ``xaisweep evaluate``: tests/test_evaluate.py)
SPECS = sorted(p for p in (Path(__file__).resolve().parents[1] / "sweeps").glob("*.yaml")
               if not p.name.startswith("evaluate_"))
HUB_KEYS = ("dataset", "unlabeled", "pretrained_embeddings", "model", "model_name", "mlm_model")


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and an empty Hugging Face cache: what a fresh machine without a hub has."""
    for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.setenv(var, "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-empty"))
    for var in ("HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE", "HF_DATASETS_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    import nltk

    # and no NLTK data (WordNet): a fresh machine has none, whatever this one had installed by hand
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk-empty")])
    return Workdir(tmp_path / "home")


def test_specs_are_shipped():
    names = {p.name for p in SPECS}
    assert {"demo.yaml", "attention_vat_sst.yaml", "attention_vat_imdb.yaml", "unlabeled_ratio_sst.yaml",
            "faithfulness_demo.yaml", "attention_vat_pareto_sst.yaml"} <= names


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_spec_is_valid(path, monkeypatch):
    spec = load_spec(path, known_trainables=list(TRAINABLES))
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # specs with local data name it relative to the repository root (../shared/data)
    problems = check_trial_configs(spec)
    if problems and all("../shared/data/" in p for p in problems) and not (repo / ".." / "shared" / "data").is_dir():
        pytest.skip("local data ../shared/data is not next to this checkout (the spec names what is missing)")
    assert problems == []


def _hub_values(spec) -> set[str]:
    """Hub dataset keys / model ids the spec can reach (base config and search-space values)."""
    values = {v for k, v in spec.config.items() if k in HUB_KEYS and isinstance(v, str)}
    for p in spec.params:
        if p.name in HUB_KEYS and p.is_categorical:
            values |= {v for v in p.values if isinstance(v, str)}
    return {v for v in values if v in KNOWN_DATASETS or ("/" in v and not v.startswith((".", "/")))
            or v.startswith("bert-")}


def _smoke_plan(path, workdir):
    spec = load_spec(path, known_trainables=list(TRAINABLES))
    return spec, plan_sweep(spec, smoke_test=True, workdir=workdir)


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_smoke_preflight_offline_passes_or_names_what_is_missing(path, offline, monkeypatch):
    spec = load_spec(path, known_trainables=list(TRAINABLES))
    hub = _hub_values(spec)
    repo = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(repo)  # local data is named relative to the repository root (../shared/data)
    try:
        plan_sweep(spec, smoke_test=True, workdir=offline)
    except PreflightError as err:
        text = str(err)
        if not hub and "'../shared/data/" in text and not (repo / ".." / "shared" / "data").is_dir():
            return  # the local data is not next to this checkout, and the message names the missing file
        if not hub and _names_missing_build(text, repo):
            return  # a model this project builds (sweeps/mlm.yaml) is not there yet, and the message says how
        if not hub and _only_wordnet_missing(text):
            return  # a WordNet row on a machine without WordNet: the message says `xaisweep prepare wordnet`
        assert hub, f"{path.name} stops offline although it names no hub dataset or model:\n{text}"
        for value in hub:
            assert repr(value) in text, f"{value!r} is not named:\n{text}"
        assert "local copy" in text, text
        return
    assert not hub, f"{path.name} reaches the hub ({sorted(hub)}) but its offline preflight passed"


#: directories that a shipped spec builds for others (relative to the repository root) -> the spec that builds it
LOCAL_BUILDS = {"../mlm-minilm": "sweeps/mlm.yaml"}


def _names_missing_build(text: str, repo: Path) -> bool:
    """The preflight message names a not-yet-built local model and the spec that builds it."""
    return any(path in text and spec in text and not (repo / path).is_dir() for path, spec in LOCAL_BUILDS.items())


def _only_wordnet_missing(text: str) -> bool:
    """Every problem of the preflight message is WordNet's absence, and it names the command that installs it."""
    from trainables.wordnet_data import wordnet_problem

    problems = [line.strip()[2:] for line in text.splitlines() if line.strip().startswith("- ")]
    return (wordnet_problem() is not None and bool(problems)
            and all("WordNet" in p and "xaisweep prepare wordnet" in p for p in problems))


def _cheapest_offline_specs(workdir) -> dict[str, Path]:
    """Per trainable, the offline-runnable spec with the fewest epochs x trials."""
    best: dict[str, tuple[float, Path]] = {}
    for path in SPECS:
        try:
            spec, plan = _smoke_plan(path, workdir)
        except PreflightError:
            continue
        cost = float(plan.spec.config.get("epochs", 1)) * plan.spec.num_samples * plan.spec.repeats
        if spec.trainable not in best or cost < best[spec.trainable][0]:
            best[spec.trainable] = (cost, path)
    return {t: p for t, (_, p) in best.items()}


def test_every_trainable_with_a_shipped_spec_has_one_that_runs_offline(offline):
    shipped = {load_spec(p).trainable for p in SPECS}
    runnable = _cheapest_offline_specs(offline)
    missing = sorted(shipped - set(runnable))
    assert not missing, (f"trainables {missing} ship only specs that need the hub (or WordNet, or a model built first): add a small spec on "
                         "synthetic or local data so that its --smoke-test runs here")


@pytest.mark.timeout(900)
@pytest.mark.parametrize("trainable", sorted({load_spec(p).trainable for p in SPECS}))
def test_smoke_run_of_the_cheapest_offline_spec(trainable, offline, monkeypatch, capsys):
    pytest.importorskip("ray")
    from sweeps import cli

    path = _cheapest_offline_specs(offline).get(trainable)
    if path is None:
        pytest.fail(f"no shipped spec of trainable {trainable!r} runs offline (see the test above)")
    monkeypatch.setenv("XAISWEEP_HOME", str(offline.root))
    rc = cli.main(["run", str(path), "--smoke-test", "--num-cpus", "2", "--quiet"])
    out, err = capsys.readouterr()
    assert rc == 0, f"{path.name} --smoke-test failed:\n{out}\n{err}"
    assert "2 finished" in out or "finished, 0 failed" in out, out


def test_demo_is_small_and_uses_asha():
    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / "demo.yaml")
    assert spec.num_samples >= 8 and spec.scheduler is not None and spec.resources.gpu == 0
    assert spec.config["dataset"] == "synthetic"


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_shipped_specs_select_on_validation(path):
    """Selecting a configuration on test data would leak the test set into the result."""
    assert not [m for m, _ in load_spec(path).objectives if m.startswith("test/")], path.name


def test_pareto_spec_searches_dev_f1_and_dev_corr_over_the_methods():
    """sweeps/attention_vat_pareto_sst.yaml (issue 19, item 5): two validation objectives, every seed's model
    saved for `xaisweep evaluate`, no single-metric scheduler, eps / word_eps / lam inactive for vanilla."""
    spec = load_spec(Path(__file__).resolve().parents[1] / "sweeps" / "attention_vat_pareto_sst.yaml")
    assert spec.objectives == (("best/valid_f1", "max"), ("best/valid_corr", "max"))
    assert spec.scheduler is None and spec.repeats == 3 and spec.sampler.type in ("tpe", "nsga2")
    assert spec.config["save_model"] is True and spec.config["correlation"] is True
    assert spec.config["selection_metric"] == "roc_auc"  # the reference setup; best/valid_f1 at that epoch
    assert set(spec.param("regularizer").values) == {"none", "attention_vat", "attention_ivat", "word_vat"}
    for name in ("eps", "word_eps", "lam"):
        assert not spec.param(name).is_active({"regularizer": "none"}), name
    assert spec.param("eps").is_active({"regularizer": "attention_ivat"})
    assert spec.param("word_eps").is_active({"regularizer": "word_vat"})
    assert not spec.param("eps").is_active({"regularizer": "word_vat"})
