"""WordNet: a tiny WordNet-format fixture (so the synonym path is tested without WordNet), the installer,
and checks against the real WordNet 3.0 that skip when it is not installed."""
import nltk
import pytest
import torch

from trainables.wordnet_data import LEXNAMES, WORDNET_FILES, copy_debian_wordnet, load_wordnet, prepare_wordnet, wordnet_problem
from xaicore.perturbation.neighbours import excluded_tokens
from xaicore.perturbation.synonyms import synonym_table, wordnet_synonyms

# (pos, lex_filenum, words): a few synsets in WordNet 3.0 database format
SYNSETS = [
    ("n", 6, ["car", "auto", "automobile", "motorcar"]),
    ("n", 6, ["film", "movie", "picture", "ice_cream"]),
    ("a", 0, ["good", "nice"]),
    ("a", 0, ["happy", "glad"]),
    ("v", 38, ["run", "go"]),
]
NLTK_PATHS = list(nltk.data.path)  # before any fixture directory is added to it
POS_FILE = {"n": "noun", "v": "verb", "a": "adj", "r": "adv"}


def write_wordnet(directory):
    """data.* with byte offsets as synset ids, index.*, empty *.exc, index.sense, cntlist.rev (WordNet format)."""
    directory.mkdir(parents=True, exist_ok=True)
    header = "  1 This is a tiny test fixture in the WordNet 3.0 Copyright 2006 by Princeton University format.  \n"
    index: dict[str, dict[str, list[int]]] = {p: {} for p in POS_FILE.values()}
    for pos, name in POS_FILE.items():
        text = header
        for spos, lex, words in SYNSETS:
            if spos != pos:
                continue
            offset = len(text.encode("latin-1"))
            members = " ".join(f"{w} 0" for w in words)
            frames = " 01 + 02 00" if pos == "v" else ""
            text += f"{offset:08d} {lex:02d} {pos} {len(words):02x} {members} 000{frames} | a test gloss  \n"
            for w in words:
                index[name].setdefault(w, []).append(offset)
        (directory / f"data.{name}").write_text(text, encoding="latin-1")
        lines = [header] + [f"{w} {pos} {len(offs)} 0 {len(offs)} 0 " + " ".join(f"{o:08d}" for o in offs) + "  \n"
                            for w, offs in sorted(index[name].items())]
        (directory / f"index.{name}").write_text("".join(lines), encoding="latin-1")
        (directory / f"{name}.exc").write_text("")
    (directory / "index.sense").write_text("")
    (directory / "cntlist.rev").write_text("")
    return directory


@pytest.fixture(scope="module")
def fixture_nltk(tmp_path_factory):
    root = tmp_path_factory.mktemp("nltk_data")
    d = write_wordnet(root / "corpora" / "wordnet")
    (d / "lexnames").write_text(LEXNAMES.read_text())
    return root


def test_lexnames_file_is_wordnet_30():
    lines = LEXNAMES.read_text().splitlines()
    assert len(lines) == 45
    assert lines[0].split("\t") == ["00", "adj.all", "3"] and lines[44].split("\t") == ["44", "adj.ppl", "3"]
    assert [int(x.split("\t")[0]) for x in lines] == list(range(45))


def test_fixture_synonyms_through_nltk_reader(fixture_nltk):
    wn = load_wordnet(fixture_nltk)
    syn = wordnet_synonyms(wn)
    assert syn("car") == ["auto", "automobile", "motorcar"]
    assert syn("movie") == ["film", "picture"]  # multi-word lemmas are dropped
    assert syn("cars") == ["car", "auto", "automobile", "motorcar"]  # morphy finds the lemma (car is a synonym of cars)
    assert syn("zebra") == []


def test_synonym_table_single_vocabulary_entries(fixture_nltk):
    tokens = ["[PAD]", "[CLS]", "[SEP]", "[unused0]", "car", "auto", "automobile", "good", "nice", "##s", "zebra",
              "happy", "movie", "film"]
    table = synonym_table(tokens, wordnet_synonyms(load_wordnet(fixture_nltk)),
                          exclude=excluded_tokens(tokens, special_ids=[0, 1, 2]))
    idx = {t: i for i, t in enumerate(tokens)}
    row = lambda w: [tokens[j] for j in table[idx[w]].tolist() if j >= 0]  # noqa: E731
    assert row("car") == ["auto", "automobile"]  # motorcar is not a vocabulary entry
    assert row("good") == ["nice"] and row("movie") == ["film"]
    assert row("happy") == [] and row("zebra") == [] and row("##s") == [] and row("[CLS]") == []
    assert table.dtype == torch.long and (table[idx["zebra"]] == -1).all()


def test_byte_level_bpe_entries(fixture_nltk):
    tokens = ["<s>", "\u0120car", "\u0120auto", "car", "auto"]
    table = synonym_table(tokens, wordnet_synonyms(load_wordnet(fixture_nltk)))
    assert table[1].tolist()[0] == 2 and table[3].tolist()[0] == 4


def test_prepare_copies_debian_layout(tmp_path):
    debian = write_wordnet(tmp_path / "usr_share_wordnet")
    dest, how = prepare_wordnet(tmp_path / "nltk", source=debian, network=False)
    assert how == "debian" and dest == tmp_path / "nltk" / "corpora" / "wordnet"
    for name in WORDNET_FILES + ("lexnames",):
        assert (dest / name).is_file() and not (dest / name).is_symlink()
    assert len((dest / "lexnames").read_text().splitlines()) == 45
    assert prepare_wordnet(tmp_path / "nltk", source=debian, network=False)[1] == "present"
    assert wordnet_problem(tmp_path / "nltk") is None


def test_missing_wordnet_says_how_to_install(tmp_path):
    msg = wordnet_problem(tmp_path / "empty")
    assert msg and "xaisweep prepare wordnet" in msg and "wordnet-base" in msg
    with pytest.raises(FileNotFoundError, match="apt-get install -y wordnet-base wordnet-sense-index"):
        copy_debian_wordnet(tmp_path / "x", source=tmp_path / "no-debian")


def _real_wordnet():
    from trainables.wordnet_data import find_wordnet

    for root in NLTK_PATHS:
        if find_wordnet(root) is not None:
            return load_wordnet(root)
    pytest.skip("real WordNet 3.0 is not installed for NLTK (run `xaisweep prepare wordnet`)")


def test_real_wordnet_synonyms():
    wn = _real_wordnet()
    syn = wordnet_synonyms(wn)
    assert {"automobile", "machine", "motorcar"} <= set(syn("car")) and "glad" in syn("happy")
    assert wn.get_version() == "3.0" and len(wn.synsets("good")) > 20


def test_cli_prepare_wordnet(tmp_path, capsys):
    from sweeps.cli import main

    debian = write_wordnet(tmp_path / "debian")
    assert main(["prepare", "wordnet", "--dir", str(tmp_path / "nd"), "--debian-dir", str(debian), "--offline"]) == 0
    assert "ready for NLTK" in capsys.readouterr().out
    assert main(["prepare", "wordnet", "--dir", str(tmp_path / "nd2"), "--debian-dir", str(tmp_path / "none"),
                 "--offline"]) == 2
    assert "wordnet-sense-index" in capsys.readouterr().err
