"""Scripted experts for the registered envs: `make_expert(env_name)` -> a policy-like object.

    expert = make_expert("aloha_insertion")
    expert.reset()
    action = expert.select_action(obs)      # obs from make_env(...): batched dict of arrays

ALOHA: waypoint plans + inverse kinematics, joint-space actions (experts/aloha.py).
PushT: a pushing planner that uses the simulator itself as its model (experts/pusht.py).
Meta-World: the package's own scripted policies (experts/metaworld.py).
"""

from __future__ import annotations

from robokit.envs.experts.base import EpisodeScript, RandomPolicy, ScriptedExpert


def make_expert(env_name: str) -> ScriptedExpert:
    """The scripted expert of a registered env (a "did you mean" error for an unknown name)."""
    from robokit.envs.registry import check_installed, get_spec

    spec = get_spec(env_name)
    check_installed(spec)
    if spec.name in ("aloha_transfer_cube", "aloha_insertion"):
        from robokit.envs.experts.aloha import AlohaExpert

        return AlohaExpert(spec.name)
    if spec.name == "pusht":
        from robokit.envs.experts.pusht import PushTExpert

        return PushTExpert()
    if spec.name.startswith("metaworld/"):
        from robokit.envs.experts.metaworld import MetaWorldExpert

        return MetaWorldExpert(spec.kwargs["task"])
    raise ValueError(f"make_expert: env {env_name!r} has no scripted expert; expected pusht, aloha_* or metaworld/*")


__all__ = ["make_expert", "ScriptedExpert", "EpisodeScript", "RandomPolicy"]
