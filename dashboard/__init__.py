"""The Streamlit dashboard: not built yet; it will read the store and act through automl.Client."""
