"""voicebridge inside agent frameworks: one module per framework, each behind an extra.

- :mod:`voicebridge.integrations.livekit`: a LiveKit Agents ``tts.TTS`` (extra ``livekit``);
- :mod:`voicebridge.integrations.pipecat`: a pipecat ``TTSService`` (extra ``pipecat``);
- :mod:`voicebridge.integrations.openai_agents`: an OpenAI Agents SDK ``TTSModel`` (extra
  ``openai-agents``).

Each keeps what the bridge promises (idle rollover through long tool calls, every word exactly
once, flush, word timing, barge-in) and hands the audio to the framework instead of a speaker.
Importing this package imports no framework.
"""
