"""Literal, per-layer, dense transcriptions of the reference equations: the tests' oracle.

Written to read like the reference code (rohitgandikota/unified-concept-editing
``train-scripts/train_erase.py`` at bd5fb51; CharlesGong12/RECE ``erase_methods/uce.py`` and
``utils/embedding_calculation/close_form_emb.py``), loop over layers, sums of outer products,
``torch.inverse``, but in float64 and without touching the pipeline: weights go in and out as
dicts. erasekit's fast path must match these to 1e-4 relative.
"""

from __future__ import annotations

import torch
from diffusers.models.attention_processor import Attention

F64 = torch.float64


def ca_projections(unet, with_to_k=True):
    """{name: W float64} of attn2.to_v (then to_k), as the reference walks them."""
    names = [n for n, m in unet.named_modules() if isinstance(m, Attention) and m.is_cross_attention]
    modules = dict(unet.named_modules())
    out = {f"{n}.to_v": modules[n].to_v.weight.detach().to(F64) for n in names}
    if with_to_k:
        out.update({f"{n}.to_k": modules[n].to_k.weight.detach().to(F64) for n in names})
    return out


def pipe_encoder(pipe):
    """encode(texts) -> (embeddings [B, L, d] float64, attention_mask [B, L]) via the pipeline's encode_prompt."""

    def encode(texts):
        text_input = pipe.tokenizer(
            texts,
            padding="max_length",
            max_length=pipe.tokenizer.model_max_length,
            truncation=True,
            return_tensors="pt",
        )
        with torch.no_grad():
            if hasattr(pipe, "text_encoder_2"):  # SDXL: both encoders' penultimate states, concatenated
                emb = pipe.encode_prompt(
                    texts, device="cpu", num_images_per_prompt=1, do_classifier_free_guidance=False
                )[0]
            else:
                emb = pipe.encode_prompt(texts, "cpu", 1, False)[0]
        return emb.to(F64), text_input.attention_mask

    return encode


def uce_reference(
    encode, weights, old_texts, new_texts, retain_texts, lamb, erase_scale, preserve_scale, last_token_only=False
):
    """edit_model(..., technique='replace'): {name: dW} for every to_v / to_k in `weights`.

    Σ_i v_i c_iᵀ is written as Vᵀ C (the reference's reshape-bmm-sum, without its [n, d_out, d_in] temporary).
    """
    new_texts = [" " if t == "" else t for t in new_texts] if not last_token_only else new_texts
    out = {}
    for name, W in weights.items():
        mat1 = lamb * W
        mat2 = lamb * torch.eye(W.shape[1], dtype=F64)
        for old_text, new_text in zip(old_texts, new_texts):
            text_embeddings, mask = encode([old_text, new_text])
            final_token_idx = mask[0].sum().item() - 2
            final_token_idx_new = mask[1].sum().item() - 2
            if last_token_only:
                old_emb = text_embeddings[0][final_token_idx : final_token_idx + 1]
                new_emb = text_embeddings[1][final_token_idx_new : final_token_idx_new + 1]
            else:
                farthest = max([final_token_idx_new, final_token_idx])
                old_emb = text_embeddings[0]
                old_emb = old_emb[final_token_idx : len(old_emb) - max(0, farthest - final_token_idx)]
                new_emb = text_embeddings[1]
                new_emb = new_emb[final_token_idx_new : len(new_emb) - max(0, farthest - final_token_idx_new)]
            context = old_emb
            value = new_emb @ W.T
            mat1 += erase_scale * value.T @ context
            mat2 += erase_scale * context.T @ context
        for text in retain_texts:
            text_embeddings, mask = encode([text, text])
            old_emb, new_emb = text_embeddings
            if last_token_only:
                idx = mask[0].sum().item() - 2
                old_emb, new_emb = old_emb[idx : idx + 1], new_emb[idx : idx + 1]
            context = old_emb
            value = new_emb @ W.T
            mat1 += preserve_scale * value.T @ context
            mat2 += preserve_scale * context.T @ context
        out[name] = mat1 @ torch.inverse(mat2) - W
    return out


def close_form_emb_regzero(weights_cur, weights_orig, concept_embedding, regeular_scale):
    """RECE Eq. 8 as close_form_emb_regzero: c' = (λI + Σ W_curᵀ W_cur)⁻¹ (Σ W_curᵀ W_orig) c."""
    d = concept_embedding.shape[-1]
    mat1 = torch.eye(d, dtype=F64) * regeular_scale
    mat2 = torch.zeros(d, d, dtype=F64)
    for name, W in weights_cur.items():
        mat1 = mat1 + W.T @ W
        mat2 = mat2 + W.T @ weights_orig[name]
    coefficent = torch.inverse(mat1) @ mat2
    return concept_embedding @ coefficent.T


def edit_model_adversarial(
    encode, weights, old_embeddings, new_embeddings, retain_texts, lamb, erase_scale, preserve_scale
):
    """RECE's edit with embeddings in and the current weights as "old": {name: W_new}."""
    out = {}
    for name, W in weights.items():
        mat1 = lamb * W
        mat2 = lamb * torch.eye(W.shape[1], dtype=F64)
        for old_emb, new_emb in zip(old_embeddings, new_embeddings):
            mat1 += erase_scale * (new_emb @ W.T).T @ old_emb
            mat2 += erase_scale * old_emb.T @ old_emb
        for text in retain_texts:
            (emb, _), _ = encode([text, text])
            mat1 += preserve_scale * (emb @ W.T).T @ emb
            mat2 += preserve_scale * emb.T @ emb
        out[name] = mat1 @ torch.inverse(mat2)
    return out


def rece_reference(
    encode,
    orig,
    concepts,
    guide,
    retain_texts,
    epochs,
    regular_scale,
    lamb,
    erase_scale,
    preserve_scale,
    uce_lamb,
    uce_preserve_scale,
    uce_retain,
    with_to_k=True,
):
    """train.py: a UCE edit, then per epoch close_form_emb_regzero + edit_model_adversarial. {name: dW}.

    Eq. 8 always sums over every to_k and to_v (close_form_emb is called with with_to_k=True); the edits
    touch to_k only if `with_to_k`.
    """
    edited = [n for n in orig if with_to_k or n.endswith("to_v")]
    uce = uce_reference(
        encode,
        {n: orig[n] for n in edited},
        concepts,
        [guide] * len(concepts),
        uce_retain,
        uce_lamb,
        erase_scale,
        uce_preserve_scale,
    )
    cur = {n: orig[n] + uce.get(n, 0) for n in orig}
    for _ in range(epochs):
        adv_emb_list, new_emb_list = [], []
        for concept in concepts:
            (input_embedding, new_embedding), _ = encode([concept, " " if guide == "" else guide])
            adv_emb_list.append(close_form_emb_regzero(cur, orig, input_embedding, regular_scale))
            new_emb_list.append(new_embedding)
        cur.update(
            edit_model_adversarial(
                encode,
                {n: cur[n] for n in edited},
                adv_emb_list,
                new_emb_list,
                retain_texts,
                lamb,
                erase_scale,
                preserve_scale,
            )
        )
    return {n: cur[n] - orig[n] for n in edited}


def nullspace_reference(encode, weights, concepts, guides, keep_texts, lamb, erase_scale, rank_tol):
    """Per layer: ΔW = W es (G − C)ᵀ C P (λI + es P CᵀC P)⁻¹, P = I − K⁺K, literal and dense."""
    C_rows, G_rows = [], []
    for concept, guide in zip(concepts, guides):
        emb, mask = encode([concept, " " if guide == "" else guide])
        i, j = mask[0].sum().item() - 2, mask[1].sum().item() - 2
        far = max(i, j)
        C_rows.append(emb[0][i : len(emb[0]) - (far - i)])
        G_rows.append(emb[1][j : len(emb[1]) - (far - j)])
    C, G = torch.cat(C_rows), torch.cat(G_rows)
    K = torch.cat([encode([t])[0][0] for t in keep_texts])
    P = torch.eye(C.shape[1], dtype=F64) - torch.linalg.pinv(K, rtol=rank_tol) @ K
    out = {}
    for name, W in weights.items():
        CP = C @ P
        out[name] = (
            W
            @ (erase_scale * (G - C).T)
            @ CP
            @ torch.inverse(lamb * torch.eye(C.shape[1], dtype=F64) + erase_scale * CP.T @ CP)
        )
    return out


def of(pipe):
    """(encode, weights) of a pipeline, the first two arguments of every reference."""
    return pipe_encoder(pipe), ca_projections(pipe.unet)


def max_rel_err(fast: dict, ref: dict) -> float:
    """max over layers of max|ΔW_fast − ΔW_ref| / max|ΔW_ref|."""
    assert set(fast) == set(ref), f"layer sets differ: {sorted(set(fast) ^ set(ref))[:3]}"
    return max(float((fast[n].to(F64) - ref[n]).abs().max() / ref[n].abs().max()) for n in ref)
