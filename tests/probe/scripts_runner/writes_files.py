"""Trains a few steps and writes like real scripts do: a checkpoint with torch.save (read back
at once), a log appended to with open(), a metrics file through pathlib, and two atomic saves:
a temp file moved over the checkpoint (Lightning's, through fsspec) and one made next to it,
then renamed; and it clears what an earlier run left: a stale file removed, the runs folder
removed and made again, the notes renamed; and it links and copies its checkpoint as timm's
saver does, rotates a "latest" symlink, links to the user's data and writes through the links,
and touches and chmods a marker file of the user's."""

from __future__ import annotations

import os
import pathlib
import shutil
import tempfile

import torch

import autowarm

torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
optimizer = autowarm.wrap(torch.optim.SGD(model.parameters(), lr=0.01))
os.makedirs("out", exist_ok=True)
for step in range(40):
    x = torch.randn(16, 4)
    loss = (model(x) - x.sum(1, keepdim=True)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.report(loss)
    if step == 5:
        torch.save({"model": model.state_dict(), "step": step}, "out/ckpt.pt")
        assert torch.load("out/ckpt.pt")["step"] == 5  # the trial reads its own checkpoint
        with open("train.log", "a") as log:
            log.write(f"step {step} loss {loss.item():.4f}\n")
        pathlib.Path("out/metrics.json").write_text(f'{{"loss": {loss.item():f}}}')
        fd, tmp = tempfile.mkstemp()  # fsspec's transaction: the system's temp, then a move
        os.close(fd)
        with open(tmp, "wb") as f:
            f.write(b"a 5-step checkpoint")
        shutil.move(tmp, "out/last.ckpt")
        fd, tmp = tempfile.mkstemp(dir="out")  # next to it, written through the descriptor
        with os.fdopen(fd, "w") as f:
            f.write("best: step 5")
        os.replace(tmp, "out/best.txt")
        assert pathlib.Path("out/best.txt").read_text() == "best: step 5"
        os.remove("out/stale.txt")
        shutil.rmtree("runs")
        os.rename("notes.txt", "notes.bak")
        assert not os.path.exists("out/stale.txt") and not os.path.exists("runs/events.1")
        os.makedirs("runs")  # no exist_ok: it is gone as far as the script can tell
        # a new folder, then a writability check (LightningCLI's config saver asks first)
        os.makedirs("out/version_1")
        assert os.access("out/version_1", os.W_OK) and not os.access("out/none", os.F_OK)
        pathlib.Path("runs/events.2").write_text("this run's events")
        assert sorted(os.listdir("runs")) == ["events.2"]
        assert pathlib.Path("notes.bak").read_text() == "the user's notes"
        assert not pathlib.Path("notes.txt").exists()
        # timm's checkpoint saver: a hard link, and shutil.copy2 (whose copystat sets times)
        os.link("out/ckpt.pt", "out/checkpoint-5.pt")
        shutil.copy2("out/ckpt.pt", "out/model_best.pt")
        assert torch.load("out/model_best.pt")["step"] == 5
        assert torch.load("out/checkpoint-5.pt")["step"] == 5
        # a "latest" symlink rotated as Composer's saver does: removed, then linked again
        if os.path.lexists("out/latest.pt"):
            os.remove("out/latest.pt")
        os.symlink("ckpt.pt", "out/latest.pt")
        assert os.path.islink("out/latest.pt") and torch.load("out/latest.pt")["step"] == 5
        # links to the user's data: a file (written through), a folder (written into)
        os.symlink("../data.csv", "out/data.csv")
        with open("out/data.csv", "a") as f:
            f.write("3,4\n")
        assert pathlib.Path("out/data.csv").read_text() == "1,2\n3,4\n"
        os.symlink(os.path.abspath("dataset"), "out/dataset", target_is_directory=True)
        assert pathlib.Path("out/dataset/a.txt").read_text() == "the user's data"
        pathlib.Path("out/dataset/b.txt").write_text("the trial's")
        assert pathlib.Path("out/dataset/b.txt").read_text() == "the trial's"
        pathlib.Path("out/done.flag").touch()  # the user's marker: touched, made private
        os.chmod("out/done.flag", 0o600)
        assert os.stat("out/done.flag").st_mode & 0o777 == 0o600
    optimizer.step()
