import sys
from pathlib import Path

# Test helpers such as tfjs_reference.py live beside the tests and are imported by module name,
# which must work under every pytest import mode, not only the default "prepend".
TESTS_DIR = str(Path(__file__).resolve().parent)
if TESTS_DIR not in sys.path:
    sys.path.insert(0, TESTS_DIR)
