"""Neural architecture search (Katib nasConfig, multi-trial NAS, one-shot DARTS): not built yet."""
