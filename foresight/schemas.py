"""The API's request and response bodies (pydantic, strict at the boundary) and its error answers.

Requests are ``extra="forbid"``, strict, bounded, and refuse control characters in prose; the
rules a JSON Schema can state are stated, so clients and schemathesis see them in the OpenAPI spec.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field

from actions import BOOKING_OUTCOMES, TICKET_OUTCOMES, HouseholdPrefs

from .auth import Role

__all__ = ["ERRORS", "ActionRequest", "Cancellation", "Completion", "Login", "LoginResult", "PersonRequest",
           "PreferencesIn", "PreferencesOut", "PrincipalOut", "Problem", "Reschedule", "Resolution",
           "StatusChange", "Window", "prefs_out"]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class StatusChange(_Body):
    status: Literal["acknowledged", "done", "dismissed"]


def _no_control_characters(text: str) -> str:
    # Line breaks and tabs are prose; NUL and other control characters are not (PostgreSQL text
    # refuses NUL outright, which would otherwise surface as a 500).
    if any(ord(c) < 32 and c not in "\n\r\t" for c in text):
        raise ValueError("must not contain control characters")
    return text


#: The same rule as ``_no_control_characters``, stated in the OpenAPI schema for clients.
_PROSE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"
Text = Annotated[str, Field(min_length=1, max_length=4000, json_schema_extra={"pattern": _PROSE}),
                 AfterValidator(_no_control_characters)]


class PersonRequest(_Body):
    message: Annotated[Text, Field(max_length=2000)]
    device_id: str | None = Field(default=None, max_length=64)


Part = Annotated[str, Field(min_length=1, max_length=64, json_schema_extra={"pattern": _PROSE}),
                 AfterValidator(_no_control_characters)]
#: JSON carries times as ISO 8601 text; strict mode would refuse text for a datetime.
When = Annotated[AwareDatetime, Field(strict=False)]
NotificationAction = Literal["acknowledge", "snooze", "done", "book", "wrong", "talk_to_person"]
BookingOutcome = Literal[BOOKING_OUTCOMES]  # type: ignore[valid-type]
TicketOutcome = Literal[TICKET_OUTCOMES]  # type: ignore[valid-type]


class ActionRequest(_Body):
    """A homeowner's tap on a notification. ``snooze`` needs ``snooze_until`` (at most 14 days ahead)."""

    action: NotificationAction
    snooze_until: When | None = None
    message: Annotated[Text, Field(max_length=2000)] | None = None


class Completion(_Body):
    diagnosis: Text
    outcome: BookingOutcome = "confirmed_fault"
    parts: list[Part] = Field(default_factory=list, max_length=20)


class Resolution(_Body):
    """What a person did: ``action`` notify (the household gets ``message`` or the resolution), book, dismiss."""

    resolution: Text
    action: Literal["dismiss", "notify", "book"] = "dismiss"
    outcome: TicketOutcome | None = None
    message: Annotated[Text, Field(max_length=2000)] | None = None


class Cancellation(_Body):
    reason: Annotated[Text, Field(max_length=500)]


class Reschedule(_Body):
    """``start`` None: the next earliest slot that fits."""

    start: When | None = None


HHMM = Annotated[str, Field(pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$")]


class Window(_Body):
    # JSON Schema counts 3.0 as an integer; so does this (strict mode would not).
    weekdays: list[Annotated[int, Field(ge=0, le=6, strict=False)]] = Field(min_length=1, max_length=7)
    start: HHMM
    end: HHMM


class PreferencesIn(_Body):
    """A household's preferences. ``webhook_secret`` omitted: the saved one is kept."""

    name: str = Field(default="", max_length=128, json_schema_extra={"pattern": _PROSE})
    language: Literal["en", "zh"] = "en"
    timezone: str = Field(default="UTC", min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_+\-/]+$")
    quiet_start: HHMM | None = None
    quiet_end: HHMM | None = None
    channels: list[Literal["in_app", "webhook"]] = Field(default_factory=lambda: ["in_app"], max_length=2)
    webhook_url: str | None = Field(default=None, max_length=2000, pattern=r"^https?://[^\s]+$")
    webhook_secret: str | None = Field(default=None, min_length=16, max_length=256,
                                       pattern=r"^[\x21-\x7e]+$")
    availability: list[Window] = Field(default_factory=list, max_length=14)


class PreferencesOut(BaseModel):
    """A household's preferences as shown (never the webhook secret)."""

    household_id: str
    name: str
    language: str
    timezone: str
    quiet_start: str | None
    quiet_end: str | None
    channels: list[str]
    webhook_url: str | None
    #: The secret itself is never shown again.
    webhook_secret_set: bool
    availability: list[dict[str, Any]]


def prefs_out(p: HouseholdPrefs) -> PreferencesOut:
    return PreferencesOut(household_id=p.household_id, name=p.name, language=p.language, timezone=p.timezone,
                          quiet_start=p.quiet_start, quiet_end=p.quiet_end, channels=sorted(p.channels),
                          webhook_url=p.webhook_url, webhook_secret_set=bool(p.webhook_secret),
                          availability=[{"weekdays": sorted(w.weekdays), "start": w.start, "end": w.end}
                                        for w in p.availability])


class Login(_Body):
    user_id: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class PrincipalOut(BaseModel):
    user_id: str
    role: Role
    display_name: str
    household_id: str | None
    technician_id: str | None


class Problem(BaseModel):
    """What went wrong, in words (``ticket_id``: the ticket opened for a person, when one was)."""

    detail: str
    ticket_id: int | None = None


#: Answers every route may give besides its own: documented so clients (and schemathesis) expect them.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "not signed in (or the token expired)"},
    403: {"model": Problem, "description": "signed in with a role that may not do this"},
    404: {"model": Problem, "description": "no such object, or it belongs to someone else"},
    409: {"model": Problem, "description": "the object's state does not allow this"},
    413: {"model": Problem, "description": "request body too large"},
    429: {"model": Problem, "description": "too many requests; see Retry-After"},
}


class LoginResult(BaseModel):
    token: str
    token_type: Literal["bearer"] = "bearer"
    expires_at: datetime
    user: PrincipalOut
