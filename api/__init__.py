"""RadLoop's HTTP edge: FastAPI routes over the shared services and Temporal loops."""
