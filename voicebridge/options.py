"""The run-task options a caller may set, checked before any connection is opened.

One function, :func:`synthesis_parameters`, turns the bridge's keyword arguments into the
:class:`~voicebridge.protocol.SynthesisParameters` of every task, or raises one clear
:class:`~voicebridge.errors.ConfigurationError` naming the option. The ranges are the service's
(docs/protocol.md); the local server enforces the same ones on its side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from .errors import ConfigurationError
from .protocol import (
    DEFAULT_SAMPLE_RATE,
    LANGUAGE_HINTS,
    MAX_INSTRUCTION_CHARACTERS,
    PITCH_RANGE,
    RATE_RANGE,
    SAMPLE_RATES,
    SEED_RANGE,
    VOLUME_RANGE,
    SynthesisParameters,
)

__all__ = ["synthesis_parameters"]


def synthesis_parameters(
    *,
    model: str,
    voice: str,
    sample_rate: int = DEFAULT_SAMPLE_RATE,
    volume: int = 50,
    rate: float = 1.0,
    pitch: float = 1.0,
    word_timestamps: bool = False,
    language_hints: Sequence[str] | None = None,
    seed: int | None = None,
    instruction: str | None = None,
    hot_fix: Mapping[str, Any] | None = None,
    enable_markdown_filter: bool | None = None,
) -> SynthesisParameters:
    """PCM parameters for a task, with the optional ones set only when given."""
    if not isinstance(model, str) or not model:
        raise ConfigurationError("model must be a CosyVoice model name, e.g. cosyvoice-v2")
    if not isinstance(voice, str) or not voice:
        raise ConfigurationError("voice must be a voice name (`voicebridge voices` lists them)")
    if sample_rate not in SAMPLE_RATES:
        rates = ", ".join(map(str, SAMPLE_RATES))
        raise ConfigurationError(f"sample_rate {sample_rate!r} is not one of {rates}")
    _check_range("volume", volume, VOLUME_RANGE, integer=True)
    _check_range("rate", rate, RATE_RANGE)
    _check_range("pitch", pitch, PITCH_RANGE)
    extra: dict[str, Any] = {}
    if word_timestamps:
        extra["word_timestamp_enabled"] = True
    if language_hints is not None:
        extra["language_hints"] = _language_hints(language_hints)
    if seed is not None:
        _check_range("seed", seed, SEED_RANGE, integer=True)
        extra["seed"] = seed
    if instruction is not None:
        if not isinstance(instruction, str) or not instruction.strip():
            raise ConfigurationError("instruction must be non-empty text")
        if len(instruction) > MAX_INSTRUCTION_CHARACTERS:
            raise ConfigurationError(
                f"instruction is {len(instruction)} characters long; the limit is "
                f"{MAX_INSTRUCTION_CHARACTERS}"
            )
        extra["instruction"] = instruction
    if hot_fix is not None:
        extra["hot_fix"] = _hot_fix(hot_fix)
    if enable_markdown_filter is not None:
        if not isinstance(enable_markdown_filter, bool):
            raise ConfigurationError("enable_markdown_filter must be True or False")
        extra["enable_markdown_filter"] = enable_markdown_filter
    return SynthesisParameters(
        model=model,
        voice=voice,
        format="pcm",
        sample_rate=sample_rate,
        volume=volume,
        rate=rate,
        pitch=pitch,
        extra=extra,
    )


def _check_range(
    name: str, value: object, bounds: tuple[float, float], *, integer: bool = False
) -> None:
    low, high = bounds
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds) or not low <= value <= high:
        kind = "an integer" if integer else "a number"
        raise ConfigurationError(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")


def _language_hints(hints: Sequence[str]) -> list[str]:
    if isinstance(hints, str) or not hints:
        raise ConfigurationError('language_hints must be a list of language codes, e.g. ["en"]')
    for hint in hints:
        if hint not in LANGUAGE_HINTS:
            raise ConfigurationError(
                f"unknown language hint {hint!r}: expected one of {', '.join(LANGUAGE_HINTS)}"
            )
    return list(hints)


def _hot_fix(hot_fix: Mapping[str, Any]) -> dict[str, Any]:
    """``{"pronunciation": [{"word": "pinyin"}], "replace": [{"word": "replacement"}]}``."""
    if not isinstance(hot_fix, Mapping) or not set(hot_fix) <= {"pronunciation", "replace"}:
        raise ConfigurationError('hot_fix takes the keys "pronunciation" and "replace"')
    for key, rules in hot_fix.items():
        valid = isinstance(rules, list) and all(
            isinstance(rule, Mapping)
            and all(isinstance(k, str) and isinstance(v, str) and k for k, v in rule.items())
            for rule in rules
        )
        if not valid:
            raise ConfigurationError(f'hot_fix["{key}"] must be a list of {{"word": "text"}} maps')
    return {key: [dict(rule) for rule in rules] for key, rules in hot_fix.items()}
