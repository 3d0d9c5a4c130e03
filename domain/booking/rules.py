"""The booking rule set, stored as immutable numbered versions (R5.3.4).

A booking records the version it was checked against, so a rule change never
silently re-judges bookings already made. Exams are matched by *tags*: each exam
type carries its own tags plus derived ones (`modality:CT`, `fasting`,
`contrast`, `contrast:iodinated`), and a conflict rule names the tag sets it is
about, so a center adds a rule without code.
"""
from __future__ import annotations

from datetime import time
from functools import cached_property
from enum import StrEnum
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

# A wall-clock time of the center's timezone, "HH:MM[:SS]". Documented as a pattern: JSON
# Schema's `format: time` is RFC 3339 full-time, which needs an offset these values do not have.
LocalTime = Annotated[time, WithJsonSchema({
    "type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d(:[0-5]\d(\.\d+)?)?$",
    "description": "local time of the center, HH:MM[:SS]"})]


class PatientType(StrEnum):
    outpatient = "outpatient"
    inpatient = "inpatient"
    emergency = "emergency"
    physical_exam = "physical_exam"


class Channel(StrEnum):
    """Where a booking action comes from (R5.3.2); every change records it."""

    centre = "centre"
    online = "online"
    kiosk = "kiosk"
    triage_desk = "triage_desk"
    doctor_station = "doctor_station"
    nurse_station = "nurse_station"
    system = "system"  # the exam loop itself


ContrastKind = Literal["iodinated", "gadolinium", "barium"]
MrScreening = Literal["not_done", "cleared", "contraindicated"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ExamTypeRule(_Frozen):
    """What an exam type needs: preparation, notice, capacity units, safety checks."""

    code: str = Field(description="Procedure code (or `*<modality>` for the modality's default)")
    modality: str
    tags: frozenset[str] = frozenset()
    fasting: bool = False
    contrast: ContrastKind | None = None
    needs_egfr: bool | None = Field(None, description="Default: iodinated or gadolinium contrast")
    mr_screening: bool | None = Field(None, description="Default: every MR exam")
    prep_minutes: int = Field(0, ge=0, description="On-site preparation before the exam (arrive this early)")
    lead_minutes: int = Field(0, ge=0, description="Least notice between booking and exam (e.g. bowel prep)")
    latest_local_start: LocalTime | None = Field(None, description="E.g. fasting exams only in the morning")
    device_units: int = Field(1, ge=1)
    staff_units: int = Field(1, ge=1)
    patient_types: frozenset[PatientType] | None = Field(None, description="None: every patient type")

    @property
    def requires_egfr(self) -> bool:
        return self.needs_egfr if self.needs_egfr is not None else self.contrast in ("iodinated", "gadolinium")

    @property
    def requires_mr_screening(self) -> bool:
        return self.mr_screening if self.mr_screening is not None else self.modality == "MR"

    @cached_property
    def all_tags(self) -> frozenset[str]:
        derived = {f"modality:{self.modality}", f"exam:{self.code}", "fasting" if self.fasting else "non_fasting"}
        if self.contrast:
            derived |= {"contrast", f"contrast:{self.contrast}"}
        return self.tags | derived


class PatientTypeRule(_Frozen):
    patient_type: PatientType
    window_days: int = Field(14, ge=0, description="How far ahead this type may book")
    lead_minutes: int = Field(0, ge=0)
    uses_reserve: bool = Field(False, description="May take capacity held back in each segment (emergency)")
    channels: frozenset[Channel] = frozenset(Channel)


class ChannelRule(_Frozen):
    """When a channel accepts booking actions (local time) and how late it may change one."""

    channel: Channel
    open_from: LocalTime = time(0, 0)
    open_to: LocalTime = time(23, 59, 59)
    change_cutoff_minutes: int = Field(0, ge=0, description="No change/cancel closer than this to the exam")


class ConflictRule(_Frozen):
    """A medical conflict between two of one patient's exams (R5.3.4, R6.1.7).

    - `order`: on the same local day an exam matching `first` must end at least
      `gap_minutes` before an exam matching `then` starts (e.g. abdominal CT before
      barium; fasting exams first).
    - `gap`: exams matching `first` and `then`, in either order and on any day, at
      least `gap_minutes` apart (e.g. contrast CT and contrast MR).
    """

    id: str
    kind: Literal["order", "gap"]
    first: frozenset[str]
    then: frozenset[str]
    gap_minutes: int = Field(0, ge=0)
    message: str

    def matches_first(self, tags: frozenset[str]) -> bool:
        return self.first <= tags

    def matches_then(self, tags: frozenset[str]) -> bool:
        return self.then <= tags


class NoShowRule(_Frozen):
    """M no-shows within the lookback block the listed channels for N days (R5.3.4)."""

    threshold: int = Field(3, ge=1)
    lookback_days: int = Field(90, ge=1)
    block_days: int = Field(30, ge=0)
    blocked_channels: frozenset[Channel] = frozenset({Channel.online})


class BookingRules(_Frozen):
    version: int = Field(ge=1)
    timezone: str = "Asia/Shanghai"
    max_exams_per_patient_day: int = Field(6, ge=1)
    campus_travel_minutes: int = Field(30, ge=0, description="Extra time between exams on different campuses")
    egfr_min: float = Field(30.0, description="mL/min/1.73m2; below it contrast is not booked")
    egfr_max_age_days: int = Field(90, ge=1)
    exam_types: dict[str, ExamTypeRule] = Field(default_factory=dict)
    patient_types: dict[PatientType, PatientTypeRule] = Field(default_factory=dict)
    channels: dict[Channel, ChannelRule] = Field(default_factory=dict)
    conflicts: tuple[ConflictRule, ...] = ()
    no_show: NoShowRule = NoShowRule()
    campus_routes: dict[str, str] = Field(default_factory=dict, description="Campus -> how to find Radiology")

    @model_validator(mode="after")
    def _keys_match(self) -> "BookingRules":
        for code, rule in self.exam_types.items():
            if code != rule.code:
                raise ValueError(f"exam type key {code!r} differs from its code {rule.code!r}")
        return self

    def exam_rule(self, procedure_code: str, modality: str) -> ExamTypeRule:
        """The procedure's own rule, else its modality's default, else a plain one-unit exam."""
        return (self.exam_types.get(procedure_code) or self.exam_types.get(f"*{modality}")
                or ExamTypeRule(code=procedure_code, modality=modality))

    def patient_rule(self, patient_type: PatientType) -> PatientTypeRule:
        return self.patient_types.get(patient_type) or PatientTypeRule(patient_type=patient_type)

    def channel_rule(self, channel: Channel) -> ChannelRule:
        return self.channels.get(channel) or ChannelRule(channel=channel)
