"""Edit face regions (Hydra entry point); settings: conf/edit.yaml.

python edit.py input=face.png roi=hair mode=style strength=1.5 seed=3 out=edits/
python edit.py input=faces/ roi=[hair,skin] mode=swap_style reference=ref.png
python edit.py input=face.png roi=lips_mouth mode=swap_structure donor=donor.png precision=bf16
"""

import os
from pathlib import Path

import hydra

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))


@hydra.main(version_base="1.3", config_path="conf", config_name="edit")
def main(cfg) -> dict:
    from l2sae.editing.run import run

    return run(cfg)


if __name__ == "__main__":
    main()
