"""WordNet 3.0 for NLTK: install (``xaisweep prepare wordnet``), locate and load.

Two sources, tried in order by :func:`prepare_wordnet`:

1. ``nltk.download("wordnet")`` where a network exists;
2. the Debian packages ``wordnet-base`` + ``wordnet-sense-index``
   (``apt-get update && apt-get install -y wordnet-base wordnet-sense-index``), which
   install the WordNet 3.0 database under ``/usr/share/wordnet``. NLTK refuses
   symlinks and paths outside its data directory, so the files are *copied* into
   ``<nltk_data>/corpora/wordnet/``, together with the 45-line ``lexnames`` file
   those packages lack (shipped here as ``resources/wordnet_lexnames``).
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any, Optional

DEBIAN_DIR = Path("/usr/share/wordnet")
LEXNAMES = Path(__file__).with_name("resources") / "wordnet_lexnames"
#: files NLTK's WordNetCorpusReader opens (index.sense and cntlist.rev lazily)
WORDNET_FILES = tuple(
    [f"{kind}.{pos}" for kind in ("data", "index") for pos in ("noun", "verb", "adj", "adv")]
    + [f"{pos}.exc" for pos in ("noun", "verb", "adj", "adv")]
    + ["index.sense", "cntlist.rev"]
)
INSTALL_HINT = (
    "WordNet 3.0 is not installed for NLTK. Run `xaisweep prepare wordnet` (it uses nltk.download where a "
    "network exists, else copies the Debian packages: `apt-get update && apt-get install -y wordnet-base "
    "wordnet-sense-index` first)"
)


def default_nltk_dir() -> Path:
    """The first directory of NLTK's search path (``~/nltk_data`` unless NLTK_DATA says otherwise)."""
    import nltk

    return Path(nltk.data.path[0])


def find_wordnet(nltk_dir: Optional[str | Path] = None) -> Optional[Path]:
    """The unzipped ``corpora/wordnet`` directory under ``nltk_dir`` or NLTK's search path, or None
    (a zipped ``nltk.download`` install is found by :func:`load_wordnet` through NLTK itself)."""
    import nltk

    roots = [Path(nltk_dir).expanduser()] if nltk_dir else [Path(p) for p in nltk.data.path]
    for root in roots:
        d = root / "corpora" / "wordnet"
        if (d / "lexnames").is_file() and (d / "data.noun").is_file():
            return d
    return None


def load_wordnet(nltk_dir: Optional[str | Path] = None) -> Any:
    """An NLTK ``WordNetCorpusReader`` over the installed WordNet; ``ValueError`` with the install hint if missing."""
    import warnings

    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    found = find_wordnet(nltk_dir)
    if found is None:
        if nltk_dir is None:
            try:  # e.g. a zipped nltk.download install
                from nltk.corpus import wordnet

                wordnet.ensure_loaded()
                return wordnet
            except LookupError:
                pass
        raise ValueError(INSTALL_HINT + (f" (looked in {nltk_dir})" if nltk_dir else ""))
    import nltk

    root = str(found.parent.parent)
    if root not in nltk.data.path:  # NLTK reads corpora only under its data path (security check)
        nltk.data.path.append(root)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "multilingual functions are not available" (no OMW): not needed
        return WordNetCorpusReader(str(found), None)


def wordnet_problem(nltk_dir: Optional[str | Path] = None) -> Optional[str]:
    """None when WordNet loads, else the message saying how to install it (for preflight)."""
    try:
        load_wordnet(nltk_dir)
    except (ValueError, LookupError, OSError) as err:
        return f"regularizer wordnet: {err}"
    return None


def copy_debian_wordnet(target: str | Path, *, source: str | Path = DEBIAN_DIR) -> Path:
    """Copy the Debian WordNet 3.0 files plus ``lexnames`` into ``<target>/corpora/wordnet``.

    Raises:
        FileNotFoundError: a required file is missing under ``source`` (packages not installed).
    """
    source = Path(source)
    missing = [f for f in WORDNET_FILES if not (source / f).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks {', '.join(missing)}: install the Debian packages first "
            "(apt-get update && apt-get install -y wordnet-base wordnet-sense-index)"
        )
    dest = Path(target).expanduser() / "corpora" / "wordnet"
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORDNET_FILES:
        shutil.copyfile(source / name, dest / name)  # copies the content, never a link
    shutil.copyfile(LEXNAMES, dest / "lexnames")
    return dest


def prepare_wordnet(
    target: Optional[str | Path] = None, *, source: str | Path = DEBIAN_DIR, network: bool = True
) -> tuple[Path, str]:
    """Install WordNet 3.0 for NLTK under ``target`` (default: NLTK's first data dir).

    Returns:
        ``(wordnet directory, how)`` with ``how`` one of ``"present"``, ``"nltk.download"``, ``"debian"``.

    Raises:
        RuntimeError: neither source worked (the message says what to install).
    """
    target = Path(target).expanduser() if target else default_nltk_dir()
    found = find_wordnet(target)
    if found is not None:
        return found, "present"
    errors = []
    if network:
        try:
            import nltk

            if nltk.download("wordnet", download_dir=str(target), quiet=True, raise_on_error=True):
                zipped = target / "corpora" / "wordnet.zip"
                if zipped.is_file() and not (target / "corpora" / "wordnet").is_dir():
                    import zipfile

                    with zipfile.ZipFile(zipped) as z:
                        z.extractall(target / "corpora")
                if find_wordnet(target) is not None:
                    return target / "corpora" / "wordnet", "nltk.download"
        except Exception as err:  # noqa: BLE001 - no network, proxy refusal, ...: fall back to Debian
            errors.append(f"nltk.download failed: {err}")
    try:
        dest = copy_debian_wordnet(target, source=source)
    except FileNotFoundError as err:
        errors.append(str(err))
        raise RuntimeError("could not install WordNet:\n  " + "\n  ".join(errors)) from None
    load_wordnet(target)  # fails loudly if the copy is unusable
    return dest, "debian"
