"""What every handler needs, passed explicitly as the handler's bound argument."""
from __future__ import annotations

from dataclasses import dataclass, field

from core.config import Settings
from integrations.dicom.announcer import Announcer
from integrations.dicom.audit import DicomAuditor
from integrations.dicom.index_writer import IndexWriter
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.store import DicomStore


@dataclass
class ListenerContext:
    settings: Settings
    store: DicomStore
    bridge: LoopBridge
    announcer: Announcer = field(init=False)
    index_writer: IndexWriter = field(init=False)
    auditor: DicomAuditor = field(init=False)

    def __post_init__(self) -> None:
        from core.db import get_engine
        from security.audit import AuditTrail

        self.announcer = Announcer(self.bridge)
        self.index_writer = IndexWriter(on_received=self.announcer.announce)
        s = self.settings
        trail = AuditTrail(get_engine, s.resolved_audit_spool_dir, s.audit_checkpoint_keys, s.audit_checkpoint_every)
        self.auditor = DicomAuditor(trail.record)
