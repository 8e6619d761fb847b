"""Chat templates against Python's jinja2 configured as transformers configures it
(../shared/fixtures/templates/reference_render.py):

* every recorded fixture case renders byte-identical through `kiln chat-template render`,
  and every expected-error case exits 1 with a message;
* every real template renders 200 generated conversations (conversations.py) exactly as
  jinja2 does, or both raise;
* small templates (snippets.py) probe Jinja2's semantics one corner at a time.
"""
import importlib.util
import json
import subprocess
import sys
import zlib
from datetime import datetime

import pytest

import conversations
import snippets

N_CONVERSATIONS = 200


def reference(fixtures):
    spec = importlib.util.spec_from_file_location("reference_render",
                                                  fixtures / "templates" / "reference_render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def template_dirs(fixtures):
    return sorted(p for p in (fixtures / "templates").iterdir() if (p / "template.jinja").exists())


def pytest_generate_tests(metafunc):
    import conftest  # noqa: F401  (fixtures path without the fixture machinery)
    import os
    import pathlib
    root = pathlib.Path(os.environ.get("KILN_FIXTURES",
                                       pathlib.Path(__file__).resolve().parents[3] / "shared" / "fixtures"))
    if "template_dir" in metafunc.fixturenames:
        dirs = template_dirs(root)
        metafunc.parametrize("template_dir", dirs, ids=[d.name for d in dirs])


def test_fixture_cases(kiln, template_dir):
    failures = []
    for case in sorted(template_dir.glob("*.json")):
        p = subprocess.run([kiln, "chat-template", "render", str(template_dir / "template.jinja"),
                            str(case)], capture_output=True, timeout=60)
        out = case.with_suffix(".out")
        if out.exists():
            if p.returncode != 0 or p.stdout != out.read_bytes():
                failures.append((case.name, p.returncode, p.stderr[:200]))
        elif p.returncode != 1 or not p.stderr.strip():
            failures.append((case.name, p.returncode, "expected an error"))
    assert not failures, failures


def kiln_batch(kiln, template_path, inputs):
    p = subprocess.run([kiln, "chat-template", "render", str(template_path), "-", "--batch"],
                       input=json.dumps(inputs).encode(), capture_output=True, timeout=600)
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return json.loads(p.stdout)


def jinja_render_all(ref, text, inputs):
    """Renders every input with one compiled template (all inputs share one _now)."""
    now = datetime.fromisoformat(inputs[0]["_now"]) if inputs and "_now" in inputs[0] else None
    try:
        tpl = ref.make_environment(now).from_string(text)
    except Exception as e:
        return [("error", f"{type(e).__name__}: {e}")] * len(inputs)
    out = []
    for data in inputs:
        _, messages, tools, documents, agp, kwargs = ref.split_input(data)
        try:
            out.append(("text", tpl.render(messages=messages, tools=tools, documents=documents,
                                           add_generation_prompt=agp, **kwargs)))
        except Exception as e:
            out.append(("error", f"{type(e).__name__}: {e}"))
    return out


def special_tokens(template_dir):
    """The special-token variables the fixture cases pass to this template."""
    case = json.loads((template_dir / "system_user.json").read_text())
    return {k: v for k, v in case.items()
            if k not in ("messages", "tools", "documents", "add_generation_prompt") and
            not k.startswith("_")}


def test_generated_conversations(kiln, fixtures, template_dir):
    ref = reference(fixtures)
    text = (template_dir / "template.jinja").read_text(encoding="utf-8")
    extra = special_tokens(template_dir)
    inputs = [dict(c, **extra) for c in
              conversations.generate(seed=zlib.crc32(template_dir.name.encode()), n=N_CONVERSATIONS)]
    want = jinja_render_all(ref, text, inputs)
    got = kiln_batch(kiln, template_dir / "template.jinja", inputs)
    assert len(got) == len(want)
    bad = []
    for i, (w, g) in enumerate(zip(want, got)):
        if w[0] == "error" and "error" in g:
            continue
        if w[0] != "text" or g.get("text") != w[1]:
            bad.append((i, w, g))
    assert not bad, f"{len(bad)}/{len(inputs)} differ; first: {bad[0]}"


@pytest.mark.parametrize("index", range(len(snippets.TESTS)))
def test_snippets(kiln, fixtures, tmp_path, index):
    ref = reference(fixtures)
    text, variables = snippets.TESTS[index]
    data = dict(variables)
    data.setdefault("messages", [])
    want = jinja_render_all(ref, text, [data])[0]
    path = tmp_path / "t.jinja"
    path.write_text(text, encoding="utf-8")
    got = kiln_batch(kiln, path, [data])[0]
    if want[0] == "error":
        assert "error" in got, f"jinja2 raised {want[1]!r}, kiln gave {got}"
    else:
        assert got == {"text": want[1]}, f"template {text!r}"
