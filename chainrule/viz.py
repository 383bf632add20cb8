"""Draw computation graphs: `Value` graphs and `Tensor` graphs, as Graphviz DOT or a text tree.

With it you can look at the graph behind a result:

    >>> from chainrule.scalar import Value
    >>> from chainrule import viz
    >>> a, b = Value(2.0), Value(-3.0)
    >>> out = (a * b).relu()
    >>> out.backward()
    >>> print(viz.draw_text(out))
    [ReLU] data 0 | grad 1
    └── [*] data -6 | grad 0
        ├── data 2 | grad 0
        └── data -3 | grad 0
    >>> g = viz.draw(out)
    >>> g.source.splitlines()[0]
    'digraph G {'

`draw(out)` returns a `Graph`: `.source` is Graphviz DOT text, built here with no dependency;
`.render(path)` writes SVG, PNG, PDF, ... and `_repr_svg_` shows the graph inline in Jupyter,
both when Graphviz is installed (its `dot` program, found on PATH or through the `graphviz`
Python package); `.text()` is a plain-text tree for terminals, which works everywhere.

What can be drawn: a `Value` (or a list of them), or any object with a method `_viz_graph()`
returning `(nodes, edges)`: `nodes` a list of `(node_id, label, kind)` with `kind` either
`'value'` (drawn as a box) or `'op'` (an ellipse), and `edges` a list of `(from_id, to_id)`
pointing from inputs to the nodes computed from them. `Value` graphs are drawn through the same
protocol (`value_graph`), so every graph looks the same. All traversals are iterative: a
million-node chain draws (slowly) without a RecursionError.
"""

import shutil
import subprocess

__all__ = ['draw', 'draw_text', 'Graph', 'value_graph', 'staged_graph', 'GraphvizNotFoundError']

_INSTALL_HINT = (
    "rendering a graph needs Graphviz's `dot` program: install the Graphviz system package "
    "(apt install graphviz, brew install graphviz, conda install graphviz, or "
    "https://graphviz.org/download/), optionally with the Python package (pip install graphviz). "
    "Without it, `.source` still gives the DOT text and `.text()` a plain-text tree.")


_MAX_INDENT = 32    # levels of indentation in a text tree; deeper lines stay at this depth


class GraphvizNotFoundError(RuntimeError):
    """Raised when a graph is rendered but Graphviz is not installed."""


def draw(out, rankdir='LR', highlight=None):
    """The computation graph that produced `out`, ready to show or render.

    Args:
        out: a `Value`, a list or tuple of Values, a `Tensor`, a staged graph (from
            `make_graph`, `jit(f).graph(*args)`, or a jitted function already called), a
            program from `load_graph`, or an object with a `_viz_graph()` method (see the
            module docstring).
        rankdir: Graphviz's layout direction: 'LR' (inputs on the left), 'TB', 'RL' or 'BT'.
        highlight: a step of `backward(steps=True)` (or its `node`): that node is drawn filled.

    Returns:
        A `Graph`.
    """
    nodes, edges = graph_of(out)
    marked = _highlighted(out, highlight) if highlight is not None else ()
    return Graph(nodes, edges, rankdir=rankdir, highlight=marked)


def _highlighted(out, step):
    """The node ids of `graph_of(out)` that stand for `step`'s node: drawings number nodes by
    their place in the same topological order computed here."""
    from chainrule._graph import toposort
    target = getattr(step, 'node', step)
    if getattr(out, '_is_tensor', False):
        roots = [out._node] if out._node is not None else []
        order = toposort(roots, lambda n: [p for p in n.parents if p is not None])
    else:
        from chainrule.scalar.engine import _parents
        order = toposort(list(out) if isinstance(out, (list, tuple)) else [out], _parents)
    for k, n in enumerate(order):
        if n is target:
            return (f'v{k}', f'op{k}')
    raise ValueError('draw: the highlighted step is not a node of this graph')


def draw_text(out, ascii=False):
    """The graph that produced `out` as a plain-text tree, for terminals.

    The output is the root; below each node are the nodes it was computed from. A node used more
    than once is drawn in full the first time, tagged `(#k)`, and afterwards as a back-reference.
    Indentation stops growing after 32 levels, so a deep chain prints in linear space.

    Args:
        out: as for `draw`.
        ascii: use `|--` instead of box-drawing characters.

    Returns:
        A string.
    """
    return draw(out).text(ascii=ascii)


def graph_of(out):
    """`(nodes, edges)` for `out`, through its `_viz_graph()` method or the `Value` adapter.

    Args:
        out: as for `draw`.

    Returns:
        `(nodes, edges)` as described in the module docstring.
    """
    method = getattr(out, '_viz_graph', None)
    if method is not None:
        return method()
    staged = _staged_graph(out)
    if staged is not None:
        return staged_graph(staged)
    from chainrule.scalar.engine import Value
    if isinstance(out, Value):
        return value_graph([out])
    if isinstance(out, (list, tuple)) and out and all(isinstance(v, Value) for v in out):
        return value_graph(out)
    raise TypeError(f"draw: cannot draw a {type(out).__name__}; pass a chainrule Value, a list "
                    "of Values, or an object with a _viz_graph() method")


def value_graph(roots):
    """The `_viz_graph` protocol for `Value` graphs: micrograd's picture.

    Each Value is a 'value' node labelled with its data and grad; a Value computed by an
    operation also gets an 'op' node (labelled `+`, `*`, `ReLU`, ...) with an edge from each
    operand (twice for `x * x`) and an edge to the result.

    Args:
        roots: a list of Values.

    Returns:
        `(nodes, edges)`, nodes in topological order (inputs first).
    """
    from chainrule._graph import toposort
    from chainrule.scalar.engine import _parents
    order = toposort(list(roots), _parents)
    index = {id(v): k for k, v in enumerate(order)}
    nodes, edges = [], []
    for k, v in enumerate(order):
        vid = f'v{k}'
        nodes.append((vid, f"data {_fmt(v.data)} | grad {_fmt(v.grad)}", 'value'))
        children = _parents(v)
        if children or v._op:
            oid = f'op{k}'
            nodes.append((oid, v._op or '?', 'op'))
            edges.append((oid, vid))
            for c in children:
                edges.append((f'v{index[id(c)]}', oid))
    return nodes, edges


def _staged_graph(out):
    """The typed graph behind `out`: a staged `Graph`, a loaded program's, or a jitted
    function's most recent one; None for anything else."""
    if hasattr(out, 'eqns') and hasattr(out, 'outvars'):
        return out
    g = getattr(out, 'graph', None)
    if hasattr(g, 'eqns'):
        return g                                    # a program from load_graph
    cache = getattr(out, '_cache', None)
    if cache is not None and hasattr(out, 'cache_info'):     # a jitted function
        entries = list(cache.values())
        if not entries:
            raise TypeError('draw: this jitted function has not been called yet, so it has no '
                            'graph; call it once, or draw jitted.graph(*args)')
        return entries[-1].graph
    return None


def staged_graph(graph):
    """The `_viz_graph` protocol for a staged graph (`make_graph`, `jit`, `load_graph`): a
    value node per input, constant and equation result (its type), an op node per equation."""
    nodes, edges = [], []
    names = {}

    def value(v, label):
        vid = f'x{len(names)}'
        names[v.id] = vid
        nodes.append((vid, label, 'value'))
        return vid

    for k, v in enumerate(graph.constvars):
        value(v, f'const {v.aval}')
    for k, v in enumerate(graph.invars):
        value(v, f'input {k}: {v.aval}')
    for k, e in enumerate(graph.eqns):
        oid = f'e{k}'
        nodes.append((oid, e.prim.name, 'op'))
        for v in e.invars:
            if hasattr(v, 'id') and v.id in names:
                edges.append((names[v.id], oid))
        for v in e.outvars:
            edges.append((oid, value(v, str(v.aval))))
    for k, v in enumerate(graph.outvars):
        if hasattr(v, 'id') and v.id in names:
            oid = f'out{k}'
            nodes.append((oid, f'output {k}', 'value'))
            edges.append((names[v.id], oid))
    return nodes, edges


def _fmt(x):
    """A number for a label: 4 significant digits for floats and complex, exact otherwise."""
    if isinstance(x, (float, complex)):
        return f"{x:.4g}"
    return str(x)


class Graph:
    """A drawable graph: DOT text always, rendered images when Graphviz is installed.

    Args:
        nodes: a list of `(node_id, label, kind)`, `kind` in {'value', 'op'}.
        edges: a list of `(from_id, to_id)`.
        rankdir: Graphviz's layout direction.

    Attributes:
        nodes, edges: as given.
        source: the Graphviz DOT text.
    """

    def __init__(self, nodes, edges, rankdir='LR', highlight=()):
        self.nodes = [tuple(n) for n in nodes]
        self.edges = [tuple(e) for e in edges]
        self.rankdir = rankdir
        self.highlight = set(highlight)
        self._number = {}
        for n in self.nodes:
            if len(n) != 3:
                raise ValueError(f"viz: a node must be (node_id, label, kind), got {n!r}")
            node_id, _, kind = n
            if kind not in ('value', 'op'):
                raise ValueError(f"viz: node {node_id!r} has kind {kind!r}; "
                                 "expected 'value' or 'op'")
            if node_id in self._number:
                raise ValueError(f"viz: node id {node_id!r} appears twice")
            self._number[node_id] = len(self._number)
        for e in self.edges:
            if len(e) != 2 or e[0] not in self._number or e[1] not in self._number:
                raise ValueError(f"viz: edge {e!r} must join two node ids listed in nodes")
        if rankdir not in ('LR', 'RL', 'TB', 'BT'):
            raise ValueError(f"viz: rankdir must be 'LR', 'RL', 'TB' or 'BT', got {rankdir!r}")
        self.source = self._dot()

    def _dot(self):
        lines = ['digraph G {', f'  rankdir={self.rankdir};',
                 '  node [fontname="Helvetica", fontsize=11];']
        for node_id, label, kind in self.nodes:
            shape = 'box' if kind == 'value' else 'ellipse'
            mark = ', style=filled, fillcolor=gold' if node_id in self.highlight else ''
            lines.append(f'  n{self._number[node_id]} [label="{_escape(label)}", '
                         f'shape={shape}{mark}];')
        for a, b in self.edges:
            lines.append(f'  n{self._number[a]} -> n{self._number[b]};')
        lines.append('}')
        return '\n'.join(lines) + '\n'

    def pipe(self, format='svg'):
        """Render with Graphviz and return the bytes.

        Args:
            format: any output format of `dot -T`: 'svg', 'png', 'pdf', ...

        Returns:
            The rendered image as bytes.

        Raises:
            GraphvizNotFoundError: Graphviz is not installed (the message says how to get it).
        """
        exe = shutil.which('dot')
        if exe is not None:
            done = subprocess.run([exe, f'-T{format}'], input=self.source.encode(),
                                  capture_output=True)
            if done.returncode != 0:
                raise RuntimeError(f"Graphviz's dot failed (format {format!r}): "
                                   f"{done.stderr.decode(errors='replace').strip()}")
            return done.stdout
        try:
            import graphviz
        except ImportError:
            raise GraphvizNotFoundError(_INSTALL_HINT) from None
        try:
            return graphviz.Source(self.source).pipe(format=format)
        except graphviz.ExecutableNotFound:
            raise GraphvizNotFoundError(_INSTALL_HINT) from None

    def render(self, path, format='svg'):
        """Render with Graphviz and write the image to `path`.

        Args:
            path: the file to write (written as given; no extension is added).
            format: any output format of `dot -T`: 'svg', 'png', 'pdf', ...

        Returns:
            `path`.

        Raises:
            GraphvizNotFoundError: Graphviz is not installed (the message says how to get it).
        """
        data = self.pipe(format)
        with open(path, 'wb') as f:
            f.write(data)
        return path

    def _repr_svg_(self):
        """Inline SVG for Jupyter, or None (Jupyter then shows the text tree) without Graphviz."""
        try:
            return self.pipe('svg').decode()
        except (GraphvizNotFoundError, RuntimeError):
            return None

    def _repr_pretty_(self, p, cycle):
        p.text(self.text())

    def __repr__(self):
        return (f"<chainrule.viz.Graph: {len(self.nodes)} nodes, {len(self.edges)} edges; "
                ".source is DOT, .text() a tree, .render(path) an image>")

    def text(self, ascii=False):
        """The graph as a plain-text tree (see `draw_text`).

        Args:
            ascii: use `|--` instead of box-drawing characters.

        Returns:
            A string.
        """
        tee, last, bar, gap = (('|-- ', '`-- ', '|   ', '    ') if ascii else
                               ('├── ', '└── ', '│   ', '    '))
        label = {n[0]: ' | '.join(n[1].splitlines()) if n[1] else '' for n in self.nodes}
        kind = {n[0]: n[2] for n in self.nodes}
        preds = {n[0]: [] for n in self.nodes}
        nsucc = dict.fromkeys(preds, 0)
        for a, b in self.edges:
            preds[b].append(a)
            nsucc[a] += 1

        # A value node made by one op node that feeds only it is shown as one line: "[op] value".
        def unit(node_id):
            """(text, children) of the line drawn for node_id."""
            ps = preds[node_id]
            if (kind[node_id] == 'value' and len(ps) == 1 and kind[ps[0]] == 'op'
                    and nsucc[ps[0]] == 1):
                return f"[{label[ps[0]]}] {label[node_id]}", preds[ps[0]]
            return label[node_id], ps

        # How often each line is reached, to tag the shared ones before they are first drawn.
        roots = [n[0] for n in self.nodes if nsucc[n[0]] == 0]
        uses = dict.fromkeys(preds, 0)
        stack = list(roots)
        seen = set()
        while stack:
            node_id = stack.pop()
            uses[node_id] += 1
            if node_id in seen:
                continue
            seen.add(node_id)
            stack.extend(unit(node_id)[1])

        lines, tags = [], {}
        stack = [(r, '', None) for r in reversed(roots)]
        while stack:
            node_id, prefix, is_last = stack.pop()
            connector = '' if is_last is None else (last if is_last else tee)
            text, children = unit(node_id)
            if node_id in tags:
                lines.append(f"{prefix}{connector}(#{tags[node_id]}: {text}, shown above)")
                continue
            if uses[node_id] > 1:
                tags[node_id] = len(tags) + 1
                text = f"{text} (#{tags[node_id]})"
            lines.append(f"{prefix}{connector}{text}")
            child_prefix = prefix
            if is_last is not None and len(prefix) < 4 * _MAX_INDENT:
                child_prefix = prefix + (gap if is_last else bar)
            for k in range(len(children) - 1, -1, -1):
                stack.append((children[k], child_prefix, k == len(children) - 1))
        return '\n'.join(lines)

    __str__ = text


def _escape(label):
    """A label as the inside of a DOT double-quoted string: backslashes and quotes escaped,
    line breaks as DOT's centred `\\n`."""
    label = str(label).replace('\\', '\\\\').replace('"', '\\"')
    label = label.replace('\r\n', '\n').replace('\r', '\n')
    return label.replace('\n', '\\n')
