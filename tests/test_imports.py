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
    assert "trainables" in graph["sweeps.launch.plan"]  # an edge to a package's __init__
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


def _is_private(name):
    return name.startswith("_") and not name.startswith("__")


def _private_imports(name, source, packages=PACKAGES, is_package=False):
    """``{(name, "module.private_name")}``: underscore-private names that module ``name`` (its
    ``source`` text) imports from another project module, function-local and relative imports
    included; ``import a._b`` (a private module) counts as ``"a._b"``."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".") if is_package else name.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module.split(".")[0] not in packages:
                continue
            if any(_is_private(part) for part in module.split(".")):
                found.add((name, module))
            found |= {(name, f"{module}.{a.name}") for a in node.names
                      if _is_private(a.name) and module != name}
        elif isinstance(node, ast.Import):
            found |= {(name, a.name) for a in node.names
                      if a.name.split(".")[0] in packages and any(_is_private(p) for p in a.name.split("."))}
    return found


def _project_private_imports(packages=PACKAGES):
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    found = set()
    for package in packages:
        for p in (root / package).rglob("*.py"):
            parts = list(p.relative_to(root).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            name = ".".join(parts[:-1] if is_package else parts)
            found |= _private_imports(name, p.read_text(), packages, is_package)
    return found


def test_no_module_imports_another_modules_private_names():
    """A module's ``_private`` names are its own: a split that needs them elsewhere is the wrong cut."""
    found = sorted(_project_private_imports())
    assert not found, "imports of another module's _private names (make the name public, move the code " \
                      "that needs it, or re-cut the modules): " + ", ".join(f"{m} imports {n}" for m, n in found)


def test_private_import_finder_sees_every_form():
    src = (
        "from sweeps.spec.checks import Problems, _join\n"
        "import sweeps._hidden\n"
        "from . import _sibling\n"
        "from .report_data import all_runs, _fmt as fmt\n"
        "from sweeps.results.report import __doc__, _self_private\n"
        "import numpy._core\n"
        "def f():\n"
        "    from xaicore.data.tables import _build\n"
    )
    assert _private_imports("sweeps.results.report", src) == {
        ("sweeps.results.report", "sweeps.spec.checks._join"),
        ("sweeps.results.report", "sweeps._hidden"),
        ("sweeps.results.report", "sweeps.results._sibling"),
        ("sweeps.results.report", "sweeps.results.report_data._fmt"),
        ("sweeps.results.report", "xaicore.data.tables._build"),
    }
    # a package's relative import is relative to the package itself
    assert _private_imports("xaicore.faithfulness", "from .removal import _x\n", is_package=True) == {
        ("xaicore.faithfulness", "xaicore.faithfulness.removal._x")}


def _tag_literals(path, source, names):
    """String constants of ``source`` (docstrings and ``__all__`` left out) that spell one of the
    tag ``names`` or filter on it (``tags.name`` / ``tags.`name```)."""
    import ast

    tree = ast.parse(source)
    skip = set()
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                and isinstance(body[0].value, ast.Constant):
            skip.add(id(body[0].value))  # a docstring
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "__all__" for t in node.targets):
            skip |= {id(c) for c in ast.walk(node.value)}
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            v = node.value
            if v in names or any(f"tags.{n}" in v or f"tags.`{n}`" in v for n in names):
                out.add((path, v))
    return out


#: words that are also tag names but are not used as one here: a status word the CLI prints,
#: the trials.csv column named after the tag
TAG_WORDS_NOT_TAGS = {("sweeps/cli.py", "interrupted"), ("sweeps/results/report.py", "early_stopped")}


def test_mlflow_tag_names_are_spelled_once():
    """Every MLflow tag/role name comes from trainables.mlflow_names (one writer/reader vocabulary)."""
    import pathlib

    from trainables import mlflow_names

    # names that are also ordinary config keys or words (seed, metric, device, ...) are not checked
    ordinary = {"seed", "metric", "mode", "sweep", "trainable", "device", "host", "resumed", "warm_start", "true",
                "seeds", "reproduce", "resumes", "attempts", "spec.yaml", "config.yaml"}
    names = {v for k, v in vars(mlflow_names).items() if k.isupper() and isinstance(v, str)} - ordinary
    assert {"early_stopped", "mlflow.parentRunId", "ray_trial_id", "xaisweep.role", "failure_reason"} <= names
    root = pathlib.Path(__file__).resolve().parents[1]
    found = set()
    for package in PACKAGES:
        for p in (root / package).rglob("*.py"):
            if p.name != "mlflow_names.py":
                found |= _tag_literals(p.relative_to(root).as_posix(), p.read_text(), names)
    assert found - TAG_WORDS_NOT_TAGS == set()
    assert TAG_WORDS_NOT_TAGS <= found, f"no longer there: drop from TAG_WORDS_NOT_TAGS: {TAG_WORDS_NOT_TAGS - found}"
    planted = 'def f(r):\n    """Reads ``early_stopped``."""\n    return r.data.tags.get("early_stopped") == "true"\n'
    assert _tag_literals("x.py", planted, names) == {("x.py", "early_stopped")}
    assert _tag_literals("x.py", "q = f\"tags.`mlflow.parentRunId` = '{p}'\"\n", names)


def test_early_stopped_is_read_one_way():
    from trainables.mlflow_names import is_early_stopped

    assert is_early_stopped({"early_stopped": "true"}) and is_early_stopped({"early_stopped": "True"})
    assert not is_early_stopped({}) and not is_early_stopped({"early_stopped": "false"})


def test_find_experiment_is_implemented_once():
    import ast
    import pathlib

    root = pathlib.Path(__file__).resolve().parents[1]
    defs = [p.relative_to(root).as_posix() for package in PACKAGES for p in (root / package).rglob("*.py")
            for node in ast.walk(ast.parse(p.read_text()))
            if isinstance(node, ast.FunctionDef) and node.name.lstrip("_") == "find_experiment"]
    assert defs == ["sweeps/results/report_data.py"]
