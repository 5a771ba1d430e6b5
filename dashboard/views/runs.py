"""Runs: every run with its status; stop, kill or resume one; the tail of its log."""
import streamlit as st

from dashboard.summary import run_heading, run_summary
from srcore.launch import (
    LaunchError,
    console_tail,
    is_running,
    kill_run,
    resume_run,
    runs_root,
    stop_run,
)
from srcore.run import FAILED, RUNNING, STALE, STOPPED, list_runs

REFRESH_S = 3
LOG_LINES = 40
RESUMABLE = (STOPPED, FAILED, STALE)

st.title("Runs")
root = runs_root()
runs = list_runs(root)
if not runs:
    st.info(f"No runs in `{root.resolve()}` yet: start one on the Launch page.")
    st.stop()
live = any(is_running(run) for run in runs)


@st.fragment(run_every=REFRESH_S if live else None)
def runs_table() -> None:
    st.dataframe([run_summary(run) for run in list_runs(root)], hide_index=True, column_config={
        "progress": st.column_config.ProgressColumn("progress", min_value=0.0, max_value=1.0),
        "best WER": st.column_config.NumberColumn("best WER", format="%.3f")})


def act(action, run, done: str) -> None:
    """Run a stop/kill/resume action, then redraw the page with its outcome (or its refusal)."""
    try:
        with st.spinner(f"{done}: {run.name}"):
            result = action(run)
    except (LaunchError, OSError) as exc:
        st.session_state["outcome"] = (st.error, str(exc))
    else:
        state = result.get("state") if isinstance(result, dict) else f"running (pid {result.pid})"
        st.session_state["outcome"] = (st.success, f"{done}: {run.name} is now {state}")
    st.rerun()


def controls(run) -> None:
    state = run.read_status().get("state")
    left, middle, _ = st.columns([1, 1, 4])
    if state == RUNNING:
        if left.button("Stop", key="stop", help="SIGTERM: the trainer saves a checkpoint and exits"):
            act(stop_run, run, "stop requested")
        if middle.button("Kill", key="kill", help="SIGKILL, for a trainer that does not stop"):
            act(kill_run, run, "killed")
    elif state in RESUMABLE:
        if left.button("Resume", key="resume", help="--resume with the run's own config.json"):
            act(resume_run, run, "resumed")


runs_table()
chosen = st.selectbox("run", [run.name for run in runs], key="run")
run = next(run for run in runs if run.name == chosen)
live_run = is_running(run)


@st.fragment(run_every=REFRESH_S if live_run else None)
def details() -> None:
    """Heading, controls and log tail of the chosen run, refreshed while it runs."""
    status = run.read_status()
    st.subheader(run_heading(run.name, status))
    if status.get("error"):
        st.error(status["error"])
    elif status.get("note"):
        st.info(status["note"])
    if "outcome" in st.session_state:
        show, message = st.session_state.pop("outcome")
        show(message)
    controls(run)
    st.caption(f"`{run.path}`")
    st.code(run.log_tail(LOG_LINES) or "(no log yet)", language="text")
    console = console_tail(run, LOG_LINES)
    if console and status.get("state") in (FAILED, STALE):
        st.caption("console output (stdout/stderr)")
        st.code(console, language="text")
    if live_run and status.get("state") != RUNNING:
        st.rerun()  # it ended: redraw the page once (table, controls), then stop refreshing


details()
