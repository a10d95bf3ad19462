"""The content-addressed store: objects and provenance records."""
