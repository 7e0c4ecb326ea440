import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.units import ByteSizeError, format_bytes_exact, format_bytes_short, parse_bytes


@pytest.mark.parametrize(
    "text,size_bytes",
    [
        ("5 GB", 5 * 10**9),
        ("5GB", 5 * 10**9),
        ("5 gb", 5 * 10**9),
        ("500 MB", 500 * 10**6),
        ("2 GiB", 2 * 1024**3),
        ("1.5 TB", 1_500_000_000_000),
        ("2048", 2048),
        ("10 KiB", 10240),
        (" 7 b ", 7),
    ],
)
def test_it_parses_sizes_people_type(text, size_bytes):
    assert parse_bytes(text) == size_bytes


@pytest.mark.parametrize("text", ["", "GB", "-1 GB", "5 XB", "1.5 B", "five GB", "5 G B"])
def test_it_rejects_sizes_it_cannot_read(text):
    with pytest.raises(ByteSizeError):
        parse_bytes(text)


@given(st.integers(min_value=1, max_value=10**18))
def test_what_a_form_shows_parses_back_to_the_same_bytes(size_bytes):
    assert parse_bytes(format_bytes_exact(size_bytes)) == size_bytes


def test_tables_round_for_reading():
    assert format_bytes_short(1_234_567_891) == "1.23 GB"
    assert format_bytes_short(None) == "—"
