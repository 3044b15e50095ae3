"""The MLflow links xaisweep prints open the classic runs view, in a real (headless) Chromium.

MLflow 3's UI starts in its GenAI workflow, so a plain ``#/experiments/<id>`` link shows a traces
overview and a run page sits under "Evaluations" (issue 16, item 2). The store here is the one a
sweep leaves (parent run per launch, a child run per trial, made by the sweep's own helpers, no
Ray); ``xaisweep ui`` serves it on a free loopback port and prints the links; Chromium renders them.
Chromium never leaves 127.0.0.1 (every other host name resolves to nothing).
"""
from __future__ import annotations

import html.parser
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sweeps.launcher import run_link

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SWEEP = "browsersweep"
# what the GenAI workflow shows and the classic one does not (side bar, overview, run breadcrumb)
GENAI_MARKS = ("Evaluation runs", "Observability", "Token Usage", "Evaluations")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _sweep_store(home: Path) -> dict:
    """What ``xaisweep run`` leaves in MLflow: the launch's parent run and two finished trial runs."""
    from sweeps.launch.plan import plan_sweep
    from sweeps.spec.parse import parse_spec
    from sweeps.launch.sweep_runs import start_parent_run
    from sweeps.workdir import Workdir
    from trainables.tracking import TrialRun

    spec = parse_spec({"name": SWEEP, "trainable": "classifier", "config": {"dataset": "synthetic", "epochs": 1},
                       "metric": "best/valid_f1", "mode": "max", "num_samples": 2,
                       "search_space": {"lr": {"type": "loguniform", "low": 1e-3, "high": 1e-2}}})
    plan = plan_sweep(spec, workdir=Workdir(home))
    launch = start_parent_run(plan, resume=False)
    trials = []
    for i, lr in enumerate((1e-3, 5e-3)):
        run = TrialRun(plan.tracking_uri, launch["experiment_id"], launch["parent_run_id"], f"t{i}",
                       f"trial_{i}_lr{lr}", {"sweep": SWEEP})
        run.log_params({"lr": lr})
        run.log_metrics({"best/valid_f1": 0.6 + i / 10}, step=1)
        run.client.set_terminated(run.run_id, "FINISHED")
        trials.append((run.run_id, f"trial_{i}_lr{lr}"))
    parent = run.client.get_run(launch["parent_run_id"]).info.run_name
    return {"uri": plan.tracking_uri, "experiment_id": launch["experiment_id"], "parent_name": parent,
            "trials": trials}


def _no_fsync(dbapi_conn, _record) -> None:
    # test speed only: MLflow's schema is ~50 fsync'ed migrations (seconds on a busy disk)
    if type(dbapi_conn).__module__.startswith("sqlite3"):
        dbapi_conn.execute("PRAGMA synchronous=OFF")


@pytest.fixture(scope="module")
def ui(tmp_path_factory):
    """``xaisweep ui`` on the sweep's store, stopped whatever happens."""
    if CHROMIUM is None:
        pytest.skip("chromium is not on PATH (apt-get install chromium): the real-browser test cannot run")
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    home = tmp_path_factory.mktemp("ui")
    event.listen(Engine, "connect", _no_fsync)
    try:
        store = _sweep_store(home / "xaisweep-runs")
    finally:
        event.remove(Engine, "connect", _no_fsync)
    port = _free_port()
    log = home / "ui.log"
    # `xaisweep ui` as a user starts it (its defaults: one worker, no job runner)
    env = {**os.environ, "XAISWEEP_HOME": str(home / "xaisweep-runs"),
           "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[1]), os.environ.get("PYTHONPATH", "")])}
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "sweeps.cli", "ui", "--tracking-uri", store["uri"],
                                 "--port", str(port)], stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=home, start_new_session=True)
    try:
        deadline = time.monotonic() + 150
        while True:
            if proc.poll() is not None:
                pytest.fail(f"xaisweep ui exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the MLflow UI did not answer within 150 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield {**store, "port": port, "printed": log.read_text()}
    finally:
        try:
            os.killpg(proc.pid, signal.SIGTERM)  # the server and its uvicorn workers
            proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


class _Text(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag, attrs):
        self._skip += tag in ("script", "style")

    def handle_endtag(self, tag):
        self._skip -= tag in ("script", "style")

    def handle_data(self, data):
        if not self._skip and data.strip():
            self.parts.append(data.strip())


def rendered_text(url: str, profile: Path) -> str:
    """The visible text of ``url`` after Chromium ran its JavaScript (a fresh profile: MLflow's defaults)."""
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-extensions",
           f"--user-data-dir={profile}", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
           "--virtual-time-budget=10000", "--dump-dom", url]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=90, check=True).stdout
    parser = _Text()
    parser.feed(dom)
    return " ".join(parser.parts)


def test_ui_prints_the_classic_runs_table_and_it_shows_the_sweep(ui, tmp_path):
    printed = re.search(rf"{SWEEP}\s+(http://\S+)", ui["printed"])
    assert printed, f"xaisweep ui printed no link to the sweep's runs:\n{ui['printed'][:2000]}"
    url = printed.group(1)
    assert url.startswith(f"http://127.0.0.1:{ui['port']}/#/experiments/{ui['experiment_id']}")
    text = rendered_text(url, tmp_path / "profile")
    assert ui["parent_name"] in text, text[:3000]  # the launch's row in the runs table ...
    assert "3 matching runs" in text, text[:3000]  # ... with its 2 trials nested under it
    assert "Run Name" in text and "Model registry" in text, text[:3000]  # the classic table and side bar
    assert not [m for m in GENAI_MARKS if m in text], text[:3000]


def test_the_run_link_opens_the_trials_classic_run_page(ui, tmp_path):
    run_id, name = ui["trials"][-1]
    url = run_link(f"http://127.0.0.1:{ui['port']}", ui["experiment_id"], run_id)
    text = rendered_text(url, tmp_path / "profile")
    assert name in text and run_id in text, text[:3000]
    assert f"Parent run {ui['parent_name']}" in text, text[:3000]
    assert "Model registry" in text, text[:3000]
    assert not [m for m in GENAI_MARKS if m in text], text[:3000]
