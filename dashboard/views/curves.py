"""Curves: loss, error rates and learning rate of one or more runs, live while they train."""
import streamlit as st

from dashboard.charts import curve_figures, latest_samples, read_runs
from srcore.launch import runs_root
from srcore.run import RUNNING, list_runs

REFRESH_S = 5

st.title("Training curves")
runs = list_runs(runs_root())
if not runs:
    st.info("No runs yet: start one on the Launch page.")
    st.stop()
by_name = {run.name: run for run in runs}
chosen = st.multiselect("runs to compare", list(by_name), default=[runs[0].name], key="runs")
selected = [by_name[name] for name in chosen]


def any_running() -> bool:
    return any(run.read_status().get("state") == RUNNING for run in selected)


live = any_running()


@st.fragment(run_every=REFRESH_S if live else None)
def curves() -> None:
    metrics = read_runs(selected)
    figures = curve_figures(metrics)
    if not figures:
        st.info("No metrics logged yet.")
    for left, right in zip(figures[::2], figures[1::2] + [None]):
        columns = st.columns(2)
        columns[0].plotly_chart(left, width="stretch")
        if right is not None:
            columns[1].plotly_chart(right, width="stretch")
    for name, rows in metrics.items():
        epoch, samples = latest_samples(rows["epoch"])
        if samples:
            st.subheader(f"{name}: sample predictions after epoch {epoch}")
            st.dataframe(samples, hide_index=True)
    if live and not any_running():
        st.rerun()  # the last run finished: redraw once more, then stop refreshing


if selected:
    curves()
