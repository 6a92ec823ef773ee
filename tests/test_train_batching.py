"""Length-grouped batches, per-batch padding, sharding, and the train config / CLI errors."""

from __future__ import annotations

import sys

import pytest
import torch

from quickstudy.config_files import parse_override, set_dotted
from quickstudy.errors import ConfigError
from quickstudy.prompts.features import EncodedExample
from quickstudy.train.batching import collate, length_grouped_batches, real_token_count, shard_batches
from quickstudy.train.config import TrainConfig
from quickstudy.train.stages import load_train_run_config


def test_batches_cover_every_example_once_and_depend_only_on_seed_and_epoch():
    lengths = [int(x) for x in torch.randint(5, 900, (1000,), generator=torch.Generator().manual_seed(0))]
    batches = length_grouped_batches(lengths, batch_size=8, seed=1, epoch=0)
    assert sorted(i for b in batches for i in b) == list(range(1000))
    assert batches == length_grouped_batches(lengths, 8, 1, 0)
    assert batches != length_grouped_batches(lengths, 8, 1, 1)
    assert batches != length_grouped_batches(lengths, 8, 2, 0)
    grouped = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    plain = sum(8 * max(lengths[i] for i in range(s, min(s + 8, 1000))) for s in range(0, 1000, 8))
    assert grouped < 0.7 * plain  # far less padding than batches in random order


def test_shards_are_equal_in_number_and_cover_all_batches():
    batches = [[i] for i in range(10)]
    shards = [shard_batches(batches, rank, 4) for rank in range(4)]
    assert {len(s) for s in shards} == {3}
    assert {b[0] for s in shards for b in s} == set(range(10))
    assert shard_batches(batches, 0, 1) == batches


def test_collate_pads_each_batch_to_its_longest_member():
    seq2seq = collate(
        [EncodedExample([5, 6, 1], [7, 1]), EncodedExample([5, 1], [8, 9, 9, 1])], pad_token_id=0, is_seq2seq=True
    )
    assert seq2seq["input_ids"].tolist() == [[5, 6, 1], [5, 1, 0]]
    assert seq2seq["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert seq2seq["labels"].tolist() == [[7, 1, -100, -100], [8, 9, 9, 1]]
    causal = collate([EncodedExample([5, 6, 1], [-100, 6, 1]), EncodedExample([5, 1], [-100, 1])], 0, is_seq2seq=False)
    assert causal["labels"].tolist() == [[-100, 6, 1], [-100, 1, -100]]


def test_precision_is_never_fp16_and_fp32_on_cpu():
    assert TrainConfig().mixed_precision() == ("bf16" if torch.cuda.is_available() else "no")
    assert TrainConfig(precision="fp32").mixed_precision() == "no"
    with pytest.raises(ValueError):
        TrainConfig(precision="fp16")
    assert (
        TrainConfig().learning_rate == 5e-5
        and TrainConfig().num_epochs == 2
        and TrainConfig().lr_scheduler == "constant"
    )


def test_overrides_parse_values_and_bad_keys_name_the_key(tmp_path):
    raw = {"training": {"max_steps": 1}}
    set_dotted(raw, *parse_override("training.max_steps=20"))
    set_dotted(raw, *parse_override("model.lora.target_modules=[q, k]"))
    assert raw == {"training": {"max_steps": 20}, "model": {"lora": {"target_modules": ["q", "k"]}}}
    with pytest.raises(ConfigError, match="dotted.key=value"):
        parse_override("training.learning_rate")
    config = tmp_path / "c.yaml"
    config.write_text(
        "stage: finetune\nmodel: {name_or_path: tiny-t5}\ndata: {collection: x, size: 40}\noutput_dir: out\n"
    )
    loaded = load_train_run_config(config, ["training.max_steps=3", "training.learning_rate=1e-4", "model.lora.r=4"])
    assert (loaded.training.max_steps, loaded.training.learning_rate, loaded.model.lora.r) == (3, 1e-4, 4)
    assert loaded.data.size == "40"  # a YAML int, as in study configs
    # paths written in the file are relative to its folder, as in study configs
    assert (loaded.data.collection, loaded.output_dir) == (str(tmp_path / "x"), str(tmp_path / "out"))
    with pytest.raises(ConfigError, match=r"c.yaml: training.optimizer"):
        load_train_run_config(config, ["training.optimizer=sgd"])


def test_the_older_train_key_is_read_as_training_with_a_warning(tmp_path, caplog):
    config = tmp_path / "c.yaml"
    config.write_text(
        "stage: finetune\nmodel: {name_or_path: tiny-t5}\ndata: {collection: x}\noutput_dir: out\ntrain: {max_steps: 5, seed: 3}\n"
    )
    loaded = load_train_run_config(config, ["train.max_steps=7"])
    assert (loaded.training.max_steps, loaded.training.seed) == (7, 3)
    assert "'train:' is deprecated; write 'training:'" in caplog.text


def test_cli_prints_one_line_naming_the_bad_key(tmp_path, capsys, monkeypatch):
    from quickstudy.cli import main

    config = tmp_path / "c.yaml"
    config.write_text(
        "stage: finetune\nmodel: {name_or_path: tiny-t5}\ndata: {collection: x}\noutput_dir: out\ntraining: {lr: 1}\n"
    )
    monkeypatch.setattr(sys, "argv", ["quickstudy", "train", str(config)])
    with pytest.raises(SystemExit) as exited:
        main()
    assert exited.value.code == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "c.yaml: training.lr: unknown key 'lr'; valid keys: learning_rate, lr_scheduler," in err


def test_real_token_count_matches_the_unpadded_positions_of_a_collated_batch():
    for examples, is_seq2seq in (
        ([EncodedExample([5, 6, 1], [7, 1]), EncodedExample([5, 1], [8, 9, 9, 1])], True),
        ([EncodedExample([5, 6, 1], [-100, 6, 1]), EncodedExample([5, 1], [-100, 1])], False),
    ):
        batch = collate(examples, 0, is_seq2seq)
        counted = int(batch["attention_mask"].sum() + (batch["labels"] != -100).sum())
        assert sum(real_token_count(e) for e in examples) == counted
