"""The interactive editor in the browser (Hydra entry point); settings: conf/app.yaml.

python app.py                                   # http://127.0.0.1:7860, networks from logs/latest
python app.py port=8080 examples_dir=my_faces/ precision=bf16
"""

from l2sae.cli import app

if __name__ == "__main__":
    app()
