"""Places too coarse to say who anyone is: countries, their regions (states, provinces) and continents.

The NER tags "North America" and "Nigeria" as locations, and the given-name list holds "America" and
"Jordan": masked, "What are the causes of stigma in North America?" loses what it asks, in storage, in
search and for the model, while a country or a state identifies nobody. Cities, streets and addresses stay
personal data. The countries and their first divisions are ISO 3166's (pycountry); the continents and world
regions, which no standard lists, are below.
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
def _countries() -> frozenset[str]:
    names = set(_REGIONS)
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            if value := getattr(country, attribute, None):
                names.add(_folded(value))
                names.add(_folded(value.split(",")[0]))  # "Korea, Republic of" -> "korea"
    return frozenset(names)


# A country's first division only, of the kinds that hold millions (a state, a province, a Land): counties,
# districts and municipalities are small enough to help single someone out.
_FIRST_DIVISIONS = frozenset({
    "State", "Province", "Land", "Region", "Autonomous community", "Autonomous region", "Republic", "Territory",
    "Union territory", "Prefecture", "Canton", "Voivodship", "Oblast", "Emirate", "Regional state",
    "Federal territory", "Capital territory", "Country", "Administrative region",
})


@functools.cache
def _regions_of_countries() -> frozenset[str]:
    return frozenset(_folded(subdivision.name) for subdivision in pycountry.subdivisions
                     if subdivision.parent_code is None and subdivision.type in _FIRST_DIVISIONS)


def coarse_place(text: str, *, entity: str) -> bool:
    """Whether a finding is a country, a continent or a world region (and, for a LOCATION, a country's
    state or province). A PERSON finding counts only as a country or a continent: many regions are also
    given names ("Victoria", "Georgia" the state)."""
    folded = _folded(text).strip(" .,;:!?'\"’")
    bare = _DIRECTION.sub("", folded)
    for name in {folded, bare, folded.removeprefix("the ")}:
        if name in _countries() or entity == "LOCATION" and name in _regions_of_countries():
            return True
    return False
