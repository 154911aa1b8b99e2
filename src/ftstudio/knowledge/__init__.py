"""Stage 1, knowledge: documents → structured chunks in a per-project SQLite store with full-text search."""
