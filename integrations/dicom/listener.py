"""`python -m integrations.dicom.listener`: RadLoop's one DICOM AE with every SCP.

Serves Verification, Modality Worklist, MPPS, Storage, Storage Commitment and
Query/Retrieve (FIND/GET/MOVE) on settings.ae_title at
settings.dicom_host:settings.dicom_port. Tuning is explicit and measured
(shared/spec/perf-notes.md): TCP_NODELAY on every connection, Explicit VR Little
Endian offered first, 128 KB max PDU. With settings.dicom_listener_processes > 1
several processes share the port (SO_REUSEPORT) so parallel associations are not
bound by one interpreter's GIL.
"""
from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import sys
import tempfile
import threading
import time
from typing import Any

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000,
    JPEG2000Lossless,
    JPEGBaseline8Bit,
    JPEGExtended12Bit,
    JPEGLossless,
    JPEGLosslessSV1,
    JPEGLSLossless,
    JPEGLSNearLossless,
    RLELossless,
)
from pynetdicom import AE, _config, evt
from pynetdicom.events import Event
from pynetdicom.pdu_primitives import A_RELEASE
from pynetdicom.transport import AssociationServer, ThreadedAssociationServer

from core.config import Settings, get_settings
from integrations.dicom import archive, completeness, reindex, stored
from integrations.dicom.context import ListenerContext
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.services import SERVICES
from integrations.dicom.store import DicomStore

log = logging.getLogger("radloop.dicom")

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
COMPRESSED = [
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
    JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
]
DUL_POLL_SECONDS = 0.0002


def tune_connection(event: Event) -> None:
    """TCP_NODELAY: Nagle's algorithm costs 20x on DICOM's small PDU headers (perf-notes.md).

    The DUL reactor sleeps 1 ms whenever it found nothing to do; with 50 C-FIND
    responses in a row that sleep showed up as ~0.5 ms per item, so an
    association polls faster while it is open (associations are short).
    """
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    event.assoc.dul._run_loop_delay = DUL_POLL_SECONDS


def flush_on_release(event: Event, ctx: ListenerContext) -> None:
    """A peer asking to release has sent everything: commit its index rows before answering."""
    if isinstance(event.primitive, A_RELEASE) and event.primitive.result is None:
        ctx.index_writer.flush()


def build_ae(ctx: ListenerContext) -> tuple[AE, list[Any]]:
    """The AE with every supported context, and the event handlers to bind when serving."""
    # Storage spools each data set to a file instead of memory (bounded memory, no copy):
    # a process-wide pynetdicom switch, so it is set where the AE is built.
    _config.STORE_RECV_CHUNKED_DATASET = True
    stored.install()  # C-GET / C-MOVE stream stored files as they are
    ae = AE(ae_title=ctx.settings.ae_title)
    ae.maximum_pdu_size = ctx.settings.dicom_max_pdu
    ae.maximum_associations = 64
    ae.network_timeout = 60
    ae.dimse_timeout = 60
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, tune_connection), (evt.EVT_ACSE_RECV, flush_on_release, [ctx])]
    for service in SERVICES:
        for sop_class, storage_role in service.contexts():
            syntaxes = UNCOMPRESSED + COMPRESSED if service.compressed else UNCOMPRESSED
            if storage_role:
                ae.add_supported_context(sop_class, syntaxes, scu_role=True, scp_role=True)
            else:
                ae.add_supported_context(sop_class, syntaxes)
        handlers += service.handlers(ctx)
    return ae, handlers


class _SharedPortServer(AssociationServer):
    """A blocking server whose port other listener processes may share (SO_REUSEPORT)."""

    def server_bind(self) -> None:
        assert self.socket is not None
        self.socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        super().server_bind()


def make_context(settings: Settings, bridge: LoopBridge | None = None) -> ListenerContext:
    async def connect() -> Any:
        from core.temporal import connect as temporal_connect  # lazily: most listeners never need it

        return await temporal_connect(settings)

    return ListenerContext(
        settings=settings,
        store=DicomStore(settings.data_dir / "dicom"),
        bridge=bridge or LoopBridge(connect),
    )


def start_threaded(ctx: ListenerContext, port: int, host: str = "127.0.0.1") -> tuple[AE, ThreadedAssociationServer]:
    """Serve in background threads of this process (tests, embedding); stop with ae.shutdown()."""
    ae, handlers = build_ae(ctx)
    server = ae.start_server((host, port), block=False, evt_handlers=handlers)
    assert server is not None
    return ae, server


def _sweep_forever(ctx: ListenerContext) -> None:
    """Studies without MPPS count as received once stable (completeness.py); received ones are archived."""
    settings = ctx.settings
    while True:
        time.sleep(max(1.0, min(30.0, settings.dicom_study_stable_seconds / 4)))
        try:
            ctx.announcer.announce(completeness.sweep(settings.dicom_study_stable_seconds))
            archive.archive_received(settings, ctx.store.root)
        except Exception:
            log.exception("images-received / archive sweep failed")


def serve(settings: Settings, sweeper: bool = True) -> None:
    """Serve in this process until SIGTERM/SIGINT; one process per listener runs the sweeper."""
    ctx = make_context(settings)
    tempfile.tempdir = str(ctx.store.incoming)  # spool next to the store, so storing is a rename
    ae, handlers = build_ae(ctx)
    host = settings.dicom_host  # RADLOOP_DICOM_HOST
    server = ae.make_server((host, settings.dicom_port), evt_handlers=handlers, server_class=_SharedPortServer)

    def stop(*_: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if sweeper:
        threading.Thread(target=_sweep_forever, args=(ctx,), daemon=True,
                         name="dicom-images-received").start()
    log.info("DICOM AE %s listening on %s:%d (pid %d)", settings.ae_title, host, settings.dicom_port, os.getpid())
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ctx.index_writer.flush(timeout=15)  # what was stored is indexed before we go
        ctx.bridge.close()


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dicom %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its debug logging costs ~7%


def _child(_: int) -> None:
    _configure_logging()
    serve(get_settings(), sweeper=False)


def main() -> int:
    """Serve here; with dicom_listener_processes = n, n - 1 more processes share the port."""
    _configure_logging()
    settings = get_settings()
    store = DicomStore(settings.data_dir / "dicom")
    for stale in store.incoming.glob("*"):
        stale.unlink(missing_ok=True)  # spool files of associations that died mid-transfer
    try:
        reindex.reindex_missing(store)  # files stored just before a crash, not yet indexed
    except Exception:
        log.exception("re-indexing the store failed; serving anyway")
    extra = max(1, settings.dicom_listener_processes) - 1
    procs = [multiprocessing.get_context("spawn").Process(target=_child, args=(i,)) for i in range(extra)]
    for p in procs:
        p.start()
    try:
        serve(settings)
    finally:
        for p in procs:
            if p.pid and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
