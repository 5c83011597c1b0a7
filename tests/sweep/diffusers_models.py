"""The sweep's diffusers models: the blocks of Stable Diffusion, DiT, SD3 and Flux, at toy sizes.

Each model is built from a small config written here (block widths 16-32, one
layer per block, group norms of 8 channels; random weights from a fixed seed;
nothing is downloaded) and called the way a pipeline calls it: a latent image,
a timestep per batch element and, for the conditioned models, text-encoder
states. Latent sides are declared in whole multiples of 8 (``multiple=8``):
the UNets downsample by 2 per block and DiT/SD3 cut 2x2 patches, and a latent
whose side does not divide would take another branch of the model (diffusers
checks ``s % up_factor`` and pads), which is not the program being exported.
Each wrapper returns plain tensors (``return_dict=False``), so the exporters'
outputs compare with eager's directly.
"""

from __future__ import annotations

import os
from collections.abc import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import diffusers
import torch
from torch import nn

from tests.zoo.case import DimSpec, DynamicDims, Inputs, ModelCase, build, generator

DIFFUSERS = "diffusers"
BATCH = DimSpec("batch", min=1, max=8, example=2, other=3)
LATENT_HEIGHT = DimSpec("height", min=8, max=64, example=16, other=24, multiple=8)
LATENT_WIDTH = DimSpec("width", min=8, max=64, example=16, other=32, multiple=8)
SD3_HEIGHT = DimSpec("height", min=8, max=24, example=16, other=24, multiple=8)
SD3_WIDTH = DimSpec("width", min=8, max=24, example=16, other=8, multiple=8)
"""SD3 crops its positional embedding to the latent (``pos_embed_max_size`` patches
a side, 16 here): larger latents are refused by the model itself."""
DIT_SIDE = 16
"""DiT's patch embedding recomputes its positional table unless the latent is the
configured ``sample_size``: a branch on the size, so only the batch varies."""
IMAGE_HEIGHT = DimSpec("height", min=16, max=128, example=32, other=48, multiple=16)
IMAGE_WIDTH = DimSpec("width", min=16, max=128, example=32, other=64, multiple=16)
TEXT = DimSpec("text", min=2, max=77, example=7, other=11)
IMAGE_TOKENS = DimSpec("image_tokens", min=2, max=256, example=16, other=24)
CROSS = 32
"""Width of the text-encoder states the conditioned models attend to."""

UNET_BLOCKS = dict(
    block_out_channels=(16, 32), layers_per_block=1, norm_num_groups=8,
)  # fmt: skip


class Sampled(nn.Module):
    """Holds a diffusers model and returns its first output as a plain tensor."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model


class ConditionedUNet(Sampled):
    def forward(
        self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor
    ) -> torch.Tensor:
        return self.model(sample, timestep, encoder_hidden_states, return_dict=False)[0]


class UNet(Sampled):
    def forward(self, sample: torch.Tensor, timestep: torch.Tensor) -> torch.Tensor:
        return self.model(sample, timestep, return_dict=False)[0]


class Encode(Sampled):
    """The VAE's encoder: an image -> the mean of its latent distribution (deterministic)."""

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.model.encode(sample).latent_dist.mean


class Decode(Sampled):
    """The VAE's decoder: a latent -> an image."""

    def forward(self, sample: torch.Tensor) -> torch.Tensor:
        return self.model.decode(sample, return_dict=False)[0]


class ClassConditioned(Sampled):
    def forward(
        self, hidden_states: torch.Tensor, timestep: torch.Tensor, class_labels: torch.Tensor
    ) -> torch.Tensor:
        return self.model(hidden_states, timestep, class_labels, return_dict=False)[0]


class JointTransformer(Sampled):
    """SD3's MMDiT: image latents and text states attend jointly."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
    ) -> torch.Tensor:
        return self.model(
            hidden_states, encoder_hidden_states, pooled_projections, timestep, return_dict=False
        )[0]


class FluxTransformer(Sampled):
    """Flux: packed image tokens and text tokens, positions as rotary ids."""

    def forward(
        self,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        pooled_projections: torch.Tensor,
        timestep: torch.Tensor,
        img_ids: torch.Tensor,
        txt_ids: torch.Tensor,
    ) -> torch.Tensor:
        return self.model(
            hidden_states, encoder_hidden_states, pooled_projections, timestep, img_ids, txt_ids,
            return_dict=False,
        )[0]  # fmt: skip


class ControlNet(Sampled):
    """A ControlNet: the residuals it adds to each UNet block, for a conditioning image."""

    def forward(
        self,
        sample: torch.Tensor,
        timestep: torch.Tensor,
        encoder_hidden_states: torch.Tensor,
        controlnet_cond: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        down, mid = self.model(
            sample, timestep, encoder_hidden_states, controlnet_cond, return_dict=False
        )
        return (*down, mid)


def made(wrapper: type[Sampled], model_class: str, **config: object) -> Callable[[], nn.Module]:
    return lambda: build(lambda: wrapper(getattr(diffusers, model_class)(**config)))


def timesteps(gen: torch.Generator, batch: int) -> torch.Tensor:
    """One diffusion timestep per batch element, as a scheduler hands them out."""
    return torch.randint(0, 1000, (batch,), generator=gen).float()


def latent_and_text(
    batch: int = BATCH.example,
    height: int = LATENT_HEIGHT.example,
    width: int = LATENT_WIDTH.example,
    text: int = TEXT.example,
) -> Inputs:
    gen = generator(batch, height, width, text)
    return (), {
        "sample": torch.randn(batch, 4, height, width, generator=gen),
        "timestep": timesteps(gen, batch),
        "encoder_hidden_states": torch.randn(batch, text, CROSS, generator=gen),
    }


def latent(
    batch: int = BATCH.example,
    height: int = LATENT_HEIGHT.example,
    width: int = LATENT_WIDTH.example,
    channels: int = 4,
) -> Inputs:
    gen = generator(batch, height, width, channels)
    return (), {
        "sample": torch.randn(batch, channels, height, width, generator=gen),
        "timestep": timesteps(gen, batch),
    }


def image(
    batch: int = BATCH.example, height: int = IMAGE_HEIGHT.example, width: int = IMAGE_WIDTH.example
) -> Inputs:
    return (), {"sample": torch.randn(batch, 3, height, width, generator=generator(batch, height))}


def latent_only(
    batch: int = BATCH.example,
    height: int = LATENT_HEIGHT.example,
    width: int = LATENT_WIDTH.example,
) -> Inputs:
    return (), {"sample": torch.randn(batch, 4, height, width, generator=generator(batch, width))}


def latent_and_class(batch: int = BATCH.example) -> Inputs:
    gen = generator(batch, DIT_SIDE)
    return (), {
        "hidden_states": torch.randn(batch, 4, DIT_SIDE, DIT_SIDE, generator=gen),
        "timestep": timesteps(gen, batch).long(),
        "class_labels": torch.randint(0, 10, (batch,), generator=gen),
    }


def latent_text_and_pooled(
    batch: int = BATCH.example,
    height: int = SD3_HEIGHT.example,
    width: int = SD3_WIDTH.example,
    text: int = TEXT.example,
) -> Inputs:
    """SD3's inputs: the conditioned UNet's, named as SD3 names them, plus pooled text."""
    _, unet = latent_and_text(batch, height, width, text)
    return (), {
        "hidden_states": unet["sample"],
        "encoder_hidden_states": unet["encoder_hidden_states"],
        "pooled_projections": torch.randn(batch, CROSS, generator=generator(batch, text)),
        "timestep": unet["timestep"],
    }


def tokens_and_ids(
    batch: int = BATCH.example, image_tokens: int = IMAGE_TOKENS.example, text: int = TEXT.example
) -> Inputs:
    """Flux's packed latents: one token per 2x2 patch, with (0, row, column) ids."""
    gen = generator(batch, image_tokens, text)
    return (), {
        "hidden_states": torch.randn(batch, image_tokens, 16, generator=gen),
        "encoder_hidden_states": torch.randn(batch, text, CROSS, generator=gen),
        "pooled_projections": torch.randn(batch, CROSS, generator=gen),
        "timestep": timesteps(gen, batch) / 1000,
        "img_ids": torch.randint(0, 16, (image_tokens, 3), generator=gen).float(),
        "txt_ids": torch.zeros(text, 3),
    }


def control_inputs(
    batch: int = BATCH.example,
    height: int = LATENT_HEIGHT.example,
    width: int = LATENT_WIDTH.example,
    text: int = TEXT.example,
) -> Inputs:
    """A ControlNet's inputs: the UNet's, and a conditioning image at the latent's side
    (the conditioning embedding below has one stage, so it does not downsample)."""
    args, kwargs = latent_and_text(batch, height, width, text)
    gen = generator(batch, height, width, text, 3)
    cond = torch.randn(batch, 3, height, width, generator=gen)
    return args, kwargs | {"controlnet_cond": cond}


LATENT = {0: BATCH, 2: LATENT_HEIGHT, 3: LATENT_WIDTH}
LATENT_TEXT = {"sample": LATENT, "timestep": {0: BATCH},
               "encoder_hidden_states": {0: BATCH, 1: TEXT}}  # fmt: skip
CONDITIONED_DOWN = dict(
    **UNET_BLOCKS, down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
    cross_attention_dim=CROSS, attention_head_dim=8,
)  # fmt: skip
CONDITIONED_UNET = dict(
    **CONDITIONED_DOWN, up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"), sample_size=16
)
VAE = dict(
    block_out_channels=(16, 32), down_block_types=("DownEncoderBlock2D",) * 2,
    up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=8,
    layers_per_block=1, sample_size=32,
)  # fmt: skip
SMALL_DIT = dict(
    num_attention_heads=2, attention_head_dim=8, in_channels=4, num_layers=1, sample_size=16,
    patch_size=2, num_embeds_ada_norm=10,
)  # fmt: skip
SMALL_SD3 = dict(
    sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=1,
    attention_head_dim=8, num_attention_heads=2, joint_attention_dim=CROSS,
    caption_projection_dim=16, pooled_projection_dim=CROSS, pos_embed_max_size=16,
)  # fmt: skip
SMALL_FLUX = dict(
    patch_size=1, in_channels=16, num_layers=1, num_single_layers=1, attention_head_dim=16,
    num_attention_heads=2, joint_attention_dim=CROSS, pooled_projection_dim=CROSS,
    axes_dims_rope=(4, 6, 6),
)  # fmt: skip


def case(
    name: str,
    make: Callable[[], nn.Module],
    inputs: Callable[..., Inputs],
    dims: DynamicDims,
    *tags: str,
) -> ModelCase:
    return ModelCase(name, make, inputs, dims, frozenset({DIFFUSERS, "diffusion", *tags}))


# fmt: off
DIFFUSERS_CASES = (
    case("unet2d_condition", made(ConditionedUNet, "UNet2DConditionModel", **CONDITIONED_UNET),
         latent_and_text, LATENT_TEXT, "unet"),
    case("unet2d", made(UNet, "UNet2DModel", **UNET_BLOCKS, sample_size=16, in_channels=4,
                        out_channels=4,
                        down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "UpBlock2D"), attention_head_dim=8),
         latent, {"sample": LATENT, "timestep": {0: BATCH}}, "unet"),
    case("vae_encode", made(Encode, "AutoencoderKL", **VAE), image,
         {"sample": {0: BATCH, 2: IMAGE_HEIGHT, 3: IMAGE_WIDTH}}, "vae"),
    case("vae_decode", made(Decode, "AutoencoderKL", **VAE), latent_only, {"sample": LATENT},
         "vae"),
    case("dit", made(ClassConditioned, "DiTTransformer2DModel", **SMALL_DIT), latent_and_class,
         {"hidden_states": {0: BATCH}, "timestep": {0: BATCH},
          "class_labels": {0: BATCH}},
         "transformer"),
    case("sd3_transformer", made(JointTransformer, "SD3Transformer2DModel", **SMALL_SD3),
         latent_text_and_pooled,
         {"hidden_states": {0: BATCH, 2: SD3_HEIGHT, 3: SD3_WIDTH},
          "encoder_hidden_states": {0: BATCH, 1: TEXT},
          "pooled_projections": {0: BATCH}, "timestep": {0: BATCH}}, "transformer"),
    case("flux_transformer", made(FluxTransformer, "FluxTransformer2DModel", **SMALL_FLUX),
         tokens_and_ids,
         {"hidden_states": {0: BATCH, 1: IMAGE_TOKENS},
          "encoder_hidden_states": {0: BATCH, 1: TEXT}, "pooled_projections": {0: BATCH},
          "timestep": {0: BATCH}, "img_ids": {0: IMAGE_TOKENS}, "txt_ids": {0: TEXT}},
         "transformer"),
    case("controlnet", made(ControlNet, "ControlNetModel", **CONDITIONED_DOWN,
                            conditioning_embedding_out_channels=(16,)),
         control_inputs,
         LATENT_TEXT | {"controlnet_cond": {0: BATCH, 2: LATENT_HEIGHT, 3: LATENT_WIDTH}},
         "unet"),
)
# fmt: on
