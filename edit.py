"""Edit face regions: ``python edit.py input=face.png roi=hair mode=style strength=1.5 seed=3 out=edits/``.

Other modes: ``mode=swap_style reference=IMAGE``, ``mode=swap_structure donor=IMAGE``; several
regions: ``roi=[hair,skin]``. Settings and their defaults: conf/edit.yaml.
"""

import hydra
from omegaconf import DictConfig

from l2sae.editing import run


@hydra.main(version_base="1.3", config_path="conf", config_name="edit")
def main(cfg: DictConfig) -> dict:
    return run(cfg)


if __name__ == "__main__":
    main()
