"""One row per run for the dashboard's tables."""
import time

from srcore.run import RunFolder, best_wer


def elapsed_seconds(rows: list[dict]) -> float | None:
    """Training time the trainer logged last (step or epoch rows)."""
    times = [row["elapsed_s"] for row in rows[-5:] if row.get("elapsed_s") is not None]
    return max(times) if times else None



def format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return ""
    minutes, secs = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def run_heading(name: str, status: dict) -> str:
    """The run's heading, "NAME: state · epoch E · P%" (epoch and progress once known)."""
    parts = [f"{name}: {status.get('state')}"]
    if status.get("epoch") is not None:
        parts.append(f"epoch {status['epoch']}")
    if status.get("progress") is not None:
        parts.append(f"{float(status['progress']):.0%}")
    return " · ".join(parts)


def run_summary(run: RunFolder) -> dict:
    status, config, rows = run.read_status(), run.read_config(), run.read_metrics(None)
    updated = status.get("updated")
    return {"run": run.name, "state": status.get("state"), "model": config.get("model", ""),
            "progress": float(status.get("progress") or 0.0),
            "epoch": status.get("epoch"), "step": status.get("step"), "best WER": best_wer(rows),
            "elapsed": format_seconds(elapsed_seconds(rows)),
            "updated": f"{format_seconds(time.time() - updated)} ago" if updated else "",
            "error": status.get("error", status.get("note", ""))}
