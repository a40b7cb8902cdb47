"""The ``emulator`` command, run in a subprocess as operators and benchmarks run it."""

from __future__ import annotations

import signal
import subprocess
import sys
from typing import TYPE_CHECKING

import httpx
from click.testing import CliRunner

from staffsync.emulator.command import emulator_command

if TYPE_CHECKING:
    from pathlib import Path

LAUNCH = "from staffsync.emulator.command import emulator_command; emulator_command.main()"
LISTENING = "staffsync emulator listening on http://127.0.0.1:"


def start_command(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", LAUNCH, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def read_banner(process: subprocess.Popen[str]) -> list[str]:
    """Read the lines the command prints at start, up to its stop hint."""
    assert process.stdout is not None
    lines = [process.stdout.readline().rstrip("\n")]
    while lines[-1] and not lines[-1].startswith("Stop with"):
        lines.append(process.stdout.readline().rstrip("\n"))
    return lines


class TestEmulatorCommand:
    def test_serves_until_sigterm(self) -> None:
        """The first line names the real port; the server responds; SIGTERM exits 0."""
        process = start_command("--port", "0", "--api-token", "cli-token")
        try:
            banner = read_banner(process)
            url = banner[0].rpartition(" ")[2]
            response = httpx.get(f"{url}/api/users", headers={"Authorization": "Basic cli-token"})
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=10)

        assert banner[0].startswith(LISTENING)
        assert int(url.rpartition(":")[2]) > 0
        assert response.status_code == 200
        assert f"  token_url:     {url}/oauth2/token" in banner
        assert "  api_token:     cli-token" in banner
        assert process.returncode == 0, stderr

    def test_sigint_exits_zero(self) -> None:
        """SIGINT (Ctrl+C) also stops the server with exit status 0."""
        process = start_command("--port", "0")
        try:
            assert process.stdout is not None
            process.stdout.readline()
        finally:
            process.send_signal(signal.SIGINT)
            process.communicate(timeout=10)

        assert process.returncode == 0

    def test_state_file_saved(self, tmp_path: Path) -> None:
        """With --state-file the users are in the file after the command stops."""
        path = tmp_path / "tenant.json"
        process = start_command("--port", "0", "--state-file", str(path))
        try:
            assert process.stdout is not None
            url = process.stdout.readline().rstrip("\n").rpartition(" ")[2]
            httpx.post(
                f"{url}/__emulator/users",
                json={"emails": [{"value": "a@example.com", "primary": True}]},
            )
        finally:
            process.send_signal(signal.SIGTERM)
            process.communicate(timeout=10)

        assert "a@example.com" in path.read_text()

    def test_invalid_state_file(self, tmp_path: Path) -> None:
        """An invalid state file is a configuration error: exit status 2."""
        path = tmp_path / "tenant.json"
        path.write_text("not json")

        result = CliRunner().invoke(emulator_command, ["--port", "0", "--state-file", str(path)])

        assert result.exit_code == 2
        assert "fix or remove it" in result.output
