"""The bad-input matrix: every malformed input through the CLI and through the app's API gets a
clear message that names the file and the problem, never a traceback, and loses nothing (the good
clips beside it are still transcribed, scored and trained on)."""
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from conftest import SAMPLE_RATE, free_port, speak

ROOT = Path(__file__).resolve().parents[1]


def bad_inputs(folder: Path) -> dict[str, tuple[Path, str]]:
    """{case: (file, a regex of what the message must say)}, each made here."""
    folder.mkdir(parents=True, exist_ok=True)
    cases = {}

    def case(name: str, says: str) -> Path:
        path = folder / name
        cases[name] = (path, says)
        return path

    case("notes.wav", "unreadable audio|not audio").write_text("a text file renamed .wav\n" * 20)
    case("empty.wav", "empty").write_bytes(b"")
    truncated = case("truncated.wav", "truncated")
    sf.write(truncated, np.random.default_rng(0).normal(0, 0.1, SAMPLE_RATE).astype(np.float32),
             SAMPLE_RATE, subtype="PCM_16")
    truncated.write_bytes(truncated.read_bytes()[: 44 + 4000])
    nan = np.full(SAMPLE_RATE, 0.1, np.float32)
    nan[100:200] = np.nan
    sf.write(case("nan.wav", "non-finite"), nan, SAMPLE_RATE, subtype="FLOAT")
    sf.write(case("silent.wav", "silent"), np.zeros(SAMPLE_RATE, np.float32), SAMPLE_RATE)
    sf.write(case("blip.wav", "too short"), np.full(400, 0.3, np.float32), SAMPLE_RATE)
    cases["missing.wav"] = (folder / "missing.wav", "no such file")
    return cases


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad")
    good = folder / "good_go.wav"
    sf.write(good, np.concatenate([np.zeros(1600, np.float32), speak("go"), np.zeros(1600, np.float32)]),
             SAMPLE_RATE)
    return good, bad_inputs(folder)


def run_cli(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def test_transcribe_cli(trained_model, inputs):
    good, bad = inputs
    files = [good, *(path for path, _ in bad.values())]
    done = run_cli("srcore.transcribe", "--model", trained_model, *files)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert f"{good}\tgo" in done.stdout  # the good clip among them is not lost
    for name, (_, says) in bad.items():
        line = next((ln for ln in done.stderr.splitlines() if name in ln), "")
        assert re.search(says, line), (name, done.stderr)


def manifest_of(folder: Path, good: Path, bad: dict) -> Path:
    rows = [{"key": str(good), "text": "go"}] * 2
    rows += [{"key": str(path), "text": "go"} for path, _ in bad.values()]
    rows += [{"key": 7, "text": "go"}, {"text": "no key"}, {"key": str(good), "text": None}]
    manifest = folder / "mixed.jsonl"
    manifest.write_text("\n".join(json.dumps(r) for r in rows) + "\nnot json at all\n")
    return manifest


def test_evaluate_cli_scores_the_good_and_counts_the_bad(trained_model, inputs, tmp_path):
    good, bad = inputs
    manifest = manifest_of(tmp_path, good, bad)
    done = run_cli("srcore.evaluate", "--model", trained_model, "--manifest", manifest, "--greedy")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr
    summary = json.loads(done.stdout.splitlines()[-1])
    assert summary["n"] == 2 and summary["wer"] == 0.0
    assert (summary["sub"], summary["del"], summary["ins"]) == (0.0, 0.0, 0.0)
    assert summary["skipped"] + done.stderr.count("skipping") >= len(bad) + 3  # each named, counted
    for name in bad:
        assert name in done.stderr


def test_train_cli_trains_on_the_good_and_counts_the_bad(inputs, tmp_path):
    good, bad = inputs
    manifest = manifest_of(tmp_path, good, bad)
    done = run_cli("srcore.train", "--train", manifest, "--valid", manifest, "--model", "tiny",
                   "--epochs", 1, "--batch-size", 2, "--workers", 0, "--out", tmp_path / "run",
                   "--check-audio")
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    log = (tmp_path / "run" / "train.log").read_text()
    for name in bad:  # each named once it is found: in the manifest, or when its audio is decoded
        assert re.search(rf"skipping .*{re.escape(name)}", log), (name, log[-3000:])
    epoch = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
             if '"epoch"' in line][-1]
    assert epoch["skipped"]["train"] == len(bad) + 4  # 7 bad files, 3 bad rows, 1 non-JSON line
    assert (tmp_path / "run" / "checkpoints" / "best" / "model.safetensors").is_file()


def test_a_clip_found_broken_by_a_loader_process_is_counted(inputs, tmp_path):
    """A row that stores its duration is trusted until the clip is loaded; when a loader process
    (not the trainer) finds it unreadable, the epoch rows still count it."""
    good, bad = inputs
    broken = bad["notes.wav"][0]
    rows = [{"key": str(good), "text": "go", "duration": 1.0}] * 4
    rows.append({"key": str(broken), "text": "go", "duration": 1.0})
    manifest = tmp_path / "trusted.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    done = run_cli("srcore.train", "--train", manifest, "--valid", manifest, "--model", "tiny",
                   "--epochs", 2, "--batch-size", 2, "--workers", 1, "--cache-mb", 0,
                   "--threads", 1, "--out", tmp_path / "run")
    assert done.returncode == 0, done.stderr[-2000:]
    epochs = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
              if '"epoch"' in line]
    assert [row["skipped"] for row in epochs] == [{"train": 1, "valid": 1}] * 2


@pytest.mark.parametrize("command, missing", [
    (["srcore.train", "--train", "{gone}", "--valid", "{good}"], "{gone}"),
    (["srcore.train", "--config", "{gone}"], "{gone}"),
    (["srcore.train", "--train", "{good}", "--valid", "{good}", "--init-from", "{gone}"], "{gone}"),
    (["srcore.data", "combine", "{good}", "{gone}", "--out", "{out}"], "{gone}"),
])
def test_a_missing_input_file_is_one_line_naming_it(inputs, tmp_path, command, missing):
    good, _ = inputs
    names = {"gone": tmp_path / "gone.jsonl", "out": tmp_path / "out.jsonl",
             "good": manifest_of(tmp_path, good, {})}
    module, *args = [part.format(**names) for part in command]
    done = run_cli(module, *args, *(["--model", "tiny", "--out", tmp_path / "run"]
                                   if module == "srcore.train" else []))
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert missing.format(**names) in done.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize("command, says", [
    (["srcore.evaluate", "--manifest", "{good}", "--out", "{folder}"], "is a folder; give a file name"),
    (["srcore.evaluate", "--manifest", "{good}", "--summary", "{file}/s.json"], "is a file, or lies under one"),
    (["srcore.transcribe", "--output-dir", "{file}", "{good}"], "is a file, or lies under one"),
    (["srcore.transcribe", "--beam", "1", "{good}"], "a beam is 2 or more wide"),
    (["srcore.data", "combine", "{good}", "--out", "{folder}"], "is a folder; give a file name"),
    (["srcore.data", "split", "{good}", "--out", "{file}"], "is a file, or lies under one"),
    (["srcore.data", "split", "{good}", "--out", "{folder}/s", "--valid-fraction", "1.5"], "between 0 and 1"),
    (["srcore.data", "synth", "--out", "{folder}/c", "--hours", "0"], "must be above 0"),
    (["srcore.data", "synth", "--out", "{file}", "--hours", "0.01"], "is a file, or lies under one"),
    (["srcore.data", "synth", "--out", "{folder}/c", "--hours", "0.01", "--engines", "bogus"],
     "unknown engines ['bogus']"),
    (["srcore.lm", "build", "--out", "{file}", "--no-source", "--text", "{file}"], "is a file, or lies under one"),
    (["srcore.lm", "build", "--out", "{folder}/lm", "--no-source", "--text", "{folder}"], "Is a directory"),
])
def test_an_output_or_option_that_cannot_work_is_one_line_before_any_work(inputs, tmp_path, command, says):
    good, _ = inputs
    folder, file = tmp_path / "folder", tmp_path / "notes.txt"
    folder.mkdir()
    file.write_text("mine\n")
    names = {"good": manifest_of(tmp_path, good, {}), "folder": folder, "file": file}
    done = run_cli(*[part.format(**names) for part in command])
    assert done.returncode != 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    assert says in done.stderr.strip().splitlines()[-1]
    assert file.read_text() == "mine\n"


@pytest.fixture(scope="module")
def client(trained_model):
    from gradio_client import Client

    import app
    demo = app.build_demo(trained_model, None)
    _, url, _ = app.launch(demo, free_port(), prevent_thread_lock=True, quiet=True)
    yield app, Client(url, verbose=False)
    demo.close()


def test_app_api_transcribe_and_keep_take(client, inputs):
    app, api = client
    from gradio_client import handle_file
    good, bad = inputs
    text, info, _ = api.predict(handle_file(str(good)), "greedy", 16, False, api_name="/transcribe")
    assert text == "go"
    for name, (path, says) in bad.items():
        if not path.exists() or path.stat().st_size == 0:
            continue  # a missing or empty upload never leaves the client
        text, info, _ = api.predict(handle_file(str(path)), "greedy", 16, False, api_name="/transcribe")
        assert text == "" and info.startswith(app.WARN) and "Traceback" not in info, (name, info)
        assert name in info and re.search(says, info), (name, info)
        *_, status = api.predict(handle_file(str(path)), 1, api_name="/keep_take")
        assert status.startswith(app.WARN) and "Traceback" not in status, (name, status)
    text, _, _ = api.predict(handle_file(str(good)), "greedy", 16, False, api_name="/transcribe")
    assert text == "go"  # the server is as good as before
