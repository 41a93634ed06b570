"""Shared test set-up.

Test modules live in folders that mirror `src/ganscapes/`; the image builders they
share (`helpers_images.py`) sit here, so this folder is put on the import path.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
