"""The `kiln tokenize` / `kiln detokenize` command line: flags, errors and exit codes, run as
a user runs them (a real process, JSON on stdin)."""
import json
import subprocess


def run(kiln, args, stdin=b""):
    p = subprocess.run([kiln] + args, input=stdin, capture_output=True, timeout=120)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def test_usage_and_unknown_command(kiln):
    rc, out, err = run(kiln, [])
    assert rc == 2 and "tokenize" in err
    rc, out, err = run(kiln, ["frobnicate"])
    assert rc == 2 and "unknown command 'frobnicate'" in err
    rc, out, err = run(kiln, ["--help"])
    assert rc == 0 and "detokenize" in out


def test_help_is_generated_from_the_flag_table(kiln):
    rc, out, err = run(kiln, ["tokenize", "--help"])
    assert rc == 0 and "--no-special" in out
    rc, out, err = run(kiln, ["detokenize", "--help"])
    assert rc == 0 and "--skip-special" in out and "--stream" in out


def test_bad_flags_are_rejected_with_one_line(kiln, fixtures):
    rc, out, err = run(kiln, ["tokenize", "--frob", str(fixtures / "tokenizers/gpt2")])
    assert rc == 2 and err.splitlines()[0] == "kiln: unknown flag --frob"
    rc, out, err = run(kiln, ["tokenize"])
    assert rc == 2 and "expected one model directory" in err


def test_missing_directory_names_the_file(kiln, tmp_path):
    rc, out, err = run(kiln, ["tokenize", str(tmp_path)], b'["x"]')
    assert rc == 1 and "tokenizer.json" in err


def test_malformed_stdin(kiln, fixtures):
    d = str(fixtures / "tokenizers/gpt2")
    rc, out, err = run(kiln, ["tokenize", d], b'["unterminated')
    assert rc == 1 and "stdin" in err
    rc, out, err = run(kiln, ["tokenize", d], b'{"a": 1}')
    assert rc == 1 and "expected a JSON array" in err
    rc, out, err = run(kiln, ["tokenize", d], b'["ok", 5]')
    assert rc == 1 and "stdin[1]: expected a string" in err
    rc, out, err = run(kiln, ["detokenize", d], b'[[1, "x"]]')
    assert rc == 1 and "stdin[0]" in err


def test_round_trip_and_stream_output_shape(kiln, fixtures):
    d = str(fixtures / "tokenizers/llama3")
    rc, out, err = run(kiln, ["tokenize", d], json.dumps(["Hello world"]).encode())
    assert rc == 0
    ids = json.loads(out)
    assert ids[0][0] == 128000  # BOS from the post-processor
    rc, out, err = run(kiln, ["detokenize", d, "--skip-special"], json.dumps(ids).encode())
    assert rc == 0 and json.loads(out) == ["Hello world"]
    rc, out, err = run(kiln, ["detokenize", d, "--stream"], json.dumps(ids).encode())
    deltas = json.loads(out)[0]
    assert len(deltas) == len(ids[0]) + 1 and "".join(deltas) == "<|begin_of_text|>Hello world"


def test_no_special_flag(kiln, fixtures):
    d = str(fixtures / "tokenizers/llama3")
    rc, out, err = run(kiln, ["tokenize", "--no-special", d], b'["<|eot_id|>"]')
    assert rc == 0 and json.loads(out) == [[128009]]
