"""How the Results section names what it shows: a method with its epsilon (unit and scope from
compare.json or the method's default), a list of seeds. An attack setting is named by
advnlp.robustness.compare.result_label."""

from __future__ import annotations


def epsilon_text(group: dict, settings: dict) -> str:
    """ε with its unit and scope for the methods that take ``epsilon_unit`` / ``scope`` (from
    compare.json, else the method's default): PGD in example and in token scope are two
    different strengths at the same number."""
    if group["epsilon"] is None:
        return "—"
    chosen = chosen_hyperparameters(group, settings)
    text = f"{group['epsilon']:g}"
    if "epsilon_unit" in chosen:
        text += f" {chosen['epsilon_unit']}"
    if "scope" in chosen:
        text += f", {chosen['scope']} scope"
    return text


def chosen_hyperparameters(group: dict, settings: dict) -> dict:
    """The group's method's hyperparameters: compare.json's choices over the method's defaults
    (only those the method takes)."""
    from advnlp.registry import hyperparameters

    defaults = hyperparameters(group["method"])
    chosen = settings["shared"].get("hyperparameters") or {}
    return {key: chosen.get(key, value) for key, value in defaults.items()}


def method_label(group: dict, settings: dict) -> str:
    """ "fgm ε 0.5 absolute, token scope": the method with its ``epsilon_text`` (none: the name)."""
    epsilon = epsilon_text(group, settings)
    return group["method"] + ("" if epsilon == "—" else f" ε {epsilon}")


def seed_text(seeds: list[int]) -> str:
    return ", ".join(str(seed) for seed in seeds)
