"""Install the ``sfsc`` package (FastReID project in projects/SFSC).

FastReID itself must be installed with ``pip install --no-deps fastreid==1.4.0``: its metadata
pins torch 1.13, which does not exist for current Pythons. Its real runtime needs are listed here.
"""
from setuptools import find_packages, setup

setup(
    name="sfsc",
    version="0.1.0",
    description="Switchable representation learning with self-compatibility (SFSC) for FastReID",
    package_dir={"": "projects/SFSC"},
    packages=find_packages("projects/SFSC"),
    python_requires=">=3.10",  # torchjd 0.18 needs 3.10
    install_requires=[
        "torch>=2.1",
        "torchvision>=0.16",
        "numpy",
        "yacs>=0.1.8",
        "termcolor",
        "tabulate",
        "scikit-learn",  # imported by fastreid.evaluation
        "tensorboard",
        "Pillow",
        "matplotlib",
        "torchjd[quadprog-projector,cagrad,fairgrad]==0.18.0",  # SFSC.AGGREGATION weightings
        "fonttools==4.69.1",  # which characters a font draws (sfsc.data.hangul_fonts)
    ],
    # faiss (the gallery index tools) is one extra or the other, never both: faiss-cpu and
    # faiss-gpu-cu12 install the same `faiss` module over each other.
    extras_require={
        "cpu": ["faiss-cpu>=1.7.3"],
        "gpu": ["faiss-gpu-cu12"],  # CUDA 12; GPU indexes, and the evaluator's faiss backend
        "export": ["onnx", "onnxruntime"],  # tools/export_submodel.py, --exported models
        # what `make test` needs: the CPU build of faiss, the exporters and the test tools
        "dev": ["faiss-cpu>=1.7.3", "onnx", "onnxruntime", "pytest", "pytest-xdist", "ruff"],
    },
)
