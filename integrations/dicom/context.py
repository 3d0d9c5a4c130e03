"""What every handler needs, passed explicitly as the handler's bound argument."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import Settings
from integrations.dicom.index_writer import IndexWriter
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.store import DicomStore


@dataclass
class ListenerContext:
    settings: Settings
    store: DicomStore
    bridge: LoopBridge
    index_writer: IndexWriter = field(default_factory=IndexWriter)
