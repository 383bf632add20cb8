"""Checking the arguments that say which arguments a transform works on: `argnums` (`grad`,
`jacrev`, ...) and `static_argnums` / `static_argnames` (`jit`, `export`, `make_graph`).

What this module lets you do: `argnums(value, nargs)` validates and normalises an `argnums`;
`static_spec(fun, nums, names)` validates `jit`'s static arguments and completes each from the
other through `fun`'s signature (as JAX does: `static_argnums=1` also makes the parameter at
position 1 static when it is passed by keyword); `split_static` / `merge_static` take the static
values out of a call and put them back. Every mistake raises `ArgumentError` naming the argument,
what was given and what is accepted.
"""

import inspect
import numbers

from chainrule.core import ChainruleError

__all__ = ['ArgumentError', 'argnums', 'check_argnums', 'static_spec', 'split_static',
           'merge_static']


class ArgumentError(ChainruleError, TypeError, ValueError):
    """An argument of a chainrule function has the wrong type or value (the message names it,
    says what was given and what is accepted)."""


def _is_int(x):
    return isinstance(x, numbers.Integral) and not isinstance(x, bool)


def check_argnums(value, name='argnums', op='grad'):
    """`value` is an int or a non-empty tuple/list of ints; returns (single, tuple of ints)."""
    if _is_int(value):
        return True, (int(value),)
    if isinstance(value, (tuple, list)) and value and all(_is_int(a) for a in value):
        return False, tuple(int(a) for a in value)
    raise ArgumentError(f'{op}: {name}={value!r} is not accepted: give the position of a '
                        'positional argument as an int, or several as a tuple of ints '
                        f'(e.g. {name}=0 or {name}=(0, 1))')


def argnums(value, nargs, name='argnums', op='grad'):
    """(single, positions normalised to 0..nargs-1) for a call with `nargs` positional args."""
    single, nums = check_argnums(value, name, op)
    for a in nums:
        if not -nargs <= a < nargs:
            raise ArgumentError(f'{op}: {name}={value!r} but the function was called with '
                                f'{nargs} positional argument(s)')
    return single, tuple(a % nargs for a in nums)


def static_spec(fun, static_argnums, static_argnames, op='jit'):
    """(positions, names) of `fun`'s static arguments, each completed from the other through
    `fun`'s signature when it has one."""
    if static_argnums is None or static_argnums == ():
        nums = ()
    else:
        nums = check_argnums(static_argnums, 'static_argnums', op)[1]
    if isinstance(static_argnames, str):
        static_argnames = (static_argnames,)
    if static_argnames is None:
        static_argnames = ()
    if not isinstance(static_argnames, (tuple, list)) or \
            not all(isinstance(n, str) for n in static_argnames):
        raise ArgumentError(f'{op}: static_argnames={static_argnames!r} is not accepted: give '
                            'a parameter name as a str, or several as a tuple of str')
    names = tuple(static_argnames)
    try:
        params = list(inspect.signature(fun).parameters.values())
    except (TypeError, ValueError):
        return nums, names
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if not any(p.kind == p.VAR_POSITIONAL for p in params):
        for i in nums:
            if not -len(positional) <= i < len(positional):
                raise ArgumentError(
                    f'{op}: static_argnums={static_argnums!r}, but '
                    f'{getattr(fun, "__name__", "the function")} takes '
                    f'{len(positional)} positional argument(s)')
    if not any(p.kind == p.VAR_KEYWORD for p in params):
        known = {p.name for p in params if p.kind != p.VAR_POSITIONAL}
        for n in names:
            if n not in known:
                raise ArgumentError(f'{op}: static_argnames names {n!r}, which is not a '
                                    f'parameter of {getattr(fun, "__name__", "the function")} '
                                    f'(its parameters: {sorted(known)})')
    by_name = {p.name: i for i, p in enumerate(positional) if p.kind != p.POSITIONAL_ONLY}
    if not any(p.kind == p.VAR_POSITIONAL for p in params):   # (else: counted at each call)
        nums = {i % len(positional) for i in nums}
    nums = tuple(sorted(set(nums) | {by_name[n] for n in names if n in by_name}))
    names = tuple(sorted(set(names) | {positional[i].name for i in nums
                                       if 0 <= i < len(positional) and
                                       positional[i].kind != positional[i].POSITIONAL_ONLY}))
    return nums, names


def split_static(nums, names, args, kwargs, op='jit'):
    """(statics, dynamic args, dynamic kwargs): statics is a hashable tuple of (position or
    name, value)."""
    n = len(args)     # (a static parameter not passed positionally has a default or a keyword)
    pos = sorted({i % n for i in nums if -n <= i < n})
    statics = tuple((i, args[i]) for i in pos) + tuple(
        sorted((k, v) for k, v in kwargs.items() if k in names))
    dyn = tuple(a for i, a in enumerate(args) if i not in pos) if pos else args
    kw = {k: v for k, v in kwargs.items() if k not in names} if names else kwargs
    for _, v in statics:
        try:
            hash(v)
        except TypeError:
            raise ArgumentError(f'{op}: static arguments must be hashable (they key the cache '
                                f'of traces); got a {type(v).__name__}: {v!r:.60}') from None
    return statics, dyn, kw


def merge_static(statics, args, kwargs):
    """The full (args, kwargs) of a call from its dynamic part and `statics`."""
    args = list(args)
    for k, v in statics:
        if isinstance(k, str):
            kwargs[k] = v
        else:
            args.insert(k, v)
    return args, kwargs
