"""Seeds for fuzz_model_config: every config.json and generation_config.json in the fixtures,
and variants of the stories260K config for each architecture, rope scaling type and sliding
window rule. Usage: seeds_model_config.py FIXTURES OUT"""
import json
import pathlib
import sys

fixtures, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
dirs = [fixtures / "models/stories260K"] + sorted((fixtures / "shapes").iterdir())
for d in dirs:
    for name in ("config.json", "generation_config.json"):
        if (d / name).exists():
            (out / f"seed-{d.name}-{name}").write_bytes((d / name).read_bytes())
base = json.loads((fixtures / "models/stories260K/config.json").read_text())
llama3 = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
          "high_freq_factor": 4.0, "original_max_position_embeddings": 8192}
variants = {
    "linear": {"rope_scaling": {"type": "linear", "factor": 2.0}},
    "dynamic": {"rope_scaling": {"rope_type": "dynamic", "factor": 2.0,
                                 "original_max_position_embeddings": 256}},
    "llama3": {"rope_scaling": llama3},
    "rope-parameters": {"rope_parameters": dict(llama3, rope_theta=500000.0)},
    "mistral": {"architectures": ["MistralForCausalLM"], "model_type": "mistral",
                "sliding_window": 4096},
    "qwen2": {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2",
              "use_sliding_window": True, "sliding_window": 128, "max_window_layers": 0},
    "model-type": {"architectures": None, "model_type": "llama", "head_dim": None},
    "biases": {"attention_bias": True, "dtype": "bfloat16", "eos_token_id": [2, 1, 0]},
}
for name, changes in variants.items():
    cfg = dict(base)
    cfg.update(changes)
    (out / f"seed-variant-{name}.json").write_text(json.dumps(cfg))
gen = {"temperature": 0.7, "top_p": 0.8, "top_k": 20, "min_p": 0.05,
       "repetition_penalty": 1.05, "max_new_tokens": 512, "bos_token_id": 1,
       "eos_token_id": [2, 1]}
(out / "seed-generation-all.json").write_text(json.dumps(gen))
