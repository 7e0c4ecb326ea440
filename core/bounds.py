"""The largest number each kind of column holds, and the checks that keep input within it.

docs/shared-config-table.md defines counts as `integer` (int32) and byte sizes as `bigint`.
PostgreSQL refuses a larger value at INSERT time (a database error, not a field error) and
SQLite stores anything up to 2^63 - 1, so an int32 reader of the shared table overflows. Every
number a form or the report API accepts is checked against these bounds first, the same on
both databases, with an error that names the maximum.
"""

from django.core.validators import MaxValueValidator

INT32_MAX = 2**31 - 1
BIGINT_MAX = 2**63 - 1

TOO_LARGE_MESSAGE = "At most %(limit_value)s: the largest value this setting's column holds."


def at_most(limit: int) -> MaxValueValidator:
    """A model field validator that says what the maximum is (and why there is one)."""
    return MaxValueValidator(limit, message=TOO_LARGE_MESSAGE)


def int32_max() -> MaxValueValidator:
    return at_most(INT32_MAX)


def bigint_max() -> MaxValueValidator:
    return at_most(BIGINT_MAX)


def too_large_message(limit: int) -> str:
    """The same words for a form field's max_value error."""
    return TOO_LARGE_MESSAGE % {"limit_value": limit}
