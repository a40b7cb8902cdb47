"""Tests for the deployment files: Dockerfile, systemd units, Compose and Kubernetes.

No container engine runs here, so the Dockerfile is checked by reading it, and its
HEALTHCHECK command is run against a real OpsServer. The systemd units go through
``systemd-analyze verify`` where that tool exists.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import SecretStr

from staffsync.logs import is_sensitive_key
from staffsync.ops import OpsServer
from staffsync.settings import OpsSettings, load_settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD = DEPLOY / "systemd"
UNITS = ("staffsync.service", "staffsync-resync.service")
PLACEHOLDER = re.compile(r"^REPLACE_WITH_[A-Z0-9_]+$")
DEFAULT_GRACE = OpsSettings().shutdown_grace_seconds
IMAGE_UID = 10001
INSTALLED_BINARY = "/opt/staffsync/bin/staffsync"


def _is_secret_setting(name: str) -> bool:
    """Tell whether a secret file name ``<section>__<key>`` names a SecretStr setting."""
    section_name, _, key = name.partition("__")
    section = getattr(load_settings(None), section_name, None)
    if section is None or key not in type(section).model_fields:
        return False
    annotation = type(section).model_fields[key].annotation
    return SecretStr in getattr(annotation, "__args__", (annotation,))


def _yaml_files() -> list[Path]:
    return sorted([*DEPLOY.rglob("*.yaml"), *DEPLOY.rglob("*.yml")])


def _manifests() -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    for path in sorted(KUBERNETES.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text()):
            documents[document["kind"]] = document
    return documents


class TestYamlFiles:
    """Every YAML file under deploy/ parses into mappings."""

    @pytest.mark.parametrize("path", _yaml_files(), ids=lambda path: path.name)
    def test_parses(self, path: Path) -> None:
        """The file contains at least one document and each is a mapping."""
        documents = list(yaml.safe_load_all(path.read_text()))

        assert documents != []
        for document in documents:
            assert isinstance(document, dict)


class TestKubernetes:
    """The manifests keep the invariants the daemon relies on."""

    @pytest.fixture
    def manifests(self) -> dict[str, dict[str, Any]]:
        return _manifests()

    @pytest.fixture
    def pod(self, manifests: dict[str, dict[str, Any]]) -> dict[str, Any]:
        spec: dict[str, Any] = manifests["Deployment"]["spec"]["template"]["spec"]
        return spec

    @pytest.fixture
    def container(self, pod: dict[str, Any]) -> dict[str, Any]:
        [container] = pod["containers"]
        result: dict[str, Any] = container
        return result

    def test_two_replicas(self, manifests: dict[str, dict[str, Any]]) -> None:
        """The Deployment runs two replicas that take turns through the run lock."""
        assert manifests["Deployment"]["spec"]["replicas"] == 2

    def test_probes(self, container: dict[str, Any]) -> None:
        """Liveness and startup use /healthz, readiness /readyz, all on the ops port."""
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
            assert container[probe]["httpGet"]["port"] == "ops"
        assert container["ports"] == [{"name": "ops", "containerPort": 9464, "protocol": "TCP"}]

    def test_listen_matches_port(self, container: dict[str, Any]) -> None:
        """The daemon listens on all interfaces at the container port."""
        env = {item["name"]: item["value"] for item in container["env"]}

        assert env["STAFFSYNC_OPS__LISTEN"] == "0.0.0.0:9464"

    def test_pod_security(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        """The pod runs as the image's non-root UID under RuntimeDefault seccomp."""
        security = pod["securityContext"]

        assert security["runAsNonRoot"] is True
        assert security["runAsUser"] == IMAGE_UID
        assert security["seccompProfile"] == {"type": "RuntimeDefault"}
        assert pod["automountServiceAccountToken"] is False

    def test_container_security(self, container: dict[str, Any]) -> None:
        """The container has a read-only root, no privilege escalation and no capabilities."""
        security = container["securityContext"]

        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        assert security["capabilities"] == {"drop": ["ALL"]}

    def test_writable_paths_are_volumes(self, container: dict[str, Any]) -> None:
        """/tmp and the state folder are volumes, as the root file system is read-only."""
        mounts = {mount["mountPath"] for mount in container["volumeMounts"]}

        assert "/tmp" in mounts
        assert "/var/lib/staffsync" in mounts

    def test_resources(self, container: dict[str, Any]) -> None:
        """Requests are set and memory is limited."""
        resources = container["resources"]

        assert set(resources["requests"]) == {"cpu", "memory"}
        assert "memory" in resources["limits"]

    def test_termination_grace(self, pod: dict[str, Any]) -> None:
        """Kubernetes waits 30 s, longer than the configured shutdown grace time."""
        config = tomllib.loads(_manifests()["ConfigMap"]["data"]["staffsync.toml"])

        assert pod["terminationGracePeriodSeconds"] == 30
        assert config["ops"]["shutdown_grace_seconds"] < pod["terminationGracePeriodSeconds"]
        assert pod["terminationGracePeriodSeconds"] > DEFAULT_GRACE

    def test_secrets_mount(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        """STAFFSYNC_SECRETS_DIR names the Secret's mount, which is not /run/secrets."""
        env = {item["name"]: item["value"] for item in container["env"]}
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}

        assert env["STAFFSYNC_SECRETS_DIR"] == mounts["secrets"]
        assert not mounts["secrets"].startswith("/run/secrets")
        assert volumes["secrets"]["secret"]["secretName"] == "staffsync-secrets"

    def test_config_mount(self, pod: dict[str, Any], container: dict[str, Any]) -> None:
        """STAFFSYNC_CONFIG points at the ConfigMap's file."""
        env = {item["name"]: item["value"] for item in container["env"]}
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}
        volumes = {volume["name"]: volume for volume in pod["volumes"]}

        assert env["STAFFSYNC_CONFIG"] == f"{mounts['config']}/staffsync.toml"
        assert volumes["config"]["configMap"]["name"] == "staffsync-config"

    def test_secret_only_placeholders(self, manifests: dict[str, dict[str, Any]]) -> None:
        """The example Secret contains placeholders only, under names the settings read."""
        secret = manifests["Secret"]

        assert "data" not in secret
        for name, value in secret["stringData"].items():
            assert PLACEHOLDER.match(value), f"{name} holds {value!r}, not a placeholder"
            assert _is_secret_setting(name), f"{name} is not a secret setting"

    def test_configmap_is_valid_config(
        self, tmp_path: Path, container: dict[str, Any], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The ConfigMap's TOML loads, uses PostgreSQL and reads the mounted export."""
        monkeypatch.delenv("STAFFSYNC_STATE__URL", raising=False)
        path = tmp_path / "staffsync.toml"
        path.write_text(_manifests()["ConfigMap"]["data"]["staffsync.toml"])
        mounts = {mount["name"]: mount["mountPath"] for mount in container["volumeMounts"]}

        settings = load_settings(path)

        assert settings.state.url.startswith("postgresql+psycopg://")
        assert ":" not in settings.state.url.split("://", 1)[1].split("@", 1)[0]
        assert settings.source.path.parent == Path(mounts["hr-exports"])

    def test_service_selects_pods(self, manifests: dict[str, dict[str, Any]]) -> None:
        """The metrics Service selects the Deployment's pods on the ops port."""
        service = manifests["Service"]["spec"]
        labels = manifests["Deployment"]["spec"]["template"]["metadata"]["labels"]

        assert service["selector"] == labels
        assert service["ports"][0]["targetPort"] == "ops"

    def test_manifests_carry_no_namespace(self, manifests: dict[str, dict[str, Any]]) -> None:
        """Every manifest leaves the namespace to kubectl or kustomize."""
        for kind, manifest in manifests.items():
            assert "namespace" not in manifest.get("metadata", {}), kind

    def test_kustomization_lists_all(self) -> None:
        """kustomization.yaml lists every other manifest in the folder."""
        kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
        others = {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}

        assert set(kustomization["resources"]) == others

    def test_secret_volume_layout_loads(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Settings read a secret through the symlinks a Kubernetes secret volume uses."""
        timestamped = tmp_path / "..2026_12_04_10_00_00.000000001"
        timestamped.mkdir()
        (timestamped / "staffbase__client_secret").write_text("from-kubernetes\n")
        (tmp_path / "..data").symlink_to(timestamped.name)
        (tmp_path / "staffbase__client_secret").symlink_to("..data/staffbase__client_secret")
        monkeypatch.setenv("STAFFSYNC_SECRETS_DIR", str(tmp_path))

        settings = load_settings(None)

        assert settings.staffbase.client_secret is not None
        assert settings.staffbase.client_secret.get_secret_value().strip() == "from-kubernetes"


class TestCompose:
    """docker-compose.yml runs staffsync locked down next to PostgreSQL 16."""

    @pytest.fixture
    def compose(self) -> dict[str, Any]:
        document: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
        return document

    def test_postgres(self, compose: dict[str, Any]) -> None:
        """PostgreSQL 16 has a volume and a pg_isready health check."""
        postgres = compose["services"]["postgres"]

        assert postgres["image"] == "postgres:16"
        assert "pg_isready" in postgres["healthcheck"]["test"][1]
        assert postgres["volumes"] == ["postgres-data:/var/lib/postgresql/data"]
        assert postgres["environment"]["POSTGRES_PASSWORD_FILE"] == "/run/secrets/state__password"

    def test_staffsync_waits_for_postgres(self, compose: dict[str, Any]) -> None:
        """staffsync starts once PostgreSQL reports healthy."""
        depends = compose["services"]["staffsync"]["depends_on"]

        assert depends == {"postgres": {"condition": "service_healthy"}}

    def test_staffsync_locked_down(self, compose: dict[str, Any]) -> None:
        """The root file system is read-only, /tmp a tmpfs, capabilities dropped."""
        staffsync = compose["services"]["staffsync"]

        assert staffsync["read_only"] is True
        assert staffsync["tmpfs"] == ["/tmp"]
        assert staffsync["cap_drop"] == ["ALL"]
        assert "no-new-privileges:true" in staffsync["security_opt"]

    def test_ops_port_published(self, compose: dict[str, Any]) -> None:
        """The ops port is published on the host's loopback."""
        staffsync = compose["services"]["staffsync"]

        assert staffsync["ports"] == ["127.0.0.1:9464:9464"]
        assert staffsync["environment"]["STAFFSYNC_OPS__LISTEN"] == "0.0.0.0:9464"

    def test_config_read_only(self, compose: dict[str, Any]) -> None:
        """The config file is mounted read-only where the image looks for it."""
        volumes = compose["services"]["staffsync"]["volumes"]

        assert "./staffsync.toml:/etc/staffsync/staffsync.toml:ro" in volumes

    def test_stop_grace_period(self, compose: dict[str, Any]) -> None:
        """Compose waits longer than the daemon's shutdown grace time before SIGKILL."""
        period = compose["services"]["staffsync"]["stop_grace_period"]

        assert re.fullmatch(r"\d+s", period)
        assert int(period[:-1]) > DEFAULT_GRACE

    def test_secrets_are_files(self, compose: dict[str, Any]) -> None:
        """Secrets come from files under ./secrets named after secret settings."""
        for name, secret in compose["secrets"].items():
            assert secret == {"file": f"./secrets/{name}"}
            assert _is_secret_setting(name), f"{name} is not a secret setting"

    def test_no_secret_in_environment(self, compose: dict[str, Any]) -> None:
        """No environment variable carries a secret value, and the state URL no password."""
        for service in compose["services"].values():
            for name in service.get("environment", {}):
                assert name.endswith("_FILE") or not is_sensitive_key(name), name

        url = compose["services"]["staffsync"]["environment"]["STAFFSYNC_STATE__URL"]
        assert url == "postgresql+psycopg://staffsync@postgres:5432/staffsync"

    def test_build_context(self, compose: dict[str, Any]) -> None:
        """The build context is the repository root with its Dockerfile."""
        build = compose["services"]["staffsync"]["build"]

        assert (DEPLOY / build["context"] / build["dockerfile"]).resolve() == ROOT / "Dockerfile"


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    instructions = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped and not stripped.startswith("#"):
            keyword, _, rest = stripped.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def _runtime_stage() -> list[tuple[str, str]]:
    instructions = _dockerfile_instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _healthcheck_code() -> str:
    [healthcheck] = [rest for keyword, rest in _runtime_stage() if keyword == "HEALTHCHECK"]
    command = json.loads(healthcheck[healthcheck.index("CMD") + 3 :])
    assert command[:2] == ["python", "-c"]
    code: str = command[2]
    return code


class TestDockerfile:
    """The Dockerfile builds a small non-root runtime image (checked by reading)."""

    def test_runtime_base_is_slim(self) -> None:
        """The runtime stage starts from the python:3.11 slim image."""
        args = dict(
            rest.split("=", 1)
            for keyword, rest in _dockerfile_instructions()
            if keyword == "ARG" and "=" in rest
        )
        base = _runtime_stage()[0][1]

        assert base == "${PYTHON_IMAGE} AS runtime"
        assert args["PYTHON_IMAGE"].startswith("python:3.11-slim")

    def test_runtime_has_no_build_tools(self) -> None:
        """The runtime stage installs nothing and copies the built environment."""
        runtime = _runtime_stage()
        commands = " ".join(rest for keyword, rest in runtime if keyword == "RUN")

        assert "pip" not in commands
        assert "apt-get" not in commands
        assert ("COPY", "--from=build /opt/staffsync /opt/staffsync") in runtime

    def test_non_root_user(self) -> None:
        """The image runs as the fixed UID 10001."""
        [user] = [rest for keyword, rest in _runtime_stage() if keyword == "USER"]
        [uid_default] = [rest for keyword, rest in _runtime_stage() if keyword == "ARG"]

        assert user == "${STAFFSYNC_UID}:${STAFFSYNC_UID}"
        assert uid_default == f"STAFFSYNC_UID={IMAGE_UID}"

    def test_environment(self) -> None:
        """The image sets the config path, the ops address and no bytecode writing."""
        env = " ".join(rest for keyword, rest in _runtime_stage() if keyword == "ENV")

        assert "PYTHONDONTWRITEBYTECODE=1" in env.split()
        assert "STAFFSYNC_OPS__LISTEN=0.0.0.0:9464" in env.split()
        assert "STAFFSYNC_CONFIG=/etc/staffsync/staffsync.toml" in env.split()

    def test_entrypoint_and_cmd(self) -> None:
        """The entrypoint is the CLI and the default command is the daemon."""
        runtime = dict(_runtime_stage())

        assert json.loads(runtime["ENTRYPOINT"]) == ["staffsync"]
        assert json.loads(runtime["CMD"]) == ["run"]
        assert runtime["VOLUME"] == '["/var/lib/staffsync"]'

    def test_dockerignore_allows_copied_paths(self) -> None:
        """The build context starts empty and admits every path the Dockerfile copies."""
        patterns = [
            line
            for line in (ROOT / ".dockerignore").read_text().splitlines()
            if line and not line.startswith("#")
        ]
        copied = [
            source
            for keyword, rest in _dockerfile_instructions()
            if keyword == "COPY" and not rest.startswith("--from")
            for source in rest.split()[:-1]
        ]

        assert patterns[0] == "*"
        for source in copied:
            assert f"!{source.rstrip('/')}" in [p.rstrip("/") for p in patterns], source

    def test_healthcheck_healthy(self) -> None:
        """The HEALTHCHECK command exits 0 against a live /healthz."""
        server = OpsServer("127.0.0.1:0", readiness=lambda: (False, "not ready"))
        server.start()
        try:
            result = _run_healthcheck(server.port)
        finally:
            server.stop()

        assert result.returncode == 0, result.stderr

    def test_healthcheck_unhealthy(self) -> None:
        """The HEALTHCHECK command fails when /healthz returns 503."""
        server = OpsServer("127.0.0.1:0", readiness=lambda: (True, "ok"), liveness=lambda: False)
        server.start()
        try:
            result = _run_healthcheck(server.port)
        finally:
            server.stop()

        assert result.returncode == 1
        assert "HTTP Error 503" in result.stderr


def _run_healthcheck(port: int) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _healthcheck_code()],
        env={"STAFFSYNC_OPS__LISTEN": f"0.0.0.0:{port}"},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _unit_settings(name: str) -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in (SYSTEMD / name).read_text().splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";", "[")):
            continue
        key, _, value = stripped.partition("=")
        settings.setdefault(key, []).append(value)
    return settings


def _credential_lines(name: str) -> list[str]:
    lines = (SYSTEMD / name).read_text().splitlines()
    return [line.lstrip("#") for line in lines if line.lstrip("#").startswith("LoadCredential=")]


HARDENING = {
    "DynamicUser": "yes",
    "StateDirectory": "staffsync",
    "ProtectSystem": "strict",
    "ProtectHome": "yes",
    "PrivateTmp": "yes",
    "PrivateDevices": "yes",
    "NoNewPrivileges": "yes",
    "CapabilityBoundingSet": "",
    "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    "RestrictNamespaces": "yes",
    "LockPersonality": "yes",
    "SystemCallArchitectures": "native",
    "KillSignal": "SIGTERM",
    "User": "staffsync",
}


class TestSystemdUnits:
    """The systemd units are valid, hardened and pass secrets as credentials."""

    @pytest.mark.skipif(
        shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed"
    )
    def test_verify(self, tmp_path: Path) -> None:
        """systemd-analyze verify reports nothing for either unit."""
        stub = tmp_path / "staffsync"
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
        for name in UNITS:
            text = (SYSTEMD / name).read_text().replace(INSTALLED_BINARY, str(stub))
            (tmp_path / name).write_text(text)

        result = subprocess.run(
            ["systemd-analyze", "verify", "--man=no", *(str(tmp_path / name) for name in UNITS)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

        assert result.returncode == 0, result.stderr
        about_units = [line for line in result.stderr.splitlines() if "staffsync" in line]
        assert about_units == []

    @pytest.mark.parametrize("name", UNITS)
    def test_hardening(self, name: str) -> None:
        """Each unit sets the sandboxing options with their expected values."""
        settings = _unit_settings(name)

        for key, value in HARDENING.items():
            assert settings.get(key) == [value], key
        assert settings["SystemCallFilter"][0] == "@system-service"

    def test_daemon_command(self) -> None:
        """The daemon unit runs 'staffsync run' and restarts on failure."""
        settings = _unit_settings("staffsync.service")

        assert settings["ExecStart"] == [f"{INSTALLED_BINARY} run"]
        assert settings["Restart"] == ["on-failure"]
        assert settings["Type"] == ["exec"]

    def test_resync_command(self) -> None:
        """The on-demand unit is a oneshot 'staffsync resync'."""
        settings = _unit_settings("staffsync-resync.service")

        assert settings["ExecStart"] == [f"{INSTALLED_BINARY} resync"]
        assert settings["Type"] == ["oneshot"]

    @pytest.mark.parametrize("name", UNITS)
    def test_stop_timeout_above_grace(self, name: str) -> None:
        """systemd waits longer than the daemon's shutdown grace time before SIGKILL."""
        [timeout] = _unit_settings(name)["TimeoutStopSec"]

        assert re.fullmatch(r"\d+s", timeout)
        assert int(timeout[:-1]) > DEFAULT_GRACE

    @pytest.mark.parametrize("name", UNITS)
    def test_credentials(self, name: str) -> None:
        """Each credential, active or commented out, loads a secret setting from its file."""
        lines = _credential_lines(name)

        assert len(lines) == 3
        for line in lines:
            credential, _, source = line.removeprefix("LoadCredential=").partition(":")
            assert _is_secret_setting(credential), credential
            assert source == f"/etc/staffsync/credentials/{credential}"
