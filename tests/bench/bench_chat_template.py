"""Chat-template render time, kiln against Python's jinja2 (configured as transformers does,
compiled once, rendered many times): the Llama 3.1 template with 10 tools and 20 messages.
Usage: bench_chat_template.py KILN_BENCH_BINARY FIXTURES WORKDIR"""
import importlib.util
import json
import pathlib
import subprocess
import sys
import time
from datetime import datetime


def request():
    tools = []
    for i in range(10):
        tools.append({"type": "function", "function": {
            "name": f"tool_{i}", "description": f"Tool number {i}: does something useful with its inputs.",
            "parameters": {"type": "object", "properties": {
                "query": {"type": "string", "description": "What to look up"},
                "limit": {"type": "integer", "description": "How many results", "minimum": 1},
                "mode": {"type": "string", "enum": ["fast", "exact", "fuzzy"]},
                "filters": {"type": "object", "properties": {"lang": {"type": "string"}}}},
                "required": ["query"]}}})
    msgs = [{"role": "system", "content": "You are a helpful assistant with access to tools."}]
    for t in range(19):
        if t % 2 == 0:
            msgs.append({"role": "user", "content": f"Question {t}: please find facts about item {t} — résumé ✓"})
        elif t % 6 == 3:
            msgs.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": f"c{t}", "type": "function",
                "function": {"name": f"tool_{t % 10}", "arguments": {"query": f"item {t}", "limit": 3}}}]})
        else:
            msgs.append({"role": "assistant", "content": f"Here is what I found about item {t}."})
    return {"messages": msgs, "tools": tools, "add_generation_prompt": True,
            "bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "_now": "2025-01-15T10:30:00"}


def main():
    kiln_bin, fixtures, work = sys.argv[1], pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
    tpl_path = fixtures / "templates" / "llama-3.1-8b-instruct" / "template.jinja"
    req = request()
    # the ipython turn after each tool call
    msgs = []
    for m in req["messages"]:
        msgs.append(m)
        if m.get("tool_calls"):
            msgs.append({"role": "ipython", "content": "{\"result\": [1, 2, 3]}"})
    req["messages"] = msgs[:20]
    req_path = work / "llama31-10tools-20msgs.json"
    req_path.write_text(json.dumps(req, ensure_ascii=False))

    spec = importlib.util.spec_from_file_location("ref", fixtures / "templates" / "reference_render.py")
    ref = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(ref)
    tpl = ref.make_environment(datetime.fromisoformat(req["_now"])).from_string(
        tpl_path.read_text(encoding="utf-8"))
    _, messages, tools, documents, agp, kwargs = ref.split_input(req)

    def render():
        return tpl.render(messages=messages, tools=tools, documents=documents,
                          add_generation_prompt=agp, **kwargs)

    text = render()
    # three interleaved rounds; the best batch of each side counts (the machine is noisy)
    jinja_us = kiln_us = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        while time.perf_counter() - start < 1.0:
            a = time.perf_counter()
            for _ in range(20):
                render()
            jinja_us = min(jinja_us, (time.perf_counter() - a) / 20 * 1e6)
        out = subprocess.run([kiln_bin, str(tpl_path), str(req_path), "1"], capture_output=True,
                             check=True, text=True).stdout
        kiln_us = min(kiln_us, float(out.split("us_per_render=")[1].split()[0]))
    same = (pathlib.Path(str(req_path) + ".kiln.out").read_bytes() == text.encode())
    print("chat template render, Llama 3.1 (tools in the first user message), 10 tools, 20 messages,"
          f" {len(text.encode())} bytes of prompt")
    print(f"{'renderer':<10} {'us/request':>12} {'requests/s':>12}")
    print(f"{'kiln':<10} {kiln_us:12.1f} {1e6 / kiln_us:12.0f}")
    print(f"{'jinja2':<10} {jinja_us:12.1f} {1e6 / jinja_us:12.0f}")
    print(f"ratio {jinja_us / kiln_us:.1f}x (jinja2 time / kiln time); outputs identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
