"""MkDocs hook: regenerate the coverage page at build time, by running `cr.coverage()`.

The page is written into the build's file set (not into docs/), so the table always describes
the code being documented. About ten seconds on one core.
"""

import os
import sys
import tempfile

from mkdocs.structure.files import File

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HEADER = """# Coverage

Every public function of `chainrule.numpy`, `.linalg`, `.fft`, `chainrule.nn.functional` (and
`chainrule.scipy` where present),
run on small random inputs in each transform when this site was built (`cr.coverage()`; one
row: `cr.coverage(cnp.flip)`). Nothing here is declared by hand.

- **reverse**, **forward**: `grad` / `jvp` of a random weighting of the outputs agrees with
  central finite differences along a random direction.
- **vmap**: `vmap` over two examples equals a loop; *native* when every primitive had a
  batching rule, *loop* when some fell back to the loop-and-stack fallback.
- **jit**: `jit(f)` equals `f`, and `jit(grad(f))` equals `grad(f)`.
- **second order**: the gradient of a gradient agrees with finite differences.
- **complex**: reverse mode on complex inputs, JAX's convention.

*yes*: works; *zero*: the derivative exists and is identically zero (`floor`, `sign`); *n/a*:
nothing to differentiate (integer or boolean inputs or results); *wrong*: it ran but
disagreed; *no*: it raised (the notes give the error).

"""


def on_files(files, config):
    sys.path.insert(0, ROOT)
    import chainrule as cr
    text = HEADER + cr.coverage().to_markdown()
    out_dir = tempfile.mkdtemp(prefix='chainrule-docs-')
    with open(os.path.join(out_dir, 'coverage.md'), 'w') as f:
        f.write(text)
    files.append(File('coverage.md', os.path.abspath(out_dir), config['site_dir'],
                      config['use_directory_urls']))
    return files
