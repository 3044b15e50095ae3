"""``xaisweep evaluate SWEEP --with SPEC``: every saved model of a finished sweep scored by an evaluation
trainable, logged into the model's own MLflow run as ``eval/<name>/<metric>``.

One module-scoped sweep (``sweep``: 4 tiny classifier trials through ``xaisweep run`` on a local Ray, two of
them with ``save_model: true``) is evaluated by the Ray tests: every metric logged once, a second run logs
nothing, the metrics equal the ``faithfulness`` trainable's run directly on the same ``model_checkpoint``,
a trial without a model is listed and skipped; the ``slow`` test interrupts an evaluation with SIGINT in a
subprocess and runs it again. The bad-input tests build their MLflow runs by hand and never start Ray.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import yaml

ray = pytest.importorskip("ray")
from mlflow.tracking import MlflowClient  # noqa: E402

from cli_sweeps import embedded_xaisweep, run_args  # noqa: E402
from sweeps import cli  # noqa: E402
from sweeps.spec.checks import SpecError  # noqa: E402
from sweeps.spec.evaluation import evaluation_points, load_evaluation_spec, parse_evaluation_spec  # noqa: E402

pytestmark = pytest.mark.timeout(900)

ROOT = Path(__file__).resolve().parents[1]
TINY = {"dataset": "synthetic", "synthetic_size": 200, "epochs": 1, "batch_size": 32, "embedding_dim": 8,
        "hidden_dim": 8, "attention_dim": 8, "heatmaps": 0}
EVAL_CONFIG = {"methods": ["saliency", "attention"], "faith_metrics": ["deletion", "weak_learner", "shuffle_tvd",
                                                                      "agreement", "rationale"],
               "eval_examples": 24, "tvd_permutations": 5, "weak_epochs": 1, "weak_train_examples": 64}
SWEEP = "esweep"


def eval_spec(path: Path, name: str = "tfaith", values=("zero_vector", "pad"), **overrides) -> Path:
    doc = {"name": name, "trainable": "faithfulness", "config": dict(EVAL_CONFIG),
           "search_space": {"cancel_out": {"type": "grid", "values": list(values)}}, "max_concurrent": 2,
           "resources": {"cpu": 1}, **overrides}
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def eval_metrics(run) -> dict[str, float]:
    return {k: v for k, v in run.data.metrics.items() if k.startswith("eval/")}


# ----------------------------------------------------------------------------- pure: the evaluation spec
def test_point_names_are_the_varying_knobs_and_stable():
    spec = parse_evaluation_spec({
        "name": "faith", "trainable": "faithfulness", "config": {"ig_steps": 8},
        "search_space": {"cancel_out": {"type": "grid", "values": ["zero_vector", "pad"]},
                         "deletion_step": {"type": "choice", "values": [1, 2], "when": {"cancel_out": ["pad"]}},
                         "ig_method": {"type": "choice", "values": ["riemann_trapezoid"]}}})
    points = evaluation_points(spec)
    assert [(p.name, p.values) for p in points] == [
        ("faith_zero_vector", {"cancel_out": "zero_vector", "ig_method": "riemann_trapezoid"}),
        ("faith_pad_deletion_step1", {"cancel_out": "pad", "deletion_step": 1, "ig_method": "riemann_trapezoid"}),
        ("faith_pad_deletion_step2", {"cancel_out": "pad", "deletion_step": 2, "ig_method": "riemann_trapezoid"})]
    again = parse_evaluation_spec(spec.to_dict())
    assert [p.name for p in evaluation_points(again)] == [p.name for p in points]
    one = parse_evaluation_spec({"name": "corr", "trainable": "faithfulness"})
    assert [(p.name, p.values) for p in evaluation_points(one)] == [("corr", {})]


def test_evaluation_spec_problems_are_listed_at_once():
    with pytest.raises(SpecError) as err:
        parse_evaluation_spec({"name": "bad name", "trainable": "faithfulnes", "metric": "x",
                               "search_space": {"ig_steps": {"type": "int", "low": 4, "high": 8},
                                                "cancel_out": {"type": "grid", "values": ["a/b", "a-b"]}}},
                              known_trainables=["faithfulness"])
    text = str(err.value)
    assert text.startswith("invalid evaluation spec")
    for part in ("name: must match", "metric: unknown key", "did you mean 'faithfulness'",
                 "search_space.ig_steps: an evaluation runs every point"):
        assert part in text, text
    with pytest.raises(SpecError, match="get the same name 'x_a-b'"):
        parse_evaluation_spec({"name": "x", "trainable": "faithfulness",
                               "search_space": {"cancel_out": {"type": "grid", "values": ["a/b", "a-b"]}}})


@pytest.mark.parametrize("path", sorted((ROOT / "sweeps").glob("evaluate_*.yaml")), ids=lambda p: p.name)
def test_shipped_evaluation_specs_parse_and_fit_their_trainable(path):
    from sweeps.launch.preflight import config_problems
    from trainables import TRAINABLES, get_trainable

    spec = load_evaluation_spec(path, known_trainables=list(TRAINABLES))
    entry = get_trainable(spec.trainable)
    evaluation = entry.trainable.evaluation
    assert evaluation is not None
    assert set(spec.config) | {p.name for p in spec.params} <= evaluation.knobs
    # a trial config of the models it reads (the finetune keys: a transformer's data and tokenisation)
    base = ({"dataset": "synthetic", "epochs": 1} if "finetune" in evaluation.model_trainables else dict(TINY)) \
        if evaluation.inherits_trial_config else {}
    for point in evaluation_points(spec):
        assert config_problems(entry, {**base, **evaluation.fixed, **spec.config, **point.values}) == []
    assert {"evaluate_faithfulness.yaml", "evaluate_correlation.yaml", "evaluate_rationale.yaml",
            "evaluate_restorability.yaml", "evaluate_faithfulness_transformer.yaml"} <= {p.name for p in (ROOT / "sweeps").glob("evaluate_*.yaml")}


# ----------------------------------------------------------------------------- bad input, before Ray
@pytest.fixture
def no_ray(monkeypatch):
    def boom(*args, **kwargs):
        raise AssertionError("Ray was started")

    monkeypatch.setattr(ray, "init", boom)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    uri = f"sqlite:///{tmp_path_factory.mktemp('evalstore') / 'mlflow.db'}"
    MlflowClient(uri).search_experiments()
    return uri


def fake_sweep(uri: str, name: str, *, trainable: str = "classifier", config=None, model: bool = False,
               tags=None, status: str = "FINISHED") -> str:
    """An experiment with one trial run as ``xaisweep run`` leaves it (tags, config.yaml, the model file)."""
    client = MlflowClient(uri)
    exp = client.create_experiment(name)
    run = client.create_run(exp, tags={"ray_trial_id": "t0", "trainable": trainable, **(tags or {})})
    run_id = run.info.run_id
    client.log_text(run_id, yaml.safe_dump({"trainable": trainable, "config": dict(config or TINY)}), "config.yaml")
    if model:
        client.log_text(run_id, "not read before Ray", "model/best_model.pt")
    client.set_terminated(run_id, status)
    return run_id


def evaluate(capsys, *argv) -> tuple[int, str, str]:
    rc = cli.main(["evaluate", *argv])
    out, err = capsys.readouterr()
    return rc, out, err


def test_unknown_sweep_and_spec_errors_stop_before_ray(no_ray, store, tmp_path, capsys):
    spec = eval_spec(tmp_path / "e.yaml")
    rc, _, err = evaluate(capsys, "no-such-sweep", "--with", str(spec), "--tracking-uri", store)
    assert rc == 2 and "no MLflow experiment 'no-such-sweep'" in err
    bad = eval_spec(tmp_path / "bad.yaml", config={**EVAL_CONFIG, "dataset": "other.csv", "model_checkpoint": "m.pt"},
                    search_space={"lr": {"type": "choice", "values": [0.1]}})
    rc, _, err = evaluate(capsys, "no-such-sweep", "--with", str(bad), "--tracking-uri", store)
    assert rc == 2
    assert "config.dataset: 'dataset' comes from each model's own trial config" in err
    assert "config.model_checkpoint: the model is each trial's saved model" in err
    assert "search_space.lr: 'lr' comes from each model's own trial config" in err
    assert "no MLflow experiment 'no-such-sweep'" in err  # every problem at once
    rc, _, err = evaluate(capsys, "no-such-sweep", "--with", str(tmp_path / "missing.yaml"), "--tracking-uri", store)
    assert rc == 2 and "cannot read evaluation spec" in err and "faithfulness, faithfulness_transformer, correlation" in err
    ranged = eval_spec(tmp_path / "r.yaml", search_space={"ig_steps": {"type": "int", "low": 4, "high": 8}})
    rc, _, err = evaluate(capsys, "no-such-sweep", "--with", str(ranged), "--tracking-uri", store)
    assert rc == 2 and "invalid evaluation spec" in err and "an evaluation runs every point" in err


def test_a_sweep_without_saved_models_is_refused(no_ray, store, tmp_path, capsys):
    fake_sweep(store, "nomodels", tags={"early_stopped": "true"})
    rc, _, err = evaluate(capsys, "nomodels", "--with", str(eval_spec(tmp_path / "e.yaml")), "--tracking-uri", store)
    assert rc == 2 and "sweep 'nomodels' has no saved model" in err and "save_model: true" in err
    assert "(1 stopped early)" in err


def test_an_evaluation_that_cannot_read_the_models_is_refused(no_ray, store, tmp_path, capsys):
    fake_sweep(store, "classifiers", model=True)
    rc, _, err = evaluate(capsys, "classifiers", "--with", "restorability", "--tracking-uri", store)
    assert rc == 2 and "restorability evaluates models saved by mlm trials" in err and "classifier trials" in err
    masked = eval_spec(tmp_path / "m.yaml", values=("mask_token",))
    rc, _, err = evaluate(capsys, "classifiers", "--with", str(masked), "--tracking-uri", store)
    assert rc == 2 and "tfaith: cancel_out: 'mask_token' needs a model with a mask token" in err
    fake_sweep(store, "finetuned", trainable="finetune", model=True)
    rc, _, err = evaluate(capsys, "finetuned", "--with", "faithfulness", "--tracking-uri", store)
    assert rc == 2 and "sweep 'finetuned' has finetune trials" in err
    assert "(faithfulness_transformer reads finetune models)" in err


def test_rationale_of_data_without_rationales_is_refused(no_ray, store, tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na good film,1\na bad film,0\n")
    fake_sweep(store, "csvsweep", model=True, config={**TINY, "dataset": str(data)})
    rc, _, err = evaluate(capsys, "csvsweep", "--with", "rationale", "--tracking-uri", store)
    assert rc == 2 and "faith_metrics: rationale needs human rationales" in err


def test_a_data_file_changed_since_training_is_refused(no_ray, store, tmp_path, capsys):
    data = tmp_path / "d.csv"
    data.write_text("text,label\na good film,1\na bad film,0\n")
    fake_sweep(store, "changed", model=True, config={**TINY, "dataset": str(data)},
               tags={"data_sha256.dataset": "0" * 64})
    rc, _, err = evaluate(capsys, "changed", "--with", "correlation", "--tracking-uri", store)
    assert rc == 2 and "config.dataset: the data file of" in err and "changed since run" in err


def test_a_name_already_used_by_another_config_is_refused(no_ray, store, tmp_path, capsys):
    fake_sweep(store, "conflict", model=True,
               tags={"eval/tfaith_pad/done": "2026-01-01", "eval/tfaith_pad/config_sha256": "f" * 64})
    rc, _, err = evaluate(capsys, "conflict", "--with", str(eval_spec(tmp_path / "e.yaml")), "--tracking-uri", store)
    assert rc == 2 and "evaluation 'tfaith_pad' is already in 1 run(s)" in err


# ----------------------------------------------------------------------------- a real sweep, evaluated on Ray
@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """4 tiny classifier trials (seed 0/1 x save_model true/false) through ``xaisweep run``, then one
    ``xaisweep evaluate`` with 2 cancel-out points (4 evaluations)."""
    root = tmp_path_factory.mktemp("esweep")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    spec = root / "sweep.yaml"
    spec.write_text(yaml.safe_dump({
        "name": SWEEP, "trainable": "classifier", "config": dict(TINY), "metric": "best/valid_f1", "mode": "max",
        "search_space": {"seed": {"type": "grid", "values": [0, 1]},
                         "save_model": {"type": "grid", "values": [True, False]}},
        "sampler": {"type": "grid", "seed": 0}, "num_samples": 4, "max_concurrent": 2, "resources": {"cpu": 1}}))
    evaluation = eval_spec(root / "eval.yaml")
    with embedded_xaisweep(root) as xaisweep:
        rc, out = xaisweep(*run_args(spec, root, uri))
        assert rc == 0, out
        t0 = time.time()
        rc_eval, first = xaisweep("evaluate", SWEEP, "--with", evaluation, "--num-cpus", "2", "--quiet",
                                  "--tracking-uri", uri)
        seconds = time.time() - t0
    client = MlflowClient(uri)
    exp = client.get_experiment_by_name(SWEEP)
    runs = client.search_runs([exp.experiment_id], "tags.ray_trial_id != ''")
    models = [r for r in runs if r.data.params.get("save_model") == "True"]
    return {"uri": uri, "root": root, "client": client, "exp": exp, "runs": runs, "models": models,
            "evaluation": evaluation, "rc": rc_eval, "stdout": first, "seconds": seconds}


def test_every_metric_is_logged_once_and_a_second_run_logs_nothing(sweep, capsys):
    assert sweep["rc"] == 0, sweep["stdout"]
    client = sweep["client"]
    assert len(sweep["models"]) == 2 and len(sweep["runs"]) == 4
    before = {}
    for run in sweep["models"]:
        run = client.get_run(run.info.run_id)
        metrics = eval_metrics(run)
        for name, cancel in (("tfaith_zero_vector", "zero_vector"), ("tfaith_pad", None)):
            assert run.data.tags[f"eval/{name}/done"]
            deletion = "deletion" + (f".{cancel}" if cancel else "")
            for key in (f"faith/{deletion}/saliency", "faith/weak_f1/attention", "faith/shuffle_tvd/saliency",
                        "faith/kendall_tau/saliency__attention", "faith/rationale_auprc/attention", "test/f1"):
                assert f"eval/{name}/{key}" in metrics, sorted(metrics)
        for key in metrics:
            assert len(client.get_metric_history(run.info.run_id, key)) == 1, key
        # the re-scored model is the trial's: the same test F1
        assert metrics["eval/tfaith_pad/test/f1"] == pytest.approx(run.data.metrics["test/f1"])
        listed = {f.path for f in client.list_artifacts(run.info.run_id, "eval/tfaith_pad")}
        for name in ("evaluation.yaml", "evaluation_spec.yaml", "provenance.json", "faithfulness_table.md"):
            assert f"eval/tfaith_pad/{name}" in listed, listed
        with tempfile.TemporaryDirectory() as tmp:
            prov = json.loads(Path(client.download_artifacts(run.info.run_id, "eval/tfaith_pad/provenance.json",
                                                             tmp)).read_text())
            model = Path(client.download_artifacts(run.info.run_id, "model/best_model.pt", tmp))
            from trainables.tracking import sha256_file

            assert prov["model"]["sha256"] == sha256_file(model)
        assert prov["model"]["artifact"] == f"runs:/{run.info.run_id}/model/best_model.pt"
        assert prov["point"] == {"cancel_out": "pad"} and prov["code"]["git_commit"]
        assert prov["spec"]["path"] == str(sweep["evaluation"].resolve())
        before[run.info.run_id] = (metrics, run.data.tags["eval/tfaith_pad/done"])
    # the trials without a model: one line each, and a count
    out = sweep["stdout"]
    assert out.count("no model/best_model.pt (save_model: false)") == 2
    assert "2 finished trial run(s) without a saved model skipped" in out
    assert "2 model(s) x 2 evaluation(s) (tfaith_pad, tfaith_zero_vector): 0 pair(s) done already, 4 to run" in out
    for run in sweep["runs"]:
        if run not in sweep["models"]:
            assert not eval_metrics(client.get_run(run.info.run_id))

    # again: nothing to do, nothing logged
    rc, out, _ = evaluate(capsys, SWEEP, "--with", str(sweep["evaluation"]), "--num-cpus", "2", "--quiet",
                          "--tracking-uri", sweep["uri"])
    assert rc == 0 and "4 pair(s) done already, 0 to run" in out and "nothing to evaluate" in out
    assert not ray.is_initialized()
    for run_id, (metrics, done) in before.items():
        run = client.get_run(run_id)
        assert eval_metrics(run) == metrics and run.data.tags["eval/tfaith_pad/done"] == done
        for key in metrics:
            assert len(client.get_metric_history(run_id, key)) == 1, key


def test_metrics_equal_the_faithfulness_trainable_on_the_same_checkpoint(sweep, tmp_path):
    from sweeps.results.best import trial_config
    from trainables.faithfulness.trial import run_trial

    client = sweep["client"]
    run = client.get_run(sweep["models"][0].info.run_id)
    model = client.download_artifacts(run.info.run_id, "model/best_model.pt", str(tmp_path))
    config = trial_config(client, run.info.run_id)["config"]
    direct = run_trial({**config, "save_model": False, **EVAL_CONFIG, "cancel_out": "zero_vector",
                        "model_checkpoint": model}).metrics
    logged = {k[len("eval/tfaith_zero_vector/"):]: v for k, v in run.data.metrics.items()
              if k.startswith("eval/tfaith_zero_vector/")}
    assert set(logged) == {k for k, v in direct.items() if isinstance(v, (int, float))}
    for key, value in logged.items():
        assert value == pytest.approx(direct[key], rel=1e-6, abs=1e-9), key


@pytest.mark.slow
def test_an_interrupted_evaluation_continues_and_logs_every_metric_once(sweep, tmp_path):
    """SIGINT to the driver once the first of 6 evaluations (2 models x 3 points, one at a time) is marked
    done: exit 130; then again: all 6 complete, every metric logged exactly once."""
    client = sweep["client"]
    spec = eval_spec(tmp_path / "resume.yaml", name="tresume", values=("zero_vector", "pad", "attention_mask"),
                     max_concurrent=1)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "XAISWEEP_HOME": str(tmp_path / "home"), "PYTHONUNBUFFERED": "1"}
    env.pop("MLFLOW_TRACKING_URI", None)
    cmd = [sys.executable, "-m", "sweeps.cli", "evaluate", SWEEP, "--with", str(spec), "--num-cpus", "2", "--quiet",
           "--tracking-uri", sweep["uri"]]
    log = tmp_path / "evaluate.log"
    ids = [r.info.run_id for r in sweep["models"]]

    def done() -> int:
        return sum(k.startswith("eval/tresume_") and k.endswith("/done")
                   for run_id in ids for k in client.get_run(run_id).data.tags)

    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, env=env, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    try:
        deadline = time.time() + 300
        while done() < 1:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.time() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(120) == 130, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    interrupted = done()
    assert 1 <= interrupted < 6
    assert "continue with: xaisweep evaluate" in log.read_text()
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert f"{interrupted} pair(s) done already, {6 - interrupted} to run" in again.stdout
    assert done() == 6
    for run_id in ids:
        run = client.get_run(run_id)
        keys = [k for k in run.data.metrics if k.startswith("eval/tresume_")]
        assert len(keys) == 3 * len([k for k in run.data.metrics if k.startswith("eval/tresume_pad/")])
        for key in keys:
            assert len(client.get_metric_history(run_id, key)) == 1, key


def test_an_evaluation_cut_off_after_some_metrics_logs_only_the_rest(sweep, tmp_path):
    """An evaluation killed between its metrics and its ``done`` marker: the rerun logs only what is missing."""
    from sweeps.evaluation.plan import plan_evaluation
    from trainables.evaluation_run import run_evaluation

    client = sweep["client"]
    spec = eval_spec(tmp_path / "partial.yaml", name="tpartial", values=("pad",))
    plan = plan_evaluation(SWEEP, str(spec), tracking_uri=sweep["uri"])
    job = plan.jobs[0]
    assert len(plan.jobs) == 2 and not plan.done and job.name == "tpartial"
    client.log_metric(job.run_id, "eval/tpartial/test/f1", 0.123, step=0)  # what the cut-off attempt logged
    result = run_evaluation(job)
    assert result["already"] == 1 and result["logged"] > 10
    run = client.get_run(job.run_id)
    assert run.data.tags["eval/tpartial/done"]
    history = client.get_metric_history(job.run_id, "eval/tpartial/test/f1")
    assert [m.value for m in history] == [0.123]
    for key in (k for k in run.data.metrics if k.startswith("eval/tpartial/")):
        assert len(client.get_metric_history(job.run_id, key)) == 1, key
    again = plan_evaluation(SWEEP, str(spec), tracking_uri=sweep["uri"])
    assert [j.run_id for j in again.done] == [job.run_id] and len(again.jobs) == 1


def test_restorability_plans_one_evaluation_per_saved_masked_lm(no_ray, store, tmp_path):
    """The evaluation of mlm trials (their mlm/ directory): its own data, no key of the mlm trial's config."""
    from sweeps.evaluation.plan import plan_evaluation

    data = tmp_path / "s.csv"
    data.write_text("text,label\na good film,1\na bad film,0\n")
    run_id = fake_sweep(store, "mlms", trainable="mlm", config={"epochs": 1})
    MlflowClient(store).log_text(run_id, "{}", "mlm/config.json")
    fake_sweep(store, "mlms-none", trainable="mlm", config={"epochs": 1})
    spec = tmp_path / "r.yaml"
    spec.write_text(yaml.safe_dump({"name": "restore", "trainable": "restorability",
                                    "config": {"dataset": str(data), "n_tokens": 10, "k": 2},
                                    "search_space": {"max_length": {"type": "grid", "values": [16, 32]}}}))
    plan = plan_evaluation("mlms", str(spec), tracking_uri=store)
    assert [(j.run_id, j.name) for j in plan.jobs] == [(run_id, "restore_max_length16"), (run_id, "restore_max_length32")]
    assert plan.jobs[0].config == {"local_files_only": True, "dataset": str(data), "n_tokens": 10, "k": 2,
                                   "max_length": 16}
    from sweeps.launch.plan import PreflightError

    with pytest.raises(PreflightError, match="no saved model"):
        plan_evaluation("mlms-none", str(spec), tracking_uri=store)


def test_every_model_evaluation_declaration_fits_its_config():
    """A trainable's ModelEvaluation names keys of its own config and trainables that exist."""
    import dataclasses

    from trainables import TRAINABLES

    declared = {n: e.trainable.evaluation for n, e in TRAINABLES.items() if e.trainable.evaluation is not None}
    assert set(declared) == {"faithfulness", "faithfulness_transformer", "restorability"}
    for name, evaluation in declared.items():
        fields = {f.name for f in dataclasses.fields(TRAINABLES[name].trainable.config)}
        assert evaluation.model_key in fields and evaluation.model_key not in evaluation.knobs, name
        assert evaluation.knobs <= fields and set(evaluation.fixed) <= fields, name
        assert set(evaluation.model_trainables) <= set(TRAINABLES), name
    # faithfulness reads the model on its own data: no data or model key is a knob
    faith = declared["faithfulness"]
    assert not {"dataset", "synthetic_size", "max_vocab", "min_freq", "hidden_dim", "data_seed", "lr"} & faith.knobs
    assert {"cancel_out", "methods", "ig_steps", "deletion_step", "faith_metrics", "seed"} <= faith.knobs
    # the transformer's: finetune models, on their own data and tokenizer; the masked LM and k are knobs
    tfaith = declared["faithfulness_transformer"]
    assert tfaith.model_trainables == ("finetune",) and tfaith.model_artifact == "model"
    assert not {"dataset", "model", "max_length", "data_seed", "lr", "columns", "test_split"} & tfaith.knobs
    assert {"cancel_out", "methods", "mlm", "k", "faith_metrics", "seed"} <= tfaith.knobs
