"""``advnlp env``: versions and devices, to paste into a bug report."""

from __future__ import annotations

import argparse
import platform

from ..experiment.environment import RUN_PACKAGES, package_versions


def add_parser(sub: argparse._SubParsersAction, name: str) -> None:
    p = sub.add_parser(name, help="print versions and devices for a bug report")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import torch

    print(f"- platform: {platform.platform()}")
    extras = ("matplotlib", "keras", "pytorch-lightning")
    for package, found in package_versions((*RUN_PACKAGES, *extras)).items():
        print(f"- {package}: {found}")
    print(f"- CPU threads: {torch.get_num_threads()}")
    cuda = torch.cuda.is_available()
    print(f"- CUDA: {torch.cuda.get_device_name(0) if cuda else 'not available'}")
    print(f"- bf16 on CUDA: {torch.cuda.is_bf16_supported() if cuda else 'n/a'}")
    return 0
