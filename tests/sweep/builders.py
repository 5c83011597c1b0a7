"""How the sweep builds a transformers model from a small config and calls it.

One builder per way of calling a model: token ids only (encoders, decoders,
state-space models), token ids for an encoder and a decoder (encoder-decoders),
pixels (vision), waveforms (audio), log-mel frames and token ids (speech
encoder-decoders). Each takes a config class and a model class *by name* plus
the config fields that make it tiny (hidden size 32, one or two layers, a
128-token vocabulary); weights are random from a fixed seed and nothing is
downloaded. Each returns a :class:`tests.zoo.case.ModelCase` named after the
model class.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from collections.abc import Callable

import torch
import transformers
from torch import nn

from tests.zoo.case import DimSpec, DynamicDims, Inputs, ModelCase, build, generator, token_ids
from tests.zoo.transformers_models import (
    BATCH,
    DECODER_SEQ,
    ENCODER_DECODER,
    TOKENS,
    VOCAB,
    CausalLM,
    Seq2SeqLM,
    SpeechSeq2Seq,
    encoder_decoder_tokens,
    tokens,
)

HF = "transformers"
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
DECODER = dict(
    vocab_size=VOCAB, max_position_embeddings=64, use_cache=False, pad_token_id=0,
    bos_token_id=1, eos_token_id=2, num_key_value_heads=2, **SMALL,
)  # fmt: skip
ENCODER_DECODER_CONFIG = dict(
    vocab_size=VOCAB, max_position_embeddings=64, d_model=32, encoder_layers=1,
    decoder_layers=1, encoder_attention_heads=4, decoder_attention_heads=4,
    encoder_ffn_dim=64, decoder_ffn_dim=64, use_cache=False, pad_token_id=0,
    bos_token_id=1, eos_token_id=2, decoder_start_token_id=1,
)  # fmt: skip


class FirstOutput(nn.Module):
    """Holds a transformers base model; subclasses name the one input it takes."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def _first(self, **inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**inputs, return_dict=False)[0]


class HiddenStates(FirstOutput):
    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return self._first(input_ids=input_ids)


class PixelsToHidden(FirstOutput):
    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self._first(pixel_values=pixel_values)


class AudioToHidden(FirstOutput):
    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return self._first(input_values=input_values)


def case_of(
    config_class: str,
    model_class: str,
    wrapper: Callable[[nn.Module], nn.Module],
    config: dict[str, object],
    inputs: Callable[..., Inputs],
    dims: DynamicDims,
    tags: set[str],
    name: str | None = None,
) -> ModelCase:
    """A case that builds ``wrapper(model_class(config_class(**config)))``."""

    def make() -> nn.Module:
        made = getattr(transformers, config_class)(**config)
        return build(lambda: wrapper(getattr(transformers, model_class)(made)))

    default = model_class
    for suffix in ("ForConditionalGeneration", "ForCausalLM", "Model"):
        default = default.removesuffix(suffix)
    return ModelCase(name or default.lower(), make, inputs, dims, frozenset({HF, *tags}))


def encoder(config_class: str, model_class: str, **extra: object) -> ModelCase:
    config = dict(vocab_size=VOCAB, max_position_embeddings=64, **SMALL) | extra
    return case_of(config_class, model_class, HiddenStates, config, tokens, TOKENS,
                   {"text", "encoder"})  # fmt: skip


def decoder(config_class: str, model_class: str, **extra: object) -> ModelCase:
    return case_of(config_class, model_class, CausalLM, DECODER | extra, tokens, TOKENS,
                   {"text", "decoder"})  # fmt: skip


def seq2seq(
    config_class: str, model_class: str, name: str | None = None, **extra: object
) -> ModelCase:
    return case_of(config_class, model_class, Seq2SeqLM, ENCODER_DECODER_CONFIG | extra,
                   encoder_decoder_tokens, ENCODER_DECODER, {"text", "encoder-decoder"},
                   name)  # fmt: skip


def t5_like(config_class: str, model_class: str) -> ModelCase:
    config = dict(
        vocab_size=VOCAB, d_model=32, d_kv=8, d_ff=64, num_layers=1, num_heads=4,
        use_cache=False, pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )  # fmt: skip
    return case_of(config_class, model_class, Seq2SeqLM, config, encoder_decoder_tokens,
                   ENCODER_DECODER, {"text", "encoder-decoder"})  # fmt: skip


FIXED_SEQ = 8


def fixed_length_tokens(batch: int = BATCH.example) -> Inputs:
    """Token ids of one length: for models whose Python loop runs once per token."""
    return tokens(batch, FIXED_SEQ)


def state_space(config_class: str, model_class: str, **extra: object) -> ModelCase:
    """A state-space model; without CUDA kernels its scan is a Python loop over the
    sequence, which specializes its length for any tracer, so only batch varies."""
    config = dict(vocab_size=VOCAB, hidden_size=32, num_hidden_layers=2, use_cache=False) | extra
    return case_of(config_class, model_class, HiddenStates, config, fixed_length_tokens,
                   {"input_ids": {0: BATCH}}, {"text", "state-space"})  # fmt: skip


IMAGE = 32
PIXELS = {"pixel_values": {0: BATCH}}


def pixels(batch: int = BATCH.example) -> Inputs:
    return (), {"pixel_values": torch.randn(batch, 3, IMAGE, IMAGE, generator=generator(batch))}


def vision(config_class: str, model_class: str, **extra: object) -> ModelCase:
    return case_of(config_class, model_class, PixelsToHidden, extra, pixels, PIXELS, {"vision"})


SAMPLES = DimSpec("samples", min=400, max=4000, example=800, other=1200)
WAVEFORM = {"input_values": {0: BATCH, 1: SAMPLES}}


def waveform(batch: int = BATCH.example, samples: int = SAMPLES.example) -> Inputs:
    return (), {"input_values": torch.randn(batch, samples, generator=generator(batch, samples))}


AUDIO = dict(
    **SMALL, conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
    num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
)  # fmt: skip


def audio(config_class: str, model_class: str, **extra: object) -> ModelCase:
    return case_of(config_class, model_class, AudioToHidden, AUDIO | extra, waveform, WAVEFORM,
                   {"audio"})  # fmt: skip


MEL_BINS = 16
FRAMES = DimSpec("frames", min=16, max=256, example=40, other=57)
SPEECH_TO_TEXT = {"input_features": {0: BATCH, 1: FRAMES}, **ENCODER_DECODER}
del SPEECH_TO_TEXT["input_ids"]


def frames_and_tokens(
    batch: int = BATCH.example,
    frames: int = FRAMES.example,
    decoder_seq: int = DECODER_SEQ.example,
) -> Inputs:
    gen = generator(batch, frames, decoder_seq)
    return (), {
        "input_features": torch.randn(batch, frames, MEL_BINS, generator=gen),
        "decoder_input_ids": token_ids(gen, VOCAB, batch, decoder_seq),
    }


def speech_seq2seq(config_class: str, model_class: str, **extra: object) -> ModelCase:
    """A speech encoder-decoder over log-mel frames of any length (Speech2Text)."""
    config = ENCODER_DECODER_CONFIG | dict(max_source_positions=64, max_target_positions=64) | extra
    return case_of(config_class, model_class, SpeechSeq2Seq, config, frames_and_tokens,
                   SPEECH_TO_TEXT, {"audio", "encoder-decoder"})  # fmt: skip
