"""The batch sizer: grows while throughput improves, halves on out-of-memory, and says so."""

import numpy as np

import gradfuzz
from examples.seed_ops import my_op
from gradfuzz.batching import BatchSizer
from gradfuzz.screen import Screen
from gradfuzz.spec import parse_spec
from gradfuzz.values import OutOfMemory


def _feed(sizer: BatchSizer, rate_of) -> None:
    for _ in range(200):
        if not sizer.growing:
            return
        sizer.record(sizer.size, sizer.size / rate_of(sizer.size))


def test_grows_while_faster_and_settles_where_growth_stops_paying():
    sizer = BatchSizer([parse_spec("float32[]")])
    _feed(sizer, lambda size: min(size, 8192) * 100.0)  # examples/s flat from 8,192 on
    assert sizer.size == 8192 and not sizer.growing
    assert set(sizer.describe()["batch_sizes_tried"]) == {1024, 2048, 4096, 8192, 16384}


def test_growth_stops_at_the_memory_budget():
    sizer = BatchSizer([parse_spec("float32[64,64]")])  # 4,096 elements per example
    _feed(sizer, lambda size: size * 100.0)  # always faster
    assert sizer.size * 64 * 64 <= BatchSizer.MAX_ELEMENTS
    small = BatchSizer([parse_spec("float64[]")])
    _feed(small, lambda size: size * 100.0)
    assert small.size == BatchSizer.MAX_EXAMPLES


def test_out_of_memory_halves_records_and_stops_growth():
    sizer = BatchSizer([parse_spec("float32[]")])
    sizer.out_of_memory()
    assert sizer.size == 512 and not sizer.growing and sizer.describe()["out_of_memory_halvings"] == [1024]


def test_a_check_survives_running_out_of_memory_with_a_smaller_batch(monkeypatch):
    planned = Screen.planned

    def small_device(self, plan, size, pool=None):  # a device that cannot hold more than 1,000 examples
        if size > 1000:
            raise OutOfMemory(size)
        return planned(self, plan, size, pool)

    monkeypatch.setattr(Screen, "planned", small_device)
    report = gradfuzz.check(my_op, budget="4s", seed=1)
    assert report.engine["out_of_memory_halvings"] == [1024]
    assert report.engine["batch_size"] == 512
    assert report.examples > 0 and [f.category for f in report.failures] == ["approximation"]
    assert np.isfinite(report.examples_per_second)
