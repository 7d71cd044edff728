"""Migration revisions, oldest first (``r0001_initial`` creates the first schema)."""
