"""Export a staged program to files and load it back, without the Python that produced it.

What you can do with it:

    >>> import numpy as np, chainrule as cr, chainrule.numpy as cnp
    >>> exp = cr.export(lambda w, x: cnp.tanh(x @ w).sum(), np.ones((3, 2)), np.ones((4, 3)))
    >>> exp.save('/tmp/model.crg')          # one file, replaced atomically
    >>> f = cr.load_graph('/tmp/model.crg')  # in any process: no pickle, no user code
    >>> float(f(np.ones((3, 2)), np.ones((4, 3)))) == float(exp(np.ones((3, 2)), np.ones((4, 3))))
    True
    >>> g = cr.grad(f)(np.ones((3, 2)), np.ones((4, 3)))   # still differentiable

`export(f, *example_args)` stages `f` for arguments shaped like the examples (as `jit` does),
optimises the graph and returns an `Exported` program: callable, printable, savable. A loaded
program runs the same generated NumPy code as `jit`, and under `grad`, `jvp` and `vmap` it binds
the `jit_call` primitive, whose rules are derived from the graph, so it differentiates as the
original did.

The format. `save(path)` writes one file, an uncompressed `.npz` archive (NumPy's format, plain
arrays only, never unpickled): the entry `__graph__` holds a JSON description (format name,
version, the argument and result structures, every graph as typed variables and equations naming
registered primitives, static parameters in a small tagged vocabulary, the printed listing for
people) and the SHA-256 of that description and of every constant; the other entries are the
constant arrays. The file is written to a temporary name and renamed over `path`, so a failed
save leaves the previous export intact. Files of format version 1 (a JSON file with a `.npz`
beside it) still load.

Loading is validation first, execution never (`load_graph` lists every check): nothing in the
file can name a Python object other than a registered primitive and a NumPy dtype; every array's
declared size is checked against the bytes that hold it before it is allocated; the graph is
type-checked on shapes and dtypes alone, each primitive's parameters against its schema. A
tampered, truncated, crafted or foreign file raises `GraphFormatError` naming the file and the
reason, before any of the program runs.

Where the parts live: this module holds the program object, `export` and `load_graph`;
`chainrule._export_write` the file format's writing side (the JSON encoding of graphs and
argument structures, canonical JSON, digests), and `chainrule._export_read` its reading side
(decoding with every validation step).
"""

import hashlib
import json
import os
import sys
import types

import numpy as np

from chainrule import _format
from chainrule.core import ChainruleError, Tracer, bind
from chainrule.interpreters.staging import Graph
from chainrule.tree import tree_flatten, tree_unflatten
from chainrule._export_read import _build, _read_v1, _read_v2
from chainrule._export_write import (  # noqa: F401  (tests check the canonical form)
    FORMAT, VERSION, _GRAPH, _array_digest, _canonical, _encode_tree, _GraphEncoder)

__all__ = ['export', 'load_graph', 'Exported', 'GraphFormatError']


class GraphFormatError(ChainruleError, ValueError):
    """A saved graph that cannot be loaded: missing, truncated, modified, or not a chainrule
    graph. Raised before anything in the file runs."""


# --- the program object ------------------------------------------------------------------------

class Exported:
    """A staged, optimised program with its argument and result structures.

    Call it like the original function (same pytree structure, shapes and dtypes); print it
    to read its graph; `save(path)` it; `.source()` gives the generated NumPy code.
    """

    def __init__(self, graph):
        self.graph = graph

    @property
    def in_avals(self):
        return self.graph.in_avals

    def __call__(self, *args):
        from chainrule.jit import _aval_of_leaf, compiled, jit_call_p
        leaves, tree = tree_flatten(args)
        leaves = [x.data if getattr(x, '_is_tensor', False) and not x.requires_grad else x
                  for x in leaves]
        want = self.graph.in_avals
        got = [_aval_of_leaf(x) for x in leaves]
        if tree != self.graph.in_tree or got != want:
            raise ChainruleError(
                f'exported program takes {self.graph.in_tree} of {_types(want)}, but was '
                f'called with {tree} of {_types(got)}; export it again for the new signature')
        if any(isinstance(x, Tracer) for x in leaves):
            outs = bind(jit_call_p, *leaves, graph=self.graph)
        else:
            outs = compiled(self.graph)(*[np.asarray(x) for x in leaves])
        return tree_unflatten(self.graph.out_tree, outs)

    def source(self):
        from chainrule.jit import compiled
        return compiled(self.graph).__source__

    def __str__(self):
        return str(self.graph)

    def __repr__(self):
        return f'<Exported program: {_types(self.graph.in_avals)} -> ' \
               f'{_types(self.graph.out_avals)}, {len(self.graph.eqns)} equations>'

    def save(self, path):
        """Write the program to the single file `path`.

        The file is replaced in one rename once the new one is complete, so a failure midway
        (a full disk) leaves the previous export at `path` loadable, and concurrent saves to
        one path each write their own temporary file.

        Args:
            path: the file to write (by convention `.crg`).
        """
        path = os.fspath(path)
        arrays = {}
        graphs = []
        body = {
            'format': FORMAT, 'version': VERSION,
            'in_tree': _encode_tree(self.graph.in_tree),
            'out_tree': _encode_tree(self.graph.out_tree),
            'main': _GraphEncoder(graphs, arrays).encode(self.graph),
            'graphs': graphs,
            # for people: the printed graph (ignored when loading; covered by the checksum)
            'listing': str(self.graph).split('\n'),
        }
        body['consts_sha256'] = {k: _array_digest(a) for k, a in arrays.items()}
        if _format.json_depth(body) > _format.MAX_DEPTH - 2:
            raise ChainruleError('export: the program\'s argument structure is nested too '
                                 'deeply to be saved and loaded back; flatten it')
        text = _canonical(body)
        doc = {'body': body, 'sha256': hashlib.sha256(text.encode()).hexdigest()}
        meta = json.dumps(doc, indent=1, sort_keys=True, separators=(',', ': ')) + '\n'
        entries = {_GRAPH: np.frombuffer(meta.encode('utf-8'), np.uint8), **arrays}
        _format.atomic_write(path, lambda f: _format.write_npz(f, entries))


def export(fun, *example_args, static_argnums=(), static_argnames=()):
    """Stage and optimise `fun` for arguments like `example_args`.

    Args:
        fun: a function of arrays / pytrees of arrays.
        *example_args: arguments fixing the structure, shapes and dtypes the program takes.
        static_argnums, static_argnames: arguments baked into the program (they are not
            arguments of it), by position or by name.

    Returns:
        An `Exported` program (callable; `.save(path)` writes it).
    """
    from chainrule.jit import jit
    # (the graph's in_tree is the structure of the arguments that are not static)
    j = jit(fun, static_argnums=static_argnums, static_argnames=static_argnames)
    entry = j._lookup(example_args, {}, count=False)[0]
    if entry.rng:
        raise ChainruleError(
            f'export: {j.__name__[4:-1]} draws from chainrule\'s random generator (cr.randn, '
            'cr.rand, dropout, nn.init, ...), whose state a saved program cannot carry: take a '
            'key argument and draw with chainrule.random instead (key = cr.random.key(0); '
            'cr.random.normal(key, shape))')
    if entry.writes is not None:
        raise ChainruleError(
            f'export: {j.__name__[4:-1]} changes Tensors in place (a BatchNorm\'s running '
            'statistics in training mode, a counter, an optimizer\'s state, an argument): '
            'cr.jit writes those back after each call, but a saved program has no Tensors to '
            'write into. Export the function in eval() mode, or make the state explicit: take '
            'it as an argument and return its new value (new_state = f(state, x)).')
    return Exported(_bake_captures(entry, j.__name__[4:-1]))


def _bake_captures(entry, name):
    """The program with the Tensors `fun` closed over (a module's parameters, which `jit`
    takes by reference as trailing inputs) bound to their current values as constants: a
    saved program carries them, and takes only the arguments of `fun`."""
    graph = entry.graph
    n = len(entry.closure)
    if not n:
        return graph
    for c in entry.closure:
        if not getattr(c, '_is_tensor', False) or isinstance(c.data, Tracer):
            raise ChainruleError(
                f'export: {name} closes over a value traced by an enclosing transform (grad, '
                'vmap, ...); a saved program cannot carry it: pass it as an argument')
    baked = Graph(graph.constvars + graph.invars[-n:],
                  graph.consts + [np.array(c.data, copy=True) for c in entry.closure],
                  graph.invars[:-n], graph.eqns, graph.outvars)
    baked.in_tree, baked.out_tree = graph.in_tree, graph.out_tree
    return baked


def _types(avals):
    return '(' + ', '.join(map(str, avals)) + ')'


# equations whose checking would run a primitive without a shape rule on arrays larger than
# this are refused (see `chainrule._graphcheck`); every built-in primitive has a rule
PROBE_LIMIT = 1 << 22


def load_graph(path, *, probe_limit=PROBE_LIMIT):
    """Load a program saved by `Exported.save`, validating it completely first.

    Nothing in the file runs, is unpickled or is allocated before it has been checked:

    - the file is an archive of plain `.npy` arrays (no object dtypes), each entry's declared
      shape and dtype matching the bytes it holds (a small file cannot declare a huge array);
    - the JSON description (nested at most `chainrule._format.MAX_DEPTH` deep) has the format
      name and version, and its SHA-256 and every constant's SHA-256 match (an edit after
      saving is detected);
    - it follows the schema: every tag, number, dtype (one of NumPy's numeric dtypes or bool),
      shape, variable reference, graph reference (no cycles) and the argument and result
      structures (tuples, lists, dicts, None);
    - every primitive is one chainrule has registered (and carries no Python function; one of
      `chainrule.scipy`'s is declared by importing its module, which the file never names), and
      its parameters have the names and kinds its schema lists (`chainrule._graphcheck.SCHEMAS`);
    - every variable is defined once before use, constants have their variables' types, and
      every equation's declared result types are what its primitive gives for the declared
      operand types, computed on shapes and dtypes alone (no array of a declared shape is ever
      made); `cond`, `scan`, `while` and `jit_call` equations agree with their graphs.

    Files written by chainrule 0.1 (format version 1: a JSON file with a `.npz` beside it) are
    read too.

    Args:
        path: the file written by `save`.
        probe_limit: a primitive without a shape rule (only ones registered outside chainrule)
            is checked by running it on zero arrays of the declared shapes, when those hold at
            most this many elements in all; otherwise the file is refused.

    Returns:
        An `Exported` program: call it, `grad`/`jvp`/`vmap` it, print it.

    Raises:
        GraphFormatError: the file is missing, truncated, modified, crafted, or not a chainrule
            graph; the message names the file and what is wrong.
    """
    import chainrule.lax  # noqa: F401  (registers the control-flow primitives graphs may use)
    path = os.fspath(path)
    try:
        with open(path, 'rb') as f:
            raw = f.read()
    except OSError as e:
        raise GraphFormatError(f'cannot read {path}: {e}') from None
    try:
        if raw.startswith(b'PK'):
            doc, arrays = _read_v2(raw)
        else:
            doc, arrays = _read_v1(raw, path)
        return Exported(_build(doc, arrays, probe_limit))
    except _format.FormatProblem as e:
        raise GraphFormatError(f'cannot load {path}: {e}') from None


# `import chainrule.export` gives this module, and `chainrule.export(f, *args)` still exports:
# the module is callable (the package attribute and the submodule are one object)
class _CallableModule(types.ModuleType):
    def __call__(self, fun, *example_args, **options):
        return export(fun, *example_args, **options)


sys.modules[__name__].__class__ = _CallableModule
