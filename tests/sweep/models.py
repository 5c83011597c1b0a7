"""The sweep's models: the zoo's cases plus more architectures someone else wrote.

Every transformers model here is built from a small config (hidden size 32,
two layers, random weights from a fixed seed; nothing is downloaded) and called
the way users call it: token ids only for text models, pixels for vision,
waveforms for audio. torch.nn compositions come from the zoo. Each is a
:class:`tests.zoo.case.ModelCase`, so its dims and inputs are declared once.
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
import transformers
from torch import nn

from tests.zoo.case import DimSpec, Inputs, ModelCase, build, generator
from tests.zoo.models import CASES as ZOO_CASES
from tests.zoo.transformers_models import BATCH, SEQ, TOKENS, VOCAB, CausalLM, tokens

HF = "transformers"
SMALL = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64)
DECODER = dict(
    vocab_size=VOCAB, max_position_embeddings=64, use_cache=False, pad_token_id=0,
    bos_token_id=1, eos_token_id=2, num_key_value_heads=2, **SMALL,
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


def encoder(config_class: str, model_class: str, **extra: object) -> ModelCase:
    def make() -> nn.Module:
        config = getattr(transformers, config_class)(
            vocab_size=VOCAB, max_position_embeddings=64, **SMALL, **extra
        )
        return build(lambda: HiddenStates(getattr(transformers, model_class)(config)))

    name = model_class.removesuffix("Model").lower()
    return ModelCase(name, make, tokens, TOKENS, frozenset({HF, "text", "encoder"}))


def decoder(config_class: str, model_class: str, **extra: object) -> ModelCase:
    def make() -> nn.Module:
        config = getattr(transformers, config_class)(**{**DECODER, **extra})
        return build(lambda: CausalLM(getattr(transformers, model_class)(config)))

    name = model_class.removesuffix("ForCausalLM").lower()
    return ModelCase(name, make, tokens, TOKENS, frozenset({HF, "text", "decoder"}))


IMAGE = 32
PIXELS = {"pixel_values": {0: BATCH}}


def pixels(batch: int = BATCH.example) -> Inputs:
    return (), {"pixel_values": torch.randn(batch, 3, IMAGE, IMAGE, generator=generator(batch))}


def vision(config_class: str, model_class: str, **extra: object) -> ModelCase:
    def make() -> nn.Module:
        config = getattr(transformers, config_class)(**extra)
        return build(lambda: PixelsToHidden(getattr(transformers, model_class)(config)))

    name = model_class.removesuffix("Model").lower()
    return ModelCase(name, make, pixels, PIXELS, frozenset({HF, "vision"}))


SAMPLES = DimSpec("samples", min=400, max=4000, example=800, other=1200)
WAVEFORM = {"input_values": {0: BATCH, 1: SAMPLES}}


def waveform(batch: int = BATCH.example, samples: int = SAMPLES.example) -> Inputs:
    return (), {"input_values": torch.randn(batch, samples, generator=generator(batch, samples))}


def audio(config_class: str, model_class: str) -> ModelCase:
    def make() -> nn.Module:
        config = getattr(transformers, config_class)(
            **SMALL, conv_dim=(16, 16), conv_kernel=(10, 3), conv_stride=(5, 2),
            num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=4,
        )  # fmt: skip
        return build(lambda: AudioToHidden(getattr(transformers, model_class)(config)))

    name = model_class.removesuffix("Model").lower()
    return ModelCase(name, make, waveform, WAVEFORM, frozenset({HF, "audio"}))


VISION_SMALL = dict(
    image_size=IMAGE, patch_size=8, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64,
)  # fmt: skip

SWEEP_ONLY: tuple[ModelCase, ...] = (
    encoder("DistilBertConfig", "DistilBertModel", dim=32, n_layers=2, n_heads=4, hidden_dim=64),
    encoder("RobertaConfig", "RobertaModel", pad_token_id=1),
    encoder("AlbertConfig", "AlbertModel", embedding_size=16),
    encoder("ElectraConfig", "ElectraModel", embedding_size=16),
    encoder("DebertaV2Config", "DebertaV2Model"),
    decoder(
        "GPTNeoConfig",
        "GPTNeoForCausalLM",
        num_layers=2,
        attention_types=[[["global", "local"], 1]],
        num_heads=4,
        window_size=8,
    ),
    decoder("OPTConfig", "OPTForCausalLM", ffn_dim=64, word_embed_proj_dim=32),
    decoder("MistralConfig", "MistralForCausalLM"),
    decoder("Qwen2Config", "Qwen2ForCausalLM"),
    decoder("PhiConfig", "PhiForCausalLM"),
    decoder("GemmaConfig", "GemmaForCausalLM", head_dim=8),
    decoder("FalconConfig", "FalconForCausalLM", num_kv_heads=2, new_decoder_architecture=True),
    vision("ConvNextConfig", "ConvNextModel", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    vision("Dinov2Config", "Dinov2Model", **VISION_SMALL),
    vision("BeitConfig", "BeitModel", **VISION_SMALL),
    audio("Wav2Vec2Config", "Wav2Vec2Model"),
    audio("HubertConfig", "HubertModel"),
)

CASES: tuple[ModelCase, ...] = ZOO_CASES + SWEEP_ONLY
CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "sweep case names must be unique"
assert SEQ.min >= 2
