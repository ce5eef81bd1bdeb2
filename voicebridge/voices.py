"""The CosyVoice voice catalogue: which voices each model has, their language and gender.

Names, languages and genders come from the SDK documentation's cosyvoice-v2 voice table (the
"trait" column ends in 女 or 男, 女童/男童 for children). The cosyvoice-v1 table is the public v1
list, which those pages only link to; a v1 voice's gender is taken from its v2 namesake, and left
unknown where there is none. A voice works only with the model family it belongs to: a v2 voice
on cosyvoice-v1 (or the reverse) fails with "[tts:]Engine return error code: 418", like the real
service. Cloned voices are named ``<model>-<prefix>-<id>`` and are accepted for their own model.

Each voice also names the espeak-ng language the local server speaks it with
(:func:`voice_language`).
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "DEFAULT_MODEL",
    "DEFAULT_VOICE",
    "MODEL_VOICES",
    "V1_VOICES",
    "V2_VOICES",
    "Voice",
    "model_voices",
    "voice_language",
]


DEFAULT_MODEL = "cosyvoice-v2"
DEFAULT_VOICE = "longxiaochun_v2"  # female, Mandarin Chinese and English, the SDK samples' voice


@dataclass(frozen=True)
class Voice:
    """One system voice. ``gender`` is "female", "male" or None (unknown); ``engine_language``
    is the espeak-ng language the local server uses for it."""

    name: str
    language: str
    gender: str | None
    engine_language: str
    child: bool = False

    def describe(self) -> str:
        """``female, Mandarin Chinese and English`` (gender first when known)."""
        who = self.gender or "gender unknown"
        return f"{who}{' (child)' if self.child else ''}, {self.language}"


_ZH_EN = "Mandarin Chinese and English"
_LANGUAGES = {
    # table's language column -> (what we print, espeak-ng language)
    "zh": (_ZH_EN, "cmn"),
    "zh-northeast": ("Northeastern Mandarin and English", "cmn"),
    "yue": ("Cantonese and English", "yue"),
    "en-gb": ("British English", "en"),
    "en-us": ("American English", "en-us"),
    "ko": ("Korean", "ko"),
    "ja": ("Japanese", "ja"),
}


def _table(rows: str) -> tuple[Voice, ...]:
    """``name gender language`` rows; gender f/m/g(irl)/b(oy)/? (unknown)."""
    voices = []
    for row in rows.strip().splitlines():
        name, gender, language = row.split()
        label, engine = _LANGUAGES[language]
        voices.append(
            Voice(
                name=name,
                language=label,
                gender={"f": "female", "g": "female", "m": "male", "b": "male"}.get(gender),
                engine_language=engine,
                child=gender in ("g", "b"),
            )
        )
    return tuple(voices)


_V2 = _table("""
longhuohuo b zh
longhuhu g zh
longchuanshu m zh
longanpei f zh
longwangwang b zh
longpaopao ? zh
longshanshan ? zh
longniuniu b zh
longdaiyu f zh
longgaoseng m zh
longyingmu f zh
longyingxun m zh
longyingcui m zh
longyingda f zh
longyingjing f zh
longyingyan f zh
longyingtian f zh
longyingbing f zh
longyingtao f zh
longyingling f zh
longyumi_v2 f zh
longxiaochun_v2 f zh
longxiaoxia_v2 f zh
longanran f zh
longanxuan f zh
longanchong m zh
longanping f zh
longbaizhi f zh
longsanshu m zh
longxiu_v2 m zh
longmiao_v2 f zh
longyue_v2 f zh
longnan_v2 m zh
longyuan_v2 f zh
longanrou f zh
longqiang_v2 f zh
longhan_v2 m zh
longxing_v2 f zh
longhua_v2 f zh
longwan_v2 f zh
longcheng_v2 m zh
longfeifei_v2 f zh
longxiaocheng_v2 m zh
longzhe_v2 m zh
longyan_v2 f zh
longtian_v2 m zh
longze_v2 m zh
longshao_v2 m zh
longhao_v2 m zh
kabuleshen_v2 m zh
longjielidou_v2 b zh
longling_v2 g zh
longke_v2 g zh
longxian_v2 g zh
longlaotie_v2 m zh-northeast
longjiayi_v2 f yue
longtao_v2 f yue
longfei_v2 m zh
libai_v2 m zh
longjin_v2 m zh
longshu_v2 m zh
loongbella_v2 f zh
longshuo_v2 m zh
longxiaobai_v2 f zh
longjing_v2 f zh
loongstella_v2 f zh
loongeva_v2 f en-gb
loongbrian_v2 m en-gb
loongluna_v2 f en-gb
loongluca_v2 m en-gb
loongemily_v2 f en-gb
loongeric_v2 m en-gb
loongabby_v2 f en-us
loongannie_v2 f en-us
loongandy_v2 m en-us
loongava_v2 f en-us
loongbeth_v2 f en-us
loongbetty_v2 f en-us
loongcindy_v2 f en-us
loongcally_v2 f en-us
loongdavid_v2 m en-us
loongdonna_v2 f en-us
loongkyong_v2 f ko
loongtomoka_v2 f ja
loongtomoya_v2 m ja
""")

_V1 = _table("""
longwan f zh
longcheng m zh
longhua f zh
longxiaochun f zh
longxiaoxia f zh
longxiaocheng m zh
longxiaobai f zh
longlaotie m zh-northeast
longshu m zh
longshuo m zh
longjing f zh
longmiao f zh
longyue f zh
longyuan f zh
longfei m zh
longjielidou b zh
longtong ? zh
longxiang ? zh
loongstella f zh
loongbella f zh
""")

MODEL_VOICES: dict[str, tuple[Voice, ...]] = {
    "cosyvoice-v1": _V1,
    "cosyvoice-v2": _V2,
    # Inference: the v3 models' own system voices are not in the SDK pages; accept the v2 table.
    "cosyvoice-v3-flash": _V2,
    "cosyvoice-v3-plus": _V2,
}
"""Model -> its system voices, in the documentation's order."""

V2_VOICES: dict[str, str] = {voice.name: voice.engine_language for voice in _V2}
"""cosyvoice-v2 voice name -> espeak-ng language."""

V1_VOICES: dict[str, str] = {voice.name: voice.engine_language for voice in _V1}
"""cosyvoice-v1 voice name -> espeak-ng language."""

_BY_NAME = {model: {v.name: v for v in voices} for model, voices in MODEL_VOICES.items()}


def model_voices(model: str) -> tuple[Voice, ...]:
    """The system voices of ``model`` (empty for a model not in the catalogue)."""
    return MODEL_VOICES.get(model, ())


def voice_language(model: str, voice: str) -> str | None:
    """The espeak-ng language for ``voice`` on ``model``, or None when the pair does not exist."""
    catalogue = _BY_NAME.get(model)
    if catalogue is None:
        return None
    if voice.startswith(f"{model}-"):  # a cloned voice of this model
        return "cmn"
    entry = catalogue.get(voice)
    return entry.engine_language if entry is not None else None
