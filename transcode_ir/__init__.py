"""transcode_ir: the core tensor IR of TransCODE (placeholder, filled below)."""
