"""Typed search attribute keys (registered on the server; see core.temporal.SEARCH_ATTRIBUTES)."""
from __future__ import annotations

from temporalio.common import SearchAttributeKey

SA_ACCESSION = SearchAttributeKey.for_keyword("Accession")
SA_PATIENT = SearchAttributeKey.for_keyword("PatientId")
SA_STEP = SearchAttributeKey.for_keyword("LoopStep")
SA_PRIORITY = SearchAttributeKey.for_keyword("Priority")
SA_CRITICAL = SearchAttributeKey.for_bool("Critical")
