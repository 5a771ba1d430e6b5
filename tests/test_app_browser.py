"""End to end: the real page in headless Chromium (Playwright) uploads clips and reads the answers.

Uses the system Chromium (Debian package `chromium`), never a downloaded browser; skipped where
Chromium or the Python `playwright` package is missing.
"""
import os
import re
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np
import pytest
import soundfile as sf
from conftest import CHROMIUM, CHROMIUM_ARGS, SAMPLE_RATE, WAIT_S, free_port, speak

import app
from srcore.config import AdaptConfig

pytestmark = pytest.mark.browser


sync_api = pytest.importorskip("playwright.sync_api",
                               reason="the Python package `playwright` is not installed")
if not Path(CHROMIUM).is_file():
    pytest.skip(f"no Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)


@pytest.fixture(scope="module")
def microphone_clip(tmp_path_factory) -> Path:
    """What Chromium's fake microphone says, over and over: "go", then 0.6 s of quiet (a 1.5 s
    take holds a "go" wherever in the loop it starts)."""
    path = tmp_path_factory.mktemp("mic") / "go.wav"
    quiet = np.zeros(int(0.6 * SAMPLE_RATE), np.float32)
    wave = np.concatenate([np.zeros(1600, np.float32), speak("go"), quiet])
    sf.write(path, wave, SAMPLE_RATE, subtype="PCM_16")
    return path


@pytest.fixture(scope="module")
def page(trained_model, trained_run, microphone_clip):
    fast_adaptation = AdaptConfig(minutes=0.5, held_out=app.ADAPT_HELD_OUT, max_steps=20, augment=False)
    demo = app.build_demo(trained_model, trained_run.parent, adapt_config=fast_adaptation)
    _, url, _ = app.launch(demo, free_port(), prevent_thread_lock=True, quiet=True)
    fake_microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                       f"--use-file-for-fake-audio-capture={microphone_clip}"]
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=CHROMIUM_ARGS + fake_microphone)
        context = browser.new_context(permissions=["microphone"],
                                      viewport={"width": 1280, "height": 1200})
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.goto(url)
        yield page
        browser.close()
    demo.close()


def upload_and_transcribe(page, path, answer_contains: str) -> tuple[str, str]:
    """Upload `path`, click Transcribe, wait for the details line to contain `answer_contains`."""
    page.locator("#audio-input input[type=file]").set_input_files(str(path))
    page.click("#transcribe-button")
    page.wait_for_function(
        "text => document.querySelector('#transcribe-info').innerText.includes(text)",
        arg=answer_contains)
    return (page.locator("#transcript textarea").input_value(),
            page.locator("#transcribe-info").inner_text())


def test_upload_a_clip_and_read_the_transcript(page, word_corpus, tmp_path):
    clip = next((word_corpus.parent / "audio").glob("*_stop.wav"))
    text, info = upload_and_transcribe(page, clip, "s of audio transcribed in")
    assert text == "stop"
    assert info.startswith("0.")  # the clip's length in seconds
    page.locator(".js-plotly-plot").first.wait_for()  # the picture of what the model heard

    fake = tmp_path / "notes.wav"
    fake.write_text("a text file renamed .wav\n" * 10)
    page.locator("#audio-input button[aria-label='Clear']").click()
    text, info = upload_and_transcribe(page, fake, app.WARN)
    assert text == "" and "notes.wav is not audio" in info and "Traceback" not in page.content()


def test_validation_tab_scores_the_samples(page, word_corpus):
    page.get_by_role("tab", name="Validation samples").click()
    page.get_by_role("button", name="Score samples").click()
    page.get_by_text(re.compile(r"WER 0\.0 % · CER 0\.0 % over \d+ clips")).wait_for()  # not the header's
    table = page.locator("#samples-table")
    rows = table.inner_text().split("CER", 1)[1].split()
    assert rows[2:4] == ["yes", "yes"] and rows[-4:-2] == ["go", "go"]
    # clicking a row plays that sample and shows its diff
    table.get_by_role("gridcell", name="stop", exact=True).first.click()
    page.locator("#sample-diff").get_by_text("3.").wait_for()
    assert "stop" in page.locator("#sample-diff").inner_text()


def start_live_recording(page) -> list:
    """Open the live transcription and press Record; returns the list that collects the page's
    requests carrying audio to the server (uploads of recorded chunks)."""
    sent = []
    page.on("request", lambda r: sent.append(r.url) if "/gradio_api/upload" in r.url else None)
    page.get_by_role("tab", name="Transcribe").click()
    page.get_by_text("Live transcription (microphone)").click()
    page.get_by_role("button", name="Record", exact=True).click()
    return sent


def test_live_transcription_from_the_microphone(page):
    sent = start_live_recording(page)
    # Now and then, on a loaded machine, Chromium's recorder starts and never delivers a chunk
    # (no upload leaves the page at all): a browser fault, not the app's. Then reload and record
    # again, once; audio that reaches the server must come back as text.
    if not wait_for(page, lambda: sent, seconds=20):
        page.get_by_role("button", name="Stop", exact=True).click()
        page.reload()
        sent = start_live_recording(page)
    transcript = page.locator("#live-transcript textarea")
    try:  # the fake microphone keeps saying "go"
        page.wait_for_function(
            "() => document.querySelector('#live-transcript textarea').value.includes('go')",
            timeout=WAIT_S * 1000)
    except sync_api.TimeoutError:
        pytest.fail(f"no 'go' in the live transcript after {WAIT_S} s ({len(sent)} audio uploads "
                    f"sent): it reads {transcript.input_value()!r}")
    finally:
        page.get_by_role("button", name="Stop", exact=True).click()


def wait_for(page, condition, seconds: float) -> bool:
    """Poll `condition` while the page runs (its events are delivered during Playwright calls)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(200)
    return True


def record_and_keep(page, number: int, tries: int = 4) -> None:
    """Record take `number` with the microphone and keep it. Should a recording catch only the
    fake microphone's quiet, or Keep be clicked before the browser has handed the recording over,
    the app refuses it (as it should) and it is recorded again."""
    take = page.locator("#voice-take")
    kept = page.get_by_text(f"{number} of {len(app.PROMPTS)} recorded")
    refused = page.get_by_text(re.compile("is silent or too short|No audio|nothing was recorded"))
    for _ in range(tries):
        take.get_by_role("button", name="Record", exact=True).click()
        page.wait_for_timeout(1500)
        take.get_by_role("button", name="Stop", exact=True).click()
        take.locator("button[aria-label='Clear']").wait_for()  # the take is in
        page.click("#keep-take")
        if wait_for(page, kept.is_visible, seconds=WAIT_S / 2):
            return
        if not refused.is_visible():
            break
        take.locator("button[aria-label='Clear']").click()
    messages = page.locator(".toast-body").all_inner_texts()  # Gradio's error pop-ups, if any
    pytest.fail(f"take {number} was not kept ({tries} recordings at most); the page said: {messages}")


def test_teach_it_your_voice_with_the_microphone(page):
    page.get_by_role("tab", name="Teach it your voice").click()
    for number in range(1, app.MIN_TAKES + 1):
        record_and_keep(page, number)
    page.click("#adapt-button")
    page.locator("#voice-status").get_by_text("Adapted").wait_for(timeout=WAIT_S * 2000)
    rows = page.locator("#voice-results").inner_text()
    held_out = [prompt for prompt in app.PROMPTS[: app.MIN_TAKES] if prompt in rows]
    assert len(held_out) == app.ADAPT_HELD_OUT and "before" in rows and "after" in rows
    assert page.locator("#voice-status").inner_text().count("%") == 2  # WER before and after
