"""The ``price_regression`` evaluate metric: its two configurations, its errors, loading it offline and from
the (local) Hub, and its folder layout."""

from __future__ import annotations

import dataclasses
import doctest
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from hf_finetune_curve.metrics import available_metrics, load_metric, metric_path, push_metric
from hf_finetune_curve.score.probe import ProbeConfig, fit_and_score

REPO_ROOT = Path(__file__).resolve().parents[1]
# Small, single-threaded probes keep the file fast (and deterministic) on a 2-core machine.
# A small, fast probe for low-dimensional synthetic data (signal in 3 of 12 columns: every tree sees all).
FAST = {"n_estimators": 40, "max_depth": 3, "learning_rate": 0.3, "colsample_bytree": 1.0, "n_jobs": 1}
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: any attempt to use the network fails at once
SUBPROCESS_TIMEOUT_S = 120  # a hang never ends; a normal run takes ~13 s alone (import evaluate pulls in torch)


@pytest.fixture(scope="module")
def evaluate():
    import evaluate

    return evaluate


@pytest.fixture(scope="module")
def scalar_metric(evaluate):
    return evaluate.load(metric_path(), "scalar", keep_in_memory=True)


@pytest.fixture(scope="module")
def embeddings_metric(evaluate):
    return evaluate.load(metric_path(), keep_in_memory=True)


def _synthetic(n=300, dims=12, seed=0):
    """Embeddings and prices with log(price) a linear function of the embedding."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, dims)).astype(np.float32)
    weights = np.zeros(dims)
    weights[:3] = [0.8, -0.5, 0.3]
    prices = np.exp(4.5 + X @ weights)
    return X, prices


def _subprocess_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)  # inherits HF_HOME / HF_ENDPOINT set by conftest
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env.update(extra)
    return env


class _Background:
    """A Python snippet run in a subprocess started early, so its slow `import evaluate` overlaps the other tests."""

    def __init__(self, code: str, env: dict[str, str]):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(code)],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def result(self) -> dict:
        remaining = SUBPROCESS_TIMEOUT_S - (time.monotonic() - self.started)
        try:
            stdout, stderr = self.proc.communicate(timeout=max(remaining, 1))
        except subprocess.TimeoutExpired:
            self.proc.kill()
            stdout, stderr = self.proc.communicate()
            pytest.fail(
                f"subprocess did not finish within {SUBPROCESS_TIMEOUT_S} s (hung?)\nSTDOUT:\n{stdout}\n"
                f"STDERR:\n{stderr[-4000:]}"
            )
        assert self.proc.returncode == 0, f"subprocess failed:\nSTDOUT:\n{stdout}\nSTDERR:\n{stderr[-4000:]}"
        return json.loads(stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.communicate()


OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "HF_EVALUATE_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HTTPS_PROXY": DEAD_PROXY,
    "HTTP_PROXY": DEAD_PROXY,
    "ALL_PROXY": DEAD_PROXY,
    "https_proxy": DEAD_PROXY,
    "http_proxy": DEAD_PROXY,
    "all_proxy": DEAD_PROXY,
    "NO_PROXY": "",
    "no_proxy": "",
}
OFFLINE_CODE = f"""
    import socket
    attempts = []
    def refuse(sock, address, *args):
        attempts.append(repr(address))
        raise OSError("network access attempted in an offline test")
    socket.socket.connect = socket.socket.connect_ex = refuse
    import json, numpy as np, evaluate
    from hf_finetune_curve.metrics import metric_path
    scalar = evaluate.load(metric_path(), "scalar")
    out = {{"scalar": scalar.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 3.0, 3.0])}}
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4)); y = np.exp(3 + X[:, 0])
    metric = evaluate.load(metric_path())
    out["embeddings"] = metric.compute(predictions=X, references=y, n_folds=2, xgb_params={FAST!r})
    out["connection_attempts"] = attempts
    print(json.dumps(out))
"""
# Only the local Hub (HF_ENDPOINT, plain http to 127.0.0.1) is reachable; evaluate's download counter (an
# https request to S3) and anything else goes to a dead proxy and fails at once.
HUB_ENV = {
    "HTTPS_PROXY": DEAD_PROXY,
    "https_proxy": DEAD_PROXY,
    "HTTP_PROXY": DEAD_PROXY,
    "http_proxy": DEAD_PROXY,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
HUB_REPOS = ("org/price_regression", "org/airbnb-prices")
HUB_CODE = f"""
    import json, evaluate
    out = {{}}
    for repo_id in {HUB_REPOS!r}:
        metric = evaluate.load(repo_id, "scalar")
        out[repo_id] = metric.compute(predictions=[1.0, 2.0, 4.0], references=[1.0, 3.0, 3.0])
    print(json.dumps(out))
"""


@pytest.fixture(scope="module", autouse=True)
def background(request):
    """Start the evaluate.load subprocesses first thing (each spends 10-25 s importing evaluate)."""
    jobs: dict = {"offline": _Background(OFFLINE_CODE, _subprocess_env(**OFFLINE_ENV))}
    try:
        request.getfixturevalue("hub_server")
        jobs["push_urls"] = [push_metric(repo_id, token="hf_test") for repo_id in HUB_REPOS]
        jobs["hub"] = _Background(HUB_CODE, _subprocess_env(**HUB_ENV))
    except Exception as exc:  # reported by the Hub test, not by every test of the module
        jobs["hub_error"] = exc
    yield jobs
    for job in jobs.values():
        if isinstance(job, _Background):
            job.stop()


# --------------------------------------------------------------------------------------------- layout


def test_metric_path_and_folder_layout():
    path = Path(metric_path())
    assert path.is_absolute() and path.is_dir()
    assert "price_regression" in available_metrics()
    for name in ("price_regression.py", "README.md", "app.py", "requirements.txt"):
        assert (path / name).is_file(), name

    text = (path / "README.md").read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header = yaml.safe_load(text.split("---\n")[1])
    for key in ("title", "emoji", "colorFrom", "colorTo", "sdk_version", "description"):
        assert header.get(key), key
    assert header["sdk"] == "gradio"
    assert header["app_file"] == "app.py"
    assert header["pinned"] is False
    assert {"evaluate", "metric"} <= set(header["tags"])
    for section in (
        "## Metric description",
        "## How to use",
        "### Inputs",
        "### Output values",
        "### Examples",
        "## Limitations and bias",
        "## Citation",
    ):
        assert section in text, section

    requirements = (path / "requirements.txt").read_text()
    for requirement in ("evaluate", "hf-finetune-curve", "xgboost-cpu"):
        assert requirement in requirements
    assert "launch_gradio_widget" in (path / "app.py").read_text()


def test_metric_path_unknown_name_lists_available():
    with pytest.raises(ValueError, match=r"Unknown metric 'nope'.*price_regression"):
        metric_path("nope")


def test_script_has_only_library_imports(evaluate):
    """evaluate #567: relative imports and `From:` imports make evaluate.load reach the network even for a
    local path. The script must only have plain library imports, all of them installed."""
    from evaluate.loading import get_imports

    imports = get_imports(str(Path(metric_path()) / "price_regression.py"))
    assert imports, "get_imports found nothing: the parser changed?"
    assert {kind for kind, *_ in imports} == {"library"}
    assert {name for _, name, *_ in imports} == {"math", "datasets", "numpy", "evaluate", "hf_finetune_curve"}
    assert all(path == name for _, name, path, _ in imports), "no `From:` hints on import lines"


def test_unknown_configuration_fails_at_load(evaluate):
    with pytest.raises(ValueError, match=r"Unknown price_regression configuration 'prices'.*'embeddings', 'scalar'"):
        evaluate.load(metric_path(), "prices")


# --------------------------------------------------------------------------------------------- scalar


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scalar_matches_sklearn(scalar_metric, seed):
    from sklearn.metrics import mean_absolute_error, median_absolute_error, r2_score

    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 400))
    references = np.exp(rng.normal(4.0, 1.0, size=n)) * 1.000001
    predictions = references * np.exp(rng.normal(0, 0.3, size=n)) + rng.normal(0, 5, size=n)
    result = scalar_metric.compute(predictions=predictions.tolist(), references=references)
    assert set(result) == {"r2", "r2_log", "mae", "median_ae", "n_rows"}
    if (predictions > 0).all():
        assert result["r2_log"] == pytest.approx(r2_score(np.log(references), np.log(predictions)), abs=1e-9)
    else:  # a non-positive prediction has no log
        assert np.isnan(result["r2_log"])
    assert result["n_rows"] == n
    assert result["r2"] == pytest.approx(r2_score(references, predictions), rel=0, abs=1e-9)
    assert result["mae"] == pytest.approx(mean_absolute_error(references, predictions), rel=0, abs=1e-9)
    assert result["median_ae"] == pytest.approx(median_absolute_error(references, predictions), rel=0, abs=1e-9)


def test_scalar_constant_reference_follows_sklearn(scalar_metric):
    from sklearn.metrics import r2_score

    result = scalar_metric.compute(predictions=[1.0, 2.0, 3.0], references=[2.0, 2.0, 2.0])
    assert result["r2"] == r2_score([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])


# --------------------------------------------------------------------------------------------- embeddings


def test_embeddings_signal_noise_and_repeatability(embeddings_metric):
    X, prices = _synthetic()
    result = embeddings_metric.compute(predictions=X, references=prices, xgb_params=FAST)
    assert result["n_folds"] == 5 and result["n_rows"] == len(prices)
    for key in ("r2", "mae", "median_ae"):
        assert len(result[f"fold_{key}"]) == 5
        assert result[key] == pytest.approx(np.mean(result[f"fold_{key}"]))
        assert result[f"{key}_std"] == pytest.approx(np.std(result[f"fold_{key}"]))
    assert result["r2"] > 0.8, result
    assert 0 < result["median_ae"] < result["mae"]

    again = embeddings_metric.compute(predictions=X, references=prices, xgb_params=FAST)
    assert again == result

    shuffled = np.random.default_rng(1).permutation(prices)
    noise = embeddings_metric.compute(predictions=X, references=shuffled, xgb_params=FAST, n_folds=3, seed=7)
    assert noise["n_folds"] == 3
    assert noise["r2"] < 0.1, noise


def test_explicit_split_equals_fit_and_score(embeddings_metric):
    X, prices = _synthetic(n=200, seed=3)
    X64 = X.astype(np.float64)  # the metric stores float32; fit_and_score casts to float32 too
    test = np.arange(150, 200)
    expected = fit_and_score(X64[:150], prices[:150], X64[150:], prices[150:], ProbeConfig(**FAST)).scores

    by_indices = embeddings_metric.compute(
        predictions=X64, references=prices, train_indices=np.arange(150), test_indices=test, xgb_params=FAST
    )
    by_test_only = embeddings_metric.compute(predictions=X64, references=prices, test_indices=test, xgb_params=FAST)
    mask = np.zeros(200, dtype=bool)
    mask[150:] = True
    by_mask = embeddings_metric.compute(
        predictions=X64.tolist(), references=prices.tolist(), test_mask=mask, xgb_params=FAST
    )
    for result in (by_indices, by_test_only, by_mask):
        assert {k: result[k] for k in ("r2", "mae", "median_ae")} == {
            k: expected[k] for k in ("r2", "mae", "median_ae")
        }
        assert (result["n_rows"], result["n_train"], result["n_test"]) == (200, 150, 50)

    # probe_config (e.g. a curve run's settings) and target_transform="none" go through as well.
    config = ProbeConfig(target_transform="none", n_estimators=25, max_depth=2, n_jobs=1, seed=5)
    expected = fit_and_score(X[:150], prices[:150], X[150:], prices[150:], config).scores
    result = embeddings_metric.compute(predictions=X, references=prices, test_indices=test, probe_config=config)
    assert {k: result[k] for k in ("r2", "mae", "median_ae")} == {k: expected[k] for k in ("r2", "mae", "median_ae")}


def test_storage_paths_give_identical_results(evaluate):
    """Fast Arrow write vs evaluate's generic encoding, in memory vs on-disk cache, one batch vs several."""
    X, prices = _synthetic(n=120, seed=4)
    kwargs = dict(test_indices=np.arange(90, 120), xgb_params=FAST)
    reference = load_metric().compute(predictions=X, references=prices, **kwargs)

    generic = evaluate.load(metric_path(), keep_in_memory=False)
    generic.fast_arrow_path = False
    assert generic.compute(predictions=X, references=prices, **kwargs) == reference

    on_disk = evaluate.load(metric_path(), keep_in_memory=False)
    for start in range(0, 120, 25):
        on_disk.add_batch(predictions=X[start : start + 25], references=prices[start : start + 25])
    assert on_disk.compute(**kwargs) == reference

    one_by_one = load_metric()
    for row, price in zip(X.tolist(), prices.tolist()):
        one_by_one.add(prediction=row, reference=price)
    assert one_by_one.compute(**kwargs) == reference


# --------------------------------------------------------------------------------------------- bad input


def _embeddings(n=20, dims=4):
    X, prices = _synthetic(n=n, dims=dims, seed=5)
    return X, prices


BAD_EMBEDDING_INPUTS = {
    "lengths differ": (lambda X, y: (X, y[:-1]), {}, r"Got 20 predictions but 19 references"),
    "nan embedding": (
        lambda X, y: (np.where(np.arange(X.size).reshape(X.shape) == 9, np.nan, X), y),
        {},
        r"predictions \(embedding vectors\) contains NaN or inf \(first at row 2\)",
    ),
    "inf embedding": (lambda X, y: ([*X.tolist()[:-1], [np.inf, 0, 0, 0]], y), {}, r"contains NaN or inf"),
    "nan price": (lambda X, y: (X, np.r_[y[:3], np.nan, y[4:]]), {}, r"references \(prices\) contains NaN or inf \(first at index 3\)"),
    "inf price": (lambda X, y: (X, np.r_[y[:-1], np.inf]), {}, r"references \(prices\) contains NaN or inf"),
    "ragged": (
        lambda X, y: ([*X.tolist()[:-1], [1.0, 2.0]], y),
        {},
        r"must all have the same dimension; got rows of 2 different lengths \[2, 4\]",
    ),
    "1-d predictions": (lambda X, y: (y * 1.1, y), {}, r"must be a 2-D array.*'scalar' configuration"),
    "non-numeric": (lambda X, y: ([["a"] * 4] * len(y), y), {}, r"must be numeric embedding vectors"),
    "fewer rows than folds": (lambda X, y: (X[:3], y[:3]), {}, r"Got 3 rows for n_folds=5: .*at least 2 rows per fold"),
    "too few rows per fold": (lambda X, y: (X, y), {"n_folds": 11}, r"Got 20 rows for n_folds=11"),
    "bad n_folds": (lambda X, y: (X, y), {"n_folds": 1}, r"n_folds must be an integer >= 2"),
    "constant target": (lambda X, y: (X, np.full(len(y), 99.0)), {}, r"references \(prices\) are constant \(99.0 for all 20 rows\)"),
    "zero price with log": (
        lambda X, y: (X, np.r_[y[:5], 0.0, y[6:]]),
        {},
        r"must be > 0 for target_transform='log'; index 5 is (np\.float64\()?0\.0.*target_transform='none'",
    ),
    "negative price with log": (lambda X, y: (X, -y), {}, r"must be > 0 for target_transform='log'"),
    "bad target_transform": (lambda X, y: (X, y), {"target_transform": "sqrt"}, r"target_transform must be one of"),
    "unknown option": (lambda X, y: (X, y), {"folds": 3}, r"Unknown option\(s\) \['folds'\]"),
    "unknown probe option": (lambda X, y: (X, y), {"xgb_params": {"target_transform": "none"}}, r"own compute\(\) argument"),
    "overlapping split": (
        lambda X, y: (X, y),
        {"train_indices": [0, 1, 2, 3], "test_indices": [3, 4, 5]},
        r"share 1 row\(s\) \(first: 3\)",
    ),
    "split index out of range": (lambda X, y: (X, y), {"test_indices": [1, 2, 20]}, r"row indices in \[0, 20\); got 20"),
    "split and folds": (lambda X, y: (X, y), {"test_indices": [1, 2], "n_folds": 3}, r"either n_folds .* or an explicit split"),
    "bad mask": (lambda X, y: (X, y), {"test_mask": [True, False]}, r"test_mask must have one entry per row \(20\)"),
}


@pytest.mark.parametrize("case", sorted(BAD_EMBEDDING_INPUTS))
def test_bad_embedding_inputs_raise_clear_errors(embeddings_metric, case):
    transform, options, message = BAD_EMBEDDING_INPUTS[case]
    predictions, references = transform(*_embeddings())
    with pytest.raises(ValueError, match=message):
        embeddings_metric.compute(predictions=predictions, references=references, **{"xgb_params": FAST, **options})


def test_compute_with_nothing_added_says_so(embeddings_metric):
    with pytest.raises(ValueError, match=r"Nothing to compute: pass predictions and references"):
        embeddings_metric.compute(xgb_params=FAST)


def test_torch_tensors_are_accepted():
    import torch

    X, prices = _synthetic(n=60, seed=6)
    kwargs = dict(test_indices=np.arange(45, 60), xgb_params=FAST)
    expected = load_metric().compute(predictions=X, references=prices, **kwargs)
    assert load_metric().compute(predictions=torch.from_numpy(X), references=torch.from_numpy(prices), **kwargs) == expected


def test_bad_inputs_added_one_by_one_are_caught_at_compute():
    """`add()` goes through evaluate's own encoding; the mismatch still surfaces as our message."""
    metric = load_metric()
    metric.add(prediction=[1.0, 2.0, 3.0], reference=10.0)
    metric.add(prediction=[1.0, 2.0], reference=20.0)
    with pytest.raises(ValueError, match=r"must all have the same dimension; got rows of 2 different lengths \[2, 3\]"):
        metric.compute()


@pytest.mark.parametrize(
    ("predictions", "references", "message"),
    [
        ([1.0, 2.0, 3.0], [1.0, 2.0], r"Got 3 predictions but 2 references"),
        ([[1.0, 2.0], [3.0, 4.0]], [1.0, 2.0], r"must be a 1-D sequence of numbers.*'embeddings' configuration"),
        ([1.0, float("nan")], [1.0, 2.0], r"predictions \(predicted prices\) contains NaN or inf \(first at index 1\)"),
        ([1.0, 2.0], [float("inf"), 2.0], r"references \(true prices\) contains NaN or inf \(first at index 0\)"),
        ([1.0], [2.0], r"Need at least 2 rows to score; got 1"),
        (["a", "b"], [1.0, 2.0], r"predictions \(predicted prices\) must be numbers"),
    ],
)
def test_bad_scalar_inputs_raise_clear_errors(scalar_metric, predictions, references, message):
    with pytest.raises(ValueError, match=message):
        scalar_metric.compute(predictions=predictions, references=references)


def test_scalar_rejects_embedding_options(scalar_metric):
    with pytest.raises(ValueError, match=r"'scalar' configuration takes no options; got \['n_folds'\]"):
        scalar_metric.compute(predictions=[1.0, 2.0], references=[1.0, 3.0], n_folds=3)


# --------------------------------------------------------------------------------------------- docs


def test_kwargs_description_examples_run(evaluate, monkeypatch):
    # The examples call evaluate.load(metric_path()): patch the module evaluate imported (it is cached).
    module = sys.modules[type(evaluate.load(metric_path(), "scalar")).__module__]
    # The examples use the probe's default n_jobs (all cores); one thread is much faster on a busy 2-core box.
    build_config = module._probe_config
    monkeypatch.setattr(module, "_probe_config", lambda *args: dataclasses.replace(build_config(*args), n_jobs=1))
    parser = doctest.DocTestParser()
    test = parser.get_doctest(module._KWARGS_DESCRIPTION, {"evaluate": evaluate}, "_KWARGS_DESCRIPTION", None, 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    assert runner.failures == 0 and runner.tries >= 8


# --------------------------------------------------------------------------------------------- offline


def test_load_metric_ignores_a_held_module_lock(tmp_path):
    """evaluate #473: evaluate.load waits forever on a lock in HF_MODULES_CACHE it cannot take;
    load_metric does not go through that lock at all."""
    from filelock import FileLock

    import evaluate.config

    lock_path = Path(evaluate.config.HF_MODULES_CACHE) / "evaluate_modules" / "metrics" / "price_regression.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(lock_path)):
        metric = load_metric("scalar")
        assert metric.compute(predictions=[1.0, 2.0], references=[1.0, 3.0])["mae"] == 0.5


def test_evaluate_load_by_path_offline_never_touches_the_network(background):
    """evaluate.load(<local path>) with HF_HUB_OFFLINE/HF_EVALUATE_OFFLINE and every proxy dead completes."""
    result = background["offline"].result()
    assert result["connection_attempts"] == []
    assert result["scalar"]["mae"] == pytest.approx(2 / 3)
    assert result["embeddings"]["n_folds"] == 2 and result["embeddings"]["n_rows"] == 40


# --------------------------------------------------------------------------------------------- Hub


class _FakeApi:
    calls: list = []

    def __init__(self, token=None, **kwargs):
        _FakeApi.calls.append(("init", {"token": token}))

    def create_repo(self, repo_id, **kwargs):
        _FakeApi.calls.append(("create_repo", {"repo_id": repo_id, **kwargs}))
        from huggingface_hub import RepoUrl

        return RepoUrl(f"https://hub.example/spaces/{repo_id}", endpoint="https://hub.example")

    def upload_folder(self, **kwargs):
        files = sorted(p.name for p in Path(kwargs["folder_path"]).iterdir())
        _FakeApi.calls.append(("upload_folder", {**kwargs, "files": files}))


def test_push_metric_calls_hub_api(monkeypatch, caplog):
    import huggingface_hub

    _FakeApi.calls = []
    monkeypatch.setattr(huggingface_hub, "HfApi", _FakeApi)
    caplog.set_level(logging.DEBUG)
    url = push_metric("org/airbnb-prices", token="hf_secret_token", private=True)
    assert url == "https://hub.example/spaces/org/airbnb-prices"
    (_, init), (_, create), (_, upload) = _FakeApi.calls
    assert init["token"] == "hf_secret_token"
    assert create == {
        "repo_id": "org/airbnb-prices",
        "repo_type": "space",
        "space_sdk": "gradio",
        "exist_ok": True,
        "private": True,
        "token": "hf_secret_token",
    }
    assert upload["repo_id"] == "org/airbnb-prices" and upload["repo_type"] == "space"
    # evaluate.load("org/airbnb-prices") looks for airbnb-prices.py: the script goes up under that name too.
    assert upload["files"] == ["README.md", "airbnb-prices.py", "app.py", "price_regression.py", "requirements.txt"]
    assert "hf_secret_token" not in caplog.text

    with pytest.raises(ValueError, match="namespace/space_name"):
        push_metric("no-namespace")
    with pytest.raises(ValueError, match="Unknown metric"):
        push_metric("org/x", name="nope")


def test_push_metric_to_local_hub_and_load_it(background):
    """push_metric to the local Hub server, then evaluate.load("org/<space>") from it in a subprocess."""
    from huggingface_hub import HfApi

    if "hub_error" in background:
        raise background["hub_error"]
    for url, repo_id in zip(background["push_urls"], HUB_REPOS):
        assert url.rstrip("/").endswith(f"/spaces/{repo_id}")
    files = set(HfApi().list_repo_files("org/price_regression", repo_type="space"))
    assert {"price_regression.py", "README.md", "app.py", "requirements.txt"} <= files
    assert "airbnb-prices.py" in set(HfApi().list_repo_files("org/airbnb-prices", repo_type="space"))

    result = background["hub"].result()
    for repo_id in HUB_REPOS:
        assert result[repo_id]["mae"] == pytest.approx(2 / 3)
