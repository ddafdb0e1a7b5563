"""Stages around the loop (notebooks, serving, pipelines): not built yet."""
