"""The framework examples run as a user would run them: a subprocess, offline, the embedded
server speaking (the tool call shortened; the real 23 s timer is in each framework's slow test)."""

from __future__ import annotations

from pathlib import Path

from tests.test_examples import clean_env, frames, run_example


def test_livekit_example(tmp_path: Path) -> None:
    out = run_example(
        "livekit_tts.py", "--tool-seconds", "1", "--out", "l.wav", env=clean_env(), cwd=tmp_path
    )
    assert "'Let'" in out and "' Hangzhou'" in out and "'.'" in out  # the aligned transcript
    assert "s of audio in l.wav]" in out
    assert frames(tmp_path / "l.wav") > 24000


def test_pipecat_example(tmp_path: Path) -> None:
    out = run_example(
        "pipecat_pipeline.py",
        "--tool-seconds",
        "1",
        "--out",
        "p.wav",
        env=clean_env(),
        cwd=tmp_path,
    )
    lines = out.splitlines()
    assert lines[0].strip() == "Let me look up the weather It is sunny in Hangzhou"
    story = lines[1]
    assert story.startswith("Once upon a time") and len(story) < 2000  # cut by the barge-in
    assert "Sure I stopped" in out and "interrupted=True]" in out
    assert frames(tmp_path / "p.wav") > 24000


def test_openai_agents_example(tmp_path: Path) -> None:
    out = run_example(
        "openai_agents_voice.py",
        "--tool-seconds",
        "1",
        "--out",
        "a.wav",
        env=clean_env(),
        cwd=tmp_path,
    )
    assert "[turn_started]\n[turn_ended]\n[session_ended]" in out
    assert "bot: Let me look up the weather for you. One moment. In Hangzhou" in out
    assert frames(tmp_path / "a.wav") > 24000
