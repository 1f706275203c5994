"""The appliance kinds this process knows: those declared in code plus those onboarded from history.

``ingest.contract.PROFILES`` is the one registry the wire contract, feature store, scorer and policy
read. Kinds onboarded with ``foresight train --telemetry ...`` live in the database
(``ModelRegistry.profiles``); the composition root adds them here at start-up (``build_runtime``,
``foresight predict``) and after onboarding.
"""

from __future__ import annotations

from collections.abc import Mapping

from ingest.contract import PROFILES, ApplianceProfile

__all__ = ["BUILTIN_KINDS", "install_profiles"]

#: Kinds declared in code: captured at import, before any onboarded profile is installed.
BUILTIN_KINDS = frozenset(PROFILES)


def install_profiles(profiles: Mapping[str, ApplianceProfile]) -> list[str]:
    """Add onboarded profiles to this process's registry of kinds; returns the kinds added.

    A kind declared in code is never replaced (the registry refuses to onboard one, so a clash means
    a newer build declared the kind itself: the code wins).
    """
    added = []
    for kind, profile in profiles.items():
        if kind in BUILTIN_KINDS:
            continue
        PROFILES[kind] = profile
        added.append(kind)
    return added
