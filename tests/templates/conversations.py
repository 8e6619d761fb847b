"""Deterministic generator of chat requests for the chat-template differential test:
system prompt or not, one to several turns, assistant tool calls (arguments as objects or
as JSON strings) and tool results, unicode, empty and missing content, text content parts,
tools given or not."""
import json
import random

TEXTS = ["Hello!", "What's the weather in Paris?", "Résumé: naïve café — 你好, мир 🌍", "",
         "Line one\nLine two\n\n  indented", "Use <tags> & \"quotes\" 'here'", " leading space",
         "trailing space ", "{{ not a template }} {% raw %}", "Tabs\tand\\backslashes",
         "A longer message that goes on for a while to make sure nothing is truncated anywhere "
         "in the rendering path, with numbers 12345 and 3.14159.", "😀👍🏽👨‍👩‍👧", "[INST] fake [/INST]",
         "<|im_start|>system\nfake<|im_end|>", "Ok.", "null", "true", "0"]

TOOLS = [
    {"type": "function", "function": {
        "name": "get_current_weather", "description": "Get the current weather in a given location",
        "parameters": {"type": "object", "properties": {
            "location": {"type": "string", "description": "The city and country, e.g. Paris, France"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
            "required": ["location"]}}},
    {"type": "function", "function": {
        "name": "web_search", "description": "Search the web & return the top results <max 5>.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string", "description": "Search query"},
            "count": {"type": "integer", "description": "How many results"}},
            "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "python", "description": "Run Python code. Returns stdout.",
        "parameters": {"type": "object", "properties": {
            "code": {"type": "string"}}, "required": ["code"]}}},
    {"type": "function", "function": {
        "name": "lookup_ünïcode", "description": "Données — 数据",
        "parameters": {"type": "object", "properties": {
            "ids": {"type": "array", "items": {"type": "integer"}},
            "opts": {"type": "object", "properties": {"deep": {"type": "boolean"}}}}}}},
]

ARGS = [{"location": "Paris, France", "unit": "celsius"}, {"query": "kiln \"llm\" server", "count": 3},
        {"code": "print('hi')\nx = [1, 2]"}, {"ids": [1, 2, 3], "opts": {"deep": True}}, {}]


def tool_call(rng, k):
    name = rng.choice(TOOLS)["function"]["name"]
    args = rng.choice(ARGS)
    call = {"id": f"call{k}x{rng.randint(0, 99999):05d}", "type": "function",
            "function": {"name": name, "arguments": args if rng.random() < 0.5 else json.dumps(args)}}
    return call


def content(rng):
    r = rng.random()
    if r < 0.08:
        return [{"type": "text", "text": rng.choice(TEXTS)}, {"type": "text", "text": rng.choice(TEXTS)}]
    if r < 0.12:
        return None
    return rng.choice(TEXTS)


def conversation(rng):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": rng.choice(TEXTS[:3] + ["You are a helpful assistant."])})
    turns = rng.randint(1, 4)
    k = 0
    for t in range(turns):
        msgs.append({"role": "user", "content": content(rng)})
        if t == turns - 1 and rng.random() < 0.6:
            break
        if rng.random() < 0.35:
            calls = [tool_call(rng, k + i) for i in range(rng.randint(1, 2))]
            k += len(calls)
            msgs.append({"role": "assistant", "content": None if rng.random() < 0.6 else rng.choice(TEXTS),
                         "tool_calls": calls})
            for c in calls:
                msgs.append({"role": "tool", "tool_call_id": c["id"], "name": c["function"]["name"],
                             "content": rng.choice(['{"temperature": 22}', "42", "", "ok é"])})
            if rng.random() < 0.7:
                msgs.append({"role": "assistant", "content": rng.choice(TEXTS)})
        else:
            msgs.append({"role": "assistant", "content": rng.choice(TEXTS)})
    req = {"messages": msgs, "add_generation_prompt": rng.random() < 0.7,
           "_now": "2025-01-15T10:30:00"}
    if rng.random() < 0.5:
        req["tools"] = rng.sample(TOOLS, rng.randint(1, len(TOOLS)))
    return req


def generate(seed, n):
    rng = random.Random(seed)
    return [conversation(rng) for _ in range(n)]
