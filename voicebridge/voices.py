"""The CosyVoice voice catalogue, mapped to espeak-ng languages.

Names come from the SDK documentation's voice tables (the cosyvoice-v1 table is the public v1
list, which those pages only link to). A voice works only with the model family it belongs to: a
v2 voice on cosyvoice-v1 (or the reverse) fails with "[tts:]Engine return error code: 418", like
the real service. Cloned voices are named ``<model>-<prefix>-<id>`` and are accepted for their
own model.
"""

from __future__ import annotations

__all__ = ["MODEL_VOICES", "V1_VOICES", "V2_VOICES", "voice_language"]

_CMN = "cmn"  # Mandarin, also used for the voices listed as "Chinese and English"

_V2_CHINESE = [
    "longhuohuo",
    "longhuhu",
    "longchuanshu",
    "longanpei",
    "longwangwang",
    "longpaopao",
    "longshanshan",
    "longniuniu",
    "longdaiyu",
    "longgaoseng",
    "longyingmu",
    "longyingxun",
    "longyingcui",
    "longyingda",
    "longyingjing",
    "longyingyan",
    "longyingtian",
    "longyingbing",
    "longyingtao",
    "longyingling",
    "longyumi_v2",
    "longxiaochun_v2",
    "longxiaoxia_v2",
    "longanran",
    "longanxuan",
    "longanchong",
    "longanping",
    "longbaizhi",
    "longsanshu",
    "longxiu_v2",
    "longmiao_v2",
    "longyue_v2",
    "longnan_v2",
    "longyuan_v2",
    "longanrou",
    "longqiang_v2",
    "longhan_v2",
    "longxing_v2",
    "longhua_v2",
    "longwan_v2",
    "longcheng_v2",
    "longfeifei_v2",
    "longxiaocheng_v2",
    "longzhe_v2",
    "longyan_v2",
    "longtian_v2",
    "longze_v2",
    "longshao_v2",
    "longhao_v2",
    "kabuleshen_v2",
    "longjielidou_v2",
    "longling_v2",
    "longke_v2",
    "longxian_v2",
    "longlaotie_v2",
    "longfei_v2",
    "libai_v2",
    "longjin_v2",
    "longshu_v2",
    "loongbella_v2",
    "longshuo_v2",
    "longxiaobai_v2",
    "longjing_v2",
    "loongstella_v2",
]
_V2_BRITISH = "loongeva_v2 loongbrian_v2 loongluna_v2 loongluca_v2 loongemily_v2 loongeric_v2"
_V2_AMERICAN = (
    "loongabby_v2 loongannie_v2 loongandy_v2 loongava_v2 loongbeth_v2 loongbetty_v2 "
    "loongcindy_v2 loongcally_v2 loongdavid_v2 loongdonna_v2"
)

V2_VOICES: dict[str, str] = {
    **dict.fromkeys(_V2_CHINESE, _CMN),
    **dict.fromkeys(_V2_BRITISH.split(), "en"),
    **dict.fromkeys(_V2_AMERICAN.split(), "en-us"),
    "longjiayi_v2": "yue",
    "longtao_v2": "yue",
    "loongkyong_v2": "ko",
    "loongtomoka_v2": "ja",
    "loongtomoya_v2": "ja",
}
"""cosyvoice-v2 voice name -> espeak-ng language."""

V1_VOICES: dict[str, str] = dict.fromkeys(
    [
        "longwan",
        "longcheng",
        "longhua",
        "longxiaochun",
        "longxiaoxia",
        "longxiaocheng",
        "longxiaobai",
        "longlaotie",
        "longshu",
        "longshuo",
        "longjing",
        "longmiao",
        "longyue",
        "longyuan",
        "longfei",
        "longjielidou",
        "longtong",
        "longxiang",
        "loongstella",
        "loongbella",
    ],
    _CMN,
)
"""cosyvoice-v1 voice name -> espeak-ng language (all Chinese and English voices)."""

MODEL_VOICES: dict[str, dict[str, str]] = {
    "cosyvoice-v1": V1_VOICES,
    "cosyvoice-v2": V2_VOICES,
    # Inference: the v3 models' own system voices are not in the SDK pages; accept the v2 table.
    "cosyvoice-v3-flash": V2_VOICES,
    "cosyvoice-v3-plus": V2_VOICES,
}


def voice_language(model: str, voice: str) -> str | None:
    """The espeak-ng language for ``voice`` on ``model``, or None when the pair does not exist."""
    catalogue = MODEL_VOICES.get(model)
    if catalogue is None:
        return None
    if voice.startswith(f"{model}-"):  # a cloned voice of this model
        return _CMN
    return catalogue.get(voice)
