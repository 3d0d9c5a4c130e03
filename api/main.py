"""The RadLoop HTTP API: routers joined, errors mapped, Temporal connected lazily.

Run: `uvicorn api.main:app --host 127.0.0.1 --port 8000` (the launcher does this).
The app starts even when Temporal is down; the first request that needs a loop
connects, and /health reports what is missing meanwhile.
"""
from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI
from temporalio.client import Client

from api.audit import AuditMiddleware
from api.deps import TemporalConnector
from api.errors import TemporalUnavailable, install_error_handlers
from api.routes import (
    care_policies,
    consent_signatures,
    consents,
    exports,
    appointments,
    queues,
    audit,
    report_views,
    signatures,
    auth,
    break_glass,
    codec,
    critical_dictionary,
    critical_values,
    departments,
    empi,
    hl7,
    dicomweb,
    dev_notifications,
    health,
    loops,
    orders,
    reconciliation,
    tasks,
    ui_schemas,
    users,
)
from core.config import get_settings
from security.audit import AuditTrail
from security.clock import Clock, SystemClock
from web import router as web


async def _warm_up(connector: TemporalConnector) -> None:
    with contextlib.suppress(TemporalUnavailable):
        await connector.get()


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Try to connect in the background so start-up never waits on (or fails for) Temporal.

    In production, first refuse to start with development secrets or demo accounts.
    """
    await asyncio.to_thread(_refuse_insecure_production)
    warm = asyncio.create_task(_warm_up(app.state.temporal))
    try:
        yield
    finally:
        warm.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await warm


def _refuse_insecure_production() -> None:
    from core.db import session_scope
    from security.startup import check_production

    settings = get_settings()
    if settings.is_production:
        with session_scope() as session:
            check_production(settings, session)


def create_app(temporal_client: Client | None = None, clock: Clock | None = None) -> FastAPI:
    """Build the app; tests pass a client already connected to their own Temporal server,
    and a clock they control (session idle timeout, lockout)."""
    settings = get_settings()
    app = FastAPI(
        title="RadLoop",
        summary="Closed-loop workflows of a medical imaging center",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.temporal = TemporalConnector(temporal_client)
    app.state.clock = clock or SystemClock()
    app.state.audit_trail = AuditTrail.from_settings(app.state.clock)
    install_error_handlers(app)
    for module in (auth, audit, users, break_glass, health, orders, tasks, ui_schemas, loops, critical_values, critical_dictionary, departments, codec):
        app.include_router(module.router)
    app.include_router(appointments.router)
    app.include_router(queues.router)
    app.include_router(exports.router)  # bulk export approval (R10.3.4)
    app.include_router(consents.router)  # consent records (R10.3.2)
    app.include_router(consent_signatures.router)  # handwritten consent signatures at check-in (R6.1.4)
    app.include_router(care_policies.router)  # queue care policies as versioned data (R6.2.2)
    app.include_router(signatures.router)  # report signature verification (security.signatures)
    app.include_router(report_views.router)  # watermarked report pages and PDFs (security.watermark)
    app.include_router(dicomweb.router)  # DICOMweb over the DICOM store (integrations/dicom)
    app.include_router(reconciliation.router)  # unmatched images and MPPS (integrations/dicom)
    app.include_router(empi.router)  # the EMPI review queue (services.empi_reviews)
    app.include_router(hl7.router)  # HL7 message log and outbound backlog (integrations/hl7)
    web.mount(app)  # server-rendered pages under /web (web/)
    if not settings.is_production:
        app.include_router(dev_notifications.router)
    app.add_middleware(AuditMiddleware)
    app.add_middleware(codec.CodecCORS, origins=codec.temporal_ui_origins())
    return app


app = create_app()
