import os
import pathlib
import sys

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]

# The helper modules (st_io, tiny_model, reference, harness) sit beside the tests.
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def fixtures():
    return pathlib.Path(os.environ.get("KILN_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def stories(fixtures):
    d = fixtures / "models" / "stories260K"
    assert (d / "config.json").exists(), f"{d} is missing: set KILN_FIXTURES"
    return d
