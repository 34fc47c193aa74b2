"""Decoder-only LLM shapes as Hermes splits them: per layer, the sparse blocks
whose neurons can be hot or cold, and the dense parts that are not.

A *neuron* is one row or column of weights skipped together when its
activation is zero (hermes.md section 1):

- the **QKV block**'s neurons are its input dimensions: Hermes inserts a
  ReLU before QKV (Sec. IV-A, V-A), so neuron i, column i of W_q, W_k and
  W_v, is skipped when input element i is zero. The paper names the
  insertion for the ReLU-fied LLaMA and Falcon models; it is assumed for
  OPT too, whose published decode rate (20.37 tokens/s on OPT-66B) a dense
  QKV could not reach: its 32.6 GB of QKV weights alone take 80 ms per
  token at the DIMMs' 410 GB/s;
- the **MLP block**'s neurons are its hidden units: row i of the up (and
  gate) projection and column i of the down projection.

The output projection and the LM head are dense and always run on the GPU.
Shapes are the models' published configurations (Hugging Face
``config.json`` of facebook/opt-*, meta-llama/Llama-2-*-hf and
tiiuae/falcon-40b).
"""

from __future__ import annotations

from dataclasses import dataclass

from cimflow.errors import CimError

FP16_BYTES = 2


@dataclass(frozen=True)
class DecoderShape:
    """A decoder-only transformer's sizes."""

    name: str
    layers: int
    hidden: int
    ffn_hidden: int
    heads: int
    kv_heads: int
    vocab: int
    gated_mlp: bool

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def qkv_neuron_params(self) -> int:
        """Weights of one QKV neuron: its column of W_q, W_k and W_v."""
        return self.hidden + 2 * self.kv_dim

    @property
    def mlp_up_params(self) -> int:
        """Weights of one MLP neuron in the up (and gate) projection."""
        return (2 if self.gated_mlp else 1) * self.hidden

    @property
    def mlp_down_params(self) -> int:
        return self.hidden

    @property
    def output_projection_params(self) -> int:
        return self.hidden * self.hidden

    @property
    def sparse_layer_params(self) -> int:
        """Weights of one layer's QKV and MLP neurons (the hot/cold ones)."""
        return self.hidden * self.qkv_neuron_params + self.ffn_hidden * (
            self.mlp_up_params + self.mlp_down_params
        )

    @property
    def layer_params(self) -> int:
        return self.sparse_layer_params + self.output_projection_params

    @property
    def embedding_params(self) -> int:
        """Token embedding and LM head (counted twice: LLaMA and Falcon-40B
        do not tie them; OPT does, and its count is then an upper bound)."""
        return 2 * self.vocab * self.hidden

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.embedding_params

    @property
    def weight_bytes(self) -> int:
        return self.params * FP16_BYTES

    def kv_bytes_per_token(self) -> int:
        """KV-cache bytes one token adds over all layers."""
        return self.layers * 2 * self.kv_dim * FP16_BYTES

    def neurons_per_block(self) -> list[int]:
        """Neurons of each sparse block in execution order: layer l's QKV
        block is block 2l, its MLP block 2l + 1."""
        return [self.hidden, self.ffn_hidden] * self.layers


def _opt(name: str, layers: int, hidden: int, heads: int) -> DecoderShape:
    return DecoderShape(name, layers, hidden, 4 * hidden, heads, heads, 50272, False)


SHAPES: dict[str, DecoderShape] = {
    shape.name: shape
    for shape in (
        _opt("opt-13b", 40, 5120, 40),
        _opt("opt-30b", 48, 7168, 56),
        _opt("opt-66b", 64, 9216, 72),
        DecoderShape("llama-7b", 32, 4096, 11008, 32, 32, 32000, True),
        DecoderShape("llama2-13b", 40, 5120, 13824, 40, 40, 32000, True),
        DecoderShape("llama2-70b", 80, 8192, 28672, 64, 8, 32000, True),
        DecoderShape("falcon-40b", 60, 8192, 32768, 128, 8, 65024, False),
    )
}
"""The models Hermes evaluates (Sec. V-A), and LLaMA-7B (its predictor-size
example, Sec. IV-C.1)."""


def load_shape(name: str) -> DecoderShape:
    try:
        return SHAPES[name]
    except KeyError:
        raise CimError(f"unknown model '{name}' (known: {', '.join(SHAPES)})") from None
