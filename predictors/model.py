"""One failure mode's model: calibrated P(failure within horizon), remaining time, reasons, novelty.

``FailureModeModel`` follows the scikit-learn estimator contract (checked with
``parametrize_with_checks`` in the tests). It composes standard estimators:

* probability -- ``HistGradientBoostingClassifier`` (missing features are native) inside
  ``CalibratedClassifierCV``; the calibration folds are split by device (``groups``) so a device's
  own rows never calibrate its own scores;
* remaining time -- three ``HistGradientBoostingRegressor(loss="quantile")`` at the 10th, 50th and
  90th percentile of ``log1p(ttf_h)``, fitted on the rows whose capped time-to-failure is known,
  sorted at predict time so low <= median <= high and clipped to ``[0, ttf_cap_h]``; a device far
  from failure reports the cap; at most ``ttf_max_rows`` rows, drawn uniformly, to bound the cost;
  with ``conformal_intervals`` (the default; needs ``groups``) the outer quantiles are widened by a
  cross-conformal correction measured on out-of-fold devices, so the interval covers what it says
  on new devices, in bins of the predicted level; the corrections are part of the fitted model
  (``interval_edges_``, ``interval_correction_``, log hours);
* reasons -- ``explain``: weight of feature j for a row = (permutation importance of j, measured
  once at fit time on a training subsample and normalised to sum 1) x (robust z-score of the row's
  value against the *healthy* training rows: (x - median) / (IQR / 1.349)). A large positive weight
  means "an important feature, far above what healthy devices show"; negative, far below. It says
  which features look abnormal and matter to the model, not an exact attribution of the probability;
* novelty -- ``out_of_range``: per-feature 0.5th-99.5th training percentiles widened on both sides by
  ``ood_margin`` x their spread; any value outside means the model is extrapolating.

Small batches (up to ``COMPILED_MAX_ROWS`` rows: one device right after its reading) are scored by
``predictors.compiled`` -- the same fitted trees and calibrator copied into flat numpy arrays, equal
outputs without scikit-learn's per-call overhead; larger batches go through scikit-learn.

Fitting and prediction run on ``n_threads`` OpenMP threads (default 1). On a busy host (and training
shares the host with the service) each OpenMP parallel region waits for its slowest thread to be
scheduled: measured on a loaded 2-core box, one-row predictions took 8 ms with two threads (up to
300 ms once threads had gone idle) against 1.2 ms with one, and fits ran 3x faster single-threaded.
``None`` leaves the library default.

It never decides anything: thresholds live in the policy.
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from functools import cache
from typing import Any, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.inspection import permutation_importance
from sklearn.metrics import log_loss, make_scorer
from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted, validate_data
from threadpoolctl import ThreadpoolController

from predictors.compiled import CompiledOutlook, compile_outlook

__all__ = ["COMPILED_MAX_ROWS", "FailureModeModel", "Outlook"]

#: Batches up to this many rows are scored with the compiled trees (``predictors.compiled``); the
#: library's Cython is faster on big batches.
COMPILED_MAX_ROWS = 16

#: Remaining-time interval corrections: up to this many bins of the predicted level, each of at
#: least ``_CONFORMAL_MIN_BIN`` calibration rows (else one correction for all).
_CONFORMAL_BINS = 4
_CONFORMAL_MIN_BIN = 50


class Outlook(NamedTuple):
    """A batch's outputs, row-aligned: validated ``X``, P(fail), TTF ``(n, 3)`` low/median/high hours,
    top feature indices (-1: none) and weights ``(n, top)``, out-of-range flags ``(n, n_features)``."""

    X: np.ndarray
    p_fail: np.ndarray
    ttf_h: np.ndarray
    top_index: np.ndarray
    top_weight: np.ndarray
    out_of_range: np.ndarray


class FailureModeModel(ClassifierMixin, BaseEstimator):
    """Calibrated failure probability plus time-to-failure quantiles, reasons and a novelty check.

    ``fit(X, y, ttf_h=None, groups=None)``: ``y`` is 1 for "fails within the horizon"; ``ttf_h`` the
    capped hours to failure (NaN where unknown; without it there is no remaining-time estimate);
    ``groups`` the device of each row, for leakage-free calibration folds.
    """

    def __init__(self, *, calibration: str = "isotonic", cv: int = 3, max_iter: int = 100,
                 learning_rate: float = 0.1, max_leaf_nodes: int = 31, min_samples_leaf: int = 20,
                 l2_regularization: float = 0.0, quantiles: tuple[float, float, float] = (0.1, 0.5, 0.9),
                 ttf_cap_h: float = 720.0, ood_margin: float = 0.25, importance_repeats: int = 3,
                 importance_max_rows: int = 2000, ttf_max_rows: int = 20_000,
                 n_threads: int | None = 1, conformal_intervals: bool = True,
                 random_state: int | None = None) -> None:
        self.calibration = calibration
        self.cv = cv
        self.max_iter = max_iter
        self.learning_rate = learning_rate
        self.max_leaf_nodes = max_leaf_nodes
        self.min_samples_leaf = min_samples_leaf
        self.l2_regularization = l2_regularization
        self.quantiles = quantiles
        self.ttf_cap_h = ttf_cap_h
        self.ood_margin = ood_margin
        self.importance_repeats = importance_repeats
        self.importance_max_rows = importance_max_rows
        self.ttf_max_rows = ttf_max_rows
        self.n_threads = n_threads
        self.conformal_intervals = conformal_intervals
        self.random_state = random_state

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True
        return tags

    # ------------------------------------------------------------------ fit

    def fit(self, X: Any, y: Any, ttf_h: Any = None, groups: Any = None) -> FailureModeModel:
        """Fit the calibrated classifier, the TTF quantile regressors and the reference statistics."""
        with self._threads():
            return self._fit(X, y, ttf_h, groups)

    def _threads(self) -> AbstractContextManager[Any]:
        # OpenMP thread counts are per calling thread: this does not throttle the rest of the process.
        if self.n_threads is None:
            return nullcontext()
        return _threadpools().limit(limits=self.n_threads, user_api="openmp")

    def _fit(self, X: Any, y: Any, ttf_h: Any, groups: Any) -> FailureModeModel:
        X, y = validate_data(self, X, y, ensure_all_finite="allow-nan", dtype=np.float64)
        check_classification_targets(y)
        self.classes_ = np.unique(y)
        if self.classes_.size < 2:
            raise ValueError(f"need samples of at least 2 classes; got one class: {self.classes_[0]!r}")
        if self.calibration not in ("isotonic", "sigmoid"):
            raise ValueError(f"calibration must be 'isotonic' or 'sigmoid', got {self.calibration!r}")

        self.classifier_ = CalibratedClassifierCV(
            HistGradientBoostingClassifier(**self._boosting_params()),
            method=self.calibration, cv=self._splits(X, y, groups), ensemble=False,
        ).fit(X, y)
        self.n_iter_ = int(self.classifier_.calibrated_classifiers_[0].estimator.n_iter_)

        self.ttf_models_: tuple[HistGradientBoostingRegressor, ...] = ()
        if ttf_h is not None:
            t = np.asarray(ttf_h, dtype=np.float64).reshape(-1)
            if t.shape[0] != X.shape[0]:
                raise ValueError(f"ttf_h has {t.shape[0]} rows, X has {X.shape[0]}")
            known = np.flatnonzero(np.isfinite(t))
            if known.size > self.ttf_max_rows:
                # A uniform subsample leaves conditional quantiles unbiased and cuts the cost of
                # quantile boosting (a percentile per leaf per round) several-fold on big fleets.
                rng = np.random.default_rng(self.random_state)
                known = np.sort(rng.choice(known, self.ttf_max_rows, replace=False))
            if known.size >= 2 * self.min_samples_leaf:
                target = np.log1p(np.clip(t[known], 0.0, self.ttf_cap_h))
                self.interval_edges_, self.interval_correction_ = np.empty(0), np.zeros(1)
                if self.conformal_intervals and groups is not None:
                    self.interval_edges_, self.interval_correction_ = self._conformal_correction(
                        X[known], target, np.asarray(groups).reshape(-1)[known])
                self.ttf_models_ = self._fit_quantiles(X[known], target)

        self.importances_ = self._importances(X, y)
        healthy = X[y == self.classes_[0]]
        self.healthy_median_ = _col_percentile(healthy, 50.0)
        iqr = _col_percentile(healthy, 75.0) - _col_percentile(healthy, 25.0)
        spread = _col_std(X)
        scale = np.where(np.isfinite(iqr) & (iqr > 0), iqr / 1.349, spread)
        self.healthy_scale_ = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        lo, hi = _col_percentile(X, 0.5), _col_percentile(X, 99.5)
        pad = self.ood_margin * (hi - lo) + 1e-9 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        self.range_low_, self.range_high_ = lo - pad, hi + pad
        return self

    def _fit_quantiles(self, X: np.ndarray, target: np.ndarray) -> tuple[Any, ...]:
        return tuple(HistGradientBoostingRegressor(loss="quantile", quantile=q,
                                                   **self._boosting_params()).fit(X, target)
                     for q in (self.quantiles[0], self.quantiles[1], self.quantiles[2]))

    def _conformal_correction(self, X: np.ndarray, target: np.ndarray,
                              groups: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Cross-conformal widening of the outer quantiles (log hours), per predicted-level bin.

        Conformalized quantile regression (Romano et al., 2019) with the calibration scores of every
        device rather than of one held-out quarter: the devices are split into ``cv`` folds, the low
        and high quantile models fitted on the other folds score each fold's rows (the
        cross-conformal estimate, Vovk 2015: one split of 25 of C-MAPSS's 100 engines moved the test
        coverage between 72 % and 83 % with its seed). The score is ``max(low - y, y - high)``.
        Scores are grouped by the interval's centre into up to ``_CONFORMAL_BINS`` quantile bins
        (Mondrian conformal prediction): most rows of a fleet are far from failure, and one
        correction for all would be set by them and leave the near-failure rows -- the ones acted
        on -- uncovered. Each bin's correction is the ``(1 - a)(1 + 1/n)`` empirical quantile of its
        scores, ``a`` the nominal miss rate. Returns the bin edges (on the centre) and corrections.
        """
        none = (np.empty(0), np.zeros(1))
        devices = np.unique(groups)
        folds = max(2, self.cv)
        if devices.size < 4 * folds:
            return none
        rng = np.random.default_rng(self.random_state)
        fold_of = dict(zip(rng.permutation(devices), np.arange(devices.size) % folds, strict=True))
        fold = np.array([fold_of[d] for d in groups])
        low = np.full(target.shape[0], np.nan)
        high = np.full(target.shape[0], np.nan)
        for k in range(folds):
            cal = fold == k
            if cal.sum() < self.min_samples_leaf or (~cal).sum() < 2 * self.min_samples_leaf:
                return none
            low[cal], high[cal] = (HistGradientBoostingRegressor(loss="quantile", quantile=q,
                                                                 **self._boosting_params())
                                   .fit(X[~cal], target[~cal]).predict(X[cal])
                                   for q in (self.quantiles[0], self.quantiles[2]))
        low, high = np.minimum(low, high), np.maximum(low, high)
        score = np.maximum(low - target, target - high)
        centre = (low + high) / 2
        edges = np.unique(np.quantile(centre, np.linspace(0, 1, _CONFORMAL_BINS + 1)[1:-1]))
        bins = np.searchsorted(edges, centre, side="right")
        counts = np.bincount(bins, minlength=edges.size + 1)
        if counts.min() < max(_CONFORMAL_MIN_BIN, self.min_samples_leaf):
            edges, bins = np.empty(0), np.zeros_like(bins)
        nominal = self.quantiles[2] - self.quantiles[0]
        corrections = np.array([
            np.quantile(score[bins == b], min(1.0, nominal * (1 + 1 / int((bins == b).sum()))),
                        method="higher") for b in range(edges.size + 1)])
        return edges, corrections

    def _boosting_params(self) -> dict[str, Any]:
        return dict(max_iter=self.max_iter, learning_rate=self.learning_rate,
                    max_leaf_nodes=self.max_leaf_nodes, min_samples_leaf=self.min_samples_leaf,
                    l2_regularization=self.l2_regularization, early_stopping=False,
                    random_state=self.random_state)

    def _splits(self, X: np.ndarray, y: np.ndarray, groups: Any) -> list[tuple[np.ndarray, np.ndarray]]:
        if groups is None:
            splitter: Any = StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state)
            return list(splitter.split(X, y))
        g = np.asarray(groups).reshape(-1)
        if g.shape[0] != X.shape[0]:
            raise ValueError(f"groups has {g.shape[0]} rows, X has {X.shape[0]}")
        splitter = StratifiedGroupKFold(self.cv, shuffle=True, random_state=self.random_state)
        return list(splitter.split(X, y, g))

    def _importances(self, X: np.ndarray, y: np.ndarray) -> np.ndarray:
        rng = np.random.default_rng(self.random_state)
        rows = np.arange(X.shape[0])
        if rows.size > self.importance_max_rows:
            rows = np.sort(rng.choice(rows, self.importance_max_rows, replace=False))
        scorer = make_scorer(log_loss, greater_is_better=False, response_method="predict_proba",
                             labels=self.classes_)
        result = permutation_importance(self.classifier_, X[rows], y[rows], scoring=scorer,
                                        n_repeats=self.importance_repeats,
                                        random_state=self.random_state)
        imp = np.clip(np.nan_to_num(result.importances_mean), 0.0, None)
        total = imp.sum()
        return imp / total if total > 0 else np.full(X.shape[1], 1.0 / X.shape[1])

    # -------------------------------------------------------------- predict

    def _check(self, X: Any) -> np.ndarray:
        check_is_fitted(self)
        return validate_data(self, X, reset=False, ensure_all_finite="allow-nan", dtype=np.float64)

    def _check_small(self, X: np.ndarray) -> np.ndarray:
        """``_check`` for a small float array, without the library's fixed cost (same refusals)."""
        check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        if X.shape[1] != self.n_features_in_:
            raise ValueError(f"X has {X.shape[1]} features, but {type(self).__name__} is expecting "
                             f"{self.n_features_in_} features as input.")
        if X.shape[0] == 0:
            return self._check(X)  # the library's message for an empty array
        if np.isinf(X).any():
            raise ValueError("Input X contains infinity or a value too large for dtype('float64').")
        return X

    def predict_proba(self, X: Any) -> np.ndarray:
        """Calibrated class probabilities, columns in ``classes_`` order."""
        X = self._check(X)
        with self._threads():
            return self.classifier_.predict_proba(X)

    def outlook(self, X: Any, *, top: int = 3) -> Outlook:
        """Everything scoring needs in one validated pass: see ``Outlook``."""
        small = isinstance(X, np.ndarray) and X.ndim == 2 and X.shape[0] <= COMPILED_MAX_ROWS
        X = self._check_small(X) if small else self._check(X)
        if small:
            p, q = self._compiled().outputs(X)
            ttf = self._ttf_from(q) if self.ttf_models_ else np.full((X.shape[0], 3), np.nan)
        else:
            with self._threads():
                p = self.classifier_.predict_proba(X)[:, -1]
                ttf = self._ttf(X)
        idx, weight = self._explain(X, top)
        return Outlook(X=X, p_fail=p, ttf_h=ttf, top_index=idx, top_weight=weight,
                       out_of_range=self._out_of_range(X))

    def predict(self, X: Any) -> np.ndarray:
        """Most probable class (for the estimator contract; the policy reads probabilities)."""
        proba = self.predict_proba(X)
        return self.classes_[np.argmax(proba, axis=1)]

    def p_fail(self, X: Any) -> np.ndarray:
        """Calibrated probability of the positive class (the last of ``classes_``, 1 for 0/1 labels)."""
        return self.predict_proba(X)[:, -1]

    @property
    def has_ttf(self) -> bool:
        """Whether a remaining-time estimate was fitted (needs enough rows with known time)."""
        return bool(getattr(self, "ttf_models_", ()))

    def predict_ttf(self, X: Any) -> np.ndarray:
        """Hours to failure, ``(n, 3)``: low, median, high quantiles, ordered; NaN without TTF models."""
        X = self._check(X)
        with self._threads():
            return self._ttf(X)

    def _ttf(self, X: np.ndarray) -> np.ndarray:
        if not self.ttf_models_:
            return np.full((X.shape[0], 3), np.nan)
        return self._ttf_from(np.column_stack([m.predict(X) for m in self.ttf_models_]))

    def _ttf_from(self, raw_quantiles: np.ndarray) -> np.ndarray:
        q = np.sort(raw_quantiles, axis=1)
        # Models fitted before had one correction (a float) or none.
        corr = np.atleast_1d(np.asarray(getattr(self, "interval_correction_", 0.0), dtype=np.float64))
        edges = getattr(self, "interval_edges_", np.empty(0))
        if corr.any():
            per_row = corr[np.searchsorted(edges, (q[:, 0] + q[:, 2]) / 2, side="right")]
            q[:, 0] -= per_row
            q[:, 2] += per_row
            q = np.sort(q, axis=1)  # a negative correction could cross the median
        return np.clip(np.expm1(q), 0.0, self.ttf_cap_h)

    def _compiled(self) -> CompiledOutlook:
        """The fitted trees as flat arrays, built on first use (models registered before have none)."""
        compiled = getattr(self, "_compiled_outlook", None)
        if compiled is None or compiled[0] is not self.classifier_:
            compiled = (self.classifier_, compile_outlook(self.classifier_, self.ttf_models_))
            self._compiled_outlook = compiled
        return compiled[1]

    def explain(self, X: Any, *, top: int = 3) -> tuple[np.ndarray, np.ndarray]:
        """Per row, the ``top`` feature indices by |weight| and their weights (index -1: none)."""
        return self._explain(self._check(X), top)

    def _explain(self, X: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
        z = (X - self.healthy_median_) / self.healthy_scale_
        weight = np.nan_to_num(self.importances_ * z, nan=0.0, posinf=0.0, neginf=0.0)
        k = min(top, X.shape[1])
        order = np.argsort(-np.abs(weight), axis=1, kind="stable")[:, :k]
        w = np.take_along_axis(weight, order, axis=1)
        return np.where(w != 0.0, order, -1), w

    def out_of_range(self, X: Any) -> np.ndarray:
        """``(n, n_features)``: -1 below, +1 above the widened training range, 0 inside or missing."""
        return self._out_of_range(self._check(X))

    def _out_of_range(self, X: np.ndarray) -> np.ndarray:
        with np.errstate(invalid="ignore"):
            below = X < self.range_low_
            above = X > self.range_high_
        return above.astype(np.int8) - below.astype(np.int8)


@cache
def _threadpools() -> ThreadpoolController:
    """The process's thread pools, inspected once (inspection costs milliseconds)."""
    return ThreadpoolController()


def _finite_cols(X: np.ndarray) -> np.ndarray:
    return np.isfinite(X).any(axis=0) if X.shape[0] else np.zeros(X.shape[1], dtype=bool)


def _col_percentile(X: np.ndarray, q: float) -> np.ndarray:
    """nanpercentile per column, NaN (without a warning) for columns with no value."""
    out = np.full(X.shape[1], np.nan)
    ok = _finite_cols(X)
    if ok.any():
        out[ok] = np.nanpercentile(X[:, ok], q, axis=0)
    return out


def _col_std(X: np.ndarray) -> np.ndarray:
    out = np.full(X.shape[1], np.nan)
    ok = _finite_cols(X)
    if ok.any():
        out[ok] = np.nanstd(X[:, ok], axis=0)
    return out
