"""The canonical expression taxonomy and the synonyms used to match class names."""

from __future__ import annotations

CANONICAL: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral", "contempt")

SYNONYMS: dict[str, str] = {
    "anger": "angry", "angry": "angry", "an": "angry", "mad": "angry",
    "disgust": "disgust", "disgusted": "disgust", "di": "disgust",
    "fear": "fear", "fearful": "fear", "afraid": "fear", "scared": "fear", "fe": "fear",
    "happy": "happy", "happiness": "happy", "joy": "happy", "ha": "happy",
    "sad": "sad", "sadness": "sad", "sa": "sad",
    "surprise": "surprise", "surprised": "surprise", "su": "surprise",
    "neutral": "neutral", "calm": "neutral", "ne": "neutral",
    "contempt": "contempt", "co": "contempt",
}


def canonical_name(name: str) -> str | None:
    """Canonical class for a free-form name (``"Happiness"`` → ``"happy"``), or ``None``."""
    key = name.strip().lower().replace("-", "").replace("_", "").replace(" ", "")
    return SYNONYMS.get(key)


def class_mapping(source: list[str], target: list[str]) -> dict[int, int]:
    """Map label indices of ``source`` classes onto ``target`` classes by canonical name.

    Both lists hold canonical names. Classes absent from ``target`` are left out of the map.
    """
    pos = {c: i for i, c in enumerate(target)}
    return {i: pos[c] for i, c in enumerate(source) if c in pos}
