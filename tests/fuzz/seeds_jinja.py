"""Seeds for the template fuzzers. compile: the real chat templates and the snippets of the
differential test. render: the fixture requests, each with a template-selector byte.
Usage: seeds_jinja.py compile|render FIXTURES OUT"""
import json
import pathlib
import sys

here = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(here.parent / "templates"))
import snippets  # noqa: E402

mode, fixtures, out = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
dirs = sorted(p for p in (fixtures / "templates").iterdir() if (p / "template.jinja").exists())
if mode == "compile":
    for i, d in enumerate(dirs):
        (out / f"seed-t{i}").write_bytes((d / "template.jinja").read_bytes())
    for i, (text, _) in enumerate(snippets.TESTS):
        (out / f"seed-s{i}").write_text(text, encoding="utf-8")
else:
    for i, d in enumerate(dirs):
        for j, case in enumerate(sorted(d.glob("*.json"))[:2]):
            sel = (i << 3) | (j & 7)
            (out / f"seed-{i}-{j}").write_bytes(bytes([sel % 256]) + case.read_bytes())
