"""`Module` and the layers: networks as objects whose parameters are found for you.

What this module lets you do: write a network as a class whose attributes are layers and
parameters -- directly, or inside lists, tuples and dicts -- and get `parameters()`,
`state_dict()`, `train()`/`eval()` and `zero_grad()` without writing any of them:

    >>> import numpy as np, chainrule as cr
    >>> from chainrule import nn
    >>> class MLP(nn.Module):
    ...     def __init__(self):
    ...         self.layers = [nn.Linear(4, 8, rng=0), nn.Linear(8, 2, rng=1)]
    ...     def forward(self, x):
    ...         return self.layers[1](nn.functional.relu(self.layers[0](x)))
    >>> model = MLP()
    >>> [name for name, _ in model.named_parameters()]
    ['layers.0.weight', 'layers.0.bias', 'layers.1.weight', 'layers.1.bias']
    >>> loss = nn.functional.cross_entropy(model(np.ones((3, 4), np.float32)), np.array([0, 1, 0]))
    >>> loss.backward()
    >>> model.layers[0].weight.grad.shape
    (8, 4)

The walk. A module's members are its attributes in the order they were set, except those whose
names start with `_` (private); a `Tensor` member is a *parameter* when it is a `Parameter` or a
leaf that requires grad, and a *buffer* otherwise (e.g. `BatchNorm1d.running_mean`); `Module`s,
lists, tuples and dicts are walked into, and their names joined with dots (`layers.0.weight`),
exactly PyTorch's state-dict names. Names, shapes, constructor arguments and initial
distributions follow PyTorch (`Linear.weight` is `(out, in)`), so a PyTorch state dict converted
to NumPy arrays loads with `load_state_dict`.

Modules are pytrees: their leaves are the parameters' arrays in `named_parameters` order, and
rebuilding gives a shallow copy with those leaves in place of the parameters. So the functional
style works too: `cr.grad(loss_fn)(model, x, y)` returns a copy of `model` whose parameters are
the gradients. Layers take PyTorch's `device=` (the CPU) and `dtype=`: float32 by default, as
PyTorch's, or the dtype `cr.set_default_dtype` set (then layers follow it, as PyTorch's follow
`torch.set_default_dtype`); pass `dtype=cr.float64` for double precision. A layer fed an
input of another dtype than its parameters raises `DTypeError`, as PyTorch does, rather than
silently computing in the wider dtype: convert the input (`x.float()`) or the model
(`model.to(cr.float64)`, `.double()`, `.float()`, `.half()`: floating parameters and buffers
change, integer buffers such as `num_batches_tracked` stay). A layer class opts in with one
line, `_dtype_check = ('weight', 1)`.
"""

import copy
import math
from collections import OrderedDict

import numpy as np

from chainrule._tensor_face_args import torch_faced
from chainrule.core import ChainruleError, DTypeError, Tracer
from chainrule.nn import functional as F
from chainrule.nn import init
from chainrule.tensor import Tensor

__all__ = ['Parameter', 'Module', 'StateDictError', 'Linear', 'Flatten', 'Embedding',
           'Dropout', 'Sequential', 'Identity', 'ReLU', 'GELU', 'Tanh', 'Sigmoid', 'Softmax',
           'LogSoftmax']

# layers that moved to topic modules (chainrule.nn.conv, chainrule.nn.norm); these names keep
# working from here
_MOVED = {'Conv2d': 'conv', 'MaxPool2d': 'conv', 'LayerNorm': 'norm', 'BatchNorm1d': 'norm'}


def __getattr__(name):
    if name in _MOVED:
        import importlib
        return getattr(importlib.import_module('chainrule.nn.' + _MOVED[name]), name)
    raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


class StateDictError(ChainruleError, RuntimeError):
    """`load_state_dict` got keys or shapes that do not match the module; the message lists
    every missing key, every unexpected key and every shape mismatch."""


class Parameter(Tensor):
    """A `Tensor` that is a module parameter (it requires grad unless told otherwise).

    Args:
        data: the initial value (shared, not copied).
        requires_grad: whether optimizers and `backward()` should see it.

    Attributes:
        name: its dotted name in the module that owns it (set by `named_parameters`; drawn
            graphs show it), or None.
    """

    __slots__ = ('name',)

    def __init__(self, data, requires_grad=True):
        super().__init__(data, requires_grad=requires_grad)
        self.name = None

    def __repr__(self):
        return 'Parameter containing:\n' + super().__repr__()


def _is_param(v):
    return isinstance(v, Parameter) or (v.requires_grad and v.is_leaf)


def _container_items(v):
    if isinstance(v, dict):
        return [(str(k), x) for k, x in v.items()]
    return [(str(i), x) for i, x in enumerate(v)]


class Module:
    """Base class of layers and networks: subclass it, set layers and parameters as attributes
    in `__init__`, write `forward`. Calling the module calls `forward`.

    Calling `super().__init__()` is optional.
    """

    training = True
    # a layer with parameters names one here, with how many leading positional arguments must
    # share its dtype: `('weight', 1)`. Calling it then checks the inputs' dtypes (one class
    # attribute read for every other module), as PyTorch refuses a float64 batch for float32
    # weights instead of silently computing in float64.
    _dtype_check = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _register_pytree(cls)

    def __call__(self, *args, **kwargs):
        if _has_raw_tracer(args):
            # called by a transform with NumPy-faced traced values (`cr.vmap(model)(xs)`):
            # `forward` is PyTorch code, so it sees them as Tensors (chainrule._tensor_face_args)
            return torch_faced(self._call)(*args, **kwargs)
        return self._call(*args, **kwargs)

    def _call(self, *args, **kwargs):
        hooks = self.__dict__.get('_hooks')
        if hooks is None:                       # the common case: one dict lookup
            if self._dtype_check is not None:
                _check_input_dtypes(self, args)
            return self.forward(*args, **kwargs)
        for h in list(hooks['pre'].values()):
            r = h(self, args)
            if r is not None:
                args = r if isinstance(r, tuple) else (r,)
        if self._dtype_check is not None:
            _check_input_dtypes(self, args)
        out = self.forward(*args, **kwargs)
        for h in list(hooks['post'].values()):
            r = h(self, args, out)
            if r is not None:
                out = r
        return out

    # --- hooks, buffers, apply (PyTorch's) ----------------------------------------------------
    def _add_hook(self, kind, hook):
        hooks = self.__dict__.setdefault('_hooks', {'pre': {}, 'post': {}})
        key = object()
        hooks[kind][key] = hook
        return _RemovableHandle(hooks[kind], key)

    def register_forward_pre_hook(self, hook):
        """Call `hook(module, args)` before `forward`; a non-None result replaces the
        positional arguments (a tuple, or a single value). Returns a handle with `.remove()`."""
        return self._add_hook('pre', hook)

    def register_forward_hook(self, hook):
        """Call `hook(module, args, output)` after `forward`; a non-None result replaces the
        output. Returns a handle with `.remove()`."""
        return self._add_hook('post', hook)

    def register_buffer(self, name, tensor):
        """Keep `tensor` (a NumPy array or Tensor; None allowed) as a buffer: in `state_dict`
        and `buffers()`, never a parameter (it does not require grad)."""
        if not isinstance(name, str) or not name or name.startswith('_') or '.' in name:
            raise KeyError(f'register_buffer: bad buffer name {name!r}')
        if tensor is not None:
            tensor = tensor if isinstance(tensor, Tensor) else Tensor(np.asarray(tensor))
            if tensor.requires_grad:
                tensor = tensor.detach()
        setattr(self, name, tensor)

    def apply(self, fn):
        """Call `fn(module)` on every submodule (children first) and on this module, as
        PyTorch's (used for custom initialisation). Returns self."""
        stack = [(self, False)]                 # iterative post-order over children()
        while stack:
            m, children_done = stack.pop()
            if children_done:
                fn(m)
                continue
            stack.append((m, True))
            stack.extend((c, False) for c in reversed(m.children()))
        return self

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f'{type(self).__name__} has no forward() method')

    # --- the walk ---------------------------------------------------------------------------
    def _members(self):
        """`(name, value)` of this module's public attributes, in the order they were set."""
        return [(k, v) for k, v in vars(self).items() if not k.startswith('_')]

    def _with_members(self, new):
        """A shallow copy with the members named in `new` replaced."""
        c = copy.copy(self)
        for k, v in new.items():
            setattr(c, k, v)
        return c

    def _walk(self):
        """Every module and tensor reachable through the members, pre-order, each once:
        `(name, value)` (iterative: deep nests are fine)."""
        seen = set()
        stack = [('', self)]
        while stack:
            name, v = stack.pop()
            if isinstance(v, (Module, Tensor)):
                if id(v) in seen:
                    continue
                seen.add(id(v))
                yield name, v
                if isinstance(v, Tensor):
                    continue
                items = v._members()
            elif isinstance(v, (list, tuple, dict)):
                items = _container_items(v)
            else:
                continue
            prefix = name + '.' if name else ''
            stack.extend((prefix + k, x) for k, x in reversed(items))

    def named_parameters(self):
        """`(name, Parameter)` pairs, in the order the attributes were set (each once).
        A `Parameter` without a name takes its name here (graph drawings show it)."""
        out = [(n, v) for n, v in self._walk() if isinstance(v, Tensor) and _is_param(v)]
        for n, v in out:
            if isinstance(v, Parameter) and v.name is None:
                v.name = n
        return out

    def parameters(self):
        """The parameters (see `named_parameters`)."""
        return [v for _, v in self.named_parameters()]

    def named_buffers(self):
        """`(name, Tensor)` pairs of the tensors that are not parameters (running statistics)."""
        return [(n, v) for n, v in self._walk() if isinstance(v, Tensor) and not _is_param(v)]

    def buffers(self):
        return [v for _, v in self.named_buffers()]

    def named_modules(self):
        """`(name, Module)` pairs, this module first (with name '')."""
        return [(n, v) for n, v in self._walk() if isinstance(v, Module)]

    def modules(self):
        return [v for _, v in self.named_modules()]

    def children(self):
        """The modules directly below this one (members, and modules in member containers)."""
        return [m for _, m in self._child_modules()]

    def _child_modules(self):
        out = []
        for k, v in self._members():
            if isinstance(v, Module):
                out.append((k, v))
            elif isinstance(v, (list, tuple, dict)):
                out.extend((f'{k}.{i}', m) for i, m in _container_items(v)
                           if isinstance(m, Module))
        return out

    # --- training state -------------------------------------------------------------------
    def zero_grad(self, set_to_none=True):
        """Clear every parameter's `.grad` (to `None`, or to zeros with `set_to_none=False`)."""
        for p in self.parameters():
            if set_to_none or p.grad is None:
                p.grad = None
            else:
                p.grad = Tensor(np.zeros_like(p.data))

    def train(self, mode=True):
        """Set training mode (dropout active, batch statistics) on this module and every module
        below it. Returns self."""
        for _, m in self.named_modules():
            m.training = bool(mode)
        return self

    def eval(self):
        """Set evaluation mode (dropout off, running statistics). Returns self."""
        return self.train(False)

    def requires_grad_(self, requires_grad=True):
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def to(self, *args, dtype=None, device=None, non_blocking=False):
        """PyTorch's `to(dtype)`, `to(device)`, `to(device, dtype)`, `to(tensor)`: convert
        every floating parameter and buffer to `dtype`, in place (the device must be the CPU,
        the only one chainrule has). Returns self."""
        from chainrule._torch_methods import check_device
        for a in args:
            if isinstance(a, Tensor):
                dtype = a.dtype
            elif isinstance(a, str) or type(a).__name__ == 'device':
                if isinstance(a, str) and a.split(':')[0] not in ('cpu', 'cuda', 'mps', 'xpu',
                                                                 'meta'):
                    dtype = a       # a dtype's name ('float32')
                else:
                    check_device(a, 'Module.to()')
            elif a is not None:
                dtype = a
        check_device(device, 'Module.to()')
        if dtype is None:
            return self
        dtype = np.dtype(dtype)
        if dtype.kind not in 'fc':
            raise DTypeError(f'Module.to: only floating or complex dtypes convert a module (its '
                             f'integer buffers stay as they are), got {dtype} (as PyTorch)')
        for _, t in self._walk():
            if isinstance(t, Tensor) and t.dtype.kind == 'f' and t.dtype != dtype:
                t.data = np.asarray(t.data).astype(dtype)
                t.grad = None
                t._version[0] += 1
        return self

    def double(self):
        return self.to(np.float64)

    def cpu(self):
        """The CPU is chainrule's only device: returns self."""
        return self

    def cuda(self, device=None):
        from chainrule._torch_methods import check_device
        check_device('cuda', 'Module.cuda()')

    def float(self):
        return self.to(np.float32)

    def half(self):
        return self.to(np.float16)

    # --- state dicts ---------------------------------------------------------------------
    def state_dict(self):
        """Every parameter and buffer as a NumPy array (a copy), keyed by its dotted name --
        PyTorch's names, so the dict can be saved with `cr.save` or compared with PyTorch's.

        Returns:
            An `OrderedDict` name -> array.
        """
        return OrderedDict((n, np.array(t.data, copy=True)) for n, t in self._walk()
                           if isinstance(t, Tensor))

    def load_state_dict(self, state_dict, strict=True):
        """Copy arrays into this module's parameters and buffers, in place.

        Args:
            state_dict: a mapping name -> array (NumPy arrays, Tensors, or anything
                `np.asarray` accepts: a PyTorch state dict with `.numpy()` applied).
            strict: every key must match a parameter or buffer, and every parameter and buffer
                must get a value. Shapes must always match.

        Returns:
            `(missing_keys, unexpected_keys)`, both empty when `strict`.

        Raises:
            StateDictError: naming every missing key, unexpected key and shape mismatch.
        """
        own = OrderedDict((n, t) for n, t in self._walk() if isinstance(t, Tensor))
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        values, bad = {}, []
        for k, t in own.items():
            if k in state_dict:
                v = state_dict[k]
                v = np.asarray(v.data if isinstance(v, Tensor) else v)
                if v.shape != t.shape:
                    bad.append(f'{k}: shape {v.shape} in the state dict, {t.shape} in the model')
                values[k] = v
        problems = []
        if strict and missing:
            problems.append('missing keys: ' + ', '.join(missing))
        if strict and unexpected:
            problems.append('unexpected keys: ' + ', '.join(unexpected))
        if bad:
            problems.append('shape mismatches: ' + '; '.join(bad))
        if problems:
            raise StateDictError(f'load_state_dict into {type(self).__name__}: ' +
                                 '. '.join(problems))
        for k, v in values.items():
            t = own[k]
            if isinstance(t.data, np.ndarray) and t.data.flags.writeable:
                np.copyto(t.data, v, casting='unsafe')
            else:
                t.data = np.array(v, dtype=t.dtype)
            t._version[0] += 1
        return missing, unexpected

    # --- pytree ----------------------------------------------------------------------------
    def _tree_flatten(self):
        named = self.named_parameters()
        leaves = [p.data for _, p in named]
        # the lineage key: shared by this module and the copies rebuilt from it (copy.copy
        # carries it along), so a model and its gradient have one structure, while a different
        # model with the same parameter names (say Tanh where this has ReLU) does not -- jit's
        # cache must not mistake one for the other
        key = self.__dict__.get('_tree_key')
        if key is None:
            key = self.__dict__['_tree_key'] = _LineageKey()
        return leaves, _ModuleDef(self, tuple(n for n, _ in named), key)

    def _replace_parameters(self, new):
        """A shallow copy of this module (and of every module and container on the way to a
        parameter) with the parameters (or buffers) named in `new` (names as `named_parameters`
        / `named_buffers` give them) replaced by `Parameter`s (Tensors) of the given values;
        everything else (other buffers, settings) is shared. A parameter or module reachable by two paths (tied weights) stays one object."""
        by_id = {id(p): new[n] for n, p in self._walk() if isinstance(p, Tensor) and n in new}
        memo = {}

        def rebuild(v):
            if id(v) in memo:
                return memo[id(v)]
            if isinstance(v, Tensor):
                if id(v) not in by_id:
                    return v
                x = by_id[id(v)]
                if isinstance(x, Tensor) and not _is_param(v):
                    pass    # a buffer given as a Tensor is that Tensor (as PyTorch's), so
                    #         in-place updates (BatchNorm's statistics) reach it, under jit too
                elif not (x is None or isinstance(x, Parameter)):
                    x = x.data if isinstance(x, Tensor) else x
                    # a buffer stays a plain Tensor (`functional_call` replaces buffers too)
                    x = Parameter(x, requires_grad=False) if _is_param(v) else Tensor(x)
            elif isinstance(v, Module):
                changed = {}
                for k, m in v._members():
                    y = rebuild(m)
                    if y is not m:
                        changed[k] = y
                x = v._with_members(changed) if changed else v
            elif isinstance(v, (list, tuple, dict)):
                items = _container_items(v)
                out = [rebuild(m) for _, m in items]
                if all(a is b for a, (_, b) in zip(out, items)):
                    x = v
                elif isinstance(v, dict):
                    x = type(v)(zip(v.keys(), out))
                elif type(v) in (list, tuple):
                    x = type(v)(out)
                else:                                          # a namedtuple
                    x = type(v)(*out)
            else:
                return v
            memo[id(v)] = x
            return x

        return rebuild(self)

    # --- printing ---------------------------------------------------------------------------
    def extra_repr(self):
        return ''

    def __repr__(self):
        subs = self._child_modules()
        head = f'{type(self).__name__}({self.extra_repr()}'
        if not subs:
            return head + ')'
        lines = [head]
        for k, m in subs:
            body = repr(m).replace('\n', '\n  ')
            lines.append(f'  ({k}): {body}')
        return '\n'.join(lines) + '\n)'


def _has_raw_tracer(args):
    for a in args:
        if isinstance(a, Tracer) and not isinstance(a, Tensor):
            return True
        if type(a) in (tuple, list) and _has_raw_tracer(a):
            return True
    return False


def _check_input_dtypes(module, args):
    """Raise DTypeError when one of the first `n` positional arguments of `module` (or an
    entry of a tuple there: an LSTM's `(h0, c0)`) has another dtype than its parameter `name`
    (`module._dtype_check == (name, n)`). Arrays, Tensors and traced values all carry a dtype;
    Python numbers and lists do not and are left to the layer. Written for speed: it runs on
    every call of a layer (NumPy's dtypes are singletons, so `is` is the common answer)."""
    name, n = module._dtype_check
    p = module.__dict__.get(name)
    if p is None:                               # affine=False, bias-only, ...
        return
    want = p.dtype
    for a in (args if len(args) <= n else args[:n]):
        if type(a) is tuple:
            for x in a:
                got = getattr(x, 'dtype', want)
                if got is not want and got != want:
                    _raise_dtype(module, name, got, want)
        else:
            got = getattr(a, 'dtype', want)
            if got is not want and got != want:
                _raise_dtype(module, name, got, want)


def _raise_dtype(module, name, got, want):
    got, want = np.dtype(got), np.dtype(want)
    cast = {'float32': 'x.float()', 'float64': 'x.double()'}.get(want.name, f'x.to(cr.{want})')
    fix = f'convert the input with {cast} (x.astype(np.{want}) for a NumPy array)'
    if got.kind in 'fc':
        fix = f'convert the model with model.to(cr.{got}) if you meant {got}, or ' + fix
    raise DTypeError(
        f'{type(module).__name__}: input of dtype {got} does not match the dtype {want} of its '
        f'parameter {name!r} (PyTorch raises here too: "mat1 and mat2 must have the same '
        f'dtype"; chainrule will not silently compute in another dtype): {fix}.')


class _RemovableHandle:
    def __init__(self, hooks, key):
        self._hooks, self._key = hooks, key

    def remove(self):
        self._hooks.pop(self._key, None)


class _LineageKey:
    """Identity of a module and of every copy rebuilt from it by unflattening."""

    __slots__ = ()


class _ModuleDef:
    """The pytree auxiliary data of a module: its class, parameter names and lineage key (what
    equality compares: a module and its gradient copy have the same structure, two separately
    built modules do not), plus the module itself as the template for rebuilding."""

    __slots__ = ('template', 'names', 'key')

    def __init__(self, template, names, key):
        self.template = template
        self.names = names
        self.key = key

    def __eq__(self, other):
        return (isinstance(other, _ModuleDef) and self.key is other.key
                and type(self.template) is type(other.template) and self.names == other.names)

    def __hash__(self):
        return hash((type(self.template), self.names, id(self.key)))

    def __repr__(self):
        return f'{type(self.template).__name__}{list(self.names)}'


def _flatten_module(m):
    return m._tree_flatten()


def _unflatten_module(aux, leaves):
    return aux.template._replace_parameters(dict(zip(aux.names, leaves)))


def _register_pytree(cls):
    try:
        from chainrule.tree import register_pytree_node
    except ImportError:       # pragma: no cover - pytrees are part of chainrule
        return
    register_pytree_node(cls, _flatten_module, _unflatten_module)


_register_pytree(Module)


# --- layers ------------------------------------------------------------------------------------

def _check_device(device, layer):
    from chainrule._torch_methods import check_device
    check_device(device, layer + '()')


def factory_dtype(device, dtype, layer):
    """PyTorch's factory keywords of a layer, checked: `device` must be the CPU (None, 'cpu',
    ...); `dtype` a floating dtype, by default the one `cr.set_default_dtype` set (float32, as
    PyTorch's default, when it was never called). Returns the NumPy scalar type."""
    from chainrule.factories import floating_dtype, layer_dtype
    _check_device(device, layer)
    if dtype is None:
        return layer_dtype()
    dt = floating_dtype(dtype)
    if dt is None:
        raise DTypeError(f'{layer}: dtype must be a floating dtype (cr.float16, cr.float32 or '
                         f'cr.float64) for its parameters, got {dtype!r}')
    return dt.type


def _uniform_param(shape, bound, rng, dtype):
    return Parameter(init.uniform(shape, -bound, bound, rng, dtype))


class Linear(Module):
    """`y = x @ weight.T + bias`.

    Args:
        in_features, out_features: sizes of the last axis of input and output.
        bias: whether to learn an additive bias.
        device: the CPU (chainrule's only device), as PyTorch's keyword.
        dtype: parameter dtype (float32, or what `cr.set_default_dtype` set).
        rng: seed or `numpy.random.Generator` for the initial values (PyTorch's distribution,
            U(-1/sqrt(in), 1/sqrt(in)) for both weight and bias).
    """

    _dtype_check = ('weight', 1)

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None,
                 rng=None):
        dtype = factory_dtype(device, dtype, 'Linear')
        rng = init.get_rng(rng)
        self.in_features, self.out_features = in_features, out_features
        bound = 1 / math.sqrt(in_features) if in_features else 0.0
        self.weight = _uniform_param((out_features, in_features), bound, rng, dtype)
        self.bias = _uniform_param((out_features,), bound, rng, dtype) if bias else None

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f'in_features={self.in_features}, out_features={self.out_features}, '
                f'bias={self.bias is not None}')


class Flatten(Module):
    """Merge axes `start_dim` .. `end_dim` into one (by default all but the batch axis)."""

    def __init__(self, start_dim=1, end_dim=-1):
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        s = x.shape
        a, b = self.start_dim % len(s), self.end_dim % len(s)
        return x.reshape(s[:a] + (-1,) + s[b + 1:])


class Embedding(Module):
    """A lookup table: integer indices -> rows of `weight` `(num_embeddings, embedding_dim)`,
    initialised N(0, 1) as PyTorch does.

    `padding_idx` (as PyTorch's): that row starts at zero and gets no gradient, so it stays
    what it is (a padding token's embedding); negative values count from the end.
    """

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, *, device=None,
                 dtype=None, rng=None):
        dtype = factory_dtype(device, dtype, 'Embedding')
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise ValueError(f'Embedding: padding_idx {padding_idx} is out of range for '
                                 f'{num_embeddings} embeddings')
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        w = init.normal((num_embeddings, embedding_dim), rng=rng, dtype=dtype)
        if padding_idx is not None:
            w[padding_idx] = 0
        self.weight = Parameter(w)

    def forward(self, idx):
        out = F.embedding(idx, self.weight)
        if self.padding_idx is None:
            return out
        # the padding row's value, with no gradient: where(idx == padding_idx, stop_gradient)
        from chainrule import ops
        import chainrule.numpy as cnp
        pad = cnp.expand_dims(cnp.equal(idx.data if isinstance(idx, Tensor) else idx,
                                        self.padding_idx), -1)
        return cnp.where(pad, ops.stop_gradient(out), out)

    def extra_repr(self):
        s = f'{self.num_embeddings}, {self.embedding_dim}'
        return s if self.padding_idx is None else s + f', padding_idx={self.padding_idx}'


class Dropout(Module):
    """Zero each element with probability `p` in training (scaling the rest by 1/(1-p));
    the identity in evaluation. `rng` seeds the masks (by default the global generator that
    `cr.manual_seed` seeds).

    Under `jit` the mask is not frozen at trace time: the program draws it through a hidden
    key input that `jit` fills from the generator at every call (`chainrule.random`).
    """

    def __init__(self, p=0.5, inplace=False, *, rng=None):
        if not 0 <= p < 1:
            raise ValueError(f'Dropout: p must be in [0, 1), got {p}')
        if not isinstance(inplace, (bool, np.bool_)):
            raise TypeError(f'Dropout: inplace must be True or False, got {inplace!r:.40} (the '
                            'second argument is inplace, as in PyTorch; pass rng=)')
        self.p, self.inplace = p, bool(inplace)
        self._rng = init.get_rng(rng) if rng is not None else None

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inplace, rng=self._rng)

    def extra_repr(self):
        return f'p={self.p}'


class Sequential(Module):
    """Layers applied one after the other; parameters are named by position (`0.weight`), as
    in PyTorch."""

    def __init__(self, *layers):
        self._layers = list(layers)

    def _members(self):
        return [(str(i), m) for i, m in enumerate(self._layers)]

    def _with_members(self, new):
        c = copy.copy(self)
        c._layers = [new.get(str(i), m) for i, m in enumerate(self._layers)]
        return c

    def forward(self, x):
        for layer in self._layers:
            x = layer(x)
        return x

    def append(self, layer):
        self._layers.append(layer)
        return self

    def __getitem__(self, i):
        if isinstance(i, slice):
            return Sequential(*self._layers[i])
        return self._layers[i]

    def __len__(self):
        return len(self._layers)

    def __iter__(self):
        return iter(self._layers)


def _module(name, fn, doc, **options):
    """A module `forward(x) = fn(x, **options)` whose constructor takes `options` in order, as
    PyTorch's does (`inplace=True` writes the result into the input, as there)."""
    names = list(options)

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        if len(args) > len(options):
            raise TypeError(f'{name}() takes at most {len(options)} arguments '
                            f'({", ".join(options)}), got {len(args)}')
        values = dict(options)
        values.update(zip(options, args))
        unknown = set(kwargs) - set(options)
        if unknown:
            raise TypeError(f'{name}: unexpected argument(s) {sorted(unknown)}')
        values.update(kwargs)
        for k in names:
            setattr(self, k, values[k])

    def forward(self, x):
        return fn(x, **{k: getattr(self, k) for k in names})

    return type(name, (Module,), {'__init__': __init__, 'forward': forward, '__doc__': doc,
                                  '__module__': __name__})


class Identity(Module):
    """Returns its input (any constructor arguments are ignored, as in PyTorch)."""

    def __init__(self, *args, **kwargs):
        Module.__init__(self)

    def forward(self, x):
        return x


ReLU = _module('ReLU', F.relu, '`max(x, 0)`.', inplace=False)
Tanh = _module('Tanh', F.tanh, 'Hyperbolic tangent.')
Sigmoid = _module('Sigmoid', F.sigmoid, 'The logistic function.')
GELU = _module('GELU', F.gelu, "Gaussian error linear unit (exact, or `approximate='tanh'`).",
               approximate='none')
Softmax = _module('Softmax', F.softmax, 'Probabilities along `dim`.', dim=-1)
LogSoftmax = _module('LogSoftmax', F.log_softmax, 'Log-probabilities along `dim`.', dim=-1)
