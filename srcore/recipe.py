"""The shipped model's recipe as code: corpus -> training -> language model -> tuning -> card.

    python -m srcore.recipe default --out runs/default [--ship checkpoints/default]

Every stage is a plain srcore command (printed and logged to OUT/recipe.log, so the recipe reads
as the list of commands it runs). A finished stage leaves OUT/stages/NAME.json and is skipped when
the recipe runs again; an interrupted training stage resumes from its last checkpoint. Sizes
follow the machine: a 2-core CPU gets a corpus and a training budget that fit about 2.5 hours,
a GPU more of both (see `Budget`). To train on another machine (a rented GPU), build the corpus
with `--stop-after corpus`, run the train stage's command there, and finish here with
`--use-run RUN_DIR`: the finished run stands in for the train stage.

Data:
- synthetic speech from every installed engine (`python -m srcore.data synth`; eSpeak NG always,
  Kokoro, piper, MBROLA, Pico and RHVoice when installed: scripts/install-voices.sh);
- the Asterisk prompts, one real speaker (`python -m srcore.data import asterisk`), when the
  Debian package is installed;
- real recordings under --data: fsdd/ (spoken digits; speaker theo held out) and read-speech/
  (15 % of the sentences held out), when present;
- --dev manifests (default: DATA/dev-real/all.jsonl when present) are never trained on: they tune
  the decoder's LM weights and are reported in the card, and their sentences are kept out of the
  LM text.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .atomic import staging_dir, swap_in, write_text_atomic
from .checkpoint import CONFIG_FILE, RESUME_FILE, resolve_model_dir
from .importers import ASTERISK_INSTALL, ASTERISK_SOUND_DIRS
from .lm import FORTUNES_DIR, SOURCES
from .manifest import manifest_label
from .modelcard import public_training
from .run import RunFolder

RECIPES = ("default",)
STAGES = ("corpus", "train", "lm", "package", "evaluate", "card")  # in order
PYTHON = sys.executable


FAST_ENGINES = "espeak,piper,mbrola,pico,rhvoice"  # about 0.01-0.1 CPU-s per audio-s
SLOW_ENGINES = "kokoro"  # about 0.7 CPU-s per audio-s, and the most natural voices
FINE_TUNE_LR, SCRATCH_LR = 5e-4, 1.5e-3  # peak rates (cosine decay over the time budget)
MIXTURE = {"synth": 1, "kokoro": 2, "asterisk": 3, "fsdd": 1, "read": 4}  # repeats per epoch


@dataclass
class Budget:
    """How much of everything a machine gets."""
    synth_hours: float  # the fast engines
    kokoro_hours: float
    train_minutes: float
    workers: int
    batch_size: int
    hidden_size: int = 0  # the model's size (0: the default preset's, 256 x 3)
    num_layers: int = 0
    lr: float = 0.0  # the peak learning rate (0: FINE_TUNE_LR from a model's weights, else SCRATCH_LR)

    @classmethod
    def for_machine(cls, gpu: bool, cores: int) -> Budget:
        if gpu:
            return cls(synth_hours=10.0, kokoro_hours=6.0, train_minutes=45.0,
                       workers=max(1, cores - 1), batch_size=96)
        return cls(synth_hours=3.0, kokoro_hours=1.25, train_minutes=80.0, workers=max(1, cores),
                   batch_size=32)


@dataclass
class Recipe:
    out: Path
    data: Path
    dev: list[Path] = field(default_factory=list)
    budget: Budget | None = None
    init_from: str = ""
    use_run: str = ""  # a finished training run made elsewhere, adopted instead of the train stage
    seed: int = 0
    ship: str = ""
    stop_after: str = ""  # a stage name: the recipe ends there (e.g. "corpus", to train elsewhere)
    dry_run: bool = False

    # ------------------------------------------------------------------ plumbing

    @property
    def corpus(self) -> Path:
        return self.out / "corpus"

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}] {message}"
        print(line, flush=True)
        self.out.mkdir(parents=True, exist_ok=True)
        with open(self.out / "recipe.log", "a", encoding="utf-8") as f:
            f.write(line + "\n")

    def run(self, *args, check: bool = True) -> int:
        """Run one srcore command (`python -m srcore.X ...`), logging it and its output."""
        command = [PYTHON, "-m", *map(str, args)]
        self.log("$ " + " ".join(shlex.quote(a) for a in ["python", "-m", *map(str, args)]))
        if self.dry_run:
            return 0
        with open(self.out / "recipe.log", "a", encoding="utf-8") as log_file:
            code = subprocess.call(command, stdout=log_file, stderr=subprocess.STDOUT)
        if code and check:
            raise RuntimeError(f"stage command failed with exit code {code}: see {self.out / 'recipe.log'}")
        return code

    def stage(self, name: str, action) -> dict:
        """Run `action` unless stage `name` already finished; record what it returned."""
        marker = self.out / "stages" / f"{name}.json"
        if marker.is_file():
            self.log(f"stage {name}: done before, skipped")
            return json.loads(marker.read_text())
        self.log(f"stage {name}")
        started = time.time()
        result = action() or {}
        result["wall_s"] = round(time.time() - started, 1)
        if not self.dry_run:
            marker.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomic(marker, json.dumps(result, indent=2))
        self.log(f"stage {name}: {json.dumps(result)}")
        return result

    # ------------------------------------------------------------------ stages

    def make_corpus(self) -> dict:
        b = self.budget
        parts = {"train": [], "valid": []}

        def add(name: str, folder: Path) -> None:
            parts["train"].append(f"{folder / 'train.jsonl'}@{MIXTURE[name]}")
            parts["valid"].append(folder / "valid.jsonl")

        sentences = self.corpus / "sentences.txt"  # natural prose for the voices, dev text excluded
        excludes = [arg for dev in self.dev for arg in ("--exclude", dev)]
        self.run("srcore.lm", "text", "--out", sentences, "--keep", *excludes)  # the clips' plan
        for name, engines, hours in (("synth", FAST_ENGINES, b.synth_hours),
                                     ("kokoro", SLOW_ENGINES, b.kokoro_hours)):
            folder = self.corpus / name
            if hours and self.run("srcore.data", "synth", "--out", folder, "--hours", hours,
                                  "--engines", engines, "--seed", self.seed, "--workers", b.workers,
                                  "--sentences", sentences, "--no-progress", check=name == "synth") == 0:
                add(name, folder)
        asterisk = self.corpus / "asterisk"
        if self.run("srcore.data", "import", "asterisk", "--out", asterisk, check=False) == 0:
            add("asterisk", asterisk)
        else:
            self.log(f"no Asterisk prompts ({ASTERISK_INSTALL}); going on")
        fsdd, read = self.data / "fsdd" / "all.jsonl", self.data / "read-speech" / "all.jsonl"
        if fsdd.is_file():
            self.run("srcore.data", "split", fsdd, "--out", self.corpus / "fsdd", "--valid-speakers", "theo")
            add("fsdd", self.corpus / "fsdd")
        if read.is_file():  # the app's shipped samples are among these 15 % held out
            self.run("srcore.data", "split", read, "--out", self.corpus / "read", "--valid-fraction", 0.15,
                     "--seed", 0)
            add("read", self.corpus / "read")
        for split, sources in parts.items():
            self.run("srcore.data", "combine", *sources, "--out", self.corpus / f"{split}.jsonl")
        return {split: [str(s) for s in sources] for split, sources in parts.items()}

    def build_lm(self) -> dict:
        excludes = [arg for dev in self.dev for arg in ("--exclude", dev)]
        self.run("srcore.lm", "build", "--out", self.out / "lm", *excludes)
        return {"lm": str(self.out / "lm")}

    def train(self) -> dict:
        if self.use_run:
            return self.adopt_run(Path(self.use_run))
        b = self.budget
        args = ["srcore.train", "--train", self.corpus / "train.jsonl", "--valid", self.corpus / "valid.jsonl",
                "--model", "default", "--epochs", 100, "--batch-size", b.batch_size, "--cpu-amp",
                "--max-minutes", b.train_minutes, "--workers", 1 if b.workers < 4 else b.workers - 1,
                "--seed", self.seed, "--out", self.out / "train", "--resume"]
        if b.hidden_size:
            args += ["--hidden-size", b.hidden_size]
        if b.num_layers:
            args += ["--num-layers", b.num_layers]
        if self.init_from:
            args += ["--init-from", self.init_from, "--lr", b.lr or FINE_TUNE_LR, "--warmup-steps", 100]
        else:
            args += ["--lr", b.lr or SCRATCH_LR, "--warmup-steps", 300]
        args += ["--lr-schedule", "cosine"]  # the rate decays over the time budget
        self.run(*args)
        return {"run": str(self.out / "train")}

    def adopt_run(self, run: Path) -> dict:
        """A training run made on another machine (a GPU, say) on this corpus stands in for the
        train stage: copied to OUT/train, its config and metrics with it."""
        if not finished_run(run):
            raise FileNotFoundError(f"{run}: no checkpoints/best (not a finished training run)")
        self.log(f"adopting the training run {run}")
        if not self.dry_run and run.resolve() != (self.out / "train").resolve():
            shutil.rmtree(self.out / "train", ignore_errors=True)
            shutil.copytree(run, self.out / "train")
        return {"run": str(self.out / "train"), "adopted": manifest_label(str(run))}

    def package(self) -> dict:
        """The best checkpoint plus the LM and its tuned weights: one model directory."""
        model = self.out / "model"
        if not self.dry_run:
            shutil.rmtree(model, ignore_errors=True)
            shutil.copytree(RunFolder(self.out / "train").best_dir, model)
            (model / RESUME_FILE).unlink(missing_ok=True)
            publishable_config(model / CONFIG_FILE)
            if (self.out / "lm").is_dir():
                shutil.copytree(self.out / "lm", model / "lm")
        if (model / "lm").is_dir() or self.dry_run:
            tune = self.dev[0] if self.dev else self.corpus / "valid.jsonl"
            own_domain = self.corpus / "synth" / "valid.jsonl"  # where the token prior is estimated
            prior = ("--prior-from", own_domain) if own_domain.is_file() or self.dry_run else ()
            self.run("srcore.lm", "tune", "--model", model, "--lm", model / "lm", "--manifest", tune,
                     *prior, "--write", model / "decoding.json")
        return {"model": str(model)}

    def evaluate(self) -> dict:
        """Greedy and default (LM) decoding on every held-out set; summaries in OUT/eval/."""
        model, results = self.out / "model", {}
        sets = {"fsdd-theo": self.corpus / "fsdd" / "valid.jsonl",
                "read-held-out": self.corpus / "read" / "valid.jsonl",
                "synth-held-out": self.corpus / "synth" / "valid.jsonl"}
        for dev in self.dev:
            sets[dev.parent.name] = dev
            sets.update({f"{dev.parent.name}-{p.parent.name}": p
                         for p in sorted(dev.parent.glob("*/all.jsonl"))})
        for name, manifest in sets.items():
            if not manifest.is_file() and not self.dry_run:
                continue
            for decoding, extra in (("greedy", ["--greedy"]), ("lm", [])):
                out = self.out / "eval" / f"{name}.{decoding}"
                self.run("srcore.evaluate", "--model", model, "--manifest", manifest, "--threads", 1,
                         "--out", f"{out}.jsonl", "--summary", f"{out}.json", *extra)
                if not self.dry_run:
                    results[f"{name}.{decoding}"] = json.loads(Path(f"{out}.json").read_text())
        return results

    def card(self) -> dict:
        """The model card from the default-decoding figures, and OUT/results.md: greedy beside
        the default decoding on every held-out set."""
        results = json.loads((self.out / "stages" / "evaluate.json").read_text()) if not self.dry_run else {}
        names = sorted({key.rsplit(".", 1)[0] for key in results if key != "wall_s"})
        evals = [arg for name in names if f"{name}.lm" in results
                 for arg in ("--eval", self.out / "eval" / f"{name}.lm.json", "--eval-dataset", name)]
        self.run("srcore.modelcard", self.out / "model", "--license", "cc-by-sa-4.0", *evals)
        rows = ["| held-out set | clips | greedy WER | greedy CER | default WER | default CER |",
                "|---|---|---|---|---|---|"]
        for name in names:
            greedy, lm = results.get(f"{name}.greedy", {}), results.get(f"{name}.lm", {})
            rows.append(f"| {name} | {greedy.get('n', '')} | {pct(greedy.get('wer'))} | {pct(greedy.get('cer'))} "
                        f"| {pct(lm.get('wer'))} | {pct(lm.get('cer'))} |")
        if not self.dry_run:
            (self.out / "results.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
            with open(self.out / "model" / "README.md", "a", encoding="utf-8") as card:
                card.write(self.recipe_section(rows))
        return {"results": str(self.out / "results.md")}

    def recipe_section(self, rows: list[str]) -> str:
        """How the model was made (the card's addendum): the recipe, its stages' wall times, the
        starting weights, and greedy beside the default decoding."""
        stages = {p.stem: json.loads(p.read_text()).get("wall_s") for p in sorted((self.out / "stages").glob("*.json"))}
        timing = ", ".join(f"{name} {seconds / 60:.0f} min" for name, seconds in stages.items() if seconds)
        init = manifest_label(self.init_from)  # no machine layout in a published card
        start = (f"initialised from the weights of `{init}` (the model it replaces: its card, in the "
                 "repository's history, gives its own recipe)" if self.init_from else "from random weights")
        b = self.budget
        if self.use_run:
            start += (f"; the training stage was the run `{manifest_label(self.use_run)}`, made on "
                      "another machine (its config.json in this folder holds its command)")
        training = (f" --use-run {manifest_label(self.use_run)}" if self.use_run else  # its own budget
                    f" --train-minutes {b.train_minutes:g} --batch-size {b.batch_size}"
                    + (f" --hidden-size {b.hidden_size}" if b.hidden_size else "")
                    + (f" --num-layers {b.num_layers}" if b.num_layers else "")
                    + (f" --lr {b.lr:g}" if b.lr else ""))
        command = (f"python -m srcore.recipe default --synth-hours {b.synth_hours:g} --kokoro-hours "
                   f"{b.kokoro_hours:g}{training}"
                   + (f" --seed {self.seed}" if self.seed else "")
                   + (f" --init-from {init}" if self.init_from else ""))
        tuned = (f" (LM weights and prior scale tuned on `{self.dev[0].parent.name}`, the token "
                 "prior from the held-out synthetic clips)" if self.dev else "")
        return ("\n## Recipe\n\n```bash\n" + command + "\n```\n\n"
                f"Trained {start}. Stage wall times on this machine ({os.cpu_count()} CPU cores"
                f"{', CUDA' if torch_cuda() else ''}): {timing}. Held-out sets, greedy beside the "
                f"default decoding (the word LM with the weights of decoding.json{tuned}):\n\n"
                + "\n".join(rows) + "\n")

    def ship_model(self) -> dict:
        target = Path(self.ship)
        if not self.dry_run:
            staging = staging_dir(target)
            shutil.rmtree(staging, ignore_errors=True)
            shutil.copytree(self.out / "model", staging)
            swap_in(staging, target)
        return {"shipped": str(target)}

    def missing_recordings(self) -> list[str]:
        """One line per set of real recordings that --data lacks (the corpus goes without it)."""
        sets = {"fsdd": "spoken digits", "read-speech": "read sentences"}
        return [f"{self.data / name / 'all.jsonl'} is missing: the corpus leaves out the real {what} "
                "(--data names the folder that holds fsdd/ and read-speech/)"
                for name, what in sets.items() if not (self.data / name / "all.jsonl").is_file()]

    def __call__(self) -> None:
        self.log(f"recipe default: {json.dumps(asdict(self), default=str)}")
        for line in missing_system_data() + self.missing_recordings():
            self.log(f"warning: {line}")
        actions = {"corpus": self.make_corpus, "train": self.train, "lm": self.build_lm,
                   "package": self.package, "evaluate": self.evaluate, "card": self.card}
        for name in STAGES:
            self.stage(name, actions[name])
            if name == self.stop_after:
                self.log(f"recipe stopped after stage {name} (--stop-after)")
                return
        if self.ship:
            self.ship_model()
        self.log("recipe finished")


# Debian data the shipped model was made with: without it the recipe still runs, and says at its
# start what its corpus or LM will lack: (folders, any of which will do; what is lost; the install)
SYSTEM_DATA = (((FORTUNES_DIR,), "the LM's and the voices' text leaves out fortune-mod's sayings",
                SOURCES["fortunes"].install),
               (ASTERISK_SOUND_DIRS, "the corpus leaves out the Asterisk prompts (one real speaker)",
                ASTERISK_INSTALL))


def missing_system_data() -> list[str]:
    """One line per SYSTEM_DATA entry this machine lacks: what is lost, and the install command."""
    return [f"{lost} ({install})" for folders, lost, install in SYSTEM_DATA
            if not any(Path(folder).is_dir() for folder in folders)]


def publishable_config(path: Path) -> None:
    """A shipped config.json names its training paths as its card does (their last two parts),
    never the machine's folders."""
    meta = json.loads(path.read_text(encoding="utf-8"))
    meta["training"] = public_training(meta.get("training") or {})
    path.write_text(json.dumps(meta, indent=2), encoding="utf-8")


def finished_run(run) -> bool:
    return RunFolder(run).best_dir.is_dir()


def torch_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


def pct(fraction) -> str:
    return f"{100 * fraction:.1f} %" if isinstance(fraction, (int, float)) else ""


def default_dev(data: Path) -> list[Path]:
    dev = data / "dev-real" / "all.jsonl"
    return [dev] if dev.is_file() else []


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m srcore.recipe", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipe", choices=RECIPES)
    parser.add_argument("--out", type=Path, default=Path("runs/default"))
    parser.add_argument("--data", type=Path, default=Path("../shared/data"),
                        help="folder with fsdd/ and read-speech/ (real recordings to train on)")
    parser.add_argument("--dev", type=Path, nargs="*", default=None,
                        help="measure-only manifests (default: DATA/dev-real/all.jsonl)")
    parser.add_argument("--init-from", default="", help="start from this model directory's weights")
    parser.add_argument("--synth-hours", type=float, help="override the machine's budget")
    parser.add_argument("--kokoro-hours", type=float, help="override the machine's budget")
    parser.add_argument("--train-minutes", type=float, help="override the machine's budget")
    parser.add_argument("--batch-size", type=int, help="override the machine's budget")
    parser.add_argument("--hidden-size", type=int, help="the model's recurrent width (0: the preset's; "
                                                        "wider than --init-from's widens that model)")
    parser.add_argument("--num-layers", type=int, help="the model's recurrent layers (0: the preset's)")
    parser.add_argument("--lr", type=float, help=f"peak learning rate (default: {FINE_TUNE_LR:g} with "
                                                 f"--init-from, {SCRATCH_LR:g} from random weights)")
    parser.add_argument("--use-run", default="",
                        help="a finished training run (on this corpus, made elsewhere: a GPU machine) "
                             "to package instead of training here")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ship", default="", help="copy the final model directory here")
    parser.add_argument("--stop-after", choices=STAGES, default="",
                        help="end after this stage (corpus: build the corpus to train on another machine)")
    parser.add_argument("--dry-run", action="store_true", help="print the commands only")
    args = parser.parse_args(argv)
    if args.use_run and not finished_run(args.use_run):
        parser.error(f"--use-run {args.use_run}: no checkpoints/best there (not a finished training run)")
    if args.init_from:  # checked now, not after the corpus's tens of minutes
        try:
            resolve_model_dir(args.init_from)
        except FileNotFoundError as exc:
            parser.error(f"--init-from {exc}")
    import torch
    budget = Budget.for_machine(torch.cuda.is_available(), os.cpu_count() or 1)
    for name in ("synth_hours", "kokoro_hours", "train_minutes", "batch_size", "hidden_size", "num_layers",
                 "lr"):
        if getattr(args, name) is not None:
            setattr(budget, name, getattr(args, name))
    dev = default_dev(args.data) if args.dev is None else args.dev
    Recipe(out=args.out, data=args.data, dev=dev, budget=budget, init_from=args.init_from,
           use_run=args.use_run, seed=args.seed, ship=args.ship, stop_after=args.stop_after,
           dry_run=args.dry_run)()


if __name__ == "__main__":
    main()
