"""Which arm answers a visitor: sticky, cheap, and the same in every process.

A visitor's place is a hash of the experiment's salt and the visitor id mapped to [0, 1): the same
token gives the same arm on every visit, device and process, with nothing stored. SHA-256, not
Python's hash(), which is salted per process. Audience and arm use separate hashes, so widening the
audience adds visitors without moving anyone already in.

Running experiments are read for every answer, so they are kept per process for a short time,
like the production prompt (experiments.selectors)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cachetools.func

from .models import Arm, Experiment, arm_key
from .selectors import PromptChoice, prompt_choice

RUNNING_CACHE_SECONDS = 2.0


@dataclass(frozen=True)
class LiveArm:
    key: str  # recorded on the answer (AnswerFact.arm)
    arm_id: int
    weight: float
    is_control: bool
    paused: bool
    prompt: PromptChoice
    generation: dict[str, object]
    # The prompt version whose stored answers (cache, approved) this arm serves and stores under:
    # its own, or control's when it shares reuse with control.
    reuse_version_id: int | None
    # Versions of the experiment's other arms: answers approved under them are not this arm's to serve.
    foreign_version_ids: frozenset[int]


@dataclass(frozen=True)
class LiveExperiment:
    experiment_id: int
    salt: str
    audience_share: float
    languages: frozenset[str]  # empty: every language
    arms: tuple[LiveArm, ...]  # in a fixed order (by id), so the weights' cut points never move

    @property
    def control(self) -> LiveArm:
        return next(a for a in self.arms if a.is_control)


def unit_hash(salt: str, purpose: str, visitor_id: str) -> float:
    """A uniform number in [0, 1) fixed by salt, purpose and visitor."""
    digest = hashlib.sha256(f"{salt}:{purpose}:{visitor_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def pick_arm(experiment: LiveExperiment, visitor_id: str) -> LiveArm:
    """The arm the weights give this visitor; a paused arm's visitors go to control."""
    total = sum(a.weight for a in experiment.arms)
    point, reached = unit_hash(experiment.salt, "arm", visitor_id) * total, 0.0
    chosen = experiment.arms[-1]
    for arm in experiment.arms:
        reached += arm.weight
        if point < reached:
            chosen = arm
            break
    return experiment.control if chosen.paused else chosen


def in_audience(experiment: LiveExperiment, visitor_id: str, language: str) -> bool:
    if experiment.languages and language not in experiment.languages:
        return False
    return unit_hash(experiment.salt, "audience", visitor_id) < experiment.audience_share


def arm_for_visitor(*, visitor_id: str, language: str) -> LiveArm | None:
    """The arm that answers this visitor, or None (production answers). With several running
    experiments the oldest one the visitor is in decides."""
    for experiment in running_experiments():
        if in_audience(experiment, visitor_id, language):
            return pick_arm(experiment, visitor_id)
    return None


@cachetools.func.ttl_cache(maxsize=1, ttl=RUNNING_CACHE_SECONDS)
def running_experiments() -> tuple[LiveExperiment, ...]:
    experiments = Experiment.objects.filter(status=Experiment.Status.RUNNING).order_by("started_at", "pk")
    arms: dict[int, list[Arm]] = {}
    for arm in Arm.objects.filter(experiment__in=experiments, shadow=False).select_related(
            "prompt_version").order_by("pk"):
        arms.setdefault(arm.experiment_id, []).append(arm)
    live = (_live(e, arms.get(e.pk, [])) for e in experiments)
    return tuple(e for e in live if e is not None)


def forget_running_experiments() -> None:
    running_experiments.cache_clear()


def _live(experiment: Experiment, arms: list[Arm]) -> LiveExperiment | None:
    control = next((a for a in arms if a.is_control), None)
    if control is None or sum(a.weight for a in arms) <= 0:
        return None  # cannot be started so; an arm deleted since: production answers
    pooled = {a.pk for a in arms if a.is_control or a.share_reuse}
    return LiveExperiment(
        experiment_id=experiment.pk, salt=experiment.salt, audience_share=experiment.audience_share,
        languages=frozenset(experiment.languages),
        arms=tuple(_live_arm(experiment, a, arms, control, pooled) for a in arms),
    )


def _live_arm(experiment: Experiment, arm: Arm, arms: list[Arm], control: Arm, pooled: set[int]) -> LiveArm:
    shares = arm.pk in pooled
    others = {a.prompt_version_id for a in arms if (a.pk not in pooled if shares else a.pk != arm.pk)}
    return LiveArm(
        key=arm_key(experiment.pk, arm.name), arm_id=arm.pk, weight=arm.weight, is_control=arm.is_control,
        paused=arm.status == Arm.Status.PAUSED, prompt=prompt_choice(arm.prompt_version, model=arm.model),
        generation=dict(arm.generation),
        reuse_version_id=control.prompt_version_id if shares else arm.prompt_version_id,
        foreign_version_ids=frozenset(others - {control.prompt_version_id if shares else arm.prompt_version_id}),
    )
