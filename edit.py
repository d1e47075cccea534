"""Edit face regions (Hydra entry point); settings: conf/edit.yaml.

python edit.py input=face.png roi=hair mode=style strength=1.5 seed=3 out=edits/
python edit.py input=faces/ roi=[hair,skin] mode=swap_style reference=ref.png
python edit.py input=face.png roi=lips_mouth mode=swap_structure donor=donor.png precision=bf16
"""

from l2sae.cli import edit

if __name__ == "__main__":
    edit()
