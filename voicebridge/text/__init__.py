"""Text side of the bridge: fragmenting, speakable cleanup and the service's character rules."""
