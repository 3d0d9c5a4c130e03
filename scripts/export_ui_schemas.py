"""Write ui_schemas/<task_type>.json from the pydantic forms (tests check they match)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from domain.task_forms import TASK_SPECS, json_schema_for  # noqa: E402

OUT = Path(__file__).resolve().parent.parent / "ui_schemas"


def render(task_type) -> str:
    return json.dumps(json_schema_for(task_type), indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def main() -> None:
    for t in TASK_SPECS:
        (OUT / f"{t.value}.json").write_text(render(t), encoding="utf-8")


if __name__ == "__main__":
    main()
