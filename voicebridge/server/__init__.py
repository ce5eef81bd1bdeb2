"""Local CosyVoice-compatible server: websockets app, speech engines, voices, fault injection."""
