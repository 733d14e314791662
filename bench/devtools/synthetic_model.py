"""Write a GGUF with gpt-oss's architecture, tensor shapes and tensor types, and random weights.

Prompt and generation speed depend on the shapes and types of the tensors, not
on their values, so a synthetic gpt-oss-120b (36 layers, 128 experts of which 4
are active per token, MXFP4 experts, Q8_0 attention and embeddings, F32 norms
and biases) is a fair stand-in for the real model on a GPU that cannot download
it. The weights are random but finite (small quantisation scales), the tokenizer
is a byte-level BPE vocabulary of the real model's size with ChatML special
tokens, so ``llama-server`` loads it, templates chats and generates (nonsense).

Shapes follow the published configs of openai/gpt-oss-120b and gpt-oss-20b;
``tiny`` keeps every feature at a size a CPU test can load in a second.

Usage::

    python -m bench.devtools.synthetic_model --shape 20b -o gpt-oss-20b-synthetic.gguf
    llama-server -m gpt-oss-20b-synthetic.gguf -ngl 999 -c 4096 --jinja

Tensors are generated and written one at a time, so memory stays near the size
of the largest tensor (about 0.6 GB for the 120B experts) while the file grows
to the model's size (about 59 GiB for 120B, 12 GiB for 20B).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from bench.errors import ExitCode

CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIAL_TOKENS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")


@dataclass(frozen=True, slots=True)
class GptOssShape:
    n_layer: int
    n_embd: int
    n_head: int
    n_head_kv: int
    head_dim: int
    n_expert: int
    n_expert_used: int
    n_ff_exp: int
    n_vocab: int
    sliding_window: int = 128
    context_length: int = 131072
    rope_freq_base: float = 150000.0
    yarn_factor: float = 32.0
    yarn_original_context: int = 4096

    @property
    def parameters(self) -> int:
        attention = self.n_embd * self.head_dim * (2 * self.n_head + 2 * self.n_head_kv)
        experts = self.n_expert * 3 * self.n_embd * self.n_ff_exp
        return self.n_layer * (attention + experts + self.n_embd * self.n_expert) + 2 * self.n_vocab * self.n_embd

    @property
    def active_parameters(self) -> int:
        """Parameters read per token: attention, the router and the active experts, plus the output."""
        attention = self.n_embd * self.head_dim * (2 * self.n_head + 2 * self.n_head_kv)
        experts = self.n_expert_used * 3 * self.n_embd * self.n_ff_exp
        return self.n_layer * (attention + experts + self.n_embd * self.n_expert) + self.n_vocab * self.n_embd


SHAPES = {
    "120b": GptOssShape(36, 2880, 64, 8, 64, 128, 4, 2880, 201088),
    "20b": GptOssShape(24, 2880, 64, 8, 64, 32, 4, 2880, 201088),
    "tiny": GptOssShape(2, 64, 4, 2, 16, 4, 2, 64, 512, sliding_window=32, context_length=4096),
}


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode table: every byte as a printable BPE symbol."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return [chars[b] for b in range(256)]


def _mxfp4(rng: np.random.Generator, rows: int, cols: int) -> NDArray[np.uint8]:
    """MXFP4 blocks of 32 values: one E8M0 scale byte, then 16 bytes of 4-bit E2M1 values."""
    blocks = rows * cols // 32
    data = rng.integers(0, 256, size=(blocks, 17), dtype=np.uint8)
    data[:, 0] = 127 - 6  # scale 2^-6: small, finite weights
    return data.reshape(rows, cols // 32 * 17)


def _q8_0(rng: np.random.Generator, rows: int, cols: int) -> NDArray[np.uint8]:
    """Q8_0 blocks of 32 values: a float16 scale, then 32 int8 values."""
    blocks = rows * cols // 32
    data = np.empty((blocks, 34), dtype=np.uint8)
    data[:, :2] = np.frombuffer(np.float16(0.002).tobytes(), dtype=np.uint8)
    data[:, 2:] = rng.integers(0, 256, size=(blocks, 32), dtype=np.uint8)
    return data.reshape(rows, cols // 32 * 34)


def _tensors(shape: GptOssShape, rng: np.random.Generator) -> Iterator[tuple[str, NDArray[np.generic], object]]:
    """(name, data in numpy order, GGML type or None for float32), in the order llama.cpp lists them."""
    import gguf

    q8, mxfp4 = gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.MXFP4
    e, ff, x = shape.n_embd, shape.n_ff_exp, shape.n_expert
    q_dim, kv_dim = shape.n_head * shape.head_dim, shape.n_head_kv * shape.head_dim

    def small(*dims: int) -> NDArray[np.float32]:
        return (rng.standard_normal(dims) * 0.02).astype(np.float32)

    yield "token_embd.weight", _q8_0(rng, shape.n_vocab, e), q8
    yield "output_norm.weight", np.ones(e, dtype=np.float32), None
    yield "output.weight", _q8_0(rng, shape.n_vocab, e), q8
    for i in range(shape.n_layer):
        p = f"blk.{i}."
        yield p + "attn_norm.weight", np.ones(e, dtype=np.float32), None
        yield p + "post_attention_norm.weight", np.ones(e, dtype=np.float32), None
        yield p + "attn_q.weight", _q8_0(rng, q_dim, e), q8
        yield p + "attn_q.bias", small(q_dim), None
        yield p + "attn_k.weight", _q8_0(rng, kv_dim, e), q8
        yield p + "attn_k.bias", small(kv_dim), None
        yield p + "attn_v.weight", _q8_0(rng, kv_dim, e), q8
        yield p + "attn_v.bias", small(kv_dim), None
        yield p + "attn_output.weight", _q8_0(rng, e, q_dim), q8
        yield p + "attn_output.bias", small(e), None
        yield p + "attn_sinks.weight", small(shape.n_head), None
        yield p + "ffn_gate_inp.weight", small(x, e), None
        yield p + "ffn_gate_inp.bias", small(x), None
        yield p + "ffn_gate_exps.weight", _mxfp4(rng, x * ff, e).reshape(x, ff, -1), mxfp4
        yield p + "ffn_gate_exps.bias", small(x, ff), None
        yield p + "ffn_up_exps.weight", _mxfp4(rng, x * ff, e).reshape(x, ff, -1), mxfp4
        yield p + "ffn_up_exps.bias", small(x, ff), None
        yield p + "ffn_down_exps.weight", _mxfp4(rng, x * e, ff).reshape(x, e, -1), mxfp4
        yield p + "ffn_down_exps.bias", small(x, e), None


def write_gpt_oss_gguf(path: Path, shape: GptOssShape, *, seed: int = 0) -> Path:
    """Write the synthetic model to ``path``; returns it."""
    import gguf

    q_dim = shape.n_head * shape.head_dim
    for name, value in (("n_embd", shape.n_embd), ("n_ff_exp", shape.n_ff_exp), ("n_head x head_dim", q_dim)):
        if value % 32:
            raise ValueError(f"{name} must be a multiple of 32 (the quantisation block); got {value}")
    arch = "gpt-oss"
    writer = gguf.GGUFWriter(str(path), arch)
    writer.add_name(f"gpt-oss synthetic ({shape.n_layer} layers, {shape.n_expert} experts)")
    writer.add_context_length(shape.context_length)
    writer.add_embedding_length(shape.n_embd)
    writer.add_block_count(shape.n_layer)
    writer.add_feed_forward_length(shape.n_ff_exp)
    writer.add_head_count(shape.n_head)
    writer.add_head_count_kv(shape.n_head_kv)
    writer.add_key_length(shape.head_dim)
    writer.add_value_length(shape.head_dim)
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_rope_freq_base(shape.rope_freq_base)
    writer.add_rope_scaling_type(gguf.RopeScalingType.YARN)
    writer.add_rope_scaling_factor(shape.yarn_factor)
    writer.add_rope_scaling_orig_ctx_len(shape.yarn_original_context)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_expert_count(shape.n_expert)
    writer.add_expert_used_count(shape.n_expert_used)
    writer.add_expert_feed_forward_length(shape.n_ff_exp)
    writer.add_sliding_window(shape.sliding_window)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_MXFP4_MOE)

    bytes_tokens = _byte_tokens()
    # a few merges (llama.cpp requires some): a space joined to each lower-case letter
    space = bytes_tokens[ord(" ")]
    merges = [f"{space} {chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    merged = [f"{space}{chr(c)}" for c in range(ord("a"), ord("z") + 1)]
    fillers = shape.n_vocab - len(bytes_tokens) - len(merged) - len(SPECIAL_TOKENS)
    if fillers < 0:
        raise ValueError(f"n_vocab must be at least {len(bytes_tokens) + len(merged) + len(SPECIAL_TOKENS)}")
    tokens = bytes_tokens + merged + [f"<|unused_{i}|>" for i in range(fillers)] + list(SPECIAL_TOKENS)
    types = [gguf.TokenType.NORMAL] * (256 + len(merged)) + [gguf.TokenType.UNUSED] * fillers
    types += [gguf.TokenType.CONTROL] * len(SPECIAL_TOKENS)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|endoftext|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHATML)

    # Declare every tensor first, then stream the data: one tensor in memory at a time.
    rng = np.random.default_rng(seed)
    for name, data, qtype in _tensors(shape, np.random.default_rng(seed)):
        dtype = np.dtype(np.float32) if qtype is None else np.dtype(np.uint8)
        writer.add_tensor_info(name, data.shape, dtype, data.nbytes, raw_dtype=qtype)  # type: ignore[arg-type]
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for _, data, _ in _tensors(shape, rng):
        writer.write_tensor_data(data)
    writer.close()
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devtools.synthetic_model", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("-o", "--output", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    shape = SHAPES[args.shape]
    try:
        import gguf  # noqa: F401  (checked here so a missing extra is one line, not a traceback)
    except ImportError:
        print("synthetic_model: needs the gguf package: python -m pip install 'llama-server-bench[devtools]'")
        return ExitCode.CONFIG
    write_gpt_oss_gguf(args.output, shape, seed=args.seed)
    print(
        f"wrote {args.output} ({args.output.stat().st_size / 1024**3:.2f} GiB): {shape.parameters / 1e9:.2f} B "
        f"parameters, {shape.active_parameters / 1e9:.2f} B active per token"
    )
    return ExitCode.OK


if __name__ == "__main__":
    sys.exit(main())
