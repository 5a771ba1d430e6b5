"""srcore.hub and srcore.modelcard: local bundles, strict loading, pushing (HfApi replaced by a
recorder: no network), model cards with model-index, and the token never reaching a file."""
import json
import shlex
import shutil
import subprocess
import sys
import types
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from conftest import free_port
from huggingface_hub import HfApi, ModelCard, RepoUrl
from safetensors.torch import load_file, save_file

from srcore import hub, modelcard
from srcore.checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_model, read_config
from srcore.train import parse_args

TOKEN = "hf_testTOKEN0123456789abcdefSECRET"
REPO = "someone/tiny-words"
BUNDLE = {"README.md", CONFIG_FILE, WEIGHTS_FILE, "tokens.txt"}


class RecordingHfApi:
    """Stands in for huggingface_hub.HfApi: records calls, keeps a copy of what was uploaded."""
    instances: list = []

    def __init__(self, uploads: Path, fail_with: Exception | None = None, **kwargs):
        self.kwargs, self.uploads, self.fail_with, self.calls = kwargs, uploads, fail_with, []
        RecordingHfApi.instances.append(self)

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))
        if self.fail_with:
            raise self.fail_with
        return RepoUrl(f"https://huggingface.co/{repo_id}")

    def upload_folder(self, *, repo_id, folder_path, **kwargs):
        self.calls.append(("upload_folder", repo_id, kwargs))
        shutil.copytree(folder_path, self.uploads / repo_id.replace("/", "--"), dirs_exist_ok=True)


@pytest.fixture
def fake_hub(monkeypatch, tmp_path):
    """Replace HfApi in srcore.hub; yields the folder uploads land in."""
    uploads = tmp_path / "uploads"
    RecordingHfApi.instances = []
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: RecordingHfApi(uploads, **kwargs))
    return uploads


def files_containing(root: Path, secret: str) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file() and secret.encode() in p.read_bytes()]


def assert_same_weights(a: Path, b: Path) -> None:
    left, right = load_file(str(a / WEIGHTS_FILE)), load_file(str(b / WEIGHTS_FILE))
    assert left.keys() == right.keys()
    assert all(torch.equal(left[k], right[k]) for k in left)


# ---------------------------------------------------------------- local round trip

def test_save_and_load_round_trip_through_a_local_folder(trained_run, tmp_path):
    out = hub.save_pretrained(trained_run, tmp_path / "bundle")
    assert {p.name for p in out.iterdir()} == BUNDLE  # no resume.pt, nothing else
    assert hub.from_pretrained(out) == out  # a local path comes back as is
    assert hub.from_pretrained(trained_run) == trained_run / "checkpoints" / "best"
    assert_same_weights(out, trained_run / "checkpoints" / "best")
    model, config = hub.load_pretrained(out)
    reference, _ = load_model(trained_run / "checkpoints" / "best")
    feats = torch.randn(1, config.n_mels, 50)
    with torch.no_grad():
        assert torch.allclose(model(feats, torch.tensor([50]))[0], reference(feats, torch.tensor([50]))[0])


def test_loading_is_strict(trained_run, tmp_path):
    out = hub.save_pretrained(trained_run, tmp_path / "bundle")
    weights = load_file(str(out / WEIGHTS_FILE))
    save_file({**weights, "extra.weight": torch.zeros(2)}, str(out / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="Unexpected key"):
        hub.load_pretrained(out)
    weights.pop(next(iter(weights)))
    save_file(weights, str(out / WEIGHTS_FILE))
    with pytest.raises(ValueError, match="Missing key"):
        hub.save_pretrained(out, tmp_path / "again")  # never bundles weights that do not load


def test_a_model_directory_keeps_its_own_card(trained_run, tmp_path):
    model_dir = tmp_path / "shipped"
    shutil.copytree(trained_run / "checkpoints" / "best", model_dir)
    (model_dir / "README.md").write_text("---\nlicense: mit\n---\n# hand written\n")
    out = hub.save_pretrained(model_dir, tmp_path / "bundle")
    assert "# hand written" in (out / "README.md").read_text()
    regenerated = hub.save_pretrained(model_dir, tmp_path / "fresh", card_options={"name": "renamed"})
    assert "# renamed" in (regenerated / "README.md").read_text()


class SizedHfApi:
    """model_info of a repo whose files have the given sizes (bytes)."""
    def __init__(self, sizes: dict, library: str | None = "srcore", **kwargs):
        self.sizes, self.library = sizes, library

    def model_info(self, repo_id, **kwargs):
        assert kwargs["files_metadata"]
        if isinstance(self.sizes, Exception):
            raise self.sizes
        return types.SimpleNamespace(sha="c0ffee", library_name=self.library, siblings=[
            types.SimpleNamespace(rfilename=name, size=size) for name, size in self.sizes.items()])


def test_from_pretrained_downloads_a_repo_id_only(monkeypatch, trained_run, tmp_path):
    calls = []

    def fake_snapshot_download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(hub.save_pretrained(trained_run, tmp_path / "cache"))

    monkeypatch.setattr(hub, "snapshot_download", fake_snapshot_download)
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi({"model.safetensors": 2**20}))
    assert hub.from_pretrained(REPO, revision="v1") == tmp_path / "cache"
    (repo_id, kwargs), = calls
    assert repo_id == REPO and kwargs["revision"] == "c0ffee"  # the commit v1 named when sized
    assert set(kwargs["allow_patterns"]) == BUNDLE | set(hub.OPTIONAL_FILES)
    with pytest.raises(FileNotFoundError):
        hub.from_pretrained(str(tmp_path / "no" / "such" / "dir"))
    assert len(calls) == 1


def test_trimming_the_apps_hub_cache_removes_the_least_recently_used_repos_but_never_the_new_one(tmp_path):
    import os
    def repo(name, mb, age_s):
        folder = tmp_path / f"models--user--{name}"
        blob = folder / "blobs" / "abc"
        blob.parent.mkdir(parents=True)
        blob.write_bytes(b"x" * int(mb * 2 ** 20))
        snapshot = folder / "snapshots" / "sha1"
        snapshot.mkdir(parents=True)
        (snapshot / "model.safetensors").symlink_to(blob)  # a snapshot links its blobs: counted once
        os.utime(folder, (1e9 - age_s, 1e9 - age_s))
        return folder
    oldest, old, newest = repo("oldest", 2, 300), repo("old", 2, 200), repo("newest", 2, 100)
    huge = repo("huge", 5, 1000)  # the model just downloaded: kept whatever its size and age
    (tmp_path / "not-a-repo.txt").write_text("x")
    removed = hub.trim_cache(tmp_path, 9, keep=huge / "snapshots" / "sha1")
    assert removed == [oldest.resolve()]  # 11 MB: the least recently used goes, and that is enough
    assert not oldest.exists() and old.exists() and newest.exists() and huge.exists()
    assert hub.trim_cache(tmp_path, 7, keep=huge) == [old.resolve()]
    assert hub.trim_cache(tmp_path, 100, keep=newest) == []  # under the cap: nothing goes
    assert hub.trim_cache(tmp_path, 1, keep=newest) == [huge.resolve()]  # kept only while it is the new one
    assert newest.exists() and (tmp_path / "not-a-repo.txt").exists()
    busy = repo("busy", 3, 5000)
    (busy / "blobs" / "def.incomplete").write_bytes(b"x")  # huggingface_hub is still writing it
    assert hub.trim_cache(tmp_path, 1, keep=newest) == [] and busy.exists()
    assert hub.mark_used(tmp_path, tmp_path.parent) is None  # a path outside the cache marks nothing


def test_a_hub_model_too_big_to_download_is_refused_before_fetching(monkeypatch):
    """A visitor of the public app names any repo: one whose files (a huge word LM, say) would
    fill the server's disk is refused from its listing, and nothing is downloaded."""
    monkeypatch.setattr(hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded"))
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi(
        {"model.safetensors": 2**20, "lm/lm.arpa": 3 * 2**30, "other/big.bin": 50 * 2**30}))
    with pytest.raises(ValueError, match=r"3073 MB, more than the 1024 MB"):
        hub.download(REPO)
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi({"model.safetensors": None}))
    with pytest.raises(ValueError, match="does not say how big"):
        hub.download(REPO)


def test_a_hub_model_downloads_the_revision_it_sized_and_offline_reads_the_cache(monkeypatch, tmp_path):
    calls = []
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, **kwargs: calls.append(kwargs) or
                        str(tmp_path))
    monkeypatch.setattr(hub, "resolve_model_dir", lambda path: Path(path))
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi({"model.safetensors": 2**20}))
    hub.download(REPO, revision="main")
    assert calls[-1]["revision"] == "c0ffee" and not calls[-1].get("local_files_only")
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi(ConnectionError("offline")))
    hub.download(REPO, revision="main")
    assert calls[-1]["revision"] == "main" and calls[-1]["local_files_only"]
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi(PermissionError("gated")))
    with pytest.raises(PermissionError):  # the Hub refusing is not the network failing
        hub.download(REPO)


def test_the_app_downloads_only_srcore_models(monkeypatch):
    monkeypatch.setattr(hub, "snapshot_download", lambda *a, **k: pytest.fail("downloaded"))
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi({"model.safetensors": 2**20}, "transformers"))
    with pytest.raises(ValueError, match="not an srcore model .*transformers"):
        hub.download(REPO, srcore_only=True)


def test_offline_without_a_cached_copy_says_so(monkeypatch):
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: SizedHfApi(ConnectionError("offline")))
    with pytest.raises(hub.HubError, match="cannot be reached .* no earlier download"):
        hub.download(REPO)


# ---------------------------------------------------------------- model card

def test_card_carries_measured_scores_config_and_reproducing_command(trained_run, tmp_path):
    best = trained_run / "checkpoints" / "best"
    meta = read_config(best)
    out = hub.save_pretrained(trained_run, tmp_path / "bundle", repo_id=REPO)
    text = (out / "README.md").read_text()
    card = ModelCard(text)
    assert card.data.pipeline_tag == "automatic-speech-recognition"
    scores = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert scores == {"wer": round(100 * meta["metrics"]["wer"], 2),
                      "cer": round(100 * meta["metrics"]["cer"], 2)}
    assert card.data.eval_results[0].dataset_split == "validation"
    public = modelcard.public_training(meta["training"])  # paths cut to their last two parts
    assert json.dumps(public, indent=2) in text
    assert str(tmp_path.parent.parent) not in text  # no machine paths in a published card
    assert f'from_pretrained("{REPO}")' in text
    command = text.split("```bash\n")[1].split("\n```")[0]
    reproduced = parse_args(shlex.split(command)[3:])  # python -m srcore.train ARGS
    assert json.loads(json.dumps(asdict(reproduced))) == {**public, "resume": False}  # as config.json holds it
    label = modelcard.manifest_label(meta["training"]["train"])
    assert f"- training: `{label}`, 4 utterances" in text


def test_card_cli_adds_evaluation_results(trained_run, tmp_path):
    summary = tmp_path / "eval.json"
    summary.write_text(json.dumps({"wer": 0.125, "cer": 0.05, "n": 40, "manifest": "/data/test.jsonl",
                                   "beam": 0}))
    best = tmp_path / "model"
    shutil.copytree(trained_run / "checkpoints" / "best", best)
    modelcard.main([str(best), "--name", "srcore-words", "--license", "apache-2.0",
                    "--eval", str(summary), "--eval-dataset", "held-out words"])
    card = ModelCard((best / "README.md").read_text())
    assert card.data.license == "apache-2.0"
    test_results = {r.metric_type: r.metric_value for r in card.data.eval_results
                    if r.dataset_split == "test"}
    assert test_results == {"wer": 12.5, "cer": 5.0}
    assert card.data.eval_results[-1].dataset_name == "held-out words"
    assert "| held-out words | test | 40 | 12.50 | 5.00 | python -m srcore.evaluate, greedy decoding |" in card.text
    summary.write_text(json.dumps({"wer": 0.1, "cer": 0.05, "n": 40, "decoding": "beam search 64, lexicon + LM"}))
    modelcard.main([str(best), "--eval", str(summary), "--eval-dataset", "with the LM"])
    assert "| with the LM | test | 40 | 10.00 | 5.00 | python -m srcore.evaluate, beam search 64, lexicon + LM |" \
        in (best / "README.md").read_text()


# ---------------------------------------------------------------- push

def test_push_uploads_the_bundle_and_never_the_token(fake_hub, trained_run):
    url = hub.push_to_hub(trained_run, REPO, private=True, token=TOKEN)
    assert url == f"https://huggingface.co/{REPO}"
    api, = RecordingHfApi.instances
    assert api.kwargs["token"] == TOKEN  # handed over in memory
    (create, repo_id, create_kwargs), (upload, _, _) = api.calls
    assert (create, repo_id, upload) == ("create_repo", REPO, "upload_folder")
    assert create_kwargs["private"] is True and create_kwargs["exist_ok"] is True
    uploaded = fake_hub / REPO.replace("/", "--")
    assert {p.name for p in uploaded.iterdir()} == BUNDLE
    assert_same_weights(uploaded, trained_run / "checkpoints" / "best")
    assert ModelCard((uploaded / "README.md").read_text()).data.eval_results
    assert not files_containing(uploaded, TOKEN)
    assert not files_containing(trained_run, TOKEN)


def test_push_errors_never_show_the_token(monkeypatch, tmp_path, trained_run):
    uploads = tmp_path / "uploads"
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: RecordingHfApi(
        uploads, fail_with=RuntimeError(f"401 for token {TOKEN}"), **kwargs))
    with pytest.raises(hub.HubError) as caught:
        hub.push_to_hub(trained_run, REPO, token=TOKEN)
    assert TOKEN not in str(caught.value) and "401" in str(caught.value)
    with pytest.raises(hub.HubError, match="USER/NAME"):
        hub.push_to_hub(trained_run, "no-namespace", token=TOKEN)


def test_a_push_without_network_says_so_in_one_line(monkeypatch, trained_run):
    unreachable = f"http://127.0.0.1:{free_port()}"  # nothing listens there: the connection fails
    monkeypatch.setattr(hub, "HfApi", lambda **kwargs: HfApi(endpoint=unreachable, **kwargs))
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    with pytest.raises(SystemExit) as exited:
        hub.main(["push", str(trained_run), "--repo-id", REPO])
    message = str(exited.value.code)
    assert "\n" not in message and TOKEN not in message
    assert message.startswith(f"error: push to {REPO} failed: could not reach the Hugging Face Hub (")
    assert message.endswith(f"Nothing was lost: the model in {trained_run / 'checkpoints' / 'best'} "
                            "is unchanged.")


def test_cli_push_reads_the_token_from_the_environment(fake_hub, trained_run, monkeypatch, capsys):
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    hub.main(["push", str(trained_run), "--repo-id", REPO])
    output = capsys.readouterr()
    assert output.out.strip() == f"https://huggingface.co/{REPO}"
    assert TOKEN not in output.out + output.err
    api, = RecordingHfApi.instances
    assert api.kwargs["token"] is None  # huggingface_hub reads HF_TOKEN itself
    assert api.calls[0][2]["private"] is False
    assert not files_containing(fake_hub, TOKEN)
    with pytest.raises(SystemExit):
        hub.main(["push", str(trained_run), "--repo-id", REPO, "--token", TOKEN])  # no such flag


def test_cli_save(trained_run, tmp_path, capsys):
    hub.main(["save", str(trained_run), "--out", str(tmp_path / "bundle")])
    assert capsys.readouterr().out.strip() == str(tmp_path / "bundle")
    assert {p.name for p in (tmp_path / "bundle").iterdir()} == BUNDLE


def model_with_lm(trained_model, folder):
    """A copy of the tiny model with (stand-in) word LM files and decoding settings."""
    shutil.copytree(trained_model, folder)
    (folder / "lm").mkdir()
    for name in ("lm.arpa", "lexicon.txt", "lm.json"):
        (folder / "lm" / name).write_text(name)
    (folder / "decoding.json").write_text("{}")
    return folder


def test_the_bundle_carries_the_word_lm_and_decoding_settings(trained_model, tmp_path):
    out = hub.save_pretrained(model_with_lm(trained_model, tmp_path / "model"), tmp_path / "bundle")
    assert {p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()} == BUNDLE | {
        "decoding.json", "lm/lm.arpa", "lm/lexicon.txt", "lm/lm.json"}


def test_saving_over_an_earlier_bundle_replaces_it_whole_and_other_folders_are_refused(
        trained_model, tmp_path):
    out = hub.save_pretrained(model_with_lm(trained_model, tmp_path / "with-lm"), tmp_path / "bundle")
    assert (out / "lm" / "lm.arpa").is_file()
    hub.save_pretrained(trained_model, out)  # a model without an LM must not decode with the old one
    assert not (out / "lm").exists() and not (out / "decoding.json").exists()
    assert not list(tmp_path.glob("bundle.*"))  # no staging or old copy left beside it
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("mine")
    with pytest.raises(hub.HubError, match="not a bundle's"):
        hub.save_pretrained(trained_model, notes)
    assert [p.name for p in notes.iterdir()] == ["todo.txt"]
    (out / "todo.txt").write_text("mine, added to the bundle's folder")
    with pytest.raises(hub.HubError, match="not a bundle's"):
        hub.save_pretrained(trained_model, out)
    assert (out / "todo.txt").is_file()


def test_card_cli_errors_are_one_line(trained_model, tmp_path):
    done = subprocess.run([sys.executable, "-m", "srcore.modelcard", str(tmp_path / "nowhere")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and done.stderr.startswith("error:") and "nowhere" in done.stderr
    assert "Traceback" not in done.stderr
    summary = tmp_path / "summary.json"
    summary.write_text("{}")
    done = subprocess.run([sys.executable, "-m", "srcore.modelcard", str(trained_model), "--out",
                           str(tmp_path / "card.md"), "--eval", str(summary)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1 and "summary.json: not a summary" in done.stderr
    assert "Traceback" not in done.stderr and not (tmp_path / "card.md").exists()
