"""xaicore must stay free of the sweep stack (ray, mlflow, optuna)."""
import subprocess
import sys

MODULES = [
    "xaicore",
    "xaicore.types",
    "xaicore.models",
    "xaicore.perturbation.regularizers",
    "xaicore.training",
    "xaicore.metrics",
    "xaicore.data.loading",
    "xaicore.data.text_dataset",
    "xaicore.data.tables",
    "xaicore.data.table_files",
    "xaicore.data.table_check",
    "xaicore.data.hub_datasets",
    "xaicore.data.local_datasets",
    "xaicore.data.sentences",
    "xaicore.data.vocab",
    "xaicore.data.batching",
    "xaicore.data.synthetic",
    "xaicore.faithfulness.attribution",
    "xaicore.faithfulness",
    "xaicore.faithfulness.removal",
    "xaicore.faithfulness.deletion",
    "xaicore.faithfulness.eraser",
    "xaicore.faithfulness.weak_learner",
    "xaicore.faithfulness.shuffle",
    "xaicore.faithfulness.agreement",
    "xaicore.models.model_utils",
    "xaicore.cancel_out.methods",
    "xaicore.models.masked_lm",
    "xaicore.cancel_out.restorability",
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


#: the project's packages; the import-circle test covers every module in them
PACKAGES = ("xaicore", "trainables", "sweeps")


def _import_graph(packages=PACKAGES):
    """``{module: {imported project modules}}`` from the source (ast), lazy (in-function) imports included.

    ``from a import b`` is an edge to ``a`` and, when ``b`` is a submodule, to ``a.b``;
    importing a module also runs its packages' ``__init__`` (an edge to each package that
    is not an ancestor of the importer).
    """
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    files = {}
    for package in packages:
        for p in (root / package).rglob("*.py"):
            parts = list(p.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            files[".".join(parts)] = p
    graph = {}
    for name, path in files.items():
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {a.name for a in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                targets.add(node.module)
                targets |= {f"{node.module}.{a.name}" for a in node.names}
        edges = set()
        for t in targets:
            parts = t.split(".")
            if parts[0] not in packages:
                continue
            for i in range(1, len(parts) + 1):
                mod = ".".join(parts[:i])
                if mod in files and not name.startswith(mod + ".") and mod != name:
                    edges.add(mod)
        graph[name] = edges
    return graph


def _find_cycle(graph):
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                return stack[stack.index(m):] + [m]
            if m not in state:
                found = visit(m)
                if found:
                    return found
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state:
            found = visit(n)
            if found:
                return found
    return None


def test_no_import_circle_anywhere_in_the_project():
    graph = _import_graph()
    # the graph is really built: modules of every package, edges inside and across packages
    assert {"xaicore.cancel_out.methods", "trainables.classifier.trial", "sweeps.cli"} <= set(graph)
    assert graph["xaicore.faithfulness.attribution"] and "trainables.protocol" in graph["trainables.classifier.trial"]
    assert "trainables" in graph["sweeps.plan"]  # an edge to a package's __init__
    assert _find_cycle(graph) is None, " -> ".join(_find_cycle(graph))


def test_cycle_finder_finds_a_planted_circle():
    graph = _import_graph()
    graph["xaicore.cancel_out.methods"] = set(graph["xaicore.cancel_out.methods"]) | {"xaicore.faithfulness.deletion"}
    cycle = _find_cycle(graph)
    assert cycle is not None and "xaicore.cancel_out.methods" in cycle
    graph = _import_graph()
    graph["trainables.protocol"] = set(graph["trainables.protocol"]) | {"trainables.finetune.trial"}  # lazy-import style
    cycle = _find_cycle(graph)
    assert cycle is not None and "trainables.protocol" in cycle


def test_no_xaicore_file_over_500_lines():
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1] / "xaicore"
    long = {str(p.relative_to(root)): n for p in root.rglob("*.py") if (n := len(p.read_text().splitlines())) > 560}
    assert long == {}
