"""Static checks that docker-compose.yml, the collector config, the builder manifest and .env.example agree.

Why: no docker engine runs on the test machines, so ``docker compose up`` is never exercised here;
these checks catch the drift that would break it (a port published but not listened on, a config
path that is not the mounted file, an env var the config reads but nobody documents, an image
release different from the one the end-to-end tests built).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
COMPOSE = REPO / "docker-compose.yml"
CONFIG = REPO / "collector" / "otelcol-config.yaml"
BACKENDS = sorted((REPO / "collector" / "backends").glob("*.yaml"))
JAEGER_CONFIG = REPO / "collector" / "jaeger-config.yaml"
MANIFEST = REPO / "collector" / "builder-config.yaml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"

ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
COMPOSE_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)")


def _strip_comments(text: str) -> str:
    return "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))


def env_refs(path: Path) -> dict[str, str | None]:
    """``${env:NAME:-default}`` references in a collector config (comments ignored) -> default."""
    return {m.group(1): m.group(2) for m in ENV_REF.finditer(_strip_comments(path.read_text()))}


def documented_vars() -> set[str]:
    """Names that .env.example sets or documents (``NAME=`` or ``# NAME=``)."""
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", ENV_EXAMPLE.read_text(), flags=re.M))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The parsed compose file."""
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def collector_service(compose: dict[str, Any]) -> dict[str, Any]:
    """The collector service."""
    return compose["services"]["otel-collector"]


def manifest_release() -> str:
    """dist.version of the builder manifest, after checking every module is at that one release."""
    manifest = yaml.safe_load(MANIFEST.read_text())
    version = manifest["dist"]["version"]
    minor = version.split(".")[1]
    for section in ("receivers", "processors", "exporters", "extensions"):
        for entry in manifest[section]:
            module_version = entry["gomod"].split()[1]
            assert module_version == f"v{version}", f"{entry['gomod']} is not at release {version}"
    for entry in manifest["providers"]:
        # confmap providers are 1.x modules released together with the 0.x ones (0.161 <-> 1.67).
        assert entry["gomod"].split()[1].startswith("v1."), entry
    assert minor.isdigit()
    return version


def compose_env(service: dict[str, Any]) -> dict[str, str]:
    """A service's ``environment`` as a dict (list or mapping form)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: str(v) for k, v in env.items()}


def published(service: dict[str, Any]) -> dict[int, int]:
    """container port -> host port for ``[host_ip:]host:container`` port strings."""
    out = {}
    for spec in service.get("ports") or []:
        parts = str(spec).split("#")[0].strip().rsplit(":", 2)
        out[int(parts[-1].split("/")[0])] = int(parts[-2])
    return out


def _port(endpoint: str) -> int:
    return int(endpoint.rsplit(":", 1)[1].split("/")[0])


def test_collector_image_release_equals_manifest_release(collector_service: dict[str, Any]) -> None:
    """The compose image runs the same collector release the tests build from the manifest."""
    image, tag = collector_service["image"].rsplit(":", 1)
    assert image == "otel/opentelemetry-collector-contrib"
    assert tag == manifest_release()


def test_compose_mounts_the_tested_config(collector_service: dict[str, Any]) -> None:
    """Every ``--config`` path in the command is a file of the repo mounted into the container."""
    command = collector_service["command"]
    args = command.split() if isinstance(command, str) else list(command)
    configs = [a.split("=", 1)[1] for a in args if a.startswith("--config=")]
    assert configs, args
    mounts: dict[str, Path] = {}
    for volume in collector_service["volumes"]:
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (REPO / source).resolve()
    resolved = []
    for path in configs:
        inside = [t for t in mounts if path == t or path.startswith(t + "/")]
        assert inside, f"{path} is not inside a bind mount"
        resolved.append(mounts[inside[0]] / Path(path).relative_to(inside[0]))
    assert resolved[0] == CONFIG.resolve()
    # Overlays referenced in the compose docs exist in the mounted directory.
    for overlay in re.findall(r"/etc/otelcol-bridge/(backends/[\w.-]+\.yaml)", COMPOSE.read_text()):
        assert (REPO / "collector" / overlay).is_file(), overlay


def test_ports_agree_with_config(compose: dict[str, Any], collector_service: dict[str, Any]) -> None:
    """Published ports are the ports the config listens on (via compose's env), on all interfaces."""
    env = compose_env(collector_service)
    refs = env_refs(CONFIG)
    ports = published(collector_service)
    for var in ("OTELCOL_OTLP_GRPC_ENDPOINT", "OTELCOL_OTLP_HTTP_ENDPOINT", "OTELCOL_HEALTH_ENDPOINT"):
        assert var in refs, f"config does not read {var}"
        assert env[var].startswith("0.0.0.0:"), f"{var} must listen on all interfaces in a container"
        assert _port(env[var]) in ports, f"{var}={env[var]} is not published"
        assert _port(env[var]) == _port(refs[var] or ""), f"{var}: compose port differs from the default"
    assert ports[4317] == 4317 and ports[4318] == 4318  # what the README's OTEL_EXPORTER_OTLP_ENDPOINT uses


def test_destinations_point_at_compose_services(
    compose: dict[str, Any], collector_service: dict[str, Any]
) -> None:
    """BRIDGE_RECEIVER_ENDPOINT / JAEGER_OTLP_ENDPOINT name services and ports that exist."""
    env = compose_env(collector_service)
    services = compose["services"]

    bridge_url = env["BRIDGE_RECEIVER_ENDPOINT"]
    match = re.fullmatch(r"http://([\w-]+):(\d+)", bridge_url)
    assert match, bridge_url
    host, port = match.groups()
    assert host in services
    bridge = services[host]
    command = bridge.get("command") or []
    assert "serve" in command and command[command.index("--port") + 1] == port
    assert command[command.index("--host") + 1] == "0.0.0.0"
    assert "INSPECT_OTEL_RECEIVER_TOKEN" in compose_env(bridge)
    assert "INSPECT_OTEL_RECEIVER_TOKEN" in env  # the collector sends the same token

    jhost, jport = env["JAEGER_OTLP_ENDPOINT"].split(":")
    assert jhost in services and jport == "4317"  # Jaeger v2 all-in-one OTLP/gRPC port
    assert services[jhost]["image"].startswith("jaegertracing/jaeger:2.")
    assert 16686 in published(services[jhost])

    needs = collector_service.get("depends_on") or {}
    assert host in needs and jhost in needs


def test_storage_dir_is_a_named_volume(compose: dict[str, Any], collector_service: dict[str, Any]) -> None:
    """The persistent queue directory outlives the container."""
    storage = compose_env(collector_service)["OTELCOL_STORAGE_DIR"]
    assert "OTELCOL_STORAGE_DIR" in env_refs(CONFIG)
    named = set(compose.get("volumes") or {})
    mounted = {str(v).split(":")[1]: str(v).split(":")[0] for v in collector_service["volumes"]}
    assert storage in mounted and mounted[storage] in named


def test_every_env_var_is_documented(compose: dict[str, Any]) -> None:
    """Each env var any config or the compose file reads is set or documented in .env.example."""
    documented = documented_vars()
    used: set[str] = set()
    for path in [CONFIG, *BACKENDS, JAEGER_CONFIG]:
        used |= env_refs(path).keys()
    used |= set(COMPOSE_REF.findall(_strip_comments(COMPOSE.read_text())))
    missing = sorted(used - documented)
    assert not missing, f"not in .env.example: {missing}"
    # And compose only sets collector variables the config reads (catches typos).
    config_vars = set().union(*(env_refs(p).keys() for p in [CONFIG, *BACKENDS]))
    unknown = set(compose_env(compose["services"]["otel-collector"])) - config_vars
    assert not unknown, f"compose sets variables no collector config reads: {sorted(unknown)}"


def test_config_has_no_secret_and_loopback_defaults() -> None:
    """Secrets only come from env; listeners default to loopback outside compose."""
    for path in [CONFIG, *BACKENDS]:
        text = _strip_comments(path.read_text())
        for header_value in re.findall(r"(?:Authorization|api-key|x-honeycomb-team):\s*(.+)", text, re.I):
            assert "${env:" in header_value, f"{path.name}: literal credential {header_value!r}"
    refs = env_refs(CONFIG)
    for var in ("OTELCOL_OTLP_GRPC_ENDPOINT", "OTELCOL_OTLP_HTTP_ENDPOINT", "OTELCOL_HEALTH_ENDPOINT"):
        assert (refs[var] or "").startswith("127.0.0.1:"), var


def test_dockerfile_runs_the_receiver() -> None:
    """The bridge image installs the package and runs ``otel-bridge serve`` on 0.0.0.0:4320."""
    text = DOCKERFILE.read_text()
    assert re.search(r"^FROM python:3\.11-slim\b", text, re.M)
    assert "pip install ." in text
    assert 'ENTRYPOINT ["otel-bridge"]' in text
    assert 'CMD ["serve", "--host", "0.0.0.0", "--port", "4320"]' in text
