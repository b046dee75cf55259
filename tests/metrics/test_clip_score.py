import pytest
import torch
from PIL import Image
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

from erasekit.errors import MissingWeightsError
from erasekit.metrics import CLIPScore
from erasekit.worlds.tiny import TOKENIZER_DIR


@pytest.fixture(scope="module")
def tiny_clip(tmp_path_factory):
    """A random CLIP with ViT-B/32's structure at toy sizes, saved as a transformers folder."""
    tok = CLIPTokenizer.from_pretrained(TOKENIZER_DIR)
    ids = dict(bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                         num_attention_heads=2, max_position_embeddings=77, **ids),
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        projection_dim=8,
    )  # fmt: skip
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("clip")
    CLIPModel(cfg).save_pretrained(path)
    image_proc = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    CLIPProcessor(image_processor=image_proc, tokenizer=tok).save_pretrained(path)
    return path


def _images(n, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [
        Image.fromarray(torch.randint(0, 256, (40, 40, 3), generator=g, dtype=torch.uint8).numpy()) for _ in range(n)
    ]


@torch.no_grad()
def test_clip_score_is_100_times_cosine(tiny_clip):
    metric = CLIPScore(weights=tiny_clip)
    images, prompts = _images(3), ["a cat", "a dog on a mat", "church"]
    # the reference: CLIP's projected pooled embeddings, cosine, times 100, per pair
    model, proc = metric.model, metric.processor
    inputs = proc(text=prompts, images=images, return_tensors="pt", padding=True)
    text = model.text_projection(model.text_model(inputs.input_ids, inputs.attention_mask).pooler_output)
    image = model.visual_projection(model.vision_model(inputs.pixel_values).pooler_output)
    expected = 100 * torch.nn.functional.cosine_similarity(text.double(), image.double(), dim=-1)
    torch.testing.assert_close(metric.scores(images, prompts), expected, rtol=1e-5, atol=1e-4)
    metric.update(images[:2], prompts[:2])
    metric.update(images[2:], prompts[2:])
    assert metric.compute()["clip_score"] == pytest.approx(float(expected.mean()), abs=1e-4)


def test_prompts_longer_than_77_tokens_are_truncated(tiny_clip):
    metric = CLIPScore(weights=tiny_clip)
    metric.update(_images(1), ["a very long prompt " * 40])
    assert torch.isfinite(torch.tensor(metric.compute()["clip_score"]))


def test_missing_clip_weights(tmp_path, monkeypatch):
    monkeypatch.delenv("ERASEKIT_CLIP", raising=False)
    with pytest.raises(MissingWeightsError, match=r"CLIP ViT-B/32.*--weights clip=PATH"):
        CLIPScore(weights=tmp_path / "no-clip")


def test_incomplete_clip_folder(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(MissingWeightsError, match="not a complete transformers CLIP folder"):
        CLIPScore(weights=tmp_path)
