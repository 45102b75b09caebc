"""Experiments as the tests need them: a production prompt, arms on versions of it, started."""

from __future__ import annotations

from experiments.assignment import LiveArm, arm_for_visitor, forget_running_experiments
from experiments.models import PRODUCTION, Arm, Experiment
from experiments.services import experiment_start, prompt_version_create


def running_experiment(*, weights: tuple[float, float] = (1.0, 1.0), share_reuse: bool = False,
                       guardrails: list[str] | None = None, **fields: object) -> Experiment:
    """Control on the production version, arm `b` on a new one; started."""
    control = prompt_version_create(name="coach", system_prompt="You are a coach. Cite like [1].",
                                    labels=[PRODUCTION])
    other = prompt_version_create(name="coach", system_prompt="You are a terse coach. Cite like [1].")
    experiment = Experiment.objects.create(name=fields.pop("name", "terse"), guardrails=guardrails or [], **fields)
    Arm.objects.create(experiment=experiment, name="a", prompt_version=control, weight=weights[0], is_control=True)
    Arm.objects.create(experiment=experiment, name="b", prompt_version=other, weight=weights[1],
                       share_reuse=share_reuse)
    experiment_start(experiment=experiment, baseline={"latency_threshold_ms": 1000.0, "cost_mean": 0.001})
    forget_running_experiments()
    return experiment


def visitor_in(arm_name: str, *, language: str = "en", prefix: str = "visitor") -> str:
    """The first visitor id the assignment gives that arm."""
    for n in range(10_000):
        visitor = f"{prefix}-{n}"
        arm = arm_for_visitor(visitor_id=visitor, language=language)
        if arm is not None and arm.key.endswith(f":{arm_name}"):
            return visitor
    raise AssertionError(f"no visitor lands in {arm_name}")


def arm_of(visitor: str, language: str = "en") -> LiveArm | None:
    return arm_for_visitor(visitor_id=visitor, language=language)
