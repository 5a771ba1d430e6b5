"""The srcore training dashboard (Streamlit): `streamlit run dashboard/streamlit_app.py`."""
