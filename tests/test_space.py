"""The Space: samples.parquet, the Gradio app driven in a real headless Chromium, and push_space to the local Hub.

Run only these:  pytest tests/test_space.py -v
The browser test needs Debian's chromium (/usr/bin/chromium) and the playwright Python package; it never
downloads a browser and aborts every request that is not to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import runpy
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

gr = pytest.importorskip("gradio")
pytest.importorskip("plotly")

from hf_finetune_curve.cli import main  # noqa: E402
from hf_finetune_curve.data.sample_data import generate_listings, write_jsonl  # noqa: E402
from hf_finetune_curve.data.subsets import Splits  # noqa: E402
from hf_finetune_curve.errors import SpaceError  # noqa: E402
from hf_finetune_curve.space.samples import build_samples, read_samples  # noqa: E402
from hf_finetune_curve.space import (  # noqa: E402
    MAX_DESCRIPTION_CHARS,
    SPACE_CONFIG_FILE,
    CurveExplorer,
    build_app,
    curve_figure,
    launch_space,
    load_run_data,
    points_table_markdown,
    push_space,
    space_files,
    summary_markdown,
)
from hf_finetune_curve.space.deploy import _run_name  # noqa: E402

FAST = ["--probe-trees", "30", "--max-seq-length", "32", "--batch-size", "16", "--no-progress"]
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
SPACE_DIR = Path(__file__).resolve().parents[1] / "spaces" / "finetune_curve"
DESCRIPTION = "This 1991 Porsche 911 Carrera coupe is finished in red over black leather, manual, clean title."


@contextlib.contextmanager
def _tiny_run(tiny_model_dir, tmp_path_factory, prefix: str, name: str, *options: str):
    """A finished tiny-model run (sizes 0, 50, all on 200 rows) in ``<prefix>-runs/<name>``, torch single-threaded
    while it is in use: on a busy 2-core machine two spinning threads make the tiny finetunes about 4x
    slower than one."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = tmp_path_factory.mktemp(f"{prefix}-data") / "listings.jsonl"
        write_jsonl(generate_listings(200, seed=11), data)
        out = tmp_path_factory.mktemp(f"{prefix}-runs") / name
        assert main(["run", "--data", str(data), "--model", str(tiny_model_dir), "--sizes", "0,50,all",
                     *options, "--output-dir", str(out), *FAST]) == 0
        yield out
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def space_run(tiny_model_dir, tmp_path_factory):
    """A finished tiny-model run (sizes 0, 50, all on 200 rows) with its samples.parquet (torch single-threaded
    for this module)."""
    with _tiny_run(tiny_model_dir, tmp_path_factory, "space", "tiny") as out:
        build_samples(out)
        yield out


def _snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# -------------------------------------------------------------------------------------------------
# samples.parquet
# -------------------------------------------------------------------------------------------------
def test_build_samples_columns_sizes_and_predictions(space_run):
    samples = read_samples(space_run / "samples.parquet")
    splits = Splits.load(space_run / "splits.npz")
    labels = ["f0", "f50", "f160"]
    frame = samples.frame
    assert samples.labels == labels
    assert len(frame) == min(300, len(splits.test_indices)) == 40
    expected = {"row", "test_position", "text", "price"} | {f"{kind}:{label}" for kind in ("pred", "x", "y")
                                                            for label in labels}
    assert set(frame.columns) == expected
    assert np.array_equal(frame["row"], splits.test_indices[frame["test_position"]])
    assert frame["text"].map(lambda t: isinstance(t, str) and len(t) > 20).all()
    assert (frame["price"] > 0).all()
    for label in labels:
        predictions = np.load(space_run / "predictions" / f"{label}.npy")
        assert np.array_equal(frame[f"pred:{label}"].to_numpy(), predictions[frame["test_position"]])
        cached = next((space_run / "embeddings").glob(f"{label}-*.npy"))
        assert samples.embeddings[label].shape == (40, 32)
        np.testing.assert_array_equal(samples.embeddings[label], np.load(cached)[frame["row"]])
        coords = frame[[f"x:{label}", f"y:{label}"]].to_numpy()
        assert np.isfinite(coords).all() and coords.std(axis=0).min() > 0
        # The stored PCA places the sample embeddings exactly where the x/y columns say.
        np.testing.assert_allclose(samples.project(label, samples.embeddings[label]), coords, atol=1e-4)


def test_build_samples_subsample_and_without_the_embedding_cache(space_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(space_run, copy)
    shutil.rmtree(copy / "embeddings")  # cache deleted: build_samples embeds just the samples itself
    full = read_samples(space_run / "samples.parquet")
    path = build_samples(copy, n_samples=12, seed=3)
    small = read_samples(path)
    assert len(small.frame) == 12 and small.info["seed"] == 3
    assert set(small.frame["row"]) <= set(full.frame["row"])
    again = read_samples(build_samples(copy, n_samples=12, seed=3))
    assert again.frame.equals(small.frame)
    for label in ("f0", "f50", "f160"):
        lookup = dict(zip(full.frame["row"], full.embeddings[label]))
        expected = np.stack([lookup[row] for row in small.frame["row"]])
        np.testing.assert_allclose(small.embeddings[label], expected, atol=1e-5)


# -------------------------------------------------------------------------------------------------
# The app's handlers, without a browser
# -------------------------------------------------------------------------------------------------
def test_app_handlers_and_input_limits(space_run):
    before = _snapshot(space_run)
    explorer = CurveExplorer(load_run_data(space_run))
    r2 = curve_figure(explorer.run.points, explorer.run.curve, "R²", log_x=True)
    measured = next(trace for trace in r2.data if trace.name == "measured")
    assert len(measured.x) == 3 and measured.marker.symbol[0] == "star"
    assert r2.layout.xaxis.type == "log" and measured.x[0] < measured.x[1]
    assert any(trace.fill == "tonexty" for trace in r2.data)  # the fit band from curve.json
    mae = explorer.curve_plot("MAE", False, True)
    assert next(t for t in mae.data if t.name == "measured").y[1] == pytest.approx(explorer.run.points[1]["mae"])
    assert mae.layout.xaxis.type != "log" and list(next(t for t in mae.data if t.name == "measured").x) == [0, 50, 160]

    with pytest.raises(gr.Error, match="limit is 2,000"):
        explorer.predict("x" * (MAX_DESCRIPTION_CHARS + 1), "f50")
    with pytest.raises(gr.Error, match="description first"):
        explorer.predict("   ", "f50")
    rows, embeddings = explorer.price_rows(DESCRIPTION)
    assert [row["label"] for row in rows] == ["f0", "f50", "f160"]
    assert all(row["price"] is not None and row["price"] > 0 for row in rows)
    assert len({round(row["price"], 6) for row in rows}) > 1  # different checkpoints, different prices
    table, neighbours, figure, state = explorer.predict(DESCRIPTION, "f50")
    assert table.count('class="price-row"') == 3
    assert neighbours.count("<tr>") == 1 + 5
    assert [trace.name for trace in figure.data] == ["held-out listings", "your description"]
    nearest = explorer.neighbour_rows("f160", state)
    assert len(nearest) == 5 and nearest[0]["similarity"] >= nearest[-1]["similarity"]
    redrawn, _ = explorer.show_checkpoint("f0", "error (pred - true)", state)
    assert "f0" in redrawn.layout.title.text and len(redrawn.data) == 2
    assert _snapshot(space_run) == before  # the app never writes into the run


def test_summary_states_the_answer_metric_and_the_next_size(space_run):
    run = load_run_data(space_run)
    run.curve["answer"] = {"available": True, "metric": "r2_log",
                           "n_for_90": {"n_needed": 1234.0, "low": 800.0, "high": 2100.0},
                           "next_size": {"available": True, "size": 4800, "reason": "measuring 4,800 is expected to "
                                         "narrow the N-for-90% interval from 2.6x to 1.7x (high/low)"}}
    text = summary_markdown(run)
    assert "90% of the attainable R² (log price) gain:** 1,234 (95% CI 800–2,100)" in text
    assert "**Next size to measure:** 4,800 texts (measuring 4,800" in text
    run.curve["answer"]["next_size"] = {"available": True, "size": None, "saturated": True,
                                        "reason": "the curve has saturated within its interval"}
    assert "**Next size:** none suggested (the curve has saturated within its interval)" in summary_markdown(run)
    run.curve["answer"]["verdict"] = {"call": "hurts", "worse": [100, 200], "better": [], "levels": ["rows", "probe seeds"],
                                      "provisional": True, "command": "--seeds 3"}
    text = summary_markdown(run)
    assert "Verdict on R² (log price): hurts: worse than f0 at every measured size (100, 200)" in text
    assert "Noise behind it: rows, probe seeds." in text and "--seeds 3" in text


def test_app_entry_point_and_bad_sources(space_run, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_CURVE_RUN_DIR", str(space_run))
    namespace = runpy.run_path(str(SPACE_DIR / "app.py"))
    assert isinstance(namespace["demo"], gr.Blocks)
    monkeypatch.delenv("HF_CURVE_RUN_DIR")
    monkeypatch.delenv("HF_CURVE_REPO", raising=False)

    def text_of(demo) -> str:
        return " ".join(str(block.value) for block in demo.blocks.values() if isinstance(block, gr.Markdown))

    assert "No run configured" in text_of(build_app(app_dir=tmp_path))
    assert "Could not load" in text_of(build_app(str(tmp_path / "missing-run")))


def test_space_folder_is_what_push_space_uploads():
    from hf_finetune_curve import __version__

    files = space_files()
    for name in ("app.py", "README.md", "requirements.txt"):
        assert (SPACE_DIR / name).read_text(encoding="utf-8") == files[name], name
    readme = files["README.md"]
    front = readme.split("---")[1]
    for line in ("sdk: gradio", "app_file: app.py", "emoji:", "colorFrom:", "colorTo:", "title:"):
        assert line in front
    sdk_version = re.search(r"^sdk_version: (\d+)\.(\d+)\.(\d+)$", front, re.M)
    assert sdk_version and sdk_version.group(1) == gr.__version__.split(".")[0]
    assert f"hf-finetune-curve[cpu,space]=={__version__}" in files["requirements.txt"]
    # A pushed Space: the same files, with its title, links and data source filled in.
    pushed = space_files("org/bat-curve", ["org/bat-f50"], title="BaT curve")
    assert pushed["app.py"] == files["app.py"] and pushed["requirements.txt"] == files["requirements.txt"]
    front, body = pushed["README.md"].split("---")[1], pushed["README.md"].split("---", 2)[2]
    assert "title: BaT curve" in front and "datasets:\n- org/bat-curve\nmodels:\n- org/bat-f50" in front
    assert body.lstrip().startswith("# BaT curve") and "Data: the curve dataset [org/bat-curve]" in body
    assert json.loads(pushed["curve_space.json"]) == {"curve_repo": "org/bat-curve"}


# -------------------------------------------------------------------------------------------------
# The app in a real browser
# -------------------------------------------------------------------------------------------------
def test_space_in_headless_chromium(space_run, tmp_path):
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    before = _snapshot(space_run)
    demo, url = launch_space(space_run, port=_free_port(), block=False)
    outside: list[str] = []

    def local_only(route):
        if route.request.url.startswith(("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")):
            return route.continue_()
        outside.append(route.request.url)
        return route.abort()

    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.route("**/*", local_only)
                page.goto(url)
                points = page.locator("#curve-plot .scatterlayer path.point")
                page.wait_for_selector("#curve-plot .scatterlayer path.point", timeout=60_000)
                assert points.count() == 3  # one marker per finetune size
                # It opens on the metric the answer uses (log R² by default), not on raw R².
                assert page.locator("#curve-plot .ytitle").text_content() == "R² (log price)"
                assert page.locator("#metric").get_by_label("R² (log price)", exact=True).is_checked()
                before_y = points.evaluate_all("els => els.map(e => e.getAttribute('transform'))")
                # Hover shows exact values.
                box = points.nth(1).bounding_box()
                page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
                page.wait_for_selector("#curve-plot .hoverlayer .hovertext", timeout=10_000)
                assert "f50" in page.locator("#curve-plot .hoverlayer").text_content()
                page.screenshot(path=str(tmp_path / "space-curve.png"), full_page=True)

                page.locator("#metric").get_by_label("MAE", exact=True).check()
                page.wait_for_function(
                    "() => document.querySelector('#curve-plot .ytitle')?.textContent === 'MAE'", timeout=30_000)
                after_y = points.evaluate_all("els => els.map(e => e.getAttribute('transform'))")
                assert len(after_y) == 3 and after_y != before_y

                page.get_by_role("tab", name="Listings").click()
                page.wait_for_selector("#map-plot .scatterlayer path.point", timeout=30_000)
                assert page.locator("#map-plot .scatterlayer path.point").count() == 40
                page.locator("#description textarea").fill(DESCRIPTION)
                page.locator("#predict-btn").click()
                page.wait_for_selector("#prices tr.price-row", timeout=90_000)
                rows = page.locator("#prices tr.price-row")
                assert rows.evaluate_all("els => els.map(e => e.dataset.label)") == ["f0", "f50", "f160"]
                prices = page.locator("#prices tr.price-row td.price").all_text_contents()
                assert len(prices) == 3 and all(float(p.replace(",", "")) > 0 for p in prices)
                page.wait_for_selector("#neighbours tbody tr", timeout=10_000)
                assert page.locator("#neighbours tbody tr").count() == 5
                page.wait_for_timeout(500)
                page.screenshot(path=str(tmp_path / "space-listings.png"), full_page=True)
            finally:
                browser.close()
    finally:
        demo.close()
    assert (tmp_path / "space-listings.png").stat().st_size > 10_000
    try:
        shutil.copy(tmp_path / "space-listings.png", "/tmp/space_screenshot.png")
        shutil.copy(tmp_path / "space-curve.png", "/tmp/space_screenshot_curve.png")
    except OSError:
        pass
    assert outside == []  # nothing but 127.0.0.1: no fonts, CDNs or analytics
    assert _snapshot(space_run) == before


# -------------------------------------------------------------------------------------------------
# Publishing to the (local) Hub
# -------------------------------------------------------------------------------------------------
def test_push_space_and_read_the_run_from_the_hub(space_run, hub_server, tmp_path):
    from huggingface_hub import HfApi, hf_hub_download

    token = "test-token"
    api = HfApi(token=token)
    name = _run_name(space_run)
    curve_repo, model_repo = f"space-org/{name}-curve", f"space-org/{name}-f50"
    # What a published run looks like (f160 deliberately not published).
    api.create_repo(curve_repo, repo_type="dataset", exist_ok=True)
    staging = tmp_path / "curve"
    staging.mkdir()
    for file in ("config.json", "curve.json", "curve.csv", "data_report.json", "samples.parquet"):
        shutil.copy(space_run / file, staging / file)
    (staging / "probes").mkdir()
    shutil.copy(space_run / "probes" / "f0.json", staging / "probes" / "f0.json")
    api.upload_folder(repo_id=curve_repo, repo_type="dataset", folder_path=str(staging))
    api.create_repo(model_repo, exist_ok=True)
    api.upload_folder(repo_id=model_repo, folder_path=str(space_run / "checkpoints" / "f50"))
    api.upload_file(repo_id=model_repo, path_or_fileobj=str(space_run / "probes" / "f50.json"),
                    path_in_repo="probe/xgboost_probe.json")

    # From the run directory: the curve repo is the one `hf-curve push` names by default.
    assert main(["space", str(space_run), "--push", "space-org/tiny-explorer", "--hub-token", token]) == 0
    files = set(api.list_repo_files("space-org/tiny-explorer", repo_type="space"))
    assert {"app.py", "README.md", "requirements.txt", SPACE_CONFIG_FILE} <= files
    readme = Path(hf_hub_download("space-org/tiny-explorer", "README.md", repo_type="space")).read_text()
    assert "sdk: gradio" in readme and "app_file: app.py" in readme and f"- {curve_repo}" in readme
    assert f"- {model_repo}" in readme
    config = Path(hf_hub_download("space-org/tiny-explorer", SPACE_CONFIG_FILE, repo_type="space")).read_text()
    assert curve_repo in config
    # Pushing again with the repo id directly updates the same Space (idempotent, private flag accepted).
    url = push_space(curve_repo, "space-org/tiny-explorer", token=token, private=True)
    assert "tiny-explorer" in url
    with pytest.raises(SpaceError, match="Publish the run first"):
        push_space(space_run, "elsewhere/explorer", token=token)

    # What the deployed Space does: read the curve repo, load checkpoints and probes from the Hub.
    run = load_run_data(curve_repo)
    assert not run.local and run.labels == ["f0", "f50", "f160"]
    assert run.hub_url("f50").endswith(model_repo)
    explorer = CurveExplorer(run)
    rows = {row["label"]: row for row in explorer.price_rows(DESCRIPTION)[0]}
    local = {row["label"]: row for row in CurveExplorer(load_run_data(space_run)).price_rows(DESCRIPTION)[0]}
    assert rows["f50"]["price"] == pytest.approx(local["f50"]["price"], rel=1e-5)
    assert rows["f0"]["price"] == pytest.approx(local["f0"]["price"], rel=1e-5)
    assert rows["f160"]["price"] is None and rows["f160"]["error"]
    assert f"[f50]({os.environ['HF_ENDPOINT']}/{model_repo})" in points_table_markdown(run)


# -------------------------------------------------------------------------------------------------
# Several objectives: one curve each, on the same axes, from the shared f0
# -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def objectives_run(tiny_model_dir, tmp_path_factory):
    """A tiny two-objective run (MLM and TSDAE, sizes 0, 50, all on 200 rows) with its samples.parquet."""
    with _tiny_run(tiny_model_dir, tmp_path_factory, "objectives", "two", "--objectives", "mlm,tsdae") as out:
        yield out


def test_two_objectives_in_the_app_and_in_headless_chromium(objectives_run, tmp_path):
    run = load_run_data(objectives_run)
    assert run.labels == ["f0", "f50", "tsdae/f50", "f160", "tsdae/f160"]
    assert run.model_location("tsdae/f50") == str(objectives_run / "checkpoints" / "tsdae" / "f50")
    samples = read_samples(objectives_run / "samples.parquet")
    assert samples.labels == run.labels  # every checkpoint of both curves on the map, f0 once
    tsdae_predictions = np.load(objectives_run / "predictions" / "tsdae" / "f50.npy")
    assert np.array_equal(samples.frame["pred:tsdae/f50"].to_numpy(), tsdae_predictions[samples.frame["test_position"]])
    figure = curve_figure(run.points, run.curve, "R²")
    curves = {trace.name: trace for trace in figure.data if trace.mode == "lines+markers"}
    assert set(curves) == {"MLM", "TSDAE"}
    for name, trace in curves.items():  # both start at the shared f0, each with its own points and intervals
        assert len(trace.x) == 3 and trace.marker.symbol[0] == "star" and trace.error_y.array is not None
        assert trace.y[0] == run.points[0]["r2"]
    assert list(curves["TSDAE"].y[1:]) == [p["r2"] for p in run.points if p["objective"] == "tsdae"]
    table = points_table_markdown(run)
    assert "| objective |" in table and "| tsdae | 50 | tsdae/f50 |" in table

    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
    demo, url = launch_space(objectives_run, port=_free_port(), block=False)
    try:
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page(viewport={"width": 1280, "height": 1000})
                page.route("**/*", lambda route: route.continue_() if route.request.url.startswith(
                    ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:")) else route.abort())
                page.goto(url)
                page.wait_for_selector("#curve-plot .scatterlayer path.point", timeout=60_000)
                # Two curves of three markers each (f0 starts both), and a legend naming both objectives.
                assert page.locator("#curve-plot .scatterlayer .trace").count() >= 2
                assert page.locator("#curve-plot .scatterlayer path.point").count() == 6
                legend = page.locator("#curve-plot .legend").text_content()
                assert "MLM" in legend and "TSDAE" in legend
                page.screenshot(path=str(tmp_path / "space-objectives.png"), full_page=True)
                page.get_by_role("tab", name="Listings").click()
                page.locator("#description textarea").fill(DESCRIPTION)
                page.locator("#predict-btn").click()
                page.wait_for_selector("#prices tr.price-row", timeout=90_000)
                rows = page.locator("#prices tr.price-row")
                assert rows.evaluate_all("els => els.map(e => e.dataset.label)") == run.labels
            finally:
                browser.close()
    finally:
        demo.close()
    try:
        shutil.copy(tmp_path / "space-objectives.png", "/tmp/space_objectives_screenshot.png")
    except OSError:
        pass
