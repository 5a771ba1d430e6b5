"""Acoustic models, chosen by name. Each maps log-mel features to per-frame class log-probabilities.

Common interface: `model(feats (batch, n_mels, frames), lengths (batch,)) -> (log_probs (batch, frames',
classes), out_lengths (batch,))`.
"""
from dataclasses import asdict, dataclass, field, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .features import SEED_FEATURES, FeatureConfig, SpecAugmentConfig
from .text import NUM_CLASSES

ARCHITECTURE_NAMES = ("seed", "default")
LIMITS = {"n_mels": (8, 256), "num_classes": (2, 1024), "hidden_size": (8, 1536), "num_layers": (1, 8),
          "conv_channels": (8, 1024), "stride": (1, 8), "sample_rate": (4000, 48000),
          "n_fft": (64, 4096), "hop_length": (16, 2048), "win_length": (16, 4096)}


@dataclass
class ModelConfig:
    architecture: str = "default"  # "seed" or "default"
    n_mels: int = 80
    num_classes: int = NUM_CLASSES
    hidden_size: int = 256
    num_layers: int = 3
    conv_channels: int = 256
    stride: int = 3  # time subsampling of the default model's front-end
    dropout: float = 0.1
    features: FeatureConfig = field(default_factory=FeatureConfig)
    specaugment: SpecAugmentConfig = field(default_factory=SpecAugmentConfig)

    def __post_init__(self):
        """Sizes within LIMITS: a model directory from a stranger must not allocate gigabytes."""
        for name, (low, high) in LIMITS.items():
            value = getattr(self, name) if hasattr(self, name) else getattr(self.features, name)
            if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
                raise ValueError(f"model config: {name} = {value!r}, expected an integer in [{low}, {high}]")
        if self.architecture not in ARCHITECTURE_NAMES:
            raise ValueError(f"model config: unknown architecture {self.architecture!r} "
                             f"(known: {', '.join(ARCHITECTURE_NAMES)})")

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        data = dict(data)
        try:
            features = FeatureConfig(**data.pop("features", {}))
            specaugment = SpecAugmentConfig(**data.pop("specaugment", {}))
            return cls(**data, features=features, specaugment=specaugment)
        except TypeError as exc:  # an unknown or missing field
            raise ValueError(f"model config: {exc}") from None

    def to_dict(self) -> dict:
        return asdict(self)


PRESETS = ("seed", "default", "tiny")


def preset(name: str) -> ModelConfig:
    """The named architectures with their features and augmentation defaults."""
    if name == "seed":
        return ModelConfig(architecture="seed", n_mels=81, hidden_size=1024, num_layers=1,
                           conv_channels=81, stride=2, features=SEED_FEATURES,
                           specaugment=SpecAugmentConfig())
    if name == "tiny":  # for tests and smoke runs: learns a handful of clips in seconds
        return ModelConfig(hidden_size=64, num_layers=1, conv_channels=64, stride=2, dropout=0.0,
                           specaugment=SpecAugmentConfig(enabled=False))
    if name == "default":
        return ModelConfig(specaugment=SpecAugmentConfig(rate=0.8, freq_mask=15, time_mask=40,
                                                         time_mask_fraction=0.2))
    raise ValueError(f"unknown model {name!r}: choose one of {PRESETS}")


class ActDropNormCNN1D(nn.Module):
    """The notebook's LayerNorm -> GELU -> dropout over the channel axis of (batch, channels, time)."""

    def __init__(self, n_feats: int, dropout: float, keep_shape: bool = False):
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(n_feats)
        self.keep_shape = keep_shape

    def forward(self, x):
        x = x.transpose(1, 2)
        x = self.dropout(F.gelu(self.norm(x)))
        return x.transpose(1, 2) if self.keep_shape else x


class SeedModel(nn.Module):
    """The original notebook's `SpeechRecognition`, layer for layer (parameter names kept)."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        n_feats, hidden, dropout = config.n_mels, config.hidden_size, config.dropout
        self.num_layers, self.hidden_size = config.num_layers, hidden
        self.cnn = nn.Sequential(nn.Conv1d(n_feats, n_feats, 10, 2, padding=10 // 2),
                                 ActDropNormCNN1D(n_feats, dropout))
        self.dense = nn.Sequential(
            nn.Linear(n_feats, 128), nn.LayerNorm(128), nn.GELU(), nn.Dropout(dropout),
            nn.Linear(128, 128), nn.LayerNorm(128), nn.GELU(), nn.Dropout(dropout))
        self.lstm = nn.LSTM(input_size=128, hidden_size=hidden, num_layers=config.num_layers,
                            dropout=0.0, bidirectional=False)
        self.layer_norm2 = nn.LayerNorm(hidden)
        self.dropout2 = nn.Dropout(dropout)
        self.final_fc = nn.Linear(hidden, config.num_classes)

    def _init_hidden(self, batch_size: int, device=None):
        shape = (self.num_layers, batch_size, self.hidden_size)
        return torch.zeros(shape, device=device), torch.zeros(shape, device=device)

    @staticmethod
    def output_lengths(lengths: torch.Tensor) -> torch.Tensor:
        return (lengths + 2 * 5 - 10) // 2 + 1

    def forward(self, feats, lengths):
        x = self.dense(self.cnn(feats)).transpose(0, 1)  # (time, batch, 128)
        out, _ = self.lstm(x, self._init_hidden(feats.shape[0], feats.device))
        x = self.final_fc(self.dropout2(F.gelu(self.layer_norm2(out))))
        return F.log_softmax(x.float(), dim=-1).transpose(0, 1), self.output_lengths(lengths)


def packed_rnn(rnn: nn.RNNBase, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """`rnn` over a zero-padded batch (batch, time, features), each sequence to its length."""
    packed = nn.utils.rnn.pack_padded_sequence(x, lengths.cpu(), batch_first=True,
                                               enforce_sorted=False)
    out, _ = rnn(packed)
    return nn.utils.rnn.pad_packed_sequence(out, batch_first=True, total_length=x.shape[1])[0]


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Each sequence of (batch, time, features) reversed within its own length; padding stays."""
    steps = torch.arange(x.shape[1], device=x.device).expand(x.shape[0], -1)
    reversed_steps = lengths.to(x.device).unsqueeze(1) - 1 - steps
    index = torch.where(reversed_steps >= 0, reversed_steps, steps)
    return x.gather(1, index.unsqueeze(-1).expand_as(x))


def unpacked_bidirectional_gru(rnn: nn.GRU, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The same outputs as `packed_rnn(rnn, x, lengths)` on every valid frame (padded frames hold
    junk), run layer by layer and direction by direction on whole padded tensors: the reverse
    direction reads each sequence reversed within its length. Uses `rnn`'s own weights."""
    for layer in range(rnn.num_layers):
        directions = []
        for suffix, reverse in (("", False), ("_reverse", True)):
            weights = [getattr(rnn, f"{name}_l{layer}{suffix}")
                       for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            inputs = reverse_within_lengths(x, lengths) if reverse else x
            h0 = x.new_zeros(1, x.shape[0], rnn.hidden_size)
            out, _ = torch._VF.gru(inputs, h0, weights, True, 1, 0.0, rnn.training, False, True)
            directions.append(reverse_within_lengths(out, lengths) if reverse else out)
        x = torch.cat(directions, dim=-1)
        if layer < rnn.num_layers - 1:
            x = F.dropout(x, rnn.dropout, rnn.training)
    return x


class DefaultModel(nn.Module):
    """Conv front-end with `stride`x time subsampling, then a bidirectional GRU stack.

    Small (~3.5 M parameters), every layer a large GEMM or a cuDNN/oneDNN recurrent kernel: it trains
    fast on a CPU and decodes well under real time on one thread.
    """

    def __init__(self, config: ModelConfig):
        super().__init__()
        c, h = config.conv_channels, config.hidden_size
        self.stride = config.stride
        self.frontend = nn.Sequential(
            nn.Conv1d(config.n_mels, c, kernel_size=3, padding=1), nn.GELU(),
            nn.Conv1d(c, c, kernel_size=config.stride, stride=config.stride), nn.GELU())
        self.norm = nn.LayerNorm(c)
        self.dropout = nn.Dropout(config.dropout)
        self.rnn = nn.GRU(c, h, num_layers=config.num_layers, batch_first=True, bidirectional=True,
                          dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.head = nn.Linear(2 * h, config.num_classes)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return torch.clamp(lengths // self.stride, min=1)

    def forward(self, feats, lengths):
        x = self.dropout(self.norm(self.frontend(feats).transpose(1, 2)))  # (batch, time, c)
        out_lengths = self.output_lengths(lengths)
        if x.is_cuda:  # cuDNN runs packed sequences fast
            out = packed_rnn(self.rnn, x, out_lengths)
        else:  # on a CPU, PyTorch's packed GRU is a slow per-step loop (backward grows ~T^2)
            out = unpacked_bidirectional_gru(self.rnn, x, out_lengths)
        logits = self.head(self.dropout(out))
        return F.log_softmax(logits.float(), dim=-1), out_lengths


ARCHITECTURES = {"seed": SeedModel, "default": DefaultModel}


def build_model(config: ModelConfig) -> nn.Module:
    if config.architecture not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {config.architecture!r}: "
                         f"choose one of {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[config.architecture](config)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def widen_recurrent(model: DefaultModel, config: ModelConfig,
                    hidden_size: int) -> tuple[DefaultModel, ModelConfig]:
    """A `default` model with `hidden_size` GRU units per direction computing what `model` computes.

    Function-preserving widening (as in Net2Net): every old unit keeps its weights and gets zero
    weights from the new units, so it computes what it did; the new units start from PyTorch's
    random initialisation and reach the next layer and the head through zero weights, which the
    first gradient steps move. Training from the widened model adds capacity without starting over.
    """
    old_h = config.hidden_size
    if config.architecture != "default" or hidden_size < old_h:
        raise ValueError(f"can only widen a 'default' model's {old_h} recurrent units to more, "
                         f"not {config.architecture!r} to {hidden_size}")
    wide_config = replace(config, hidden_size=hidden_size)
    wide = DefaultModel(wide_config)
    old_units = torch.arange(old_h)
    gate_rows = torch.cat([old_units + gate * hidden_size for gate in range(3)])  # reset, update, new
    both_directions = torch.cat([old_units, old_units + hidden_size])
    old_state, state = model.state_dict(), wide.state_dict()
    for name, value in old_state.items():
        target = state[name]
        if name.startswith("rnn."):
            if name.startswith(("rnn.bias", "rnn.weight_ih_l0")):
                target[gate_rows] = value        # a bias, or layer 0 reading the front-end
            else:                                # reading this layer's units or the layer below's
                columns = old_units if name.startswith("rnn.weight_hh") else both_directions
                target[gate_rows] = 0.0          # old units read nothing from the new ones
                target[gate_rows[:, None], columns] = value
        elif name == "head.weight":
            target.zero_()
            target[:, both_directions] = value
        else:
            target.copy_(value)
    wide.load_state_dict(state)
    return wide, wide_config
