"""Identity, sessions, permissions and the tamper-evident audit trail (issue 6; R10.2.3, R10.5).

Modules: `passwords` (argon2id + policy), `totp` (second factor), `sessions`
(server-side sessions, lockout, idle timeout), `permissions` (what each role may
do), `audit` (SM3-chained records, spool on outage, verify), `audit_guard`
(append-only triggers), `startup` (production refusals), `field_crypto` (identifier
fields sealed, blind indexes), `tls` (API and MLLP TLS), `cli`.
"""
