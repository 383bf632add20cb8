"""A helper for tests that check reported source lines: find a line by the marker ending it."""


def line_of(path, marker):
    """The number of the line of file `path` that ends with `# <marker>`."""
    with open(path) as f:
        for i, text in enumerate(f, 1):
            if text.rstrip().endswith('# ' + marker):
                return i
    raise AssertionError(f'no line ending with "# {marker}" in {path}')
