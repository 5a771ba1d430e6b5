"""Writes that a kill or a full disk cannot leave half done: a file or a folder is written beside
its target and renamed over it, so a reader sees the old version or the new one, never a mix.
`read_json_object` reads such a settings file back, with one error naming it when it is broken."""
import contextlib
import json
import os
import shutil
from pathlib import Path


def write_text_atomic(path, text: str) -> Path:
    """Replace `path` with `text` (UTF-8) in one rename; on failure the old file stays and no
    temporary file is left beside it."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_json_object(path, what: str) -> dict:
    """The JSON object in `path`; ValueError naming the file when it is not JSON, or not an object
    (of `what`: "training settings", say). OSError as open() raises it."""
    try:
        value = json.loads(Path(path).read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path}: expected a JSON object of {what}")
    return value


def staging_dir(directory: Path) -> Path:
    """Where the next version of `directory` is built before `swap_in` puts it in place."""
    return directory.with_name(directory.name + ".new")


def previous_dir(directory: Path) -> Path:
    """Where `swap_in` keeps the version it replaces until the new one is in place."""
    return directory.with_name(directory.name + ".old")


def swap_copies(directory: Path) -> tuple[Path, Path, Path]:
    """`directory` and the copies a swap interrupted by a kill can leave beside it, the one to
    read first first."""
    return directory, previous_dir(directory), staging_dir(directory)


def swap_in(staging: Path, directory: Path) -> None:
    """Put the complete folder `staging` in the place of `directory` by renames: a kill at any
    moment leaves `directory`, or its `.old` copy beside it, whole."""
    old = previous_dir(directory)
    shutil.rmtree(old, ignore_errors=True)
    if directory.exists():
        os.replace(directory, old)
    os.replace(staging, directory)
    shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def files_replaced_together(folder: Path, names):
    """Yield {name: temporary path} for files to write in `folder`; when the block ends without
    error each is renamed over folder/name, one right after another, so a kill mid-write never
    leaves one new file beside the old others (say, a new LM beside the old lexicon)."""
    partial = {name: folder / f".{name}.{os.getpid()}.partial" for name in names}
    try:
        yield partial
    except BaseException:
        for path in partial.values():
            path.unlink(missing_ok=True)
        raise
    for name, path in partial.items():
        os.replace(path, folder / name)


def output_file(path) -> Path:
    """`path` made ready to be written (its folders created), checked before any work is done;
    ValueError naming it when it is a folder or lies under a file."""
    path = Path(path)
    if path.is_dir():
        raise ValueError(f"{path}: is a folder; give a file name")
    return output_folder(path.parent) / path.name


def output_folder(path) -> Path:
    """The folder `path`, created if need be; ValueError naming it when it (or a parent) is a file."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{path}: is a file, or lies under one; give a folder") from None
    return path
