"""``python -m duck_synth.surface [FILE]``: write sql/macros.sql (or FILE) from the declarations."""

import sys
from pathlib import Path

from . import BUILTIN, MACROS_FILE, macros_sql

target = Path(sys.argv[1]) if len(sys.argv) > 1 else MACROS_FILE
target.write_text(macros_sql(BUILTIN))
print(f"wrote {target}")
