"""``staffsync run`` when it cannot start: a short message and the contract's exit status.

A supervisor restarts a daemon that exits; the operator reads why in one line instead of
a Python traceback.
"""

from __future__ import annotations

import socket
import subprocess
from typing import TYPE_CHECKING

from tests.daemon.processes import daemon_config, free_port, staffsync_command, write_export
from tests.sync.harness import person

if TYPE_CHECKING:
    from pathlib import Path


def _run(config: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        staffsync_command("--config", str(config), "run"),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def _config(tmp_path: Path, state_url: str, **sections: dict[str, object]) -> Path:
    export = tmp_path / "export.csv"
    write_export(export, [person(1)])
    return daemon_config(
        tmp_path / "staffsync.toml",
        # A free local port: each daemon here stops before its first run, sending nothing.
        emulator_url=f"http://127.0.0.1:{free_port()}",
        state_url=state_url,
        export=export,
        **sections,
    )


class TestStartFailures:
    """Start-up problems end the process with a one-line reason."""

    def test_invalid_schedule(self, tmp_path: Path, sqlite_url: str) -> None:
        """An invalid [schedule] value exits with status 2 and names the value."""
        config = _config(tmp_path, sqlite_url, schedule={"sync": "every hour"})

        result = _run(config)

        assert result.returncode == 2
        assert result.stderr.startswith("staffsync: [schedule] sync: invalid schedule")
        assert "'every hour'" in result.stderr
        assert "Traceback" not in result.stderr

    def test_ops_port_in_use(self, tmp_path: Path, sqlite_url: str) -> None:
        """A taken ops port exits with status 1 and names the address."""
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen(1)
            port = taken.getsockname()[1]
            config = _config(tmp_path, sqlite_url, ops={"listen": f"127.0.0.1:{port}"})

            result = _run(config)

        assert result.returncode == 1
        assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
        assert "Traceback" not in result.stderr

    def test_database_unreachable(self, tmp_path: Path) -> None:
        """A state database that refuses connections exits with status 1, password hidden."""
        password = "start-secret-4711"
        url = f"postgresql+psycopg://staffsync:{password}@127.0.0.1:{free_port()}/staffsync"
        config = _config(tmp_path, url)

        result = _run(config)

        assert result.returncode == 1
        assert result.stderr.startswith("staffsync: the daemon could not start:")
        assert "Connection refused" in result.stderr
        assert "Traceback" not in result.stderr
        assert password not in result.stderr + result.stdout

    def test_invalid_state_url(self, tmp_path: Path) -> None:
        """A state URL of an unsupported database exits with status 2."""
        config = _config(tmp_path, "mysql://staffsync@127.0.0.1/staffsync")

        result = _run(config)

        assert result.returncode == 2
        assert "staffsync supports sqlite and postgresql" in result.stderr
