import subprocess
import sys

from srcore.cli import COMMANDS, main


def test_help_lists_every_subcommand(capsys):
    main(["--help"])
    out = capsys.readouterr().out
    assert all(f"  {name}" in out for name in COMMANDS)


def test_unknown_subcommand_is_an_error_naming_it():
    result = subprocess.run([sys.executable, "-m", "srcore", "trian"], capture_output=True, text=True)
    assert result.returncode != 0 and "unknown command 'trian'" in result.stderr


def test_subcommand_runs_the_modules_main():
    result = subprocess.run([sys.executable, "-m", "srcore", "train", "--help"], capture_output=True,
                            text=True)
    assert result.returncode == 0 and "--max-minutes" in result.stdout
