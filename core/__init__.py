"""Cross-cutting plumbing: settings, database, Temporal client, payload codec."""
