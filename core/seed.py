"""Demo data for development: one campus, departments, rooms and one user per role.

The dev tokens are the documented development credentials until the security work replaces
them: user `<username>` authenticates with `Authorization: Bearer dev-<username>`. Seeding is
refused in production, where these well-known tokens would be a back door.
"""
from __future__ import annotations

import hashlib

from sqlmodel import Session

from core.config import get_settings
from domain.enums import Role
from core.reference_data import seed_reference_data
from domain.critical_tables import DepartmentContact
from domain.procedure_tables import Procedure
from domain.queue_tables import AreaRoomDistance, RoomTriageProfile, TriageArea
from domain.tables import Department, Room, User

CAMPUS = "Main campus"
DEV_TOKEN_PREFIX = "dev-"

DEPARTMENTS: list[tuple[str, str]] = [
    ("emergency", "急诊科"),
    ("respiratory", "呼吸内科"),
    ("cardiology", "心血管内科"),
    ("oncology", "肿瘤科"),
    ("radiology", "放射科"),
    ("medical_affairs", "医务处"),
]

# Who each department's critical-value ladder reaches beyond the ordering clinician
# (demo people; a real center maintains these rows). Notify URLs empty -> the default channel.
CONTACTS: list[tuple[str, str, str, str]] = [
    (dep, rung, name, phone)
    for dep, zh in [("emergency", "急诊科"), ("respiratory", "呼吸内科"), ("cardiology", "心血管内科"), ("oncology", "肿瘤科")]
    for rung, name, phone in [
        ("backup_clinician", f"{zh}二线医生", "8100"),
        ("department_head", f"{zh}主任", "8200"),
        ("duty_officer", "医务处总值班", "8000"),
    ]
] + [("radiology", "senior_radiologist", "放射科上级医师值班", "8300")]

# (room id = station AE title, name, space-separated modalities)
ROOMS: list[tuple[str, str, str]] = [
    ("CT1", "CT 一室 / CT room 1", "CT"),
    ("CT2", "CT 二室 / CT room 2", "CT"),
    ("MR1", "磁共振一室 / MR room 1", "MR"),
    ("DX1", "放射一室 / X-ray room 1", "DX CR"),
    ("US1", "超声一室 / Ultrasound room 1", "US"),
]

# Smart triage (R6.1.6): where the rooms are and what they take, the areas patients come from, and
# a few measured walking distances (the rest are estimated from building and floor).
# (room, building, floor, accepts bed, accepts wheelchair, designated isolation room)
ROOM_TRIAGE: list[tuple[str, str, int, bool, bool, bool]] = [
    ("CT1", "门诊楼 / Outpatient building", 1, False, True, False),  # narrow door: no beds
    ("CT2", "住院楼 / Inpatient building", 1, True, True, True),
    ("MR1", "住院楼 / Inpatient building", -1, True, True, False),
    ("DX1", "门诊楼 / Outpatient building", 1, True, True, False),
    ("US1", "门诊楼 / Outpatient building", 2, True, True, False),
]
# (area id, name, building, floor)
TRIAGE_AREAS: list[tuple[str, str, str, int]] = [
    ("opd-hall", "门诊大厅 / Outpatient hall", "门诊楼 / Outpatient building", 1),
    ("emergency", "急诊 / Emergency", "门诊楼 / Outpatient building", 1),
    ("ward-respiratory", "呼吸内科病房 / Respiratory ward", "住院楼 / Inpatient building", 5),
    ("ward-cardiology", "心内科病房 / Cardiology ward", "住院楼 / Inpatient building", 7),
]
TRIAGE_DISTANCES: list[tuple[str, str, float]] = [("emergency", "CT1", 30), ("emergency", "CT2", 160)]

# Short codes the development HIS scripts and API examples send, on top of the reference catalogue.
DEMO_PROCEDURE_ALIASES: list[tuple[str, str, str, str]] = [
    ("CT-CH", "CT chest (short code)", "CT", "CHEST"),
    ("CT1", "CT head (short code)", "CT", "HEAD"),
]

DISPLAY_NAMES: dict[Role, str] = {
    Role.registrar: "王登记 / Wang (registrar)",
    Role.nurse: "李护士 / Li (nurse)",
    Role.technologist: "张技师 / Zhang (technologist)",
    Role.resident: "刘住院医 / Liu (resident)",
    Role.radiologist: "陈医生 / Chen (radiologist)",
    Role.senior_radiologist: "赵主任 / Zhao (senior radiologist)",
    Role.clinician: "孙医生 / Sun (clinician, respiratory)",
    Role.qc_officer: "周质控 / Zhou (QC officer)",
    Role.manager: "吴科长 / Wu (manager)",
    Role.auditor: "郑审计 / Zheng (auditor)",
    Role.system_admin: "钱管理员 / Qian (system admin)",
    Role.security_admin: "冯安全 / Feng (security admin)",
    Role.his_system: "HIS 接口 / HIS interface",
}

DEPARTMENT_OF: dict[Role, str] = {Role.clinician: "respiratory"}


def dev_token(username: str) -> str:
    return f"{DEV_TOKEN_PREFIX}{username}"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def demo_users() -> list[User]:
    """One user per Role, id `u-<role>`, username `<role>`."""
    return [
        User(
            id=f"u-{role.value}",
            username=role.value,
            display_name=DISPLAY_NAMES.get(role, role.value),
            role=role.value,
            department_id=DEPARTMENT_OF.get(role),
            api_token_sha256=token_sha256(dev_token(role.value)),
            active=True,
        )
        for role in Role
    ]


def seed_demo(session: Session) -> None:
    """Insert or refresh the demo rows (merge by primary key); the caller commits."""
    if get_settings().is_production:
        raise RuntimeError("refusing to seed demo data (dev tokens) in production mode")
    rows: list = [Department(id=dep_id, name=name, oncall_notify_url=None) for dep_id, name in DEPARTMENTS]
    rows += [
        Room(id=room_id, name=name, campus=CAMPUS, modalities=modalities, station_ae_title=room_id)
        for room_id, name, modalities in ROOMS
    ]
    rows += [RoomTriageProfile(room_id=room, building=building, floor=floor, accepts_bed=bed, accepts_wheelchair=chair,
                               isolation_room=isolation, updated_by="seed")
             for room, building, floor, bed, chair, isolation in ROOM_TRIAGE]
    rows += [TriageArea(id=a, name=name, building=building, floor=floor) for a, name, building, floor in TRIAGE_AREAS]
    rows += [AreaRoomDistance(area_id=a, room_id=r, metres=m) for a, r, m in TRIAGE_DISTANCES]
    rows += demo_users()
    rows += [
        DepartmentContact(id=f"{dep}-{rung}", department_id=dep, rung=rung, name=name, phone=phone, notify_urls=[])
        for dep, rung, name, phone in CONTACTS
    ]
    rows += [Procedure(code=code, name=name, modality=modality, body_part=part)
             for code, name, modality, part in DEMO_PROCEDURE_ALIASES]
    for row in rows:
        session.merge(row)
    session.flush()
    seed_reference_data(session)


if __name__ == "__main__":
    from core.db import session_scope
    from core.migrate import upgrade_head

    if get_settings().is_production:
        raise SystemExit("refusing to seed demo data (dev tokens) in production mode")
    upgrade_head()
    with session_scope() as s:
        seed_demo(s)
    print(f"seeded demo data into {get_settings().resolved_database_url}")
