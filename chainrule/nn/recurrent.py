"""Recurrent layers: `RNN`, `LSTM`, `GRU` and their cells, with PyTorch's weights and results.

What this module lets you do: run sequences through Elman, LSTM and GRU layers with PyTorch's
constructor arguments (`num_layers`, `bias`, `batch_first`, `dropout`, `bidirectional`),
parameter names (`weight_ih_l0`, `bias_hh_l1_reverse`, ...), weight layout (the gates stacked
along axis 0 of each weight: LSTM `i, f, g, o`, GRU `r, z, n`) and return values, so a PyTorch
state dict converted to NumPy loads with `load_state_dict` and gives PyTorch's numbers:

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> lstm = nn.LSTM(input_size=3, hidden_size=4, num_layers=2, batch_first=True, rng=0)
    >>> x = np.zeros((5, 7, 3), np.float32)                  # (batch, time, features)
    >>> out, (h_n, c_n) = lstm(x)
    >>> out.shape, h_n.shape, c_n.shape
    ((5, 7, 4), (2, 5, 4), (2, 5, 4))
    >>> sorted(lstm.state_dict())[:2]
    ['bias_hh_l0', 'bias_hh_l1']

The equations (PyTorch's; `x` the input at one step, `h` the previous hidden state, `*` the
elementwise product, the two biases kept apart as PyTorch keeps them):

    RNN   h' = tanh(W_ih x + b_ih + W_hh h + b_hh)                  (or relu)
    LSTM  i, f, g, o = W_ih x + b_ih + W_hh h + b_hh, split in four
          c' = sigmoid(f) * c + sigmoid(i) * tanh(g);   h' = sigmoid(o) * tanh(c')
    GRU   r, z, n_x = W_ih x + b_ih (split in three);   r_h, z_h, n_h = W_hh h + b_hh
          r = sigmoid(r + r_h);   z = sigmoid(z + z_h)
          n = tanh(n_x + r * n_h);   h' = (1 - z) * n + z * h

An LSTM or GRU layer runs each layer and direction as one primitive (`chainrule.ops.recurrent`:
one matrix product for the inputs of all time steps, then a loop over the steps in preallocated
buffers -- compiled by numba when it is installed -- and a hand-derived backward pass through
time), so a training step records one node per layer and direction; the primitive has rules for
every transform (`grad`, `vmap`, `jit`, forward mode, higher derivatives), so the layers run
eagerly with `backward()` and inside every transform. `RNN`, the cells, and any layer with
`fused = False` are composites of per-step primitives with no derivative code of their own
(the reference the fused path is tested against).
Initial values follow PyTorch's distribution, U(-1/sqrt(hidden_size), 1/sqrt(hidden_size)) for
every weight and bias, drawn from `rng` or chainrule's global generator (`cr.manual_seed`).
Not supported: `PackedSequence` (variable lengths), LSTM's `proj_size`.
"""

import math
import warnings

import numpy as np

import chainrule.numpy as cnp
from chainrule import ops
from chainrule.ops import recurrent as _rec
from chainrule.core import ShapeError, shape_of
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.nn.modules import Module, _uniform_param, factory_dtype

__all__ = ['RNN', 'LSTM', 'GRU', 'RNNCell', 'LSTMCell', 'GRUCell']


# --- one time step: gx = W_ih x + b_ih precomputed, state -> (output, new state) ------------

def _elman_step(act):
    def step(gx, h, w_hh, b_hh):
        h = act(gx + F.linear(h, w_hh, b_hh))
        return h, h
    return step


def _gates(x, k):
    """The `k`-wide gates stacked along the last axis of `x`, as a list (one node)."""
    return ops.split(x, range(k, shape_of(x)[-1], k), -1)


def _lstm_step(gx, state, w_hh, b_hh):
    h, c = state
    i, f, g, o = _gates(gx + F.linear(h, w_hh, b_hh), shape_of(h)[-1])
    c = F.sigmoid(f) * c + F.sigmoid(i) * ops.tanh(g)
    h = F.sigmoid(o) * ops.tanh(c)
    return h, (h, c)


def _gru_step(gx, h, w_hh, b_hh):
    k = shape_of(h)[-1]
    (rx, zx, nx), (rh, zh, nh) = _gates(gx, k), _gates(F.linear(h, w_hh, b_hh), k)
    r, z = F.sigmoid(rx + rh), F.sigmoid(zx + zh)
    n = ops.tanh(nx + r * nh)
    h = n + z * (h - n)                         # (1 - z) * n + z * h
    return h, h


# the modes that run as one primitive per layer and direction (when `fused`)
_FUSED = {'LSTM': _rec.lstm_layer, 'GRU': _rec.gru_layer}

# mode -> (gates stacked in each weight, step function)
_MODES = {
    'RNN_TANH': (1, _elman_step(ops.tanh)),
    'RNN_RELU': (1, _elman_step(F.relu)),
    'LSTM': (4, _lstm_step),
    'GRU': (3, _gru_step),
}


def _rnn_mode(nonlinearity, op):
    if nonlinearity not in ('tanh', 'relu'):
        raise ValueError(f"{op}: nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
    return 'RNN_' + nonlinearity.upper()


def _check_sizes(op, input_size, hidden_size):
    for name, v in (('input_size', input_size), ('hidden_size', hidden_size)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v <= 0:
            raise ValueError(f'{op}: {name} must be a positive int, got {v!r}')


def _is_lstm(mode):
    return mode == 'LSTM'


# --- the layers ------------------------------------------------------------------------------

class _RNNBase(Module):
    """The multi-layer, optionally bidirectional recurrence shared by `RNN`, `LSTM` and `GRU`."""

    _dtype_check = ('weight_ih_l0', 2)          # the input and the initial state(s)
    # LSTM and GRU layers run each layer and direction as one primitive with a hand-derived
    # backward pass (`chainrule.ops.recurrent`); `fused = False` on an instance runs the
    # composite of per-step primitives instead (the reference; same results)
    fused = True

    def __init__(self, mode, input_size, hidden_size, num_layers=1, bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
                 rng=None):
        op = type(self).__name__
        dtype = factory_dtype(device, dtype, op)
        _check_sizes(op, input_size, hidden_size)
        if not isinstance(num_layers, (int, np.integer)) or num_layers < 1:
            raise ValueError(f'{op}: num_layers must be a positive int, got {num_layers!r}')
        if not 0 <= dropout < 1:
            raise ValueError(f'{op}: dropout must be in [0, 1), got {dropout}')
        if dropout and num_layers == 1:
            warnings.warn(f'{op}: dropout={dropout} acts between stacked layers only, so with '
                          'num_layers=1 it does nothing (as in PyTorch)', UserWarning,
                          stacklevel=3)
        rng = init.get_rng(rng)
        self.mode = mode
        self.input_size, self.hidden_size, self.num_layers = input_size, hidden_size, num_layers
        self.bias, self.batch_first = bool(bias), bool(batch_first)
        self.dropout, self.bidirectional = float(dropout), bool(bidirectional)
        gates = _MODES[mode][0] * hidden_size
        bound = 1 / math.sqrt(hidden_size)
        dirs = 2 if bidirectional else 1
        # set in PyTorch's order, so named_parameters() and state_dict() list them as it does
        for layer in range(num_layers):
            n_in = input_size if layer == 0 else hidden_size * dirs
            for d in range(dirs):
                sfx = f'_l{layer}' + ('_reverse' if d else '')
                setattr(self, 'weight_ih' + sfx, _uniform_param((gates, n_in), bound, rng, dtype))
                setattr(self, 'weight_hh' + sfx,
                        _uniform_param((gates, hidden_size), bound, rng, dtype))
                if bias:
                    setattr(self, 'bias_ih' + sfx, _uniform_param((gates,), bound, rng, dtype))
                    setattr(self, 'bias_hh' + sfx, _uniform_param((gates,), bound, rng, dtype))

    def _weights(self, layer, d):
        sfx = f'_l{layer}' + ('_reverse' if d else '')
        get = self.__dict__.get
        return (get('weight_ih' + sfx), get('weight_hh' + sfx), get('bias_ih' + sfx),
                get('bias_hh' + sfx))

    @property
    def all_weights(self):
        """`[[weight_ih, weight_hh, bias_ih, bias_hh], ...]` per layer and direction (without
        the biases when `bias=False`), as PyTorch's."""
        dirs = 2 if self.bidirectional else 1
        return [[p for p in self._weights(layer, d) if p is not None]
                for layer in range(self.num_layers) for d in range(dirs)]

    def _initial_state(self, hx, batch, batched):
        """The initial state(s) as `(layers * directions, batch, hidden)` values (zeros when
        `hx` is None), in a list (two for an LSTM)."""
        op = type(self).__name__
        dirs = 2 if self.bidirectional else 1
        want = (self.num_layers * dirs, batch, self.hidden_size)
        lstm = _is_lstm(self.mode)
        if hx is None:
            z = np.zeros(want, self.weight_ih_l0.dtype)
            return [z, z] if lstm else [z]
        if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
            raise TypeError(f'{op}: the initial state must be a pair (h_0, c_0), got '
                            f'{type(hx).__name__}')
        states = list(hx) if lstm else [hx]
        shown = want if batched else (want[0], want[2])
        for name, s in zip(('h_0', 'c_0'), states):
            if tuple(shape_of(s)) != shown:
                raise ShapeError(f'{op}: {name} has shape {tuple(shape_of(s))}, expected '
                                 f'{shown} (layers * directions, ' +
                                 ('batch, ' if batched else '') + 'hidden_size)')
        return states if batched else [cnp.expand_dims(s, 1) for s in states]

    # The loop keeps a leading axis of length 1 on every per-step value, so the time steps and
    # the layers' initial states come out of one split each and go back with one concatenate:
    # slicing step by step would make the backward pass quadratic in the sequence length.

    def forward(self, input, hx=None):
        """Run the sequence.

        Args:
            input: `(T, N, input_size)` (`(N, T, input_size)` with `batch_first`), or
                `(T, input_size)` for one unbatched sequence.
            hx: the initial hidden state `(num_layers * directions, N, hidden_size)` (without
                `N` for an unbatched input), for an LSTM the pair `(h_0, c_0)`; zeros if None.

        Returns:
            `(output, h_n)`, for an LSTM `(output, (h_n, c_n))`: `output` `(T, N, directions *
            hidden_size)` (batch first if `batch_first`) holds the last layer's hidden state at
            every step (both directions concatenated); `h_n`, `c_n` the final states of every
            layer and direction, shaped like `hx`.
        """
        op = type(self).__name__
        si = tuple(shape_of(input))
        if len(si) not in (2, 3) or si[-1] != self.input_size:
            raise ShapeError(f'{op}: input of shape {si} does not fit: expected (T, N, '
                             f'{self.input_size}) ' + ('(batch_first: (N, T, ...)) '
                                                       if self.batch_first else '') +
                             f'or (T, {self.input_size}) unbatched')
        batched = len(si) == 3
        x = (cnp.swapaxes(input, 0, 1) if self.batch_first else input) if batched \
            else cnp.expand_dims(input, 1)
        steps, batch = shape_of(x)[:2]
        if steps == 0:
            raise ShapeError(f'{op}: the input sequence {si} is empty (length 0)')
        dirs = 2 if self.bidirectional else 1
        fused = self.fused and self.mode in _FUSED
        states = [ops.split(s, range(1, self.num_layers * dirs), 0)
                  if self.num_layers * dirs > 1 else [s]
                  for s in self._initial_state(hx, batch, batched)]
        finals = [[] for _ in states]
        for layer in range(self.num_layers):
            outs = []
            for d in range(dirs):
                k = layer * dirs + d
                run = self._run_fused if fused else self._run_composite
                y, state = run(x, [s[k] for s in states], self._weights(layer, d), d == 1)
                outs.append(y)
                for f, s in zip(finals, state):
                    f.append(s)
            x = outs[0] if dirs == 1 else cnp.concatenate(outs, axis=-1)
            if self.dropout and self.training and layer < self.num_layers - 1:
                x = F.dropout(x, self.dropout, True)
        finals = [f[0] if len(f) == 1 else cnp.concatenate(f, axis=0) for f in finals]
        if batched:
            out = cnp.swapaxes(x, 0, 1) if self.batch_first else x
        else:
            out, finals = x[:, 0], [f[:, 0] for f in finals]
        return (out, tuple(finals)) if _is_lstm(self.mode) else (out, finals[0])

    def _run_composite(self, x, state, weights, reverse):
        """One layer in one direction as a composite of primitives, a dozen per step (the
        reference; RNN's only path). `state`: the initial state(s) `(1, N, H)`; returns the
        outputs `(T, N, H)` and the final state(s) `(1, N, H)`."""
        w_ih, w_hh, b_ih, b_hh = weights
        steps = shape_of(x)[0]
        gx = F.linear(x, w_ih, b_ih)            # every step's input term, one product
        gx = ops.split(gx, range(1, steps), 0) if steps > 1 else [gx]
        lstm = _is_lstm(self.mode)
        step = _MODES[self.mode][1]
        state = tuple(state) if lstm else state[0]
        ys = [None] * steps
        for t in (range(steps - 1, -1, -1) if reverse else range(steps)):
            ys[t], state = step(gx[t], state, w_hh, b_hh)
        return (cnp.concatenate(ys, axis=0) if steps > 1 else ys[0],
                state if lstm else (state,))

    def _run_fused(self, x, state, weights, reverse):
        """The same as one primitive (`chainrule.ops.recurrent`), with a hand-derived backward
        pass through time."""
        n = shape_of(state[0])[1:]
        state = [s.reshape(n) if isinstance(s, np.ndarray) else cnp.reshape(s, n)
                 for s in state]
        ys, *finals = _FUSED[self.mode](x, *state, *weights, reverse=reverse)
        return ys, [cnp.expand_dims(f, 0) for f in finals]

    def extra_repr(self):
        s = f'{self.input_size}, {self.hidden_size}'
        if self.num_layers != 1:
            s += f', num_layers={self.num_layers}'
        if self.mode == 'RNN_RELU':
            s += ", nonlinearity='relu'"
        for name, default in (('bias', True), ('batch_first', False), ('dropout', 0.0),
                              ('bidirectional', False)):
            if getattr(self, name) != default:
                s += f', {name}={getattr(self, name)}'
        return s


class RNN(_RNNBase):
    """Elman recurrence `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)` (or relu), PyTorch's
    `nn.RNN`; see the module docstring and `forward` for shapes.

    Args:
        input_size, hidden_size: feature sizes of input and hidden state.
        num_layers: stacked layers (each runs on the previous one's output sequence).
        nonlinearity: 'tanh' (default) or 'relu'.
        bias: learn `b_ih` and `b_hh`.
        batch_first: input and output are `(N, T, F)` instead of `(T, N, F)`.
        dropout: dropout probability on each layer's output except the last (training only).
        bidirectional: also run each layer backwards in time and concatenate.
        device, dtype: the CPU; parameter dtype (float32, or `cr.set_default_dtype`'s).
        rng: seed or `numpy.random.Generator` for the initial values (default: the global
            generator seeded by `cr.manual_seed`).
    """

    def __init__(self, input_size, hidden_size, num_layers=1, nonlinearity='tanh', bias=True,
                 batch_first=False, dropout=0.0, bidirectional=False, device=None, dtype=None,
                 rng=None):
        super().__init__(_rnn_mode(nonlinearity, 'RNN'), input_size, hidden_size, num_layers,
                         bias, batch_first, dropout, bidirectional, device, dtype, rng)

    @property
    def nonlinearity(self):
        return self.mode[4:].lower()


class LSTM(_RNNBase):
    """Long short-term memory, PyTorch's `nn.LSTM` (gates `i, f, g, o` stacked in each weight);
    `forward(input, (h_0, c_0))` returns `(output, (h_n, c_n))`. Arguments as for `RNN`,
    without `nonlinearity`."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, proj_size=0, device=None, dtype=None, rng=None):
        if proj_size:
            raise NotImplementedError('LSTM: proj_size is not supported (only proj_size=0)')
        super().__init__('LSTM', input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype, rng)


class GRU(_RNNBase):
    """Gated recurrent unit, PyTorch's `nn.GRU` (gates `r, z, n` stacked in each weight; `b_hn`
    inside the reset gate's product, as PyTorch). Arguments as for `RNN`, without
    `nonlinearity`."""

    def __init__(self, input_size, hidden_size, num_layers=1, bias=True, batch_first=False,
                 dropout=0.0, bidirectional=False, device=None, dtype=None, rng=None):
        super().__init__('GRU', input_size, hidden_size, num_layers, bias, batch_first,
                         dropout, bidirectional, device, dtype, rng)


# --- the cells: one step ------------------------------------------------------------------------

class _CellBase(Module):
    _dtype_check = ('weight_ih', 2)

    def __init__(self, mode, input_size, hidden_size, bias, device, dtype, rng):
        dtype = factory_dtype(device, dtype, type(self).__name__)
        _check_sizes(type(self).__name__, input_size, hidden_size)
        rng = init.get_rng(rng)
        self.mode = mode
        self.input_size, self.hidden_size, self.bias = input_size, hidden_size, bool(bias)
        gates = _MODES[mode][0] * hidden_size
        bound = 1 / math.sqrt(hidden_size)
        self.weight_ih = _uniform_param((gates, input_size), bound, rng, dtype)
        self.weight_hh = _uniform_param((gates, hidden_size), bound, rng, dtype)
        if bias:
            self.bias_ih = _uniform_param((gates,), bound, rng, dtype)
            self.bias_hh = _uniform_param((gates,), bound, rng, dtype)
        else:
            self.bias_ih = self.bias_hh = None

    def forward(self, input, hx=None):
        """One step.

        Args:
            input: `(N, input_size)`, or `(input_size,)` unbatched.
            hx: the state `(N, hidden_size)` (`(hidden_size,)` unbatched), for an LSTM cell the
                pair `(h, c)`; zeros if None.

        Returns:
            The new hidden state; for an LSTM cell the pair `(h', c')`.
        """
        op = type(self).__name__
        si = tuple(shape_of(input))
        if len(si) not in (1, 2) or si[-1] != self.input_size:
            raise ShapeError(f'{op}: input of shape {si} does not fit: expected '
                             f'(N, {self.input_size}) or ({self.input_size},) unbatched')
        lstm = _is_lstm(self.mode)
        want = si[:-1] + (self.hidden_size,)
        if hx is None:
            z = np.zeros(want, self.weight_ih.dtype)
            state = (z, z) if lstm else z
        else:
            if lstm and not (isinstance(hx, (tuple, list)) and len(hx) == 2):
                raise TypeError(f'{op}: the state must be a pair (h, c), got '
                                f'{type(hx).__name__}')
            for s in (hx if lstm else (hx,)):
                if tuple(shape_of(s)) != want:
                    raise ShapeError(f'{op}: state of shape {tuple(shape_of(s))} does not fit '
                                     f'input {si}: expected {want}')
            state = tuple(hx) if lstm else hx
        gx = F.linear(input, self.weight_ih, self.bias_ih)
        _, state = _MODES[self.mode][1](gx, state, self.weight_hh, self.bias_hh)
        return state

    def extra_repr(self):
        s = f'{self.input_size}, {self.hidden_size}'
        if not self.bias:
            s += ', bias=False'
        if self.mode == 'RNN_RELU':
            s += ", nonlinearity='relu'"
        return s


class RNNCell(_CellBase):
    """One Elman step `h' = tanh(W_ih x + b_ih + W_hh h + b_hh)` (or relu), PyTorch's
    `nn.RNNCell`: `cell(x, h)` -> `h'`. Parameters `weight_ih` `(hidden, input)`, `weight_hh`
    `(hidden, hidden)`, `bias_ih`, `bias_hh`; `dtype`, `rng` as for `RNN`."""

    def __init__(self, input_size, hidden_size, bias=True, nonlinearity='tanh',
                 device=None, dtype=None, rng=None):
        super().__init__(_rnn_mode(nonlinearity, 'RNNCell'), input_size, hidden_size, bias,
                         device, dtype, rng)

    @property
    def nonlinearity(self):
        return self.mode[4:].lower()


class LSTMCell(_CellBase):
    """One LSTM step, PyTorch's `nn.LSTMCell`: `cell(x, (h, c))` -> `(h', c')`; weights
    `(4 * hidden, ...)` with gates `i, f, g, o`."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, rng=None):
        super().__init__('LSTM', input_size, hidden_size, bias, device, dtype, rng)


class GRUCell(_CellBase):
    """One GRU step, PyTorch's `nn.GRUCell`: `cell(x, h)` -> `h'`; weights `(3 * hidden, ...)`
    with gates `r, z, n`."""

    def __init__(self, input_size, hidden_size, bias=True, device=None, dtype=None, rng=None):
        super().__init__('GRU', input_size, hidden_size, bias, device, dtype, rng)
