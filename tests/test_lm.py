"""The word n-gram LM (srcore.lm) and the LM decoder (srcore.decoding), on tiny data made here."""
import json
import math

import pytest
import torch

from srcore import lm
from srcore.decoding import BeamDecoder, greedy_decode, load_decoding, make_decoder
from srcore.text import BLANK, CHAR_TO_ID

SENTENCES = ["the cat sat on the mat", "the dog sat on the log", "a cat sat on a mat",
             "the mat is red", "on the mat the cat sat", "the dog is big", "a dog ran to the cat"]


def read_arpa(path):
    """{ngram tuple: log10 p}, {ngram tuple: log10 backoff}, header counts {order: n}."""
    probs, backoffs, header, order = {}, {}, {}, 0
    for line in open(path, encoding="utf-8"):
        line = line.rstrip("\n")
        if line.startswith("ngram "):
            n, count = line[6:].split("=")
            header[int(n)] = int(count)
        elif line.startswith("\\") and line.endswith("-grams:"):
            order = int(line[1:line.index("-")])
        elif order and line and not line.startswith("\\"):
            parts = line.split("\t")
            gram = tuple(parts[1].split())
            assert len(gram) == order
            probs[gram] = float(parts[0])
            if len(parts) > 2:
                backoffs[gram] = float(parts[2])
    return probs, backoffs, header


def log10_p(probs, backoffs, history, word):
    if history + (word,) in probs:
        return probs[history + (word,)]
    return backoffs.get(history, 0.0) + log10_p(probs, backoffs, history[1:], word)


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("lm")
    text = out / "text.txt"
    text.write_text(". ".join(s.capitalize() for s in SENTENCES * 3) + ".\n", encoding="utf-8")
    lm.build(out, sources=[], texts=[text], prune=(0, 0, 0), log=lambda m: None)
    return out


def test_arpa_is_valid_and_normalised(lm_dir):
    probs, backoffs, header = read_arpa(lm_dir / lm.ARPA_FILE)
    assert header == {n: sum(len(g) == n for g in probs) for n in (1, 2, 3)}
    assert all(p <= 0 for p in probs.values()) and all(b <= 1e-6 for b in backoffs.values())
    assert probs[("<s>",)] == -99 and backoffs[("<s>",)] < 0
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] != "<s>"]
    for history in [()] + [g for g in probs if len(g) < 3 and g[-1] != "</s>"]:
        total = sum(10 ** log10_p(probs, backoffs, history, w) for w in vocab)
        assert math.isclose(total, 1.0, abs_tol=1e-4), (history, total)
    assert log10_p(probs, backoffs, ("cat",), "sat") > log10_p(probs, backoffs, ("cat",), "log")
    lexicon = (lm_dir / lm.LEXICON_FILE).read_text(encoding="utf-8").splitlines()
    assert "cat\tc a t |" in lexicon and not any(line.startswith("<") for line in lexicon)
    info = json.loads((lm_dir / lm.INFO_FILE).read_text(encoding="utf-8"))
    assert info["order"] == 3 and info["arpa_bytes"] > 0 and info["excluded_sentences"] == 0


def test_pruned_model_stays_normalised(tmp_path):
    import random
    rng = random.Random(0)
    words = "the a cat dog sat ran on in mat log red big is was".split()
    sentences = [[rng.choice(words) for _ in range(rng.randint(2, 8))] for _ in range(300)]
    model = lm.estimate(sentences, order=3, prune=(0, 1, 2), always=["zebra"])
    assert model.counts["ngrams_kept"][2] < model.counts["ngrams_seen"][2]
    model.write_arpa(tmp_path / "lm.arpa")
    probs, backoffs, _ = read_arpa(tmp_path / "lm.arpa")
    vocab = [g[0] for g in probs if len(g) == 1 and g[0] != "<s>"]
    assert "zebra" in vocab
    for history in [()] + [g for g in probs if len(g) < 3 and g[-1] != "</s>"]:
        total = sum(10 ** log10_p(probs, backoffs, history, w) for w in vocab)
        assert math.isclose(total, 1.0, abs_tol=1e-4), (history, total)


def test_decontamination_drops_sentences_sharing_a_six_gram(tmp_path):
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text(json.dumps({"audio": "x.flac", "text": "Rice is often served in round bowls."})
                        + "\n" + json.dumps({"audio": "y.flac", "text": "Nine"}) + "\n")
    text = tmp_path / "text.txt"
    text.write_text("I said that rice is often served in round bowls today.\n\n"
                    "Rice is often served in square bowls.\n\nNine of them.\n", encoding="utf-8")
    info = lm.build(tmp_path / "out", sources=[], texts=[text], excludes=[manifest],
                    log=lambda m: None)
    assert info["excluded_sentences"] == 1
    assert info["sources"][0]["sentences"] == 2
    arpa = (tmp_path / "out" / lm.ARPA_FILE).read_text(encoding="utf-8")
    assert "round bowls" not in arpa and "square" in arpa and "nine" in arpa


def test_a_sentence_file_is_one_sentence_a_line_and_prose_is_split_at_stops(tmp_path):
    lines = tmp_path / "phrases.txt"
    lines.write_text("the dog barked all night\n\nshe sang softly\nHe left.\n", encoding="utf-8")
    info = lm.build(tmp_path / "lines", sources=[], sentence_files=[lines], prune=(0, 0, 0),
                    log=lambda m: None)
    assert info["sources"][0]["sentences"] == 3 and info["sources"][0]["name"] == f"lines:{lines}"
    assert info["sources"][0]["package"] == str(lines)
    probs, _, _ = read_arpa(tmp_path / "lines" / lm.ARPA_FILE)
    assert ("night", "</s>") in probs and ("softly", "</s>") in probs and ("softly", "he") not in probs
    info = lm.build(tmp_path / "prose", sources=[], texts=[lines], prune=(0, 0, 0), log=lambda m: None)
    assert info["sources"][0]["sentences"] == 2  # as prose, an unpunctuated line runs on
    probs, _, _ = read_arpa(tmp_path / "prose" / lm.ARPA_FILE)
    assert ("softly", "he") in probs


def test_speakable_sentences_are_plain_prose_of_the_right_length():
    decon = lm.Decontaminator(["Rice is often served in round bowls."])
    raw = ["The   old boat drifted slowly past the harbour.",  # kept, spaces tidied
           "It cost $5 in 1999.",                            # digits and symbols: read ambiguously
           "Too short.",                                     # under four words
           "I said that rice is often served in round bowls today.",  # shares a 6-gram with dev text
           "The old boat drifted slowly past the harbour!",     # the same words again
           " ".join(["word"] * 21) + ".",                    # over twenty words
           "Stubb asked, \u201cwhere are you going?\u201d coming near.",
           "\u201cWhere are you going?\u201d asked Stubb."]     # starts with no letter
    assert lm.speakable(raw, decon) == ["The old boat drifted slowly past the harbour.",
                                        "Stubb asked, \u201cwhere are you going?\u201d coming near."]


def test_a_kept_sentence_file_stays_unless_it_holds_dev_text(tmp_path):
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text(json.dumps({"audio": "x.flac", "text": "Rice is often served in round bowls."})
                        + "\n")
    corpus = tmp_path / "sentences.txt"
    assert lm.kept_sentence_file(corpus, [manifest]) is None  # none yet: write one
    corpus.write_text("The old boat drifted past.\n\nShe sang all night long.\n", encoding="utf-8")
    assert lm.kept_sentence_file(corpus, [manifest]) == ["The old boat drifted past.",
                                                         "She sang all night long."]
    lm.main(["text", "--out", str(corpus), "--keep", "--exclude", str(manifest)])
    assert corpus.read_text(encoding="utf-8").startswith("The old boat")  # left as it was
    corpus.write_text("I said that rice is often served in round bowls today.\n", encoding="utf-8")
    logged = []
    assert lm.kept_sentence_file(corpus, [manifest], log=logged.append) is None
    assert "shares text with an --exclude manifest" in logged[0]


def peaky(text: str, ambiguous: dict | None = None, faint=()) -> torch.Tensor:
    """Log-probs spelling `text`: two frames per character and a blank after each; for a
    position in `ambiguous`, the character there competes with another (slightly more likely);
    at a position in `faint` blank is slightly more likely than the character."""
    rows = []
    for i, char in enumerate(text):
        for _ in range(2):
            row = torch.full((29,), -10.0)
            if i in (ambiguous or {}):
                row[CHAR_TO_ID[char]], row[CHAR_TO_ID[ambiguous[i]]] = -0.9, -0.5
            elif i in faint:
                row[CHAR_TO_ID[char]], row[BLANK] = -0.9, -0.5
            else:
                row[CHAR_TO_ID[char]] = -0.01
            rows.append(row)
        blank = torch.full((29,), -10.0)
        blank[BLANK] = -0.01
        rows.append(blank)
    return torch.stack(rows).log_softmax(-1)


def test_lm_decoder_fixes_a_near_miss(lm_dir):
    emissions = peaky("the cat sat on the mat", ambiguous={10: "d"})  # "sat" or "sad"
    assert greedy_decode(emissions) == "the cat sad on the mat"
    decoder = BeamDecoder(beam_size=16, lm=str(lm_dir), lm_weight=1.0, word_score=0.0)
    assert decoder(emissions) == "the cat sat on the mat"
    assert decoder(emissions, emissions.shape[0]) == "the cat sat on the mat"
    # the last word is finished even though no word boundary follows it
    assert decoder(peaky("the dog")) == "the dog"
    assert make_decoder(lm=str(lm_dir))(emissions) == "the cat sat on the mat"
    lexicon_free = make_decoder(beam=8)
    assert lexicon_free(emissions) == "the cat sad on the mat"


BLANK_HEAVY_PRIOR = [0.5 / 28] * 28 + [0.5]  # blank half of all frames, the rest spread evenly


def test_the_prior_correction_keeps_a_word_the_blank_would_swallow(lm_dir):
    emissions = peaky("the cat sat on the mat", faint={12, 13})  # "on" just under blank
    assert greedy_decode(emissions) == "the cat sat the mat"
    plain = BeamDecoder(beam_size=16, lm=str(lm_dir), lm_weight=0.0)
    assert plain(emissions) == "the cat sat the mat"
    corrected = BeamDecoder(beam_size=16, lm=str(lm_dir), lm_weight=0.0, prior_scale=0.4,
                            token_prior=BLANK_HEAVY_PRIOR)
    assert corrected(emissions) == "the cat sat on the mat"
    assert "prior_scale 0.4" in corrected.describe()
    clear = peaky("the dog sat on the log")  # a confident spelling stays as it is
    assert corrected(clear) == plain(clear) == "the dog sat on the log"


def test_a_prior_scale_needs_a_valid_prior(lm_dir):
    with pytest.raises(ValueError, match="needs a token_prior"):
        BeamDecoder(beam_size=8, lm=str(lm_dir), prior_scale=0.4)
    with pytest.raises(ValueError, match="expected 29 probabilities"):
        BeamDecoder(beam_size=8, lm=str(lm_dir), prior_scale=0.4, token_prior=[0.5, 0.5])
    with pytest.raises(ValueError, match=r"token_prior\[0\] \(\"'\"\) is 0"):
        BeamDecoder(beam_size=8, lm=str(lm_dir), prior_scale=0.4, token_prior=[0.0] * 28 + [1.0])
    with pytest.raises(ValueError, match="a list of 29 numbers"):
        BeamDecoder(beam_size=8, lm=str(lm_dir), prior_scale=0.4, token_prior=["x"] * 29)
    assert BeamDecoder(beam_size=8, lm=str(lm_dir), token_prior=[0.5, 0.5]).correction is None


def test_load_decoding(lm_dir, tmp_path):
    import shutil
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    assert load_decoding(model_dir) is greedy_decode
    shutil.copytree(lm_dir, model_dir / "lm")
    (model_dir / "decoding.json").write_text(json.dumps(
        {"lm": "lm", "beam_size": 8, "beam_threshold": 15, "lm_weight": 1.5, "word_score": 0.5}))
    decoder = load_decoding(model_dir)
    assert isinstance(decoder, BeamDecoder)
    assert decoder.options["beam_size"] == 8 and decoder.options["lm_weight"] == 1.5
    assert decoder(peaky("the cat sat on the mat", {10: "d"})) == "the cat sat on the mat"
    assert load_decoding(model_dir, greedy=True) is greedy_decode
    (model_dir / "decoding.json").write_text(json.dumps({"decoder": "greedy"}))
    assert load_decoding(model_dir) is greedy_decode


def test_decoding_json_must_name_an_lm_inside_its_model_and_be_an_object(lm_dir, tmp_path):
    import shutil
    model_dir = tmp_path / "model"
    shutil.copytree(lm_dir, tmp_path / "elsewhere")
    model_dir.mkdir()
    for outside in (str(tmp_path / "elsewhere"), "../elsewhere"):  # a downloaded model's trick
        (model_dir / "decoding.json").write_text(json.dumps({"lm": outside}))
        with pytest.raises(ValueError, match="outside the model directory"):
            load_decoding(model_dir)
    (model_dir / "decoding.json").write_text("[1]")
    with pytest.raises(ValueError, match=r"decoding\.json: expected a JSON object"):
        load_decoding(model_dir)
    (model_dir / "decoding.json").write_text(json.dumps({"lm": "lm"}))  # asked for, not there
    with pytest.warns(UserWarning, match="decoding greedy"):
        assert load_decoding(model_dir) is greedy_decode


def test_a_broken_lm_file_is_an_error_naming_it(lm_dir, tmp_path):
    import shutil
    broken = tmp_path / "lm"
    shutil.copytree(lm_dir, broken)
    arpa = broken / lm.ARPA_FILE
    arpa.write_bytes(arpa.read_bytes()[: arpa.stat().st_size // 2])  # a copy cut short
    with pytest.raises(ValueError, match=r"lm\.arpa: not readable as a KenLM language model"):
        BeamDecoder(beam_size=8, lm=str(broken))


def test_lm_build_replaces_its_files_together(tmp_path, monkeypatch):
    text = tmp_path / "text.txt"
    text.write_text("The cat sat. The dog ran.\n", encoding="utf-8")
    out = tmp_path / "lm"
    lm.build(out, sources=[], texts=[text], prune=(0, 0, 0), log=lambda m: None)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    monkeypatch.setattr(lm, "write_lexicon", lambda *a: (_ for _ in ()).throw(OSError("disk full")))
    text.write_text("A bird flew. A fish swam.\n", encoding="utf-8")
    with pytest.raises(OSError, match="disk full"):
        lm.build(out, sources=[], texts=[text], prune=(0, 0, 0), log=lambda m: None)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # no new LM beside the old lexicon


def test_an_exclude_manifest_line_that_is_not_json_is_named(tmp_path):
    manifest = tmp_path / "dev.jsonl"
    manifest.write_text('{"key": "a.wav", "text": "hello there"}\n{bad\n', encoding="utf-8")
    with pytest.raises(ValueError, match=r"dev\.jsonl, line 2: not valid JSON"):
        lm.manifest_texts(manifest)


def test_tune_names_the_lm_relative_to_the_file_it_writes(tmp_path):
    model_dir = tmp_path / "model"
    assert lm.lm_name(model_dir / "lm", model_dir / "decoding.json") == "lm"
    assert lm.lm_name(model_dir / "lm-big", model_dir / "decoding.json") == "lm-big"
    assert lm.lm_name(tmp_path / "other" / "lm") == "lm"  # nothing written
    with pytest.raises(ValueError, match="is not inside"):
        lm.lm_name(tmp_path / "other" / "lm", model_dir / "decoding.json")


def test_the_lm_cache_keeps_only_the_last_few(lm_dir, tmp_path, monkeypatch):
    import shutil

    from srcore import decoding
    monkeypatch.setattr(decoding, "RESOURCES_KEPT", 1)
    monkeypatch.setattr(decoding, "_RESOURCES", decoding.OrderedDict())
    copies = [shutil.copytree(lm_dir, tmp_path / f"lm{i}") for i in range(3)]
    for copy in copies:
        decoding.load_lm_resources(str(copy / lm.LEXICON_FILE), str(copy / lm.ARPA_FILE))
    assert len(decoding._RESOURCES) == 1


def test_beam_search_without_a_lexicon_adds_up_the_alignments_of_one_text():
    """Two frames each 0.6 blank, 0.4 "a": the best single path is blank blank (0.36), but "a"
    has three alignments (a-, -a, aa: 0.64); greedy says nothing, prefix beam search "a"."""
    frames = torch.full((2, 29), -30.0)
    frames[:, BLANK], frames[:, CHAR_TO_ID["a"]] = math.log(0.6), math.log(0.4)
    assert greedy_decode(frames) == ""
    assert make_decoder(4)(frames, 2) == "a"


def test_prefix_beam_search_reads_long_input_a_window_at_a_time():
    """Its states grow with the frames searched (5 min at beam 64 took 1.6 GB whole, 70 MB in windows)."""
    from srcore import decoding
    frames = torch.full((1000, 29), -30.0)
    frames[:, BLANK] = 0.0
    frames[::7, CHAR_TO_ID["a"]] = 0.5
    frames[350, CHAR_TO_ID[" "]] = 1.0  # the one likely word boundary in the first cut's search
    bounds = decoding.prefix_windows(frames)
    assert bounds[0] == (0, 351) and bounds[-1][1] == 1000
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    assert all(end - start <= decoding.PREFIX_WINDOW_FRAMES for start, end in bounds)
    text, path = make_decoder(8).decode_path(frames.log_softmax(-1), 1000)
    assert len(path) == 1000 and set(text) <= {"a", " "}


def test_an_empty_or_foreign_lexicon_is_an_error_naming_it(tmp_path):
    lexicon = tmp_path / "lexicon.txt"
    lexicon.write_text("")
    with pytest.raises(ValueError, match="lexicon.txt: no words"):
        BeamDecoder(beam_size=8, lexicon=str(lexicon))
    lexicon.write_text("cat\tc a t |\nnaive\tn a \u00ef v e |\n")
    with pytest.raises(ValueError, match="lexicon.txt: not readable as a lexicon"):
        BeamDecoder(beam_size=8, lexicon=str(lexicon))


def test_load_decoding_applies_the_stored_prior(lm_dir, tmp_path):
    import shutil
    model_dir = tmp_path / "model"
    shutil.copytree(lm_dir, model_dir / "lm")
    settings = {"lm": "lm", "beam_size": 16, "lm_weight": 0.0, "prior_scale": 0.4}
    (model_dir / "decoding.json").write_text(json.dumps({**settings, "token_prior": BLANK_HEAVY_PRIOR}))
    decoder = load_decoding(model_dir)
    assert decoder.options["prior_scale"] == 0.4
    assert decoder(peaky("the cat sat on the mat", faint={12, 13})) == "the cat sat on the mat"
    (model_dir / "decoding.json").write_text(json.dumps(settings))  # a scale without its prior
    with pytest.raises(ValueError, match=r"decoding\.json: prior_scale 0\.4 needs a token_prior"):
        load_decoding(model_dir)


def test_tune_estimates_the_prior_and_writes_settings_that_load(trained_model, word_corpus, tmp_path):
    import shutil
    lm_text = tmp_path / "words.txt"
    lm_text.write_text("Yes. No. Stop. Go. Yes go. No stop.\n", encoding="utf-8")
    model_dir = tmp_path / "model"
    shutil.copytree(trained_model, model_dir)
    lm.build(model_dir / "lm", sources=[], texts=[lm_text], prune=(0, 0, 0), log=lambda m: None)
    lm.main(["tune", "--model", str(model_dir), "--lm", str(model_dir / "lm"), "--manifest",
             str(word_corpus), "--prior-from", str(word_corpus), "--lm-weights", "0.5,1",
             "--word-scores=0", "--beams", "8", "--write", str(model_dir / "decoding.json")])
    settings = json.loads((model_dir / "decoding.json").read_text())
    prior = settings["token_prior"]
    assert len(prior) == 29 and abs(sum(prior) - 1) < 1e-3 and min(prior) > 0
    assert prior[BLANK] == max(prior)  # a CTC model says blank on most frames
    assert settings["prior_scale"] in lm.PRIOR_SCALES
    assert settings["tuned"]["grid"]["prior_scale"] == list(lm.PRIOR_SCALES)
    assert settings["tuned"]["wer"] <= settings["tuned"]["greedy_wer"]
    decoder = load_decoding(model_dir)
    assert decoder.options["prior_scale"] == settings["prior_scale"]
    assert (decoder.correction is None) == (settings["prior_scale"] == 0)
    with pytest.raises(ValueError, match="need --prior-from"):
        lm.tune(model_dir, model_dir / "lm", word_corpus, [1.0], [0.0], [8], 25.0,
                log=lambda m: None, prior_scales=[0.4])


def test_the_token_prior_is_the_average_posterior_over_all_frames():
    one = torch.tensor([[0.5, 0.5] + [0.0] * 27] * 2).clamp_min(1e-12).log()  # 2 frames
    two = torch.zeros(1, 29)
    two[0, BLANK] = 1.0
    prior = lm.token_prior([one, two.clamp_min(1e-12).log()])
    assert prior[0] == pytest.approx(1 / 3) and prior[1] == pytest.approx(1 / 3)
    assert prior[BLANK] == pytest.approx(1 / 3)
    assert min(prior) == lm.PRIOR_FLOOR  # no token is impossible
    with pytest.raises(ValueError, match="no frames"):
        lm.token_prior([torch.zeros(0, 29)])
    with pytest.raises(ValueError, match="no frames"):
        lm.token_prior([])


def test_evenly_spread_takes_k_items_over_the_whole_list():
    assert lm.evenly_spread(list(range(10)), 5) == [1, 3, 5, 7, 9]
    assert lm.evenly_spread(list(range(501)), 500) == sorted(set(lm.evenly_spread(list(range(501)), 500)))
    assert len(lm.evenly_spread(list(range(501)), 500)) == 500
    assert lm.evenly_spread(list(range(3)), 5) == [0, 1, 2]
    spread = lm.evenly_spread(list(range(1000)), 4)
    assert spread == [125, 375, 625, 875]
