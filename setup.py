"""Only what pyproject.toml cannot say: the repository's ``configs/`` folder ships inside the
wheel as ``vidssl/configs`` (read by :func:`vidssl.config.shipped_configs_dir`), so the configs
the docs tell users to copy exist after ``pip install vidssl`` too."""

from setuptools import find_packages, setup

setup(packages=find_packages(include=["vidssl", "vidssl.*"]) + ["vidssl.configs"],
      package_dir={"vidssl.configs": "configs"})
