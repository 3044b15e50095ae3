"""Links into the MLflow web UI, the one place that builds them (``run``, ``best``, ``reproduce``,
``report`` and ``ui`` print them).

MLflow 3's UI opens in its GenAI workflow (a browser-side default, ``localStorage``
``mlflow.workflowType``), whatever the experiment's ``mlflow.experimentKind`` tag says: a plain
``#/experiments/1`` shows a traces overview ("Traces 0, Latency, Token usage") and a run page sits
under "Evaluations". The UI reads the URL parameter ``workflowType`` first, so every link carries
``workflowType=machine_learning``: the classic runs table (parent run per launch, trials nested
under it) and the classic run page.
"""
from __future__ import annotations

from typing import Optional

DEFAULT_UI = "http://127.0.0.1:5000"  # what ``xaisweep ui`` serves by default
CLASSIC_WORKFLOW = "workflowType=machine_learning"


def ui_base(tracking_uri: Optional[str]) -> str:
    """The UI that shows ``tracking_uri``: a tracking server serves its own, a local store
    (SQLite, files) is served by ``xaisweep ui`` on :data:`DEFAULT_UI`."""
    if tracking_uri and tracking_uri.startswith(("http://", "https://")):
        return tracking_uri.rstrip("/")
    return DEFAULT_UI


def ui_link(tracking_uri: Optional[str], experiment_id: str, run_id: Optional[str] = None) -> str:
    """The classic MLflow UI page of one run, or the runs table of the experiment without ``run_id``.

    Args:
        tracking_uri: the store the run is in (an ``http(s)://`` tracking server is its own UI),
            or the address of a UI (``http://127.0.0.1:5001`` from ``xaisweep ui --port 5001``).
        experiment_id: the run's experiment.
        run_id: the run; ``None`` links to the experiment's runs table.
    """
    page = f"runs/{run_id}" if run_id else "runs"
    return f"{ui_base(tracking_uri)}/#/experiments/{experiment_id}/{page}?{CLASSIC_WORKFLOW}"


__all__ = ["CLASSIC_WORKFLOW", "DEFAULT_UI", "ui_base", "ui_link"]
