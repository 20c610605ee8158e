"""Make plugins/module_utils importable as top-level packages (`import pbx_common...`)."""

import sys
from pathlib import Path

MODULE_UTILS = Path(__file__).resolve().parents[3] / "plugins" / "module_utils"
if str(MODULE_UTILS) not in sys.path:
    sys.path.insert(0, str(MODULE_UTILS))
