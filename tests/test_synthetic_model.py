from __future__ import annotations

from pathlib import Path

import pytest

from bench.devtools.synthetic_model import SHAPES, write_gpt_oss_gguf


def test_published_shapes_have_the_published_parameter_counts() -> None:
    # openai/gpt-oss-120b: 116.83 B parameters, 5.13 B active; gpt-oss-20b: 20.9 B, 3.6 B active
    assert SHAPES["120b"].parameters / 1e9 == pytest.approx(116.83, rel=0.002)
    assert SHAPES["120b"].active_parameters / 1e9 == pytest.approx(5.13, rel=0.01)
    assert SHAPES["20b"].parameters / 1e9 == pytest.approx(20.9, rel=0.01)
    assert SHAPES["20b"].active_parameters / 1e9 == pytest.approx(3.6, rel=0.01)


def test_tiny_model_has_the_gpt_oss_layout_and_types(tmp_path: Path) -> None:
    import gguf

    path = write_gpt_oss_gguf(tmp_path / "tiny.gguf", SHAPES["tiny"])
    reader = gguf.GGUFReader(path)
    fields = {name: field for name, field in reader.fields.items()}
    assert bytes(fields["general.architecture"].parts[-1]).decode() == "gpt-oss"
    assert int(fields["gpt-oss.expert_count"].parts[-1][0]) == 4
    assert int(fields["gpt-oss.expert_used_count"].parts[-1][0]) == 2
    tensors = {t.name: t for t in reader.tensors}
    assert len(tensors) == 3 + 2 * 19
    assert tensors["blk.0.ffn_gate_exps.weight"].tensor_type == gguf.GGMLQuantizationType.MXFP4
    assert tensors["blk.1.ffn_down_exps.weight"].tensor_type == gguf.GGMLQuantizationType.MXFP4
    assert tensors["blk.0.attn_q.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["token_embd.weight"].tensor_type == gguf.GGMLQuantizationType.Q8_0
    assert tensors["blk.0.attn_sinks.weight"].tensor_type == gguf.GGMLQuantizationType.F32
    # ggml order: {n_embd, n_ff_exp, n_expert}
    assert list(tensors["blk.0.ffn_up_exps.weight"].shape) == [64, 64, 4]


def test_block_sizes_are_checked() -> None:
    from dataclasses import replace

    with pytest.raises(ValueError, match="n_embd must be a multiple of 32"):
        write_gpt_oss_gguf(Path("unused.gguf"), replace(SHAPES["tiny"], n_embd=48))
