"""``xaisweep`` run in the test process on the embedded defaults, for the tests that start real sweeps
(a local Ray, MLflow on a SQLite file of the test's own): one environment, several commands."""
from __future__ import annotations

import contextlib
import io
from pathlib import Path
from typing import Callable, Iterator

import pytest


@contextlib.contextmanager
def embedded_xaisweep(root: Path) -> Iterator[Callable[..., tuple[int, str]]]:
    """Yields ``xaisweep(*argv) -> (exit code, stdout)``, running ``sweeps.cli.main`` here with
    ``XAISWEEP_HOME`` under ``root`` and no ``MLFLOW_TRACKING_URI``; the Ray a command started is shut
    down at the end."""
    import ray

    from sweeps import cli

    def xaisweep(*argv: object) -> tuple[int, str]:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            rc = cli.main([str(a) for a in argv])
        return rc, out.getvalue()

    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XAISWEEP_HOME", str(root / "home"))
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        try:
            yield xaisweep
        finally:
            if ray.is_initialized():
                ray.shutdown()


def run_args(spec: Path, root: Path, tracking_uri: str) -> list[str]:
    """``run SPEC`` on 2 CPUs, quiet, with the test's tracking URI and Ray storage under ``root``."""
    return ["run", str(spec), "--num-cpus", "2", "--quiet", "--tracking-uri", tracking_uri,
            "--storage", str(root / "ray")]
