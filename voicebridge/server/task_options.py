"""A run-task's parameters, validated the way the service does, and the service's error texts.

Pure. :func:`task_options` turns a received :class:`RunTask` into :class:`TaskOptions` or raises
:class:`TaskRejected` with the code and message the task-failed event carries. Texts quoted from
the service are listed in docs/protocol.md ("Known error messages"); the texts for the optional
parameters are this server's own (the service's are not published), each naming the parameter.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import TaskRejected
from ..protocol import (
    DEFAULT_FORMAT,
    FORMATS,
    LANGUAGE_HINTS,
    MAX_INSTRUCTION_CHARACTERS,
    SAMPLE_RATES,
    RunTask,
    SynthesisParameters,
)

__all__ = ["ESPEAK_LANGUAGES", "TaskOptions", "task_options"]

# Error texts of the real service (docs/protocol.md, "Known error messages").
MSG_IDLE_TIMEOUT = "request timeout after 23 seconds."
MSG_EMPTY_TEXT = "Please ensure input text is valid."
MSG_MODEL_MISSING = "Missing required parameter 'payload.model'! Please follow the protocol!"
MSG_VOICE_MISSING = "Request voice is invalid!"
MSG_VOICE_UNKNOWN = "[tts:]Engine return error code: 418"
MSG_INPUT_MISSING = "task can not be null"
CODE_INVALID_PARAMETER = "InvalidParameter"
CODE_CLIENT_ERROR = "CLIENT_ERROR"
CODE_INTERNAL_ERROR = "InternalError"

ESPEAK_LANGUAGES: dict[str, str] = {
    "zh": "cmn",
    "en": "en-us",
    "ja": "ja",
    "ko": "ko",
    "fr": "fr",
    "de": "de",
    "es": "es",
    "it": "it",
    "ru": "ru",
    "pt": "pt",
    "th": "th",
}
"""Each ``language_hints`` value the service takes (:data:`voicebridge.protocol.LANGUAGE_HINTS`;
the first element is used) -> the espeak-ng language that speaks it here."""

_FAMILIES = {"cmn": "zh", "yue": "zh"}  # espeak-ng languages that a "zh" hint keeps


@dataclass(frozen=True)
class TaskOptions:
    """A validated run-task. ``language`` is the espeak-ng language spoken (the voice's, or the
    first language hint's); ``replacements`` are ``hot_fix.replace`` pairs in order."""

    parameters: SynthesisParameters
    language: str
    word_timestamps: bool = False
    replacements: tuple[tuple[str, str], ...] = ()
    markdown_filter: bool = False


def _reject(message: str) -> TaskRejected:
    return TaskRejected(CODE_INVALID_PARAMETER, message)


def _number(params: Mapping[str, Any], name: str, default: float, low: float, high: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not low <= value <= high:
        raise _reject(f"Parameter '{name}' must be a number from {low:g} to {high:g}.")
    return float(value)


def _integer(params: Mapping[str, Any], name: str, low: int, high: int) -> None:
    value = params.get(name, low)
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _reject(f"Parameter '{name}' must be an integer from {low} to {high}.")


def _flag(params: Mapping[str, Any], name: str) -> bool:
    value = params.get(name, False)
    if not isinstance(value, bool):
        raise _reject(f"Parameter '{name}' must be true or false.")
    return value


def _language(params: Mapping[str, Any], voice_language: str) -> str:
    hints = params.get("language_hints")
    if hints is None:
        return voice_language
    if not isinstance(hints, list) or not all(isinstance(h, str) for h in hints):
        raise _reject("Parameter 'language_hints' must be a list of language codes.")
    if not hints:
        return voice_language
    hinted = ESPEAK_LANGUAGES.get(hints[0].lower())
    if hinted is None:
        known = ", ".join(LANGUAGE_HINTS)
        raise _reject(f"Parameter 'language_hints' has an unknown language {hints[0]!r} "
                      f"(known: {known}).")  # fmt: skip
    family = _FAMILIES.get(hinted, hinted.split("-")[0])
    if _FAMILIES.get(voice_language, voice_language.split("-")[0]) == family:
        return voice_language  # keep the voice's own accent (British, Cantonese...)
    return hinted


def _replacements(params: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    hot_fix = params.get("hot_fix")
    if hot_fix is None:
        return ()
    shape = (
        "Parameter 'hot_fix' must be an object with lists 'pronunciation' and 'replace' of "
        '{"text": "replacement"} objects.'
    )
    if not isinstance(hot_fix, dict) or set(hot_fix) - {"pronunciation", "replace"}:
        raise _reject(shape)
    pairs: list[tuple[str, str]] = []
    for key in ("pronunciation", "replace"):
        entries = hot_fix.get(key, [])
        if not isinstance(entries, list):
            raise _reject(shape)
        for entry in entries:
            if not isinstance(entry, dict) or not entry:
                raise _reject(shape)
            for source, target in entry.items():
                if not isinstance(target, str) or not source:
                    raise _reject(shape)
                if key == "replace":
                    pairs.append((source, target))
    return tuple(pairs)


def _instruction(params: Mapping[str, Any]) -> None:
    instruction = params.get("instruction")
    if instruction is None:
        return
    if not isinstance(instruction, str) or len(instruction) > MAX_INSTRUCTION_CHARACTERS:
        raise _reject(f"Parameter 'instruction' must be a text of at most "
                      f"{MAX_INSTRUCTION_CHARACTERS} characters.")  # fmt: skip


_BASIC = frozenset({"text_type", "voice", "format", "sample_rate", "volume", "rate", "pitch"})


def task_options(
    message: RunTask,
    voice_language: Callable[[str, str], str | None],
    *,
    default_sample_rate: int = 22050,
) -> TaskOptions:
    """Validate a received run-task; ``voice_language(model, voice)`` names the voice's
    espeak-ng language, or None when the voice does not exist for the model."""
    if not message.has_input:
        raise _reject(MSG_INPUT_MISSING)
    if not message.model:
        raise _reject(MSG_MODEL_MISSING)
    params = message.parameters
    voice = params.get("voice")
    if not isinstance(voice, str) or not voice:
        raise _reject(MSG_VOICE_MISSING)
    fmt = params.get("format", DEFAULT_FORMAT)
    fmt = fmt.lower() if isinstance(fmt, str) else fmt
    if fmt in (None, "", "default"):
        fmt = "mp3"
    if fmt not in FORMATS:
        raise _reject(f"Parameter 'format' is invalid: {fmt!r}.")
    sample_rate = params.get("sample_rate", 0) or default_sample_rate
    if sample_rate not in SAMPLE_RATES:
        raise _reject(f"Parameter 'sample_rate' is invalid: {sample_rate!r}.")
    parameters = SynthesisParameters(
        model=message.model,
        voice=voice,
        format=str(fmt),
        sample_rate=int(sample_rate),
        volume=int(_number(params, "volume", 50, 0, 100)),
        rate=_number(params, "rate", 1.0, 0.5, 2.0),
        pitch=_number(params, "pitch", 1.0, 0.5, 2.0),
        extra={k: v for k, v in params.items() if k not in _BASIC},
    )
    _integer(params, "seed", 0, 65535)  # accepted: the local engines are deterministic
    _integer(params, "bit_rate", 6, 510)  # kbps, opus only: accepted, unused by this server
    _instruction(params)  # accepted, no effect on the local engines
    word_timestamps = _flag(params, "word_timestamp_enabled")
    markdown_filter = _flag(params, "enable_markdown_filter")
    replacements = _replacements(params)
    language = voice_language(message.model, voice)
    if language is None:
        raise _reject(MSG_VOICE_UNKNOWN)
    return TaskOptions(
        parameters=parameters,
        language=_language(params, language),
        word_timestamps=word_timestamps,
        replacements=replacements,
        markdown_filter=markdown_filter,
    )
