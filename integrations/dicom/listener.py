"""`python -m integrations.dicom.listener`: RadLoop's one DICOM AE with every SCP.

Serves Verification, Modality Worklist, MPPS, Storage, Storage Commitment and
Query/Retrieve (FIND/GET/MOVE) on settings.ae_title at
settings.dicom_host:settings.dicom_port. Tuning is explicit and measured
(shared/spec/perf-notes.md): TCP_NODELAY on every connection, Explicit VR Little
Endian offered first, 128 KB max PDU, Upper Layer and association threads that
wait for work instead of polling (reactor.py), PDUs read whole (sockets.py),
command sets and spool file meta packed directly (codec.py). With
settings.dicom_listener_processes > 1 several processes share one listening socket,
each association going to the least busy (shared_port.py), so parallel
associations are not bound by one interpreter's GIL. Who may associate is access.py
(calling-AE allow-list), TLS is tls.py, and what moved is audited by audit.py.
"""
from __future__ import annotations

import gc
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

from pydicom import config as pydicom_config
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
from pynetdicom.transport import ThreadedAssociationServer

from core.config import Settings, get_settings
from integrations.dicom import (
    access, archive, codec, completeness, reactor, reindex, shared_port, sockets, stored, tls,
)
from integrations.dicom.context import ListenerContext
from integrations.dicom.loop_bridge import LoopBridge
from integrations.dicom.services import SERVICES
from integrations.dicom.store import DicomStore
from security.startup import refuse_insecure_start

log = logging.getLogger("radloop.dicom")

UNCOMPRESSED = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
COMPRESSED = [
    JPEGBaseline8Bit, JPEGExtended12Bit, JPEGLossless, JPEGLosslessSV1,
    JPEGLSLossless, JPEGLSNearLossless, JPEG2000Lossless, JPEG2000, RLELossless,
]


def tune_connection(event: Event) -> None:
    """Per-connection tuning, each measured (perf-notes.md, docs/benchmarks.md).

    TCP_NODELAY: Nagle's algorithm costs 20x on DICOM's small PDU headers. The
    Upper Layer thread waits for work instead of polling every 0.2-1 ms
    (reactor.py), and PDUs are read whole, not in 4 KB slices (sockets.py).
    """
    reactor.use_wakeable_reactors(event.assoc)
    sockets.use_bulk_reads(event.assoc.dul.socket)
    sock = getattr(event.assoc.dul.socket, "socket", None)
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def flush_on_release(event: Event, ctx: ListenerContext) -> None:
    """A peer asking to release has sent everything: commit its index rows before answering."""
    if isinstance(event.primitive, A_RELEASE) and event.primitive.result is None:
        ctx.index_writer.flush()


def audit_close(event: Event, ctx: ListenerContext) -> None:
    """The connection closed (released, aborted or dropped): its transfers go to the audit trail."""
    ctx.auditor.closed(event.assoc)


def build_ae(ctx: ListenerContext) -> tuple[AE, list[Any]]:
    """The AE with every supported context, and the event handlers to bind when serving."""
    # Storage spools each data set to a file instead of memory (bounded memory, no copy):
    # a process-wide pynetdicom switch, so it is set where the AE is built.
    _config.STORE_RECV_CHUNKED_DATASET = True
    # pydicom's value validation (regexes on every UID and string it builds) only warns by default,
    # yet it ran for each DIMSE command set: C-GET measured ~20% faster without it. Received
    # objects are still checked for structure and identifying UIDs (instance_facts.py).
    pydicom_config.settings.reading_validation_mode = pydicom_config.IGNORE
    pydicom_config.settings.writing_validation_mode = pydicom_config.IGNORE
    # pynetdicom's "standard" event logging formats every PDU and DIMSE message, and C-FIND
    # pretty-prints each identifier, whatever the log level (the listener logs it at WARNING).
    _config.LOG_HANDLER_LEVEL = "none"
    _config.LOG_REQUEST_IDENTIFIERS = False
    _config.LOG_RESPONSE_IDENTIFIERS = False
    stored.install()  # C-GET / C-MOVE stream stored files as they are
    codec.install()  # command sets and spool file meta packed directly, same bytes as pydicom
    ae = AE(ae_title=ctx.settings.ae_title)
    ae.maximum_pdu_size = ctx.settings.dicom_max_pdu
    ae.maximum_associations = 64
    ae.network_timeout = 60
    ae.dimse_timeout = 60
    access.apply(ae, ctx.settings)
    handlers: list[Any] = [(evt.EVT_CONN_OPEN, tune_connection), (evt.EVT_ACSE_RECV, flush_on_release, [ctx]),
                           (evt.EVT_CONN_CLOSE, audit_close, [ctx]), *access.handlers(ctx.settings, ctx.auditor)]
    for service in SERVICES:
        for sop_class, storage_role in service.contexts():
            syntaxes = UNCOMPRESSED + COMPRESSED if service.compressed else UNCOMPRESSED
            if storage_role:
                ae.add_supported_context(sop_class, syntaxes, scu_role=True, scp_role=True)
            else:
                ae.add_supported_context(sop_class, syntaxes)
        handlers += service.handlers(ctx)
    return ae, handlers


class SharedContexts(list):  # type: ignore[type-arg]
    """The supported presentation contexts, shared by every association instead of deep-copied.

    pynetdicom deep-copies the server's ~2,000 contexts (150 storage SOP classes x 13
    transfer syntaxes) for each association it accepts, under the GIL, before the peer
    gets its A-ASSOCIATE-AC: the fixed cost of every MWL query, C-GET and C-ECHO
    (measured: an echoscu round trip 43 -> 26 ms median, MWL C-FIND p50 -17 ms).
    Negotiation only reads them (presentation.negotiate_as_acceptor builds new result
    contexts), so one list serves all.
    """

    def __deepcopy__(self, memo: dict[int, Any]) -> list[Any]:
        return list(self)


def _serve_with(ae: AE, ctx: ListenerContext, address: tuple[str, int], handlers: list[Any],
                server_class: type[tls.GuardedServer]) -> tls.GuardedServer:
    server = ae.make_server(address, evt_handlers=handlers, server_class=server_class,
                            ssl_context=tls.server_context(ctx.settings))
    server.contexts = SharedContexts(server.contexts)
    server.on_refused = lambda peer, reason: ctx.auditor.refused("", ctx.settings.ae_title, peer, reason)
    return server


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
    server = _serve_with(ae, ctx, (host, port), handlers, tls.ThreadedGuardedServer)
    threading.Thread(target=server.serve_forever, name=f"dicom-acceptor-{port}", daemon=True).start()
    ae._servers.append(server)  # so ae.shutdown() stops it, as for ae.start_server(block=False)
    return ae, server  # type: ignore[return-value]


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


def serve(settings: Settings, sweeper: bool = True,
          listening: shared_port.Listening | None = None) -> None:
    """Serve in this process until SIGTERM/SIGINT; one process per listener runs the sweeper.

    `listening`: the socket and association counts shared with sibling processes (shared_port.py).
    """
    ctx = make_context(settings)
    tempfile.tempdir = str(ctx.store.incoming)  # spool next to the store, so storing is a rename
    ae, handlers = build_ae(ctx)
    host = settings.dicom_host  # RADLOOP_DICOM_HOST
    server = _serve_with(ae, ctx, (host, settings.dicom_port), handlers, shared_port.server_for(listening, settings.dicom_handoff_seconds))

    def stop(*_: Any) -> None:
        # Once: a child gets SIGTERM from the launcher's process group and again from its parent,
        # and a second interrupt would cut short the flushes below.
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    if sweeper:
        threading.Thread(target=_sweep_forever, args=(ctx,), daemon=True,
                         name="dicom-images-received").start()
    log.info("DICOM AE %s listening on %s:%d (pid %d)", settings.ae_title, host, settings.dicom_port, os.getpid())
    # What exists now (modules, ORM and pydantic models, the AE) lives as long as the process. Frozen, it
    # is out of the collector's reach: pynetdicom's gc.collect() every 60 accepted associations (and the
    # interpreter's own full collections) took 100-230 ms under the GIL, stalling the queries in flight
    # (the MWL p99); now they scan only what was made since.
    gc.collect()
    gc.freeze()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        ctx.index_writer.flush(timeout=15)  # what was stored is indexed before we go
        ctx.auditor.flush(timeout=15)
        ctx.bridge.close()


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s dicom %(levelname)s %(message)s")
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)  # its debug logging costs ~7%


def _child(slot: int, sock: socket.socket, counts: Any) -> None:
    _configure_logging()
    serve(get_settings(), sweeper=False, listening=shared_port.Listening(sock, counts, slot))


def main() -> int:
    """Serve here; with dicom_listener_processes = n, n - 1 more processes share the listening socket."""
    _configure_logging()
    refuse_insecure_start("dicom listener")  # production: no demo users, no dev keys
    settings = get_settings()
    store = DicomStore(settings.data_dir / "dicom")
    for stale in store.incoming.glob("*"):
        stale.unlink(missing_ok=True)  # spool files of associations that died mid-transfer
    try:
        reindex.reindex_missing(store)  # files stored just before a crash, not yet indexed
    except Exception:
        log.exception("re-indexing the store failed; serving anyway")
    extra = max(1, settings.dicom_listener_processes) - 1
    spawn = multiprocessing.get_context("spawn")
    procs = []
    listening = None
    if extra:
        counts = spawn.Array("i", extra + 1)  # associations each process serves
        listening = shared_port.Listening.open(settings.dicom_host, settings.dicom_port, counts)
        procs = [spawn.Process(target=_child, args=(slot, listening.sock, listening.counts))
                 for slot in range(1, extra + 1)]
    for p in procs:
        p.start()
    try:
        serve(settings, listening=listening)
    finally:
        for p in procs:
            if p.pid and p.is_alive():
                os.kill(p.pid, signal.SIGTERM)
        for p in procs:
            p.join(timeout=15)
    return 0


if __name__ == "__main__":
    sys.exit(main())
