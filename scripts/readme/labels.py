"""How the Results section names what it shows: an attack setting, a method with its epsilon
(unit and scope from compare.json or the method's default), a list of seeds."""

from __future__ import annotations


def attack_label(result: dict) -> str:
    """ "typo, budget 0.1": one attack setting of a summary's robustness results."""
    from advnlp.robustness.compare import result_label

    return result_label(result)


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
