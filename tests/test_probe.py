import numpy as np
import pytest
from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score

from hf_finetune_curve import PriceProbe, ProbeConfig, fit_and_score, regression_scores


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_regression_scores_equal_sklearn(seed):
    rng = np.random.default_rng(seed)
    y_true = rng.lognormal(10, 1, size=300)
    y_pred = y_true * rng.lognormal(0, 0.3, size=300)
    scores = regression_scores(y_true, y_pred)
    assert scores["r2"] == pytest.approx(r2_score(y_true, y_pred), abs=1e-12)
    assert scores["mae"] == pytest.approx(mean_absolute_error(y_true, y_pred), abs=1e-9)
    assert scores["median_ae"] == pytest.approx(median_absolute_error(y_true, y_pred), abs=1e-9)
    assert scores["r2_log"] == pytest.approx(r2_score(np.log(y_true), np.log(y_pred)), abs=1e-12)
    # A few expensive rows dominate raw R²; on logs every row's relative error counts alike.
    skewed = y_true.copy()
    skewed[:3] *= 50
    before, after = regression_scores(y_true, y_pred), regression_scores(skewed, y_pred)
    assert before["r2"] - after["r2"] > 5 * (before["r2_log"] - after["r2_log"]) > 0
    assert np.isnan(regression_scores([1.0, 2.0], [-1.0, 2.0])["r2_log"])  # undefined, not an error


def test_probe_learns_and_roundtrips(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(400, 6)).astype(np.float32)
    y = np.exp(8 + X[:, 0] + 0.5 * X[:, 1])
    result = fit_and_score(X[:300], y[:300], X[300:], y[300:], ProbeConfig(n_estimators=150, n_jobs=2))
    assert result.scores["r2"] > 0.7
    result.probe.save(tmp_path / "probe.json")
    loaded = PriceProbe.load(tmp_path / "probe.json")
    assert loaded.config.target_transform == "log"
    np.testing.assert_array_equal(loaded.predict(X[300:]), result.predictions)


def test_probe_validation_messages():
    probe = PriceProbe(ProbeConfig(n_estimators=5))
    with pytest.raises(ValueError, match="NaN or inf"):
        probe.fit(np.array([[1.0], [np.nan]]), [1, 2])
    with pytest.raises(ValueError, match="must be > 0 for target_transform='log'"):
        probe.fit(np.ones((3, 2)), [1, 0, 2])
    with pytest.raises(ValueError, match="constant"):
        probe.fit(np.random.rand(4, 2), [5, 5, 5, 5])
    with pytest.raises(ValueError, match="3 embeddings but 2 targets"):
        probe.fit(np.random.rand(3, 2), [1, 2])
    with pytest.raises(ValueError, match="target_transform must be one of"):
        ProbeConfig(target_transform="sqrt")


def test_auto_device_fits_on_the_cpu_when_xgboost_has_no_cuda(monkeypatch):
    """A GPU machine with the small xgboost-cpu build: ``auto`` must not ask XGBoost for cuda."""
    import torch
    import xgboost

    from hf_finetune_curve.score.probe import resolve_xgb_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(xgboost, "build_info", lambda: {"USE_CUDA": False})
    assert resolve_xgb_device("auto") == "cpu"
    monkeypatch.setattr(xgboost, "build_info", lambda: {"USE_CUDA": True})
    assert resolve_xgb_device("auto") == "cuda"
    assert resolve_xgb_device("cpu") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_xgb_device("auto") == "cpu"
