"""Human-readable numbers: three significant digits, fitting units."""

import pytest

from poolscope._format import duration, size


@pytest.mark.parametrize(("seconds", "text"), [
    (1234.5, "1234 s"), (12.345, "12.3 s"), (1.0, "1.00 s"),
    (0.49, "490 ms"), (0.0123, "12.3 ms"), (3.4e-5, "34.0 µs"), (2.5e-7, "0.25 µs"),
    (float("nan"), "n/a"), (-1e-12, "0.00 µs"), (-2e-6, "-2.00 µs"),
])
def test_duration(seconds, text):
    assert duration(seconds) == text


@pytest.mark.parametrize(("n", "text"), [(512, "512 B"), (1536, "1.5 KiB"),
                                          (3 * 2**20, "3.0 MiB")])
def test_size(n, text):
    assert size(n) == text
