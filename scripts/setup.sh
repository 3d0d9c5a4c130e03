#!/usr/bin/env bash
# Idempotent set-up of a fresh Debian machine (CI runs it as root before every `make` target).
# Installs only from Debian's packages and PyPI; a second run does nothing and is quick.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

# DCMTK (storescu & co. for DICOM tests), Chromium (browser tests) and a CJK font (so the
# browser draws the zh-CN pages' Chinese in screenshots) come from Debian.
cjk_font=/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc
if { ! command -v storescu >/dev/null 2>&1 || [ ! -x /usr/bin/chromium ] || [ ! -e "$cjk_font" ]; } \
    && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    say "installing dcmtk, chromium and fonts-wqy-zenhei from Debian packages"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq dcmtk chromium fonts-wqy-zenhei >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    py=$(command -v python3.11 || command -v python3)
    say "creating .venv with $py"
    "$py" -m venv .venv
fi

# Re-install only when requirements.txt changed since the last successful install.
stamp=.venv/.requirements.sha256
want=$(sha256sum requirements.txt | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
    say "installing requirements.txt into .venv"
    # -qq: only errors (this machine's pip config warns about absent local mirrors)
    .venv/bin/python -m pip install -qq --disable-pip-version-check -r requirements.txt
    echo "$want" >"$stamp"
fi
