"""What RadLoop reads from an MPPS (R6.3): which order, what was done where and when, series and contrast."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from pydantic import BaseModel, Field
from pydicom.dataset import Dataset

from core.config import get_settings

VALID_STATUSES = ("IN PROGRESS", "COMPLETED", "DISCONTINUED")


class PerformedSeries(BaseModel):
    series_instance_uid: str
    sop_instance_uids: list[str] = Field(default_factory=list)


class MppsFacts(BaseModel):
    status: str
    accession_number: str = ""
    scheduled_step_id: str = ""
    study_instance_uid: str = ""
    description: str | None = None
    performed_series: list[PerformedSeries] = Field(default_factory=list)
    contrast_agent: str | None = None
    contrast_volume_ml: float | None = None
    discontinuation_reason: str | None = None
    station_ae: str | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None


def _s(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


def _contrast(ds: Dataset) -> tuple[str | None, float | None]:
    """Top-level Contrast/Bolus Agent and Volume, else the Billing Supplies and Devices items."""
    agent = _s(ds, "ContrastBolusAgent") or None
    volume = float(ds.ContrastBolusVolume) if ds.get("ContrastBolusVolume") not in (None, "") else None
    for supply in ds.get("BillingSuppliesAndDevicesSequence") or []:
        for item in supply.get("BillingItemSequence") or []:
            agent = agent or _s(item, "CodeMeaning") or None
        for q in supply.get("QuantitySequence") or []:
            units = [_s(u, "CodeValue").lower() for u in q.get("MeasuringUnitsSequence") or []]
            if volume is None and q.get("Quantity") not in (None, "") and (not units or units[0] in ("ml", "cm3")):
                volume = float(q.Quantity)
    return agent, volume


def _zone(ds: Dataset) -> tzinfo:
    """Timezone Offset From UTC when the modality sent it, else the center's zone (DICOM times are local)."""
    offset = _s(ds, "TimezoneOffsetFromUTC")
    if len(offset) == 5 and offset[0] in "+-" and offset[1:].isdigit():
        minutes = int(offset[1:3]) * 60 + int(offset[3:])
        return timezone(timedelta(minutes=-minutes if offset[0] == "-" else minutes))
    return ZoneInfo(get_settings().timezone)


def _when(ds: Dataset, date_kw: str, time_kw: str) -> datetime | None:
    """DA + TM as an aware datetime; None when the date is absent; ValueError when unreadable."""
    day, clock = _s(ds, date_kw), _s(ds, time_kw).replace(":", "")
    if not day:
        return None
    whole, _, fraction = (clock or "000000").partition(".")
    whole = whole.ljust(6, "0")
    naive = datetime.strptime(day + whole, "%Y%m%d%H%M%S")
    naive = naive.replace(microsecond=int(fraction.ljust(6, "0")[:6]) if fraction else 0)
    return naive.replace(tzinfo=_zone(ds))


def read_facts(ds: Dataset) -> MppsFacts:
    """Raises ValueError on attribute values pydicom cannot convert (answered as 0x0106)."""
    sched: Any = (ds.get("ScheduledStepAttributesSequence") or [Dataset()])[0]
    series = [
        PerformedSeries(
            series_instance_uid=_s(item, "SeriesInstanceUID"),
            sop_instance_uids=[_s(ref, "ReferencedSOPInstanceUID") for ref in item.get("ReferencedImageSequence") or []],
        )
        for item in ds.get("PerformedSeriesSequence") or []
    ]
    reason = None
    for code in ds.get("PerformedProcedureStepDiscontinuationReasonCodeSequence") or []:
        reason = _s(code, "CodeMeaning") or _s(code, "CodeValue") or None
    agent, volume = _contrast(ds)
    protocol = [(_s(c, "CodeMeaning")) for c in ds.get("PerformedProtocolCodeSequence") or []]
    return MppsFacts(
        status=_s(ds, "PerformedProcedureStepStatus").upper(),
        accession_number=_s(sched, "AccessionNumber"),
        scheduled_step_id=_s(sched, "ScheduledProcedureStepID"),
        study_instance_uid=_s(sched, "StudyInstanceUID"),
        description=_s(ds, "PerformedProcedureStepDescription") or (protocol[0] if protocol else None) or None,
        performed_series=series,
        contrast_agent=agent,
        contrast_volume_ml=volume,
        discontinuation_reason=reason,
        station_ae=_s(ds, "PerformedStationAETitle") or None,
        started_at=_when(ds, "PerformedProcedureStepStartDate", "PerformedProcedureStepStartTime"),
        ended_at=_when(ds, "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime"),
    )
