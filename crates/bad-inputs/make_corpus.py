#!/usr/bin/env python3
"""Writes the bad-input corpus of crates/bad-inputs: every case directory under `corpus/`.

Standard library only (struct, json); no torch, numpy or gguf package. The output is
deterministic (no timestamps, no randomness beyond a fixed LCG), so running the script on an
unchanged checkout leaves `git status` clean. The generated files are committed: the Rust test
(`tests/corpus.rs`) never needs Python.

    python3 crates/bad-inputs/make_corpus.py          # rewrites crates/bad-inputs/corpus/

Every case is one directory `corpus/<case>/` holding its input file(s) and a `case.toml`:

    kind = "model"                 # which loader the runner calls (see tests/corpus.rs)
    input = "model"                # the file or directory handed to it, relative to the case
    expect = ["model.safetensors", "invalid JSON in header"]   # substrings of the error
    based_on = "valid-model-hf"    # the known-good case it differs from by one defect
    defect = "..."                 # what is wrong, in words
    # optional: gap = "..." (a known weakness, printed, not failed), expect_panic_bug = true
    # (skipped and printed), and per-kind fields (model, method, data_dir, max_len)

Cases named `valid-*` are known-good inputs (`valid = true`): the runner checks that they load
before it runs the bad ones, so each bad case is one defect away from something that works.
"""

from __future__ import annotations

import json
import shutil
import struct
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

# ----------------------------------------------------------------------------- the tiny model
# A Llama with vocab 32, hidden 16, 2 heads (head_dim 8), 2 KV heads, MLP 16, 1 layer, tied
# embeddings, stored in f16 (about 5 KB).

VOCAB, HIDDEN, HEADS, INTER = 32, 16, 2, 16


def lcg_values(n: int, seed: int, scale: float = 0.1, center: float = 0.0) -> list[float]:
    """n deterministic pseudo-random values in center ± scale."""
    x = seed * 2654435761 % 2**32 or 1
    out = []
    for _ in range(n):
        x = (1103515245 * x + 12345) % 2**31
        out.append(center + scale * (2.0 * x / 2**31 - 1.0))
    return out


def f16_bytes(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}e", *values)


def f32_bytes(values: list[float]) -> bytes:
    return struct.pack(f"<{len(values)}f", *values)


def numel(shape: list[int]) -> int:
    n = 1
    for d in shape:
        n *= d
    return n


# HF key -> shape (PyTorch order, outermost first).
HF_SHAPES: dict[str, list[int]] = {
    "model.embed_tokens.weight": [VOCAB, HIDDEN],
    "model.layers.0.self_attn.q_proj.weight": [HIDDEN, HIDDEN],
    "model.layers.0.self_attn.k_proj.weight": [HIDDEN, HIDDEN],
    "model.layers.0.self_attn.v_proj.weight": [HIDDEN, HIDDEN],
    "model.layers.0.self_attn.o_proj.weight": [HIDDEN, HIDDEN],
    "model.layers.0.mlp.gate_proj.weight": [INTER, HIDDEN],
    "model.layers.0.mlp.up_proj.weight": [INTER, HIDDEN],
    "model.layers.0.mlp.down_proj.weight": [HIDDEN, INTER],
    "model.layers.0.input_layernorm.weight": [HIDDEN],
    "model.layers.0.post_attention_layernorm.weight": [HIDDEN],
    "model.norm.weight": [HIDDEN],
}


def hf_values(key: str, shape: list[int]) -> list[float]:
    seed = sum(key.encode()) + 7 * len(key)
    if key.endswith("norm.weight"):
        return lcg_values(numel(shape), seed, 0.05, 1.0)
    return lcg_values(numel(shape), seed)


def model_tensors() -> list[tuple[str, str, list[int], bytes]]:
    """(key, dtype, shape, data) of the valid model, f16."""
    return [(k, "F16", s, f16_bytes(hf_values(k, s))) for k, s in HF_SHAPES.items()]


CONFIG = {
    "architectures": ["LlamaForCausalLM"],
    "model_type": "llama",
    "vocab_size": VOCAB,
    "hidden_size": HIDDEN,
    "intermediate_size": INTER,
    "num_hidden_layers": 1,
    "num_attention_heads": HEADS,
    "num_key_value_heads": HEADS,
    "hidden_act": "silu",
    "rms_norm_eps": 1e-06,
    "rope_theta": 10000.0,
    "max_position_embeddings": 64,
    "tie_word_embeddings": True,
    "bos_token_id": 1,
    "eos_token_id": 2,
    "torch_dtype": "float16",
}


def config_json(**changes) -> str:
    c = dict(CONFIG)
    for k, v in changes.items():
        if v is None:
            c.pop(k, None)
        else:
            c[k] = v
    return json.dumps(c, indent=2) + "\n"


def tokenizer_json(n_tokens: int) -> str:
    """A WordLevel tokenizer.json with n_tokens entries."""
    words = ["<unk>", "<s>", "</s>"] + [chr(ord("a") + i) for i in range(26)] + ["the", "cat", "sat"]
    i = 0
    while len(words) < n_tokens:
        words.append(f"w{i}")
        i += 1
    vocab = {w: i for i, w in enumerate(words[:n_tokens])}
    spec = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [],
        "normalizer": None,
        "pre_tokenizer": {"type": "Whitespace"},
        "post_processor": None,
        "decoder": None,
        "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
    }
    return json.dumps(spec, indent=1) + "\n"


# ----------------------------------------------------------------------------- safetensors


def st_header(tensors, metadata=True) -> dict:
    header: dict = {}
    if metadata:
        header["__metadata__"] = {"format": "pt"}
    offset = 0
    for name, dtype, shape, data in tensors:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    return header


def st_pack(header: dict | bytes, data: bytes, header_len: int | None = None) -> bytes:
    """A safetensors file: u64 header length, JSON header (space-padded to 8), data."""
    raw = header if isinstance(header, bytes) else json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    n = len(raw) if header_len is None else header_len
    return struct.pack("<Q", n) + raw + data


def safetensors(tensors, header_edit=None, header_len=None) -> bytes:
    header = st_header(tensors)
    if header_edit:
        header_edit(header)
    return st_pack(header, b"".join(t[3] for t in tensors), header_len)


def header_json_bytes(tensors) -> bytes:
    return json.dumps(st_header(tensors), separators=(",", ":")).encode()


# ----------------------------------------------------------------------------- GGUF

GGUF_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.layers.0.self_attn.q_proj.weight": "blk.0.attn_q.weight",
    "model.layers.0.self_attn.k_proj.weight": "blk.0.attn_k.weight",
    "model.layers.0.self_attn.v_proj.weight": "blk.0.attn_v.weight",
    "model.layers.0.self_attn.o_proj.weight": "blk.0.attn_output.weight",
    "model.layers.0.mlp.gate_proj.weight": "blk.0.ffn_gate.weight",
    "model.layers.0.mlp.up_proj.weight": "blk.0.ffn_up.weight",
    "model.layers.0.mlp.down_proj.weight": "blk.0.ffn_down.weight",
    "model.layers.0.input_layernorm.weight": "blk.0.attn_norm.weight",
    "model.layers.0.post_attention_layernorm.weight": "blk.0.ffn_norm.weight",
    "model.norm.weight": "output_norm.weight",
}

# metadata value types
U8, I8, U16, I16, U32, I32, F32, BOOL, STR, ARR, U64, I64, F64 = range(13)
GGML_F32, GGML_F16 = 0, 1


def g_str(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def g_value(ty: int, v) -> bytes:
    if isinstance(v, bytes):  # raw bytes for a value of an unknown type
        return v
    if ty == STR:
        return g_str(v)
    if ty == ARR:
        inner, items = v
        return struct.pack("<IQ", inner, len(items)) + b"".join(g_value(inner, x) for x in items)
    fmt = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f",
           BOOL: "<?", U64: "<Q", I64: "<q", F64: "<d"}[ty]
    return struct.pack(fmt, v)


GGUF_TOKENS = ["<pad>", "<s>", "</s>"] + [chr(ord("a") + i) for i in range(26)] + ["Ġ", ".", ","]
assert len(GGUF_TOKENS) == VOCAB


def gguf_metadata(arch: str = "llama") -> list[tuple[str, int, object]]:
    return [
        ("general.architecture", STR, arch),
        ("general.alignment", U32, 32),
        (f"{arch}.context_length", U32, 64),
        (f"{arch}.embedding_length", U32, HIDDEN),
        (f"{arch}.feed_forward_length", U32, INTER),
        (f"{arch}.block_count", U32, 1),
        (f"{arch}.attention.head_count", U32, HEADS),
        (f"{arch}.attention.head_count_kv", U32, HEADS),
        (f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-6),
        (f"{arch}.rope.freq_base", F32, 10000.0),
        ("tokenizer.ggml.model", STR, "gpt2"),
        ("tokenizer.ggml.tokens", ARR, (STR, GGUF_TOKENS)),
        ("tokenizer.ggml.token_type", ARR, (I32, [3, 3, 3] + [1] * (VOCAB - 3))),
        ("tokenizer.ggml.merges", ARR, (STR, [])),
        ("tokenizer.ggml.bos_token_id", U32, 1),
        ("tokenizer.ggml.eos_token_id", U32, 2),
    ]


def gguf_tensors() -> list[dict]:
    """Tensor directory entries: name, dims (GGUF order, innermost first), type, data."""
    out = []
    for key, shape in HF_SHAPES.items():
        vals = hf_values(key, shape)
        if len(shape) == 1:
            ty, data = GGML_F32, f32_bytes(vals)
        else:
            ty, data = GGML_F16, f16_bytes(vals)
        out.append({"name": GGUF_NAMES[key], "dims": list(reversed(shape)), "type": ty, "data": data})
    return out


def gguf(meta=None, tensors=None, *, magic=b"GGUF", version=3, alignment=32,
         n_tensors=None, n_kv=None, offset_edit=None) -> bytes:
    meta = gguf_metadata() if meta is None else meta
    tensors = gguf_tensors() if tensors is None else tensors
    out = bytearray(magic + struct.pack("<I", version))
    out += struct.pack("<QQ", len(tensors) if n_tensors is None else n_tensors,
                       len(meta) if n_kv is None else n_kv)
    for key, ty, v in meta:
        out += g_str(key) + struct.pack("<I", ty) + g_value(ty, v)
    offsets, off = [], 0
    for t in tensors:
        offsets.append(off)
        off += len(t["data"])
        off += -off % alignment
    if offset_edit:
        offsets = offset_edit(offsets)
    for t, o in zip(tensors, offsets):
        name = t["name"]
        out += g_str(name) + struct.pack("<I", len(t["dims"]))
        out += b"".join(struct.pack("<Q", d) for d in t["dims"])
        out += struct.pack("<IQ", t["type"], o)
    out += b"\0" * (-len(out) % alignment)
    for t in tensors:
        out += t["data"]
        out += b"\0" * (-len(out) % alignment)
    return bytes(out)


def meta_with(changes: dict, arch: str = "llama", drop: tuple = ()) -> list:
    """The valid metadata with some values replaced (key -> (type, value)) or dropped."""
    out = []
    for key, ty, v in gguf_metadata(arch):
        if key in drop:
            continue
        if key in changes:
            ty, v = changes[key]
        out.append((key, ty, v))
    return out


# ----------------------------------------------------------------------------- PEFT adapters

RANK = 2
PEFT_PREFIX = "base_model.model."


def adapter_tensor(layer: str, which: str, shape: list[int], dtype="F32"):
    name = f"{PEFT_PREFIX}{layer}.lora_{which}.weight"
    vals = lcg_values(numel(shape), sum(name.encode()), 0.05)
    data = f32_bytes(vals) if dtype == "F32" else struct.pack(f"<{numel(shape)}i", *range(numel(shape)))
    return (name, dtype, shape, data)


def valid_adapter_tensors():
    out = []
    for proj in ["q_proj", "v_proj"]:
        layer = f"model.layers.0.self_attn.{proj}"
        out.append(adapter_tensor(layer, "A", [RANK, HIDDEN]))
        out.append(adapter_tensor(layer, "B", [HIDDEN, RANK]))
    return out


ADAPTER_CONFIG = {
    "peft_type": "LORA",
    "task_type": "CAUSAL_LM",
    "r": RANK,
    "lora_alpha": 4,
    "lora_dropout": 0.0,
    "target_modules": ["q_proj", "v_proj"],
    "bias": "none",
    "fan_in_fan_out": False,
    "use_dora": False,
    "base_model_name_or_path": "valid-model-hf",
}


def adapter_config(**changes) -> str:
    c = dict(ADAPTER_CONFIG)
    c.update(changes)
    return json.dumps(c, indent=2) + "\n"


# ----------------------------------------------------------------------------- task data


def llm_cl_rows(n: int, tag: str, labels=("yes", "no")) -> str:
    rows = [{"prompt": f"{tag} question {i}: is it so?", "answer": labels[i % len(labels)]} for i in range(n)]
    return json.dumps(rows, indent=1) + "\n"


def jsonl(rows: list) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


GSM8K_ROWS = [
    {"question": "Tom has 2 apples and buys 3 more. How many?", "answer": "2 + 3 = 5\n#### 5"},
    {"question": "A box holds 4 pens; how many pens in 2 boxes?", "answer": "4 * 2 = 8\n#### 8"},
    {"question": "Half of 10?", "answer": "10 / 2 = 5\n#### 5"},
]


def arc_row(i: int, key="B", labels=("A", "B", "C", "D"), texts=None):
    texts = list(texts) if texts is not None else [f"option {l}" for l in labels]
    return {"id": f"q{i}", "question": f"Which option is right in question {i}?",
            "choices": {"text": texts, "label": list(labels)}, "answerKey": key}


MMLU_HEADER = "question,choice0,choice1,choice2,choice3,answer\n"
MMLU_ROWS = "What is 2+2?,3,4,5,6,1\n\"Which, of these, is a noble gas?\",Neon,Iron,Carbon,Sodium,0\nLargest planet?,Mars,Venus,Jupiter,Earth,2\n"


def csqa_row(key="A", labels=("A", "B", "C")):
    return {"answerKey": key, "id": "c0", "question": {"stem": "Where do you keep milk?",
            "choices": [{"label": l, "text": f"place {l}"} for l in labels]}}


SUITE = """name = "tiny"
description = "one toy classification task"
seed = 3

[defaults]
train = 4
test = 2

[[tasks]]
name = "toy"
source = "llm-cl/toy"

[orders]
only = ["toy"]
"""

SUITE_TRAINING = SUITE + """
[training]
mode = "lora"
epochs = 1
batch_size = 2

[training.optim]
lr = 1e-3
"""

METHOD = """description = "fixed interleaved replay"

[replay.scheduler]
kind = "fixed_interval"
every = 4

[objective]
kl_weight = 0.0
"""


def toy_data(train: str | None = None, test: str | None = None, labels: str | None = '["yes", "no"]\n') -> dict:
    d = "data/llm-cl-benchmark-500/toy/"
    files = {d + "train.json": train if train is not None else llm_cl_rows(6, "train"),
             d + "test.json": test if test is not None else llm_cl_rows(4, "test")}
    if labels is not None:
        files[d + "labels.json"] = labels
    return files


# ----------------------------------------------------------------------------- cases

CASES: list[tuple[str, dict, dict]] = []


# Cases whose panic or gap has been fixed in the loaders: generated without the marker, so the
# runner now holds them to their `expect`.
FIXED = {
    "gguf-gemma2-zero-heads", "peft-scalar-factor", "config-huge-head-dim", "config-huge-layer-count",
    "gguf-huge-block-count", "suite-unknown-key", "suite-unknown-top-key", "method-replay-every-zero",
    "train-bad-value-from-method", "peft-shape-mismatch-late", "peft-layer-not-in-model", "peft-missing-lora-b",
}


def case(name: str, kind: str, input: str, expect: list[str], files: dict, **fields) -> None:
    assert all(n != name for n, _, _ in CASES), name
    if name in FIXED:
        fields.pop("gap", None)
        fields.pop("expect_panic_bug", None)
    CASES.append((name, dict(kind=kind, input=input, expect=expect, **fields), files))


def model_dir(safetensors_bytes: bytes | None = None, config: str | None = None, tokenizer: str | None = None,
              *, no_weights=False, no_config=False, extra: dict | None = None) -> dict:
    files = {}
    if not no_config:
        files["model/config.json"] = config if config is not None else config_json()
    if not no_weights:
        files["model/model.safetensors"] = safetensors_bytes if safetensors_bytes is not None else safetensors(model_tensors())
    files["model/tokenizer.json"] = tokenizer if tokenizer is not None else tokenizer_json(VOCAB)
    files.update(extra or {})
    return files


def valid_cases() -> None:
    case("valid-model-hf", "model", "model", [], model_dir(), valid=True,
         defect="none: a tiny Llama directory (config.json, f16 model.safetensors, tokenizer.json)")
    case("valid-model-gguf", "model", "model.gguf", [], {"model.gguf": gguf()}, valid=True,
         defect="none: the same tiny Llama as a GGUF v3 file (f16 matrices, f32 norms, gpt2 tokenizer)")
    case("valid-peft", "peft", "adapter", [], {
        "adapter/adapter_config.json": adapter_config(),
        "adapter/adapter_model.safetensors": safetensors(valid_adapter_tensors()),
    }, valid=True, model="../valid-model-hf/model",
        defect="none: a rank-2 PEFT LoRA adapter on q_proj and v_proj of the tiny model")
    case("valid-llm-cl", "llm_cl", "train.json", [], {"train.json": llm_cl_rows(4, "t")}, valid=True,
         defect="none: an LLM-CL-Benchmark split")
    case("valid-gsm8k", "gsm8k", "test.jsonl", [], {"test.jsonl": jsonl(GSM8K_ROWS)}, valid=True,
         defect="none: GSM8K JSONL")
    case("valid-arc-json", "arc_json", "test.json", [], {"test.json": json.dumps([arc_row(0), arc_row(1, "C")], indent=1) + "\n"},
         valid=True, defect="none: ARC-Easy JSON array")
    case("valid-arc-jsonl", "arc_jsonl", "test.jsonl", [], {"test.jsonl": jsonl([arc_row(0), arc_row(1, "D")])},
         valid=True, defect="none: ARC-Challenge JSONL")
    case("valid-mmlu", "mmlu_csv", "astronomy_test.csv", [], {"astronomy_test.csv": MMLU_HEADER + MMLU_ROWS},
         valid=True, defect="none: an MMLU subject CSV")
    case("valid-commonsenseqa", "commonsenseqa", "valid.jsonl", [], {"valid.jsonl": jsonl([csqa_row()])},
         valid=True, defect="none: CommonsenseQA JSONL")
    case("valid-superni", "superni", "train.json", [], {"train.json": json.dumps(
        {"Definition": ["Answer the question."], "Positive Examples": [{"input": "1+1?", "output": "2"}],
         "Instances": [{"id": "a", "input": "2+2?", "output": ["4"]}]}, indent=1) + "\n"},
         valid=True, defect="none: a SuperNI task file")
    case("valid-corpus", "corpus", "wiki.jsonl", [], {"wiki.jsonl": jsonl([{"text": "one passage"}, {"text": "two"}])},
         valid=True, defect="none: a replay corpus")
    case("valid-labels", "labels", "toy", [], {"toy/labels.json": '["yes", "no"]\n'}, valid=True,
         defect="none: a labels.json")
    case("valid-suite", "suite_load", "suite.toml", [], {"suite.toml": SUITE, **toy_data()}, valid=True,
         data_dir="data", defect="none: a suite with one llm-cl task, loaded from its data directory")
    case("valid-format", "format", "records.json", [], {"records.json": llm_cl_rows(2, "f")}, valid=True,
         max_len=64, defect="none: records that fit max_len 64 with the ChatML template and the byte tokenizer")
    case("valid-method", "method", "method.toml", [], {"method.toml": METHOD}, valid=True,
         defect="none: a method file")
    case("valid-train-settings", "train_settings", "suite.toml", [], {"suite.toml": SUITE_TRAINING, "method.toml": METHOD},
         valid=True, method="method.toml", defect="none: a suite [training] table with a method")


def safetensors_cases() -> None:
    good = safetensors(model_tensors())
    tensors = model_tensors()
    last = tensors[-1][0]  # the last tensor in the data section (offsets follow insertion order)

    case("st-truncated", "model", "model", ["model.safetensors", f"tensor `{last}`",
                                             "run past the end of the data section", "truncated"],
         model_dir(good[:-7]), based_on="valid-model-hf", defect="model.safetensors lost its last 7 bytes")

    hdr = header_json_bytes(tensors)
    colon = hdr.index(b":")  # after the first key
    flipped = bytearray(good)
    flipped[8 + colon] ^= 0x01  # ':' -> ';'
    case("st-header-bitflip", "model", "model", ["model.safetensors", "invalid JSON in header", "line 1 column"],
         model_dir(bytes(flipped)), based_on="valid-model-hf",
         defect="one bit flipped in the JSON header (':' became ';'), so the header is not JSON")

    nonutf = bytearray(good)
    nonutf[8 + 5] ^= 0x80
    case("st-header-not-utf8", "model", "model", ["model.safetensors", "invalid UTF-8 in header", "index 5"],
         model_dir(bytes(nonutf)), based_on="valid-model-hf",
         defect="the high bit of header byte 5 set: the header is not UTF-8")

    case("st-header-length-past-end", "model", "model", ["model.safetensors", "invalid header length"],
         model_dir(safetensors(tensors, header_len=len(good) + 100)), based_on="valid-model-hf",
         defect="the u64 header length claims 100 bytes more than the whole file holds")

    case("st-header-length-huge", "model", "model", ["model.safetensors", "header too large"],
         model_dir(safetensors(tensors, header_len=2**62)), based_on="valid-model-hf",
         defect="the u64 header length is 2^62")

    case("st-header-too-small", "model", "model", ["model.safetensors", "header too small"],
         model_dir(good[:5]), based_on="valid-model-hf", defect="model.safetensors is 5 bytes long")

    def past_end(h):
        h[last]["data_offsets"][1] += 64

    case("st-data-past-end", "model", "model", ["model.safetensors", f"tensor `{last}`", "needs 32 bytes",
                                                 "span 96"],
         model_dir(safetensors(tensors, header_edit=past_end)), based_on="valid-model-hf",
         defect=f"the data range of `{last}` runs 64 bytes past the end of the file")

    def gap_in_offsets(h):
        for k in h:
            if k != "__metadata__" and h[k]["data_offsets"][0] > 0:
                h[k]["data_offsets"] = [h[k]["data_offsets"][0] + 2, h[k]["data_offsets"][1] + 2]
                break

    second = tensors[1][0]
    case("st-offsets-overlap", "model", "model", ["model.safetensors", second],
         model_dir(safetensors(tensors, header_edit=gap_in_offsets)), based_on="valid-model-hf",
         defect=f"the data range of `{second}` starts 2 bytes after the previous tensor ends")

    def bad_dtype(h):
        h["model.norm.weight"]["dtype"] = "F33"

    case("st-dtype-unknown", "model", "model", ["model.safetensors", "F33", "column"],
         model_dir(safetensors(tensors, header_edit=bad_dtype)), based_on="valid-model-hf",
         defect="`model.norm.weight` has dtype \"F33\", which is no safetensors dtype")

    int_tensors = [(k, "I32", s, struct.pack(f"<{numel(s)}i", *range(numel(s)))) if k == "model.norm.weight" else (k, d, s, b)
                   for k, d, s, b in tensors]
    case("st-dtype-unsupported", "model", "model", ["model.safetensors", "model.norm.weight", "I32"],
         model_dir(safetensors(int_tensors)), based_on="valid-model-hf",
         defect="`model.norm.weight` is stored as I32, a dtype the loader cannot convert")

    def overflow(h):
        h["model.norm.weight"]["shape"] = [2**40, 2**40]

    case("st-shape-overflow", "model", "model", ["model.safetensors", "tensor `model.norm.weight`",
                                                  f"[{2**40}, {2**40}]", "overflows"],
         model_dir(safetensors(tensors, header_edit=overflow)), based_on="valid-model-hf",
         defect="`model.norm.weight` claims shape [2^40, 2^40] (the element count overflows)")

    missing = [t for t in tensors if t[0] != "model.layers.0.mlp.up_proj.weight"]
    case("st-missing-tensor", "model", "model", ["st-missing-tensor/model", "missing tensor",
                                                  "model.layers.0.mlp.up_proj.weight"],
         model_dir(safetensors(missing)), based_on="valid-model-hf",
         defect="model.layers.0.mlp.up_proj.weight is not in the file")

    extra_t = ("model.layers.1.self_attn.q_proj.weight", "F16", [HIDDEN, HIDDEN],
               f16_bytes(lcg_values(HIDDEN * HIDDEN, 99)))
    case("st-extra-tensor", "model", "model", ["st-extra-tensor/model", "unexpected tensor",
                                                "model.layers.1.self_attn.q_proj.weight"],
         model_dir(safetensors(tensors + [extra_t])), based_on="valid-model-hf",
         defect="the file has a tensor for a second layer the config does not have")

    wrong = [(k, d, [HIDDEN, 8], f16_bytes(lcg_values(HIDDEN * 8, 5))) if k.endswith("k_proj.weight") else (k, d, s, b)
             for k, d, s, b in tensors]
    case("st-wrong-shape", "model", "model", ["st-wrong-shape/model", "model.layers.0.self_attn.k_proj.weight",
                                               "[16, 8]", "[16, 16]"],
         model_dir(safetensors(wrong)), based_on="valid-model-hf",
         defect="k_proj.weight is [16, 8] where the config needs [16, 16]")

    # The message names the shard index (`model/model.safetensors.index.json: No such file`), the
    # last place the loader looked, not model.safetensors.
    case("st-no-weights", "model", "model", ["st-no-weights/model", "model.safetensors", "No such file"],
         model_dir(no_weights=True), based_on="valid-model-hf",
         defect="the directory has config.json and tokenizer.json but no weights")

    half = len(tensors) // 2
    shard1, shard2 = tensors[:half], tensors[half:]
    index = {"metadata": {"total_size": 0}, "weight_map": {
        **{t[0]: "model-00001-of-00002.safetensors" for t in shard1},
        **{t[0]: "model-00002-of-00002.safetensors" for t in shard2}}}
    case("st-shard-missing", "model", "model", ["model/model-00002-of-00002.safetensors", "No such file"],
         {"model/config.json": config_json(),
          "model/model.safetensors.index.json": json.dumps(index, indent=1) + "\n",
          "model/model-00001-of-00002.safetensors": safetensors(shard1)},
         based_on="valid-model-hf", defect="the shard index names a second shard that is not there")

    case("st-shard-index-malformed", "model", "model", ["model.safetensors.index.json", "invalid JSON", "line"],
         {"model/config.json": config_json(),
          "model/model.safetensors.index.json": json.dumps(index, indent=1)[:-30] + "\n",
          "model/model-00001-of-00002.safetensors": safetensors(shard1),
          "model/model-00002-of-00002.safetensors": safetensors(shard2)},
         based_on="valid-model-hf", defect="model.safetensors.index.json is cut off mid-object")

    dup_index = json.loads(json.dumps(index))
    case("st-shard-duplicate-tensor", "model", "model",
         ["model-00002-of-00002.safetensors", shard1[0][0], "two shards"],
         {"model/config.json": config_json(),
          "model/model.safetensors.index.json": json.dumps(dup_index, indent=1) + "\n",
          "model/model-00001-of-00002.safetensors": safetensors(shard1),
          "model/model-00002-of-00002.safetensors": safetensors(shard2 + [shard1[0]])},
         based_on="valid-model-hf", defect=f"`{shard1[0][0]}` is stored in both shards")


def config_cases() -> None:
    def cfg_case(name, expect, defect, config=None, **kw):
        case(name, "model", "model", expect, model_dir(config=config), based_on="valid-model-hf", defect=defect, **kw)

    cfg_case("config-hidden-size-mismatch", ["config-hidden-size-mismatch/model", "model.embed_tokens.weight",
                                             "[32, 16]", "[32, 32]"],
             "config.json says hidden_size 32, the weights are 16 wide", config_json(hidden_size=32))
    cfg_case("config-heads-not-dividing", ["config.json", "hidden_size", "16", "3 heads"],
             "num_attention_heads 3 does not divide hidden_size 16",
             config_json(num_attention_heads=3, num_key_value_heads=None))
    cfg_case("config-kv-heads-not-dividing", ["config.json", "num_key_value_heads", "3"],
             "num_key_value_heads 3 does not divide num_attention_heads 2", config_json(num_key_value_heads=3))
    cfg_case("config-heads-disagree", ["config-heads-disagree/model", "model.layers.0.self_attn.q_proj.weight",
                                       "[32, 16]", "[16, 16]"],
             "4 heads of head_dim 8 need q_proj [32, 16]; the weights have 2 heads",
             config_json(num_attention_heads=4, num_key_value_heads=4, head_dim=8))
    cfg_case("config-zero-heads", ["config.json", "num_attention_heads", "0"],
             "num_attention_heads is 0", config_json(num_attention_heads=0, num_key_value_heads=None))
    cfg_case("config-vocab-mismatch", ["config-vocab-mismatch/model", "model.embed_tokens.weight", "[48, 16]",
                                       "[32, 16]"],
             "vocab_size 48 disagrees with the 32-row embedding", config_json(vocab_size=48))
    cfg_case("config-malformed-json", ["config.json", "invalid JSON", "line"],
             "config.json has a trailing comma", config_json().replace('"eos_token_id": 2,', '"eos_token_id": 2,,'))
    cfg_case("config-missing-field", ["config.json", "hidden_size", "missing"],
             "config.json has no hidden_size", config_json(hidden_size=None))
    cfg_case("config-wrong-type", ["config.json", "hidden_size", "integer"],
             "hidden_size is the string \"16\"", config_json(hidden_size="16"))
    cfg_case("config-negative-layers", ["config.json", "num_hidden_layers", "non-negative integer"],
             "num_hidden_layers is -1", config_json(num_hidden_layers=-1))
    cfg_case("config-odd-head-dim", ["config.json", "head_dim", "even"],
             "head_dim 3 (RoPE needs an even head_dim)", config_json(head_dim=3))
    cfg_case("config-unknown-model-type", ["config.json", "model_type", "bert"],
             "model_type is \"bert\"", config_json(model_type="bert"))
    cfg_case("config-unsupported-rope-scaling", ["config.json", "rope_scaling.rope_type", "yarn"],
             "rope_scaling type \"yarn\" is not supported",
             config_json(rope_scaling={"rope_type": "yarn", "factor": 2.0}))
    cfg_case("config-unsupported-activation", ["config.json", "hidden_act", "relu"],
             "hidden_act \"relu\" is not what a Llama uses", config_json(hidden_act="relu"))
    cfg_case("config-untied-without-head", ["config-untied-without-head/model", "missing tensor", "lm_head.weight"],
             "tie_word_embeddings false, but the file has no lm_head.weight", config_json(tie_word_embeddings=False))
    cfg_case("config-huge-head-dim", ["config.json", "head_dim"],
             "head_dim 2^62 with 4 heads: num_attention_heads * head_dim overflows usize (a debug-build "
             "panic `attempt to multiply with overflow`; release builds wrap around)",
             config_json(num_attention_heads=4, num_key_value_heads=4, head_dim=2**62), expect_panic_bug=True)
    cfg_case("config-huge-layer-count", ["config.json", "num_hidden_layers"],
             "num_hidden_layers 2^50: the config resolver allocates one entry per layer (`vec![false; n]`) "
             "before any tensor is looked at; the allocation fails and the process ABORTS (not a panic, "
             "catch_unwind cannot catch it)", config_json(num_hidden_layers=2**50), expect_panic_bug=True)
    case("config-missing", "model", "model", ["config-missing/model/config.json", "No such file"], model_dir(no_config=True),
         based_on="valid-model-hf", defect="the directory has no config.json")

    case("tokenizer-larger-than-embedding", "model", "model", ["tokenizer.json", "40 tokens", "32 rows"],
         model_dir(tokenizer=tokenizer_json(40)), based_on="valid-model-hf",
         defect="tokenizer.json has 40 tokens, the embedding 32 rows")
    case("tokenizer-malformed", "model", "model", ["tokenizer.json", "line"],
         model_dir(tokenizer=tokenizer_json(VOCAB)[:200]), based_on="valid-model-hf",
         defect="tokenizer.json is cut off after 200 bytes")


def gguf_cases() -> None:
    good = gguf()

    def gcase(name, expect, data, defect, **kw):
        case(name, "model", "model.gguf", expect, {"model.gguf": data}, based_on="valid-model-gguf", defect=defect, **kw)

    gcase("gguf-truncated-data", ["model.gguf", "truncated GGUF", "output_norm.weight"], good[:-40],
          "the file lost its last 40 bytes (inside the last tensor's data)")
    meta_end = good.index(b"tokenizer.ggml.tokens") + 40
    gcase("gguf-truncated-metadata", ["model.gguf", "truncated GGUF", "tokenizer.ggml.tokens", "at byte"],
          good[:meta_end], "the file ends inside the tokenizer.ggml.tokens array")
    gcase("gguf-bad-magic", ["model.gguf", "bad magic"], b"GGML" + good[4:], "the magic is GGML, not GGUF")
    gcase("gguf-bad-version", ["model.gguf", "version 7"], good[:4] + struct.pack("<I", 7) + good[8:],
          "GGUF version 7")
    gcase("gguf-empty-file", ["model.gguf", "truncated GGUF", "magic"], b"", "model.gguf is empty")

    t = gguf_tensors()
    t[1]["type"] = 99
    gcase("gguf-unknown-tensor-type", ["model.gguf", "blk.0.attn_q.weight", "unsupported type", "99"], gguf(tensors=t),
          "blk.0.attn_q.weight has ggml type 99, which does not exist")
    t = gguf_tensors()
    t[2]["type"] = 12  # Q4_K: a real type this reader does not dequantise
    gcase("gguf-unsupported-tensor-type", ["model.gguf", "blk.0.attn_k.weight", "unsupported type", "12"],
          gguf(tensors=t), "blk.0.attn_k.weight is Q4_K (type 12), which the reader cannot dequantise")

    gcase("gguf-alignment-zero", ["model.gguf", "general.alignment", "power of two"],
          gguf(meta_with({"general.alignment": (U32, 0)})), "general.alignment is 0")
    gcase("gguf-alignment-not-power-of-two", ["model.gguf", "general.alignment", "power of two"],
          gguf(meta_with({"general.alignment": (U32, 48)})), "general.alignment is 48")
    gcase("gguf-alignment-wrong-type", ["model.gguf", "general.alignment"],
          gguf(meta_with({"general.alignment": (STR, "32")})), "general.alignment is the string \"32\"")
    gcase("gguf-offset-unaligned", ["model.gguf", "blk.0.attn_k.weight", "not aligned to 32"],
          gguf(offset_edit=lambda o: o[:2] + [o[2] + 4] + o[3:]),
          "blk.0.attn_k.weight's data offset is 4 bytes off the 32-byte alignment")
    gcase("gguf-offset-past-end", ["model.gguf", "blk.0.attn_v.weight", "past the end"],
          gguf(offset_edit=lambda o: o[:3] + [2**40] + o[4:]),
          "blk.0.attn_v.weight's data offset is 2^40, far past the end of the file")
    gcase("gguf-absurd-tensor-count", ["model.gguf", "tensor count", "exceeds the file size"],
          gguf(n_tensors=2**63), "the header claims 2^63 tensors")
    gcase("gguf-absurd-metadata-count", ["model.gguf", "metadata count", "exceeds the file size"],
          gguf(n_kv=2**20), "the header claims 2^20 metadata entries (there are 16)")
    long_key = bytearray(good)
    pos = 24  # first metadata key's length
    long_key[pos:pos + 8] = struct.pack("<Q", 2**40)
    gcase("gguf-absurd-string-length", ["model.gguf", "metadata key #0", "exceeds the file size"], bytes(long_key),
          "the first metadata key claims a length of 2^40 bytes")
    arr = bytearray(good)
    at = good.index(b"tokenizer.ggml.tokens") + len("tokenizer.ggml.tokens") + 4 + 4
    arr[at:at + 8] = struct.pack("<Q", 2**40)
    gcase("gguf-absurd-array-length", ["model.gguf", "tokenizer.ggml.tokens", "exceeds the file size"], bytes(arr),
          "tokenizer.ggml.tokens claims 2^40 entries")
    t = gguf_tensors()
    t[0]["dims"] = [HIDDEN, 2**40]
    gcase("gguf-absurd-dimension", ["model.gguf", "token_embd.weight", "exceeds the file size"], gguf(tensors=t),
          "token_embd.weight claims 2^40 rows")
    t = gguf_tensors()
    t[4]["dims"] = [HIDDEN, HIDDEN, 1, 1, 1]
    gcase("gguf-too-many-dimensions", ["model.gguf", "blk.0.attn_output.weight", "5 dimensions"], gguf(tensors=t),
          "blk.0.attn_output.weight has 5 dimensions")
    m = gguf_metadata()
    m[2] = (m[2][0], 13, struct.pack("<I", 64))
    gcase("gguf-unknown-metadata-type", ["model.gguf", "llama.context_length", "unknown metadata type 13"],
          gguf(m), "llama.context_length has value type 13")
    m = gguf_metadata()
    m.insert(3, (b"bad\xffkey", U8, 1))
    gcase("gguf-key-not-utf8", ["model.gguf", "metadata key #3", "UTF-8"], gguf(m),
          "metadata key #3 is not UTF-8")
    gcase("gguf-missing-head-count", ["model.gguf", "llama.attention.head_count", "missing"],
          gguf(meta_with({}, drop=("llama.attention.head_count",))), "llama.attention.head_count is absent")
    gcase("gguf-missing-architecture", ["model.gguf", "general.architecture", "missing"],
          gguf(meta_with({}, drop=("general.architecture",))), "general.architecture is absent")
    gcase("gguf-embedding-length-mismatch", ["model.gguf", "model.embed_tokens.weight", "[32, 32]", "[32, 16]"],
          gguf(meta_with({"llama.embedding_length": (U32, 32)})),
          "llama.embedding_length says 32, the tensors are 16 wide")
    gcase("gguf-heads-not-dividing", ["model.gguf", "hidden_size", "3 heads"],
          gguf(meta_with({"llama.attention.head_count": (U32, 3), "llama.attention.head_count_kv": (U32, 3)})),
          "llama.attention.head_count 3 does not divide the embedding length 16")
    gcase("gguf-gemma2-zero-heads", ["model.gguf", "gemma2.attention.head_count"],
          gguf(meta_with({"gemma2.attention.head_count": (U32, 0)}, arch="gemma2")),
          "a gemma2 file whose gemma2.attention.head_count is 0", expect_panic_bug=True)
    gcase("gguf-huge-block-count", ["model.gguf", "llama.block_count"],
          gguf(meta_with({"llama.block_count": (U64, 2**50)})),
          "llama.block_count 2^50: as config-huge-layer-count, the per-layer list is allocated before any "
          "tensor is checked and the process ABORTS", expect_panic_bug=True)
    gcase("gguf-bad-merge", ["model.gguf", "tokenizer.ggml.merges entry #1", "\"abc\"", "not two tokens"],
          gguf(meta_with({"tokenizer.ggml.merges": (ARR, (STR, ["a b", "abc"]))})),
          "tokenizer.ggml.merges has the entry \"abc\" (a merge is two tokens separated by a space)")
    t = gguf_tensors() + [{"name": "rope_freqs.weight", "dims": [4], "type": GGML_F32, "data": f32_bytes([1.0] * 4)}]
    gcase("gguf-extra-tensor", ["model.gguf", "unexpected tensor", "rope_freqs.weight"], gguf(tensors=t),
          "the file has a tensor (rope_freqs.weight) the model does not use")
    t = [x for x in gguf_tensors() if x["name"] != "blk.0.ffn_up.weight"]
    gcase("gguf-missing-tensor", ["model.gguf", "missing tensor", "model.layers.0.mlp.up_proj.weight"],
          gguf(tensors=t), "blk.0.ffn_up.weight is not in the file")
    t = gguf_tensors()
    dup = dict(t[1])
    dup["data"] = f16_bytes(lcg_values(HIDDEN * HIDDEN, 1234))
    t.append(dup)
    gcase("gguf-duplicate-tensor", ["model.gguf", "tensor `blk.0.attn_q.weight` appears twice",
                                    "entries #1 and #11"], gguf(tensors=t),
          "blk.0.attn_q.weight appears twice in the tensor directory (with different data)")
    gcase("gguf-tokenizer-unsupported", ["model.gguf", "tokenizer model", "llama"],
          gguf(meta_with({"tokenizer.ggml.model": (STR, "llama")})),
          "tokenizer.ggml.model is \"llama\" (SentencePiece), which is not supported")
    gcase("gguf-token-not-string", ["model.gguf", "tokenizer.ggml.tokens entry #0", "an integer, not a string"],
          gguf(meta_with({"tokenizer.ggml.tokens": (ARR, (U32, list(range(VOCAB))))})),
          "tokenizer.ggml.tokens is an array of integers")


def peft_cases() -> None:
    base = "../valid-model-hf/model"
    good_t = valid_adapter_tensors()

    def pcase(name, expect, defect, tensors=None, config=None, weights=None, **kw):
        files = {"adapter/adapter_config.json": config if config is not None else adapter_config()}
        if weights is not False:
            files["adapter/adapter_model.safetensors"] = weights if weights is not None else safetensors(tensors or good_t)
        case(name, "peft", "adapter", expect, files, model=base, based_on="valid-peft", defect=defect, **kw)

    q = "model.layers.0.self_attn.q_proj"
    bad_a = [adapter_tensor(q, "A", [RANK, 8]) if t[0].endswith("q_proj.lora_A.weight") else t for t in good_t]
    pcase("peft-shape-mismatch", ["adapter_model.safetensors", q, "[2, 8]", "in=16"],
          "q_proj's lora_A is [2, 8]; the layer takes 16 inputs", bad_a)
    down = "model.layers.0.mlp.down_proj"
    late = good_t + [adapter_tensor(down, "A", [RANK, 8]), adapter_tensor(down, "B", [HIDDEN, RANK])]
    pcase("peft-shape-mismatch-late", ["adapter_model.safetensors", down, "[2, 8]", "in=16"],
          "down_proj's lora_A is [2, 8]; the layer takes 16 inputs (q_proj and v_proj come first and fit)",
          late, gap="the error is clear, but q_proj and v_proj already carry the new adapter when it is "
                    "returned: load_peft leaves the model half-modified")
    stray = good_t + [adapter_tensor("model.layers.3.self_attn.q_proj", "A", [RANK, HIDDEN]),
                      adapter_tensor("model.layers.3.self_attn.q_proj", "B", [HIDDEN, RANK])]
    pcase("peft-layer-not-in-model", ["adapter_model.safetensors", "model.layers.3.self_attn.q_proj",
                                      "does not have"],
          "tensors for model.layers.3, a layer the 1-layer model does not have", stray,
          gap="the error is clear, but the adapter has already been inserted into every layer that does "
              "exist: load_peft leaves the model modified")
    pcase("peft-config-malformed", ["adapter_config.json", "line"], "adapter_config.json is cut off mid-object",
          config=adapter_config()[:60])
    cfg = json.loads(adapter_config())
    del cfg["r"]
    pcase("peft-config-missing-rank", ["adapter_config.json", "`r`"], "adapter_config.json has no `r`",
          config=json.dumps(cfg, indent=2) + "\n")
    pcase("peft-config-dora", ["adapter_config.json", "use_dora"], "use_dora = true (not supported)",
          config=adapter_config(use_dora=True))
    pcase("peft-config-not-lora", ["adapter_config.json", "peft_type", "PREFIX_TUNING"],
          "peft_type PREFIX_TUNING", config=adapter_config(peft_type="PREFIX_TUNING"))
    only_a = [t for t in good_t if not t[0].endswith("v_proj.lora_B.weight")]
    pcase("peft-missing-lora-b", ["adapter_model.safetensors", "model.layers.0.self_attn.v_proj", "lora_B"],
          "v_proj has lora_A but no lora_B", only_a,
          gap="the error is clear, but q_proj (visited before v_proj) already carries the new adapter "
              "when it is returned: load_peft leaves the model half-modified")
    scalar = [("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight", "F32", [], f32_bytes([0.5]))
              if t[0].endswith("q_proj.lora_A.weight") else t for t in good_t]
    pcase("peft-scalar-factor", ["adapter_model.safetensors", q, "lora_A"],
          "q_proj's lora_A is a 0-dimensional (scalar) tensor", scalar, expect_panic_bug=True)
    ints = [adapter_tensor(q, "A", [RANK, HIDDEN], dtype="I32") if t[0].endswith("q_proj.lora_A.weight") else t
            for t in good_t]
    pcase("peft-dtype-unsupported", ["adapter_model.safetensors", "q_proj.lora_A.weight", "I32"],
          "q_proj's lora_A is stored as I32", ints)
    noprefix = [(t[0].replace(PEFT_PREFIX, ""), *t[1:]) for t in good_t]
    # Which of the four keys is named depends on the file's (hash map) key order.
    pcase("peft-key-without-prefix", ["adapter_model.safetensors", "unexpected key \"model.layers.0.self_attn.",
                                      "no `base_model.model.` prefix"],
          "tensor keys lack the base_model.model. prefix", noprefix)
    pcase("peft-weights-truncated", ["adapter_model.safetensors", f"tensor `{good_t[-1][0]}`", "truncated"],
          "adapter_model.safetensors lost its last 3 bytes", weights=safetensors(good_t)[:-3])
    pcase("peft-weights-missing", ["adapter/adapter_model.safetensors", "No such file"],
          "the adapter directory has no adapter_model.safetensors", weights=False)


def data_cases() -> None:
    case("llm-cl-malformed-json", "llm_cl", "train.json", ["train.json", "line 3"],
         {"train.json": '[\n{"prompt": "a", "answer": "b"},\n{"prompt": , "answer": "c"}\n]\n'},
         based_on="valid-llm-cl", defect="the third line has `\"prompt\": ,` (no value)")
    case("llm-cl-not-array", "llm_cl", "train.json", ["train.json", "(top level)", "JSON array"],
         {"train.json": '{"prompt": "a", "answer": "b"}\n'}, based_on="valid-llm-cl",
         defect="the file is one object, not an array of records")
    case("llm-cl-missing-field", "llm_cl", "train.json", ["train.json", "array index 1", "field `answer`", "missing"],
         {"train.json": '[{"prompt": "a", "answer": "b"}, {"prompt": "c"}]\n'}, based_on="valid-llm-cl",
         defect="record 1 has no answer")
    case("llm-cl-wrong-type", "llm_cl", "train.json", ["train.json", "array index 0", "field `answer`", "string"],
         {"train.json": '[{"prompt": "a", "answer": 3}]\n'}, based_on="valid-llm-cl",
         defect="record 0's answer is the number 3")
    case("llm-cl-empty-answer", "llm_cl", "train.json", ["train.json", "array index 1", "field `answer`", "empty"],
         {"train.json": '[{"prompt": "a", "answer": "b"}, {"prompt": "c", "answer": ""}]\n'},
         based_on="valid-llm-cl", defect="record 1's answer is the empty string")
    case("gsm8k-line-not-json", "gsm8k", "test.jsonl", ["test.jsonl", "line 3"],
         {"test.jsonl": jsonl(GSM8K_ROWS[:2]) + "{question: 'unquoted'}\n" + jsonl(GSM8K_ROWS[2:])},
         based_on="valid-gsm8k", defect="line 3 is not JSON")
    case("gsm8k-missing-field", "gsm8k", "test.jsonl", ["test.jsonl", "line 2", "field `question`", "missing"],
         {"test.jsonl": jsonl([GSM8K_ROWS[0], {"answer": "1\n#### 1"}, GSM8K_ROWS[2]])},
         based_on="valid-gsm8k", defect="line 2 has no question")
    case("gsm8k-no-final-answer", "gsm8k", "test.jsonl", ["test.jsonl", "line 1", "field `answer`", "####"],
         {"test.jsonl": jsonl([{"question": "q", "answer": "it is 5"}])}, based_on="valid-gsm8k",
         defect="the answer has no `#### n` final line")
    case("gsm8k-empty-answer", "gsm8k", "test.jsonl", ["test.jsonl", "line 2", "field `answer`"],
         {"test.jsonl": jsonl([GSM8K_ROWS[0], {"question": "q", "answer": ""}])}, based_on="valid-gsm8k",
         defect="line 2's answer is empty")
    case("arc-answer-outside-labels", "arc_json", "test.json", ["test.json", "array index 1", "answerKey", "`E`"],
         {"test.json": json.dumps([arc_row(0), arc_row(1, "E")], indent=1) + "\n"}, based_on="valid-arc-json",
         defect="record 1's answerKey E is not one of its labels A-D")
    case("arc-empty-answer", "arc_jsonl", "test.jsonl", ["test.jsonl", "line 2", "answerKey"],
         {"test.jsonl": jsonl([arc_row(0), arc_row(1, "")])}, based_on="valid-arc-jsonl",
         defect="line 2's answerKey is empty")
    case("arc-labels-texts-mismatch", "arc_jsonl", "test.jsonl", ["test.jsonl", "line 1", "choices", "4 labels",
                                                                  "3 option texts"],
         {"test.jsonl": jsonl([arc_row(0, texts=["x", "y", "z"])])}, based_on="valid-arc-jsonl",
         defect="4 labels but 3 option texts")
    case("arc-line-not-json", "arc_jsonl", "test.jsonl", ["test.jsonl", "line 2"],
         {"test.jsonl": jsonl([arc_row(0)]) + json.dumps(arc_row(1))[:-5] + "\n"}, based_on="valid-arc-jsonl",
         defect="line 2 is cut off")
    case("mmlu-wrong-column-count", "mmlu_csv", "astronomy_test.csv", ["astronomy_test.csv", "line 3", "5 fields"],
         {"astronomy_test.csv": MMLU_HEADER + "What is 2+2?,3,4,5,6,1\nLargest planet?,Mars,Venus,Jupiter,2\n"},
         based_on="valid-mmlu", defect="line 3 has 5 fields, the header 6")
    case("mmlu-non-integer-answer", "mmlu_csv", "astronomy_test.csv", ["astronomy_test.csv", "line 2",
                                                                        "field `answer`", "`B`"],
         {"astronomy_test.csv": MMLU_HEADER + "What is 2+2?,3,4,5,6,B\n"}, based_on="valid-mmlu",
         defect="the answer column holds the letter B, not an index")
    case("mmlu-answer-out-of-range", "mmlu_csv", "astronomy_test.csv", ["astronomy_test.csv", "line 4",
                                                                         "field `answer`", "`4`"],
         {"astronomy_test.csv": MMLU_HEADER + MMLU_ROWS.replace(",2\n", ",4\n")}, based_on="valid-mmlu",
         defect="line 4's answer index is 4 (0-3 are valid)")
    case("mmlu-bad-header", "mmlu_csv", "astronomy_test.csv", ["astronomy_test.csv", "line 1", "(header)"],
         {"astronomy_test.csv": "q,a,b,c,d,answer\n" + MMLU_ROWS}, based_on="valid-mmlu",
         defect="the header row has other column names")
    case("mmlu-unterminated-quote", "mmlu_csv", "astronomy_test.csv", ["astronomy_test.csv", "line 2", "1 fields"],
         {"astronomy_test.csv": MMLU_HEADER + "\"What is 2+2?,3,4,5,6,1\n"}, based_on="valid-mmlu",
         defect="line 2 opens a quote that never closes (the rest of the file becomes one field)")
    case("commonsenseqa-answer-outside-labels", "commonsenseqa", "valid.jsonl",
         ["valid.jsonl", "line 1", "answerKey", "`D`"],
         {"valid.jsonl": jsonl([csqa_row("D")])}, based_on="valid-commonsenseqa",
         defect="answerKey D, the choices are A-C")
    case("commonsenseqa-missing-stem", "commonsenseqa", "valid.jsonl",
         ["valid.jsonl", "line 2", "question.stem", "missing"],
         {"valid.jsonl": jsonl([csqa_row(), {"answerKey": "A", "question": {"choices": []}}])},
         based_on="valid-commonsenseqa", defect="line 2's question has no stem")
    case("superni-bad-output", "superni", "train.json", ["train.json", "array index 0", "field `output`"],
         {"train.json": json.dumps({"Definition": "d", "Instances": [{"id": "a", "input": "q", "output": 3}]}) + "\n"},
         based_on="valid-superni", defect="instance 0's output is a number")
    case("superni-empty-outputs", "superni", "train.json", ["train.json", "array index 0", "field `output`",
                                                            "empty array"],
         {"train.json": json.dumps({"Definition": "d", "Instances": [{"id": "a", "input": "q", "output": []}]}) + "\n"},
         based_on="valid-superni", defect="instance 0 has no outputs")
    case("corpus-missing-text", "corpus", "wiki.jsonl", ["wiki.jsonl", "line 2", "field `text`", "missing"],
         {"wiki.jsonl": jsonl([{"text": "one"}, {"txt": "two"}])}, based_on="valid-corpus",
         defect="line 2 spells the field `txt`")
    case("labels-not-strings", "labels", "toy", ["labels.json", "array index 1", "(label)"],
         {"toy/labels.json": '["yes", 2]\n'}, based_on="valid-labels", defect="label 1 is a number")

    case("task-empty", "suite_load", "suite.toml", ["suite.toml", "task `toy`", "toy/train.json has no records"],
         {"suite.toml": SUITE, **toy_data(train="[]\n", test="[]\n")}, data_dir="data", based_on="valid-suite",
         defect="the toy task's train and test files are empty arrays")
    case("task-labels-outside-set", "suite_load", "suite.toml",
         ["toy/test.json", "array index 0", "field `answer`", "`maybe` is not in the label set", "task `toy`"],
         {"suite.toml": SUITE, **toy_data(test=llm_cl_rows(4, "test", labels=("maybe", "perhaps")))},
         data_dir="data", based_on="valid-suite",
         defect="every test answer (maybe/perhaps) is outside labels.json [yes, no]")
    case("task-missing-split", "suite_load", "suite.toml", ["llm-cl-benchmark-500/toy/test.json", "No such file"],
         {"suite.toml": SUITE, **{k: v for k, v in toy_data().items() if not k.endswith("test.json")}},
         data_dir="data", based_on="valid-suite", defect="the toy task has no test.json")
    case("task-split-malformed", "suite_load", "suite.toml", ["toy/train.json", "line 2"],
         {"suite.toml": SUITE, **toy_data(train='[\n{"prompt": "a" "answer": "yes"}\n]\n')},
         data_dir="data", based_on="valid-suite", defect="train.json line 2 misses a comma")

    long_answer = json.dumps([{"prompt": "short prompt", "answer": "x" * 100}], indent=1) + "\n"
    case("format-answer-too-long", "format", "records.json", ["records.json", "record 0", "answer needs",
                                                              "max_len 64"],
         {"records.json": long_answer}, max_len=64, based_on="valid-format",
         defect="the answer alone is 100 bytes, the context window (max_len) 64 tokens")
    case("format-window-below-markup", "format", "records.json", ["records.json", "record 0",
                                                                  "chat markup", "max_len 8"],
         {"records.json": llm_cl_rows(1, "f")}, max_len=8, based_on="valid-format",
         defect="max_len 8 is smaller than the ChatML markup alone")


def config_file_cases() -> None:
    def scase(name, expect, text, defect, **kw):
        case(name, "suite_spec", "suite.toml", expect, {"suite.toml": text}, based_on="valid-suite", defect=defect, **kw)

    off_by_one = ("the line number is one too small: SuiteSpec::from_toml_str counts the lines before the "
                  "error's span (`text[..start].lines().count()`), which misses the error's own line "
                  "whenever the span starts at a line start, as an unknown key does")
    scase("suite-unknown-key", ["suite.toml", "line 12", "trian"], SUITE.replace('source = "llm-cl/toy"\n',
          'source = "llm-cl/toy"\ntrian = 3\n'), "the task has `trian = 3` (a typo of train) on line 12",
          gap=off_by_one)
    scase("suite-unknown-top-key", ["suite.toml", "line 4", "colour"], SUITE.replace("seed = 3\n", "seed = 3\ncolour = 1\n"),
          "`colour = 1` on line 4 is not a suite key", gap=off_by_one)
    scase("suite-negative-train", ["suite.toml", "line 6", "train"], SUITE.replace("train = 4", "train = -1"),
          "[defaults] train = -1 on line 6")
    scase("suite-wrong-type", ["suite.toml", "line 3", "string \"three\""], SUITE.replace("seed = 3", 'seed = "three"'),
          "seed is a string on line 3")
    scase("suite-order-names-missing-task", ["suite.toml", "order `only`", "unknown task `toi`"],
          SUITE.replace('only = ["toy"]', 'only = ["toi"]'), "the order names task `toi`, which does not exist")
    scase("suite-default-order-missing", ["suite.toml", "default_order", "`later`"],
          SUITE.replace("seed = 3\n", 'seed = 3\ndefault_order = "later"\n'), "default_order names no [orders] entry")
    scase("suite-duplicate-task", ["suite.toml", "duplicate task name `toy`"],
          SUITE + '\n[[probes]]\nname = "toy"\nsource = "gsm8k"\n', "a probe has the same name as a task")
    scase("suite-malformed-toml", ["suite.toml", "line 2"], SUITE.replace('description = "one toy classification task"',
          'description = "one toy'), "line 2 has an unterminated string")
    scase("suite-smoke-without-generator", ["suite.toml", "smoke task `toy`", "generator"],
          SUITE.replace('source = "llm-cl/toy"', 'source = "smoke"'), "a smoke task without a generator")
    scase("suite-bad-metric", ["suite.toml", "line 12", "metric", "accuracy"],
          SUITE.replace('source = "llm-cl/toy"\n', 'source = "llm-cl/toy"\nmetric = "accuracy"\n'),
          "metric \"accuracy\" is not a metric name")
    case("suite-unknown-source", "suite_load", "suite.toml", ["suite.toml", "task `toy`", "unknown source `squad`"],
         {"suite.toml": SUITE.replace('source = "llm-cl/toy"', 'source = "squad"'), **toy_data()}, data_dir="data",
         based_on="valid-suite", defect="source \"squad\" is no known source")
    case("suite-ranking-metric-without-options", "suite_load", "suite.toml",
         ["suite.toml", "task `toy`", "ranks options"],
         {"suite.toml": SUITE.replace('source = "llm-cl/toy"\n', 'source = "llm-cl/toy"\nmetric = "rank_accuracy"\n'),
          **toy_data(labels=None)}, data_dir="data", based_on="valid-suite",
         defect="rank_accuracy on a task without labels.json (open generation)")

    def mcase(name, expect, text, defect, **kw):
        case(name, "method", "method.toml", expect, {"method.toml": text}, based_on="valid-method", defect=defect, **kw)

    mcase("method-unknown-key", ["method.toml", "colour"], "colour = 1\n" + METHOD, "`colour = 1` is not a method key")
    mcase("method-unknown-nested-key", ["method.toml", "replay.scheduler.intervall"],
          METHOD.replace("every = 4\n", "every = 4\nintervall = 3\n"),
          "[replay.scheduler] has `intervall = 3` (a typo)")
    mcase("method-unknown-nested-key-no-kind", ["method.toml", "replay.scheduler", "missing field `kind`"],
          '[replay.scheduler]\nintervall = 3\n', "[replay.scheduler] has only `intervall = 3`")
    mcase("method-negative-kl-weight", ["method.toml", "objective.kl_weight", "-1"],
          METHOD.replace("kl_weight = 0.0", "kl_weight = -1.0"), "objective.kl_weight = -1")
    mcase("method-wise-ft-alpha-out-of-range", ["method.toml", "wise_ft.alpha", "2"],
          METHOD + "\n[wise_ft]\nalpha = 2.0\n", "wise_ft.alpha = 2 (must be in [0, 1])")
    mcase("method-wrong-type", ["method.toml", "kl_weight"], METHOD.replace("kl_weight = 0.0", 'kl_weight = "high"'),
          "objective.kl_weight is a string")
    mcase("method-unknown-optimizer", ["method.toml", "optimizer", "sgd"], METHOD + '\n[optimizer]\nkind = "sgd"\n',
          "optimizer kind \"sgd\" does not exist")
    mcase("method-sam-negative-rho", ["method.toml", "optimizer", "rho"],
          METHOD + '\n[optimizer]\nkind = "sam"\nrho = -0.1\n', "SAM rho = -0.1")
    mcase("method-malformed-toml", ["method.toml", "line 4"], METHOD.replace('kind = "fixed_interval"', "kind = "),
          "line 4 has `kind = ` with no value")
    mcase("method-replay-every-zero", ["method.toml", "replay.scheduler.every", "0"],
          METHOD.replace("every = 4", "every = 0"), "fixed_interval replay every 0 steps",
          gap="accepted: the scheduler's values are not range-checked when the method is read "
              "(`every = 0` is a remainder by zero once training runs)")

    def tcase(name, expect, suite, defect, method=METHOD, **kw):
        case(name, "train_settings", "suite.toml", expect, {"suite.toml": suite, "method.toml": method},
             method="method.toml", based_on="valid-train-settings", defect=defect, **kw)

    tcase("train-batch-size-zero", ["suite.toml", "training.batch_size"], SUITE_TRAINING.replace("batch_size = 2",
          "batch_size = 0"), "the suite's [training] batch_size = 0")
    tcase("train-unknown-key", ["suite.toml", "bach_size"], SUITE_TRAINING.replace("batch_size = 2", "bach_size = 2"),
          "the suite's [training] spells batch_size `bach_size`")
    tcase("train-unknown-nested-key", ["suite.toml", "optim.lrr"], SUITE_TRAINING.replace("lr = 1e-3", "lrr = 1e-3"),
          "[training.optim] spells lr `lrr`")
    tcase("train-lr-zero", ["suite.toml", "training.optim.lr", "0"], SUITE_TRAINING.replace("lr = 1e-3", "lr = 0.0"),
          "[training.optim] lr = 0")
    tcase("train-epochs-zero", ["suite.toml", "training.epochs"], SUITE_TRAINING.replace("epochs = 1", "epochs = 0"),
          "[training] epochs = 0 and no steps_per_task")
    tcase("train-wrong-type", ["suite.toml", "batch_size"], SUITE_TRAINING.replace("batch_size = 2", 'batch_size = "two"'),
          "[training] batch_size is a string")
    tcase("train-bad-value-from-method", ["method.toml", "training.batch_size"], SUITE_TRAINING,
          "the method's [train] table sets batch_size = 0 (the suite's own value is fine)",
          method=METHOD + "\n[train]\nbatch_size = 0\n",
          gap="the error names the suite file (the `origin` the caller passes), not method.toml where "
              "the bad value is")


def write_case(name: str, fields: dict, files: dict) -> None:
    d = CORPUS / name
    for rel, content in sorted(files.items()):
        p = d / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(content.encode() if isinstance(content, str) else content)
    lines = []
    order = ["kind", "input", "expect", "valid", "based_on", "defect", "gap", "expect_panic_bug",
             "model", "method", "data_dir", "max_len"]
    assert set(fields) <= set(order), (name, set(fields) - set(order))
    for key in order:
        if key in fields:
            lines.append(f"{key} = {toml_value(fields[key])}")
    (d / "case.toml").write_text("# Generated by crates/bad-inputs/make_corpus.py; edit the script, not this file.\n"
                                 + "\n".join(lines) + "\n")


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(v)


def main() -> None:
    valid_cases()
    safetensors_cases()
    config_cases()
    gguf_cases()
    peft_cases()
    data_cases()
    config_file_cases()
    if CORPUS.exists():
        shutil.rmtree(CORPUS)
    CORPUS.mkdir()
    for name, fields, files in CASES:
        write_case(name, fields, files)
    total = sum(p.stat().st_size for p in CORPUS.rglob("*") if p.is_file())
    bad = sum(1 for _, f, _ in CASES if not f.get("valid"))
    print(f"{len(CASES)} cases ({bad} bad, {len(CASES) - bad} valid), {total} bytes under {CORPUS}")


if __name__ == "__main__":
    main()
