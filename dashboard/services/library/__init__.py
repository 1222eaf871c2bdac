"""The model library: every model file known by its hash, its metadata, usage and updates."""
