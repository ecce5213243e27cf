"""The QNN SoC table (sfmobile/qnn/socs.py) as JSON, for the Kotlin core's copy of it
(android_app/core/.../device/QnnSocs.kt) to be compared against, so the two cannot drift."""

import json
from dataclasses import asdict
from pathlib import Path

from sfmobile.qnn.socs import SOCS

GOLDEN_FORMAT = "sfmobile-qnn-socs/1"


def write_qnn_soc_table(out_dir: Path) -> dict:
    """Write out_dir/index.json: every row of SOCS, in the table's order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    table = {"format": GOLDEN_FORMAT, "source": "sfmobile/qnn/socs.py",
             "socs": [asdict(soc) for soc in SOCS.values()]}  # fmt: skip
    (out_dir / "index.json").write_text(json.dumps(table, indent=2) + "\n")
    return table
