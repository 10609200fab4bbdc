"""The CIPO logic in cipo.core must import no TRL (it is unit-tested and reusable on its own)."""

import subprocess
import sys


def test_core_imports_no_trl() -> None:
    code = (
        "import sys\n"
        "import cipo.core.anchors, cipo.core.prompts, cipo.core.shaping, cipo.core.advantages, cipo.core.replay\n"
        "assert not any(m == 'trl' or m.startswith('trl.') for m in sys.modules), 'trl imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
