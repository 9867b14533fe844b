"""The tokenizer that travels with a language-model artifact (``lm.json``'s ``"tokenizer"``). Stdlib only.

>>> tok = Tokenizer.from_json({"kind": "char", "vocab": ["\\n", " ", "a", "b"]})
>>> tok.encode("ab a")
[2, 3, 1, 2]
>>> tok.decode([3, 2])
'ba'
"""

from __future__ import annotations

from ..errors import ArtifactError, InputError

__all__ = ["Tokenizer"]


class Tokenizer:
    """A character-level vocabulary: token ``i`` is the string ``vocab[i]`` (one character each)."""

    kind = "char"

    def __init__(self, vocab: list):
        if not vocab or any(not isinstance(t, str) or len(t) != 1 for t in vocab) or len(set(vocab)) != len(vocab):
            raise ArtifactError("tokenizer vocabulary must be distinct single characters")
        self.vocab = list(vocab)
        self._index = {t: i for i, t in enumerate(self.vocab)}

    @classmethod
    def from_json(cls, data: dict) -> "Tokenizer":
        kind = (data or {}).get("kind")
        if kind != "char":
            raise ArtifactError(f"tokenizer kind '{kind}' is not supported by this runtime (it reads: char)")
        return cls(data.get("vocab") or [])

    def to_json(self) -> dict:
        return {"kind": self.kind, "vocab": self.vocab}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str) -> list:
        """Token ids of ``text``; InputError naming the first character the vocabulary lacks."""
        ids = []
        for pos, char in enumerate(text):
            token = self._index.get(char)
            if token is None:
                raise InputError(f"prompt character {char!r} (U+{ord(char):04X}, at {pos}) is not in the model's "
                                 f"vocabulary of {len(self.vocab)} characters")
            ids.append(token)
        return ids

    def token(self, text: str) -> int:
        """The id of one token (a stop token given as text); InputError when it is not exactly one token."""
        if text not in self._index:
            raise InputError(f"stop token {text!r} is not a token of the model's vocabulary (one character each)")
        return self._index[text]

    def decode(self, ids) -> str:
        return "".join(self.vocab[int(i)] for i in ids)
