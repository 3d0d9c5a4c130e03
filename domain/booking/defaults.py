"""Version 1 of the booking rules: what a center starts from until it publishes its own.

The figures are common practice, written as data so a center can change them
(`POST /api/v1/appointments/rules`) without a release.
"""
from __future__ import annotations

from datetime import time

from domain.booking.rules import (
    BookingRules,
    Channel,
    ChannelRule,
    ConflictRule,
    ExamTypeRule,
    NoShowRule,
    PatientType,
    PatientTypeRule,
)

_EXAMS = [
    ExamTypeRule(code="*CT", modality="CT"),
    ExamTypeRule(code="*MR", modality="MR", device_units=2, staff_units=2),
    ExamTypeRule(code="*US", modality="US"),
    ExamTypeRule(code="*DX", modality="DX"),
    ExamTypeRule(code="*CR", modality="CR"),
    ExamTypeRule(code="CT-CHEST", modality="CT", tags=frozenset({"region:chest"})),
    ExamTypeRule(code="CT-ABD", modality="CT", tags=frozenset({"region:abdomen"})),
    ExamTypeRule(code="CT-ABD-C", modality="CT", tags=frozenset({"region:abdomen"}), contrast="iodinated",
                 fasting=True, prep_minutes=30, latest_local_start=time(16, 0), staff_units=2),
    ExamTypeRule(code="CT-HEAD-C", modality="CT", tags=frozenset({"region:head"}), contrast="iodinated",
                 prep_minutes=20, staff_units=2),
    ExamTypeRule(code="MR-HEAD", modality="MR", tags=frozenset({"region:head"}), device_units=2, staff_units=2),
    ExamTypeRule(code="MR-ABD-C", modality="MR", tags=frozenset({"region:abdomen"}), contrast="gadolinium",
                 fasting=True, prep_minutes=20, device_units=2, staff_units=2),
    ExamTypeRule(code="US-ABD", modality="US", tags=frozenset({"region:abdomen"}), fasting=True,
                 latest_local_start=time(11, 30)),
    ExamTypeRule(code="US-PELVIS", modality="US", tags=frozenset({"region:pelvis"}), prep_minutes=45),
    ExamTypeRule(code="RF-BARIUM", modality="RF", tags=frozenset({"region:abdomen"}), contrast="barium",
                 fasting=True, latest_local_start=time(12, 0)),
]

CONFLICTS = (
    ConflictRule(id="barium-after-abdominal-ct", kind="order",
                 first=frozenset({"modality:CT", "region:abdomen"}), then=frozenset({"contrast:barium"}),
                 message="barium would obscure an abdominal CT on the same day: CT first"),
    ConflictRule(id="barium-after-abdominal-us", kind="order",
                 first=frozenset({"modality:US", "region:abdomen"}), then=frozenset({"contrast:barium"}),
                 message="barium would obscure an abdominal ultrasound on the same day: ultrasound first"),
    ConflictRule(id="fasting-first", kind="order", first=frozenset({"fasting"}), then=frozenset({"non_fasting"}),
                 message="fasting exams come first on a day, so the patient can eat afterwards"),
    ConflictRule(id="iodinated-gadolinium-gap", kind="gap", gap_minutes=240,
                 first=frozenset({"contrast:iodinated"}), then=frozenset({"contrast:gadolinium"}),
                 message="iodinated and gadolinium contrast need 4 hours between them"),
    ConflictRule(id="iodinated-twice-gap", kind="gap", gap_minutes=24 * 60,
                 first=frozenset({"contrast:iodinated"}), then=frozenset({"contrast:iodinated"}),
                 message="two iodinated-contrast exams need 24 hours between them"),
)

DEFAULT_RULES = BookingRules(
    version=1,
    exam_types={e.code: e for e in _EXAMS},
    patient_types={
        PatientType.outpatient: PatientTypeRule(patient_type=PatientType.outpatient, window_days=14, lead_minutes=30),
        PatientType.inpatient: PatientTypeRule(
            patient_type=PatientType.inpatient, window_days=7,
            channels=frozenset({Channel.centre, Channel.triage_desk, Channel.doctor_station, Channel.nurse_station,
                                Channel.system})),
        PatientType.emergency: PatientTypeRule(
            patient_type=PatientType.emergency, window_days=1, uses_reserve=True,
            channels=frozenset({Channel.triage_desk, Channel.doctor_station, Channel.nurse_station, Channel.system})),
        PatientType.physical_exam: PatientTypeRule(patient_type=PatientType.physical_exam, window_days=30,
                                                   lead_minutes=24 * 60),
    },
    channels={
        Channel.online: ChannelRule(channel=Channel.online, open_from=time(7, 0), open_to=time(22, 0),
                                    change_cutoff_minutes=24 * 60),
        Channel.kiosk: ChannelRule(channel=Channel.kiosk, open_from=time(7, 0), open_to=time(20, 0),
                                   change_cutoff_minutes=60),
    },
    conflicts=CONFLICTS,
    no_show=NoShowRule(threshold=3, lookback_days=90, block_days=30),
    campus_routes={"Main campus": "Outpatient building, ground floor: follow the blue line to Radiology"},
)
