"""The Streamlit dashboard: every page under AppTest on a runs folder made here, a real run started
from the Launch page, Stop/Resume from the Runs page, Publish with the Hub replaced by a recorder,
and one headless Chromium check that the Curves page draws a plot."""
import json
import os
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import CHROMIUM, CHROMIUM_ARGS, WAIT_S, free_port, wait_until
from huggingface_hub import ModelCard, RepoUrl
from streamlit.testing.v1 import AppTest

from srcore import hub, launch
from srcore.run import FAILED, FINISHED, RUNNING, STOPPED, RunFolder, pid_alive

PROJECT = Path(__file__).resolve().parent.parent
APP = PROJECT / "dashboard" / "streamlit_app.py"
PAGES = ("views/launch.py", "views/runs.py", "views/curves.py", "views/publish.py")
TOKEN = "hf_dashboardTOKEN9876543210SECRET"


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def fake_run(root: Path, name: str, state: str, pid: int | None = None, **status) -> RunFolder:
    run = RunFolder(root / name).create()
    run.write_config({"model": "tiny", "epochs": 3, "out": str(run.path)})
    for epoch in (1, 2):
        run.append_metrics({"type": "step", "step": epoch * 10, "epoch": epoch, "loss": 3.0 / epoch,
                            "lr": 1e-3, "elapsed_s": 5.0 * epoch})
        run.append_metrics({"type": "epoch", "epoch": epoch, "step": epoch * 10, "train_loss": 2.0 / epoch,
                            "valid_loss": 2.5 / epoch, "wer": 0.9 / epoch, "cer": 0.5 / epoch, "lr": 1e-3,
                            "elapsed_s": 5.0 * epoch, "samples": [{"ref": "stop", "hyp": f"sto{epoch}"}]})
    run.log_path.write_text(f"{name} log line\n")
    run.write_status(state, **status, **({"pid": pid} if pid else {}))  # default pid: this process
    return run


@pytest.fixture
def runs_root(tmp_path, trained_run, word_corpus, monkeypatch) -> Path:
    """finished (a real trained run), failed, running (this process) and stale runs."""
    root = tmp_path / "runs"
    shutil.copytree(trained_run, root / "finished")
    fake_run(root, "failed", FAILED, error="RuntimeError: out of memory")
    fake_run(root, "running", RUNNING, progress=0.5, epoch=2, step=20)
    fake_run(root, "stale", RUNNING, pid=dead_pid())
    monkeypatch.setenv("SRCORE_RUNS", str(root))
    monkeypatch.setenv("SRCORE_DATA", str(word_corpus.parent))
    return root


def open_page(page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=WAIT_S)
    at.run()
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no {label!r} button among {[b.label for b in at.button]}"
    return matches[0]


def plot_traces(at: AppTest) -> list[dict]:
    return [trace for chart in at.get("plotly_chart") for trace in json.loads(chart.proto.spec)["data"]]


def rendered_text(at: AppTest) -> str:
    kinds = ("markdown", "code", "success", "error", "info", "caption", "text", "title", "subheader")
    return "\n".join(str(e.value) for kind in kinds for e in at.get(kind))


# ---------------------------------------------------------------- every page renders

@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders(runs_root, page):
    open_page(page)


def test_runs_page_lists_every_run_with_its_state(runs_root):
    at = open_page("views/runs.py")
    table = at.dataframe[0].value
    assert dict(zip(table["run"], table["state"])) == {
        "finished": FINISHED, "failed": FAILED, "running": RUNNING, "stale": "stale"}
    assert table.set_index("run").loc["finished", "best WER"] == RunFolder(runs_root / "finished").best_wer()
    at.selectbox(key="run").set_value("failed").run()
    assert "RuntimeError: out of memory" in [e.value for e in at.error]
    assert "failed log line" in rendered_text(at)
    assert [b.label for b in at.button] == ["Resume"]
    at.selectbox(key="run").set_value("running").run()
    assert [b.label for b in at.button] == ["Stop", "Kill"]


def test_curves_page_overlays_runs_and_shows_samples(runs_root):
    at = open_page("views/curves.py")
    at.multiselect(key="runs").set_value(["finished", "failed"]).run()
    assert not at.exception
    names = {trace["name"] for trace in plot_traces(at)}
    assert {"finished · train_loss", "failed · valid_loss", "failed · wer", "failed · loss",
            "failed · lr"} <= names
    failed = next(t for t in plot_traces(at) if t["name"] == "failed · train_loss")
    assert (list(failed["x"]), list(failed["y"])) == ([1, 2], [2.0, 1.0])
    samples = {s.value for s in at.subheader}
    assert "failed: sample predictions after epoch 2" in samples
    failed_samples = at.dataframe[1].value
    assert list(failed_samples["ground truth"]) == ["stop"]
    assert list(failed_samples["prediction"]) == ["sto2"]


def test_publish_page_offers_runs_with_checkpoints_and_their_card(runs_root):
    at = open_page("views/publish.py")
    assert at.selectbox(key="source_run").options == ["finished"]
    rendered, raw = at.tabs
    assert (rendered.label, raw.label) == ("rendered", "raw markdown (with metadata)")
    card = ModelCard(raw.code[0].value)
    assert {r.metric_type for r in card.data.eval_results} == {"wer", "cer"}
    page = rendered.markdown[0].value  # the body as Markdown, drawn by Streamlit
    assert page.startswith(f"# {card.data.model_name}\n") and "## Results" in page
    assert page.strip() == card.text.strip() and "model-index" not in page


# ---------------------------------------------------------------- launch, stop, resume for real

def test_launch_page_starts_a_run_that_finishes_and_is_plotted(runs_root, word_corpus):
    at = open_page("views/launch.py")
    assert str(word_corpus) in at.selectbox(key="train").options
    at.selectbox(key="train").set_value(str(word_corpus))
    at.selectbox(key="valid").set_value(str(word_corpus))
    at.selectbox(key="model").set_value("tiny")
    at.text_input(key="name").input("from the page")
    for key, value in {"epochs": 2, "batch_size": 2, "max_steps": 4, "threads": 1, "workers": 0}.items():
        at.number_input(key=key).set_value(value)
    at.checkbox(key="augment").uncheck()
    button(at, "Start training").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    run = RunFolder(runs_root / "from-the-page")
    assert str(run.path.resolve()) in at.success[0].value

    wait_until(lambda: run.read_status()["state"] != RUNNING, what="the launched run to end")
    assert run.read_status()["state"] == FINISHED, launch.console_tail(run)
    epochs = run.read_metrics()
    assert [row["epoch"] for row in epochs] == [1, 2]

    at = open_page("views/curves.py")
    assert at.multiselect(key="runs").value == ["from-the-page"]  # the newest run
    train_loss = next(t for t in plot_traces(at) if t["name"] == "from-the-page · train_loss")
    assert list(train_loss["y"]) == [row["train_loss"] for row in epochs]
    at = open_page("views/runs.py")
    table = at.dataframe[0].value.set_index("run")
    assert table.loc["from-the-page", "state"] == FINISHED


def test_runs_page_stops_and_resumes_a_training_process(runs_root, word_corpus):
    started = launch.start_training(runs_root, "endless", {
        "train": str(word_corpus), "valid": str(word_corpus), "model": "tiny", "epochs": 10_000,
        "batch_size": 2, "threads": 1, "workers": 0, "log_every": 1, "augment": False})
    run = started.run
    wait_until(lambda: run.read_metrics("step"), what="the first training steps")
    at = open_page("views/runs.py")
    at.selectbox(key="run").set_value("endless").run()
    button(at, "Stop").click().run()
    assert not at.exception
    started.process.wait(timeout=WAIT_S)
    assert run.read_status()["state"] == STOPPED
    assert at.success[0].value == "stop requested: endless is now stopped"
    assert at.subheader[0].value.startswith("endless: stopped · epoch")

    button(at, "Resume").click().run()
    assert not at.exception and not at.error
    assert [b.label for b in at.button] == ["Stop", "Kill"]
    status = run.read_status()
    assert status["state"] == RUNNING and status["pid"] != started.pid and pid_alive(status["pid"])
    launch.stop_run(run, wait_s=WAIT_S)
    assert launch.wait_for_exit(status["pid"], WAIT_S)
    assert run.read_status()["state"] == STOPPED


# ---------------------------------------------------------------- publish

class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: keeps its token and a copy of the upload."""

    def __init__(self, uploads: Path, calls: list, token=None, **kwargs):
        self.uploads, self.calls, self.token = uploads, calls, token

    def create_repo(self, repo_id, **kwargs):
        self.calls.append({"repo_id": repo_id, "token": self.token, **kwargs})
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        shutil.copytree(folder_path, self.uploads, dirs_exist_ok=True)


def test_publish_page_pushes_without_keeping_the_token(runs_root, tmp_path, monkeypatch):
    uploads, calls = tmp_path / "uploaded", []
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: RecordingHfApi(uploads, calls, **kwargs))
    at = open_page("views/publish.py")
    at.text_input(key="repo_id").input("someone/words")
    at.checkbox(key="private").check()
    at.text_input(key="token").input(TOKEN)
    button(at, "Push to the Hub").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert "https://huggingface.co/someone/words" in at.success[0].value
    assert calls == [{"repo_id": "someone/words", "token": TOKEN, "private": True, "exist_ok": True}]
    assert {p.name for p in uploads.iterdir()} == {"README.md", "config.json", "model.safetensors", "tokens.txt"}
    assert ModelCard((uploads / "README.md").read_text()).data.eval_results
    assert at.text_input(key="token").value == ""  # cleared once submitted
    assert TOKEN not in rendered_text(at)
    for folder in (uploads, runs_root):
        assert not [p for p in folder.rglob("*") if p.is_file() and TOKEN.encode() in p.read_bytes()]


def test_publish_page_saves_the_bundle_locally(runs_root, tmp_path):
    at = open_page("views/publish.py")
    at.text_input(key="save_out").input(str(tmp_path / "bundle"))
    button(at, "Save the bundle locally").click().run()
    assert not at.exception and not at.error
    assert {p.name for p in (tmp_path / "bundle").iterdir()} == {"README.md", "config.json",
                                                                 "model.safetensors", "tokens.txt"}


# ---------------------------------------------------------------- a real browser

def wait_for_server(url: str, server: subprocess.Popen) -> None:
    def healthy() -> bool:
        assert server.poll() is None, "streamlit exited"
        try:
            with urllib.request.urlopen(url, timeout=1) as response:
                return response.status == 200
        except OSError:
            return False
    wait_until(healthy, what="streamlit to serve")


@pytest.fixture
def dashboard_server(runs_root, tmp_path):
    port = free_port()
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"]
    with open(tmp_path / "streamlit.log", "wb") as log:
        server = subprocess.Popen(command, cwd=PROJECT, stdout=log, stderr=subprocess.STDOUT,
                                  env={**os.environ, "SRCORE_RUNS": str(runs_root)})
    try:
        wait_for_server(f"http://127.0.0.1:{port}/_stcore/health", server)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        server.wait(timeout=WAIT_S)


@pytest.fixture
def browser_page():
    """A headless Chromium page (skips where Chromium or Python playwright is missing)."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is not installed (apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="Python playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.set_default_timeout(WAIT_S * 1000)
            yield page
        finally:
            browser.close()


def test_chromium_renders_the_curves_plot(dashboard_server, browser_page):
    page = browser_page
    page.goto(f"{dashboard_server}/curves")
    page.wait_for_selector(".js-plotly-plot .main-svg")
    assert page.locator(".js-plotly-plot").count() >= 2
    assert page.get_by_text("runs folder:").is_visible()  # served through st.navigation
    assert "stale · train_loss" in page.locator(".js-plotly-plot").first.inner_text()


USAGE_STATISTICS_HOST = "data.streamlit.io"


@pytest.mark.browser
@pytest.mark.parametrize("command", [["-m", "srcore", "dashboard"], ["-m", "srcore.serve", "dashboard"],
                                     ["-m", "streamlit", "run", str(APP)]], ids=" ".join)
def test_the_dashboard_sends_no_usage_statistics_and_shows_no_deploy_button(command, runs_root, tmp_path,
                                                                            browser_page):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STREAMLIT_")}
    env.update(STREAMLIT_SERVER_PORT=str(port), STREAMLIT_SERVER_HEADLESS="true", HOME=str(tmp_path),
               PYTHONPATH=str(PROJECT))
    with open(tmp_path / "streamlit.log", "wb") as log:  # started outside the checkout
        server = subprocess.Popen([sys.executable, *command], cwd=tmp_path, env=env, stdout=log,
                                  stderr=subprocess.STDOUT)
    try:
        wait_for_server(f"http://127.0.0.1:{port}/_stcore/health", server)
        page, requested = browser_page, []
        page.on("request", lambda request: requested.append(request.url))
        page.goto(f"http://127.0.0.1:{port}")
        page.get_by_text("Launch a training run").wait_for()
        page.wait_for_load_state("networkidle")
        assert page.get_by_role("button", name="Deploy").count() == 0
        assert not [url for url in requested if USAGE_STATISTICS_HOST in url]
    finally:
        server.terminate()
        server.wait(timeout=WAIT_S)


@pytest.mark.browser
def test_enter_in_the_run_name_does_not_launch_a_half_filled_run(dashboard_server, browser_page,
                                                                 runs_root, word_corpus):
    page = browser_page
    page.goto(dashboard_server)  # the Launch page
    page.get_by_label("run name").fill("typed first")
    page.get_by_label("run name").press("Enter")  # before the fix: launched with every default
    page.get_by_label("model").click()
    page.get_by_role("option", name="tiny", exact=True).click()
    for label, value in {"epochs": 1, "batch size": 2}.items():
        page.get_by_label(label, exact=True).fill(str(value))
    page.get_by_text("more options").click()
    for label, value in {"max steps (0: no limit)": 1, "torch threads (0: default)": 1}.items():
        page.get_by_label(label).fill(str(value))
    page.get_by_role("button", name="Start training").click()
    page.get_by_text("Follow it on the Runs page").wait_for()
    run = RunFolder(runs_root / "typed-first")
    config = run.read_config()
    assert (config["model"], config["epochs"], config["batch_size"], config["max_steps"],
            config["threads"]) == ("tiny", 1, 2, 1, 1)
    assert config["train"] == str(word_corpus)
    wait_until(lambda: run.read_status()["state"] != RUNNING, what="the launched run to end")


@pytest.mark.browser
def test_runs_page_heading_and_log_follow_a_running_run(runs_root, dashboard_server, browser_page):
    run = RunFolder(runs_root / "running")
    newest = run.config_path.stat().st_mtime + 60
    os.utime(run.config_path, (newest, newest))  # listed first: the Runs page shows it
    page = browser_page
    page.goto(f"{dashboard_server}/runs")
    page.get_by_text("running log line").wait_for()
    assert page.get_by_text("running: running · epoch 2 · 50%").is_visible()
    with open(run.log_path, "a") as log:
        log.write("epoch 3 began\n")
    run.write_status(RUNNING, progress=0.75, epoch=3, step=30)
    page.get_by_text("epoch 3 began").wait_for()  # no click, no reload: the page refreshes itself
    page.get_by_text("running: running · epoch 3 · 75%").wait_for()


def test_launch_page_makes_a_synthetic_corpus_to_train_on(runs_root, tmp_path, monkeypatch):
    monkeypatch.setenv("SRCORE_DATA", str(tmp_path / "corpora"))
    corpus = tmp_path / "corpora" / "synth"
    at = open_page("views/launch.py")
    assert at.selectbox(key="train").options == []
    at.text_input(key="synth_out").input(str(corpus))
    at.number_input(key="synth_hours").set_value(0.002)
    button(at, "Generate").click().run()
    assert not at.error, [e.value for e in at.error]
    wait_until(lambda: launch.synth_state(corpus) != RUNNING, what="the corpus")
    assert launch.synth_state(corpus) == FINISHED, (corpus / launch.SYNTH_LOG).read_text()
    at.run()
    assert at.selectbox(key="train").value == str(corpus / "train.jsonl")
    assert at.selectbox(key="valid").value == str(corpus / "valid.jsonl")
