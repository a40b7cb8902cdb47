"""No secret reaches a log line, a report, ``status`` output or a row of the state database.

One test makes runs of every kind with faults on. Command-line syncs use an OAuth client
secret from a secret file, an API token from the environment, and a wrong client
secret. A daemon's PostgreSQL URL carries the password, and ``check`` and ``status``
run too. The test then searches everything they wrote for the client secrets, the API
token, every access token the emulator issued, and the database password.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import uuid
from typing import TYPE_CHECKING

import httpx
import pytest
import sqlalchemy as sa

from staffsync.emulator import EmulatorServer
from staffsync.emulator.config import EmulatorConfig
from tests.daemon.processes import (
    daemon_config,
    staffsync_command,
    wait_until,
    write_export,
)
from tests.sync.harness import person

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from pathlib import Path

    from tests.daemon.processes import StaffsyncProcess

CLIENT_ID = "staffsync-secret-test"


class Credentials:
    """Random secrets for one test, and the access tokens the emulator issues with them."""

    def __init__(self) -> None:
        self.client_secret = "cs-" + secrets.token_urlsafe(24)
        self.wrong_secret = "ws-" + secrets.token_urlsafe(24)
        self.api_token = "at-" + secrets.token_urlsafe(24)
        self.db_password = "pw-" + secrets.token_urlsafe(24)
        self.issued: list[str] = []

    def all(self) -> list[str]:
        """Every secret value, raw and as it appears in a Basic Authorization header."""
        values = [
            self.client_secret,
            self.wrong_secret,
            self.api_token,
            self.db_password,
            *self.issued,
        ]
        for secret in (self.client_secret, self.wrong_secret):
            values.append(base64.b64encode(f"{CLIENT_ID}:{secret}".encode()).decode())
        return values


@pytest.fixture
def credentials() -> Credentials:
    return Credentials()


@pytest.fixture
def emulator(credentials: Credentials) -> Iterator[EmulatorServer]:
    """An emulator that accepts the test's credentials and records every token it issues."""
    config = EmulatorConfig(
        client_id=CLIENT_ID,
        client_secret=credentials.client_secret,
        api_token=credentials.api_token,
    )
    with EmulatorServer(config) as server:
        tokens = server.emulator.tokens
        issue = tokens.issue

        def recording_issue(lifetime_s: float) -> str:
            token = issue(lifetime_s)
            credentials.issued.append(token)
            return token

        tokens.issue = recording_issue  # type: ignore[method-assign]
        yield server


class Role:
    """A PostgreSQL role with a password and a schema of its own, dropped afterwards."""

    def __init__(self, server: sa.URL, password: str) -> None:
        suffix = uuid.uuid4().hex[:12]
        self.name = f"staffsync_secret_{suffix}"
        self.schema = f"s_{suffix}"
        self.server = server
        self.admin = sa.create_engine(server, isolation_level="AUTOCOMMIT")
        with self.admin.connect() as connection:
            connection.execute(sa.text(f"CREATE ROLE \"{self.name}\" LOGIN PASSWORD '{password}'"))
            connection.execute(
                sa.text(f'CREATE SCHEMA "{self.schema}" AUTHORIZATION "{self.name}"')
            )

    def url(self, password: str | None = None) -> str:
        url = self.server.set(username=self.name, password=password)
        url = url.update_query_dict({"options": f"-csearch_path={self.schema}"})
        return url.render_as_string(hide_password=False)

    def dump(self) -> str:
        """Every row of every table in the role's schema, as text."""
        metadata = sa.MetaData(schema=self.schema)
        metadata.reflect(self.admin)
        lines = []
        with self.admin.connect() as connection:
            for table in metadata.sorted_tables:
                lines.extend(f"{table.name}: {row}" for row in connection.execute(sa.select(table)))
        return "\n".join(lines)

    def drop(self) -> None:
        with self.admin.connect() as connection:
            connection.execute(
                sa.text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                    f" WHERE usename = '{self.name}'"
                )
            )
            connection.execute(sa.text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
            connection.execute(sa.text(f'DROP ROLE IF EXISTS "{self.name}"'))
        self.admin.dispose()


@pytest.fixture
def role(postgres_server: sa.URL, credentials: Credentials) -> Iterator[Role]:
    role = Role(postgres_server, credentials.db_password)
    try:
        yield role
    finally:
        role.drop()


@pytest.mark.slow
class TestNoSecretLeaks:
    """Secrets stay out of every output, whatever the runs go through."""

    def test_outputs_and_state(
        self,
        tmp_path: Path,
        credentials: Credentials,
        emulator: EmulatorServer,
        role: Role,
        spawn: Callable[..., StaffsyncProcess],
    ) -> None:
        """Logs, reports, status and state rows hold no secret after faulty runs."""
        outputs: dict[str, str] = {}
        export = tmp_path / "export.csv"
        rows = [person(n) for n in range(1, 31)]
        rows.append(person(31, work_email="not an address"))
        write_export(export, rows)
        # A user made by hand owns person 4's e-mail, so creating E0004 fails with 409.
        _post(
            emulator,
            "/__emulator/users",
            {
                "firstName": "Pat",
                "lastName": "Hand",
                "emails": [{"value": "person4@example.com", "primary": True}],
            },
        )
        _post(
            emulator,
            "/__emulator/faults",
            {"error_rate": 0.25, "drop_rate": 0.05, "rate_limit_per_second": 40},
        )
        secrets_dir = tmp_path / "secrets"
        secrets_dir.mkdir()
        (secrets_dir / "staffbase__client_secret").write_text(credentials.client_secret + "\n")
        (secrets_dir / "state__password").write_text(credentials.db_password)
        from_files = {"STAFFSYNC_SECRETS_DIR": str(secrets_dir)}

        def config(name: str, state_url: str, **staffbase: object) -> Path:
            return daemon_config(
                tmp_path / f"{name}.toml",
                emulator_url=emulator.url,
                state_url=state_url,
                export=export,
                staffbase={
                    "client_id": CLIENT_ID,
                    "client_secret": None,
                    "max_attempts": 10,
                    "retry_initial_wait_seconds": 0.05,
                    "token_leeway_seconds": 0.5,
                    **staffbase,
                },
                ops={"log_level": "debug"},
            )

        def command(name: str, config_path: Path, *args: str, env: dict[str, str]) -> int:
            result = subprocess.run(
                staffsync_command(
                    "--config", str(config_path), "--log-format", "json", "--log-level", "debug"
                )
                + list(args),
                capture_output=True,
                text=True,
                timeout=300,
                check=False,
                env={**_environment(), **env},
                cwd=tmp_path,
            )
            outputs[f"{name} stdout"] = result.stdout
            outputs[f"{name} stderr"] = result.stderr
            return result.returncode

        # OAuth with the client secret and the database password from secret files; the
        # tokens live 2 s, so the run fetches new ones.
        _post(emulator, "/__emulator/faults", {"token_lifetime_s": 2})
        oauth = config("oauth", role.url())
        assert command("sync", oauth, "sync", "--report-json", "sync.json", env=from_files) == 4

        # The daemon, with the password inside the database URL.
        for row in rows[:10]:
            row["title"] = "Lead"
        write_export(export, rows)
        daemon_file = config("daemon", role.url(credentials.db_password))
        daemon = spawn("daemon", daemon_file, "run", env=from_files)
        wait_until(lambda: len(daemon.events("run_finished")) >= 2, 120, "two daemon runs")
        port = daemon.events("daemon_started")[0]["ops_port"]
        outputs["metrics"] = daemon.ops_get("/metrics", port).text
        outputs["readyz"] = daemon.ops_get("/readyz", port).text
        daemon.signal(signal.SIGTERM)
        assert daemon.wait() == 0

        # An API token from the environment.
        for row in rows[:10]:
            row["department"] = "Sales"
        write_export(export, rows)
        token = config("token", role.url(), auth="token")
        api_token = {**from_files, "STAFFSYNC_STAFFBASE__API_TOKEN": credentials.api_token}
        assert command("token", token, "sync", "--report-json", "token.json", env=api_token) == 4

        # A wrong client secret: the token endpoint rejects it and the run fails.
        for row in rows[:10]:
            row["location"] = "Hamburg"
        write_export(export, rows)
        wrong = {**from_files, "STAFFSYNC_STAFFBASE__CLIENT_SECRET": credentials.wrong_secret}
        assert command("wrong", oauth, "sync", "--report-json", "wrong.json", env=wrong) == 1

        _post(emulator, "/__emulator/faults", {"error_rate": 0, "drop_rate": 0})
        assert command("check", oauth, "check", env=from_files) == 0
        assert command("status", oauth, "status", env=from_files) == 0
        assert command("status json", oauth, "status", "--format", "json", env=from_files) == 0

        for name in ("sync.json", "token.json", "wrong.json"):
            outputs[name] = (tmp_path / name).read_text(encoding="utf-8")
        outputs["daemon log"] = daemon.stdout.read_text() + daemon.stderr.read_text()
        outputs["state database"] = role.dump()

        # The searched outputs hold what they should, so an empty one cannot pass unseen.
        status = json.loads(outputs["status json stdout"])
        assert len(credentials.issued) >= 3
        assert len(status["runs"]) >= 5
        assert "run_finished" in outputs["sync stderr"]
        assert "staffbase_request_retry" in outputs["daemon log"]
        assert "run_finished" in outputs["token stderr"]
        assert "client" in json.loads(outputs["wrong.json"])["error"]
        assert "E0004" in outputs["state database"]
        leaks = [
            (where, secret[:6])
            for where, text in outputs.items()
            for secret in credentials.all()
            if secret in text
        ]
        assert leaks == []


def _environment() -> dict[str, str]:
    environment = dict(os.environ)
    for name in list(environment):
        if name.startswith("STAFFSYNC_") or name == "CREDENTIALS_DIRECTORY":
            del environment[name]
    return environment


def _post(emulator: EmulatorServer, path: str, body: object) -> None:
    httpx.post(f"{emulator.url}{path}", json=body, timeout=10).raise_for_status()
