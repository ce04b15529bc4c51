"""The LightningCLI example of Lightning's docs (``cli/lightning_cli_intermediate``): its demo
model and data, the callback given on the command line, no code of autowarm's here.

    python lightning_cli.py fit --trainer.max_steps 30 \
        --trainer.callbacks+=autowarm.integrations.lightning.AutowarmCallback
"""

from lightning.pytorch.cli import LightningCLI
from lightning.pytorch.demos.boring_classes import BoringDataModule, DemoModel


def cli_main() -> None:
    LightningCLI(DemoModel, BoringDataModule)


if __name__ == "__main__":
    cli_main()
