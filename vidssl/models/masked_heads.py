"""The light networks the masked-video methods put after a ViT encoder, built from
``transformers`` modules so that the published pre-training weights fit them.

- :class:`PixelDecoder` -- VideoMAE's decoder (``modeling_pretrain.py``
  ``PretrainVisionTransformer``, ported as ``transformers.VideoMAEForPreTraining``): the visible
  tokens go through ``encoder_to_decoder`` (Linear, no bias), every masked position gets the
  learned ``mask_token``, both get a fixed sinusoid position table, ``depth`` ViT blocks
  (``VideoMAELayer``), a LayerNorm and a Linear head to the ``tubelet x patch x patch x 3``
  pixel values of each masked patch. Parameter names follow ``VideoMAEForPreTraining``
  (``encoder_to_decoder``, ``mask_token``, ``decoder.*``).
- :class:`LatentPredictor` -- V-JEPA's narrow predictor (``src/models/predictor.py``; the V-JEPA
  2 version with 3D rotary positions, ``transformers.VJEPA2Predictor``): the context tokens are
  embedded to ``pred_hidden_size``, one learned mask token per mask generator stands at every
  target position, tokens are put in position order, ``depth`` RoPE blocks, LayerNorm, and a
  Linear back to the encoder width gives the predicted features of the target tokens.

``transformers`` is needed (``pip install 'vidssl[vit]'``).
"""

from __future__ import annotations

import torch
from torch import nn

from vidssl.errors import MissingDependencyError

__all__ = ["PixelDecoder", "LatentPredictor"]


def _transformers(feature: str):
    try:
        import transformers
    except ImportError:
        raise MissingDependencyError(package="transformers", extra="vit", feature=feature) from None
    return transformers


class PixelDecoder(nn.Module):
    """VideoMAE's pre-training decoder.

    Args:
        encoder_dim: width of the encoder's tokens.
        num_tokens: tokens of a whole clip ``N = T' H' W'``.
        tubelet, patch: the tubelet embedding's size (the pixels predicted per token).
        dim, depth, heads: the decoder's width (384 for ViT-B: half the encoder's), blocks (4)
            and heads (6: half the encoder's).

    Shape:
        - tokens: ``(B, N_vis, encoder_dim)``, the encoder's visible tokens in ascending position.
        - mask: bool ``(B, N)``, True = masked, the same count ``M`` per clip.
        - output: ``(B, M, tubelet * patch * patch * 3)``, masked tokens in ascending position.
    """

    def __init__(self, encoder_dim: int, num_tokens: int, tubelet: int, patch: int, dim: int = 384,
                 depth: int = 4, heads: int = 6):
        super().__init__()
        tf = _transformers("VideoMAE's decoder")
        from transformers.models.videomae.modeling_videomae import VideoMAEDecoder, get_sinusoid_encoding_table

        config = tf.VideoMAEConfig(hidden_size=encoder_dim, num_channels=3, tubelet_size=tubelet, patch_size=patch,
                                   decoder_hidden_size=dim, decoder_num_hidden_layers=depth,
                                   decoder_num_attention_heads=heads, decoder_intermediate_size=4 * dim,
                                   qkv_bias=True, layer_norm_eps=1e-6)   # the authors' LayerNorm eps
        config._attn_implementation = "sdpa"   # standalone modules: pick the attention kernel here
        self.encoder_to_decoder = nn.Linear(encoder_dim, dim, bias=False)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.register_buffer("position_table", get_sinusoid_encoding_table(num_tokens, dim), persistent=False)
        self.decoder = VideoMAEDecoder(config)
        # the authors' init: xavier-uniform Linear weights, zero biases, LayerNorm 1 / 0, mask token N(0, 0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.trunc_normal_(self.mask_token, std=0.02)

    def forward(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        b = tokens.shape[0]
        x = self.encoder_to_decoder(tokens)
        pos = self.position_table.to(x.dtype).expand(b, -1, -1)
        pos_vis = pos[~mask].reshape(b, -1, x.shape[-1])
        pos_mask = pos[mask].reshape(b, -1, x.shape[-1])
        full = torch.cat([x + pos_vis, self.mask_token.to(x.dtype) + pos_mask], dim=1)
        return self.decoder(full, pos_mask.shape[1]).logits


class LatentPredictor(nn.Module):
    """V-JEPA's predictor (V-JEPA 2 blocks: rotary 3D positions from the token indices).

    Args:
        encoder_dim: width of the encoder's tokens (the predicted features too).
        grid: the token grid ``(T', H', W')`` (positions are decoded from indices with it).
        tubelet, patch: the tubelet embedding's size.
        dim, depth, heads: 384, 12, and the encoder's head count for V-JEPA's ViT-L (16); V-JEPA 2
            uses 12 heads.
        num_mask_tokens: one learned mask token per mask generator (V-JEPA: 2).
        mlp_ratio: 4.

    Shape:
        - context: ``(B, K_ctx, encoder_dim)``, the encoder's context tokens.
        - context_idx, target_idx: long ``(B, K_ctx)``, ``(B, K_tgt)`` token indices.
        - output: ``(B, K_tgt, encoder_dim)``, in the order of ``target_idx``.
    """

    def __init__(self, encoder_dim: int, grid: tuple[int, int, int], tubelet: int, patch: int, dim: int = 384,
                 depth: int = 12, heads: int = 16, num_mask_tokens: int = 2, mlp_ratio: float = 4.0):
        super().__init__()
        tf = _transformers("V-JEPA's predictor")
        from transformers.models.vjepa2.modeling_vjepa2 import VJEPA2Predictor

        if grid[1] != grid[2]:
            raise ValueError(f"the predictor's rotary positions need a square token grid, got {grid}")
        self.config = tf.VJEPA2Config(hidden_size=encoder_dim, crop_size=grid[1] * patch, patch_size=patch,
                                      frames_per_clip=grid[0] * tubelet, tubelet_size=tubelet, pred_hidden_size=dim,
                                      pred_num_hidden_layers=depth, pred_num_attention_heads=heads,
                                      pred_num_mask_tokens=num_mask_tokens, pred_mlp_ratio=mlp_ratio,
                                      pred_zero_init_mask_tokens=True)
        self.config._attn_implementation = "sdpa"
        self.predictor = VJEPA2Predictor(self.config)
        # the authors' init (app/vjepa/utils.py init_video_model): truncated-normal(0.02) Linear weights,
        # zero biases, LayerNorm 1 / 0; mask tokens start at zero (zero_init_mask_tokens)
        for m in self.predictor.modules():
            if isinstance(m, nn.Linear):
                nn.init.trunc_normal_(m.weight, std=0.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        nn.init.zeros_(self.predictor.embeddings.mask_tokens)

    def forward(self, context: torch.Tensor, context_idx: torch.Tensor, target_idx: torch.Tensor,
                mask_index: int = 0) -> torch.Tensor:
        p = self.predictor
        b, n_ctx = context.shape[:2]
        x = p.embeddings.predictor_embeddings(context)
        token = p.embeddings.mask_tokens[mask_index % p.embeddings.num_mask_tokens].to(x.dtype)
        x = torch.cat([x, token.expand(b, target_idx.shape[1], -1)], dim=1)
        positions = torch.cat([context_idx, target_idx], dim=1)
        order = positions.argsort(dim=1)
        x = torch.gather(x, 1, order.unsqueeze(-1).expand_as(x))
        positions = torch.gather(positions, 1, order)
        for layer in p.layer:
            x = layer(x, positions)[0]
        x = p.layernorm(x)
        x = torch.gather(x, 1, order.argsort(dim=1).unsqueeze(-1).expand_as(x))  # back to context, targets
        return p.proj(x[:, n_ctx:])
