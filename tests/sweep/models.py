"""The sweep's models: the zoo's cases plus more architectures someone else wrote.

Every transformers model here is built from a small config (hidden size 32,
one or two layers, random weights from a fixed seed; nothing is downloaded;
``tests/sweep/builders.py``) and called the way users call it: token ids only
for text models, pixels for vision, waveforms for audio. torch.nn compositions
come from the zoo and ``tests/sweep/nn_models.py``; diffusers' UNets, VAE,
DiT/SD3/Flux transformers and ControlNet from ``tests/sweep/diffusers_models.py``. Each is a
:class:`tests.zoo.case.ModelCase`, so its dims and inputs are declared once.
"""

from __future__ import annotations

from tests.sweep.builders import (
    audio,
    decoder,
    encoder,
    seq2seq,
    speech_seq2seq,
    state_space,
    t5_like,
    vision,
)
from tests.sweep.diffusers_models import DIFFUSERS_CASES
from tests.sweep.nn_models import NN_CASES
from tests.zoo.case import ModelCase
from tests.zoo.models import CASES as ZOO_CASES
from tests.zoo.transformers_models import SEQ

ONE_LAYER = dict(num_hidden_layers=1)
"""The newer cases keep one layer: a second repeats the same ops and doubles the cost."""

# fmt: off
ENCODERS = (
    encoder("DistilBertConfig", "DistilBertModel", dim=32, n_layers=2, n_heads=4, hidden_dim=64),
    encoder("RobertaConfig", "RobertaModel", pad_token_id=1),
    encoder("AlbertConfig", "AlbertModel", embedding_size=16),
    encoder("ElectraConfig", "ElectraModel", embedding_size=16),
    encoder("DebertaV2Config", "DebertaV2Model"),
    encoder("XLMRobertaConfig", "XLMRobertaModel", pad_token_id=1, **ONE_LAYER),
    encoder("MPNetConfig", "MPNetModel", pad_token_id=1, **ONE_LAYER),
    encoder("SqueezeBertConfig", "SqueezeBertModel", embedding_size=32, **ONE_LAYER),
    encoder("MobileBertConfig", "MobileBertModel", embedding_size=16, intra_bottleneck_size=16,
            num_feedforward_networks=2, **ONE_LAYER),
    encoder("FNetConfig", "FNetModel", use_tpu_fourier_optimizations=False, **ONE_LAYER),
)

DECODERS = (
    decoder("GPTNeoConfig", "GPTNeoForCausalLM", num_layers=2,
            attention_types=[[["global", "local"], 1]], num_heads=4, window_size=8),
    decoder("OPTConfig", "OPTForCausalLM", ffn_dim=64, word_embed_proj_dim=32),
    decoder("MistralConfig", "MistralForCausalLM"),
    decoder("Qwen2Config", "Qwen2ForCausalLM"),
    decoder("PhiConfig", "PhiForCausalLM"),
    decoder("GemmaConfig", "GemmaForCausalLM", head_dim=8),
    decoder("FalconConfig", "FalconForCausalLM", num_kv_heads=2, new_decoder_architecture=True),
    decoder("GPTNeoXConfig", "GPTNeoXForCausalLM", **ONE_LAYER),
    decoder("BloomConfig", "BloomForCausalLM", **ONE_LAYER),
    decoder("GPTJConfig", "GPTJForCausalLM", rotary_dim=4, **ONE_LAYER),
    decoder("CodeGenConfig", "CodeGenForCausalLM", rotary_dim=4, **ONE_LAYER),
    decoder("StableLmConfig", "StableLmForCausalLM", **ONE_LAYER),
    decoder("CohereConfig", "CohereForCausalLM", **ONE_LAYER),
    decoder("OlmoConfig", "OlmoForCausalLM", **ONE_LAYER),
    decoder("Olmo2Config", "Olmo2ForCausalLM", **ONE_LAYER),
    decoder("GraniteConfig", "GraniteForCausalLM", **ONE_LAYER),
    decoder("Starcoder2Config", "Starcoder2ForCausalLM", **ONE_LAYER),
    decoder("Qwen3Config", "Qwen3ForCausalLM", head_dim=8, **ONE_LAYER),
    decoder("Phi3Config", "Phi3ForCausalLM", **ONE_LAYER),
    decoder("Gemma2Config", "Gemma2ForCausalLM", head_dim=8, sliding_window=8),
    decoder("GPTBigCodeConfig", "GPTBigCodeForCausalLM", **ONE_LAYER),
    decoder("BioGptConfig", "BioGptForCausalLM", **ONE_LAYER),
    decoder("XGLMConfig", "XGLMForCausalLM", ffn_dim=64, **ONE_LAYER),
)

MIXTURES_OF_EXPERTS = (
    decoder("Qwen2MoeConfig", "Qwen2MoeForCausalLM", num_experts=4, num_experts_per_tok=2,
            moe_intermediate_size=32, shared_expert_intermediate_size=32, **ONE_LAYER),
    decoder("OlmoeConfig", "OlmoeForCausalLM", num_experts=4, num_experts_per_tok=2, **ONE_LAYER),
)

STATE_SPACE = (
    state_space("MambaConfig", "MambaModel", state_size=8),
    state_space("Mamba2Config", "Mamba2Model", num_heads=8, head_dim=8, state_size=8, n_groups=1,
                chunk_size=4),
)

ENCODER_DECODERS = (
    seq2seq("BartConfig", "BartForConditionalGeneration"),
    seq2seq("MBartConfig", "MBartForConditionalGeneration"),
    seq2seq("MarianConfig", "MarianMTModel", name="marian"),
    seq2seq("PegasusConfig", "PegasusForConditionalGeneration"),
    t5_like("UMT5Config", "UMT5ForConditionalGeneration"),
    speech_seq2seq("Speech2TextConfig", "Speech2TextForConditionalGeneration", conv_channels=16,
                   input_feat_per_channel=16, input_channels=1, conv_kernel_sizes=(5, 5)),
)

VISION_SMALL = dict(
    image_size=32, patch_size=8, hidden_size=32, num_hidden_layers=2,
    num_attention_heads=4, intermediate_size=64,
)

VISION = (
    vision("ConvNextConfig", "ConvNextModel", hidden_sizes=[8, 16], depths=[1, 1], num_stages=2),
    vision("Dinov2Config", "Dinov2Model", **VISION_SMALL),
    vision("BeitConfig", "BeitModel", **VISION_SMALL),
    vision("DeiTConfig", "DeiTModel", **VISION_SMALL | ONE_LAYER),
    vision("RegNetConfig", "RegNetModel", embedding_size=16, hidden_sizes=[16, 32], depths=[1, 1],
           groups_width=8),
    vision("MobileViTConfig", "MobileViTModel", image_size=32, hidden_sizes=[16, 16, 16],
           neck_hidden_sizes=[8, 8, 16, 16, 16, 16, 32], num_attention_heads=2),
    vision("EfficientNetConfig", "EfficientNetModel", image_size=32, width_coefficient=0.25,
           depth_coefficient=0.25, hidden_dim=320),
    vision("SegformerConfig", "SegformerModel", num_encoder_blocks=2, depths=[1, 1],
           sr_ratios=[2, 1], hidden_sizes=[16, 32], patch_sizes=[7, 3], strides=[4, 2],
           num_attention_heads=[1, 2], mlp_ratios=[2, 2]),
)

AUDIO = (
    audio("Wav2Vec2Config", "Wav2Vec2Model"),
    audio("HubertConfig", "HubertModel"),
    audio("WavLMConfig", "WavLMModel", num_buckets=32, max_bucket_distance=64, **ONE_LAYER),
    audio("Data2VecAudioConfig", "Data2VecAudioModel", num_conv_pos_embeddings=2, **ONE_LAYER),
)

# Tried as a new user would (issue 14): architectures new to the sweep, torch's own Dim
# specs, both exporters; every one built from a small config and ran on the CPU.
NEW_USER = (
    encoder("ModernBertConfig", "ModernBertModel", global_attn_every_n_layers=1,
            local_attention=8, pad_token_id=0, **ONE_LAYER),
    encoder("CLIPTextConfig", "CLIPTextModel", pad_token_id=1, bos_token_id=0, eos_token_id=2,
            **ONE_LAYER),
    encoder("LayoutLMConfig", "LayoutLMModel", **ONE_LAYER),
    decoder("Gemma3TextConfig", "Gemma3ForCausalLM", head_dim=8, sliding_window=8, **ONE_LAYER),
    vision("SiglipVisionConfig", "SiglipVisionModel", **VISION_SMALL | ONE_LAYER),
    vision("CLIPVisionConfig", "CLIPVisionModel", **VISION_SMALL | ONE_LAYER),
)

SWEEP_ONLY: tuple[ModelCase, ...] = (
    ENCODERS + DECODERS + MIXTURES_OF_EXPERTS + STATE_SPACE + ENCODER_DECODERS + VISION + AUDIO
    + NEW_USER + NN_CASES + DIFFUSERS_CASES
)
# fmt: on

CASES: tuple[ModelCase, ...] = ZOO_CASES + SWEEP_ONLY
CASES_BY_NAME = {case.name: case for case in CASES}
assert len(CASES_BY_NAME) == len(CASES), "sweep case names must be unique"
assert SEQ.min >= 2
