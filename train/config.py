"""The model's shape: one small dataclass, saved inside every checkpoint and every ONNX file."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from . import arguments


class ConfigError(ValueError):
    """A model shape that cannot be built."""


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int  # characters of the data + 1 for BOS
    n_layer: int = 1  # transformer blocks
    n_embd: int = 16  # width of the residual stream
    n_head: int = 4  # attention heads; n_embd must divide evenly among them
    block_size: int = 8  # positions per document (rows of wpe), also the longest sample

    def __post_init__(self):
        for f in fields(self):  # NumPy integers become ints; a bool or a float is a TypeError
            object.__setattr__(self, f.name, arguments.integer(f.name, getattr(self, f.name), 1, ConfigError))
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_embd {self.n_embd} is not divisible by n_head {self.n_head}; "
                "choose n_embd as a multiple of n_head"
            )

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "GPTConfig":
        names = {f.name for f in fields(cls)}
        if not isinstance(d, dict) or set(d) != names:
            raise ConfigError(f"a config needs exactly the keys {sorted(names)}")
        return cls(**d)

    def param_shapes(self) -> dict[str, tuple[int, int]]:
        """microgpt's parameter names and (out, in) shapes, in microgpt's order."""
        V, C = self.vocab_size, self.n_embd
        shapes = {"wte": (V, C), "wpe": (self.block_size, C), "lm_head": (V, C)}
        for i in range(self.n_layer):
            shapes[f"layer{i}.attn_wq"] = (C, C)
            shapes[f"layer{i}.attn_wk"] = (C, C)
            shapes[f"layer{i}.attn_wv"] = (C, C)
            shapes[f"layer{i}.attn_wo"] = (C, C)
            shapes[f"layer{i}.mlp_fc1"] = (4 * C, C)
            shapes[f"layer{i}.mlp_fc2"] = (C, 4 * C)
        return shapes

    def num_params(self) -> int:
        """The sum over param_shapes, in closed form: sizes are checked with it before any
        shape list is built (n_layer 10**9 would be a list of 6 * 10**9 shapes)."""
        V, C = self.vocab_size, self.n_embd
        return 2 * V * C + self.block_size * C + self.n_layer * 12 * C * C
