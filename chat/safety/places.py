"""Places too coarse to say who anyone is: countries and continents.

The NER tags "North America" and "Nigeria" as locations, and the given-name list holds "America" and
"Jordan": masked, "What are the causes of stigma in North America?" loses what it asks, in storage, in
search and for the model, while a country identifies nobody. Regions within a country stay masked with cities,
streets and addresses: many are a single city ("Berlin", "Hamburg", "Tokyo" are states). The countries are
ISO 3166's (pycountry); the continents and world regions, which no standard lists, are below.
"""

from __future__ import annotations

import functools
import re

import pycountry

_REGIONS = (
    "africa", "america", "americas", "antarctica", "arctic", "asia", "australasia", "balkans", "caribbean",
    "central america", "europe", "eurasia", "latin america", "middle east", "near east", "far east", "oceania",
    "pacific", "polynesia", "scandinavia", "siberia", "south america", "north america", "the west", "the east",
)
# "North America", "southern Europe", "Sub-Saharan Africa": a direction before a place is the same place.
_DIRECTION = re.compile(
    r"^(?:the\s+)?(?:(?:north|south|east|west|central|northern|southern|eastern|western|sub-saharan|"
    r"north-?east(?:ern)?|north-?west(?:ern)?|south-?east(?:ern)?|south-?west(?:ern)?)\s+)?", re.I)


def _folded(name: str) -> str:
    return " ".join(name.casefold().split())


@functools.cache
def _places() -> frozenset[str]:
    names = set(_REGIONS)
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            if value := getattr(country, attribute, None):
                names.add(_folded(value))
                names.add(_folded(value.split(",")[0]))  # "Korea, Republic of" -> "korea"
    return frozenset(names)


def coarse_place(text: str) -> bool:
    """Whether a finding (a PERSON or a LOCATION) is a country, a continent or a world region."""
    folded = _folded(text).strip(" .,;:!?'\"’")
    return any(name in _places() for name in {folded, _DIRECTION.sub("", folded), folded.removeprefix("the ")})
