"""Build the small CLIP tokenizer in ``clip_tokenizer/`` (shipped with the package) from open_clip's BPE vocabulary.

Tests and the tiny demo models need a real CLIP tokenizer (BOS/EOS, padding to ``model_max_length``, the attention mask
UCE/RECE read the last word token from) without network access. open_clip_torch (MIT) ships the
BPE merges CLIP was trained with; we keep the first ``N_MERGES`` of them, which tokenises any text
correctly (words just split into more pieces) with a vocabulary small enough for tiny test models.

    pip download --no-deps open_clip_torch && unzip -j open_clip_torch-*.whl '*bpe_simple_vocab_16e6.txt.gz'
    python -m erasekit.testing.make_clip_tokenizer bpe_simple_vocab_16e6.txt.gz
"""

from __future__ import annotations

import gzip
import json
import sys
from pathlib import Path

from transformers.convert_slow_tokenizer import bytes_to_unicode

N_MERGES = 2000
OUT = Path(__file__).parent / "clip_tokenizer"


def main(bpe_gz: str) -> None:
    lines = gzip.open(bpe_gz, "rt", encoding="utf-8").read().split("\n")
    merges = [tuple(line.split()) for line in lines[1 : 1 + N_MERGES]]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    OUT.mkdir(exist_ok=True)
    (OUT / "vocab.json").write_text(json.dumps({tok: i for i, tok in enumerate(vocab)}))
    (OUT / "merges.txt").write_text("#version: 0.2\n" + "\n".join(" ".join(m) for m in merges) + "\n")
    (OUT / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "CLIPTokenizer",
                "model_max_length": 77,
                "bos_token": "<|startoftext|>",
                "eos_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>",
                "unk_token": "<|endoftext|>",
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
