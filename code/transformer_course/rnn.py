"""The Elman RNN written as an explicit loop over time, and the tools to study its gradients.

An Elman RNN (Elman, 1990, "Finding structure in time") keeps one hidden state and updates it
once per input:

    h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh),    t = 1 .. T,

which is exactly what ``torch.nn.RNN`` (one layer, tanh) computes; :class:`ElmanRNN` uses the
same parameter names, so :meth:`ElmanRNN.from_torch` is a copy. The Python ``for`` loop of
:meth:`ElmanRNN.states` *is* the sequential dependency: step t cannot start before step t - 1
has finished, and backpropagation through time walks the same chain backwards, multiplying one
Jacobian per step (:func:`step_jacobian`):

    dh_t / dh_{t-1} = diag(1 - h_t^2) W_hh.

Legend: B batch, T length, I input width, N_h hidden width (H is kept for the number of
attention heads elsewhere in the book).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from . import _checks

__all__ = [
    "ElmanRNN",
    "step_jacobian",
    "spectral_radius",
    "scale_spectral_radius",
    "hidden_state_gradients",
]


class ElmanRNN(nn.Module):
    """A one-layer tanh RNN, one Python loop iteration per time step.

    Args:
        input_size: width I of each input vector x_t.
        hidden_size: width N_h of the hidden state h_t.
        bias: learn the biases ``bias_ih`` and ``bias_hh``. Default: True.

    Parameters (as in ``torch.nn.RNN``, without its ``_l0`` suffix): ``weight_ih`` (N_h, I),
    ``weight_hh`` (N_h, N_h), ``bias_ih`` (N_h,), ``bias_hh`` (N_h,), each initialised uniformly in
    ±1/√N_h as PyTorch does.

    Shape:
        x: (B, T, I); h0: (B, N_h), zeros if not given. Returns ``(output, h_T)``: output
        (B, T, N_h) holds h_1 .. h_T, and h_T (B, N_h) is the last state. (``torch.nn.RNN`` takes
        and returns the state as (1, B, N_h).)

    Examples:
        >>> rnn = ElmanRNN(input_size=3, hidden_size=4)
        >>> output, h_T = rnn(torch.randn(2, 5, 3))
        >>> tuple(output.shape), tuple(h_T.shape)
        ((2, 5, 4), (2, 4))
        >>> bool(torch.equal(output[:, -1], h_T))
        True
    """

    def __init__(self, input_size: int, hidden_size: int, bias: bool = True) -> None:
        super().__init__()
        _checks.positive_int(input_size, "input_size")
        _checks.positive_int(hidden_size, "hidden_size")
        _checks.boolean(bias, "bias")
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.weight_ih = nn.Parameter(torch.empty(hidden_size, input_size))
        self.weight_hh = nn.Parameter(torch.empty(hidden_size, hidden_size))
        if bias:
            self.bias_ih = nn.Parameter(torch.empty(hidden_size))
            self.bias_hh = nn.Parameter(torch.empty(hidden_size))
        else:
            self.register_parameter("bias_ih", None)
            self.register_parameter("bias_hh", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """PyTorch's RNN initialisation: every parameter uniform in ±1/√N_h."""
        bound = 1.0 / math.sqrt(self.hidden_size)
        for parameter in self.parameters():
            nn.init.uniform_(parameter, -bound, bound)

    def extra_repr(self) -> str:
        return f"{self.input_size}, {self.hidden_size}, bias={self.bias_ih is not None}"

    def step(self, x_t: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """One time step: h_t = tanh(W_ih x_t + b_ih + W_hh h_{t-1} + b_hh). (B, I), (B, N_h) -> (B, N_h)."""
        pre = x_t @ self.weight_ih.T + h @ self.weight_hh.T  # (B, I) @ (I, N_h) + (B, N_h) @ (N_h, N_h)
        if self.bias_ih is not None:
            pre = pre + self.bias_ih + self.bias_hh
        return torch.tanh(pre)  # (B, N_h)

    def _check_inputs(self, x: torch.Tensor, h0: torch.Tensor | None) -> None:
        """Check that x is float (B, T, I) and h0 is None or (B, N_h) of the same dtype."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"x: expected a torch.Tensor, got {type(x).__name__}")
        if not x.is_floating_point():
            raise TypeError(f"x: expected a floating-point tensor, got {x.dtype}")
        if x.dtype != self.weight_ih.dtype:
            raise TypeError(f"x: expected dtype {self.weight_ih.dtype} (that of the weights), got {x.dtype}")
        if x.ndim != 3 or x.shape[-1] != self.input_size or x.shape[1] == 0:
            raise ValueError(
                f"x: expected shape (B, T, I={self.input_size}) with T >= 1, got {tuple(x.shape)}"
            )
        if h0 is None:
            return
        if not isinstance(h0, torch.Tensor):
            raise TypeError(f"h0: expected a torch.Tensor or None, got {type(h0).__name__}")
        if tuple(h0.shape) != (x.shape[0], self.hidden_size):
            raise ValueError(
                f"h0: expected shape (B, N_h) = ({x.shape[0]}, {self.hidden_size}), got {tuple(h0.shape)}"
            )
        if h0.dtype != x.dtype:
            raise TypeError(f"h0: expected dtype {x.dtype} (that of x), got {h0.dtype}")

    def states(self, x: torch.Tensor, h0: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Every hidden state ``[h_0, h_1, ..., h_T]``, each a (B, N_h) tensor of the graph.

        Keeping the states as separate tensors lets autograd give the gradient with respect to
        each of them (see :func:`hidden_state_gradients`).
        """
        self._check_inputs(x, h0)
        B, T, _ = x.shape
        h = x.new_zeros(B, self.hidden_size) if h0 is None else h0  # (B, N_h)
        states = [h]
        for t in range(T):  # sequential: step t needs h_{t-1}
            h = self.step(x[:, t], h)  # (B, I), (B, N_h) -> (B, N_h)
            states.append(h)
        return states

    def forward(
        self, x: torch.Tensor, h0: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        states = self.states(x, h0)
        output = torch.stack(states[1:], dim=1)  # T x (B, N_h) -> (B, T, N_h)
        return output, states[-1]

    @classmethod
    def from_torch(cls, torch_rnn: nn.RNN) -> ElmanRNN:
        """A copy of a one-layer, tanh, unidirectional, batch-first ``torch.nn.RNN``."""
        if not isinstance(torch_rnn, nn.RNN):
            raise TypeError(f"torch_rnn: expected torch.nn.RNN, got {type(torch_rnn).__name__}")
        if (
            torch_rnn.num_layers != 1
            or torch_rnn.nonlinearity != "tanh"
            or torch_rnn.bidirectional
            or not torch_rnn.batch_first
            or torch_rnn.proj_size != 0
        ):
            raise ValueError(
                "torch_rnn: expected num_layers=1, nonlinearity='tanh', bidirectional=False and "
                f"batch_first=True, got {torch_rnn}"
            )
        weight = torch_rnn.weight_ih_l0
        ours = cls(torch_rnn.input_size, torch_rnn.hidden_size, bias=torch_rnn.bias)
        ours = ours.to(device=weight.device, dtype=weight.dtype)
        with torch.no_grad():
            for name, parameter in ours.named_parameters():
                parameter.copy_(getattr(torch_rnn, f"{name}_l0"))
        return ours.train(torch_rnn.training)


def step_jacobian(rnn: ElmanRNN, h_t: torch.Tensor) -> torch.Tensor:
    """The Jacobian of one step, dh_t / dh_{t-1} = diag(1 - h_t^2) W_hh, from the new state h_t.

    tanh' = 1 - tanh^2, so the new state alone gives the derivative of the non-linearity.

    Shape:
        h_t: (B, N_h) -> (B, N_h, N_h), entry [b, i, j] = d h_t[b, i] / d h_{t-1}[b, j].

    Examples:
        >>> rnn = ElmanRNN(2, 3)
        >>> h = torch.zeros(1, 3)
        >>> bool(torch.equal(step_jacobian(rnn, h)[0], rnn.weight_hh))  # tanh'(0) = 1
        True
    """
    if not isinstance(rnn, ElmanRNN):
        raise TypeError(f"rnn: expected an ElmanRNN, got {type(rnn).__name__}")
    if not isinstance(h_t, torch.Tensor) or h_t.ndim != 2 or h_t.shape[-1] != rnn.hidden_size:
        shape = tuple(h_t.shape) if isinstance(h_t, torch.Tensor) else type(h_t).__name__
        raise ValueError(f"h_t: expected shape (B, N_h={rnn.hidden_size}), got {shape}")
    return (1 - h_t**2)[:, :, None] * rnn.weight_hh  # (B, N_h, 1) * (N_h, N_h) -> (B, N_h, N_h)


def spectral_radius(matrix: torch.Tensor) -> float:
    """The largest absolute eigenvalue of a square matrix.

    Examples:
        >>> spectral_radius(torch.diag(torch.tensor([0.5, -2.0])))
        2.0
    """
    if not isinstance(matrix, torch.Tensor) or matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        shape = tuple(matrix.shape) if isinstance(matrix, torch.Tensor) else type(matrix).__name__
        raise ValueError(f"matrix: expected a square (N_h, N_h) tensor, got {shape}")
    return torch.linalg.eigvals(matrix.detach().double()).abs().max().item()


def scale_spectral_radius(matrix: torch.Tensor, radius: float) -> torch.Tensor:
    """``matrix`` rescaled so that its spectral radius is ``radius`` (a new tensor).

    Examples:
        >>> round(spectral_radius(scale_spectral_radius(torch.eye(3) * 5, 0.9)), 6)
        0.9
    """
    _checks.positive_number(radius, "radius")
    current = spectral_radius(matrix)
    if current == 0:
        raise ValueError("matrix: its spectral radius is 0 (nilpotent), it cannot be rescaled")
    return matrix.detach() * (radius / current)


def hidden_state_gradients(
    rnn: ElmanRNN, x: torch.Tensor, w: torch.Tensor, h0: torch.Tensor | None = None
) -> torch.Tensor:
    """The gradient of the loss ``h_T · w`` with respect to every hidden state, by autograd.

    Entry ``[:, t]`` is dℓ/dh_t for t = 0 .. T, so ``[:, T - k]`` is the gradient k steps back
    from the loss. Backpropagation through time computes it as ``w`` times k step Jacobians.
    The parameters' ``.grad`` are left untouched.

    Shape:
        x: (B, T, I); w: (N_h,); h0: (B, N_h) or None -> (B, T + 1, N_h).

    Examples:
        >>> rnn = ElmanRNN(2, 3)
        >>> grads = hidden_state_gradients(rnn, torch.randn(1, 4, 2), torch.ones(3))
        >>> tuple(grads.shape), bool(torch.equal(grads[0, -1], torch.ones(3)))
        ((1, 5, 3), True)
    """
    if not isinstance(rnn, ElmanRNN):
        raise TypeError(f"rnn: expected an ElmanRNN, got {type(rnn).__name__}")
    if not isinstance(w, torch.Tensor) or w.ndim != 1 or w.shape[0] != rnn.hidden_size:
        shape = tuple(w.shape) if isinstance(w, torch.Tensor) else type(w).__name__
        raise ValueError(f"w: expected shape (N_h={rnn.hidden_size},), got {shape}")
    rnn._check_inputs(x, h0)
    h0 = x.new_zeros(x.shape[0], rnn.hidden_size) if h0 is None else h0
    with torch.enable_grad():
        states = rnn.states(x, h0.detach().requires_grad_(True))  # T + 1 tensors (B, N_h)
        loss = (states[-1] @ w).sum()
        grads = torch.autograd.grad(loss, states)
    return torch.stack(grads, dim=1)  # T + 1 x (B, N_h) -> (B, T + 1, N_h)
