"""A sync test bench: an HR export file, settings aimed at the emulator, and helpers."""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import httpx
from pydantic import SecretStr

from staffsync.runner import RunRequest, execute_run
from staffsync.settings import (
    MappingSettings,
    OpsSettings,
    PolicySettings,
    SafetySettings,
    ScheduleSettings,
    Settings,
    SourceSettings,
    StaffbaseSettings,
    StateSettings,
)

if TYPE_CHECKING:
    from pathlib import Path

    from staffsync.emulator import EmulatorServer
    from staffsync.report import RunReport

COLUMNS = (
    "employee_id",
    "first_name",
    "last_name",
    "work_email",
    "title",
    "department",
    "location",
    "manager_id",
    "status",
)


def person(number: int, **overrides: str) -> dict[str, str]:
    """Return an export row for employee ``E<number>`` with plausible values."""
    row = {
        "employee_id": f"E{number:04d}",
        "first_name": f"First{number}",
        "last_name": f"Last{number}",
        "work_email": f"person{number}@example.com",
        "title": "Engineer",
        "department": "R&D",
        "location": "Berlin",
        "manager_id": "",
        "status": "active",
    }
    row.update(overrides)
    return row


@dataclass
class Bench:
    """An emulator, an export file and a state database for one test."""

    emulator: EmulatorServer
    folder: Path
    state_url: str
    sections: dict[str, Any] = field(default_factory=dict)

    @property
    def export(self) -> Path:
        return self.folder / "export.csv"

    def write_export(self, rows: list[dict[str, str]], columns: tuple[str, ...] = COLUMNS) -> None:
        with self.export.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=columns)
            writer.writeheader()
            writer.writerows(rows)

    def settings(self, **sections: Any) -> Settings:
        """Settings aimed at the emulator; keyword arguments replace whole sections."""
        values: dict[str, Any] = {
            "source": SourceSettings(path=self.export),
            "mapping": MappingSettings(),
            "staffbase": StaffbaseSettings(
                base_url=self.emulator.base_url,
                token_url=self.emulator.token_url,
                client_id=self.emulator.config.client_id,
                client_secret=SecretStr(self.emulator.config.client_secret),
                max_concurrency=4,
                max_requests_per_second=500,
                max_retry_wait_seconds=2,
            ),
            "state": StateSettings(url=self.state_url),
            # Small test rosters would trip the percentage guard; guard tests set their own.
            "safety": SafetySettings(max_deactivation_percent=100),
            "policy": PolicySettings(),
            "schedule": ScheduleSettings(),
            "ops": OpsSettings(),
        }
        values.update(self.sections)
        values.update(sections)
        return Settings(**values)

    def sync(self, settings: Settings | None = None, **request: Any) -> RunReport:
        return execute_run(settings or self.settings(), RunRequest(**request))

    def get(self, path: str) -> Any:
        response = httpx.get(f"{self.emulator.url}{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: Any) -> Any:
        response = httpx.post(f"{self.emulator.url}{path}", json=body, timeout=30)
        response.raise_for_status()
        return response.json() if response.content else None

    def users(self) -> dict[str, dict[str, Any]]:
        """Every emulator user by externalID (users without one under their id)."""
        return {u.get("externalID") or u["id"]: u for u in self.get("/__emulator/users")}

    def stats(self) -> dict[str, Any]:
        return self.get("/__emulator/stats")

    def writes(self) -> int:
        """Write requests (POST, PUT, PATCH, DELETE) to the API since the last reset."""
        return sum(
            count
            for route, count in self.stats()["requests"].items()
            if route.split(" ")[0] in ("POST", "PUT", "PATCH", "DELETE")
        )

    def sign_in(self, ids: list[str] | None = None) -> None:
        self.post("/__emulator/sign-in", {"ids": ids} if ids is not None else {})

    def faults(self, **settings: Any) -> None:
        self.post("/__emulator/faults", settings)
