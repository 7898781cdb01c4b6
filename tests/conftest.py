"""Test-session setup.

The Hugging Face libraries read their endpoint and offline switches when they are first
imported, so everything below the imports of os/socket runs before any test module (and so
before huggingface_hub, transformers or sentence-transformers) is imported.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
from pathlib import Path


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


HUB_PORT = _free_port()
_SESSION_TMP = Path(tempfile.mkdtemp(prefix="hf-curve-tests-"))

os.environ["HF_ENDPOINT"] = f"http://127.0.0.1:{HUB_PORT}"
os.environ["HF_HUB_DISABLE_XET"] = "1"
os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
os.environ["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ["DO_NOT_TRACK"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HOME"] = str(_SESSION_TMP / "hf_home")
os.environ.pop("HF_TOKEN", None)
# Tiny models: one thread is faster than two (thread start-up dominates), and xgboost runs beside.
os.environ.setdefault("OMP_NUM_THREADS", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))

import pytest  # noqa: E402

from tiny_models import build_tiny_sentence_transformer  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO_ROOT.parent / "shared" / "data" / "airbnb_usd.jsonl.gz"


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    """A saved SentenceTransformer (BERT, hidden 32, 2 layers, ~400-word vocab, Pooling + Normalize)."""
    path = _SESSION_TMP / "tiny-st"
    if not (path / "modules.json").exists():
        build_tiny_sentence_transformer(path)
    return path


@pytest.fixture(scope="module")
def tiny_model(tiny_model_dir):
    """The tiny model loaded once per test module (modules whose tests change it define their own, per test)."""
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(tiny_model_dir), device="cpu")


@pytest.fixture(scope="session")
def hub_server():
    """A local Hub-compatible server on 127.0.0.1:HUB_PORT, the endpoint every HF client here uses."""
    from hub_server import HubServer

    server = HubServer(root=_SESSION_TMP / "hub", port=HUB_PORT)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def real_data_path() -> Path:
    if not SHARED_DATA.exists():
        pytest.skip(f"real data not found at {SHARED_DATA} (it lives in the workplace's shared/data/)")
    return SHARED_DATA
