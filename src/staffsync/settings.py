"""Configuration: one TOML file, overridden by STAFFSYNC_* variables and secret files.

Priority, highest first: values passed in code, environment variables
(``STAFFSYNC_<SECTION>__<KEY>``), secret files named ``<section>__<key>`` (for example
``staffbase__client_secret``) in ``$STAFFSYNC_SECRETS_DIR``, ``$CREDENTIALS_DIRECTORY`` or
``/run/secrets``, then the TOML file, then the defaults below.
"""

from __future__ import annotations

import codecs
import os
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NestedSecretsSettingsSource,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from staffsync.staffbase.model import validate_field_name

__all__ = [
    "ConfigError",
    "GroupsMapping",
    "MappingSettings",
    "OpsSettings",
    "PolicySettings",
    "SafetySettings",
    "ScheduleSettings",
    "Settings",
    "SourceSettings",
    "StaffbaseSettings",
    "StateSettings",
    "StatusMapping",
    "has_setting_variables",
    "load_settings",
    "resolve_config_path",
]

DEFAULT_CONFIG_FILE = Path("staffsync.toml")
SECRET_DIRECTORIES_DEFAULT = ("/run/secrets",)

PositiveInt = Annotated[int, Field(gt=0)]


class ConfigError(Exception):
    """The configuration is missing, unreadable or invalid (exit status 2)."""


class _Section(BaseModel):
    # A misspelt key would otherwise be ignored silently and its default used.
    model_config = ConfigDict(extra="forbid")


class SourceSettings(_Section):
    """Where the HR records come from and how the file is laid out."""

    kind: Literal["csv", "json", "sailpoint"] = "csv"
    path: Path = Path("exports/identities.csv")
    encoding: str = "utf-8"
    delimiter: str = ","
    header_rows: Annotated[int, Field(ge=1, le=2)] = 1
    records_path: str = ""
    full_snapshot: bool = True
    """True when the export lists every employee, so that a missing row means a leaver.

    Set it to false for incremental exports (SuccessFactors user data files), where
    leavers are marked by their status and a missing row changes nothing.
    """

    @field_validator("delimiter")
    @classmethod
    def _check_delimiter(cls, value: str) -> str:
        if value == "auto" or len(value) == 1:
            return value
        if value in ("\\t", "tab", "TAB"):
            return "\t"
        msg = f"delimiter must be one character or 'auto', got {value!r}"
        raise ValueError(msg)

    @field_validator("encoding")
    @classmethod
    def _check_encoding(cls, value: str) -> str:
        try:
            codecs.lookup(value)
        except LookupError:
            msg = f"unknown encoding {value!r}; use a Python codec name such as 'utf-8' or 'cp1252'"
            raise ValueError(msg) from None
        return value


class StatusMapping(_Section):
    """How a record says whether the person is active; values compare case-insensitively."""

    field: str = "status"
    """Source field with the status; empty means every listed person is active."""
    active: list[str] = Field(default_factory=lambda: ["active"])
    inactive: list[str] = Field(default_factory=lambda: ["terminated", "inactive"])

    @model_validator(mode="after")
    def _check_disjoint(self) -> StatusMapping:
        overlap = {v.casefold() for v in self.active} & {v.casefold() for v in self.inactive}
        if overlap:
            msg = f"status values {sorted(overlap)!r} are listed as both active and inactive"
            raise ValueError(msg)
        return self


class GroupsMapping(_Section):
    """A multi-valued source field whose values become Staffbase group memberships."""

    field: str
    separator: str = ","


def _default_fields() -> dict[str, str]:
    return {
        "firstName": "first_name",
        "lastName": "last_name",
        "email": "work_email",
        "position": "title",
        "department": "department",
        "location": "location",
        "manager": "manager_id",
    }


class MappingSettings(_Section):
    """How a source record becomes a Staffbase user."""

    key: str = "employee_id"
    date_format: str = "%Y-%m-%d"
    date_fields: list[str] = Field(default_factory=list)
    empty_values: list[str] = Field(default_factory=list)
    adopt_by_email: bool = False
    manager_match: str = ""
    """Source field that manager references point at; empty means the key field.

    SailPoint exports often name a manager by account name (``uid``) rather than by
    employee id; set ``manager_match = "uid"`` for those.
    """
    fields: dict[str, str] = Field(default_factory=_default_fields)
    status: StatusMapping = Field(default_factory=StatusMapping)
    groups: GroupsMapping | None = None

    @field_validator("fields")
    @classmethod
    def _check_fields(cls, value: dict[str, str]) -> dict[str, str]:
        if "email" not in value:
            msg = "[mapping.fields] must map 'email', the address Staffbase invites and identifies"
            raise ValueError(msg)
        # A misspelt Staffbase field would otherwise fail every record at send time.
        for target in value:
            validate_field_name(target)
        return value


class StaffbaseSettings(_Section):
    """The Staffbase tenant, its credentials and how hard staffsync may push."""

    base_url: str = "https://app.example.com/api"
    auth: Literal["oauth", "token"] = "oauth"
    token_url: str = "https://id.example.com/oauth2/token"  # noqa: S105 (a URL, not a secret)
    client_id: str = ""
    client_secret: SecretStr | None = None
    client_auth_method: Literal["client_secret_basic", "client_secret_post"] = "client_secret_basic"
    scopes: list[str] = Field(default_factory=list)
    api_token: SecretStr | None = None
    max_concurrency: PositiveInt = 4
    max_requests_per_second: Annotated[float, Field(gt=0)] = 10.0
    timeout_seconds: Annotated[float, Field(gt=0)] = 30.0
    token_leeway_seconds: Annotated[float, Field(ge=0)] = 60.0
    """A cached token is renewed this long before its ``expires_in`` runs out."""
    default_token_lifetime_seconds: Annotated[float, Field(gt=0)] = 300.0
    """Lifetime assumed for a token response without ``expires_in``."""
    max_attempts: PositiveInt = 6
    """Attempts per request, the first included, before a record counts as failed."""
    max_retry_wait_seconds: Annotated[float, Field(gt=0)] = 60.0
    """Longest single wait between attempts; a longer Retry-After fails the request."""
    retry_initial_wait_seconds: Annotated[float, Field(gt=0)] = 0.5
    """Upper bound of the first random backoff wait; the bound doubles with each retry."""
    page_size: Annotated[int, Field(ge=1, le=1000)] = 100
    send_invitation: bool = False
    """Ask Staffbase to e-mail an invitation to each created user (``sendMail``)."""
    verify_before_create: bool = False
    """Look each user up by externalID before creating it, at one extra request per create.

    Without it, a create that Staffbase rejects as a duplicate externalID is resolved by
    one lookup, and creates left unsettled by a crash are looked up before they are sent
    again; that is enough when externalID is unique in the tenant, as Staffbase documents.
    """
    user_agent: str = "staffsync"

    @field_validator("base_url", "token_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")


class StateSettings(_Section):
    """The state database."""

    url: str = "sqlite:///staffsync.db"
    password: SecretStr | None = None
    """Password merged into ``url`` when it has none, so the URL itself can stay secret-free."""


class SafetySettings(_Section):
    """Guards that hold a run's plan instead of deactivating many people at once."""

    max_deactivations: Annotated[int, Field(ge=0)] = 50
    max_deactivation_percent: Annotated[float, Field(ge=0, le=100)] = 10.0
    allow_empty_source: bool = False


class PolicySettings(_Section):
    """What happens to leavers and to Staffbase users that HR does not list."""

    on_leave: Literal["deactivate", "delete"] = "deactivate"
    delete_after_days: Annotated[int, Field(ge=0)] = 0
    orphans: Literal["report", "deactivate"] = "report"


class ScheduleSettings(_Section):
    """When the daemon runs; a cron expression (5 fields, UTC) or an interval like ``15m``."""

    sync: str = "*/15 * * * *"
    resync: str = "0 3 * * 0"


class OpsSettings(_Section):
    """Operations endpoints and logging."""

    listen: str = "127.0.0.1:9464"
    log_format: Literal["json", "console"] = "json"
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    ready_max_failed_age_seconds: Annotated[float, Field(gt=0)] = 3600.0
    """``/readyz`` fails once the last successful run is older than this and the latest failed."""
    shutdown_grace_seconds: Annotated[float, Field(gt=0)] = 25.0
    """How long the daemon waits on SIGTERM for the run in progress to stop.

    Keep it below the time the supervisor waits before it kills the process: 30 s in
    Kubernetes (``terminationGracePeriodSeconds``), ``TimeoutStopSec`` under systemd,
    ``stop_grace_period`` in Docker Compose (10 s unless set).
    """


class Settings(BaseSettings):
    """The whole staffsync configuration."""

    model_config = SettingsConfigDict(
        env_prefix="STAFFSYNC_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    source: SourceSettings = Field(default_factory=SourceSettings)
    mapping: MappingSettings = Field(default_factory=MappingSettings)
    staffbase: StaffbaseSettings = Field(default_factory=StaffbaseSettings)
    state: StateSettings = Field(default_factory=StateSettings)
    safety: SafetySettings = Field(default_factory=SafetySettings)
    policy: PolicySettings = Field(default_factory=PolicySettings)
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)

    config_path: Path | None = Field(default=None, exclude=True)
    """The TOML file these settings were read from, if any; relative paths resolve from it."""

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        secrets = NestedSecretsSettingsSource(
            file_secret_settings,
            secrets_dir=secret_directories(),
            secrets_dir_missing="ok",
            secrets_nested_delimiter="__",
            secrets_prefix="",
        )
        return (init_settings, env_settings, secrets)

    def resolve_path(self, path: Path) -> Path:
        """Resolve ``path`` relative to the configuration file's folder."""
        if path.is_absolute() or self.config_path is None:
            return path
        return self.config_path.parent / path


def secret_directories() -> tuple[str, ...]:
    """Directories searched for secret files, the last one winning on a clash."""
    directories = list(SECRET_DIRECTORIES_DEFAULT)
    if credentials := os.environ.get("CREDENTIALS_DIRECTORY"):
        directories.append(credentials)
    if explicit := os.environ.get("STAFFSYNC_SECRETS_DIR"):
        directories.append(explicit)
    return tuple(directories)


def resolve_config_path(explicit: str | Path | None) -> Path | None:
    """Pick the config file: ``--config``, ``$STAFFSYNC_CONFIG``, then ``./staffsync.toml``.

    Returns None when none was named and ``./staffsync.toml`` does not exist.
    """
    if explicit:
        return Path(explicit)
    if from_env := os.environ.get("STAFFSYNC_CONFIG"):
        return Path(from_env)
    if DEFAULT_CONFIG_FILE.exists():
        return DEFAULT_CONFIG_FILE
    return None


def load_settings(config_path: Path | None, **overrides: Any) -> Settings:
    """Read the settings from ``config_path`` (may be None), the environment and secret files.

    Raises:
        ConfigError: the file is missing or not TOML, or a value is invalid; the message
            names the file, the key and the rejected value (never a secret).
    """
    if config_path is not None:
        _check_sections(_check_toml_file(config_path), str(config_path))
    _check_environment()

    class _Loaded(Settings):
        @classmethod
        def settings_customise_sources(
            cls,
            settings_cls: type[BaseSettings],
            init_settings: PydanticBaseSettingsSource,
            env_settings: PydanticBaseSettingsSource,
            dotenv_settings: PydanticBaseSettingsSource,
            file_secret_settings: PydanticBaseSettingsSource,
        ) -> tuple[PydanticBaseSettingsSource, ...]:
            sources = super().settings_customise_sources(
                settings_cls, init_settings, env_settings, dotenv_settings, file_secret_settings
            )
            if config_path is None:
                return sources
            return (*sources, TomlConfigSettingsSource(settings_cls, toml_file=config_path))

    try:
        loaded = _Loaded(config_path=config_path, **overrides)
    except ValidationError as exc:
        raise ConfigError(_describe_validation_error(exc, config_path)) from None
    return loaded


def _check_sections(document: dict[str, Any], where: str) -> None:
    """Refuse a top-level name that is not a section, such as a misspelt ``[saftey]``.

    The sections reject unknown keys themselves. An unknown section would be dropped
    without a word, so its settings (the safety limits, say) would stay at defaults.
    """
    known = _section_names()
    unknown = [name for name in document if name not in known]
    if unknown:
        names = ", ".join(f"[{name}]" for name in unknown)
        msg = (
            f"{where} has unknown sections or top-level keys: {names}; the sections are"
            f" {', '.join(f'[{name}]' for name in sorted(known))}"
        )
        raise ConfigError(msg)


def _check_environment() -> None:
    """Refuse a ``STAFFSYNC_<SECTION>__<KEY>`` variable whose section does not exist.

    A variable that starts with a section name and a single underscore, such as
    ``STAFFSYNC_SAFETY_MAX_DEACTIVATIONS``, is refused too: it is a setting misspelt.
    """
    known = _section_names()
    for name in sorted(os.environ):
        if not name.startswith("STAFFSYNC_"):
            continue
        if "__" not in name:
            rest = name.removeprefix("STAFFSYNC_").lower()
            if any(rest == section or rest.startswith(f"{section}_") for section in known):
                msg = (
                    f"environment variable {name} looks like a setting but has one underscore"
                    " after the section; write STAFFSYNC_<SECTION>__<KEY> with two"
                )
                raise ConfigError(msg)
            continue
        section = name.removeprefix("STAFFSYNC_").split("__", 1)[0].lower()
        if section not in known:
            msg = (
                f"environment variable {name} names no section of the configuration;"
                f" the sections are {', '.join(sorted(known))}: check its spelling"
            )
            raise ConfigError(msg)


def has_setting_variables() -> bool:
    """Tell whether the environment sets any ``STAFFSYNC_<SECTION>__<KEY>`` variable."""
    return any(name.startswith("STAFFSYNC_") and "__" in name for name in os.environ)


def _section_names() -> set[str]:
    return {name for name in Settings.model_fields if name != "config_path"}


def _check_toml_file(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        msg = (
            f"configuration file {str(path)!r} does not exist;"
            " pass --config PATH or set STAFFSYNC_CONFIG"
        )
        raise ConfigError(msg) from None
    except OSError as exc:
        msg = f"configuration file {str(path)!r} cannot be read: {exc.strerror}"
        raise ConfigError(msg) from None
    except tomllib.TOMLDecodeError as exc:
        msg = f"configuration file {str(path)!r} is not valid TOML: {exc}"
        raise ConfigError(msg) from None


def _describe_validation_error(exc: ValidationError, path: Path | None) -> str:
    where = str(path) if path else "the configuration"
    lines = [f"{where} has invalid settings:"]
    for error in exc.errors():
        location = [str(part) for part in error["loc"]]
        key = f"[{location[0]}] {'.'.join(location[1:])}" if len(location) > 1 else location[0]
        secret = any(part in _SECRET_KEYS for part in location)
        shown = "" if secret or "input" not in error else f" (got {error['input']!r})"
        if error["type"] == "extra_forbidden":
            lines.append(f"  {key}: unknown key; check its spelling against the README")
        else:
            lines.append(f"  {key}: {error['msg']}{shown}")
    return "\n".join(lines)


_SECRET_KEYS = frozenset({"client_secret", "api_token", "password"})
