"""A bench for input tests: any export file, any [source]/[mapping], and exact views of
what reached the emulator."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from staffsync.settings import MappingSettings, SourceSettings
from tests.sync.harness import Bench

if TYPE_CHECKING:
    import io

    from staffsync.report import RunReport
    from staffsync.settings import Settings

DATA = Path(__file__).parents[1] / "data" / "input"

CHANGE_COUNTS = ("created", "updated", "deactivated", "reactivated", "deleted")

# Keys that Staffbase sets itself or that carry no HR value: the externalID is the dict
# key of a view, and sendMail is a request flag.
_GENERATED_KEYS = frozenset(
    {"id", "externalID", "sendMail", "created", "updated", "activated", "config"}
)


@dataclass
class InputBench(Bench):
    """A :class:`Bench` that syncs data files under ``tests/data/input`` or written text."""

    def use(self, name: str) -> Path:
        """Copy the data file ``name`` into the test's folder and return the copy."""
        target = self.folder / name
        shutil.copyfile(DATA / name, target)
        return target

    def write(self, name: str, content: str | bytes) -> Path:
        """Write ``content`` (bytes as they are, text as UTF-8) to ``name``."""
        target = self.folder / name
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8", newline="")
        return target

    def settings_for(
        self,
        path: Path,
        source: dict[str, Any] | None = None,
        mapping: dict[str, Any] | None = None,
    ) -> Settings:
        """Settings reading ``path`` with the given ``[source]`` and ``[mapping]`` keys."""
        return self.settings(
            source=SourceSettings(path=path, **(source or {})),
            mapping=MappingSettings(**(mapping or {})),
        )

    def stored(self) -> dict[str, dict[str, Any]]:
        """Every emulator user by externalID, with its values as stored (see :func:`flat_view`)."""
        users = self.get("/__emulator/users")
        external_ids = {user["id"]: user.get("externalID") for user in users}
        return {
            user.get("externalID") or user["id"]: flat_view(user, external_ids) for user in users
        }

    def requests(self) -> list[dict[str, Any]]:
        """The write requests the API received since the last reset, with their bodies."""
        result: list[dict[str, Any]] = self.get("/__emulator/requests")
        return result

    def create_bodies(self) -> dict[str, dict[str, Any]]:
        """The body of every create request, by the externalID it carries."""
        return {
            request["body"]["externalID"]: request["body"]
            for request in self.requests()
            if request["method"] == "POST" and request["route"] == "/api/users"
        }

    def created_views(self) -> dict[str, dict[str, Any]]:
        """The fields of every create request by externalID, as :func:`flat_view` shows them."""
        external_ids = {
            user["id"]: user.get("externalID") for user in self.get("/__emulator/users")
        }
        return {
            external_id: flat_view(body, external_ids)
            for external_id, body in self.create_bodies().items()
        }

    def group_members(self) -> dict[str, list[str]]:
        """Every group by name, with the externalIDs (else ids) of its members, sorted."""
        external_ids = {
            user["id"]: user.get("externalID") or user["id"]
            for user in self.get("/__emulator/users")
        }
        return {
            group["name"]: sorted(external_ids.get(m, m) for m in group["members"])
            for group in self.get("/__emulator/groups")
        }

    def assert_quiet_rerun(self, settings: Settings) -> RunReport:
        """Sync again and check that nothing changes and no write is sent."""
        writes = self.writes()

        report = self.sync(settings)

        assert self.writes() == writes
        assert {name: report.counts[name] for name in CHANGE_COUNTS} == dict.fromkeys(
            CHANGE_COUNTS, 0
        )
        assert report.changes == []
        return report


def flat_view(user: dict[str, Any], external_ids: dict[str, str | None]) -> dict[str, Any]:
    """Return a user JSON object (stored or sent) with the values a test compares.

    The e-mail list becomes ``email`` (the primary address) and the manager's Staffbase
    id becomes ``manager``, the manager's externalID. Keys that Staffbase sets itself are
    dropped. Fields that the user does not have stay absent, so a missing field differs
    from an empty one.
    """
    view = {k: v for k, v in user.items() if k not in _GENERATED_KEYS}
    emails = view.pop("emails", [])
    primary = [e["value"] for e in emails if e.get("primary")]
    if primary:
        view["email"] = primary[0]
    profile = dict(view.pop("profile", {}) or {})
    manager_id = profile.pop("system_manager", None)
    if manager_id is not None:
        view["manager"] = external_ids.get(manager_id) or manager_id
    if profile:
        view["profile"] = profile
    return view


def issues(entries: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Reduce report entries to (line, key, field, value) tuples, in report order."""
    return [(e["line"], e["key"], e["field"], e["value"]) for e in entries]


def log_events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    """Return the JSON log lines of event ``name``."""
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line]
    return [line for line in lines if line.get("event") == name]


@dataclass(frozen=True)
class FileCase:
    """One export file, the settings to read it, and exactly what a sync must produce."""

    file: str
    users: dict[str, dict[str, Any]]
    """Stored users by externalID, as :meth:`InputBench.stored` shows them."""
    source: dict[str, Any] = field(default_factory=dict)
    mapping: dict[str, Any] = field(default_factory=dict)
    rejected: list[tuple[Any, ...]] = field(default_factory=list)
    """(line, key, field, value) of each rejected row, in report order."""
    warnings: list[tuple[Any, ...]] = field(default_factory=list)
    """(line, key, field, value) of each warning, in report order."""


def check_file_case(bench: InputBench, case: FileCase) -> None:
    """Sync ``case.file``, check the users, bodies, rejects and warnings, then sync again."""
    path = bench.use(case.file)
    settings = bench.settings_for(path, case.source, case.mapping)

    report = bench.sync(settings)

    assert bench.stored() == case.users
    assert bench.created_views() == {
        key: {name: value for name, value in user.items() if name != "status"}
        for key, user in case.users.items()
    }
    assert issues(report.rejected) == case.rejected
    assert issues(report.warnings) == case.warnings
    assert report.counts["created"] == len(case.users)
    assert report.status == ("partial" if case.rejected else "succeeded")
    bench.assert_quiet_rerun(settings)
