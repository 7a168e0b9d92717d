"""The registry of `robokit` subcommands.

Each entry maps a command name to "module:function". The function takes the remaining argv
(list[str]) and returns an exit code; it parses its own options (a config dataclass through
`robokit.cli.parse`) so that `robokit --help` and a
command's start-up import only what that command needs. Add a command with one line here.
"""

COMMANDS: dict[str, tuple[str, str]] = {
    # name: ("module:function", one-line summary shown by `robokit --help`)
    "demo": ("robokit.commands.demo:main", "The embedded default job: expert demos in sim -> train -> eval -> report (`demo dataset`: the dataset tour)."),
    "dataset": ("robokit.commands.dataset:main", "Dataset tools: info, check, convert, merge, split, delete-episodes, recompute-stats, cache."),
    "virtual-arm": ("robokit.commands.hardware:virtual_arm", "Serve emulated servo arms (so101, koch, ...) on pseudo-terminals; prints the ports."),
    "find-port": ("robokit.commands.hardware:find_port", "Find the serial port of a servo bus adapter."),
    "find-cameras": ("robokit.commands.hardware:find_cameras", "List the cameras robokit can open."),
    "calibrate": ("robokit.commands.hardware:calibrate", "Calibrate a robot or leader arm (homing and ranges of motion)."),
    "setup-motors": ("robokit.commands.hardware:setup_motors", "Assign ids and baud rates to the motors of a new arm."),
    "teleoperate": ("robokit.commands.hardware:teleoperate", "Drive a robot from a leader arm at a fixed rate; reports loop timing."),
    "record": ("robokit.commands.hardware:record", "Record teleoperated episodes into a dataset."),
    "replay": ("robokit.commands.hardware:replay", "Play a recorded episode's actions on a robot."),
    "lekiwi-host": ("robokit.commands.hardware:lekiwi_host", "Run on a LeKiwi robot: serve it to a laptop over ZeroMQ."),
    "train": ("robokit.commands.train:main", "Train a policy (act, diffusion, smolvla, pi0, pi05) on a dataset, from scratch or --init a checkpoint; --resume continues exactly."),
    "serve": ("robokit.commands.serving:serve", "Serve policies over gRPC to robot clients (async inference)."),
    "run-policy": ("robokit.commands.serving:run_policy", "Run a policy on a robot or sim at a fixed rate, inference on a server or in-process."),
    "push-policy": ("robokit.commands.policy_hub:main", "Upload a trained policy to the Hugging Face hub with its model card."),
    "demos": ("robokit.commands.sim:demos_main", "Record a scripted expert's demonstrations in a simulated env, or several tasks (metaworld/mt10), into one dataset."),
    "eval": ("robokit.commands.sim:eval_main", "Evaluate a policy (checkpoint, expert or random) in a simulated env or task set; writes a success table, eval_info.json, videos."),
}
