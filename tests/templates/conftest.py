import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def fixtures():
    return pathlib.Path(os.environ.get("KILN_FIXTURES", ROOT.parent / "shared" / "fixtures"))


@pytest.fixture(scope="session")
def kiln():
    build = os.environ.get("KILN_BUILD", "build")
    exe = ROOT / build / "kiln"
    assert exe.exists(), f"{exe} is missing: run make first"
    return str(exe)
