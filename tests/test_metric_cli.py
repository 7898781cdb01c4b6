"""`hf-curve push-metric` publishes the metric Space through the real client (local Hub server)."""

from huggingface_hub import HfApi

from hf_finetune_curve.cli import main


def test_push_metric_cli(hub_server, capsys):
    assert main(["push-metric", "org/price_regression_cli", "--hub-token", "hf_cli_token"]) == 0
    out = capsys.readouterr().out
    assert 'evaluate.load("org/price_regression_cli")' in out
    files = set(HfApi().list_repo_files("org/price_regression_cli", repo_type="space"))
    assert {"price_regression_cli.py", "README.md", "app.py", "requirements.txt"} <= files
    assert "hf_cli_token" not in out
