"""One typed settings object, read from ``FORESIGHT_*`` environment variables at start-up."""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Literal
from urllib.parse import unquote, urlparse

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

__all__ = ["PLACEHOLDER_SECRETS", "Settings"]

#: Secrets nobody may run production with (the development default and the usual stand-ins).
PLACEHOLDER_SECRETS = frozenset({"dev-only-insecure-secret-key", "", "changeme", "change-me", "secret",
                                 "password", "placeholder", "xxx"})


class Settings(BaseSettings):
    """Foresight's configuration. Defaults are the embedded demo set-up."""

    model_config = SettingsConfigDict(env_prefix="FORESIGHT_", extra="ignore")

    #: SQLAlchemy URL; SQLite under ./var by default, ``postgresql+psycopg://...`` in production.
    database_url: str = "sqlite:///var/foresight.db"
    #: ``mqtt://user:pass@host:port`` of a real broker (percent-encode ``@``/``:`` in the password);
    #: ``mqtts://`` turns TLS on (default port 8883). Unset → the demo starts an embedded amqtt broker.
    mqtt_url: str | None = None
    #: Connect to the broker over TLS (also implied by ``mqtts://``); the broker's certificate must
    #: chain to ``mqtt_tls_ca_file`` (or, without one, to the system's trusted CAs) and name its host.
    mqtt_tls: bool = False
    #: PEM file of the CA(s) that signed the broker's certificate.
    mqtt_tls_ca_file: Path | None = None
    #: PEM client certificate (and ``mqtt_tls_key_file``), for a listener with ``require_certificate true``.
    mqtt_tls_cert_file: Path | None = None
    mqtt_tls_key_file: Path | None = None
    model_dir: Path = Path("var/models")
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    #: Seconds between scoring sweeps over devices whose features changed.
    score_interval_s: float = Field(default=1.0, gt=0)
    #: Seconds between retrains from outcome labels (challenger vs champion; docs/learning.md).
    retrain_interval_s: float = Field(default=24 * 3600.0, gt=0)
    #: Seconds between feature-drift checks of the live models.
    drift_interval_s: float = Field(default=3600.0, gt=0)
    #: A process whose database's jobs already run elsewhere checks this often whether to take over.
    scheduler_standby_retry_s: float = Field(default=10.0, gt=0)
    #: Let webhooks reach loopback / private / link-local addresses (a closed network, tests). Off:
    #: a homeowner-chosen URL must not make the backend call inside the network (SSRF).
    webhook_allow_private: bool = False
    ingest_batch_size: int = Field(default=500, ge=1)
    #: Who stores the batches: ``process``, a child process with a core and a GIL of its own (the
    #: default), or ``thread``, a thread beside paho's in this process. Unset: ``process``, except for
    #: an in-memory SQLite database, which no other process can open (``thread``; ``process`` is refused).
    ingest_writer: Literal["thread", "process"] | None = None
    #: Batches sent ahead to the writer process (MQTT keeps arriving while it commits).
    ingest_batches_in_flight: int = Field(default=2, ge=1, le=16)
    #: A writer process silent this long while a batch waits on it is taken for hung: killed, started
    #: again, the batch re-sent.
    ingest_writer_timeout_s: float = Field(default=60.0, gt=0)
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

    #: ``production`` refuses placeholder secrets and sends cookies only over HTTPS.
    env: Literal["development", "production"] = "development"
    #: Keys the web pages' CSRF tokens (HMAC); at least 32 characters in production.
    secret_key: str = "dev-only-insecure-secret-key"
    #: How long a login (bearer token or web session) lasts.
    token_ttl_h: float = Field(default=12.0, gt=0, le=24 * 30)
    #: Requests per minute per signed-in user, or per client address before sign-in.
    rate_limit_per_minute: int = Field(default=600, ge=1)
    #: Login attempts per minute per client address and per user name (guessing passwords).
    login_attempts_per_minute: int = Field(default=10, ge=1)
    #: Largest request body accepted (413 above it).
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    #: ``Secure`` flag on the session cookie; always on in production.
    cookie_secure: bool = False

    @field_validator("mqtt_url")
    @classmethod
    def _check_mqtt_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        parsed = urlparse(value)
        if parsed.scheme not in ("mqtt", "mqtts", "tcp") or not parsed.hostname:
            raise ValueError("FORESIGHT_MQTT_URL must look like mqtt://[user:pass@]host[:port] (mqtts:// for TLS)")
        parsed.port  # noqa: B018  (raises ValueError for a bad port now, not at connect time)
        return value

    @model_validator(mode="after")
    def _choose_ingest_writer(self) -> Settings:
        in_memory = _in_memory_sqlite(self.database_url)
        if self.ingest_writer is None:
            self.ingest_writer = "thread" if in_memory else "process"
        elif self.ingest_writer == "process" and in_memory:
            raise ValueError("FORESIGHT_INGEST_WRITER=process needs a database another process can open; "
                             "an in-memory SQLite database is this process's alone (use thread)")
        return self

    @model_validator(mode="after")
    def _check_mqtt_tls(self) -> Settings:
        if self.mqtt_url is not None and urlparse(self.mqtt_url).scheme == "mqtts":
            self.mqtt_tls = True
        files = {"FORESIGHT_MQTT_TLS_CA_FILE": self.mqtt_tls_ca_file, "FORESIGHT_MQTT_TLS_CERT_FILE":
                 self.mqtt_tls_cert_file, "FORESIGHT_MQTT_TLS_KEY_FILE": self.mqtt_tls_key_file}
        given = [name for name, path in files.items() if path is not None]
        if given and not self.mqtt_tls:
            # Certificates configured but a plain connection: passwords would cross the wire in clear.
            raise ValueError(f"{', '.join(given)} set but TLS is off: set FORESIGHT_MQTT_TLS=true "
                             "or use an mqtts:// FORESIGHT_MQTT_URL")
        if self.mqtt_tls_key_file is not None and self.mqtt_tls_cert_file is None:
            raise ValueError("FORESIGHT_MQTT_TLS_KEY_FILE needs FORESIGHT_MQTT_TLS_CERT_FILE")
        for name, path in files.items():
            if path is not None and not path.is_file():
                raise ValueError(f"{name}: no such file {path}")
        return self

    @model_validator(mode="after")
    def _no_placeholder_secrets_in_production(self) -> Settings:
        if self.env == "production":
            key = self.secret_key.strip()
            if key.lower() in PLACEHOLDER_SECRETS or len(key) < 32:
                raise ValueError("FORESIGHT_SECRET_KEY must be set to a random value of at least 32 characters "
                                 "when FORESIGHT_ENV=production (e.g. `python -c 'import secrets; "
                                 "print(secrets.token_urlsafe(32))'`)")
            if self.mqtt_url is not None:
                password = self.mqtt_endpoint()[3]
                if password is not None and password.lower() in PLACEHOLDER_SECRETS:
                    raise ValueError("FORESIGHT_MQTT_URL carries a placeholder password; refused in production")
            self.cookie_secure = True
        return self

    def mqtt_endpoint(self) -> tuple[str, int, str | None, str | None]:
        """(host, port, username, password) of the configured broker."""
        if self.mqtt_url is None:
            raise ValueError("no FORESIGHT_MQTT_URL configured")
        p = urlparse(self.mqtt_url)
        user = unquote(p.username) if p.username is not None else None
        password = unquote(p.password) if p.password is not None else None
        return p.hostname or "127.0.0.1", p.port or (8883 if self.mqtt_tls else 1883), user, password

    def mqtt_tls_context(self) -> ssl.SSLContext | None:
        """The TLS context MQTT clients connect with (None: plain TCP); TLS 1.2+, hostname checked."""
        if not self.mqtt_tls:
            return None
        context = ssl.create_default_context(
            ssl.Purpose.SERVER_AUTH, cafile=str(self.mqtt_tls_ca_file) if self.mqtt_tls_ca_file else None)
        context.minimum_version = ssl.TLSVersion.TLSv1_2
        if self.mqtt_tls_cert_file is not None:
            context.load_cert_chain(self.mqtt_tls_cert_file, self.mqtt_tls_key_file)
        return context


def _in_memory_sqlite(url: str) -> bool:
    """``sqlite://``, ``sqlite:///:memory:``, ``sqlite:///file::memory:?...``, ``...?mode=memory``."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return False
    database = parsed.database or ""
    return (database in ("", ":memory:") or database.startswith("file::memory:")
            or parsed.query.get("mode") == "memory" or "mode=memory" in database)
