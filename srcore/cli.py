"""The `srcore` command: one entry point for every stage.

    srcore train ...        = python -m srcore.train ...
    srcore transcribe ...   = python -m srcore.transcribe ...

Each subcommand is a module's own `main(argv)`, imported only when it runs, so `srcore --help`
is instant and a subcommand's extras (gradio, streamlit) are needed only by that subcommand.
"""
import importlib
import sys

COMMANDS = {  # name: (module, what it does)
    "train": ("srcore.train", "train a model (run folder: config, metrics, checkpoints)"),
    "adapt": ("srcore.adapt", "adapt a model to one speaker's recordings in minutes"),
    "evaluate": ("srcore.evaluate", "score a model on a manifest (WER, CER, RTF)"),
    "transcribe": ("srcore.transcribe", "speech to text for audio files"),
    "data": ("srcore.data", "corpora: synth, import, split, combine"),
    "voices": ("srcore.voices", "which speech synthesizers this machine has (status)"),
    "lm": ("srcore.lm", "word language model: text, build, tune"),
    "recipe": ("srcore.recipe", "rebuild the shipped model from nothing"),
    "hub": ("srcore.hub", "push or pull a model on the Hugging Face Hub"),
    "card": ("srcore.modelcard", "write a model card"),
    "app": ("srcore.serve", "start the web app (needs the app extra)"),
    "dashboard": ("srcore.serve", "start the training dashboard (needs the dashboard extra)"),
}


def usage() -> str:
    width = max(map(len, COMMANDS))
    lines = [f"  {name:<{width}}  {what}" for name, (_, what) in COMMANDS.items()]
    return "usage: srcore COMMAND [ARGS...]\n\ncommands:\n" + "\n".join(lines) + \
        "\n\n`srcore COMMAND --help` describes each one."


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.exit(f"srcore: unknown command {name!r}\n\n{usage()}")
    module = importlib.import_module(COMMANDS[name][0])
    sys.argv = [f"srcore {name}", *rest]
    if module.__name__ == "srcore.serve":
        module.main(name, rest)
    else:
        code = module.main(rest)
        if isinstance(code, int):  # a main that returns its exit status
            sys.exit(code)


if __name__ == "__main__":
    main()
