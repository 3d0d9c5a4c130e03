"""What each role may do (R10.2.3 least privilege, R7.1.5 access limited by role).

Every API route declares exactly one Permission (`api.deps.require`) or is
declared public; `tests/api/test_permission_matrix.py` walks every route and
every role against this map. The three administrative roles are separated: the
system administrator runs the platform, the security administrator manages
people and their rights, the auditor reads the audit trail; none holds another's
rights, and neither administrator reads clinical records through the API.
"""
from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.enums import Role


class Permission(StrEnum):
    # orders and loops
    order_place = "order_place"
    order_read = "order_read"
    loop_read = "loop_read"
    report_read = "report_read"
    report_signature_verify = "report_signature_verify"
    exam_event_record = "exam_event_record"
    loop_reschedule = "loop_reschedule"
    loop_cancel = "loop_cancel"
    correction_request = "correction_request"
    # human tasks
    task_read = "task_read"
    task_work = "task_work"
    form_schema_read = "form_schema_read"
    # critical values (R7.1.3, R8.7)
    critical_dictionary_read = "critical_dictionary_read"
    critical_dictionary_publish = "critical_dictionary_publish"
    critical_value_read = "critical_value_read"
    critical_value_raise = "critical_value_raise"
    critical_value_ack = "critical_value_ack"
    critical_outcome_record = "critical_outcome_record"
    quality_metrics_read = "quality_metrics_read"
    department_contacts_read = "department_contacts_read"
    department_contacts_manage = "department_contacts_manage"
    # images (DICOMweb, R4.3)
    image_read = "image_read"
    image_store = "image_store"
    attachment_add = "attachment_add"
    reconciliation_read = "reconciliation_read"
    reconciliation_resolve = "reconciliation_resolve"
    # queue calling (R6.2.2)
    queue_join = "queue_join"
    queue_call = "queue_call"
    queue_board_read = "queue_board_read"
    queue_manage = "queue_manage"
    care_policy_read = "care_policy_read"
    care_policy_publish = "care_policy_publish"
    # appointments (R5.3)
    appointment_book = "appointment_book"
    appointment_no_show = "appointment_no_show"
    schedule_rules_manage = "schedule_rules_manage"
    # privacy (R10.3.2 consent, R10.3.4 bulk export)
    consent_read = "consent_read"
    consent_record = "consent_record"
    export_request = "export_request"
    export_read = "export_read"
    export_approve = "export_approve"
    export_download = "export_download"
    # master patient index and the HL7 interface (R4.2.3, R5.1.2)
    empi_review_read = "empi_review_read"
    empi_review_resolve = "empi_review_resolve"
    hl7_log_read = "hl7_log_read"
    hl7_backlog_read = "hl7_backlog_read"
    # platform
    payload_decode = "payload_decode"
    session_self = "session_self"
    break_glass = "break_glass"
    user_manage = "user_manage"
    audit_read = "audit_read"
    system_config = "system_config"


R = Role
CLINICAL = frozenset({R.registrar, R.nurse, R.technologist, R.resident, R.radiologist, R.senior_radiologist, R.clinician})
READERS = frozenset({R.resident, R.radiologist, R.senior_radiologist})
OVERSIGHT = frozenset({R.qc_officer, R.manager, R.auditor})
HUMANS = frozenset(r for r in Role if r is not R.his_system)
ADMINS = frozenset({R.system_admin, R.security_admin, R.auditor})

ROLE_PERMISSIONS: dict[Permission, frozenset[Role]] = {
    Permission.order_place: frozenset({R.his_system, R.clinician, R.registrar}),
    Permission.order_read: CLINICAL | OVERSIGHT | {R.his_system},
    Permission.loop_read: CLINICAL | OVERSIGHT,
    Permission.report_read: READERS | {R.clinician} | OVERSIGHT,
    # Whoever may read a signed report may check that it is still what was signed (R10.2.4).
    Permission.report_signature_verify: READERS | {R.clinician} | OVERSIGHT,
    Permission.exam_event_record: frozenset({R.technologist}),
    Permission.loop_reschedule: frozenset({R.registrar, R.nurse}),
    Permission.loop_cancel: frozenset({R.registrar, R.nurse, R.clinician}),
    Permission.correction_request: frozenset({R.clinician, R.radiologist, R.senior_radiologist}),
    Permission.task_read: CLINICAL | OVERSIGHT,
    Permission.task_work: CLINICAL | {R.qc_officer},
    Permission.form_schema_read: HUMANS,
    Permission.critical_dictionary_read: CLINICAL | OVERSIGHT,
    Permission.critical_dictionary_publish: frozenset({R.qc_officer, R.manager}),
    Permission.critical_value_read: CLINICAL | OVERSIGHT,
    Permission.critical_value_raise: READERS | {R.technologist},
    Permission.critical_value_ack: frozenset({R.clinician}),
    Permission.critical_outcome_record: frozenset({R.radiologist, R.senior_radiologist, R.qc_officer}),
    Permission.quality_metrics_read: frozenset({R.qc_officer, R.manager}),
    # Who a department's critical-value ladder reaches (staff phones and channels, no patient data).
    Permission.department_contacts_read: CLINICAL | OVERSIGHT,
    Permission.department_contacts_manage: frozenset({R.qc_officer, R.manager}),
    # Reading Temporal payloads in clear is reading patient data: oversight only. The system
    # administrator operates Temporal on encrypted payloads.
    Permission.payload_decode: frozenset({R.manager, R.auditor}),
    Permission.image_read: READERS | {R.technologist, R.clinician, R.qc_officer},
    # Storing images is clinical work; bulk migration goes through a machine account, not an administrator.
    Permission.image_store: frozenset({R.technologist}),
    Permission.attachment_add: frozenset({R.registrar, R.technologist}),
    Permission.queue_join: frozenset({R.registrar, R.nurse}),
    Permission.queue_call: frozenset({R.technologist, R.nurse}),
    # Boards show masked names only (domain.queueing), for every display and terminal.
    Permission.queue_board_read: frozenset(Role),
    Permission.queue_manage: frozenset({R.manager, R.system_admin}),
    # Care policies (R6.2.2, the queue's priority rules): no patient data; published like the critical dictionary.
    Permission.care_policy_read: CLINICAL | OVERSIGHT,
    Permission.care_policy_publish: frozenset({R.qc_officer, R.manager}),
    # Appointments (R5.3): the roles that speak for a booking channel (api.routes.appointments.ROLE_CHANNELS).
    Permission.appointment_book: frozenset({R.registrar, R.nurse, R.clinician, R.his_system, R.manager}),
    Permission.appointment_no_show: frozenset({R.registrar, R.nurse, R.technologist}),
    Permission.schedule_rules_manage: frozenset({R.manager, R.system_admin}),
    Permission.session_self: frozenset(Role),
    # Images that matched no order (R4.2.3): linked by those who know the exam and the patient.
    Permission.reconciliation_read: frozenset({R.registrar, R.technologist, R.qc_officer, R.manager}),
    Permission.reconciliation_resolve: frozenset({R.registrar, R.technologist, R.qc_officer}),
    # Consent is recorded where the patient is met; everyone who reads the record may see it.
    Permission.consent_read: CLINICAL | OVERSIGHT,
    Permission.consent_record: frozenset({R.registrar, R.nurse, R.technologist, R.clinician}),
    # Bulk exports: requested by those with a clinical or quality purpose, approved by a manager
    # (never the requester: workflows/export_approval), downloaded by the requester only.
    Permission.export_request: READERS | {R.clinician, R.qc_officer, R.manager},
    Permission.export_read: READERS | {R.clinician, R.qc_officer, R.manager},
    Permission.export_approve: frozenset({R.manager}),
    Permission.export_download: READERS | {R.clinician, R.qc_officer, R.manager},
    # Only clinicians are limited to their own patients (security.need_to_know), so only they break the glass.
    Permission.break_glass: frozenset({R.clinician}),
    # "Possible same person" pairs: the registrar decides (link = merge, or keep separate); managers oversee.
    Permission.empi_review_read: frozenset({R.registrar, R.manager}),
    Permission.empi_review_resolve: frozenset({R.registrar}),
    # The message log holds whole messages (patient data): auditors and managers, not the platform admin.
    Permission.hl7_log_read: frozenset({R.auditor, R.manager}),
    # The outbound backlog is interface operations: control IDs, types, attempts, errors; no patient data.
    Permission.hl7_backlog_read: frozenset({R.system_admin, R.manager}),
    Permission.user_manage: frozenset({R.security_admin}),
    Permission.audit_read: frozenset({R.auditor}),
    Permission.system_config: frozenset({R.system_admin}),
}


def allows(role: str, permission: Permission) -> bool:
    try:
        return Role(role) in ROLE_PERMISSIONS[permission]
    except ValueError:  # a role name this build does not know holds nothing
        return False


def permissions_of(role: Role) -> frozenset[Permission]:
    return frozenset(p for p, roles in ROLE_PERMISSIONS.items() if role in roles)


@dataclass(frozen=True)
class AuditKind:
    """How a request under a permission is audited: DICOM PS3.15 A.5 EventID and action code."""

    event_type: str
    event_id: str  # code in DCM: 110110 Patient Record, 110112 Query, ...
    action: str  # C create, R read, U update, D delete, E execute


_READ = AuditKind("patient_read", "110110", "R")
_QUERY = AuditKind("patient_query", "110112", "E")
_CHANGE = AuditKind("patient_change", "110110", "U")
_CREATE = AuditKind("patient_create", "110110", "C")

# Permissions whose requests touch patient data; each such request leaves an audit record.
AUDITED: dict[Permission, AuditKind] = {
    Permission.order_place: _CREATE,
    Permission.order_read: _READ,
    Permission.loop_read: _READ,
    Permission.report_read: _READ,
    Permission.report_signature_verify: AuditKind("signature_verify", "110110", "E"),
    Permission.exam_event_record: _CHANGE,
    Permission.loop_reschedule: _CHANGE,
    Permission.loop_cancel: _CHANGE,
    Permission.correction_request: _CHANGE,
    Permission.task_read: _QUERY,
    Permission.task_work: _CHANGE,
    Permission.critical_value_read: _READ,
    Permission.critical_value_raise: _CREATE,
    Permission.critical_value_ack: _CHANGE,
    Permission.critical_outcome_record: _CHANGE,
    Permission.quality_metrics_read: _QUERY,
    Permission.image_read: AuditKind("dicom_instances_accessed", "110103", "R"),
    Permission.image_store: AuditKind("dicom_instances_transferred", "110104", "C"),
    Permission.attachment_add: AuditKind("dicom_instances_transferred", "110104", "C"),
    Permission.reconciliation_read: _QUERY,
    Permission.reconciliation_resolve: _CHANGE,
    Permission.queue_join: _CHANGE,
    Permission.queue_call: _CHANGE,
    Permission.queue_manage: AuditKind("config_change", "110100", "U"),
    Permission.care_policy_publish: AuditKind("config_change", "110100", "U"),
    Permission.appointment_book: _CHANGE,
    Permission.appointment_no_show: _CHANGE,
    Permission.schedule_rules_manage: AuditKind("config_change", "110100", "U"),
    Permission.payload_decode: AuditKind("payload_decode", "110110", "R"),
    Permission.consent_read: _READ,
    Permission.consent_record: _CHANGE,
    Permission.export_request: AuditKind("export_request", "110106", "C"),
    Permission.export_read: AuditKind("export_read", "110106", "R"),
    Permission.export_approve: AuditKind("export_approve", "110106", "U"),
    Permission.export_download: AuditKind("export", "110106", "R"),
    Permission.empi_review_read: _QUERY,
    Permission.empi_review_resolve: _CHANGE,
    Permission.hl7_log_read: _QUERY,
    Permission.user_manage: AuditKind("user_security_change", "110137", "U"),
    Permission.audit_read: AuditKind("audit_log_used", "110101", "R"),
    Permission.system_config: AuditKind("config_change", "110100", "U"),
    Permission.critical_dictionary_publish: AuditKind("config_change", "110100", "U"),
    Permission.department_contacts_manage: AuditKind("config_change", "110100", "U"),
}
