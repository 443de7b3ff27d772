"""Build a tasks folder whose ``tiny`` tier points at freshly built tiny checkpoints of the real
architectures (steps and sizes small enough for dozens of runs): the end-to-end tests' world and
the fault-injection tests' one."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

REPO_TASKS = Path(__file__).resolve().parents[1] / "tasks"


def build_tiny_tasks(root: Path, vocab_dir: Path, *, steps: int = 6, trials: int = 2, with_sd: bool = False) -> Path:
    """``with_sd`` builds a tiny SD too; without it (the fault tests run detection and
    classification pairs, the fastest) the tier's ``sd`` points at the clip folder only so that the
    tier file is complete."""
    from vwbench.zoo.manifest import write_manifest
    from vwbench.zoo.tiny_clip import save_tiny_clip
    from vwbench.zoo.tiny_owlv2 import save_tiny_owlv2
    from vwbench.zoo.tiny_sd import save_tiny_sd

    ckpt = {
        **({"sd": save_tiny_sd(root / "sd", vocab_dir, seed=0)} if with_sd else {}),
        "owlv2": save_tiny_owlv2(root / "owlv2", vocab_dir, seed=1),
        "clip": save_tiny_clip(root / "clip", vocab_dir, seed=2),
        "judge": save_tiny_clip(root / "judge", vocab_dir, seed=3),
    }
    for folder in ckpt.values():
        write_manifest(folder)
    tasks = root / "tasks"
    for sub in ("models", "datasets", "suites"):
        (tasks / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_TASKS / "defaults.yaml", tasks / "defaults.yaml")

    def model(family: str, path: Path) -> dict:
        return {"family": family, "checkpoint": {"path": str(path), "manifest": "manifest.json"}}

    tier = {
        "tier": "tiny",
        "models": {"sd": model("sd", ckpt.get("sd", ckpt["clip"])), "owlv2": model("owlv2", ckpt["owlv2"]), "clip": model("clip", ckpt["clip"])},
        "judge": model("clip", ckpt["judge"]),
    }
    (tasks / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    dataset = {
        "name": "synth-tiny", "tier": "tiny", "loader": "synth", "heldout_per_concept": 2,
        "options": {"variant": "voc", "image_size": 32, "seed": 0}, "concepts": ["circle", "square", "triangle"],
    }
    (tasks / "datasets" / "synth-tiny.yaml").write_text(yaml.safe_dump(dataset))
    suite = {
        "name": "tiny", "datasets": ["synth-tiny"], "pairs": "all",
        "settings": {"hyperparameters": {"steps": steps, "trials": trials, "images_per_concept": 2},
                     "eval": {"generations_per_word": 2, "inference_steps": 2}},
    }
    (tasks / "suites" / "tiny.yaml").write_text(yaml.safe_dump(suite))
    return tasks
