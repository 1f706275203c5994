"""Fitted histogram gradient boosting as flat numpy arrays, for scoring one device in microseconds.

scikit-learn's ``predict`` pays a fixed cost per call -- input validation, thread-pool set-up and
one Cython call per tree -- of about a millisecond per estimator; a failure mode has four of them
(the calibrated classifier and three quantile regressors), so scoring one device right after its
reading took 14 ms (p50) though the arithmetic is a few thousand comparisons. ``CompiledForest``
copies every tree of several fitted ``HistGradientBoostingClassifier``/``Regressor`` models (binary
or single-output, numeric features) into one set of arrays and walks all their trees for a row at
once, one tree level per step (a leaf points to itself, so finished trees just stay put). It
reproduces the library's arithmetic exactly: the same split rule (``x <= threshold`` goes left, NaN
goes where the tree learned to send it) and raw scores summed in the same order (baseline, then
tree by tree) -- ``tests/predictors/test_compiled.py`` checks the outputs are equal.

``CompiledOutlook`` adds the calibrated probability of ``CalibratedClassifierCV(ensemble=False)``
(isotonic or sigmoid, applied with the fitted calibrator's own interpolation): everything
``FailureModeModel.outlook`` needs from scikit-learn, in one traversal.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.special import expit

__all__ = ["CompiledForest", "CompiledOutlook", "compile_outlook"]


class CompiledForest:
    """The trees of several fitted boosting models; ``raw(X)`` = each model's raw score per row."""

    def __init__(self, estimators: Sequence[Any]) -> None:
        feature, threshold, left, right, missing_left, value, owner = [], [], [], [], [], [], []
        roots: list[int] = []
        self.baselines = np.empty(len(estimators))
        #: Per model, the slice of ``roots`` holding its trees (in boosting order).
        self.slices: list[slice] = []
        offset, depth = 0, 0
        for m, est in enumerate(estimators):
            if any(len(it) != 1 for it in est._predictors):
                raise ValueError("only binary classification or single-output regression compiles")
            self.baselines[m] = float(np.asarray(est._baseline_prediction).reshape(-1)[0])
            first = len(roots)
            for (tree,) in est._predictors:
                nodes = tree.nodes
                if nodes["is_categorical"].any():
                    raise ValueError("categorical splits are not compiled")
                idx = np.arange(len(nodes)) + offset
                leaf = nodes["is_leaf"].astype(bool)
                roots.append(offset)
                feature.append(np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp))
                threshold.append(nodes["num_threshold"].astype(np.float64))
                left.append(np.where(leaf, idx, nodes["left"].astype(np.intp) + offset))
                right.append(np.where(leaf, idx, nodes["right"].astype(np.intp) + offset))
                missing_left.append(nodes["missing_go_to_left"].astype(bool))
                value.append(nodes["value"].astype(np.float64))
                owner.append(np.full(len(nodes), m))
                offset += len(nodes)
                depth = max(depth, int(nodes["depth"].max()))
            self.slices.append(slice(first, len(roots)))
        join = (lambda parts, dt: np.concatenate(parts).astype(dt) if parts else np.empty(0, dt))
        self.roots = np.asarray(roots, dtype=np.intp)
        self.feature = join(feature, np.intp)
        self.threshold = join(threshold, np.float64)
        self.left = join(left, np.intp)
        self.right = join(right, np.intp)
        self.missing_left = join(missing_left, bool)
        self.value = join(value, np.float64)
        self.depth = depth

    def raw(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_models)`` raw scores: each model's baseline plus its trees' leaf values."""
        out = np.empty((X.shape[0], len(self.slices)))
        for i in range(X.shape[0]):
            out[i] = self._raw_row(X[i])
        return out

    def _raw_row(self, x: np.ndarray) -> np.ndarray:
        node = self.roots
        for _ in range(self.depth):
            v = x[self.feature[node]]
            go_left = np.where(v != v, self.missing_left[node], v <= self.threshold[node])
            node = np.where(go_left, self.left[node], self.right[node])
        leaves = self.value[node]
        res = np.empty(len(self.slices))
        for m, sl in enumerate(self.slices):
            # Summed in the library's order -- baseline, then tree by tree -- so the floats agree.
            res[m] = np.cumsum(np.concatenate(([self.baselines[m]], leaves[sl])))[-1]
        return res


class CompiledOutlook:
    """Calibrated P(positive) and the quantile regressors' outputs of a ``FailureModeModel``."""

    def __init__(self, classifier: Any, calibrators: Sequence[Any], method: str,
                 regressors: Sequence[Any]) -> None:
        if len(calibrators) != 1:
            raise ValueError("only a binary calibrated classifier compiles")
        self.forest = CompiledForest([classifier, *regressors])
        self.calibrator = calibrators[0]
        self.method = method

    def outputs(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``CalibratedClassifierCV.predict_proba(X)[:, 1]`` and ``(n, n_regressors)`` predictions."""
        raw = self.forest.raw(X)
        return self._calibrate(raw[:, 0]), raw[:, 1:]

    def p_positive(self, X: np.ndarray) -> np.ndarray:
        """What ``CalibratedClassifierCV.predict_proba(X)[:, 1]`` returns."""
        return self.outputs(X)[0]

    def quantiles(self, X: np.ndarray) -> np.ndarray:
        """``(n, n_regressors)``: each quantile regressor's ``predict(X)``."""
        return self.outputs(X)[1]

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        c = self.calibrator
        if self.method == "isotonic":
            p = c.f_(np.clip(raw, c.X_min_, c.X_max_)).astype(raw.dtype)
        else:
            p = expit(-(c.a_ * raw + c.b_))
        p = np.asarray(p, dtype=np.float64)
        p[(1.0 < p) & (p <= 1.0 + 1e-5)] = 1.0
        return p


def compile_outlook(calibrated: Any, regressors: Sequence[Any]) -> CompiledOutlook:
    """Compile a fitted ``CalibratedClassifierCV(ensemble=False)`` over HGB and HGB regressors."""
    if len(calibrated.calibrated_classifiers_) != 1:
        raise ValueError("only CalibratedClassifierCV(ensemble=False) compiles")
    cc = calibrated.calibrated_classifiers_[0]
    return CompiledOutlook(cc.estimator, cc.calibrators, cc.method, regressors)
