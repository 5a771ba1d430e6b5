"""Hugging Face Hub: publish and fetch model directories.

    python -m srcore.hub push RUN_OR_MODEL_DIR --repo-id USER/NAME [--private] [--message MSG]
    python -m srcore.hub save RUN_OR_MODEL_DIR --out DIR
    python -m srcore.hub pull USER/NAME [--revision REV]      (prints the local model directory)

A bundle is model.safetensors, config.json and README.md, plus tokens.txt, decoding.json and the
word LM (lm/) where the model directory has them. README.md is the model card (srcore.modelcard)
with the training config, the training command, the data and the measured WER/CER in its
`model-index` metadata. A model directory that already has a README.md keeps it (a hand-written
card); otherwise one is generated. Training state (resume.pt) is never published. A run folder
stands for its checkpoints/best. Weights are checked to load strictly before they are saved or pushed.

The token: push_to_hub(token=...), else huggingface_hub's own lookup (HF_TOKEN, then a stored
login). The CLI has no --token flag (command lines end up in shell history and process lists): it
reads HF_TOKEN. The token is handed to HfApi in memory only; it is never written to the bundle, a
log or the run folder (a bundle that contains it is refused), and error messages mask it.
"""
import argparse
import os
import re
import shutil
import socket
import stat
import tempfile
from pathlib import Path

from huggingface_hub import HfApi, snapshot_download

from . import __version__
from .atomic import staging_dir, swap_in
from .checkpoint import CONFIG_FILE, WEIGHTS_FILE, load_model, resolve_model_dir
from .config import HUB_TOKEN_ENV
from .decoding import ARPA_FILE, DECODING_FILE, INFO_FILE, LEXICON_FILE, LM_DIR
from .errors import exception_chain
from .modelcard import CARD_FILE, LIBRARY_NAME, card_spec, render_card
from .run import RunFolder
from .text import TOKENS_FILE

BUNDLE_FILES = (CONFIG_FILE, WEIGHTS_FILE)
# Published when the model directory has them: the tokenizer, the decoder's settings and word LM.
OPTIONAL_FILES = (TOKENS_FILE, DECODING_FILE, *(f"{LM_DIR}/{name}" for name in (ARPA_FILE, LEXICON_FILE, INFO_FILE)))
MAX_DOWNLOAD_MB = 1024  # a Hub model bigger than this (weights and word LM) is not downloaded
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
MASK = "***"
LIBRARY = {"library_name": LIBRARY_NAME, "library_version": __version__}
# The network failing: no route or name, refused, timed out (also huggingface_hub's offline mode,
# a ConnectionError); TRANSPORT_ERROR is the base class of the same errors in httpx and httpx2.
NETWORK_ERRORS = (socket.gaierror, ConnectionError, TimeoutError)
TRANSPORT_ERROR = "TransportError"


class HubError(Exception):
    """Publishing failed; the message never contains the token."""


def model_source(model_dir_or_run) -> Path:
    """The model directory itself, or RUN/checkpoints/best for a run folder."""
    path = Path(model_dir_or_run).expanduser()
    if (path / "checkpoints").is_dir() and not (path / WEIGHTS_FILE).is_file():
        return resolve_model_dir(RunFolder(path).best_dir)
    return resolve_model_dir(path)


def is_repo_id(text: str) -> bool:
    return bool(REPO_ID.match(text))


# ---------------------------------------------------------------- local bundles

def save_pretrained(model_dir_or_run, out_dir, repo_id: str = "", card_options: dict | None = None) -> Path:
    """Write the publishable bundle (bundle_files and README.md) of a model to out_dir, a new or
    empty folder or an earlier bundle, which it replaces whole (no file of another model stays).

    card_options (srcore.modelcard.card_spec's keywords: name, command, scores, license, ...)
    force a freshly generated card even where the model directory has its own README.md."""
    source = model_source(model_dir_or_run)
    load_model(source)  # strict: never publish weights that do not load
    out_dir = Path(out_dir)
    if out_dir.resolve() == source.resolve():
        raise HubError(f"{out_dir}: choose a folder other than the model directory")
    if out_dir.is_dir() and any(out_dir.iterdir()) and not is_bundle(out_dir):
        raise HubError(f"{out_dir}: holds files that are not a bundle's; choose a new or empty "
                       "folder (a folder holding only an earlier bundle is replaced)")
    staging = staging_dir(out_dir)
    shutil.rmtree(staging, ignore_errors=True)
    for name in bundle_files(source):
        (staging / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source / name, staging / name)
    (staging / CARD_FILE).write_text(card_text(source, repo_id, card_options), encoding="utf-8")
    swap_in(staging, out_dir)
    return out_dir


def bundle_files(model_dir) -> list[str]:
    """What a bundle copies from a model directory (README.md, the card, comes on top)."""
    return [*BUNDLE_FILES, *(f for f in OPTIONAL_FILES if (Path(model_dir) / f).is_file())]


def is_bundle(folder: Path) -> bool:
    """Whether `folder` holds an earlier bundle and nothing else (so replacing it loses nothing)."""
    known = {*BUNDLE_FILES, *OPTIONAL_FILES, CARD_FILE, LM_DIR}
    present = {p.relative_to(folder).as_posix() for p in folder.rglob("*")}
    return all((folder / name).is_file() for name in BUNDLE_FILES) and present <= known


def card_text(model_dir, repo_id: str = "", card_options: dict | None = None) -> str:
    """The README.md a bundle gets: the model directory's own, else (or with card_options) a
    generated one."""
    own_card = Path(model_dir) / CARD_FILE
    if own_card.is_file() and card_options is None:
        return own_card.read_text(encoding="utf-8")
    return render_card(card_spec(model_dir, repo_id=repo_id, **(card_options or {})))


def from_pretrained(repo_id_or_path, revision: str | None = None, token: str | None = None) -> Path:
    """A local model directory: a local path as is (a run folder: its checkpoints/best), a Hub
    repo id downloaded with snapshot_download (cached; only the bundle files)."""
    text = str(repo_id_or_path)
    path = Path(text).expanduser()
    if path.exists():
        return model_source(path)
    if not is_repo_id(text):
        raise FileNotFoundError(f"{text}: no such model directory, and not a Hub repo id (USER/NAME)")
    return download(text, revision, token)


def download(repo_id: str, revision: str | None = None, token: str | bool | None = None,
             max_mb: float = MAX_DOWNLOAD_MB, srcore_only: bool = False, cache_dir=None) -> Path:
    """A Hub model (repo id only, never a local path) downloaded once into the Hub cache; one
    whose files add up to more than `max_mb` is refused before anything is fetched. `token`:
    huggingface_hub's (None: the machine's login; False: none, as the app downloads for a
    visitor, who must not reach the server owner's private models). `srcore_only`: refuse, before
    fetching, a repo whose card does not name srcore as its library (the app: a visitor's any
    public repo would otherwise fill the Hub cache). `cache_dir`: a Hub cache folder of the
    caller's own instead of the machine's (the app's, which `trim_cache` keeps in bounds)."""
    if not is_repo_id(repo_id):
        raise ValueError(f"{repo_id!r} is not a Hub model id (USER/NAME)")
    wanted = [*BUNDLE_FILES, *OPTIONAL_FILES, CARD_FILE]
    try:
        info = HfApi(**LIBRARY).model_info(repo_id, revision=revision, token=token, files_metadata=True)
    except Exception as exc:  # offline (HF_HUB_OFFLINE, no network): a copy already downloaded
        if not is_network_error(exc):
            raise
        return cached_download(repo_id, revision, token, wanted, cache_dir)
    library = getattr(info, "library_name", None)
    if srcore_only and library != LIBRARY_NAME:
        raise ValueError(f"{repo_id}: not an srcore model (its card names the library "
                         f"{library or 'none'}); not downloaded")
    files = [f for f in info.siblings or [] if f.rfilename in wanted]
    if any(f.size is None for f in files):
        raise ValueError(f"{repo_id}: the Hub does not say how big its files are; not downloaded")
    size_mb = sum(f.size for f in files) / 2 ** 20
    if size_mb > max_mb:
        raise ValueError(f"{repo_id}: its model files are {size_mb:.0f} MB, more than the "
                         f"{max_mb:g} MB this downloads")
    local = snapshot_download(repo_id, revision=info.sha or revision, token=token,  # what was sized
                              allow_patterns=wanted, cache_dir=cache_dir, **LIBRARY)
    return resolve_model_dir(local)


def cached_download(repo_id: str, revision, token, wanted, cache_dir=None) -> Path:
    """The copy of a Hub model that an earlier download left in the cache, for when the Hub
    cannot be reached; HubError saying so when there is none."""
    from huggingface_hub.errors import LocalEntryNotFoundError
    try:
        local = snapshot_download(repo_id, revision=revision, token=token, allow_patterns=wanted,
                                  local_files_only=True, cache_dir=cache_dir, **LIBRARY)
    except LocalEntryNotFoundError:
        raise HubError(f"{repo_id}: the Hub cannot be reached (no network?) and no earlier download "
                       "of it is in the Hub cache") from None
    return resolve_model_dir(local)


def trim_cache(cache_dir, max_mb: float, keep) -> list[Path]:
    """Make a Hub cache folder that only its owner writes (the app's) hold at most `max_mb`: its
    repos go, least recently used (`mark_used`) first, except the one holding `keep` (a model
    directory just downloaded), which is marked as used now whatever its size, and any repo with
    a download in progress. Files that vanish meanwhile (another download, another trim) are
    passed over. Returns the repo folders removed."""
    cache_dir = Path(cache_dir).resolve()
    kept = mark_used(cache_dir, keep)
    repos = [r for r in cache_dir.glob("models--*") if r.is_dir() and not r.is_symlink()]
    sizes = {repo: folder_bytes(repo) for repo in repos}
    total = sum(sizes.values())
    removed = []
    for repo in sorted((r for r in repos if r != kept), key=last_used):
        if total <= max_mb * 2 ** 20:
            break
        if any(repo.glob("blobs/*.incomplete")):  # huggingface_hub is writing into it
            continue
        total -= sizes[repo]
        shutil.rmtree(repo, ignore_errors=True)
        removed.append(repo)
    return removed


def mark_used(cache_dir, path) -> Path | None:
    """The repo folder of a Hub cache that holds `path`, marked as used now; None if none does."""
    cache_dir, path = Path(cache_dir).resolve(), Path(path).resolve()
    if not path.is_relative_to(cache_dir) or path == cache_dir:
        return None
    repo = cache_dir / path.relative_to(cache_dir).parts[0]
    try:
        os.utime(repo)
    except FileNotFoundError:
        return None
    return repo


def last_used(repo: Path) -> float:
    try:
        return repo.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def folder_bytes(folder: Path) -> int:
    """Bytes of the files in `folder` (a Hub snapshot's links to its blobs are not counted twice)."""
    total = 0
    for root, _, names in os.walk(folder):
        for name in names:
            try:
                info = os.lstat(os.path.join(root, name))
            except FileNotFoundError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def load_pretrained(repo_id_or_path, revision: str | None = None, device: str = "cpu"):
    """(model, ModelConfig) from a local path or a Hub repo id; strict loading."""
    return load_model(from_pretrained(repo_id_or_path, revision), device)


# ---------------------------------------------------------------- the Hub

def known_secrets(token: str | None) -> list[str]:
    return [s for s in [token, *(os.environ.get(name) for name in HUB_TOKEN_ENV)] if s]


def mask_secrets(text: str, token: str | None) -> str:
    for secret in known_secrets(token):
        text = text.replace(secret, MASK)
    return text


def refuse_secrets_in(folder: Path, token: str | None) -> None:
    """Raise if any file of the bundle contains the token (it never should)."""
    secrets = [s.encode() for s in known_secrets(token)]
    for path in folder.rglob("*"):
        if not path.is_file():
            continue
        content = path.read_bytes()  # once per file: the weights are megabytes
        if any(secret in content for secret in secrets):
            raise HubError(f"{path.name} contains the Hub token; not uploaded")


def push_to_hub(model_dir_or_run, repo_id: str, private: bool = False, token: str | None = None,
                commit_message: str = "", card_options: dict | None = None) -> str:
    """Create repo_id (if needed; private applies on creation) and upload the model's bundle;
    returns the repo's URL."""
    if not is_repo_id(repo_id):
        raise HubError(f"{repo_id!r}: a repo id is USER/NAME (letters, digits, '.', '_', '-')")
    source = model_source(model_dir_or_run)
    with tempfile.TemporaryDirectory(prefix="srcore-hub-") as staging:
        bundle = save_pretrained(source, staging, repo_id, card_options)
        refuse_secrets_in(bundle, token)
        api = HfApi(token=token, **LIBRARY)
        try:
            url = api.create_repo(repo_id, private=private, exist_ok=True)
            api.upload_folder(repo_id=repo_id, folder_path=bundle,
                              commit_message=commit_message or f"srcore {__version__}: upload {source.name}")
        except Exception as exc:  # any failure: re-raised without the token in its text
            raise HubError(mask_secrets(push_failure(exc, repo_id, source), token)) from None
    return str(url)


def is_network_error(exc: BaseException) -> bool:
    """Whether exc, or an exception behind it, is the network failing (not the Hub refusing)."""
    return any(isinstance(cause, NETWORK_ERRORS)
               or any(c.__name__ == TRANSPORT_ERROR for c in type(cause).__mro__)
               for cause in exception_chain(exc))


def push_failure(exc: Exception, repo_id: str, source: Path) -> str:
    """What failed; a network failure in one line that says the Hub was out of reach and that
    nothing was lost."""
    detail = f"{type(exc).__name__}: {exc}"
    if not is_network_error(exc):
        return detail
    return (f"push to {repo_id} failed: could not reach the Hugging Face Hub ({' '.join(detail.split())}); "
            f"check the network connection and try again. Nothing was lost: the model in {source} "
            "is unchanged.")


# ---------------------------------------------------------------- command line

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m srcore.hub", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    push = commands.add_parser("push", help="upload a model (token: HF_TOKEN or a stored login)")
    push.add_argument("source", help="run folder (its checkpoints/best) or model directory")
    push.add_argument("--repo-id", required=True, help="USER/NAME")
    push.add_argument("--private", action="store_true", help="create the repo private")
    push.add_argument("--message", default="", help="commit message")
    save = commands.add_parser("save", help="write the bundle to a local folder")
    save.add_argument("source", help="run folder (its checkpoints/best) or model directory")
    save.add_argument("--out", required=True)
    pull = commands.add_parser("pull", help="download a model; prints its local directory")
    pull.add_argument("repo_id", help="USER/NAME (or a local path)")
    pull.add_argument("--revision", default=None)
    return parser


def main(argv=None) -> None:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "push":
            print(push_to_hub(args.source, args.repo_id, args.private, commit_message=args.message))
        elif args.command == "save":
            print(save_pretrained(args.source, args.out))
        else:
            print(from_pretrained(args.repo_id, args.revision))
    except (HubError, OSError, ValueError) as exc:  # OSError: also the Hub's HTTP errors
        raise SystemExit(f"error: {mask_secrets(str(exc), None)}") from None


if __name__ == "__main__":
    main()
