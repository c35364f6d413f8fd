"""The scene catalogue: identifiers, ingest (folder, demo generator), search."""
