"""Every ```python block in the README runs, in order, as a user would paste it, and prints what
the ```text block after it says (the README's outputs are checked analytically in its comments:
each is a closed form)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / 'README.md'
BLOCKS = re.findall(r'```python\n(.*?)```(?:\s*```text\n(.*?)```)?', README.read_text(), re.S)


def test_readme_has_code_blocks():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize('i', range(len(BLOCKS)))
def test_readme_block_runs_and_prints_what_it_says(i, capsys):
    code, expected = BLOCKS[i]
    exec(compile(code, f'README.md block {i}', 'exec'), {'__name__': '__readme__'})
    out = capsys.readouterr().out
    if expected:
        assert out.split() == expected.split()
    else:
        assert out.strip(), 'each README block prints its result'
