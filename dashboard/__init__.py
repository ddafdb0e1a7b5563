"""The Streamlit dashboard: read-only queries, plotly figures and the app over an automl store."""
