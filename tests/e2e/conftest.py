import pathlib
import sys

HERE = pathlib.Path(__file__).resolve().parent
# engine_client and wire_py sit beside the tests; the NumPy reference model is in tests/model.
for d in (HERE, HERE.parent / "model"):
    if str(d) not in sys.path:
        sys.path.insert(0, str(d))
