"""A small regression MLP fitted by a stock ``lightning.Trainer`` (gradient clipping on), with
the one line autowarm needs: ``callbacks=[AutowarmCallback()]``.

    python tests/integrations/scripts/lightning_train.py --max-steps 30
    python tests/integrations/scripts/lightning_train.py --checkpoints ckpts  # + logs, "last"
    autowarm probe --steps 12 --trials 4 tests/integrations/scripts/lightning_train.py
"""

from __future__ import annotations

import argparse

import lightning.pytorch as pl
import torch

from autowarm.integrations.lightning import AutowarmCallback

parser = argparse.ArgumentParser()
parser.add_argument("--max-steps", type=int, default=30)
parser.add_argument("--lr", type=float, default=1e-2)
parser.add_argument("--checkpoints", help="ModelCheckpoint's dirpath (every 5 steps, 'last')")
args = parser.parse_args()


class Regression(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = torch.nn.Sequential(
            torch.nn.Linear(8, 32), torch.nn.Tanh(), torch.nn.Linear(32, 1)
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("loss", loss)
        return loss

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=args.lr)


torch.manual_seed(0)
torch.set_num_threads(1)
x = torch.randn(1024, 8)
data = torch.utils.data.TensorDataset(x, x.sum(1, keepdim=True))
saving = args.checkpoints is not None
every_5 = pl.callbacks.ModelCheckpoint(args.checkpoints, every_n_train_steps=5, save_last=True)
trainer = pl.Trainer(
    max_steps=args.max_steps,
    gradient_clip_val=1.0,
    callbacks=[AutowarmCallback(), *([every_5] if saving else [])],
    accelerator="cpu",
    logger=pl.loggers.CSVLogger(".") if saving else False,
    log_every_n_steps=1,
    enable_checkpointing=saving,
    enable_progress_bar=False,
    enable_model_summary=False,
)
trainer.fit(Regression(), torch.utils.data.DataLoader(data, batch_size=32, shuffle=True))
