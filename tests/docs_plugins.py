"""The worked examples of docs/extending.md, registered: ``pytest -p tests.docs_plugins`` runs the
shared plug-in suites with them (tests/test_extending_docs.py)."""
import pathlib
import re

DOC = pathlib.Path(__file__).resolve().parents[1] / "docs" / "extending.md"
NAMES = {"cancel_out": "pad_and_mask", "regularizer": "word_random", "source": "farthest_top_k",
         "recipe": "similar_far_1"}


def doc_blocks() -> list[str]:
    return re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def register_examples() -> None:
    for block in doc_blocks():
        exec(compile(block, str(DOC), "exec"), {"__name__": "docs_extending"})


def pytest_configure(config):
    """As a plugin (``-p tests.docs_plugins``): register before the suites are collected."""
    register_examples()
