"""docs/extending.md: each worked example is one class plus its registration, passes its kind's shared
suite (which iterates over the registry, unedited) and is accepted by a trainable config."""
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def registered():
    """Register the docs' examples for one test; the registries are restored afterwards."""
    from tests import docs_plugins
    import xaicore.cancel_out.methods as cancel_out
    from xaicore.faithfulness import attribution
    import xaicore.perturbation.noise as noise
    import xaicore.perturbation.regularizers as regularizers

    registries = [cancel_out.CANCEL_OUT_REGISTRY, regularizers.REGULARIZER_KINDS, noise.CANDIDATE_SOURCES,
                  noise.TOKEN_SELECTIONS, noise.NOISE_RECIPES, attribution.ATTRIBUTION_METHODS]
    saved = [dict(r) for r in registries]
    docs_plugins.register_examples()
    try:
        yield docs_plugins.NAMES
    finally:
        for r, s in zip(registries, saved):
            r.clear()
            r.update(s)


def test_docs_have_the_three_examples():
    from tests import docs_plugins

    assert len(docs_plugins.doc_blocks()) == 3


def test_examples_register_and_trainable_configs_accept_them(registered):
    from trainables.bios_debias.config import parse_config as bios_debias_config
    from trainables.classifier.config import parse_config as classifier_config
    from trainables.finetune.config import parse_config as finetune_config
    from xaicore.cancel_out.methods import cancel_out_methods
    from xaicore.perturbation.regularizers import make_regularizer

    assert registered["cancel_out"] in cancel_out_methods(needs_mask_token=False)
    assert registered["cancel_out"] in cancel_out_methods(keeps_positions=True)
    assert classifier_config({"regularizer": registered["regularizer"]}).regularizer == "word_random"
    assert make_regularizer("word_random", eps=0.5).uses_unlabeled
    assert finetune_config({"regularizer": registered["recipe"]}).regularizer == "similar_far_1"
    assert bios_debias_config({"cancel_out": registered["cancel_out"]}).cancel_out == "pad_and_mask"
    with pytest.raises(ValueError, match="already registered"):
        from tests import docs_plugins

        docs_plugins.register_examples()


def test_unregistered_names_are_still_refused():
    from trainables.classifier.config import parse_config as classifier_config
    from trainables.config import ConfigError
    from trainables.finetune.config import parse_config as finetune_config

    with pytest.raises(ConfigError, match="word_random"):
        classifier_config({"regularizer": "word_random"})
    with pytest.raises(ConfigError, match="similar_far_1"):
        finetune_config({"regularizer": "similar_far_1"})


def test_shared_suites_run_the_examples_unedited():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    select = "pad_and_mask or word_random or farthest_top_k or similar_far_1"
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "tests.docs_plugins", "-p", "no:cacheprovider",
           "-m", "not slow", "-k", select, "tests/test_cancel_out.py", "tests/test_regularizers.py",
           "tests/test_noise_regularizers.py"]
    out = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
    passed = int(out.stdout.rsplit(" passed", 1)[0].rsplit(None, 1)[-1])
    assert passed >= 20, out.stdout[-1000:]  # each example went through its kind's whole suite
