"""Logging setup: one structlog processor chain for our events and for stdlib loggers.

APScheduler, httpx, SQLAlchemy, Alembic and uvicorn log through :mod:`logging`. Their
records pass through the same processor chain as our own structlog events: context
variables, level, UTC timestamp, secret redaction, and exceptions without local variables.
One root handler writes them all, as JSON lines or as console text.
"""

from __future__ import annotations

import contextlib
import logging
import re
import sys
import threading
from collections.abc import Mapping
from datetime import date, datetime, time
from typing import TYPE_CHECKING, Any, Literal, TextIO

import structlog
from pydantic import BaseModel, SecretBytes, SecretStr
from structlog.tracebacks import ExceptionDictTransformer

if TYPE_CHECKING:
    from collections.abc import Iterator

    from structlog.typing import EventDict, Processor, WrappedLogger

__all__ = [
    "REDACTED",
    "bind_run_context",
    "configure_logging",
    "ensure_logging_configured",
    "is_sensitive_key",
    "redact",
    "redact_text",
    "register_secret",
    "register_settings_secrets",
]

REDACTED = "[REDACTED]"

HANDLER_NAME = "staffsync"
"""Name of the root handler that :func:`configure_logging` installs and later replaces."""

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "critical": logging.CRITICAL,
}

# httpx logs every request URL at INFO and httpcore every socket step at DEBUG. Alembic
# logs its context at INFO on every schema check; staffsync logs real upgrades itself.
QUIET_LOGGERS = ("httpx", "httpcore", "alembic")

MIN_REGISTERED_SECRET_LENGTH = 4
"""Shorter registered values are ignored: masking them would garble ordinary text."""

MAX_NESTING = 12

# Keys compared after lower-casing and turning "-" into "_", so "X-Api-Key" matches too.
SENSITIVE_KEYS = frozenset(
    {
        "access_token",
        "api_key",
        "api_token",
        "apikey",
        "authorization",
        "client_secret",
        "cookie",
        "credentials",
        "id_token",
        "passwd",
        "password",
        "private_key",
        "proxy_authorization",
        "refresh_token",
        "secret",
        "set_cookie",
        "token",
        "x_api_key",
    }
)
SENSITIVE_KEY_SUFFIXES = ("_token", "_secret", "_password")

# Header-style "Authorization: Bearer abc" or "authorization=abc". The scheme stays visible.
_AUTHORIZATION_VALUE = re.compile(
    r"(?i)(\bauthorization[\"']?\s*[:=]\s*[\"']?(?:[a-z]+\s+)?)([^\s\"',;}]+)"
)
# "Bearer abc" and "Basic abc" anywhere. Lower-case "basic" is an ordinary word and stays.
_SCHEME_CREDENTIALS = re.compile(r"\b([Bb]earer|BEARER|Basic|BASIC)(\s+)([A-Za-z0-9._~+/-]+=*)")
# key=value, key: value and JSON "key": "value" forms of the usual secret names.
_SECRET_ASSIGNMENT = re.compile(
    r"(?i)\b((?:client_secret|access_token|refresh_token|id_token|api_token|api_key"
    r"|password|passwd|secret|token)[\"']?\s*[:=]\s*[\"']?)([^\s\"'&,;}]+)"
)
# scheme://user:password@host, where the password runs up to the "@".
_URL_PASSWORD = re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^\s:/@]*:)([^\s@]+)(?=@)")
# "host:8080/users/a@b.com" has the shape of a URL password but is a port and a path.
_PORT_AND_PATH = re.compile(r"\d{1,5}/")

_registered_secrets: set[str] = set()
_registered_pattern: re.Pattern[str] | None = None
_registered_lock = threading.Lock()


def register_secret(value: str | SecretStr | SecretBytes | None) -> None:
    """Mask ``value`` wherever it appears in log output and in :func:`redact_text`.

    The patterns of :func:`redact_text` only catch secrets next to a marker such as a key
    name, an auth scheme or a URL. A registered value is masked without one, for example
    in an exception message that quotes a rejected value.
    """
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    elif isinstance(value, SecretBytes):
        value = value.get_secret_value().decode("utf-8", "replace")
    if value is None or len(value) < MIN_REGISTERED_SECRET_LENGTH:
        return

    global _registered_pattern
    with _registered_lock:
        _registered_secrets.add(value)
        # Longest first, so that a secret containing another one is masked whole.
        alternatives = sorted(_registered_secrets, key=len, reverse=True)
        _registered_pattern = re.compile("|".join(re.escape(v) for v in alternatives))


def register_settings_secrets(settings: BaseModel) -> None:
    """Register every ``SecretStr`` in ``settings`` and any password inside a URL field."""
    for value in _walk_model_values(settings):
        if isinstance(value, SecretStr | SecretBytes):
            register_secret(value)
        elif isinstance(value, str) and "://" in value:
            for match in _URL_PASSWORD.finditer(value):
                register_secret(match.group(2))


def _walk_model_values(model: BaseModel) -> Iterator[object]:
    for name in type(model).model_fields:
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            yield from _walk_model_values(value)
        else:
            yield value


def redact_text(text: str) -> str:
    """Return ``text`` with embedded secrets replaced by ``[REDACTED]``.

    Masks registered secret values, ``Bearer``/``Basic`` credentials, the value of an
    ``Authorization`` header, ``key=value`` pairs of secret names (``client_secret``,
    ``access_token``, ``password`` …) and passwords in URLs
    (``postgresql+psycopg://user:PASSWORD@host``).
    """
    pattern = _registered_pattern
    if pattern is not None:
        text = pattern.sub(REDACTED, text)

    text = _AUTHORIZATION_VALUE.sub(rf"\1{REDACTED}", text)
    text = _SCHEME_CREDENTIALS.sub(rf"\1\2{REDACTED}", text)
    text = _SECRET_ASSIGNMENT.sub(rf"\1{REDACTED}", text)
    return _URL_PASSWORD.sub(_mask_url_password, text)


def _mask_url_password(match: re.Match[str]) -> str:
    if _PORT_AND_PATH.match(match.group(2)):
        return match.group(0)
    return f"{match.group(1)}{REDACTED}"


def is_sensitive_key(key: object) -> bool:
    """Tell whether a mapping key names a secret (``client_secret``, ``Authorization`` …)."""
    if not isinstance(key, str):
        return False
    normalized = key.lower().replace("-", "_")
    return normalized in SENSITIVE_KEYS or normalized.endswith(SENSITIVE_KEY_SUFFIXES)


def redact(value: Any, _depth: int = 0) -> Any:
    """Return a copy of ``value`` with secrets masked, looking into dicts, lists and strings.

    Values under sensitive keys and ``SecretStr`` values become ``[REDACTED]``. An empty
    or None value stays visible, because it shows that the secret is not configured.
    Objects other than numbers, booleans and dates become their redacted ``str()``, so
    that no renderer calls a ``repr`` that could show a secret.
    """
    if _is_scalar(value):
        return _redact_scalar(value)
    if _depth >= MAX_NESTING:
        return redact_text(str(value))

    if isinstance(value, Mapping):
        return {key: _redact_item(key, item, _depth + 1) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(item, _depth + 1) for item in value]
    return redact_text(str(value))


_SCALAR_TYPES = (bool, int, float, str, SecretStr, SecretBytes, datetime, date, time)


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, _SCALAR_TYPES)


def _redact_scalar(value: Any) -> Any:
    if isinstance(value, SecretStr | SecretBytes):
        return REDACTED
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    return value


def _redact_item(key: object, value: Any, depth: int) -> Any:
    if is_sensitive_key(key) and value not in (None, ""):
        return REDACTED
    return redact(value, depth)


def _redact_event(logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
    redacted: EventDict = redact(event_dict)
    return redacted


LEADING_KEYS = ("timestamp", "level", "logger", "event")


def _put_leading_keys_first(
    logger: WrappedLogger, method_name: str, event_dict: EventDict
) -> EventDict:
    ordered = {key: event_dict.pop(key) for key in LEADING_KEYS if key in event_dict}
    ordered.update(event_dict)
    return ordered


def ensure_logging_configured() -> None:
    """Configure console logging at INFO unless logging was configured already.

    structlog's default setup prints tracebacks with their local variables, which can
    hold secrets; code that runs staffsync without its command line gets this instead.
    """
    if not structlog.is_configured():
        # Not cached, so that a host program (or a test) can still reconfigure later.
        configure_logging("console", "info", cache_loggers=False)


def configure_logging(
    fmt: Literal["json", "console"],
    level: str = "info",
    stream: TextIO | None = None,
    *,
    cache_loggers: bool = True,
) -> None:
    """Route structlog and stdlib logging through one handler on the root logger.

    Args:
        fmt: ``json`` for one JSON object per line (the daemon), ``console`` for readable
            text (interactive commands).
        level: ``debug``, ``info``, ``warning``, ``error`` or ``critical``.
        stream: where lines go. Defaults to stdout for ``json`` and stderr for ``console``.
        cache_loggers: let each logger cache its configuration on first use (faster);
            a later ``structlog.configure`` call then no longer reaches those loggers.

    Calling it again replaces the handler it installed before, so lines are never doubled.

    Raises:
        ValueError: ``fmt`` or ``level`` is not one of the accepted names.
    """
    numeric_level = _parse_level(level)
    if stream is None:
        stream = sys.stdout if fmt == "json" else sys.stderr

    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            # Exceptions are rendered to text or dicts before redaction, so their messages
            # are masked too. Neither form includes local variables.
            *_exception_and_renderer(fmt, stream),
        ],
    )
    handler = logging.StreamHandler(stream)
    handler.set_name(HANDLER_NAME)
    handler.setFormatter(formatter)

    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == HANDLER_NAME]:
        root.removeHandler(old)
        old.close()
    root.addHandler(handler)
    root.setLevel(numeric_level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)

    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *shared,
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=cache_loggers,
    )


def _exception_and_renderer(fmt: str, stream: TextIO) -> list[Processor]:
    if fmt == "json":
        return [
            structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False)),
            _redact_event,
            _put_leading_keys_first,
            structlog.processors.JSONRenderer(),
        ]
    if fmt == "console":
        colors = bool(getattr(stream, "isatty", lambda: False)())
        return [
            structlog.processors.format_exc_info,
            _redact_event,
            structlog.dev.ConsoleRenderer(
                colors=colors, exception_formatter=structlog.dev.plain_traceback
            ),
        ]
    msg = f"log format must be 'json' or 'console', got {fmt!r}"
    raise ValueError(msg)


def _parse_level(level: str) -> int:
    try:
        return LEVELS[level.lower()]
    except KeyError:
        names = ", ".join(LEVELS)
        msg = f"log level must be one of {names}; got {level!r}"
        raise ValueError(msg) from None


@contextlib.contextmanager
def bind_run_context(run_id: str, **values: Any) -> Iterator[None]:
    """Add ``run_id`` and ``values`` to every log line of this thread inside the block.

    The keys are removed (or restored to their earlier values) when the block ends.
    Threads do not inherit context variables, so a job running in a scheduler worker
    thread calls this itself.
    """
    with structlog.contextvars.bound_contextvars(run_id=run_id, **values):
        yield
