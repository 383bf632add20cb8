"""Tests for chainrule.viz: DOT text, the `_viz_graph` protocol, text trees, rendering."""

import os
import re
import shutil
import stat
import sys

import pytest

from chainrule import viz
from chainrule.scalar import Value


def parse_dot(source):
    """A tiny DOT reader for what viz writes: {node: (label, shape)} and a list of edges."""
    assert source.startswith('digraph G {') and source.rstrip().endswith('}')
    nodes, edges = {}, []
    for line in source.splitlines()[1:-1]:
        line = line.strip()
        m = re.fullmatch(r'(n\d+) \[label="((?:[^"\\]|\\.)*)", shape=(\w+)\];', line)
        if m:
            label = re.sub(r'\\(.)', lambda e: '\n' if e.group(1) == 'n' else e.group(1),
                           m.group(2))
            nodes[m.group(1)] = (label, m.group(3))
            continue
        m = re.fullmatch(r'(n\d+) -> (n\d+);', line)
        if m:
            edges.append((m.group(1), m.group(2)))
            continue
        assert re.fullmatch(r'(rankdir=\w+|node \[.*\]);', line), line
    for a, b in edges:
        assert a in nodes and b in nodes
    return nodes, edges


def example():
    a, b = Value(2.0), Value(-3.0)
    c = a * b
    d = (c + a).tanh()
    out = d * d + c
    out.backward()
    return out, (a, b, c, d)


def test_value_graph_dot_matches_the_graph():
    out, (a, b, c, d) = example()
    nodes, edges = parse_dot(viz.draw(out).source)
    # Values: a, b, c = a*b, c+a, d = tanh, d*d, out. Op nodes: one per non-leaf value.
    values = [lab for lab, shape in nodes.values() if shape == 'box']
    ops = sorted(lab for lab, shape in nodes.values() if shape == 'ellipse')
    assert len(values) == 7
    assert ops == sorted(['*', '+', 'tanh', '*', '+'])
    # One edge per operand (x * x has two) and one from each op to its result.
    operands = 2 + 2 + 1 + 2 + 2
    assert len(edges) == operands + len(ops)
    # Labels show data and grad.
    assert f"data {a.data:.4g} | grad {a.grad:.4g}" in values
    assert f"data {d.data:.4g} | grad {d.grad:.4g}" in values
    assert "data -6 | grad" in ' '.join(values)


def test_edges_point_from_inputs_to_results():
    x = Value(3.0)
    y = x.exp()
    nodes, edges = parse_dot(viz.draw(y).source)
    by_label = {lab.split(' |')[0] if shape == 'box' else lab: n
                for n, (lab, shape) in nodes.items()}
    assert (by_label['data 3'], by_label['exp']) in edges
    assert (by_label['exp'], by_label[f"data {y.data:.4g}"]) in edges


def test_rankdir_and_list_of_roots():
    a = Value(1.0)
    g = viz.draw([a + 1, a * 2], rankdir='TB')
    assert 'rankdir=TB;' in g.source
    nodes, edges = parse_dot(g.source)
    assert sum(shape == 'ellipse' for _, shape in nodes.values()) == 2
    with pytest.raises(ValueError, match='rankdir'):
        viz.draw(a, rankdir='XY')
    with pytest.raises(TypeError, match='cannot draw'):
        viz.draw(3.0)


class FakeTensor:
    """What the Tensor front end provides: the `_viz_graph` protocol."""

    def _viz_graph(self):
        nodes = [('x', 'x\nshape (3, 4) float64', 'value'),
                 ('w', 'w "weights"\nshape (4, 2) float64\n[[1 2] ...]', 'value'),
                 ('mm', 'matmul', 'op'),
                 ('y', 'shape (3, 2) float64', 'value'),
                 ('s', 'sum', 'op'),
                 ('out', 'path C:\\tmp\r\nshape () float64', 'value')]
        edges = [('x', 'mm'), ('w', 'mm'), ('mm', 'y'), ('y', 's'), ('s', 'out')]
        return nodes, edges


def test_protocol_objects_and_escaping():
    g = viz.draw(FakeTensor())
    nodes, edges = parse_dot(g.source)
    labels = sorted(lab for lab, _ in nodes.values())
    original = sorted(n[1].replace('\r\n', '\n') for n in FakeTensor()._viz_graph()[0])
    assert labels == original                   # escaping round-trips through the DOT reader
    assert len(edges) == 5
    assert '\\"weights\\"' in g.source and 'C:\\\\tmp' in g.source
    text = g.text()
    assert '[sum] path C:\\tmp | shape () float64' in text.splitlines()[0]
    assert '└── [matmul] shape (3, 2) float64' in text


def test_protocol_errors():
    with pytest.raises(ValueError, match='kind'):
        viz.Graph([('a', 'a', 'tensor')], [])
    with pytest.raises(ValueError, match='edge'):
        viz.Graph([('a', 'a', 'value')], [('a', 'b')])
    with pytest.raises(ValueError, match='twice'):
        viz.Graph([('a', 'a', 'value'), ('a', 'b', 'op')], [])


def test_text_tree_shows_shared_nodes_once():
    x = Value(2.0)
    y = x * x
    out = y + y.tanh()
    out.backward()
    text = viz.draw_text(out)
    lines = text.splitlines()
    assert lines[0].startswith('[+] data ')
    assert sum('(#1)' in line for line in lines) == 1      # y drawn once, then referenced
    assert sum('#1:' in line and 'shown above' in line for line in lines) == 1
    assert sum('(#2)' in line for line in lines) == 1      # x: drawn once (operand twice)
    assert sum('#2:' in line for line in lines) == 1
    assert len(lines) == 6
    ascii_text = viz.draw_text(out, ascii=True)
    assert '`-- ' in ascii_text and '└' not in ascii_text
    assert str(viz.draw(out)) == text


def test_text_tree_of_a_deep_chain_is_iterative_and_linear():
    x = Value(0.0)
    y = x
    for _ in range(20000):
        y = y + 1
    text = viz.draw_text(y)
    lines = text.splitlines()
    assert len(lines) == 2 * 20000 + 1
    assert max(len(line) for line in lines) < 4 * 40 + 40


def fake_dot(tmp_path):
    """An executable called `dot` that echoes its input inside an SVG, like Graphviz would."""
    script = tmp_path / 'dot'
    script.write_text('#!/bin/sh\nprintf "<svg><!-- %s\\n" "$1"\ncat\nprintf -- "--></svg>"\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return tmp_path


@pytest.mark.skipif(sys.platform == 'win32', reason='uses a shell script as dot')
def test_render_calls_dot(tmp_path, monkeypatch):
    monkeypatch.setenv('PATH', str(fake_dot(tmp_path)) + os.pathsep + os.environ['PATH'])
    out, _ = example()
    g = viz.draw(out)
    path = g.render(str(tmp_path / 'graph.svg'))
    written = open(path).read()
    assert written.startswith('<svg><!-- -Tsvg') and g.source in written
    assert g._repr_svg_().startswith('<svg>')
    g.render(str(tmp_path / 'graph.png'), format='png')
    assert open(tmp_path / 'graph.png').read().startswith('<svg><!-- -Tpng')


def test_render_without_graphviz_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(shutil, 'which', lambda name: None)
    monkeypatch.setitem(sys.modules, 'graphviz', None)          # import graphviz fails
    g = viz.draw(Value(1.0) + 2)
    with pytest.raises(viz.GraphvizNotFoundError, match='pip install graphviz') as info:
        g.render(str(tmp_path / 'x.svg'))
    assert 'Graphviz system package' in str(info.value)
    assert g._repr_svg_() is None                               # Jupyter falls back to text
    assert 'digraph' in g.source


@pytest.mark.skipif(shutil.which('dot') is None, reason='Graphviz is not installed')
def test_render_with_real_graphviz(tmp_path):
    out, _ = example()
    svg = viz.draw(out)._repr_svg_()
    assert '<svg' in svg and 'tanh' in svg
