"""Settings are validated at start-up and credentials in the broker URL are decoded."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from foresight.settings import Settings


def test_mqtt_url_credentials_are_percent_decoded() -> None:
    s = Settings(mqtt_url="mqtt://backend:p%40ss%3Aword@broker.local:8883")
    assert s.mqtt_endpoint() == ("broker.local", 8883, "backend", "p@ss:word")
    assert Settings(mqtt_url="mqtt://broker.local").mqtt_endpoint() == ("broker.local", 1883, None, None)


@pytest.mark.parametrize("url", ["http://broker", "mqtt://", "mqtt://broker:99999", "broker:1883"])
def test_bad_mqtt_urls_are_refused_at_start_up(url: str) -> None:
    with pytest.raises(ValidationError):
        Settings(mqtt_url=url)


def test_environment_variables_configure_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESIGHT_DATABASE_URL", "postgresql+psycopg://u@db/foresight")
    monkeypatch.setenv("FORESIGHT_SCORE_INTERVAL_S", "2.5")
    s = Settings()
    assert s.database_url.startswith("postgresql") and s.score_interval_s == 2.5


def test_mqtts_url_turns_tls_on_with_port_8883() -> None:
    s = Settings(mqtt_url="mqtts://backend:pw@broker.local")
    assert s.mqtt_tls and s.mqtt_endpoint() == ("broker.local", 8883, "backend", "pw")
    context = s.mqtt_tls_context()
    assert context is not None and context.check_hostname and context.minimum_version.name == "TLSv1_2"
    assert Settings(mqtt_url="mqtt://broker.local").mqtt_tls_context() is None


def test_tls_files_are_checked_at_start_up(tmp_path: Path) -> None:
    ca = tmp_path / "ca.crt"
    ca.write_text("not read until a connection is made\n")
    with pytest.raises(ValidationError, match="TLS is off"):
        Settings(mqtt_url="mqtt://broker.local", mqtt_tls_ca_file=ca)  # certificates, yet plain TCP
    with pytest.raises(ValidationError, match="no such file"):
        Settings(mqtt_url="mqtts://broker.local", mqtt_tls_ca_file=tmp_path / "missing.crt")
    with pytest.raises(ValidationError, match="needs FORESIGHT_MQTT_TLS_CERT_FILE"):
        Settings(mqtt_tls=True, mqtt_tls_key_file=ca)
    assert Settings(mqtt_tls=True, mqtt_tls_ca_file=ca).mqtt_tls


@pytest.mark.parametrize(("url", "writer"), [
    ("sqlite:///var/foresight.db", "process"),
    ("postgresql+psycopg://u:pw@db/foresight", "process"),
    ("sqlite://", "thread"),
    ("sqlite:///:memory:", "thread"),
    ("sqlite:///file::memory:?cache=shared&uri=true", "thread"),
])
def test_ingest_writer_defaults_to_a_process_unless_the_database_lives_in_this_one(url: str, writer: str) -> None:
    assert Settings(database_url=url).ingest_writer == writer


def test_ingest_writer_is_a_validated_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FORESIGHT_INGEST_WRITER", "thread")
    assert Settings().ingest_writer == "thread"
    monkeypatch.setenv("FORESIGHT_INGEST_WRITER", "fork")
    with pytest.raises(ValidationError):
        Settings()
    monkeypatch.setenv("FORESIGHT_INGEST_WRITER", "process")
    with pytest.raises(ValidationError, match="in-memory SQLite"):
        Settings(database_url="sqlite://")
