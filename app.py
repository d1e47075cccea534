"""The interactive editor in the browser (Hydra entry point); settings: conf/app.yaml.

python app.py                                   # http://127.0.0.1:7860, networks from logs/latest
python app.py port=8080 examples_dir=my_faces/ precision=bf16
"""

import os
from pathlib import Path

import hydra

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parent))
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")


@hydra.main(version_base="1.3", config_path="conf", config_name="app")
def main(cfg) -> dict:
    from l2sae.app.run import run

    return run(cfg)


if __name__ == "__main__":
    main()
