"""``autowarm probe``: short probe runs of the user's script, searched with Optuna."""
