"""Model registry: fitted models as joblib files, their versions and which one is live in a table.

A version id reads ``<kind>.<mode>.v<n>`` (``rice_cooker.scale_buildup.v3``), ``n`` counting up per
(kind, mode). Files are written to a temporary name and renamed into place, so a reader never sees
half a model; the table row is committed after the file exists, so a row always has its file. The
``path`` column is relative to the registry's ``model_dir`` (the directory can move). At most one
version per (kind, mode) is live.

``register_all`` registers several versions -- and the profiles of onboarded appliance kinds
(``appliance_profiles``, one row per kind the code does not declare) -- in one transaction: either
every version and profile is registered, or nothing is and no file is left behind.

The table lives on ``ingest.db.Base``: ``ingest.db.create_schema(engine)`` creates it once this
module has been imported.
"""

from __future__ import annotations

import math
import os
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import joblib
import numpy as np
from sqlalchemy import Boolean, Engine, Integer, String, Text, UniqueConstraint, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ingest.contract import ApplianceProfile
from ingest.db import Base
from predictors.errors import ModelFileError, NoLiveModel, PredictorsError
from predictors.model import FailureModeModel
from predictors.profile_file import OnboardingProfile, profile_from_dict, profile_to_dict

__all__ = ["Candidate", "LoadedModel", "ModelRegistry", "ModelVersion", "ModelVersionRow",
           "ProfileRow"]

_FORMAT = "foresight.predictors.model/1"


class ModelVersionRow(Base):
    """One registered model version."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("kind", "mode", "number", name="uq_model_versions_number"),)

    version: Mapped[str] = mapped_column(String(160), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), index=True)
    mode: Mapped[str] = mapped_column(String(64))
    number: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime]
    path: Mapped[str] = mapped_column(Text)
    summary: Mapped[dict[str, Any]]
    is_live: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    note: Mapped[str] = mapped_column(Text, default="")


class ProfileRow(Base):
    """The profile of an appliance kind onboarded from history (not declared in code)."""

    __tablename__ = "appliance_profiles"

    kind: Mapped[str] = mapped_column(String(32), primary_key=True)
    spec: Mapped[dict[str, Any]]
    #: How its models are trained: ``ttf_cap_h``, ``min_positives``, ``conformal_intervals``
    #: (null: the defaults).
    training: Mapped[dict[str, Any]]
    #: Where it came from: ``profile file <name>`` or ``inferred from <telemetry file>``.
    source: Mapped[str] = mapped_column(Text, default="")
    registered_at: Mapped[datetime]


@dataclass(frozen=True, slots=True, kw_only=True)
class Candidate:
    """A fitted model waiting to be registered as the next version of (kind, mode)."""

    kind: str
    mode: str
    model: FailureModeModel
    summary: dict[str, Any]
    make_live: bool = True
    note: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelVersion:
    """A registry entry, as the rest of the system sees it."""

    version: str
    kind: str
    mode: str
    number: int
    created_at: datetime
    path: Path
    summary: dict[str, Any]
    is_live: bool
    note: str


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModel:
    """A live model in memory with what scoring needs to feed it."""

    version: str
    kind: str
    mode: str
    features: tuple[str, ...]
    horizon_h: float
    model: FailureModeModel
    summary: dict[str, Any] = field(default_factory=dict)


class ModelRegistry:
    """Registers fitted models and serves the live one per (kind, mode), cached until it changes."""

    def __init__(self, engine: Engine, model_dir: Path) -> None:
        self._engine = engine
        self._dir = Path(model_dir)
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], LoadedModel] = {}

    @property
    def model_dir(self) -> Path:
        return self._dir

    def register(self, kind: str, mode: str, model: FailureModeModel, summary: dict[str, Any], *,
                 now: datetime, make_live: bool = True, note: str = "") -> str:
        """Store a fitted model as the next version of (kind, mode); returns the version id.

        ``summary`` must carry ``features`` (the model's column order) and ``horizon_h``.
        """
        return self.register_all([Candidate(kind=kind, mode=mode, model=model, summary=summary,
                                            make_live=make_live, note=note)], now=now)[0]

    def register_all(self, candidates: Sequence[Candidate], *, now: datetime,
                     profiles: Sequence[OnboardingProfile] = ()) -> list[str]:
        """Register every candidate and onboarded profile in one transaction; the version ids.

        On any failure nothing is registered and the files already written are removed.
        """
        for c in candidates:
            features = tuple(c.summary.get("features", ()))
            if "horizon_h" not in c.summary or not features:
                raise PredictorsError("summary needs 'features' and 'horizon_h'")
            if getattr(c.model, "n_features_in_", None) != len(features):
                raise PredictorsError(f"model expects {getattr(c.model, 'n_features_in_', None)} "
                                      f"features, summary lists {len(features)}")
        self._dir.mkdir(parents=True, exist_ok=True)
        written: list[Path] = []
        versions: list[str] = []
        try:
            with Session(self._engine) as session, session.begin():
                for onb in profiles:
                    session.merge(ProfileRow(kind=onb.profile.kind, spec=profile_to_dict(onb.profile),
                                             training={"ttf_cap_h": onb.ttf_cap_h,
                                                       "min_positives": onb.min_positives,
                                                       "conformal_intervals": onb.conformal_intervals},
                                             source=onb.source, registered_at=now))
                for c in candidates:
                    versions.append(self._register_in(session, c, now=now, written=written))
        except BaseException:
            for path in written:
                path.unlink(missing_ok=True)
            raise
        return versions

    def _register_in(self, session: Session, c: Candidate, *, now: datetime,
                     written: list[Path]) -> str:
        clean = _jsonable(c.summary)
        last = session.scalar(select(func.max(ModelVersionRow.number))
                              .where(ModelVersionRow.kind == c.kind, ModelVersionRow.mode == c.mode))
        number = (last or 0) + 1
        version = f"{c.kind}.{c.mode}.v{number}"
        # A unique file name: a concurrent registration of the same number must not clobber
        # ours (it fails on the primary key and removes only its own file).
        filename = f"{version}.{uuid.uuid4().hex[:8]}.joblib"
        payload = {"format": _FORMAT, "version": version, "kind": c.kind, "mode": c.mode,
                   "features": tuple(clean["features"]), "horizon_h": float(clean["horizon_h"]),
                   "model": c.model, "summary": clean}
        written.append(self._dir / filename)  # before writing: a half-done write is cleaned up too
        _dump_atomic(payload, self._dir / filename)
        if c.make_live:
            session.execute(update(ModelVersionRow)
                            .where(ModelVersionRow.kind == c.kind, ModelVersionRow.mode == c.mode)
                            .values(is_live=False))
        session.add(ModelVersionRow(version=version, kind=c.kind, mode=c.mode, number=number,
                                    created_at=now, path=filename, summary=clean,
                                    is_live=c.make_live, note=c.note))
        session.flush()  # a clash of version numbers fails here, before the next file is written
        return version

    def profiles(self) -> dict[str, ApplianceProfile]:
        """The profiles of onboarded kinds, by kind."""
        return {k: o.profile for k, o in self.onboarded().items()}

    def onboarded(self) -> dict[str, OnboardingProfile]:
        """Onboarded kinds with their training options and where their profile came from."""
        with Session(self._engine) as session:
            return {r.kind: OnboardingProfile(
                        profile=profile_from_dict(r.spec), ttf_cap_h=r.training.get("ttf_cap_h"),
                        min_positives=r.training.get("min_positives"),
                        conformal_intervals=r.training.get("conformal_intervals"),
                        source=f"registered {r.registered_at:%Y-%m-%d %H:%M}Z ({r.source})")
                    for r in session.scalars(select(ProfileRow).order_by(ProfileRow.kind))}

    def promote(self, version: str) -> None:
        """Make ``version`` the live one of its (kind, mode) (roll forward or back)."""
        with Session(self._engine) as session, session.begin():
            row = session.get(ModelVersionRow, version)
            if row is None:
                raise PredictorsError(f"unknown model version {version!r}")
            session.execute(update(ModelVersionRow)
                            .where(ModelVersionRow.kind == row.kind, ModelVersionRow.mode == row.mode)
                            .values(is_live=False))
            row.is_live = True

    def live(self, kind: str, mode: str) -> LoadedModel | None:
        """The live model of (kind, mode), loaded once and reloaded when the live version changes."""
        with self._engine.connect() as conn:
            found = conn.execute(select(ModelVersionRow.version, ModelVersionRow.path)
                                 .where(ModelVersionRow.kind == kind, ModelVersionRow.mode == mode,
                                        ModelVersionRow.is_live.is_(True))
                                 .order_by(ModelVersionRow.number.desc()).limit(1)).first()
        key = (kind, mode)
        with self._lock:
            if found is None:
                self._cache.pop(key, None)
                return None
            version, path = found
            cached = self._cache.get(key)
            if cached is not None and cached.version == version:
                return cached
            loaded = self._load(self._dir / path, version)
            self._cache[key] = loaded
            return loaded

    def require_live(self, kind: str, mode: str) -> LoadedModel:
        """Like ``live`` but raises ``NoLiveModel`` instead of returning None."""
        loaded = self.live(kind, mode)
        if loaded is None:
            raise NoLiveModel(kind, mode)
        return loaded

    def versions(self, kind: str | None = None) -> list[ModelVersion]:
        """Every registered version (of one kind, if given), by kind, mode and number."""
        stmt = select(ModelVersionRow).order_by(ModelVersionRow.kind, ModelVersionRow.mode,
                                                ModelVersionRow.number)
        if kind is not None:
            stmt = stmt.where(ModelVersionRow.kind == kind)
        with Session(self._engine) as session:
            return [ModelVersion(version=r.version, kind=r.kind, mode=r.mode, number=r.number,
                                 created_at=r.created_at, path=self._dir / r.path,
                                 summary=dict(r.summary), is_live=r.is_live, note=r.note)
                    for r in session.scalars(stmt)]

    @staticmethod
    def _load(path: Path, version: str) -> LoadedModel:
        try:
            payload = joblib.load(path)
        except (OSError, EOFError, ValueError) as exc:
            raise ModelFileError(f"cannot load {version} from {path}: {exc}") from exc
        if not isinstance(payload, dict) or payload.get("format") != _FORMAT \
                or payload.get("version") != version:
            raise ModelFileError(f"{path} does not hold model version {version}")
        return LoadedModel(version=version, kind=payload["kind"], mode=payload["mode"],
                           features=tuple(payload["features"]), horizon_h=payload["horizon_h"],
                           model=payload["model"], summary=payload.get("summary", {}))


def _dump_atomic(obj: Any, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            joblib.dump(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _jsonable(value: Any) -> Any:
    """Plain JSON: numpy scalars to Python, tuples to lists, NaN and infinities to None."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | np.ndarray):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, datetime):
        return value.isoformat()
    return value
