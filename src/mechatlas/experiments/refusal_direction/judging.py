"""The judges of the evaluation stage, from params.yaml: substring always, a classifier and a rubric
judge where params name them, and the first-token refusal score (``logit``) that every evaluation has."""

from __future__ import annotations

from typing import Any

from mechatlas.config import Params


def evaluation_judges(params: Params) -> tuple[list[Any], list[str], bool]:
    """The judges to run on replies, the ``refused_<judge>`` names the record reports (``logit`` included),
    and whether a classifier judge is among them."""
    from mechatlas.interp.judges import SubstringJudge, load_judge
    from mechatlas.interp.models import load_model, resolve_device

    settings = params.refusal_direction
    judges: list[Any] = [SubstringJudge(tuple(settings.refusal_substrings))]
    classifier = load_judge(
        settings.judge,
        settings.judge_refusal_label,
        allow_hub=params.run.allow_hub,
        device=resolve_device(params.run.device),
    )
    if classifier is not None:
        classifier.name = "classifier"
        judges.append(classifier)
    if settings.rubric_judge is not None:
        from mechatlas.interp.judges import RubricJudge

        grader = load_model(
            settings.rubric_judge,
            device=params.run.device,
            dtype=params.run.dtype,
            allow_hub=params.run.allow_hub,
        )
        judges.append(RubricJudge(grader, max_new_tokens=settings.rubric_max_new_tokens))
    names = ["substring", "logit"] + (["classifier"] if classifier is not None else [])
    names += ["rubric"] if settings.rubric_judge is not None else []
    return judges, names, classifier is not None
