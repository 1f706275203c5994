"""Settings are validated at start-up and credentials in the broker URL are decoded."""

from __future__ import annotations

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
