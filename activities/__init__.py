"""Side effects of the loops: every DB write, booking and notification lives here.

Activities are idempotent: each row has a deterministic key chosen by the
workflow, so a retry after a crash updates instead of duplicating. Times that
matter to the loop (event times, due times) come from the workflow clock.
"""
