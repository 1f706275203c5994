"""FailureModeModel honours the scikit-learn estimator contract."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from predictors.model import FailureModeModel


@parametrize_with_checks([FailureModeModel(max_iter=10, importance_repeats=1, random_state=0)])
def test_sklearn_contract(estimator, check):
    check(estimator)
