"""Meta-World's own scripted policies, as robokit experts.

metaworld ships one hand-written policy per task (`metaworld.policies.ENV_POLICY_MAP`): it reads
the full 39-dim observation (our `observation.environment_state`) and returns the 4-dim action.
"""

from __future__ import annotations

import numpy as np

from robokit.envs.experts.base import EpisodeScript, ScriptedExpert


class _PolicyScript(EpisodeScript):
    def __init__(self, policy):
        self.policy = policy

    def act(self, obs):
        return np.clip(self.policy.get_action(np.asarray(obs["observation.environment_state"], dtype=np.float64)), -1, 1)


class MetaWorldExpert(ScriptedExpert):
    """The package's scripted policy for one MT50 task (e.g. "door-open")."""

    def __init__(self, task: str):
        super().__init__()
        from metaworld.policies import ENV_POLICY_MAP

        key = f"{task}-v3"
        if key not in ENV_POLICY_MAP:
            raise ValueError(f"MetaWorldExpert: task={task!r} has no scripted policy; expected one of "
                             f"{sorted(k.removesuffix('-v3') for k in ENV_POLICY_MAP)}")
        self._policy = ENV_POLICY_MAP[key]()

    def new_episode(self, obs):
        return _PolicyScript(self._policy)
