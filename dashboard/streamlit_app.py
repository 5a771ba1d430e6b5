"""srcore training dashboard: `streamlit run dashboard/streamlit_app.py`.

Runs folder: $SRCORE_RUNS (default runs/); corpora: $SRCORE_DATA (default corpus/).
"""
import sys
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
if str(PROJECT_ROOT) not in sys.path:  # `streamlit run` puts only this folder on the path
    sys.path.insert(0, str(PROJECT_ROOT))

import streamlit as st  # noqa: E402

from srcore.launch import runs_root  # noqa: E402

# views/, not pages/: Streamlit treats a pages/ folder as its legacy multipage app and would
# serve a direct /page URL from it, bypassing st.navigation (no titles, no sidebar caption).
VIEWS = Path(__file__).resolve().parent / "views"

st.set_page_config(page_title="srcore training", layout="wide")
navigation = st.navigation([
    st.Page(VIEWS / "launch.py", title="Launch", icon=":material/rocket_launch:"),
    st.Page(VIEWS / "runs.py", title="Runs", icon=":material/list:"),
    st.Page(VIEWS / "curves.py", title="Curves", icon=":material/monitoring:"),
    st.Page(VIEWS / "publish.py", title="Publish", icon=":material/cloud_upload:"),
])
st.sidebar.caption(f"runs folder: `{runs_root().resolve()}`")
navigation.run()
