"""Shared by the audio packs (smart-home, assistant): espeak-ng synthesis, the in-model log-mel front end, the CNN."""
