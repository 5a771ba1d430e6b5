"""Model cards: the README.md of a model directory, with Hugging Face metadata.

    python -m srcore.modelcard MODEL_DIR [--out PATH] [--name NAME] [--repo-id USER/NAME]
        [--command "python -m srcore.train ..."] [--license ID]
        [--eval SUMMARY.json [--eval-dataset NAME] [--eval-split test]]

The card's metadata block carries `model-index` with the measured WER and CER (in percent): the
validation scores the trainer stored in the model directory's config.json ("metrics", from the
epoch with the best validation WER) and any `python -m srcore.evaluate` summaries given (its last
output line, saved as JSON). The body shows the results, how to load the model, the training data,
the command that reproduces the training, the training config and the model config.
"""
import argparse
import json
import re
import shlex
import sys
from dataclasses import dataclass, field, fields
from pathlib import Path

from huggingface_hub import EvalResult, ModelCardData
from safetensors import safe_open

from . import __version__
from .atomic import write_text_atomic
from .checkpoint import WEIGHTS_FILE, read_config, resolve_model_dir
from .config import TRAIN_MODULE, TrainConfig, as_stored_then, config_to_arguments
from .manifest import SYNTH_SUMMARY_FILE as SUMMARY_FILE
from .manifest import manifest_label

CARD_FILE = "README.md"
TASK_TYPE, TASK_NAME = "automatic-speech-recognition", "Speech Recognition"
LIBRARY_NAME = "srcore"
TAGS = ["srcore", "ctc", "speech-recognition", "audio"]
USAGE_PLACEHOLDER = "USER/NAME"
METADATA_BLOCK = re.compile(r"\A---\r?\n.*?\r?\n---\r?\n", re.DOTALL)  # YAML between --- fences


@dataclass
class Score:
    """Error rates (fractions: 0.1 is 10 %) measured on one split of one data set."""
    dataset: str
    split: str
    wer: float
    cer: float
    utterances: int | None = None
    how: str = ""  # e.g. "best validation epoch 12, greedy decoding"
    dataset_type: str = "custom"


@dataclass
class CardSpec:
    """Everything a card shows; made from a model directory by card_spec()."""
    name: str
    scores: list[Score] = field(default_factory=list)
    training: dict = field(default_factory=dict)  # TrainConfig fields
    model: dict = field(default_factory=dict)  # ModelConfig fields
    command: str = ""
    data: list[str] = field(default_factory=list)  # Markdown bullet lines
    parameters: int | None = None
    repo_id: str = ""
    license: str = ""
    language: str = "en"
    srcore_version: str = __version__


# ---------------------------------------------------------------- scores

def validation_score(meta: dict) -> Score | None:
    """The validation WER/CER the trainer stored in a model directory's config.json."""
    metrics = meta.get("metrics") or {}
    if metrics.get("wer") is None or metrics.get("cer") is None:
        return None
    valid = (meta.get("training") or {}).get("valid", "")
    stats = manifest_stats(valid) if valid else None
    return Score(dataset=manifest_label(valid) if valid else "validation set", split="validation",
                 wer=float(metrics["wer"]), cer=float(metrics["cer"]),
                 utterances=stats[0] if stats else None,
                 how=f"best validation epoch {metrics.get('epoch', '?')} (step "
                     f"{metrics.get('step', '?')}), greedy decoding")


def evaluation_score(summary: dict, dataset: str = "", split: str = "test") -> Score:
    """A Score from the JSON summary `python -m srcore.evaluate` prints as its last line."""
    beam = summary.get("beam") or 0
    decoding = summary.get("decoding") or (f"beam {beam}" if beam else "greedy decoding")
    return Score(dataset=dataset or manifest_label(summary.get("manifest", "evaluation set")),
                 split=split, wer=float(summary["wer"]), cer=float(summary["cer"]),
                 utterances=summary.get("n"), how=f"python -m srcore.evaluate, {decoding}")


def read_evaluation(path, dataset: str = "", split: str = "test") -> Score:
    """evaluation_score of an evaluate summary file; ValueError naming the file when it is not one."""
    try:
        return evaluation_score(json.loads(Path(path).read_text(encoding="utf-8")), dataset, split)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError, KeyError, TypeError, ValueError):
        raise ValueError(f"{path}: not a summary of python -m srcore.evaluate (a JSON object with "
                         "wer and cer)") from None


def percent(fraction: float) -> float:
    return round(100 * fraction, 2)


# ---------------------------------------------------------------- training data and command

def training_command(training: dict) -> str:
    """The `python -m srcore.train ...` command line that reproduces a training config."""
    known = {f.name for f in fields(TrainConfig)}
    stored = as_stored_then(TrainConfig, {k: v for k, v in training.items() if k in known})
    arguments = config_to_arguments(stored, skip={"resume"})
    return shlex.join(["python", "-m", TRAIN_MODULE, *arguments])


PATH_FIELDS = ("train", "valid", "out", "init_from")


def public_training(training: dict) -> dict:
    """The training config with its paths shortened to their last two parts: a published card
    must not show the trainer's home folder or machine layout."""
    return {k: manifest_label(v) if k in PATH_FIELDS and v else v for k, v in training.items()}


def manifest_stats(path) -> tuple[int, float] | None:
    """(rows, seconds) of a manifest from its own "duration" fields (no audio is opened: cards of
    big corpora stay quick); None where it is not readable."""
    rows, seconds = 0, 0.0
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    row = json.loads(line)
                except json.JSONDecodeError:
                    continue
                rows += 1
                seconds += float(row.get("duration") or 0.0) if isinstance(row, dict) else 0.0
    except OSError:
        return None
    return rows, seconds


def format_duration(seconds: float) -> str:
    if seconds >= 360:
        return f"{seconds / 3600:.2f} h"
    return f"{seconds / 60:.1f} min" if seconds >= 60 else f"{seconds:.0f} s"


def describe_manifest(path, role: str) -> str:
    stats = manifest_stats(path)
    if stats is None:
        return f"{role}: `{manifest_label(path)}` (not readable where this card was made)"
    duration = f", {format_duration(stats[1])}" if stats[1] else ""
    return f"{role}: `{manifest_label(path)}`, {stats[0]} utterances{duration}"


def describe_synth(manifest) -> str | None:
    """One line on the synthetic corpus a manifest belongs to, when it is one."""
    summary_path = Path(manifest).parent / SUMMARY_FILE
    try:
        summary = json.loads(summary_path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    engines = ", ".join(f"{name} {count}" for name, count in summary.get("engines", {}).items())
    return (f"synthetic speech made offline by `python -m srcore.data synth` (seed "
            f"{summary.get('seed')}: {summary.get('clips')} clips, {summary.get('hours', 0):.2f} h; "
            f"voices: {engines}; see srcore/synth.py)")


def describe_data(training: dict) -> list[str]:
    """Markdown bullet lines on the train and validation manifests of a training config."""
    lines = [describe_manifest(training[role], name) for role, name in
             (("train", "training"), ("valid", "validation")) if training.get(role)]
    synth = {describe_synth(training[role]) for role in ("train", "valid") if training.get(role)}
    return lines + sorted(line for line in synth if line)


def count_parameters(model_dir) -> int:
    """Number of weights in a model directory's safetensors file (read from its header)."""
    with safe_open(str(resolve_model_dir(model_dir) / WEIGHTS_FILE), "pt") as weights:
        total = 0
        for key in weights.keys():
            count = 1
            for size in weights.get_slice(key).get_shape():
                count *= size
            total += count
    return total


# ---------------------------------------------------------------- the card

def default_name(model_dir: Path, repo_id: str = "") -> str:
    """The repo's name, else the run's name for RUN/checkpoints/best, else the folder's name."""
    if repo_id:
        return repo_id.split("/")[-1]
    model_dir = Path(model_dir).resolve()
    if model_dir.parent.name == "checkpoints":
        return model_dir.parent.parent.name
    return model_dir.name


def card_spec(model_dir, *, name: str = "", repo_id: str = "", command: str = "",
              scores: list[Score] | None = None, data: list[str] | None = None,
              license: str = "") -> CardSpec:
    """A card for a model directory: its validation score first, then `scores`; the command
    defaults to the one that reproduces its training config."""
    meta = read_config(model_dir)
    training = meta.get("training") or {}
    measured = [s for s in [validation_score(meta), *(scores or [])] if s is not None]
    public = public_training(training)
    return CardSpec(name=name or default_name(model_dir, repo_id), scores=measured,
                    training=public, model=meta.get("model", {}),
                    command=command or (training_command(public) if public else ""),
                    data=describe_data(training) if data is None else data,
                    parameters=count_parameters(model_dir), repo_id=repo_id, license=license,
                    srcore_version=meta.get("srcore_version", __version__))


def dataset_id(score: "Score") -> str:
    """The metadata's dataset type: huggingface_hub groups results by it, so custom data sets get
    one each, made from their names."""
    if score.dataset_type != "custom":
        return score.dataset_type
    return re.sub(r"[^a-z0-9]+", "-", score.dataset.lower()).strip("-") or "custom"


def card_metadata(spec: CardSpec) -> str:
    """The YAML metadata block (without the --- fences)."""
    results = []
    for score in spec.scores:
        for metric, value in (("wer", score.wer), ("cer", score.cer)):
            results.append(EvalResult(task_type=TASK_TYPE, task_name=TASK_NAME,
                                      dataset_type=dataset_id(score), dataset_name=score.dataset,
                                      dataset_split=score.split, metric_type=metric,
                                      metric_value=percent(value),
                                      metric_name=f"{score.split} {metric.upper()} (%)"))
    data = ModelCardData(model_name=spec.name, language=spec.language, license=spec.license or None,
                         library_name=LIBRARY_NAME, pipeline_tag=TASK_TYPE, tags=list(TAGS),
                         metrics=["wer", "cer"], eval_results=results or None)
    return data.to_yaml()


def results_section(spec: CardSpec) -> str:
    if not spec.scores:
        return "## Results\n\nNo measured results are recorded for this model.\n"
    rows = [f"| {s.dataset} | {s.split} | {s.utterances if s.utterances is not None else ''} | "
            f"{percent(s.wer):.2f} | {percent(s.cer):.2f} | {s.how} |" for s in spec.scores]
    return ("## Results\n\nWord and character error rates in percent (lower is better).\n\n"
            "| data | split | utterances | WER % | CER % | measured |\n|---|---|---|---|---|---|\n"
            + "\n".join(rows) + "\n")


def usage_section(spec: CardSpec) -> str:
    repo = spec.repo_id or USAGE_PLACEHOLDER
    return (
        "## Usage\n\n```python\nfrom srcore.hub import from_pretrained\n"
        "from srcore.transcribe import Recognizer\n\n"
        f"recognizer = Recognizer.load(from_pretrained(\"{repo}\"))\n"
        "print(recognizer.transcribe_file(\"clip.wav\").text)\n```\n\n"
        f"Command line: `python -m srcore.transcribe --model \"$(python -m srcore.hub pull {repo})\" "
        "clip.wav`. Input: mono speech at any sample rate (resampled to "
        f"{spec.model.get('features', {}).get('sample_rate', 16000)} Hz); output: lower-case "
        "letters, spaces and apostrophes.\n")


def training_section(spec: CardSpec) -> str:
    if not spec.training:
        return "## Training\n\nThe training config was not recorded with this model.\n"
    return ("## Training\n\nCommand:\n\n```bash\n" + spec.command + "\n```\n\n"
            "Training config (`config.json` → `training`):\n\n```json\n"
            + json.dumps(spec.training, indent=2) + "\n```\n")


def render_card(spec: CardSpec) -> str:
    """The README.md text: YAML metadata, then the Markdown body."""
    architecture = spec.model.get("architecture", "?")
    if spec.training.get("model") and spec.training["model"] != architecture:
        architecture += f"`, preset `{spec.training['model']}"
    size = f", {spec.parameters / 1e6:.2f} M parameters" if spec.parameters else ""
    data = "\n".join(f"- {line}" for line in spec.data) or "- not recorded"
    return (
        f"---\n{card_metadata(spec)}\n---\n\n# {spec.name}\n\n"
        f"A character-level CTC speech recogniser (architecture `{architecture}`{size}) trained "
        f"with srcore {spec.srcore_version}.\n\n"
        f"{results_section(spec)}\n{usage_section(spec)}\n"
        f"## Training data\n\n{data}\n\n{training_section(spec)}\n"
        "## Model\n\n```json\n" + json.dumps(spec.model, indent=2) + "\n```\n\n"
        "## Files\n\n- `model.safetensors`: the weights (safetensors: no pickle).\n"
        "- `config.json`: architecture, features, alphabet, the training config and the validation "
        "metrics. srcore loads strictly: missing or unexpected weights are an error.\n"
        "- `tokens.txt`: the output symbols in class order, the CTC blank last.\n"
        "- `decoding.json` and `lm/`, where present: the default decoder (a word n-gram LM with its "
        "lexicon) and the weights tuned for it.\n\n"
        "## Limitations\n\nThe error rates above hold for data like the training data. Expect "
        "more errors on other accents, microphones, noise and vocabulary; the model knows no "
        "punctuation, digits or casing.\n")


def card_body(card: str) -> str:
    """A card's Markdown without its YAML metadata block: what the Hub shows as the page."""
    return METADATA_BLOCK.sub("", card, count=1).lstrip()


def write_card(model_dir, out=None, **options) -> Path:
    """Write the card of model_dir to `out` (default: model_dir/README.md); options: card_spec's."""
    out = Path(out) if out else resolve_model_dir(model_dir) / CARD_FILE
    write_text_atomic(out, render_card(card_spec(model_dir, **options)))
    return out


# ---------------------------------------------------------------- command line

def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.modelcard", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model_dir", help="model directory (config.json + model.safetensors)")
    parser.add_argument("--out", help="where to write the card (default: MODEL_DIR/README.md)")
    parser.add_argument("--name", default="", help="model name (default: from the folder)")
    parser.add_argument("--repo-id", default="", help="Hub repo the card is for (usage example)")
    parser.add_argument("--command", default="", help="the training command, when it was not "
                                                      "plain `python -m srcore.train` (torchrun, ...)")
    parser.add_argument("--license", default="", help="license id for the metadata")
    parser.add_argument("--eval", action="append", default=[],
                        help="srcore.evaluate summary (JSON file); repeatable")
    parser.add_argument("--eval-dataset", action="append", default=[],
                        help="name of the data set of each --eval (default: its manifest)")
    parser.add_argument("--eval-split", default="test")
    args = parser.parse_args(argv)
    names = args.eval_dataset + [""] * (len(args.eval) - len(args.eval_dataset))
    try:
        scores = [read_evaluation(path, name, args.eval_split) for path, name in zip(args.eval, names)]
        print(write_card(args.model_dir, args.out, name=args.name, repo_id=args.repo_id,
                         command=args.command, scores=scores, license=args.license))
    except (OSError, ValueError) as exc:
        sys.exit(f"error: {exc}")


if __name__ == "__main__":
    main()
