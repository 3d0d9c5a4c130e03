"""Every table module, imported once so SQLModel.metadata holds the whole schema.

Alembic and the schema-drift test import this module; a new table module is
added here and nowhere else.
"""
from __future__ import annotations

import domain.booking_tables  # noqa: F401
import domain.care_policy_tables  # noqa: F401
import domain.consent_tables  # noqa: F401
import domain.critical_tables  # noqa: F401
import domain.empi_tables  # noqa: F401
import domain.export_tables  # noqa: F401
import domain.hl7_tables  # noqa: F401
import domain.imaging_tables  # noqa: F401
import domain.procedure_tables  # noqa: F401
import domain.queue_tables  # noqa: F401
import domain.security_tables  # noqa: F401
import domain.signature_tables  # noqa: F401
import domain.tables  # noqa: F401
