"""Put `python -m core list --markdown` between the README's models markers."""

import re
import subprocess
import sys
from pathlib import Path

readme = Path(__file__).resolve().parents[1] / "README.md"
table = subprocess.run([sys.executable, "-m", "core", "list", "--markdown"], cwd=readme.parent,
                       capture_output=True, text=True, check=True).stdout.strip()
text = re.sub(r"(<!-- models:start -->\n).*?(\n<!-- models:end -->)",
              lambda m: m.group(1) + table + m.group(2), readme.read_text(), flags=re.S)
readme.write_text(text)
print(f"README.md: {table.count(chr(10)) - 1} rows")
