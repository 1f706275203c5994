"""One typed settings object, read from ``FORESIGHT_*`` environment variables at start-up."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = ["Settings"]


class Settings(BaseSettings):
    """Foresight's configuration. Defaults are the embedded demo set-up."""

    model_config = SettingsConfigDict(env_prefix="FORESIGHT_", extra="ignore")

    #: SQLAlchemy URL; SQLite under ./var by default, ``postgresql+psycopg://...`` in production.
    database_url: str = "sqlite:///var/foresight.db"
    #: ``mqtt://user:pass@host:port`` of a real broker (percent-encode ``@``/``:`` in the password);
    #: unset → the demo starts an embedded amqtt broker.
    mqtt_url: str | None = None
    model_dir: Path = Path("var/models")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    #: Seconds between scoring sweeps over devices whose features changed.
    score_interval_s: float = Field(default=1.0, gt=0)
    ingest_batch_size: int = Field(default=500, ge=1)
    ingest_queue_size: int = Field(default=10_000, ge=10)
    ingest_client_id: str = "foresight-ingest"
    #: 3 (MQTT 3.1.1) or 5; with 5 the persistent session lives ``ingest_session_expiry_s``.
    mqtt_version: Literal[3, 5] = 3
    ingest_session_expiry_s: int = Field(default=7 * 24 * 3600, ge=0)
    #: Set on every worker of a scale-out: they then share ``$share/<group>/appliances/+/...``.
    ingest_shared_group: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    #: Days raw readings are kept before they are rolled into daily aggregates (``readings_daily``);
    #: at least the 30 days of past timestamps the ingester accepts, so a redelivery is always caught.
    retention_days: int = Field(default=90, ge=30)
    #: Seconds between retention roll-up runs.
    retention_interval_s: float = Field(default=3600.0, gt=0)
    #: ``text`` for people, ``json`` (one object per line) for a log shipper.
    log_format: Literal["text", "json"] = "text"

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("mqtt", "tcp") or not parsed.hostname:
            raise ValueError("FORESIGHT_MQTT_URL must look like mqtt://[user:pass@]host[:port]")
        parsed.port  # noqa: B018  (raises ValueError for a bad port now, not at connect time)
        return value

    def mqtt_endpoint(self) -> tuple[str, int, str | None, str | None]:
        """(host, port, username, password) of the configured broker."""
        if self.mqtt_url is None:
            raise ValueError("no FORESIGHT_MQTT_URL configured")
        p = urlparse(self.mqtt_url)
        user = unquote(p.username) if p.username is not None else None
        password = unquote(p.password) if p.password is not None else None
        return p.hostname or "127.0.0.1", p.port or 1883, user, password
