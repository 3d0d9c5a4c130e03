"""One module per DIMSE service; each handler's docstring says which status it returns when."""
