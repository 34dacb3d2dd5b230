"""
A llama model with random weights, large enough that per-token compute outweighs the cost of a
network round trip, which stories260K (1 MB) cannot show. Its tokenizer is stories260K's, so
llama-server loads and runs it like any model; what it writes is no story, which a speed test
does not need.

    PYTHONPATH=<llama.cpp>/gguf-py python3 synthetic-model.py OUT TOKENIZER_GGUF [WIDTH LAYERS]

The bench runs it with the gguf-py of the llama.cpp source `rolemesh engine build` keeps.
"""

import sys

import gguf
import numpy as np

out, tokenizer_path = sys.argv[1], sys.argv[2]
width = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
layers = int(sys.argv[4]) if len(sys.argv) > 4 else 8
heads = width // 64
# llama's own ratio, rounded up to a multiple of 256 as its conversions do.
ff = -(-int(width * 8 / 3) // 256) * 256

source = gguf.GGUFReader(tokenizer_path)
vocab = len(source.fields["tokenizer.ggml.tokens"].data)
writer = gguf.GGUFWriter(out, "llama")
writer.add_name(f"synthetic-{width}x{layers}")
writer.add_context_length(2048)
writer.add_embedding_length(width)
writer.add_feed_forward_length(ff)
writer.add_block_count(layers)
writer.add_head_count(heads)
writer.add_head_count_kv(heads)
writer.add_rope_dimension_count(64)
writer.add_layer_norm_rms_eps(1e-5)
writer.add_file_type(gguf.LlamaFileType.ALL_F32)
for name, field in source.fields.items():
    if name.startswith("tokenizer."):
        value = field.contents()
        writer.add_key_value(name, value, field.types[0], field.types[-1] if len(field.types) > 1 else None)

rng = np.random.default_rng(0)


def weight(*shape: int, scale: float = 0.002) -> np.ndarray:
    return (rng.standard_normal(shape, dtype=np.float32) * scale).astype(np.float32)


# Noise would sample byte and control tokens, whose output llama-server refuses as text. Instead
# the layers add almost nothing to the stream and the output matrix is the embedding's, so each
# token predicts itself and the model repeats the prompt's last word: plain text, at the full
# cost of every matrix.
embedding = weight(vocab, width, scale=1.0)
writer.add_tensor("token_embd.weight", embedding)
writer.add_tensor("output_norm.weight", np.ones(width, dtype=np.float32))
writer.add_tensor("output.weight", embedding.copy())
for i in range(layers):
    writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(width, dtype=np.float32))
    for part in ("q", "k", "v", "output"):
        writer.add_tensor(f"blk.{i}.attn_{part}.weight", weight(width, width))
    writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(width, dtype=np.float32))
    writer.add_tensor(f"blk.{i}.ffn_gate.weight", weight(ff, width))
    writer.add_tensor(f"blk.{i}.ffn_up.weight", weight(ff, width))
    writer.add_tensor(f"blk.{i}.ffn_down.weight", weight(width, ff))
writer.write_header_to_file()
writer.write_kv_data_to_file()
writer.write_tensors_to_file()
writer.close()
