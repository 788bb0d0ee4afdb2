"""Pretraining without training: tokenizers, pairs, parameter counts, windows, bad input and the shared job lock."""

import json
import subprocess
import sys

import pytest
import torch

from core.cli import main
from core.errors import InvalidInput
from core.finetune import FINETUNE, FinetuneConfig, start_job
from core.jobs.lock import JobBusy, claim_lock, release_lock, running_job
from core.jobs.paths import lock_path
from core.jobs.processes import ProcessId
from core.pretrain import (
    PUBLISHED_MODELS,
    PretrainConfig,
    TinyModelSize,
    load_corpus,
    parameter_breakdown,
    parameter_count,
    parse_text_upload,
    start_pretrain_job,
    training_pairs,
)
from core.pretrain.architecture import check_fits_in_memory, llama_config
from core.pretrain.corpus import Corpus, tiny_sentences_text
from core.pretrain.library import PRETRAIN, jobs_root, models_root
from core.pretrain.sizes import compute_optimal_tokens, is_adapter_tensor, training_flops
from core.pretrain.tokenizer import CHAR, MODEL, build_char_tokenizer, make_tokenizer, vocabulary_size
from core.pretrain.windows import RandomWindows, held_out_windows, prepare_corpus, split_tokens, tokens_needed
from tests.conftest import ROOT


def own_tensors(model) -> dict:
    """The model's state dict without the LoRA tensors other tests switched on over the shared model."""
    return {name: t for name, t in model.state_dict().items() if not is_adapter_tensor(name)}


def unique_parameters(model) -> int:
    """Every tensor's size once, however many names point at it (a tied output layer shares its storage)."""
    return sum({t.data_ptr(): t.numel() for t in own_tensors(model).values()}.values())


def test_the_char_tokenizer_round_trips_and_loads_as_a_plain_transformers_tokenizer(tmp_path):
    from transformers import AutoTokenizer

    text = "Hello,  world!\n\tTabs and  spaces stay."
    tokenizer = build_char_tokenizer(text, context=64)
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    ids = loaded(text, add_special_tokens=False)["input_ids"]
    assert len(ids) == len(text), "one token per character"
    assert loaded.decode(ids) == text, "spaces, tabs and newlines come back exactly"
    assert ids == tokenizer(text, add_special_tokens=False)["input_ids"]
    assert loaded("é", add_special_tokens=False)["input_ids"] == [loaded.unk_token_id], "unseen characters are <unk>"
    assert len(loaded) == vocabulary_size(CHAR, text) == len(set(text)) + 4


def test_pairs_are_every_prefix_and_the_token_after_it():
    tokenizer = build_char_tokenizer("hello", context=8)
    result = training_pairs(tokenizer, "hello", context_length=2)
    assert [("".join(t.text for t in p.context), p.target.text) for p in result.pairs] == [
        ("h", "e"),
        ("he", "l"),
        ("el", "l"),
        ("ll", "o"),
    ]
    assert [p.truncated for p in result.pairs] == [False, False, True, True]
    assert result.total_pairs == len(result.tokens) - 1 == 4


def test_pairs_with_the_embedded_tokenizer_cover_the_text():
    text = "The cat sat on the mat."
    result = training_pairs(make_tokenizer(MODEL, text, 64), text, context_length=64, limit=None)
    assert result.tokens[0].text + "".join(p.target.text for p in result.pairs) == text
    assert [t.text for t in result.pairs[-1].context] == [t.text for t in result.tokens[:-1]]


@pytest.mark.parametrize(("text", "message"), [("   ", "empty"), ("a", "single token")])
def test_pairs_refuse_a_text_too_short_to_predict_anything(text, message):
    with pytest.raises(InvalidInput, match=message):
        training_pairs(build_char_tokenizer("abc", 8), text, 4)


@pytest.mark.parametrize("size", [TinyModelSize(), TinyModelSize(3, 96, 8, 32), TinyModelSize(1, 32, 1, 16)])
def test_the_parameter_formula_equals_the_tensors_of_the_built_model(size):
    from transformers import LlamaForCausalLM

    tokenizer = build_char_tokenizer(tiny_sentences_text(200), size.context)
    model = LlamaForCausalLM(llama_config(size, tokenizer))
    predicted = parameter_count(size, len(tokenizer))
    breakdown = parameter_breakdown(model)
    assert predicted.total == unique_parameters(model) == breakdown.total
    assert breakdown.by_kind == {
        "embeddings": predicted.embeddings,
        "attention": predicted.attention,
        "MLP": predicted.mlp,
        "norms": predicted.norms,
    }
    assert breakdown.tied_embeddings
    assert [sum(layer.values()) for layer in breakdown.per_layer] == [predicted.per_layer] * size.layers


def test_the_embedded_models_tied_embeddings_are_counted_once(lm):
    with lm.using() as model:
        breakdown = parameter_breakdown(model)
        every_name = sum(t.numel() for t in own_tensors(model).values())  # lm_head.weight listed again
        unique = unique_parameters(model)
    config = lm.model.config
    embedding = config.vocab_size * config.hidden_size
    assert breakdown.tied_embeddings
    assert breakdown.total == unique == lm.n_parameters == 134_515_008
    assert every_name - unique == embedding, "counting by name would count the output layer twice"
    assert breakdown.by_kind["embeddings"] == embedding
    assert len(breakdown.per_layer) == config.num_hidden_layers
    inside = sum(sum(layer.values()) for layer in breakdown.per_layer)
    assert inside + sum(breakdown.outside_layers.values()) == breakdown.total
    assert breakdown.outside_layers == {"embeddings": embedding, "norms": config.hidden_size}  # the final norm


@pytest.mark.parametrize(
    ("size", "message"),
    [
        (TinyModelSize(2, 130, 4, 64), "cannot be split evenly into 4 attention heads"),
        (TinyModelSize(2, 12, 4, 64), "must be even"),
        (TinyModelSize(0, 128, 4, 64), "number of layers"),
        (TinyModelSize(2, 128, 4, 2), "context length"),
    ],
)
def test_impossible_shapes_are_refused_with_the_setting_named(size, message):
    with pytest.raises(InvalidInput, match=message):
        size.validate()


def test_a_size_that_would_not_fit_in_memory_is_refused_before_anything_is_built():
    huge = TinyModelSize(48, 8192, 64, 2048)
    with pytest.raises(InvalidInput, match=r"would need about [\d,.]+ (GB|MB) to train .* is free"):
        check_fits_in_memory(huge, 49_152, 16)
    assert parameter_count(huge, 49_152).total > 10**10  # the estimate starts from the parameter count


def test_memory_estimate_grows_with_the_batch_and_fits_for_the_defaults():
    size = TinyModelSize()
    small, large = check_fits_in_memory(size, 107, 16), check_fits_in_memory(size, 107, 64)
    assert small.fits and large.activations_bytes == 4 * small.activations_bytes
    assert small.parameters_bytes == 16 * parameter_count(size, 107).total  # weights, gradients, two Adam moments


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"", "empty"),
        (b" \n\t \n", "empty"),
        (bytes(range(256)) * 4, "binary"),
        (b"\x01\x02\x03\x04\x05\x06 text" * 50, "binary"),
        (b"caf\xe9 au lait", "not valid UTF-8"),
    ],
)
def test_bad_uploads_are_refused_with_a_clear_message(raw, message):
    with pytest.raises(InvalidInput, match=message):
        parse_text_upload(raw, "notes.txt")


def test_a_good_upload_and_the_builtin_corpora_load():
    corpus = parse_text_upload("Ünïcode text, tabs\tand lines\n".encode(), "notes.txt")
    assert (corpus.name, corpus.builtin) == ("notes.txt", False)
    docs = load_corpus("python-docs")
    assert docs.builtin and docs.characters > 400_000 and 'The "if" statement' in docs.text
    assert load_corpus("tiny-sentences").text == tiny_sentences_text(), "the made-up corpus is the same every time"
    with pytest.raises(InvalidInput, match="No corpus called"):
        load_corpus("no-such-corpus")


def test_a_context_too_long_for_the_corpus_is_refused():
    config = PretrainConfig(context=256)
    with pytest.raises(InvalidInput, match=r"too short for a context of 256.*at least 2,560"):
        prepare_corpus(config, "a short text. " * 100)
    assert tokens_needed(256, 0.1) == 2560


def test_windows_are_seeded_in_range_and_the_held_out_tail_is_fixed():
    ids = list(range(1000))
    split = split_tokens(ids, context=16, eval_fraction=0.1)
    assert (len(split.train), len(split.held_out)) == (900, 100)
    windows = RandomWindows(split.train, 16, count=50, seed=3)
    again, other = RandomWindows(split.train, 16, 50, 3), RandomWindows(split.train, 16, 50, 4)
    starts = [int(windows[i]["input_ids"][0]) for i in range(50)]
    assert starts == [int(again[i]["input_ids"][0]) for i in range(50)]
    assert starts != [int(other[i]["input_ids"][0]) for i in range(50)]
    assert all(torch.equal(w["input_ids"], torch.arange(s, s + 16)) for w, s in zip(windows, starts, strict=False))
    assert max(starts) <= 900 - 16 and len(set(starts)) > 25
    held = held_out_windows(split.held_out, 16)
    assert [int(w["input_ids"][0]) for w in held] == [900 + 16 * i for i in range(6)]


def test_published_sizes_agree_with_the_compute_rules():
    by_name = {m.name: m for m in PUBLISHED_MODELS}
    gpt3 = by_name["GPT-3"]
    assert gpt3.training_flops == pytest.approx(3.14e23, rel=0.01)  # the figure in Brown et al. 2020
    assert by_name["Llama 3.1 405B"].training_flops == pytest.approx(3.8e25, rel=0.01)  # the Llama 3 paper's
    assert by_name["Chinchilla"].tokens_per_parameter == pytest.approx(20)
    assert compute_optimal_tokens(70e9) == by_name["Chinchilla"].training_tokens
    assert training_flops(1, 1) == 6
    sizes = [m.parameters for m in PUBLISHED_MODELS]
    assert sizes == sorted(sizes)


def test_pretraining_and_fine_tuning_share_one_lock(data_dir):
    finetuning = data_dir / "finetune" / "jobs" / "first"
    claim_lock(finetuning, ProcessId.current(), FINETUNE)
    corpus = Corpus("small.txt", tiny_sentences_text(300))
    with pytest.raises(JobBusy, match=r"Another fine-tuning job \(first\) is running"):
        start_pretrain_job(PretrainConfig(context=16), corpus)
    assert not jobs_root().exists(), "a refused job leaves no folder"
    assert not models_root().exists(), "and no model folder"
    release_lock(finetuning)

    pretraining = jobs_root() / "tiny"
    claim_lock(pretraining, ProcessId.current(), PRETRAIN)
    with pytest.raises(JobBusy, match=r"Another pretraining job \(tiny\) is running"):
        start_job(FinetuneConfig(dataset="sentiment"))
    assert running_job(FINETUNE) is None, "the fine-tune page attaches only to fine-tuning jobs"
    assert running_job(PRETRAIN) == running_job(None) == pretraining.resolve()
    release_lock(pretraining)
    assert not lock_path().exists()


def test_a_refused_size_starts_nothing_and_releases_the_lock(data_dir):
    config = PretrainConfig(layers=48, d_model=8192, heads=64, context=16)
    with pytest.raises(InvalidInput, match="would need about"):
        start_pretrain_job(config, Corpus("small.txt", tiny_sentences_text(300)))
    assert not jobs_root().exists(), "a refused job leaves no folder"
    assert not lock_path().exists()


def test_a_training_job_lowers_its_own_priority_once():
    code = (
        "import os\nfrom core.jobs.processes import lower_priority\n"
        "before = os.nice(0)\nlower_priority()\nlower_priority()\nprint(before, os.nice(0))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    before, after = map(int, out.stdout.split())
    assert after == max(before, 10)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--heads", "3"], "cannot be split evenly into 3 attention heads"),
        (["--context", "1024"], "too short for a context of 1,024"),
        (["--layers", "48", "--d-model", "8192", "--heads", "64"], "would need about"),
    ],
)
def test_cli_pretrain_refuses_bad_settings_in_one_sentence(tmp_path, capsys, data_dir, args, message):
    text = tmp_path / "small.txt"
    text.write_text(tiny_sentences_text(100))  # about 3,500 characters
    code = main(["pretrain", "--text-file", str(text), "--output", str(tmp_path / "job"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert not (tmp_path / "job").exists()


@pytest.mark.parametrize(("content", "message"), [(b"", "is empty"), (b"\x00\x01binary\x00", "binary file")])
def test_cli_pretrain_refuses_an_empty_or_binary_file(tmp_path, capsys, content, message):
    path = tmp_path / "data.txt"
    path.write_bytes(content)
    assert main(["pretrain", "--text-file", str(path), "--output", str(tmp_path / "job")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "job").exists()


def test_cli_pairs_lists_context_and_next_token(capsys):
    assert main(["pairs", "--text", "abcd", "--context", "2", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total_pairs"] == 3
    pairs = [(p["context"], p["target"]) for p in result["pairs"]]
    assert pairs == [(["a"], "b"), (["a", "b"], "c"), (["b", "c"], "d")]
