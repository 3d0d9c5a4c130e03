"""Verification (C-ECHO): proves the listener is up and the AE title reachable."""
from __future__ import annotations

from pynetdicom.events import Event


def handle_echo(event: Event) -> int:
    """Always 0x0000 (Success): answering at all is the point."""
    return 0x0000
