"""The text engine's audio decodes to exactly what was heard, however it was cut."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from voicebridge.server import DecodedText, SpeechRequest, TextEngine, decode_text_audio
from voicebridge.server.text_engine import FRAME_BYTES

ENGINE = TextEngine(seconds_per_character=0.002)  # short blocks keep the examples small
RATE = 16000
FRAMES = ENGINE.frames_per_character(RATE)
BLOCK = FRAMES * FRAME_BYTES  # bytes per character


def audio(text: str) -> bytes:
    stream = ENGINE.synthesize(SpeechRequest(text, "en", sample_rate=RATE))
    assert stream.sample_rate == RATE  # the task's own rate: nothing resamples it
    return b"".join(item for item in stream if isinstance(item, bytes))


texts = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=30)


@given(texts)
def test_decoding_gives_back_the_text(text: str) -> None:
    data = audio(text)
    assert len(data) == len(text) * BLOCK
    assert decode_text_audio(data) == decode_text_audio(data[:7] + data[7:])
    decoded = decode_text_audio(data)
    assert (decoded.text, decoded.orphans, decoded.invalid_bytes) == (text, 0, 0)


@settings(max_examples=200)
@given(texts, st.data())
def test_a_cut_keeps_the_characters_whose_start_frame_arrived(
    text: str, data: st.DataObject
) -> None:
    whole = audio(text)
    cut = data.draw(st.integers(0, len(whole)))
    heard = decode_text_audio(whole[:cut])
    started = (cut // BLOCK) + (1 if cut % BLOCK >= 8 else 0)
    assert heard.text == text[:started] and heard.invalid_bytes == 0
    rest = decode_text_audio(whole[cut:])  # the listener who missed the start
    assert rest.text == text[-(-cut // BLOCK) :]  # the blocks that begin after the cut
    block_end, next_frame = -(-cut // BLOCK) * BLOCK, -(-cut // 8) * 8
    assert rest.orphans == (1 if cut % BLOCK and next_frame + 8 <= block_end else 0)


@settings(max_examples=200)
@given(texts, st.data())
def test_replays_trimmed_wrong_show_as_repeats_losses_or_damage(
    text: str, data: st.DataObject
) -> None:
    whole = audio(text)
    cut = data.draw(st.integers(0, len(whole)))
    resume = data.draw(st.integers(0, len(whole)))  # where the replayed audio is trimmed to
    decoded = decode_text_audio(whole[:cut] + whole[resume:])
    head = decode_text_audio(whole[:cut]).text
    assert set(decoded.text) <= set(text)  # however it was trimmed, no character is invented
    if (cut - resume) % FRAME_BYTES:  # trimmed inside a frame: the seam is damage
        assert decoded.invalid_bytes > 0 or len(whole) - resume < 2 * FRAME_BYTES
    elif resume == cut:
        assert decoded == DecodedText(text)
    elif resume < cut:  # trimmed too little: what was heard from resume on comes again
        assert decoded.text.startswith(head) and len(decoded.text) >= len(text)
    else:  # trimmed too much: characters are missing
        assert len(decoded.text) <= len(text)


def test_misaligned_and_damaged_bytes_never_decode_as_characters() -> None:
    whole = audio("hello")
    shifted = decode_text_audio(whole[: BLOCK + 3] + whole[BLOCK + 4 :])  # one byte lost
    assert shifted.invalid_bytes > 0 and set(shifted.text) <= set("hello")
    damaged = bytearray(whole)
    damaged[2 * BLOCK + 1] ^= 0x01  # the start frame of the first "l"
    result = decode_text_audio(bytes(damaged))
    assert result.text == "helo" and result.orphans == 1 and result.invalid_bytes > 0


def test_rate_shortens_the_characters_and_volume_is_ignored() -> None:
    slow = ENGINE.synthesize(SpeechRequest("ab", "en", rate=0.5, volume=0, sample_rate=RATE))
    data = b"".join(i for i in slow if isinstance(i, bytes))
    assert len(data) == 2 * ENGINE.frames_per_character(RATE, 0.5) * 8 > 2 * BLOCK
    assert decode_text_audio(data).text == "ab"
