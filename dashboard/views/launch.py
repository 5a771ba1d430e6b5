"""Launch: start `python -m srcore.train` as a detached process; make a synthetic corpus."""
import shlex

import streamlit as st

from srcore.config import LR_SCHEDULES, TrainConfig
from srcore.launch import (
    LaunchError,
    data_root,
    find_manifests,
    runs_root,
    start_synth,
    start_training,
    synth_state,
)
from srcore.model import PRESETS

DEVICES = ["auto", "cpu", "cuda"]
DEFAULTS = TrainConfig()

st.title("Launch a training run")
manifests = [str(p) for p in find_manifests(data_root())]


def synth_section() -> None:
    with st.expander("Make a synthetic corpus (`python -m srcore.data synth`)"):
        out = st.text_input("corpus folder", str(data_root() / "synth"), key="synth_out")
        hours = st.number_input("hours of audio", min_value=0.001, value=1.0, step=0.5, format="%.3f",
                                key="synth_hours")
        if st.button("Generate", key="synth_start"):
            try:
                process = start_synth(out, hours)
                st.success(f"generating in `{out}` (pid {process.pid}); log: `{out}/synth.log`. "
                           "Its train.jsonl and valid.jsonl appear in the lists below when done.")
            except LaunchError as exc:
                st.error(str(exc))
        state = synth_state(out)
        if state:
            st.caption(f"`{out}`: {state}")


def pick_manifest(label: str, key: str, guess: str) -> str | None:
    """A manifest found under the data folder (the first named like `guess`), or a typed path."""
    if st.session_state.get(key) is None and manifests:  # also once a new corpus has appeared
        st.session_state[key] = next((m for m in manifests if m.endswith(guess)), manifests[0])
    return st.selectbox(label, manifests, key=key, accept_new_options=True,
                        placeholder="path to a .jsonl manifest")


def launch_form() -> None:
    # Enter in a text field must not launch: only the button does, once every field is set.
    with st.form("launch", enter_to_submit=False):
        left, right = st.columns(2)
        with left:
            train = pick_manifest("train manifest", "train", "train.jsonl")
            valid = pick_manifest("validation manifest", "valid", "valid.jsonl")
            name = st.text_input("run name", key="name", placeholder="empty: run-DATE-TIME")
            resume = st.checkbox("resume this run from its last checkpoint", key="resume")
        with right:
            model = st.selectbox("model", PRESETS, index=PRESETS.index(DEFAULTS.model), key="model")
            epochs = st.number_input("epochs", 1, 10_000, DEFAULTS.epochs, key="epochs")
            batch_size = st.number_input("batch size", 1, 4096, DEFAULTS.batch_size, key="batch_size")
            lr = st.number_input("learning rate", 1e-6, 1.0, DEFAULTS.lr, format="%.5f", key="lr")
        with st.expander("more options"):
            max_steps = st.number_input("max steps (0: no limit)", 0, value=DEFAULTS.max_steps,
                                        key="max_steps")
            max_minutes = st.number_input("time budget, minutes (0: no limit)", 0.0,
                                          value=DEFAULTS.max_minutes, key="max_minutes")
            lr_schedule = st.selectbox("learning-rate schedule", LR_SCHEDULES,
                                       index=LR_SCHEDULES.index(DEFAULTS.lr_schedule), key="lr_schedule",
                                       help="plateau: drop when validation stalls; cosine: decay over "
                                            "the planned epochs, steps or minutes")
            device = st.selectbox("device", DEVICES, key="device")
            threads = st.number_input("torch threads (0: default)", 0, 256, DEFAULTS.threads, key="threads")
            workers = st.number_input("data loader workers", 0, 64, DEFAULTS.workers, key="workers")
            seed = st.number_input("seed", 0, value=DEFAULTS.seed, key="seed")
            augment = st.checkbox("waveform augmentation", DEFAULTS.augment, key="augment")
        if not st.form_submit_button("Start training", type="primary"):
            return
    options = dict(train=train, valid=valid, model=model, epochs=int(epochs), batch_size=int(batch_size),
                   lr=float(lr), max_steps=int(max_steps), max_minutes=float(max_minutes),
                   lr_schedule=lr_schedule, device=device, threads=int(threads),
                   workers=int(workers), seed=int(seed), augment=augment)
    try:
        launch = start_training(runs_root(), name, options, resume=resume)
    except LaunchError as exc:
        st.error(str(exc))
        return
    st.success(f"started **{launch.run.name}** (pid {launch.pid}); run folder: `{launch.run.path}`")
    st.code(shlex.join(launch.command), language="bash")
    st.page_link("views/runs.py", label="Follow it on the Runs page", icon=":material/list:")


synth_section()
launch_form()
