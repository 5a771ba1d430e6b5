"""Plotly figures of run metrics, several runs overlaid. Each refresh reads every run's
metrics.jsonl once (`read_runs`) and draws all figures from that snapshot."""
import plotly.graph_objects as go

from srcore.metrics import error_counts, format_diff
from srcore.run import RunFolder

LAYOUT = dict(height=340, margin=dict(l=10, r=10, t=40, b=10), hovermode="x unified",
              legend=dict(orientation="h", yanchor="top", y=-0.25, x=0))
DASHES = {"train_loss": "solid", "valid_loss": "dash", "wer": "solid", "cer": "dot"}


def read_runs(runs: list[RunFolder]) -> dict[str, dict[str, list[dict]]]:
    """{run name: {"epoch": rows, "step": rows}}, each metrics file read once."""
    snapshot = {}
    for run in runs:
        rows = run.read_metrics(None)
        snapshot[run.name] = {kind: [r for r in rows if r.get("type", "epoch") == kind]
                              for kind in ("epoch", "step")}
    return snapshot


def series_figure(title: str, runs: dict, kind: str, x: str, keys: list[str],
                  y_title: str) -> go.Figure | None:
    """One line per run and key; None when no run has any of these values."""
    figure = go.Figure(layout=dict(title=title, xaxis_title=x, yaxis_title=y_title, **LAYOUT))
    for name, rows_by_kind in runs.items():
        rows = rows_by_kind[kind]
        for key in keys:
            points = [(row[x], row[key]) for row in rows if row.get(key) is not None and x in row]
            if points:
                xs, ys = zip(*points)
                figure.add_scatter(x=xs, y=ys, mode="lines+markers", name=f"{name} · {key}",
                                   line=dict(dash=DASHES.get(key, "solid")))
    return figure if figure.data else None


def epoch_loss_figure(runs):
    return series_figure("Loss per epoch", runs, "epoch", "epoch", ["train_loss", "valid_loss"], "CTC loss")


def step_loss_figure(runs):
    return series_figure("Training loss per step", runs, "step", "step", ["loss"], "CTC loss")


def error_rate_figure(runs):
    figure = series_figure("Validation error rates", runs, "epoch", "epoch", ["wer", "cer"], "rate")
    if figure is not None:
        figure.update_yaxes(tickformat=".0%")
    return figure


def learning_rate_figure(runs):
    """Learning rate per step where step rows are logged, else per epoch."""
    figure = (series_figure("Learning rate", runs, "step", "step", ["lr"], "learning rate")
              or series_figure("Learning rate", runs, "epoch", "epoch", ["lr"], "learning rate"))
    if figure is not None:
        figure.update_yaxes(type="log", exponentformat="power")
    return figure


def curve_figures(runs: dict) -> list[go.Figure]:
    """The figures that have data, in display order, from a `read_runs` snapshot."""
    figures = [epoch_loss_figure(runs), step_loss_figure(runs), error_rate_figure(runs),
               learning_rate_figure(runs)]
    return [f for f in figures if f is not None]


def latest_samples(epoch_rows: list[dict]) -> tuple[int | None, list[dict]]:
    """(epoch, rows) of the latest epoch's sample predictions: reference, prediction, WER, diff."""
    for row in reversed(epoch_rows):
        if row.get("samples"):
            return row.get("epoch"), [
                {"ground truth": s["ref"], "prediction": s["hyp"],
                 "WER": round(error_counts(s["ref"], s["hyp"]).wer, 3),
                 "diff (REF->HYP)": format_diff(s["ref"], s["hyp"])} for s in row["samples"]]
    return None, []
