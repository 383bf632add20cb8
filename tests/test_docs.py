"""The documentation sources: every public name is in the API reference, every page is in the
navigation. Reads the Markdown and mkdocs.yml directly, so it needs no MkDocs (CI also runs
`mkdocs build --strict`, which fails on a broken reference)."""

import importlib
import os
import re
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCS = os.path.join(ROOT, 'docs')
sys.path.insert(0, DOCS)
import gen_reference  # noqa: E402


def documented(page_text):
    """Names a reference page documents: mkdocstrings `members:` entries, the last part of
    `::: a.b.name` blocks, and the first column of tables."""
    names = set(re.findall(r'^ {8}- (\w+)\s*$', page_text, re.M))
    names |= {m.rsplit('.', 1)[-1] for m in re.findall(r'^::: ([\w.]+)\s*$', page_text, re.M)}
    names |= set(re.findall(r'^\| `(\w+)` \|', page_text, re.M))
    return names


def page(name):
    with open(os.path.join(DOCS, 'reference', name + '.md')) as f:
        return f.read()


@pytest.mark.parametrize('module,page_name', [(m, p) for m, p, _ in gen_reference.MODULES])
def test_every_public_name_is_in_the_reference(module, page_name):
    m = importlib.import_module(module)
    names = getattr(m, '__all__', None) or gen_reference.public_names(module)
    missing = sorted(set(names) - documented(page(page_name)))
    assert not missing, (f'{module}: public names missing from docs/reference/{page_name}.md: '
                         f'{missing}; run python docs/gen_reference.py')
    # and the page's mkdocstrings block is for this module
    assert f'# `{module}`' in page(page_name)


def test_top_level_all_is_complete_and_documented():
    import chainrule
    assert all(hasattr(chainrule, n) for n in chainrule.__all__)
    public = {n for n in dir(chainrule) if not n.startswith('_')
              and not isinstance(getattr(chainrule, n), type(os))}
    assert public <= set(chainrule.__all__), sorted(public - set(chainrule.__all__))
    assert set(chainrule.__all__) <= documented(page('chainrule'))


def test_every_public_package_with_all_has_a_page():
    covered = {m for m, _, _ in gen_reference.MODULES}
    for sub in ['numpy', 'numpy.linalg', 'numpy.fft', 'nn', 'nn.functional', 'nn.init', 'optim',
                'scalar', 'lax', 'random', 'tree', 'testing', 'viz', 'debug']:
        assert f'chainrule.{sub}' in covered


def test_every_page_is_in_the_nav_and_exists():
    with open(os.path.join(ROOT, 'mkdocs.yml')) as f:
        yml = f.read()
    nav = re.findall(r':\s+([\w/-]+\.md)\s*$', yml, re.M)
    for p in nav:
        assert os.path.exists(os.path.join(DOCS, p)) or p == 'coverage.md', p
    for _, p, _ in gen_reference.MODULES:
        assert f'reference/{p}.md' in nav
    for dirpath, _, files in os.walk(DOCS):
        for fn in files:
            if fn.endswith('.md'):
                rel = os.path.relpath(os.path.join(dirpath, fn), DOCS)
                assert rel in nav, f'docs/{rel} is not in mkdocs.yml nav'
    assert 'scaling.md' in nav                 # the MPI page
    assert 'docs/hooks.py' in yml              # the coverage page is generated at build time


def test_readme_says_how_to_build_the_site():
    with open(os.path.join(ROOT, 'README.md')) as f:
        readme = f.read()
    assert 'mkdocs build --strict' in readme and '.[docs]' in readme


def python_blocks(path):
    with open(path) as f:
        return re.findall(r'```python\n(.*?)```', f.read(), re.S)


@pytest.mark.parametrize('name', ['scalars', 'tensors', 'transforms', 'jit'])
def test_getting_started_examples_run(name, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)               # (the jit page saves a graph to a file)
    ns = {}
    for block in python_blocks(os.path.join(DOCS, 'getting-started', name + '.md')):
        exec(compile(block, f'docs/getting-started/{name}.md', 'exec'), ns)
    if name == 'scalars':
        assert capsys.readouterr().out.startswith('0.9672 0.4408')


def test_debugging_page_examples_say_what_the_page_shows():
    import warnings
    blocks = python_blocks(os.path.join(DOCS, 'debugging.md'))
    ns = {}
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', RuntimeWarning)
        with pytest.raises(FloatingPointError, match="backward pass of 'sqrt'") as info:
            exec(blocks[0], ns)
    assert 'double-where' in str(info.value)
    exec(blocks[1], ns)                       # the explain example prints its tree
    e = ns['cr'].explain(ns['f'], argnums=(0, 1))(ns['np'].array([-1.0, 2.0, -3.0]),
                                                  ns['np'].array([0.5]))
    assert e['x'].status == 'partly zero' and e['w'].status == 'none'
