"""RadLoop's shared vocabulary: enums, pydantic boundary models, tables and pure rules."""
