"""Stage 2, base model: the catalog, resolving a hub id or local folder, and checks before anything downloads."""
