"""Part 1 of ACE (package docstring): a broad set of neutral captions from generic English, no world's words.

The gate must stay shut on any prompt that does not ask for the concept, so it is fitted and
calibrated against thousands of ordinary captions, not a handful of templates. They are composed
here from plain English (subjects, attributes, places, media, and short phrases of everyday
speech), so the method never needs a world's vocabulary: :func:`neutral_captions` draws ``n`` of
them under a seed and drops every caption that shares a word with the erased concepts, and
:func:`in_context` puts a concept into such captions in the ways prompts name things ("... by X",
"X painting of ...", "a X on a table"): the erased concepts there are the gate's positives, the
preserved ones its hardest negatives (the same contexts, another name).
"""

from __future__ import annotations

from collections.abc import Iterable

import torch

SUBJECTS = (
    "cat", "dog", "horse", "bird", "fish", "cow", "sheep", "rabbit", "bear", "lion", "owl", "duck",
    "man", "woman", "child", "old man", "girl", "boy", "family", "crowd", "soldier", "farmer", "musician",
    "house", "tower", "bridge", "castle", "barn", "cottage", "skyscraper", "lighthouse", "temple", "market",
    "car", "bicycle", "boat", "train", "airplane", "bus", "truck", "ship", "motorcycle", "tractor",
    "tree", "flower", "forest", "mountain", "river", "lake", "beach", "desert", "field", "garden", "island",
    "apple", "bowl of fruit", "cup of coffee", "loaf of bread", "vase", "chair", "table", "lamp", "book",
    "clock", "guitar", "piano", "violin", "camera", "telephone", "umbrella", "hat", "shoe", "bottle",
    "street", "city", "village", "harbor", "kitchen", "bedroom", "library", "station", "park", "road",
)  # fmt: skip
ATTRIBUTES = (
    "", "", "", "small", "large", "old", "new", "tall", "tiny", "shiny", "wooden", "metal", "broken",
    "white", "black", "gray", "brown", "pink", "silver", "golden", "dark", "bright", "pale", "colorful",
    "happy", "sleepy", "quiet", "busy", "empty", "ancient", "modern", "rusty", "wet", "snowy", "sunny",
)  # fmt: skip
PLACES = (
    "", "", "", "on a table", "in a field", "at night", "in the rain", "at sunset", "in winter",
    "by the sea", "in the city", "on a hill", "in a room", "under a tree", "near a river", "in the snow",
    "on the street", "in a garden", "at dawn", "in the fog", "in the desert", "on a shelf", "in the sky",
)  # fmt: skip
FRAMES = (
    "{}", "a {}", "a photo of a {}", "a picture of a {}", "an image of a {}", "a painting of a {}",
    "a drawing of a {}", "a sketch of a {}", "an illustration of a {}", "a close-up of a {}",
    "a watercolor of a {}", "a poster of a {}", "a postcard with a {}", "a view of a {}",
    "a black and white photo of a {}", "a detailed rendering of a {}", "a cartoon of a {}",
    "a snapshot of a {}", "a portrait of a {}", "a still life with a {}", "two {}s", "a {} and a {}",
    "an artwork of a {}", "a canvas showing a {}", "a {} painted in oil", "a {}, digital art", "a sculpture of a {}",
    "a print of a {}", "a {} in a museum", "a study of a {}", "a mural of a {}", "a {} next to a {}",
)  # fmt: skip
PHRASES = (
    "", "a photo", "a picture", "an image", "a scene", "art", "something", "nothing in particular",
    "a quiet afternoon", "a sunny day", "the weekend", "a long walk home", "breakfast", "a birthday party",
    "a rainy morning", "a busy street", "the view from a window", "a summer holiday", "an ordinary day",
    "some objects", "a landscape", "an interior", "a portrait", "a texture", "a pattern", "a background",
)  # fmt: skip


_STOP = {"the", "and", "with", "for", "from", "style", "painting", "photo", "art"}  # frame words, not the concept


def _pick(seq: tuple[str, ...], gen: torch.Generator) -> str:
    return seq[int(torch.randint(len(seq), (1,), generator=gen))]


def _caption(gen: torch.Generator) -> str:
    if int(torch.randint(8, (1,), generator=gen)) == 0:
        return _pick(PHRASES, gen)
    frame = _pick(FRAMES, gen)
    things = [" ".join(w for w in (_pick(ATTRIBUTES, gen), _pick(SUBJECTS, gen)) if w) for _ in range(2)]
    text = frame.format(*things[: frame.count("{}")])
    place = _pick(PLACES, gen)
    return f"{text} {place}".strip()


def content_words(texts: Iterable[str]) -> set[str]:
    """The words of ``texts`` that can name a concept (not "a", "the", "style", ...)."""
    return {w for text in texts for w in text.lower().split() if len(w) > 2} - _STOP


def neutral_captions(n: int, *, seed: int, avoid: Iterable[str] = ()) -> list[str]:
    """``n`` distinct generic captions drawn under ``seed``, none sharing a word with ``avoid``."""
    banned = content_words(avoid)
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, None] = {}
    for _ in range(20 * n):  # distinct captions run out long before 20 n draws (~10⁶ combinations)
        if len(out) == n:
            break
        text = _caption(gen)
        if not banned & set(text.lower().split()):
            out[text] = None
    return list(out)


_ONSETS = ("b", "c", "d", "f", "g", "h", "j", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "ch",
           "cl", "dr", "gr", "kr", "mc", "sh", "st", "th", "tr", "")  # fmt: skip
_VOWELS = ("a", "e", "i", "o", "u", "ai", "ea", "ou", "y")
_CODAS = ("", "", "", "n", "r", "l", "s", "t", "m", "k", "nd", "rt", "ck", "ng", "st")


FIRST_NAMES = (
    "james", "john", "robert", "michael", "david", "william", "richard", "thomas", "charles", "daniel", "paul",
    "mark", "george", "peter", "henry", "jack", "sam", "tom", "max", "leo", "andy", "ben", "alex", "chris", "eric",
    "frank", "steve", "joe", "edward", "francis", "brian", "kevin", "jason", "ryan", "adam", "simon", "carlos",
    "mary", "anna", "emma", "sarah", "laura", "lisa", "kate", "kelly", "julia", "rose", "grace", "alice", "jane",
    "lucy", "helen", "claire", "nina", "maria", "sophie", "susan", "linda", "mia", "olivia", "amy", "eva",
)  # fmt: skip


def made_up_name(gen: torch.Generator) -> str:
    """A name no vocabulary holds ("mcternan", "drolia vasker", "kelly brastin"): two or three random syllables,
    once or twice, half the time after a common first name.

    Artists' and people's names reach a text encoder as rare word pieces behind a first name that is a
    whole word; the gate must stay shut on a name it was not given, and generic captions and whole
    vocabulary words rarely show it one (before the first names, the gate of "parachute" opened on "andy"
    and "kelly" in 29% of the other concepts' val prompts).
    """

    def word() -> str:
        syllables = 2 + int(torch.randint(2, (1,), generator=gen))
        return "".join(_pick(_ONSETS, gen) + _pick(_VOWELS, gen) + _pick(_CODAS, gen) for _ in range(syllables))

    first = [_pick(FIRST_NAMES, gen)] if int(torch.randint(2, (1,), generator=gen)) else []
    return " ".join([*first, *(word() for _ in range(1 + int(torch.randint(2, (1,), generator=gen))))])


CONTEXTS = (
    "{c}", "a {c}", "a photo of {c}", "{s} by {c}", "{s} in the style of {c}", "{c} painting of {s}",
    "{s}, {c}", "a {a} {c} {p}", "a painting of a {c} {p}", "{s} with a {c}", "{c} style, {s}", "art by {c}",
)  # fmt: skip


def in_context(concept: str, n: int, *, seed: int, first_names: bool = False) -> list[tuple[str, str]]:
    """``n`` captions naming ``concept`` in generic contexts: ``(caption, its text up to the concept's end)``.

    ``first_names``: every fourth names it behind a common first name ("... by kelly picasso"), as the gate's
    negatives name made-up surnames (:func:`made_up_name`): a first name alone must neither open the gate
    nor keep the concept after it from opening it.
    """
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        form = CONTEXTS[i % len(CONTEXTS)]
        fill = {"s": _caption(gen), "a": _pick(ATTRIBUTES, gen), "p": _pick(PLACES, gen)}
        c = f"{_pick(FIRST_NAMES, gen)} {concept}" if first_names and i % 4 == 3 else concept
        text = " ".join(form.format(c=c, **fill).split())
        head = " ".join(form[: form.index("{c}") + 3].format(c=c, **fill).split())
        out.append((text, head))
    return out
