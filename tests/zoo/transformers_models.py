"""Zoo cases built from real Hugging Face transformers code, at toy sizes.

Every model is constructed from a config written here (hidden size 32, two layers,
a 128-token vocabulary); nothing is downloaded. Attention uses each model's default
implementation (``sdpa`` where supported) because that is what users export.

Outputs are plain tuples of tensors. Base models get that from the config
(``return_dict=False``). Models with a head cannot: in transformers 5.23 a config
``return_dict=False`` also reaches the inner base model, whose tuple the head then
reads as a ``ModelOutput`` (``AttributeError: 'tuple' object has no attribute
'last_hidden_state'``). Those are wrapped in a small module with an explicit
``forward`` signature that passes ``return_dict=False`` at call time.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # before transformers reads its settings

import torch
import transformers
from torch import nn

from .case import DimSpec, Inputs, ModelCase, build, generator, padding_mask, token_ids

VOCAB = 128
MAX_POSITIONS = 64
IMAGE = 32  # side of the square images the vision configs are sized for
MEL_BINS = 16
AUDIO_FRAMES = 64  # Whisper requires exactly 2 * max_source_positions frames

BATCH = DimSpec("batch", min=1, max=16, example=2, other=3)
SEQ = DimSpec("seq", min=2, max=MAX_POSITIONS, example=8, other=13)
DECODER_SEQ = DimSpec("decoder_seq", min=2, max=MAX_POSITIONS, example=5, other=9)
HEIGHT = DimSpec("height", min=16, max=128, example=32, other=48)
WIDTH = DimSpec("width", min=16, max=128, example=32, other=40)
# Square images of 2 to 4 whole 32-pixel blocks: the sizes Swin's window code works
# for without branching (h % 4 == 0 at every stage, windows never larger than the map,
# and height == width, as Swin's min(height, width) would otherwise compare them).
SQUARE_SIDE = DimSpec("side", min=64, max=128, example=64, other=96, multiple=32)

DECODER_ONLY = dict(
    vocab_size=VOCAB,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    max_position_embeddings=MAX_POSITIONS,
    use_cache=False,
    pad_token_id=0,
    bos_token_id=1,
    eos_token_id=2,
)


class _TupleOutputs(nn.Module):
    """Holds a transformers model with a head and calls it with ``return_dict=False``."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def _call(self, **inputs: torch.Tensor | None) -> tuple[torch.Tensor, ...]:
        return self.model(**inputs, return_dict=False)


class CausalLM(_TupleOutputs):
    """A decoder-only language model: token ids (and optional padding mask) -> logits."""

    def forward(
        self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, ...]:
        return self._call(input_ids=input_ids, attention_mask=attention_mask)


class Seq2SeqLM(_TupleOutputs):
    """An encoder-decoder language model: (encoder ids, decoder ids) -> (logits, encoder states)."""

    def forward(
        self, input_ids: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return self._call(input_ids=input_ids, decoder_input_ids=decoder_input_ids)


class SpeechSeq2Seq(_TupleOutputs):
    """A speech encoder-decoder: (log-mel features, decoder ids) -> (logits, encoder states)."""

    def forward(
        self, input_features: torch.Tensor, decoder_input_ids: torch.Tensor
    ) -> tuple[torch.Tensor, ...]:
        return self._call(input_features=input_features, decoder_input_ids=decoder_input_ids)


class ImageClassifier(_TupleOutputs):
    """An image classifier: pixels -> (logits,)."""

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return self._call(pixel_values=pixel_values)


# --- text ------------------------------------------------------------------------------


def make_bert() -> nn.Module:
    config = transformers.BertConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        max_position_embeddings=MAX_POSITIONS,
        return_dict=False,
    )
    return build(lambda: transformers.BertModel(config))


def make_gpt2() -> nn.Module:
    config = transformers.GPT2Config(
        vocab_size=VOCAB,
        n_embd=32,
        n_layer=2,
        n_head=4,
        n_positions=MAX_POSITIONS,
        use_cache=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    return build(lambda: CausalLM(transformers.GPT2LMHeadModel(config)))


def make_llama() -> nn.Module:
    config = transformers.LlamaConfig(**DECODER_ONLY)
    return build(lambda: CausalLM(transformers.LlamaForCausalLM(config)))


def mixtral(experts_implementation: str) -> nn.Module:
    config = transformers.MixtralConfig(
        **DECODER_ONLY,
        num_local_experts=4,
        num_experts_per_tok=2,
        experts_implementation=experts_implementation,
    )
    return build(lambda: CausalLM(transformers.MixtralForCausalLM(config)))


def make_mixtral() -> nn.Module:
    """Mixtral with "eager" experts: a Python loop over ``nonzero()`` of the experts
    that received tokens, so routing decides control flow (data-dependent)."""
    return mixtral("eager")


def make_mixtral_batched() -> nn.Module:
    """The same weights with "batched_mm" experts: every token's top-k expert weights
    are gathered and applied with batched matmuls, with no data-dependent shapes."""
    return mixtral("batched_mm")


def make_t5() -> nn.Module:
    config = transformers.T5Config(
        vocab_size=VOCAB,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_heads=4,
        use_cache=False,
        pad_token_id=0,
        eos_token_id=1,
        decoder_start_token_id=0,
    )
    return build(lambda: Seq2SeqLM(transformers.T5ForConditionalGeneration(config)))


def tokens_with_mask(batch: int = BATCH.example, seq: int = SEQ.example) -> Inputs:
    gen = generator(batch, seq)
    ids = token_ids(gen, VOCAB, batch, seq)
    return (), {"input_ids": ids, "attention_mask": padding_mask(gen, batch, seq)}


def tokens(batch: int = BATCH.example, seq: int = SEQ.example) -> Inputs:
    return (), {"input_ids": token_ids(generator(batch, seq), VOCAB, batch, seq)}


def encoder_decoder_tokens(
    batch: int = BATCH.example, seq: int = SEQ.example, decoder_seq: int = DECODER_SEQ.example
) -> Inputs:
    gen = generator(batch, seq, decoder_seq)
    return (), {
        "input_ids": token_ids(gen, VOCAB, batch, seq),
        "decoder_input_ids": token_ids(gen, VOCAB, batch, decoder_seq),
    }


# --- vision and audio ---------------------------------------------------------------------


def make_vit() -> nn.Module:
    config = transformers.ViTConfig(
        image_size=IMAGE,
        patch_size=8,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=64,
        num_labels=10,
    )
    return build(lambda: ImageClassifier(transformers.ViTForImageClassification(config)))


def make_resnet() -> nn.Module:
    config = transformers.ResNetConfig(
        embedding_size=16,
        hidden_sizes=[16, 32],
        depths=[1, 1],
        layer_type="basic",
        num_labels=10,
        return_dict=False,
    )
    return build(lambda: transformers.ResNetForImageClassification(config))


def make_swin() -> nn.Module:
    config = transformers.SwinConfig(
        image_size=IMAGE,
        patch_size=4,
        embed_dim=16,
        depths=[1, 1],
        num_heads=[2, 2],
        window_size=4,
        num_labels=10,
    )
    return build(lambda: ImageClassifier(transformers.SwinForImageClassification(config)))


def make_whisper() -> nn.Module:
    config = transformers.WhisperConfig(
        vocab_size=VOCAB,
        num_mel_bins=MEL_BINS,
        d_model=32,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=64,
        decoder_ffn_dim=64,
        max_source_positions=AUDIO_FRAMES // 2,
        max_target_positions=MAX_POSITIONS,
        use_cache=False,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    return build(lambda: SpeechSeq2Seq(transformers.WhisperForConditionalGeneration(config)))


def fixed_size_images(batch: int = BATCH.example) -> Inputs:
    gen = generator(batch)
    return (), {"pixel_values": torch.randn(batch, 3, IMAGE, IMAGE, generator=gen)}


def images(
    batch: int = BATCH.example, height: int = HEIGHT.example, width: int = WIDTH.example
) -> Inputs:
    gen = generator(batch, height, width)
    return (), {"pixel_values": torch.randn(batch, 3, height, width, generator=gen)}


def square_images(batch: int = BATCH.example, side: int = SQUARE_SIDE.example) -> Inputs:
    return images(batch, side, side)


def audio_and_tokens(batch: int = BATCH.example, decoder_seq: int = DECODER_SEQ.example) -> Inputs:
    gen = generator(batch, decoder_seq)
    return (), {
        "input_features": torch.randn(batch, MEL_BINS, AUDIO_FRAMES, generator=gen),
        "decoder_input_ids": token_ids(gen, VOCAB, batch, decoder_seq),
    }


TOKENS = {"input_ids": {0: BATCH, 1: SEQ}}
TOKENS_WITH_MASK = {"input_ids": {0: BATCH, 1: SEQ}, "attention_mask": {0: BATCH, 1: SEQ}}
ENCODER_DECODER = {"input_ids": {0: BATCH, 1: SEQ}, "decoder_input_ids": {0: BATCH, 1: DECODER_SEQ}}
IMAGES = {"pixel_values": {0: BATCH, 2: HEIGHT, 3: WIDTH}}
FIXED_SIZE_IMAGES = {"pixel_values": {0: BATCH}}
SQUARE_IMAGES = {"pixel_values": {0: BATCH, 2: SQUARE_SIDE, 3: SQUARE_SIDE}}
AUDIO = {"input_features": {0: BATCH}, "decoder_input_ids": {0: BATCH, 1: DECODER_SEQ}}

HF = "transformers"
SLOW_SYMBOLIC = "slow-symbolic-shapes"
"""Tag: dynamic height/width make torch.export spend 30-75 s in sympy (Swin's padding
to patch and window multiples); the baseline skips the Dim.AUTO export for these."""

TRANSFORMERS_CASES = (
    ModelCase("bert", make_bert, tokens_with_mask, TOKENS_WITH_MASK,
              frozenset({HF, "text", "encoder", "padding-mask"})),
    ModelCase("gpt2", make_gpt2, tokens, TOKENS,
              frozenset({HF, "text", "decoder", "tied-weights"})),
    ModelCase("llama", make_llama, tokens_with_mask, TOKENS_WITH_MASK,
              frozenset({HF, "text", "decoder", "rope", "gqa", "padding-mask"})),
    ModelCase("mixtral", make_mixtral, tokens, TOKENS,
              frozenset({HF, "text", "decoder", "moe", "data-dependent"})),
    ModelCase("mixtral_batched", make_mixtral_batched, tokens, TOKENS,
              frozenset({HF, "text", "decoder", "moe"})),
    ModelCase("t5", make_t5, encoder_decoder_tokens, ENCODER_DECODER,
              frozenset({HF, "text", "encoder-decoder", "tied-weights"})),
    ModelCase("vit", make_vit, fixed_size_images, FIXED_SIZE_IMAGES,
              frozenset({HF, "vision", "encoder"})),
    ModelCase("resnet", make_resnet, images, IMAGES,
              frozenset({HF, "vision", "conv", "batchnorm"})),
    ModelCase("swin", make_swin, images, IMAGES,
              frozenset({HF, "vision", "windowed-attention", "padding", SLOW_SYMBOLIC})),
    ModelCase("whisper", make_whisper, audio_and_tokens, AUDIO,
              frozenset({HF, "audio", "encoder-decoder", "conv"})),
)  # fmt: skip

# Swin with the dims it supports (SQUARE_SIDE); not in the registry, whose "swin" keeps
# free height and width for the tests and benchmarks that exercise Swin's branching.
SWIN_SQUARE = ModelCase("swin_square", make_swin, square_images, SQUARE_IMAGES,
                        frozenset({HF, "vision", "windowed-attention"}))  # fmt: skip
