"""The Gradio app, measured from outside: cold start to first answer, latency of a 5-second clip and
the server's peak memory.

    .venv/bin/python bench/app_latency.py [--model DIR] [--runs 10]

Starts `python app.py --model DIR` on a free port, waits for the page, sends one 5.00 s eSpeak clip
through gradio_client (cold start = process start to that first answer), then `--runs` more with
and without the picture. Prints one JSON object as its last line.
"""
import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
CLIP_S = 5.0
SAMPLE_RATE = 16000
SENTENCE = "the quick brown fox jumps over the lazy dog and then it runs back home again"


def five_second_clip(folder: Path) -> Path:
    from srcore import synth
    from srcore.audio import to_model_rate, write_audio
    samples, rate = synth.get_engine("espeak").synthesize(SENTENCE, synth.VoiceSettings("espeak", "en-us"))
    wave = to_model_rate(samples, rate, SAMPLE_RATE).numpy()
    length = int(CLIP_S * SAMPLE_RATE)
    wave = np.concatenate([wave, np.zeros(max(0, length - len(wave)), np.float32)])[:length]
    path = folder / "five_seconds.wav"
    write_audio(path, wave, SAMPLE_RATE)
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_page(url: str, server: subprocess.Popen) -> None:
    while True:
        if server.poll() is not None:
            raise SystemExit(f"app.py exited with {server.returncode}")
        try:
            urllib.request.urlopen(url, timeout=1)
            return
        except OSError:
            time.sleep(0.05)


def latencies_ms(client, clip: Path, runs: int, picture: bool) -> dict:
    from gradio_client import handle_file
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        client.predict(handle_file(str(clip)), show_picture=picture, api_name="/transcribe")
        times.append(time.perf_counter() - started)
    return {"median_ms": round(statistics.median(times) * 1000), "max_ms": round(max(times) * 1000)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=str(REPO / "checkpoints" / "default"))
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    from gradio_client import Client, handle_file
    clip = five_second_clip(Path(tempfile.mkdtemp()))
    port = free_port()
    env = {**os.environ, "PORT": str(port), "GRADIO_ANALYTICS_ENABLED": "False"}
    started = time.perf_counter()
    server = subprocess.Popen([sys.executable, "app.py", "--model", args.model], cwd=REPO, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_for_page(url, server)
        page_s = time.perf_counter() - started
        client = Client(url, verbose=False)
        text, _, _ = client.predict(handle_file(str(clip)), api_name="/transcribe")
        first_s = time.perf_counter() - started
        with_picture = latencies_ms(client, clip, args.runs, picture=True)
        without_picture = latencies_ms(client, clip, args.runs, picture=False)
    finally:
        server.terminate()
        server.wait(timeout=30)
    peak_mib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(f"transcript of the 5 s clip: {text!r}", file=sys.stderr)
    print(json.dumps({"model": args.model, "page_served_s": round(page_s, 2),
                      "cold_start_to_first_answer_s": round(first_s, 2),
                      "clip_5s_with_picture": with_picture, "clip_5s_without_picture": without_picture,
                      "server_peak_rss_mib": round(peak_mib), "load_avg": os.getloadavg()[0]}))


if __name__ == "__main__":
    main()
