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
        "faiss-cpu>=1.7.3",
        "Pillow",
        "matplotlib",
        "torchjd[quadprog-projector,cagrad,fairgrad]==0.18.0",  # SFSC.AGGREGATION weightings
    ],
    extras_require={
        # faiss-gpu-cu12 provides the same `faiss` module with GPU indexes; uninstall faiss-cpu
        # first so that the GPU build is the one imported.
        "gpu": ["faiss-gpu-cu12"],
        "export": ["onnx", "onnxruntime"],
        "dev": ["pytest", "pytest-xdist", "ruff", "onnx", "onnxruntime"],
    },
)
