"""The price_regression metric's Space app (its folder's app.py) on the installed Gradio: served, then called.

Checked on Gradio 6.31 (installed) and 5.50 (the Space card's sdk_version).
"""

import importlib.util
import json
import socket
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from hf_finetune_curve.metrics import metric_path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app():
    pytest.importorskip("gradio")
    path = Path(metric_path()) / "app.py"
    spec = importlib.util.spec_from_file_location("price_regression_space_app", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # not __main__: builds `demo` without serving it
    return module


def test_metric_space_launches_and_scores_a_table(app):
    gradio_client = pytest.importorskip("gradio_client")
    rng = np.random.default_rng(0)
    embeddings = rng.normal(size=(30, 4)).round(3)
    prices = np.exp(4.0 + embeddings[:, 0]).round(2)
    rows = [[json.dumps(vector.tolist()), float(price)] for vector, price in zip(embeddings, prices)]
    expected = app.module.compute(predictions=embeddings.astype("float32"), references=prices)

    port = _free_port()
    app.demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
        page = opener.open(url, timeout=30).read().decode("utf-8")
        assert "Metric: price_regression" in page
        client = gradio_client.Client(url, verbose=False)
        result = client.predict({"headers": ["predictions", "references"], "data": rows + [["", ""]]},
                                api_name="/predict")
    finally:
        app.demo.close()
    assert result["n_rows"] == 30
    for key in ("r2", "mae", "median_ae"):
        assert result[key] == pytest.approx(expected[key], rel=1e-6), key


def test_space_card_asks_for_a_gradio_the_app_runs_on():
    import yaml

    header = yaml.safe_load((Path(metric_path()) / "README.md").read_text(encoding="utf-8").split("---\n")[1])
    assert int(str(header["sdk_version"]).split(".")[0]) >= 5  # gr.inputs / gr.outputs are gone since Gradio 4
