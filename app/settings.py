"""Service settings, read from `APP_*` environment variables.

Each external URL (`APP_DATABASE_URL`, `APP_CLICKHOUSE_URL`, `APP_REDIS_URL`) independently
replaces its embedded backend; when a URL is unset the embedded engine under `APP_DATA_DIR`
is started instead.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SECRET_KEY = "insecure-local-development-secret-key"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="APP_", extra="ignore", frozen=False)

    env: Literal["local", "test", "production"] = "local"
    data_dir: Path = Path("./.data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = True

    # External backends. Unset → embedded engine under data_dir.
    database_url: str | None = None
    clickhouse_url: str | None = None
    clickhouse_user: str = "default"
    clickhouse_password: SecretStr = SecretStr("")
    clickhouse_database: str = "tally"
    clickhouse_cluster: str | None = None
    redis_url: str | None = None

    frozen_now: datetime | None = None
    secret_key: SecretStr = SecretStr(DEFAULT_SECRET_KEY)

    # Limits.
    max_body_bytes: int = Field(default=20 * 1024 * 1024, ge=1024)
    query_timeout_seconds: int = Field(default=60, ge=1, le=3600)
    query_max_memory_bytes: int = Field(default=4 * 1024**3, ge=1024**2)
    query_max_result_rows: int = Field(default=1_000_000, ge=1)
    chdb_pool_size: int = Field(default=3, ge=2, le=32)
    db_pool_size: int = Field(default=10, ge=1, le=200)

    # Per-key rate limits (spec/API.md §1.9). "off" disables them.
    rate_limits: Literal["on", "off"] = "on"
    rate_limit_insight_per_minute: int = Field(default=240, ge=1)
    rate_limit_insight_per_hour: int = Field(default=1200, ge=1)
    rate_limit_element_per_minute: int = Field(default=480, ge=1)
    rate_limit_element_per_hour: int = Field(default=4800, ge=1)
    # Every other keyed route (environments, definitions, dashboards): PostHog's general pair.
    rate_limit_default_per_minute: int = Field(default=480, ge=1)
    rate_limit_default_per_hour: int = Field(default=4800, ge=1)
    # In-process cache of authenticated keys, environments and memberships (seconds; 0 disables).
    # Writes through this process invalidate it at once; other processes see changes within it.
    auth_cache_seconds: float = Field(default=5.0, ge=0, le=300)

    # Capture rate limit per project token (INGESTION.md §6), shared by every process through Redis:
    # events per second averaged over a fixed window (0 = off, the default). "reject" answers 429
    # (SDKs retry later); "drop" answers 200 and discards the excess, like a billing quota.
    capture_rate_limit_events_per_second: int = Field(default=0, ge=0)
    capture_rate_limit_window_seconds: int = Field(default=10, ge=1, le=3600)
    capture_rate_limit_mode: Literal["reject", "drop"] = "reject"

    # Demo events generated for the default environment on the very first start of `serve`
    # (0 disables; tests use 0).
    demo_events: int = Field(default=100_000, ge=0)

    # Run the arq worker inside the API process (default when ClickHouse is embedded, since
    # chDB's data dir belongs to one process).
    inprocess_worker: bool | None = None

    # Optional OpenAI-compatible model that may rewrite insight analyses (spec/API.md §3.11). Off while
    # llm_base_url is unset; used only for organizations that approved AI data processing.
    llm_base_url: str | None = None
    llm_model: str | None = None
    llm_api_key: SecretStr = SecretStr("")
    llm_timeout_seconds: float = Field(default=10.0, gt=0, le=60)

    # Abuse limits of the `/api/` routes (issue 9; capture keeps its spec/INGESTION.md §7 limits):
    # request body size (413, at most max_body_bytes) and JSON nesting depth (400 parse_error).
    # list_max_limit caps `limit` on list routes silently (no 400); unset = no cap (spec/API.md §1.7).
    api_max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    api_max_json_depth: int = Field(default=64, ge=8, le=512)
    list_max_limit: int | None = Field(default=None, ge=1)
    # Blocking query executions running at once per environment (app/services/query_runner.py reads
    # it); more → 429 throttled_error with Retry-After (insights: the §3.4 failure status). Not affected by APP_RATE_LIMITS.
    query_concurrency_limit: int = Field(default=10, ge=1, le=1000)

    # HogQL (issue 7/9): longest accepted HogQL text, in characters (longer → 400 validation_error).
    hogql_max_length: int = Field(default=100_000, ge=1_000, le=10_000_000)

    @field_validator("frozen_now")
    @classmethod
    def _frozen_now_is_aware(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)

    @field_validator("database_url")
    @classmethod
    def _database_url_is_asyncpg(cls, value: str | None) -> str | None:
        if not value:
            return None
        if value.startswith(("postgres://", "postgresql://")):
            value = "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a postgresql:// or postgresql+asyncpg:// URL")
        return value

    @field_validator("clickhouse_url")
    @classmethod
    def _clickhouse_url_is_http(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL of a ClickHouse server")
        return value.rstrip("/")

    @field_validator("redis_url")
    @classmethod
    def _redis_url_scheme(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must be a redis://, rediss:// or unix:// URL")
        return value

    @field_validator("clickhouse_database", "clickhouse_cluster")
    @classmethod
    def _identifier(cls, value: str | None) -> str | None:
        import re

        if value is not None and not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", value):
            raise ValueError("must be a plain identifier (letters, digits, underscore)")
        return value

    @model_validator(mode="after")
    def _secret_changed_outside_local(self) -> "Settings":
        if self.env == "production" and self.secret_key.get_secret_value() == DEFAULT_SECRET_KEY:
            raise ValueError("APP_SECRET_KEY must be set when APP_ENV=production")
        return self

    @property
    def data_path(self) -> Path:
        return self.data_dir.expanduser().resolve()

    @property
    def embedded_clickhouse(self) -> bool:
        return self.clickhouse_url is None

    @property
    def run_inprocess_worker(self) -> bool:
        if self.inprocess_worker is not None:
            return self.inprocess_worker
        return self.embedded_clickhouse


def load_settings(**overrides: object) -> Settings:
    return Settings(**overrides)  # type: ignore[arg-type]


def describe_settings_error(exc: Exception) -> str:
    """One line naming each invalid setting, for startup failures."""
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        parts = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err.get("loc", ()) if p != "__root__")
            name = f"APP_{loc.upper()}" if loc else "settings"
            parts.append(f"{name}: {err.get('msg', 'invalid')}")
        return "invalid settings: " + "; ".join(parts)
    return f"invalid settings: {exc}"
