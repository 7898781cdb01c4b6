"""Thread counts come from the cores this process may use and that nothing else keeps busy."""

import json

import numpy as np

from hf_finetune_curve import cores
from hf_finetune_curve.score.probe import PriceProbe, ProbeConfig, fit_and_score


def test_explicit_count_then_omp_num_threads_then_the_free_cores(monkeypatch):
    assert cores.thread_budget(3) == 3
    monkeypatch.setenv("OMP_NUM_THREADS", "2")
    assert cores.thread_budget() == 2
    monkeypatch.delenv("OMP_NUM_THREADS")
    monkeypatch.setattr(cores, "usable_cores", lambda: 8)
    monkeypatch.setattr(cores, "busy_elsewhere", lambda: 3)
    assert cores.thread_budget() == 5
    monkeypatch.setattr(cores, "busy_elsewhere", lambda: 20)  # every core busy: still one thread, never zero
    assert cores.thread_budget() == 1


def test_usable_cores_follow_the_affinity():
    import os

    assert 1 <= cores.usable_cores() <= len(os.sched_getaffinity(0))
    assert cores.busy_elsewhere(samples=2, interval=0.0) >= 0


def _rows(n=120, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    return X, np.exp(3 + X[:, 0] + 0.1 * rng.normal(size=n))


def test_xgboost_probe_uses_the_thread_budget_and_records_its_device(monkeypatch):
    X, y = _rows()

    def threads_of(probe):
        return int(json.loads(probe.booster_.save_config())["learner"]["generic_param"]["nthread"])

    monkeypatch.setattr(cores, "busy_elsewhere", lambda: 0)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert threads_of(PriceProbe(ProbeConfig(n_estimators=5)).fit(X, y)) == 1
    assert threads_of(PriceProbe(ProbeConfig(n_estimators=5, n_jobs=2)).fit(X, y)) == 2
    result = fit_and_score(X[:80], y[:80], X[80:], y[80:], ProbeConfig(n_estimators=5, device="cpu"), n_seeds=2)
    assert result.device == "cpu"


def test_torch_threads_ignore_the_load_so_weights_do_not_depend_on_it(monkeypatch):
    import torch

    before = torch.get_num_threads()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(cores, "usable_cores", lambda: 2)
    monkeypatch.setattr(cores, "busy_elsewhere", lambda: 5)
    try:
        assert cores.thread_budget() == 1                      # XGBoost steps aside
        assert cores.set_torch_threads("cpu") == 2 == torch.get_num_threads()
        assert cores.set_torch_threads("cuda:0") is None
    finally:
        torch.set_num_threads(before)
