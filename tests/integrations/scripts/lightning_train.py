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
parser.add_argument("--val", action="store_true", help="validate (scores probe trials)")
parser.add_argument("--monitor", default="val_loss", help="AutowarmCallback(monitor=...)")
parser.add_argument("--val-out", help="append each validation's loss here")
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

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch  # one batch: the logged epoch mean is this batch's loss
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("val_loss", loss)
        if args.val_out and not self.trainer.sanity_checking:
            with open(args.val_out, "a") as f:
                f.write(f"{float(loss)!r}\n")

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
    callbacks=[AutowarmCallback(monitor=args.monitor or None), *([every_5] if saving else [])],
    accelerator="cpu",
    logger=pl.loggers.CSVLogger(".") if saving else False,
    log_every_n_steps=1,
    enable_checkpointing=saving,
    enable_progress_bar=False,
    enable_model_summary=False,
)
loader = torch.utils.data.DataLoader(data, batch_size=32, shuffle=True)
held_out = torch.randn(128, 8)
val = torch.utils.data.DataLoader(
    torch.utils.data.TensorDataset(held_out, held_out.sum(1, keepdim=True)), batch_size=128
)
trainer.fit(Regression(), loader, val if args.val else None)
