"""The compiled trees give exactly scikit-learn's outputs: probabilities, quantiles, whole outlooks."""

from __future__ import annotations

import numpy as np
import pytest

from predictors import FailureModeModel
from predictors.compiled import CompiledForest, compile_outlook


def _rows(trained, kind, mode, n=400, seed=0):
    """Real training rows plus perturbed, missing and far-out values."""
    model = trained.registry.live(kind, mode).model
    rng = np.random.default_rng(seed)
    from predictors import build_frames

    frame = build_frames(trained.fleet.readings, trained.fleet.failures)[(kind, mode)]
    X = frame.X[rng.choice(frame.n_rows, n, replace=False)].copy()
    X[: n // 4] += rng.normal(0, 1, X[: n // 4].shape) * np.nanstd(frame.X, axis=0)
    X[rng.random(X.shape) < 0.05] = np.nan
    X[-5:] = 1e9
    X[-10:-5] = -1e9
    return model, X


@pytest.mark.parametrize(("kind", "mode"), [("rice_cooker", "scale_buildup"),
                                            ("rice_cooker", "heating_element_wear"),
                                            ("air_conditioner", "filter_clogging")])
def test_compiled_outputs_equal_the_library_exactly(trained, kind, mode):
    model, X = _rows(trained, kind, mode)
    fast = compile_outlook(model.classifier_, model.ttf_models_)
    np.testing.assert_array_equal(fast.p_positive(X), model.classifier_.predict_proba(X)[:, 1])
    np.testing.assert_array_equal(fast.quantiles(X),
                                  np.column_stack([m.predict(X) for m in model.ttf_models_]))
    # Row by row, the way one device is scored after its reading, through the public outlook.
    big = model.outlook(X)  # 400 rows: the library's path
    for i in range(0, len(X), 37):
        one = model.outlook(X[i:i + 1])
        np.testing.assert_array_equal(one.p_fail, big.p_fail[i:i + 1])
        np.testing.assert_array_equal(one.ttf_h, big.ttf_h[i:i + 1])
        np.testing.assert_array_equal(one.top_index, big.top_index[i:i + 1])


def test_sigmoid_calibration_and_a_model_without_remaining_time_compile_too():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(600, 4))
    X[rng.random(X.shape) < 0.1] = np.nan
    y = (np.nan_to_num(X[:, 0]) + rng.normal(0, 0.5, 600) > 0.8).astype(int)
    model = FailureModeModel(calibration="sigmoid", max_iter=20, random_state=0).fit(X, y)
    small = model.outlook(X[:3])
    np.testing.assert_array_equal(small.p_fail, model.predict_proba(X[:3])[:, 1])
    assert np.isnan(small.ttf_h).all()


def test_a_tree_less_model_returns_its_baseline():
    from sklearn.ensemble import HistGradientBoostingRegressor

    X = np.zeros((50, 2))
    reg = HistGradientBoostingRegressor(max_iter=3).fit(X, np.full(50, 3.0))
    np.testing.assert_array_equal(CompiledForest([reg]).raw(X[:2])[:, 0], reg.predict(X[:2]))


def test_the_fast_path_refuses_what_the_library_refuses(trained):
    model = trained.registry.live("air_conditioner", "filter_clogging").model
    n = model.n_features_in_
    with pytest.raises(ValueError, match="infinity"):
        model.outlook(np.full((1, n), np.inf))
    with pytest.raises(ValueError, match="features"):
        model.outlook(np.zeros((1, n + 1)))
