"""cluster.yaml / cluster-onprem.yaml / docs/cluster.md, checked without any cloud or machine.

* Ray's own cluster-launcher path: ``prepare_config`` (merge with the provider's defaults,
  per-node-type worker bounds) then ``validate_config`` (Ray's JSON schema and consistency
  checks), as ``ray up`` does before it talks to a cloud; the network is blocked meanwhile.
* Every ``ray start`` / ``mlflow server`` command line in the files (and the documented
  basic-auth variant) is parsed by the installed Ray's / MLflow's own CLI, so a flag that
  this version does not have fails here, not on a cluster.
* Security properties: token auth on every node, dashboard on 127.0.0.1, a user-supplied
  security group on every AWS node type (Ray's default one opens SSH to 0.0.0.0/0), no
  credentials anywhere.
* Every ``xaisweep`` and ``ray`` command shown in docs/cluster.md parses with the real CLIs.
"""
from __future__ import annotations

import copy
import re
import shlex
import socket
import subprocess
from pathlib import Path
from typing import Any, Iterator

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cluster.yaml", "cluster-onprem.yaml"]
DOCS = ROOT / "docs" / "cluster.md"


def load(name: str) -> dict[str, Any]:
    return yaml.safe_load((ROOT / name).read_text())


@pytest.fixture()
def no_network(monkeypatch):
    """Any attempt to open a connection fails the test (the validation must be offline)."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"network access during config validation: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def prepared(name: str) -> dict[str, Any]:
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = prepare_config(copy.deepcopy(load(name)))
    validate_config(config)
    return config


# ------------------------------------------------------------ Ray's validation
@pytest.mark.parametrize("name", CONFIGS)
def test_ray_cluster_launcher_accepts_the_config(name, no_network):
    config = prepared(name)
    node_types = config["available_node_types"]
    assert config["head_node_type"] in node_types
    assert sum(t.get("min_workers", 0) for t in node_types.values()) <= config["max_workers"]
    for node_type in node_types.values():
        assert node_type["min_workers"] <= node_type["max_workers"]


@pytest.mark.parametrize("breakage", [
    lambda c: c.update(unknown_top_level_key=1),
    lambda c: c.update(head_node_type="no-such-type"),
    lambda c: c["available_node_types"]["gpu_worker"].update(resources={"GPU": 0.5}),
    lambda c: c["available_node_types"]["gpu_worker"].update(min_workers=9),
], ids=["unknown-key", "bad-head-type", "fractional-resource", "min-above-max_workers"])
def test_ray_validation_really_rejects_broken_configs(breakage, no_network):
    """The check above is not vacuous: the same functions reject broken variants of cluster.yaml."""
    from ray.autoscaler._private.util import prepare_config, validate_config

    config = load("cluster.yaml")
    breakage(config)
    with pytest.raises(Exception):
        validate_config(prepare_config(config))


def test_aws_head_is_cpu_only_with_gpu_workers_and_optional_spot_workers():
    config = prepared("cluster.yaml")
    assert config["provider"]["type"] == "aws"
    types = config["available_node_types"]
    head = types[config["head_node_type"]]
    assert head["resources"].get("GPU", 0) == 0 and head["max_workers"] == 0
    workers = {k: v for k, v in types.items() if k != config["head_node_type"]}
    assert workers and all(t["resources"]["GPU"] >= 1 for t in workers.values())
    assert any(t["max_workers"] > 0 and "InstanceMarketOptions" not in t["node_config"] for t in workers.values())
    spot = [t for t in workers.values() if t["node_config"].get("InstanceMarketOptions", {}).get("MarketType") == "spot"]
    assert spot, "no spot worker type"
    # no node type lets Ray create its default security group (SSH from 0.0.0.0/0)
    for name, node_type in types.items():
        assert node_type["node_config"].get("SecurityGroupIds"), name
    assert "security_group" not in config["provider"]


def test_onprem_config_is_a_fixed_local_cluster():
    raw = load("cluster-onprem.yaml")
    config = prepared("cluster-onprem.yaml")
    assert raw["provider"]["type"] == "local"
    (node_type,) = config["available_node_types"].values()
    assert node_type["min_workers"] == node_type["max_workers"] == len(raw["provider"]["worker_ips"])
    assert raw["auth"]["ssh_private_key"].startswith("~/")  # a path on the laptop, not a key


# ---------------------------------------------------------------- commands
_SEPARATORS = {";", "&&", "||", "|", "&", ">", ">>", "<", "2>&1", "(", ")"}


def _words(command: str) -> list[str]:
    lex = shlex.shlex(command, posix=True, punctuation_chars=";&|<>()")
    lex.whitespace_split = True
    return list(lex)


def invocations(command: str, program: str, sub: str) -> Iterator[tuple[list[str], list[str]]]:
    """``(env assignments, args)`` of every ``PROGRAM SUB ARGS`` in a shell command, also inside ``bash -c '...'``."""
    words = _words(command)
    for i, word in enumerate(words):
        if word == "-c" and i > 0 and words[i - 1] == "bash" and i + 1 < len(words):
            yield from invocations(words[i + 1], program, sub)
        if word == program and words[i + 1:i + 2] == [sub]:
            env, j = [], i - 1
            while j >= 0 and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", words[j]):
                env.insert(0, words[j])
                j -= 1
            args = []
            for arg in words[i + 2:]:
                if arg in _SEPARATORS:
                    break
                args.append(arg)
            yield env, args


def ray_start(args: list[str]):
    from ray.scripts.scripts import start

    return start.make_context("start", list(args), resilient_parsing=False)


def mlflow_server(args: list[str]):
    from mlflow.cli import server

    return server.make_context("server", list(args))


def start_commands(config: dict[str, Any], key: str) -> list[str]:
    return list(config[key])


@pytest.mark.parametrize("name", CONFIGS)
def test_every_command_is_valid_bash(name):
    config = load(name)
    keys = ["initialization_commands", "setup_commands", "head_setup_commands", "worker_setup_commands",
            "head_start_ray_commands", "worker_start_ray_commands"]
    for key in keys:
        for command in config.get(key) or []:
            out = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
            assert out.returncode == 0, f"{name} {key}: {command!r}\n{out.stderr}"


@pytest.mark.parametrize("name", CONFIGS)
def test_ray_start_lines_use_token_auth_and_a_localhost_dashboard(name):
    config = load(name)
    heads = [inv for c in config["head_start_ray_commands"] for inv in invocations(c, "ray", "start")]
    workers = [inv for c in config["worker_start_ray_commands"] for inv in invocations(c, "ray", "start")]
    assert len(heads) == 1 and len(workers) == 1
    (head_env, head_args), (worker_env, worker_args) = heads[0], workers[0]
    head, worker = ray_start(head_args).params, ray_start(worker_args).params  # flags of the installed Ray
    assert head["head"] and head["autoscaling_config"] == "~/ray_bootstrap_config.yaml"
    assert head["dashboard_host"] == "127.0.0.1"
    assert head["num_cpus"] == 0  # trials stay off the head
    assert worker["address"] == "$RAY_HEAD_IP:6379" and not worker["head"]
    assert "RAY_AUTH_MODE=token" in head_env and "RAY_AUTH_MODE=token" in worker_env
    assert config["file_mounts"]["~/.ray/auth_token"] == "~/.ray/auth_token"


def test_rays_own_dashboard_default_is_localhost():
    from ray.scripts.scripts import start

    (param,) = [p for p in start.params if p.name == "dashboard_host"]
    assert param.default in ("127.0.0.1", "localhost", "::1")


def _env_file(config: dict[str, Any], tmp_path: Path) -> dict[str, str]:
    """Run the parameter command (first setup command) in a scratch HOME and read back what it exports."""
    home = tmp_path / "home"
    home.mkdir()
    first = config["setup_commands"][0]
    script = f"{first}\nset -a; source ~/xaisweep.env; env -0"
    out = subprocess.run(["bash", "-c", script], capture_output=True, env={"HOME": str(home), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    env = dict(item.split("=", 1) for item in out.stdout.decode().split("\0") if "=" in item)
    return {k: v for k, v in env.items() if k.startswith(("XAISWEEP_", "RAY_", "TOKENIZERS"))} | {"HOME": str(home)}


@pytest.mark.parametrize("name", CONFIGS)
def test_mlflow_server_on_the_head_sqlite_and_artifacts_destination(name, tmp_path):
    config = load(name)
    servers = [inv for c in config["head_start_ray_commands"] for inv in invocations(c, "mlflow", "server")]
    assert len(servers) == 1
    params = mlflow_server(servers[0][1]).params  # flags of the installed MLflow
    assert params["backend_store_uri"] == "$XAISWEEP_MLFLOW_BACKEND"
    assert params["artifacts_destination"] == "$XAISWEEP_ARTIFACTS"
    assert params["port"] == 5000 and params["serve_artifacts"]
    env = _env_file(config, tmp_path)
    assert env["XAISWEEP_MLFLOW_BACKEND"] == f"sqlite:///{env['HOME']}/xaisweep/mlflow.db"  # the head's disk
    assert env["XAISWEEP_ARTIFACTS"] and env["XAISWEEP_STORAGE"]
    assert env["RAY_AUTH_MODE"] == "token"
    # the driver on the head gets a tracking URI the workers can reach (not 127.0.0.1)
    assert any("MLFLOW_TRACKING_URI=http://$(hostname -I" in c for c in config["head_setup_commands"])


@pytest.mark.parametrize("name", CONFIGS)
def test_the_project_is_installed_at_pinned_versions(name, tmp_path):
    import mlflow
    import ray

    config = load(name)
    env = _env_file(config, tmp_path)
    spec = env["XAISWEEP_PIP_SPEC"]
    assert spec.startswith("xaisweep") and (re.search(r"@v\d+\.\d+\.\d+$", spec) or "==" in spec or spec.endswith(".whl"))
    # the cluster runs the Ray and MLflow of this checkout's environment (ray up and the clients need a match)
    assert env["XAISWEEP_RAY_VERSION"] == ray.__version__
    assert env["XAISWEEP_MLFLOW_VERSION"] == mlflow.__version__
    makefile_torch = re.search(r"^TORCH\s*\?=\s*torch==(\S+)", (ROOT / "Makefile").read_text(), re.M)
    if makefile_torch:
        assert env["XAISWEEP_TORCH_VERSION"] == makefile_torch.group(1)
    installs = " ".join(config.get("setup_commands", []) + config.get("head_setup_commands", [])
                        + config.get("worker_setup_commands", []))
    assert '"$XAISWEEP_PIP_SPEC"' in installs and "==$XAISWEEP_RAY_VERSION" in installs


_SECRET_PATTERNS = [
    re.compile(r"AKIA[0-9A-Z]{16}"),                                   # AWS access key id
    re.compile(r"aws_secret_access_key", re.I),
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"\b[0-9a-f]{64}\b"),                                   # a Ray token
    re.compile(r"(password|passwd|secret)\s*[:=]\s*['\"]?(?!\s*$)(?![A-Z-]+\b)[^\s'\"$<(]{6,}", re.I),
    re.compile(r"postgres(ql)?://[^/\s:@]+:[^@\s]+@"),                 # password inside a DB URI
]


@pytest.mark.parametrize("name", CONFIGS + ["docs/cluster.md"])
def test_no_credentials_in_cluster_files_or_docs(name):
    text = (ROOT / name).read_text()
    for pattern in _SECRET_PATTERNS:
        assert not pattern.search(text), f"{name}: looks like a credential: {pattern.search(text).group(0)!r}"


# -------------------------------------------------------------------- docs
def _doc_commands(program: str) -> list[str]:
    """Every line of a fenced code block in docs/cluster.md that starts with ``program``."""
    lines, block = [], False
    for raw in DOCS.read_text().splitlines():
        line = raw.strip()
        if line.startswith("```"):
            block = not block
            continue
        if block and line.startswith(program + " "):
            lines.append(line.split("  #")[0].strip())
    return lines


def test_docs_walk_through_the_whole_cluster_workflow():
    text = DOCS.read_text()
    for needle in ["ray up cluster.yaml", "--address auto", "ray exec cluster.yaml", "ray attach cluster.yaml -p 5000",
                   "ray dashboard cluster.yaml", "xaisweep best", "xaisweep reproduce", "--tracking-uri http://127.0.0.1:5000",
                   "ray down cluster.yaml", "postgresql://", "--artifacts-destination", "basic-auth",
                   "MLFLOW_TRACKING_USERNAME", "RAY_AUTH_MODE=token", "cluster-onprem.yaml", "max_failures"]:
        assert needle in text, needle


def test_every_xaisweep_command_in_the_docs_parses():
    from sweeps.cli import build_parser

    commands = _doc_commands("xaisweep")
    for exec_line in _doc_commands("ray exec"):
        commands += [c for c in shlex.split(exec_line) if c.startswith("xaisweep ")]
    assert len(commands) >= 4
    for command in commands:
        try:
            build_parser().parse_args(shlex.split(command)[1:])
        except SystemExit:
            pytest.fail(f"docs/cluster.md: `{command}` is not accepted by the xaisweep CLI")


def test_every_ray_command_in_the_docs_parses():
    from ray.scripts.scripts import cli

    commands = _doc_commands("ray")
    assert len(commands) >= 6
    for command in commands:
        words = shlex.split(command)
        sub = cli.get_command(None, words[1])
        assert sub is not None, command
        sub.make_context(words[1], words[2:])


def test_documented_basic_auth_server_command_parses():
    (line,) = [ln for ln in DOCS.read_text().splitlines() if "--app-name basic-auth" in ln and "setsid" in ln]
    ((env, args),) = list(invocations(line.strip(), "mlflow", "server"))
    params = mlflow_server(args).params
    assert params["app_name"] == "basic-auth" and params["port"] == 5000
    out = subprocess.run(["bash", "-n", "-c", line.strip()], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
