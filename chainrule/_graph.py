"""Graph utilities shared by every graph in chainrule: `Value`, the reverse-mode tape and the IR.

The one idea here is an iterative topological sort parameterised by a `parents` function, so no
graph traversal in chainrule recurses (a million-node chain works) and every graph is walked
the same way.
"""


_EXIT = object()   # stack marker: "all parents of the node below me are done"


def toposort(roots, parents):
    """Return the nodes reachable from `roots`, each after all of its parents.

    Args:
        roots: an iterable of start nodes.
        parents: a function from a node to an iterable of its parent nodes.

    Returns:
        A list of nodes in topological order: parents before children, so
        `reversed(result)` visits every node before its parents (the order of a backward pass).

    The traversal is an explicit-stack depth-first search, so the depth of the graph never
    touches Python's recursion limit. A node is pushed, then an `_EXIT` marker above it, then its
    unvisited parents; when the marker comes back to the top every parent has been emitted, so
    the node is emitted. Plain list pushes (no per-node iterator objects) keep it fast.
    """
    order = []
    visited = set()
    for root in roots:
        stack = [root]
        while stack:
            node = stack.pop()
            if node is _EXIT:
                order.append(stack.pop())
                continue
            if id(node) in visited:
                continue
            visited.add(id(node))
            stack.append(node)
            stack.append(_EXIT)
            stack.extend(p for p in parents(node) if id(p) not in visited)
    return order
