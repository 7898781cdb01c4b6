"""End-to-end checks of tests/hub_server.py with the real clients (huggingface_hub, sentence-transformers, evaluate).

conftest.py points HF_ENDPOINT at the session `hub_server` before any HF library is imported, so everything here
talks to the local server; reads that must prove a fresh process works run in a subprocess with the same env.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest

from hub_server import HubServer

TOKEN = "hf_local_test_token"


def _api(token=TOKEN):
    from huggingface_hub import HfApi

    return HfApi(token=token)


def _unique(name: str) -> str:
    return f"org/hubtest-{name}-{uuid.uuid4().hex[:6]}"


def _raw(server: HubServer, method: str, path: str, headers: dict | None = None, body: bytes | None = None):
    """(status, headers, body) of a plain urllib request to the server."""
    request = urllib.request.Request(server.url + path, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.headers, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def _run_python(code: str, timeout: int = 180) -> subprocess.CompletedProcess:
    """Run `code` in a fresh interpreter with this session's env (HF_ENDPOINT, HF_HOME, HF_HUB_DISABLE_XET...)."""
    env = dict(os.environ, HF_UPDATE_DOWNLOAD_COUNTS="0")  # evaluate: skip its S3 download-count ping
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            env=env, timeout=timeout)
    assert result.returncode == 0, f"subprocess failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


# ----------------------------------------------------------------------------------------------------------------


def test_whoami_and_auxiliary_endpoints(hub_server):
    me = _api().whoami()
    assert me["name"] == "testuser"
    assert {"name": "org"}.items() <= me["orgs"][0].items()

    status, _, body = _raw(hub_server, "GET", "/api/whoami-v2")
    assert status == 401 and "error" in json.loads(body)
    status, _, body = _raw(hub_server, "POST", "/api/telemetry/examples/metric", body=b"{}")
    assert (status, json.loads(body)) == (200, {})
    status, _, body = _raw(hub_server, "GET", "/api/agent-harnesses")
    assert status == 200 and json.loads(body)["harnesses"] == {}
    status, _, body = _raw(hub_server, "GET", "/api/no/such/endpoint")
    assert status == 404 and "error" in json.loads(body)


def test_create_repo_types_exist_ok_and_conflict(hub_server):
    from huggingface_hub.errors import HfHubHTTPError

    api = _api()
    model, dataset, space = _unique("model"), _unique("data"), _unique("space")
    url = api.create_repo(model)
    assert url == f"{hub_server.url}/{model}"
    assert api.create_repo(dataset, repo_type="dataset").endswith(f"/datasets/{dataset}")
    assert api.create_repo(space, repo_type="space", space_sdk="gradio").endswith(f"/spaces/{space}")

    assert api.create_repo(model, exist_ok=True) == url  # exist_ok: 409 answered with the repo url
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.create_repo(model)
    assert excinfo.value.response.status_code == 409
    assert excinfo.value.response.json()["url"] == url

    assert api.list_repo_files(model) == [".gitattributes"]  # the Hub's initial commit
    assert api.dataset_info(dataset).id == dataset
    info = api.space_info(space)
    assert info.sdk == "gradio" and re.fullmatch(r"[0-9a-f]{40}", info.sha)
    assert sorted(api.list_repo_files(space, repo_type="space")) == [".gitattributes", "README.md"]


METRIC_SCRIPT = textwrap.dedent('''\
    import datasets
    import evaluate


    class PriceRegression(evaluate.Metric):
        def _info(self):
            return evaluate.MetricInfo(
                description="test metric",
                citation="",
                inputs_description="predictions and references: floats",
                features=datasets.Features(
                    {"predictions": datasets.Value("float32"), "references": datasets.Value("float32")}
                ),
            )

        def _compute(self, predictions, references):
            return {"x": 1}
''')
TEXTS = ["red porsche 911 carrera with manual transmission", "cozy studio near the beach", "a"]


@pytest.fixture(scope="module")
def published(hub_server, tiny_model_dir, tmp_path_factory):
    """Push the tiny SentenceTransformer (model repo) and a metric (Space repo), then read both back in ONE fresh
    process (SentenceTransformer(...) and evaluate.load(...) both import torch/transformers: ~10 s each)."""
    api = _api()
    st_repo = _unique("tiny-f0")  # unique: other test modules may push their own org/tiny-f0
    api.create_repo(st_repo)
    hub_server.clear_requests()
    first = api.upload_folder(repo_id=st_repo, folder_path=tiny_model_dir, commit_message="tiny model")
    upload_requests = hub_server.requests

    # Unique name (the project's own tests may publish the real org/price_regression); evaluate fetches <name>.py
    metric_repo = f"org/hubtest_price_regression_{uuid.uuid4().hex[:6]}"
    space_dir = tmp_path_factory.mktemp("metric_space")
    (space_dir / f"{metric_repo.split('/')[1]}.py").write_text(METRIC_SCRIPT)
    (space_dir / "app.py").write_text("import evaluate\n")
    api.create_repo(metric_repo, repo_type="space", space_sdk="gradio")
    api.upload_folder(repo_id=metric_repo, repo_type="space", folder_path=space_dir)

    hub_server.clear_requests()
    result = _run_python(f"""
        import json
        import evaluate
        from sentence_transformers import SentenceTransformer

        model = SentenceTransformer({st_repo!r}, device="cpu")
        metric = evaluate.load({metric_repo!r})
        print(json.dumps({{
            "embeddings": model.encode({TEXTS!r}).tolist(),
            "metric": metric.compute(predictions=[1.0, 2.0], references=[1.5, 2.5]),
        }}))
    """)
    return {
        "st_repo": st_repo,
        "metric_repo": metric_repo,
        "first_commit": first,
        "upload_requests": upload_requests,
        "read_requests": hub_server.requests,
        "output": json.loads(result.stdout.strip().splitlines()[-1]),
    }


def test_sentence_transformer_upload_and_fresh_process_load(hub_server, tiny_model_dir, published):
    import numpy as np
    from sentence_transformers import SentenceTransformer

    api = _api()
    repo_id = published["st_repo"]
    uploads = published["upload_requests"]
    assert [r for r in uploads if r[0] == "POST" and r[1].endswith("/commit/main")] == [
        ("POST", f"/api/models/{repo_id}/commit/main")
    ]
    assert ("POST", f"/{repo_id}.git/info/lfs/objects/batch") in uploads  # model.safetensors goes through LFS

    local_files = sorted(p.relative_to(tiny_model_dir).as_posix() for p in tiny_model_dir.rglob("*") if p.is_file())
    assert set(api.list_repo_files(repo_id)) == set(local_files) | {".gitattributes"}
    tree = {f.path: f for f in api.list_repo_tree(repo_id, recursive=True)}
    assert tree["model.safetensors"].lfs is not None and tree["modules.json"].lfs is None
    assert "1_Pooling" in tree  # folders are listed too

    # An identical second push: preupload returns the remote oids, the client drops every unchanged file and
    # makes no commit at all; it returns the current head sha instead.
    hub_server.clear_requests()
    second = api.upload_folder(repo_id=repo_id, folder_path=tiny_model_dir, commit_message="tiny model again")
    assert hub_server.count_requests("POST", r"/commit/") == 0
    assert hub_server.count_requests("PUT", r"^/__lfs/") == 0
    assert second.oid == published["first_commit"].oid == api.model_info(repo_id).sha

    # SentenceTransformer("org/...") in a fresh process embeds exactly like the local folder
    local = SentenceTransformer(str(tiny_model_dir), device="cpu").encode(TEXTS)
    assert np.abs(np.asarray(published["output"]["embeddings"]) - local).max() <= 1e-6
    reads = published["read_requests"]
    assert ("GET", f"/{repo_id}/resolve/{second.oid}/model.safetensors") in reads


def test_revisions_branch_sha_and_errors(hub_server):
    from huggingface_hub import hf_hub_download, snapshot_download
    from huggingface_hub.errors import RemoteEntryNotFoundError, RepositoryNotFoundError, RevisionNotFoundError

    api = _api()
    repo_id = _unique("revs")
    api.create_repo(repo_id)
    v1 = api.upload_file(path_or_fileobj=b'{"v": 1}', path_in_repo="cfg/params.json", repo_id=repo_id,
                         commit_message="v1")
    v2 = api.upload_file(path_or_fileobj=b'{"v": 2}', path_in_repo="cfg/params.json", repo_id=repo_id,
                         commit_message="v2")
    assert v1.oid != v2.oid and re.fullmatch(r"[0-9a-f]{40}", v2.oid)

    assert Path(hf_hub_download(repo_id, "cfg/params.json")).read_bytes() == b'{"v": 2}'
    assert Path(hf_hub_download(repo_id, "cfg/params.json", revision="main")).read_bytes() == b'{"v": 2}'
    assert Path(hf_hub_download(repo_id, "cfg/params.json", revision=v1.oid)).read_bytes() == b'{"v": 1}'
    assert api.model_info(repo_id, revision=v1.oid).sha == v1.oid
    assert api.list_repo_files(repo_id, revision=v1.oid) == [".gitattributes", "cfg/params.json"]
    assert [c.title for c in api.list_repo_commits(repo_id)] == ["v2", "v1", "initial commit"]
    assert api.list_repo_refs(repo_id).branches[0].target_commit == v2.oid

    snapshot = Path(snapshot_download(repo_id, revision=v1.oid))
    assert snapshot.name == v1.oid and (snapshot / "cfg" / "params.json").read_bytes() == b'{"v": 1}'

    api.create_branch(repo_id, branch="exp", revision=v1.oid)
    assert Path(hf_hub_download(repo_id, "cfg/params.json", revision="exp")).read_bytes() == b'{"v": 1}'

    with pytest.raises(RevisionNotFoundError):
        hf_hub_download(repo_id, "cfg/params.json", revision="no-such-branch")
    with pytest.raises(RemoteEntryNotFoundError):
        hf_hub_download(repo_id, "missing.json")
    with pytest.raises(RepositoryNotFoundError):
        api.model_info("org/hubtest-does-not-exist")
    assert api.file_exists(repo_id, "cfg/params.json") and not api.file_exists(repo_id, "nope.txt")
    paths = {p.path for p in api.get_paths_info(repo_id, ["cfg", "cfg/params.json", "nope"])}
    assert paths == {"cfg", "cfg/params.json"}


def test_large_file_goes_through_lfs_and_dedups(hub_server, tmp_path):
    from huggingface_hub import hf_hub_download

    api = _api()
    repo_id = _unique("lfs")
    api.create_repo(repo_id, repo_type="dataset")
    big = tmp_path / "big.txt"
    big.write_bytes(b"listing,price\n" * (11 * 1024 * 1024 // 14 + 1))  # > 10 MB of text: LFS by size
    digest = hashlib.sha256(big.read_bytes()).hexdigest()

    hub_server.clear_requests()
    api.upload_file(path_or_fileobj=big, path_in_repo="data/big.txt", repo_id=repo_id, repo_type="dataset")
    assert hub_server.count_requests("POST", rf"^/datasets/{repo_id}\.git/info/lfs/objects/batch$") == 1
    assert hub_server.count_requests("PUT", rf"^/__lfs/{digest}$") == 1
    assert hub_server.count_requests("POST", r"^/__lfs/verify$") == 1
    (entry,) = api.get_paths_info(repo_id, "data/big.txt", repo_type="dataset")
    assert entry.lfs is not None and entry.lfs.sha256 == digest and entry.size == big.stat().st_size

    # the same content under another name: the LFS batch answers "already there", nothing is re-sent
    hub_server.clear_requests()
    api.upload_file(path_or_fileobj=big, path_in_repo="data/copy.txt", repo_id=repo_id, repo_type="dataset")
    assert hub_server.count_requests("PUT", r"^/__lfs/") == 0 and hub_server.count_requests("POST", r"/commit/") == 1

    path = hf_hub_download(repo_id, "data/big.txt", repo_type="dataset")
    assert hashlib.sha256(Path(path).read_bytes()).hexdigest() == digest

    # resolve headers and Range support, as a plain HTTP client sees them
    status, headers, body = _raw(hub_server, "HEAD", f"/datasets/{repo_id}/resolve/main/data/big.txt")
    assert status == 200 and headers["X-Linked-Etag"].strip('"') == digest
    assert int(headers["X-Linked-Size"]) == big.stat().st_size and re.fullmatch(r"[0-9a-f]{40}",
                                                                                headers["X-Repo-Commit"])
    assert not any(key.lower().startswith("x-xet") for key in headers)
    status, headers, body = _raw(hub_server, "GET", f"/datasets/{repo_id}/resolve/main/data/big.txt",
                                 headers={"Range": "bytes=14-26"})
    assert status == 206 and body == b"listing,price" and headers["Content-Range"].startswith("bytes 14-26/")


def test_fail_next_injects_errors(hub_server):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError

    api = _api()
    repo_id = _unique("faults")
    api.create_repo(repo_id)
    head = api.model_info(repo_id).sha

    # commit: not retried by the client -> the call raises and the repo is unchanged
    hub_server.fail_next("POST", rf"^/api/models/{repo_id}/commit/", status=503)
    with pytest.raises(HfHubHTTPError) as excinfo:
        api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id)
    assert excinfo.value.response.status_code == 503
    assert api.model_info(repo_id).sha == head
    api.upload_file(path_or_fileobj=b"x", path_in_repo="a.txt", repo_id=repo_id)  # the fault was used up

    # preupload goes through http_backoff -> retried transparently
    hub_server.clear_requests()
    hub_server.fail_next("POST", r"/preupload/", status=503)
    api.upload_file(path_or_fileobj=b"y", path_in_repo="b.txt", repo_id=repo_id)
    assert hub_server.count_requests("POST", r"/preupload/") == 2

    # a download's metadata HEAD is retried when nothing is cached yet
    hub_server.clear_requests()
    hub_server.fail_next("HEAD", rf"^/{repo_id}/resolve/main/b\.txt$", status=503)
    assert Path(hf_hub_download(repo_id, "b.txt")).read_bytes() == b"y"
    assert hub_server.count_requests("HEAD", r"/resolve/main/b\.txt$") == 2

    # status=0 drops the connection without an answer
    hub_server.fail_next("GET", r"^/api/whoami-v2$", status=0)
    with pytest.raises(Exception):
        api.whoami()
    assert api.whoami()["name"] == "testuser"


def test_keep_alive_and_chunked_lfs_put(hub_server):
    """Several requests on one HTTP/1.1 connection, one of them a chunked LFS PUT."""
    import http.client

    data = b"\x00binary" * 1000
    oid = hashlib.sha256(data).hexdigest()
    conn = http.client.HTTPConnection("127.0.0.1", hub_server.port, timeout=30)
    try:
        conn.request("PUT", f"/__lfs/{oid}", body=iter([data[:3000], data[3000:]]),
                     headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        response = conn.getresponse()
        assert response.status == 200, response.read()
        response.read()
        conn.request("POST", "/__lfs/verify", body=json.dumps({"oid": oid, "size": len(data)}),
                     headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        assert response.status == 200
        response.read()
        conn.request("PUT", f"/__lfs/{'0' * 64}", body=b"wrong content")  # sha256 is checked
        response = conn.getresponse()
        assert response.status == 400
        response.read()
    finally:
        conn.close()


def test_private_repo_needs_a_token(hub_server):
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

    api = _api()
    repo_id = _unique("private")
    api.create_repo(repo_id, private=True)
    api.upload_file(path_or_fileobj=b"secret", path_in_repo="s.txt", repo_id=repo_id)
    assert api.model_info(repo_id).private is True

    anonymous = _api(token=False)
    with pytest.raises(RepositoryNotFoundError):
        anonymous.model_info(repo_id)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download(repo_id, "s.txt", token=False)
    assert Path(hf_hub_download(repo_id, "s.txt", token=TOKEN)).read_bytes() == b"secret"
    with pytest.raises(HfHubHTTPError) as excinfo:  # writes need a token, as on the Hub
        anonymous.create_repo(_unique("anon"))
    assert excinfo.value.response.status_code == 401


def test_model_card_validate_push_and_load(hub_server):
    from huggingface_hub import ModelCard, RepoCard

    api = _api()
    repo_id = _unique("card")
    api.create_repo(repo_id)
    content = textwrap.dedent("""\
        ---
        license: apache-2.0
        library_name: sentence-transformers
        tags:
        - sentence-transformers
        - finetune-curve
        ---
        # Tiny model

        Fine-tuned on 1,000 listings.
    """)
    card = ModelCard(content)
    card.validate()
    with pytest.raises(ValueError, match="model-index"):  # parses locally, rejected by the server
        RepoCard("---\nmodel-index: not-a-list\n---\n# bad\n").validate()
    status, _, body = _raw(hub_server, "POST", "/api/validate-yaml", {"Content-Type": "application/json"},
                           json.dumps({"content": "---\nlicense: [unclosed\n---\n", "repoType": "model"}).encode())
    assert status == 400 and json.loads(body)["errors"]

    card.push_to_hub(repo_id, token=TOKEN)
    loaded = ModelCard.load(repo_id)
    assert loaded.data.license == "apache-2.0" and "finetune-curve" in loaded.data.tags
    assert loaded.text.strip().endswith("Fine-tuned on 1,000 listings.")
    info = api.model_info(repo_id)
    assert info.card_data.license == "apache-2.0" and info.library_name == "sentence-transformers"


def test_evaluate_load_from_space(published):
    assert published["output"]["metric"] == {"x": 1}
    repo = published["metric_repo"]
    script = repo.split("/")[1] + ".py"
    reads = [r for r in published["read_requests"] if "/spaces/" in r[1]]
    # evaluate asks for its own version tag first (404 RevisionNotFound), then falls back to main
    assert reads[0][0] == "HEAD"
    assert re.fullmatch(rf"/spaces/{repo}/resolve/v[\d.]+/{script}", reads[0][1])
    assert ("HEAD", f"/spaces/{repo}/resolve/main/{script}") in reads
    assert ("GET", f"/spaces/{repo}/resolve/main/{script}") in reads


def test_second_server_on_same_root_sees_the_repos(hub_server):
    api = _api()
    repo_id = _unique("persist")
    api.create_repo(repo_id)
    api.upload_file(path_or_fileobj=b"kept", path_in_repo="k.txt", repo_id=repo_id)
    with HubServer(root=hub_server.root) as other:
        assert other.port != hub_server.port
        from huggingface_hub import HfApi

        assert HfApi(endpoint=other.url, token=TOKEN).list_repo_files(repo_id) == [".gitattributes", "k.txt"]
