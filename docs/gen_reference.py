"""Write the API reference pages (`docs/reference/*.md`) from the public modules' `__all__`.

    python docs/gen_reference.py

Run it after adding a public name; `tests/test_docs.py` fails until the reference lists every
name. `chainrule.numpy` gets a table (its functions are made by factories, one per primitive,
which static documentation tools cannot follow); every other module a mkdocstrings block.
"""

import importlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))

# (module, page file name, one-line description)
MODULES = [
    ('chainrule', 'chainrule', 'The top-level names: the four ways of working, diagnostics, '
                               'errors.'),
    ('chainrule.numpy', 'numpy', 'Differentiable NumPy: names, broadcasting, `axis=` and dtype '
                                 'promotion as in NumPy.'),
    ('chainrule.numpy.linalg', 'linalg', 'Differentiable `numpy.linalg`.'),
    ('chainrule.numpy.fft', 'fft', 'Differentiable `numpy.fft`.'),
    ('chainrule.linalg', 'torch_linalg', "`torch.linalg`'s names and results on chainrule "
                                         '(`cr.linalg.norm`, `cr.linalg.solve`, ...).'),
    ('chainrule.nn', 'nn', 'Modules, layers and losses, named as in PyTorch.'),
    ('chainrule.nn.functional', 'functional', 'Functional forms of the layers and losses.'),
    ('chainrule.nn.init', 'init', 'Parameter initialisation, as `torch.nn.init`.'),
    ('chainrule.optim', 'optim', 'Optimizers and learning-rate schedules.'),
    ('chainrule.scalar', 'scalar', 'The micrograd-style scalar engine.'),
    ('chainrule.scalar.nn', 'scalar_nn', "micrograd's `Neuron`, `Layer`, `MLP`."),
    ('chainrule.lax', 'lax', 'Structured control flow for traced code.'),
    ('chainrule.random', 'random', 'Explicit random keys for functional and jitted code, as '
                                   '`jax.random`; see [Randomness](../randomness.md).'),
    ('chainrule.tree', 'tree', 'Pytrees: nested containers of arrays.'),
    ('chainrule.testing', 'testing', 'Gradient checkers.'),
    ('chainrule.viz', 'viz', 'Drawing graphs.'),
    ('chainrule.data', 'data', 'Example data sets and batching.'),
    ('chainrule.func', 'func', "PyTorch's `torch.func` spellings: `functional_call`, "
     '`stack_module_state`, `grad_and_value`, `vmap(in_dims=)`, ...'),
    ('chainrule.debug', 'debug', 'Diagnostics: coverage, NaN provenance, gradient '
                                 'explanations, stepping, memory.'),
    ('chainrule.sparse', 'sparse', 'Sparse Jacobians and Hessians: dependency patterns, '
                                   'colouring, compressed jvp/vjp.'),
    ('chainrule.scipy.special', 'scipy_special', 'Differentiable `scipy.special`.'),
    ('chainrule.scipy.stats', 'scipy_stats', 'Differentiable `scipy.stats` distributions.'),
    ('chainrule.scipy.linalg', 'scipy_linalg', 'Differentiable `scipy.linalg`.'),
    ('chainrule.scipy.signal', 'scipy_signal', 'Differentiable `scipy.signal` convolutions.'),
    ('chainrule.scipy.integrate', 'scipy_integrate', 'ODE solvers differentiable by the adjoint '
                                                     'method.'),
    ('chainrule.scipy.optimize', 'scipy_optimize', '`scipy.optimize` with derivatives '
                                                   'supplied automatically.'),
    ('chainrule.core', 'core', 'Primitives and the trace machinery, for extending chainrule.'),
]


def public_names(module):
    """The public names of `module`: its `__all__`, or (for `chainrule.numpy`, which has
    none) its public callables."""
    m = importlib.import_module(module)
    names = getattr(m, '__all__', None)
    if names is None:
        names = [n for n in dir(m) if not n.startswith('_') and callable(getattr(m, n))
                 and not isinstance(getattr(m, n), (type, type(m)))]
    return list(names)


def _first_line(obj):
    doc = (getattr(obj, '__doc__', None) or '').strip()
    return doc.split('\n\n')[0].replace('\n', ' ').replace('|', '\\|') if doc else ''


def table_page(module, title, blurb):
    m = importlib.import_module(module)
    lines = [f'# `{module}`', '', blurb, '',
             'Each function takes and returns arrays (or tracers inside transforms, or '
             '`Tensor`s) and follows the NumPy function of the same name. What works in '
             'which transform is on the [coverage](../coverage.md) page.', '',
             '| name | summary |', '|---|---|']
    for n in sorted(public_names(module)):
        summary = _first_line(getattr(m, n)) or (
            f'As [`numpy.{n}`](https://numpy.org/doc/stable/reference/generated/numpy.{n}.html).')
        lines.append(f'| `{n}` | {summary} |')
    return '\n'.join(lines) + '\n'


def _kind(module, name):
    """How `module.name` is documented: 'member' (mkdocstrings, under the module), 'direct'
    (a function shadowed by a submodule of the same name, `chainrule.jit`: documented at its
    definition), 'external' (NumPy's own, re-exported: listed in a table) or 'torch' (PyTorch's
    top-level functions, `chainrule._torch_functions`: listed in a table)."""
    import importlib.util
    obj = getattr(importlib.import_module(module), name)
    if isinstance(obj, type(importlib)):
        return 'member'
    home = getattr(obj, '__module__', '') or ''
    if home == 'chainrule._torch_functions':
        return 'torch'
    if not home.startswith('chainrule'):
        return 'external'
    try:
        shadowed = importlib.util.find_spec(f'{module}.{name}') is not None
    except (ImportError, ValueError):
        shadowed = False
    return 'direct' if shadowed else 'member'


def block_page(module, title, blurb):
    m = importlib.import_module(module)
    names = public_names(module)
    kinds = {n: _kind(module, n) for n in names}
    lines = [f'# `{module}`', '', blurb, '', f'::: {module}', '    options:',
             '      members:']
    lines += [f'        - {n}' for n in names if kinds[n] == 'member']
    for n in names:
        if kinds[n] == 'direct':
            obj = getattr(m, n)
            lines += ['', f'::: {obj.__module__}.{obj.__name__}', '    options:',
                      '      show_root_heading: true', '      heading_level: 2']
    torch_names = sorted(n for n in names if kinds[n] == 'torch')
    if torch_names:
        lines += ['', "## PyTorch's top-level functions", '',
                  '`cr.NAME(input, ...)` is `input.NAME(...)` for the names PyTorch has both as a '
                  'function and as a Tensor method; they also take the traced values inside '
                  '`grad`/`vmap`/`jit`. See [Coming from PyTorch](../coming-from/pytorch.md).',
                  '', '| name | summary |', '|---|---|']
        for n in torch_names:
            lines.append(f'| `{n}` | {_first_line(getattr(m, n)) or f"As `torch.{n}`."} |')
    ext = [n for n in names if kinds[n] == 'external']
    if ext:
        lines += ['', '## Re-exported from NumPy', '', '| name | summary |', '|---|---|']
        for n in ext:
            lines.append(f'| `{n}` | {_first_line(getattr(m, n))} |')
    return '\n'.join(lines) + '\n'


TABLE_START, TABLE_END = '<!-- tensor-methods:start -->', '<!-- tensor-methods:end -->'


def write_tensor_method_table(path=os.path.join(HERE, 'coming-from', 'pytorch.md')):
    """Regenerate the table of `Tensor` methods (PyTorch's meaning, NumPy's, or both) between
    the markers of the Coming-from-PyTorch page; needs PyTorch installed (to know its names)."""
    from chainrule._torch_face import method_table
    with open(path) as f:
        text = f.read()
    head, rest = text.split(TABLE_START)
    _, tail = rest.split(TABLE_END)
    with open(path, 'w') as f:
        f.write(head + TABLE_START + '\n' + method_table() + TABLE_END + tail)


def main():
    out = os.path.join(HERE, 'reference')
    os.makedirs(out, exist_ok=True)
    for module, page, blurb in MODULES:
        text = (table_page if module == 'chainrule.numpy' else block_page)(module, page, blurb)
        with open(os.path.join(out, page + '.md'), 'w') as f:
            f.write(text)
    print(f'wrote {len(MODULES)} pages to {out}')
    try:
        write_tensor_method_table()
    except ImportError:
        print('PyTorch is not installed: the Tensor method table was left as it is')


if __name__ == '__main__':
    main()
