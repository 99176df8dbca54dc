"""deploy/kubernetes/, docker-compose.yml and deploy/Dockerfile against the code they run.

Every AGNEXT_* variable they set is a setting (``BrokerSettings``, its ``*_FILE`` twin) or a
variable of the command line, with a value that the setting or option takes; every flag is an
option of its command; the probes and health checks ask paths the health server serves, on the
port AGNEXT_HEALTH_PORT says; the grace periods outlast the drain timeout; names that point at
each other (Secret keys, ConfigMap, selectors, the KEDA target, queue names) match. The two
health checks also run, against a real health server.
"""

from __future__ import annotations

import asyncio
import json
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import click
import pytest

from agnext_broker.application.broker import BrokerSettings, SettingsError
from agnext_broker.application.broker._health import HealthServer
from agnext_broker.application.broker._metrics import Metrics
from agnext_broker.application.broker._names import Names
from agnext_broker.application.broker._settings import variable
from agnext_broker.cli import cli

yaml = pytest.importorskip("yaml", reason="the manifests are read with PyYAML (pyyaml)")

ROOT = Path(__file__).resolve().parents[2]
KUBERNETES = ROOT / "deploy" / "kubernetes"
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
HEALTH_PATHS = ("/healthz", "/readyz", "/metrics")
SETTINGS = {variable(name): name for name in BrokerSettings.model_fields}
TALLY_TYPES = ("coordinator", "tallier", "reporter")


# --- what the code offers ------------------------------------------------------------------------


def _commands(group: click.Group, prefix: tuple[str, ...] = ()) -> Iterator[Any]:
    for name, command in group.commands.items():
        yield (*prefix, name), command
        if isinstance(command, click.Group):
            yield from _commands(command, (*prefix, name))


def _envvars(param: click.Parameter) -> list[str]:
    if param.envvar is None:
        return []
    return [param.envvar] if isinstance(param.envvar, str) else list(param.envvar)


def cli_variables() -> dict[str, click.Parameter]:
    """Every environment variable a command of ``agnext-broker`` reads itself."""
    return {
        envvar: param
        for _, command in _commands(cli)
        for param in command.params
        for envvar in _envvars(param)
    }


def check_variable(name: str, value: str) -> None:
    """``name`` is a setting's variable (or its ``*_FILE``) or a CLI variable, and takes
    ``value``."""
    if name in SETTINGS:
        field = SETTINGS[name]
        if field in ("amqp_url", "redis_url") or "$" in value:
            return
        try:
            BrokerSettings.from_env(**{field: value})
        except SettingsError as e:
            raise AssertionError(f"{name}={value!r} is refused: {e}") from None
        return
    if name.endswith("_FILE") and name.removesuffix("_FILE") in SETTINGS:
        assert PurePosixPath(value).is_absolute(), f"{name}={value!r}: give an absolute path"
        return
    params = cli_variables()
    assert name in params, (
        f"{name} is neither a setting (BrokerSettings: {sorted(SETTINGS)}, or their *_FILE) nor "
        f"a variable of the command line ({sorted(params)})"
    )
    param = params[name]
    try:
        param.type.convert(value, param, None)
    except click.BadParameter as e:
        raise AssertionError(f"{name}={value!r}: {e.message}") from None


def check_command(argv: list[str]) -> click.Command:
    """``argv`` (after the ``agnext-broker`` entry point) names a command and only its options;
    returns the command."""
    command: click.Command = cli
    rest = list(argv)
    while isinstance(command, click.Group):
        assert rest, f"{argv}: names no command of {sorted(command.commands)}"
        name = rest.pop(0)
        assert name in command.commands, f"{argv}: no command {name!r} ({sorted(command.commands)})"
        command = command.commands[name]
    options = {
        opt: param
        for param in command.params
        if isinstance(param, click.Option)
        for opt in (*param.opts, *param.secondary_opts)
    }
    i = 0
    while i < len(rest):
        token = rest[i]
        i += 1
        if not token.startswith("-"):
            continue
        flag, has_value, value = token.partition("=")
        assert flag in options, f"{argv}: {flag} is not an option of {command.name}"
        option = options[flag]
        if not (option.is_flag or has_value):
            assert i < len(rest), f"{argv}: {flag} needs a value"
            value, i = rest[i], i + 1
        if has_value or not option.is_flag:
            option.type.convert(value, option, None)
    return command


def health_status(path: str, ready: bool = True) -> int:
    """What the health server answers a GET of ``path`` with."""
    server = HealthServer("127.0.0.1", 0, lambda: (ready, {}), Metrics())
    status, _, _ = server._answer("GET", path)
    return status


def settings_default(name: str) -> Any:
    return BrokerSettings.model_fields[name].default


# --- reading the files ---------------------------------------------------------------------------


def manifests() -> dict[str, list[dict[str, Any]]]:
    return {
        path.name: [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]
        for path in sorted(KUBERNETES.glob("*.yaml"))
    }


def resources() -> list[dict[str, Any]]:
    return [
        doc for name, docs in manifests().items() if name != "kustomization.yaml" for doc in docs
    ]


def resource(kind: str) -> dict[str, Any]:
    found = [doc for doc in resources() if doc["kind"] == kind]
    assert len(found) == 1, f"{len(found)} resources of kind {kind} in {KUBERNETES}"
    return found[0]


def configmap() -> dict[str, str]:
    return dict(resource("ConfigMap")["data"])


def worker_container() -> dict[str, Any]:
    containers = resource("Deployment")["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    return dict(containers[0])


def compose() -> dict[str, Any]:
    return dict(yaml.safe_load(COMPOSE.read_text()))


def dockerfile() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (continuation lines joined, comments dropped)."""
    instructions, current = [], ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        keyword, _, rest = (current + line).partition(" ")
        instructions.append((keyword.upper(), rest.strip()))
        current = ""
    return instructions


def dockerfile_env() -> dict[str, str]:
    env = {}
    for keyword, rest in dockerfile():
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    return env


def dockerfile_one(keyword: str) -> str:
    found = [rest for k, rest in dockerfile() if k == keyword]
    assert len(found) == 1, f"{len(found)} {keyword} instructions in {DOCKERFILE}"
    return found[0]


def healthcheck_argv() -> list[str]:
    _, _, command = dockerfile_one("HEALTHCHECK").partition(" CMD ")
    argv = json.loads(command)
    assert isinstance(argv, list), "HEALTHCHECK CMD in exec form"
    return [str(a) for a in argv]


def seconds(duration: str | int) -> float:
    """A compose duration ("45s", "1m30s") in seconds."""
    if isinstance(duration, int):
        return float(duration)
    units = {"h": 3600, "m": 60, "s": 1, "ms": 0.001}
    parts = re.findall(r"(\d+(?:\.\d+)?)(ms|h|m|s)", duration)
    assert "".join(n + u for n, u in parts) == duration, f"duration {duration!r}"
    return sum(float(n) * units[u] for n, u in parts)


def agnext_services() -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose()["services"].items()
        if service.get("image", "").startswith("agnext-broker")
    }


# --- Kubernetes ----------------------------------------------------------------------------------


def test_every_manifest_parses_and_is_namespace_agnostic() -> None:
    found = manifests()
    assert {"configmap.yaml", "secret.yaml", "deployment.yaml", "kustomization.yaml"} <= set(found)
    for name, docs in found.items():
        assert docs, f"{name} is empty"
        for doc in docs:
            assert {"apiVersion", "kind"} <= set(doc), f"{name}: {doc}"
            if doc["kind"] != "Kustomization":
                assert doc["metadata"]["name"], f"{name}: a {doc['kind']} without a name"
                assert "namespace" not in doc["metadata"], f"{name} names a namespace"
    kinds = {doc["kind"] for doc in resources()}
    assert {
        "ConfigMap",
        "Secret",
        "Deployment",
        "PodDisruptionBudget",
        "ScaledObject",
        "TriggerAuthentication",
    } <= kinds


def test_the_kustomization_lists_every_manifest() -> None:
    (kustomization,) = manifests()["kustomization.yaml"]
    listed = set(kustomization["resources"])
    present = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present
    assert "namespace" not in kustomization


def test_every_kubernetes_variable_is_real_and_takes_its_value() -> None:
    variables = dict(configmap())
    for entry in worker_container().get("env", []):
        variables[entry["name"]] = entry.get("value", "$(from a reference)")
    agnext = {k: v for k, v in variables.items() if k.startswith("AGNEXT_")}
    assert agnext == variables, "only AGNEXT_* variables"
    for name, value in agnext.items():
        check_variable(name, str(value))
    # The settings load from the ConfigMap as a whole (the secrets stand in as plain values).
    plain = {SETTINGS[k]: v for k, v in agnext.items() if k in SETTINGS and k != "AGNEXT_WORKER_ID"}
    BrokerSettings.from_env(**plain)


def test_the_worker_runs_a_real_command_with_its_app() -> None:
    container = worker_container()
    assert "command" not in container, "the image's entry point (agnext-broker) stays"
    command = check_command(list(container["args"]))
    assert command.name == "worker"
    assert configmap()["AGNEXT_APP"] == "agnext_broker.examples.tally:register"
    ids = [e for e in container["env"] if e["name"] == "AGNEXT_WORKER_ID"]
    assert len(ids) == 1
    assert ids[0]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    refs = [ref["configMapRef"]["name"] for ref in container["envFrom"]]
    assert refs == [resource("ConfigMap")["metadata"]["name"]]


def test_the_probes_ask_what_the_health_server_serves_on_its_port() -> None:
    container = worker_container()
    health_port = int(configmap()["AGNEXT_HEALTH_PORT"])
    assert health_port > 0, "AGNEXT_HEALTH_PORT=0 turns the health server off"
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    probes = {kind: container[kind] for kind in ("startupProbe", "livenessProbe", "readinessProbe")}
    for kind, probe in probes.items():
        get = probe["httpGet"]
        port = ports[get["port"]] if isinstance(get["port"], str) else get["port"]
        assert port == health_port, f"{kind} asks port {port}, AGNEXT_HEALTH_PORT is {health_port}"
        assert health_status(get["path"]) == 200, f"{kind}: the health server has no {get['path']}"
    assert probes["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert probes["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert health_status("/readyz", ready=False) == 503, "readiness fails while not ready"
    annotations = resource("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert int(annotations["prometheus.io/port"]) == health_port
    assert health_status(annotations["prometheus.io/path"]) == 200


def test_the_grace_period_outlasts_the_drain() -> None:
    drain = float(configmap().get("AGNEXT_DRAIN_TIMEOUT", settings_default("drain_timeout")))
    grace = resource("Deployment")["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace >= drain + 10, f"terminationGracePeriodSeconds {grace}, drain timeout {drain}"


def test_the_secret_is_mounted_where_the_file_variables_point() -> None:
    secret = resource("Secret")
    keys = set(secret["stringData"])
    pod = resource("Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {
        m["mountPath"]: volumes[m["name"]]
        for m in worker_container()["volumeMounts"]
        if "secret" in volumes[m["name"]]
    }
    files = {k: v for k, v in configmap().items() if k.endswith("_FILE")}
    assert set(files) == {"AGNEXT_AMQP_URL_FILE", "AGNEXT_REDIS_URL_FILE"}
    assert not {"AGNEXT_AMQP_URL", "AGNEXT_REDIS_URL"} & set(configmap()), "secrets as files"
    for name, path in files.items():
        directory, file = str(PurePosixPath(path).parent), PurePosixPath(path).name
        assert directory in mounts, f"{name}={path}: nothing is mounted at {directory}"
        volume = mounts[directory]["secret"]
        assert volume["secretName"] == secret["metadata"]["name"]
        items = {item["path"]: item["key"] for item in volume.get("items", [])}
        key = items.get(file, file)
        assert key in keys, f"{name}={path}: the Secret has no key {key!r}"
    schemes = {"amqp-url": ("amqp", "amqps"), "redis-url": ("redis", "rediss")}
    for url_key, allowed in schemes.items():
        assert urlsplit(secret["stringData"][url_key]).scheme in allowed


def test_the_pod_runs_as_the_images_user_without_privileges() -> None:
    pod = resource("Deployment")["spec"]["template"]["spec"]
    container = worker_container()
    uid, _, gid = dockerfile_one("USER").partition(":")
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] == int(uid)
    assert pod["securityContext"]["runAsGroup"] == int(gid)
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False
    assert context["readOnlyRootFilesystem"] is True
    assert context["capabilities"]["drop"] == ["ALL"]
    assert "/tmp" in {m["mountPath"] for m in container["volumeMounts"]}
    assert {"requests", "limits"} <= set(container["resources"])


def test_selectors_and_the_disruption_budget_match_the_pods() -> None:
    deployment = resource("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    budget = resource("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"].get("maxUnavailable", 1) < deployment["spec"]["replicas"]
    assert deployment["spec"]["replicas"] == 3


def test_keda_scales_the_deployment_on_the_partition_queues() -> None:
    scaled = resource("ScaledObject")
    deployment = resource("Deployment")
    assert scaled["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    partitions = int(configmap().get("AGNEXT_PARTITIONS", settings_default("partitions")))
    assert scaled["spec"]["minReplicaCount"] <= deployment["spec"]["replicas"]
    assert scaled["spec"]["maxReplicaCount"] <= partitions, "a worker beyond that holds nothing"
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "rabbitmq"
    metadata = trigger["metadata"]
    assert metadata["mode"] == "QueueLength"
    assert int(metadata["value"]) > 0
    assert metadata["useRegex"] == "true"
    assert metadata["protocol"] == "http", "useRegex needs the management API"
    pattern = re.compile(metadata["queueName"])
    names = Names(configmap()["AGNEXT_NAMESPACE"])
    for agent_type in TALLY_TYPES:
        for partition in (0, 1, partitions - 1):
            queue = names.partition_queue(agent_type, partition)
            assert pattern.fullmatch(queue), f"{metadata['queueName']} leaves out {queue}"
    for other in (
        names.reply_queue("agnext-worker-5d8f9-x2x7q"),
        names.dead_letter_queue,
        Names("other").partition_queue("tallier", 0),
    ):
        assert not pattern.fullmatch(other), f"{metadata['queueName']} takes in {other}"
    authentication = resource("TriggerAuthentication")
    assert trigger["authenticationRef"]["name"] == authentication["metadata"]["name"]
    (host,) = authentication["spec"]["secretTargetRef"]
    secret = resource("Secret")
    assert host["parameter"] == "host"
    assert host["name"] == secret["metadata"]["name"]
    assert urlsplit(secret["stringData"][host["key"]]).scheme in ("http", "https")


# --- docker-compose.yml --------------------------------------------------------------------------


def test_compose_runs_the_servers_three_workers_and_a_one_shot_demo() -> None:
    spec = compose()
    services = spec["services"]
    assert str(spec["version"]).startswith("2."), "a format docker-compose 1.x knows, with scale"
    assert services["rabbitmq"]["image"] == "rabbitmq:3-management"
    assert services["redis"]["image"] == "redis:7"
    redis_command = services["redis"]["command"]
    assert redis_command[redis_command.index("--appendonly") + 1] == "yes"
    worker, demo = services["worker"], services["demo"]
    assert worker["scale"] == 3
    for service in (worker, demo):
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert (ROOT / service["build"]["context"] / service["build"]["dockerfile"]).is_file()
        assert "BASE_IMAGE" in service["build"]["args"]
    assert check_command(worker["command"]).name == "worker"
    assert check_command(demo["command"]).name == "demo"
    assert demo["restart"] == "no"
    for name, service in services.items():
        for needed, condition in service.get("depends_on", {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {needed}"
            assert "test" in services[needed]["healthcheck"], f"{needed} has no healthcheck"
    assert set(worker["depends_on"]) == {"rabbitmq", "redis"}
    assert set(demo["depends_on"]) == {"worker"}


def test_every_compose_variable_is_real_and_the_urls_name_its_services() -> None:
    services = compose()["services"]
    for name, service in agnext_services().items():
        environment = service["environment"]
        for variable_name, value in environment.items():
            check_variable(variable_name, str(value))
        for key in ("AGNEXT_AMQP_URL", "AGNEXT_REDIS_URL"):
            host = urlsplit(environment[key]).hostname
            assert host in services, f"{name}: {key} names {host}, which is no service"
    worker = services["worker"]["environment"]
    credentials = urlsplit(worker["AGNEXT_AMQP_URL"])
    rabbitmq = services["rabbitmq"]["environment"]
    assert (credentials.username, credentials.password) == (
        rabbitmq["RABBITMQ_DEFAULT_USER"],
        rabbitmq["RABBITMQ_DEFAULT_PASS"],
    )


def test_compose_gives_the_workers_longer_than_their_drain() -> None:
    worker = compose()["services"]["worker"]
    drain = float(worker["environment"].get("AGNEXT_DRAIN_TIMEOUT", 30))
    assert seconds(worker["stop_grace_period"]) >= drain + 10


def test_the_compose_health_check_asks_the_health_port() -> None:
    worker = compose()["services"]["worker"]
    assert int(worker["environment"]["AGNEXT_HEALTH_PORT"]) > 0
    test = worker["healthcheck"]["test"]
    assert test[:2] == ["CMD", "python"]
    paths = [p for p in HEALTH_PATHS if p in test[-1]]
    assert paths == ["/readyz"], test
    assert "AGNEXT_HEALTH_PORT" in test[-1]


# --- deploy/Dockerfile -------------------------------------------------------------------------


def test_the_dockerfile_is_multi_stage_on_a_base_image_argument() -> None:
    instructions = dockerfile()
    assert instructions[0] == ("ARG", "BASE_IMAGE=agnext-base:bookworm")
    froms = [rest for keyword, rest in instructions if keyword == "FROM"]
    assert len(froms) == 2, froms
    assert all(f.startswith("${BASE_IMAGE}") for f in froms), froms
    assert froms[0].endswith(" AS builder")
    copied = [rest for keyword, rest in instructions if keyword == "COPY"]
    assert any(c.startswith("--from=builder ") for c in copied)


def test_the_image_runs_the_command_line_as_a_user_with_its_health_port() -> None:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    entrypoint = json.loads(dockerfile_one("ENTRYPOINT"))
    assert entrypoint == ["agnext-broker"]
    assert entrypoint[0] in scripts
    assert check_command(json.loads(dockerfile_one("CMD"))).name == "worker"
    uid, _, gid = dockerfile_one("USER").partition(":")
    assert uid.isdigit(), "a numeric user, as runAsNonRoot needs"
    assert gid.isdigit()
    assert int(uid) > 0
    env = dockerfile_env()
    for name, value in env.items():
        if name.startswith("AGNEXT_"):
            check_variable(name, value)
    assert int(dockerfile_one("EXPOSE")) == int(env["AGNEXT_HEALTH_PORT"])
    argv = healthcheck_argv()
    assert argv[:2] == ["python", "-c"]
    assert [p for p in HEALTH_PATHS if p in argv[2]] == ["/healthz"]


async def _run_health_check(argv: list[str], port: int) -> int:
    env = {"AGNEXT_HEALTH_PORT": str(port), "PATH": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        *argv[1:],
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    return await asyncio.wait_for(process.wait(), 20)


@pytest.mark.parametrize("source", ["Dockerfile", "docker-compose.yml"])
async def test_the_health_checks_pass_on_a_health_server_and_fail_without(source: str) -> None:
    if source == "Dockerfile":
        argv = healthcheck_argv()
    else:
        argv = list(compose()["services"]["worker"]["healthcheck"]["test"][1:])
    ready = [True]
    details: Mapping[str, object] = {}
    server = HealthServer("127.0.0.1", 0, lambda: (ready[0], details), Metrics())
    await server.start()
    try:
        assert await _run_health_check(argv, server.port) == 0
        ready[0] = False  # /healthz does not care; /readyz says 503
        expected = 0 if "/healthz" in argv[-1] else 1
        assert await _run_health_check(argv, server.port) == expected
    finally:
        port = server.port
        await server.close()
    assert await _run_health_check(argv, port) != 0
