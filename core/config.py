"""All settings in one place, read from `RADLOOP_*` environment variables.

Defaults are the embedded, single-machine center described in
`shared/spec/interfaces.md`; production overrides them through the environment.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent

# A development-only AES-256 key (base64). Production must set RADLOOP_CODEC_KEYS.
DEV_CODEC_KEY = "ZGV2LW9ubHktcmFkbG9vcC1jb2RlYy1rZXktMzJieXQ="
# A development-only audit checkpoint key (base64). Production must set RADLOOP_AUDIT_CHECKPOINT_KEYS.
DEV_AUDIT_CHECKPOINT_KEY = "ZGV2LW9ubHktcmFkbG9vcC1hdWRpdC1jaGVja3BvaW50"
# Development-only keys for identifier fields at rest (security/field_crypto.py). Production sets
# RADLOOP_FIELD_KEYS and RADLOOP_BLIND_INDEX_KEY.
DEV_FIELD_KEY = "ZGV2LW9ubHktcmFkbG9vcC1maWVsZC1rZXktMzJieXQ="
DEV_BLIND_INDEX_KEY = "ZGV2LW9ubHktcmFkbG9vcC1ibGluZC1pbmRleC1rZXk="
# A development-only report-signature seal key (base64). Production must set RADLOOP_SIGNATURE_KEYS.
DEV_SIGNATURE_KEY = "ZGV2LW9ubHktcmFkbG9vcC1zaWduYXR1cmUtc2VhbA=="


class DicomPeerTLS(BaseModel):
    """TLS for the associations RadLoop opens to one configured AE (C-MOVE destination, commitment requester).

    Listing an AE in `dicom_destination_tls` is the flag: it is then reached only over TLS 1.2+, and
    its certificate must chain to `ca` and name `server_hostname`.
    """

    ca: Path | None = Field(None, description="PEM CA bundle the peer's certificate must chain to; "
                            "unset: dicom_tls_ca, else the system trust store")
    cert: Path | None = Field(None, description="PEM client certificate we present to this peer; "
                              "unset: the listener's dicom_tls_cert/key when set, else none")
    key: Path | None = Field(None, description="PEM private key of cert")
    server_hostname: str | None = Field(None, description="The name the peer's certificate must carry; "
                                        "unset: the host of its address (an IP matches an IP SAN)")

    @model_validator(mode="after")
    def _cert_with_key(self) -> DicomPeerTLS:
        if (self.cert is None) != (self.key is None):
            raise ValueError("a peer TLS client certificate needs both cert and key")
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="RADLOOP_", extra="ignore")

    mode: str = Field("development", description="development | production")
    api_host: str = "127.0.0.1"
    api_port: int = 8000
    ae_title: str = "RADLOOP"
    dicom_port: int = 11112
    hl7_port: int = 2575
    temporal_address: str | None = Field(
        None, description="When set, connect there and start no embedded dev server."
    )
    temporal_namespace: str = "default"
    temporal_task_queue: str = "radloop-loops"
    dev_temporal_port: int = 7233
    dev_temporal_ui_port: int = 8233
    data_dir: Path = REPO_ROOT / "var"
    database_url: str | None = None
    codec_keys: str = Field(
        f"dev1:{DEV_CODEC_KEY}",
        description="Comma-separated key_id:base64(32-byte key); the first encrypts.",
    )
    # Critical values (R7.1.3): first deadline and each further escalation level.
    critical_ack_deadline_seconds: int = 600
    critical_escalation_seconds: int = 300
    notify_default_url: str | None = Field(
        None,
        description="Apprise URL used when a recipient has none; "
        "dev default is the API's own notification sink.",
    )
    correction_window_days: float = 30
    slot_minutes: int = 15
    day_start_hour: int = 8
    day_end_hour: int = 18
    booking_horizon_days: int = 14
    booking_reminder_hours: float = Field(
        18, description="The loop reminds the patient this many hours before arrival "
        "(18 = the evening before a morning exam); 0 turns reminders off (R5.3.3)")
    childbearing_ages: tuple[int, int] = Field(
        (15, 49), description="Women in this age range get the radiation notice at check-in (R6.1.4)")
    consent_signature_max_bytes: int = Field(
        256 * 1024, description="Largest handwritten signature PNG accepted at check-in (R6.1.4)")
    consent_signature_max_pixels: int = Field(
        4096 * 4096, description="Largest decoded signature image (width x height): no decompression bombs")
    queue_aging_minutes: float = Field(
        30, description="Waiting this long raises a patient one care tier (never into the emergency tier); 0: off")
    queue_minutes_per_patient: float = Field(
        12, description="Exam time per patient for ETAs until today's call log measures it")
    timezone: str = "Asia/Shanghai"
    daily_close_at: str = Field(
        "20:00", pattern=r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
        description="Local time (HH:MM, centre's timezone) the daily-close schedule starts the day's close (R6.3)")

    # ---- DICOM listener (integrations/dicom; R4.2.2, R4.2.3, R4.3.2, R6.3) ----
    dicom_host: str = Field("127.0.0.1", description="Address the DICOM listener binds")
    dicom_max_pdu: int = Field(131072, description="Max PDU we receive; 128 KB measured fastest")
    dicom_move_destinations: str = Field(
        "", description="C-MOVE destinations: comma-separated AE=host:port, e.g. VIEWER=10.0.0.5:104"
    )
    dicom_study_stable_seconds: int = Field(
        60, description="Without MPPS, a study no image arrived for this long counts as received"
    )
    dicom_listener_processes: int = Field(
        1, description="Listener processes sharing the listening socket for parallel associations"
    )
    dicom_handoff_seconds: float = Field(
        0.05, ge=0, le=5,
        description="How long a busier listener process leaves a waiting association to an idler sibling")
    dicom_archive_compression: str = Field(
        "none", description="Lossless archive copy of received studies: none | jpeg-ls | j2k"
    )
    dicom_allowed_calling_aes: str = Field(
        "", description="Calling AE titles allowed to associate, comma-separated; empty admits any "
        "(development). Others get A-ASSOCIATE-RJ 'calling AE title not recognized'"
    )
    dicom_tls_cert: Path | None = Field(None, description="PEM certificate: when set with the key, the listener speaks TLS")
    dicom_tls_key: Path | None = Field(None, description="PEM private key of dicom_tls_cert")
    dicom_tls_ca: Path | None = Field(
        None, description="PEM CA bundle: when set, peers must present a certificate it signed (mutual TLS)"
    )
    dicom_destination_tls: dict[str, DicomPeerTLS] = Field(
        default_factory=dict, description="AE title -> TLS of the associations RadLoop opens to that AE "
        "(C-MOVE sub-operations, Storage Commitment reports), as JSON, e.g. "
        '{"VIEWER": {"ca": "/etc/radloop/viewer-ca.pem"}}; an AE listed here is only reached over TLS')

    # ---- HL7 v2 with the HIS (integrations/hl7; R4.3.1): the listener, and where RadLoop sends ----
    hl7_max_frame_bytes: int = Field(2 * 1024 * 1024, description="Larger inbound frames are read and answered AR")
    hl7_frame_timeout_seconds: float = Field(30.0, description="A frame left open this long is dropped unprocessed")
    his_mllp_host: str | None = Field(
        None, description="Where the HIS listens for RadLoop's ORU, order status and application ACKs; "
        "unset: nothing is sent and each message is logged not_sent")
    his_mllp_port: int = Field(2576, description="The HIS's MLLP port")
    his_mllp_timeout_seconds: float = Field(
        10.0, description="Connect plus wait for the HIS's ACK; no answer in time is retried with backoff")
    his_mllp_application: str = Field("HIS", description="MSH-5 receiving application of outbound messages")
    his_mllp_facility: str = Field("", description="MSH-6 receiving facility of outbound messages")
    his_order_status_message: Literal["ORM^O01", "OMI^O23"] = Field(
        "ORM^O01", description="The HIS profile's message for order status (ORC-1 SC): ORM^O01 or OMI^O23")

    # ---- security (security/; R10.2.3 identity and sessions, R10.5 audit) ----
    password_min_length: int = Field(12, description="Minimum password length (3 of 4 character classes too)")
    password_max_age_days: int = Field(90, description="After this a password must be changed before login")
    password_history: int = Field(5, description="A new password may not repeat the last N")
    login_max_failures: int = Field(5, description="Failed logins within the window that lock the account")
    login_failure_window_seconds: int = 300
    login_lockout_seconds: int = 900
    session_idle_timeout_seconds: int = Field(1800, description="A session unused this long ends")
    session_max_age_seconds: int = Field(43200, description="A session ends this long after login, used or not")
    session_max_concurrent: int = Field(3, description="Sessions per person; privileged roles get one")
    totp_issuer: str = "RadLoop"
    audit_checkpoint_keys: str = Field(
        f"dev1:{DEV_AUDIT_CHECKPOINT_KEY}",
        description="Comma-separated key_id:base64(key) for HMAC-SM3 audit checkpoints; the first signs.",
    )
    audit_checkpoint_every: int = Field(100, description="Write a signed checkpoint every N audit records")
    audit_spool_dir: Path | None = Field(None, description="Where audit events wait while the database is down")
    audit_retention_days: int = Field(
        183, ge=180, description="Audit records stay in the database at least this long; `audit purge` refuses "
        "younger ones (R10.5: kept >= 6 months)")
    # ---- identifiers at rest, TLS (security/field_crypto.py, security/tls.py; R10.2.2, R10.3.3) ----
    field_keys: str = Field(
        f"dev1:{DEV_FIELD_KEY}",
        description="Comma-separated key_id:base64(32-byte key) sealing identifier numbers and phones; the first seals.",
    )
    blind_index_key: str = Field(
        DEV_BLIND_INDEX_KEY, description="base64 HMAC key of the identifier blind indexes (changing it needs a reindex)"
    )
    api_tls_cert: Path | None = Field(None, description="PEM certificate: when set with the key, the API serves HTTPS")
    api_tls_key: Path | None = Field(None, description="PEM private key of api_tls_cert")
    api_tls_ca: Path | None = Field(None, description="PEM CA bundle: when set, clients must present a certificate it signed")
    hl7_tls_cert: Path | None = Field(None, description="PEM certificate: when set with the key, MLLP runs over TLS")
    hl7_tls_key: Path | None = Field(None, description="PEM private key of hl7_tls_cert")
    hl7_tls_ca: Path | None = Field(None, description="PEM CA bundle: when set, HL7 peers must present a certificate it signed")
    # ---- electronic signatures and display (security/signatures.py, security/masking.py; R10.2.4, R10.3.4) ----
    signature_keys: str = Field(
        f"dev1:{DEV_SIGNATURE_KEY}",
        description="Comma-separated key_id:base64(key) sealing report signatures (HMAC-SM3); the first seals.",
    )
    signature_digest: str = Field("sm3", description="Digest of signed report content: sm3 | sha256")
    mask_full_name_roles: str = Field(
        "registrar,nurse,technologist,resident,radiologist,senior_radiologist,clinician",
        description="Roles that see patient names in full in API responses; every other role sees 张*丰",
    )
    mask_full_identifier_roles: str = Field(
        "registrar,nurse,clinician",
        description="Roles that see patient ID numbers and phones in full; every other role sees them masked",
    )

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.data_dir / 'radloop.db'}"

    @property
    def resolved_temporal_address(self) -> str:
        return self.temporal_address or f"127.0.0.1:{self.dev_temporal_port}"

    @property
    def resolved_notify_url(self) -> str:
        if self.notify_default_url:
            return self.notify_default_url
        return f"json://{self.api_host}:{self.api_port}/api/v1/dev/notifications"

    @property
    def move_destinations(self) -> dict[str, tuple[str, int]]:
        """`dicom_move_destinations` parsed: AE title -> (host, port)."""
        out: dict[str, tuple[str, int]] = {}
        for item in filter(None, (x.strip() for x in self.dicom_move_destinations.split(","))):
            ae, _, addr = item.partition("=")
            host, _, port = addr.rpartition(":")
            out[ae.strip()] = (host.strip(), int(port))
        return out

    @property
    def allowed_calling_aes(self) -> list[str]:
        """`dicom_allowed_calling_aes` parsed; empty means any calling AE is admitted."""
        return [ae.strip() for ae in self.dicom_allowed_calling_aes.split(",") if ae.strip()]

    @property
    def resolved_audit_spool_dir(self) -> Path:
        return self.audit_spool_dir or self.data_dir / "audit-spool"

    @property
    def is_production(self) -> bool:
        return self.mode == "production"


@lru_cache
def get_settings() -> Settings:
    return Settings()


def reset_settings_cache() -> None:
    """Tests change the environment and need a fresh Settings."""
    get_settings.cache_clear()
