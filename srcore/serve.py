"""`srcore app` and `srcore dashboard`: start the Gradio app or the Streamlit dashboard of a
checkout (app.py and dashboard/ live beside the package, as a Hugging Face Space expects)."""
import os
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"app": [sys.executable, str(PROJECT_ROOT / "app.py")],
           "dashboard": [sys.executable, "-m", "streamlit", "run",
                         str(PROJECT_ROOT / "dashboard" / "streamlit_app.py"), "--"]}


def main(name: str, argv: list[str]) -> None:
    command = TARGETS[name]
    script = Path(command[1] if name == "app" else command[4])
    if not script.is_file():
        sys.exit(f"srcore {name}: {script.name} is not here; run it from a checkout of srcore")
    os.execv(command[0], [*command, *argv])


if __name__ == "__main__":  # python -m srcore.serve app|dashboard [ARGS...]
    if len(sys.argv) < 2 or sys.argv[1] not in TARGETS:
        sys.exit(f"usage: python -m srcore.serve {'|'.join(TARGETS)} [ARGS...]")
    main(sys.argv[1], sys.argv[2:])
