"""xaicore must stay free of the sweep stack (ray, mlflow, optuna)."""
import subprocess
import sys

MODULES = [
    "xaicore",
    "xaicore.types",
    "xaicore.models",
    "xaicore.regularizers",
    "xaicore.training",
    "xaicore.metrics",
    "xaicore.data",
    "xaicore.text_dataset",
    "xaicore.tables",
    "xaicore.hub_datasets",
    "xaicore.vocab",
    "xaicore.batching",
    "xaicore.synthetic",
    "xaicore.attribution",
    "xaicore.faithfulness",
]


def test_xaicore_imports_no_sweep_stack():
    code = (
        f"import sys\nfor m in {MODULES!r}:\n    __import__(m)\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'ray', 'mlflow', 'optuna'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_no_xaicore_source_mentions_sweep_stack():
    import pathlib
    import re

    root = pathlib.Path(__file__).resolve().parents[1] / "xaicore"
    pattern = re.compile(r"^\s*(import|from)\s+(ray|mlflow|optuna)\b", re.M)
    offenders = [str(p) for p in root.rglob("*.py") if pattern.search(p.read_text())]
    assert offenders == []
