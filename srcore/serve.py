"""`srcore app` and `srcore dashboard`: start the Gradio app or the Streamlit dashboard of a
checkout (app.py and dashboard/ live beside the package, as a Hugging Face Space expects).
`srcore app ARGS` passes ARGS to app.py; `srcore dashboard ARGS` to `streamlit run` (its options,
e.g. --server.port 8502; --help lists them)."""
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = {"app": PROJECT_ROOT / "app.py", "dashboard": PROJECT_ROOT / "dashboard" / "streamlit_app.py"}


def command_line(name: str, argv: list[str]) -> list[str]:
    """The app's script with its arguments, or `streamlit run` with its options before the script."""
    if name == "app":
        return [sys.executable, str(SCRIPTS[name]), *argv]
    return [sys.executable, "-m", "streamlit", "run", *argv, str(SCRIPTS[name])]


def main(name: str, argv: list[str]) -> None:
    if not SCRIPTS[name].is_file():
        sys.exit(f"srcore {name}: {SCRIPTS[name].name} is not here; run it from a checkout of srcore")
    command = command_line(name, argv)
    os.execv(command[0], command)


if __name__ == "__main__":  # python -m srcore.serve app|dashboard [ARGS...]
    if len(sys.argv) < 2 or sys.argv[1] not in SCRIPTS:
        sys.exit(f"usage: python -m srcore.serve {'|'.join(SCRIPTS)} [ARGS...]")
    main(sys.argv[1], sys.argv[2:])
