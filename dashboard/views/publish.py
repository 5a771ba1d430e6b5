"""Publish: push a checkpoint to the Hugging Face Hub with its model card, or save the bundle."""
import streamlit as st

from srcore.hub import HubError, bundle_files, card_text, mask_secrets, model_source, push_to_hub, save_pretrained
from srcore.launch import runs_root
from srcore.modelcard import CARD_FILE, card_body, default_name
from srcore.run import list_runs

st.title("Publish a model")
candidates = {run.name: run.path for run in list_runs(runs_root()) if run.best_dir.is_dir()}


def choose_source():
    names = list(candidates)
    choice = st.selectbox("run (its best checkpoint)", names, key="source_run",
                          index=0 if names else None, placeholder="no run has a checkpoint yet")
    path = st.text_input("or a model directory", key="source_dir",
                         placeholder="a folder with config.json and model.safetensors")
    target = path or (candidates.get(choice) if choice else None)
    if not target:
        return None
    try:
        return model_source(target)
    except FileNotFoundError as exc:
        st.error(str(exc))
        return None


def push(source) -> None:
    """Submit callback: the token leaves the session state before anything else happens."""
    state = st.session_state
    token = state.get("token") or None
    state["token"] = ""
    try:
        with st.spinner(f"uploading to {state['repo_id']}"):
            url = push_to_hub(source, state["repo_id"].strip(), private=state["private"], token=token)
        state["push_result"] = (st.success, f"published: {url}", url)
    except HubError as exc:
        state["push_result"] = (st.error, str(exc), None)
    except Exception as exc:  # shown without the token, whatever went wrong
        state["push_result"] = (st.error, mask_secrets(f"{type(exc).__name__}: {exc}", token), None)


def push_form(source) -> None:
    with st.form("push"):
        st.text_input("repo id", key="repo_id", placeholder="USER/NAME")
        st.checkbox("private repo", key="private")
        st.text_input("token", type="password", key="token",
                      help="empty: HF_TOKEN from the environment (or a stored login). Used for this "
                           "upload only: cleared at once, never written anywhere.")
        st.form_submit_button("Push to the Hub", type="primary", on_click=push, args=(source,))
    if "push_result" in st.session_state:
        show, message, url = st.session_state.pop("push_result")
        show(message)
        if url:
            st.link_button("Open on the Hub", url)


def save_form(source) -> None:
    with st.form("save"):
        out = st.text_input("folder", f"exports/{default_name(source)}", key="save_out")
        if not st.form_submit_button("Save the bundle locally"):
            return
    try:
        saved = save_pretrained(source, out)
    except (HubError, OSError, ValueError) as exc:
        st.error(str(exc))
        return
    files = ", ".join([*bundle_files(saved), CARD_FILE])
    st.success(f"saved {files} in `{saved.resolve()}`")


source = choose_source()
if source is None:
    st.info("Choose a run with a checkpoint or a model directory.")
    st.stop()
st.caption(f"model directory: `{source}`")
with st.expander("model card (README.md)"):
    card = card_text(source)
    rendered, raw = st.tabs(["rendered", "raw markdown (with metadata)"])
    rendered.markdown(card_body(card))
    raw.code(card, language="markdown")
push_form(source)
save_form(source)
