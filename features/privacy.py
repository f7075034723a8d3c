"""Which columns hold personal data: the one rule the file loader, the feature builder and the service follow.

``data.personal_data_columns`` names them (name, email, phone and address by default). A column is personal
data when its name equals one of those ignoring case, spaces, underscores and hyphens: ``Email``, `` EMAIL ``,
``E-Mail`` and ``e_mail`` are all ``email``. Exports from other tools capitalise and punctuate their headers
as they like, and a header must not slip past the rule by its spelling. Personal columns are never features,
never logged, and their values never appear in an error message.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

_IGNORED = re.compile(r"[\s_-]+")


@lru_cache(maxsize=4096)  # the service asks about the same few attribute names for every request
def _key(name: str) -> str:
    return _IGNORED.sub("", name).casefold()


class PersonalData:
    """The personal-data column names of a config; ``name in personal`` says whether a column is one."""

    def __init__(self, names: Iterable[str] = ()) -> None:
        self.names = tuple(names)
        self._keys = frozenset(_key(str(name)) for name in self.names)

    def __contains__(self, column: object) -> bool:
        return _key(str(column)) in self._keys

    def __repr__(self) -> str:
        return f"PersonalData({list(self.names)!r})"
