"""Class 5 of the combination tests (levels): trace levels are structural -- a transform
always gets a level above every transform active when it started, in any thread, and levels
never wrap -- so a transform started in a worker thread inside another transform is ordered
correctly on every call, not by numeric luck."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

import chainrule as cr
import chainrule.numpy as cnp
from chainrule.core import new_level, Trace


def test_levels_increase_across_threads_and_never_wrap():
    seen = []
    lock = threading.Lock()

    def worker():
        for _ in range(2000):
            with new_level(Trace) as outer:
                with new_level(Trace) as inner:
                    assert inner.level > outer.level
                    with lock:
                        seen.append(inner.level)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == len(set(seen)) == 8000     # no two transforms ever share a level
    # a level taken later is above every earlier one, however many were taken before
    with new_level(Trace) as a:
        pass
    assert a.level > max(seen)


def test_grad_run_in_a_worker_thread_inside_grad_is_ordered_right_every_time():
    pool = ThreadPoolExecutor(max_workers=2)

    def f(x):
        # the inner derivative d/dy (x * y) = x is taken in another thread, on a value closed
        # over from the outer transform: the inner level must sort above the outer one
        inner = pool.submit(lambda: cr.grad(lambda y: x * y)(3.0)).result()
        return x * inner                 # = x ** 2, so df/dx = 2x

    try:
        for i in range(300):
            x = 1.0 + i / 100
            assert cr.grad(f)(x) == 2 * x
        # and several such outer transforms racing in threads of their own
        def many(k):
            return [cr.grad(f)(float(k + j)) for j in range(25)]
        with ThreadPoolExecutor(max_workers=3) as outer_pool:
            results = list(outer_pool.map(many, range(6)))
        for k, r in enumerate(results):
            np.testing.assert_array_equal(r, [2.0 * (k + j) for j in range(25)])
    finally:
        pool.shutdown()


def test_tensors_made_in_a_thread_inside_a_transform_belong_to_that_thread_context():
    # a worker thread starts with no transform active: its Tensors are top-level ones
    w = cr.tensor([1.0, 2.0], requires_grad=True)
    out = {}

    def f(x):
        t = threading.Thread(target=lambda: out.update(v=(w * 3.0).sum()))
        t.start()
        t.join()
        return cnp.sum(x * w)
    g = cr.grad(f)(np.array([0.5, 0.25]))
    np.testing.assert_allclose(g.numpy(), [1.0, 2.0])
    out['v'].backward()
    np.testing.assert_allclose(w.grad.numpy(), [3.0, 3.0])
