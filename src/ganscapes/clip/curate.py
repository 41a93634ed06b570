"""curate: score a training set with CLIP and move the worst to a salon des refusés.

GANscapes scored its 5,314 scraped paintings against "impressionist landscape painting"
and set aside the lowest 314 — mostly portraits, still lifes, sketches and photographs
of frames that the WikiArt genre tags had let through.

Nothing is deleted and everything can be undone. Beside the dataset (`landscapes.zip`
or `landscapes/`) a folder `landscapes-curation/` receives the scores (`scores.csv`),
contact sheets of the 24 best and 24 worst (`top.png`, `bottom.png`), the refused
images (`salon_des_refuses/`, with a `manifest.json` of their scores) and what undo
needs: `curation.json`, plus the original `dataset.json`/`manifest.json` of a folder
dataset, or the original zip itself (`original.zip`, moved, not copied). `--undo` puts
every byte back where it was.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ganscapes.clip.embed import ImageRef, embed_images
from ganscapes.clip.prompts import Prompt
from ganscapes.clip.rank import Ranking, rank_embedded
from ganscapes.data.contact_sheet import save_contact_sheet
from ganscapes.data.dataset import LABELS, MANIFEST, Dataset, is_zip_path
from ganscapes.errors import SettingError, UserError
from ganscapes.fileio import atomic_path, remove_stale_copies, remove_stale_temporaries, write_bytes_atomic

REFUSED_DIR = "salon_des_refuses"
STATE = "curation.json"
SCORES = "scores.csv"
SHEET_COUNT = 24  # images on each contact sheet


@dataclass(frozen=True)
class RefuseRule:
    """Exactly one of: a count, a fraction of the readable images, or a score threshold."""

    count: int | None = None
    fraction: float | None = None
    min_score: float | None = None

    def __post_init__(self) -> None:
        given = [v is not None for v in (self.count, self.fraction, self.min_score)]
        if sum(given) != 1:
            raise UserError("Say how many to refuse with exactly one of count, fraction or min_score.")
        if self.count is not None and self.count < 0:
            raise SettingError("count", f"must be 0 or more, not {self.count}.")
        if self.fraction is not None and not 0 <= self.fraction < 1:
            raise SettingError("fraction", f"must be at least 0 and below 1, not {self.fraction:g}.")

    def how_many(self, ranking: Ranking) -> int:
        n = len(ranking)
        if self.count is not None:
            if self.count > n:
                raise SettingError("count", f"{self.count} is more than the {n} readable images in the dataset.")
            return self.count
        if self.fraction is not None:
            return int(round(self.fraction * n))
        return int(np.sum(ranking.scores < self.min_score))

    def describe(self) -> str:
        if self.count is not None:
            return f"refuse {self.count}"
        if self.fraction is not None:
            return f"refuse fraction {self.fraction:g}"
        return f"refuse score < {self.min_score:g}"


def curation_dir_for(dataset: Path) -> Path:
    """`landscapes.zip` → `landscapes-curation/`; `landscapes/` → `landscapes-curation/`."""
    dataset = Path(dataset)
    if dataset.name in ("", ".."):  # `curate .` or `curate ..`: the folder's own name
        dataset = Path(os.path.abspath(dataset))
    stem = dataset.stem if is_zip_path(dataset) else dataset.name
    return dataset.with_name(f"{stem}-curation")


@dataclass
class CurateResult:
    dataset: Path
    curation: Path
    ranking: Ranking
    refused: list[str]  # dataset-relative names
    scores_csv: Path
    top_sheet: Path
    bottom_sheet: Path
    dry_run: bool
    encoded: int
    unreadable: list[tuple[str, str]] = field(default_factory=list)


def curate_dataset(
    dataset: Path,
    prompt: Prompt,
    rule: RefuseRule,
    encoder,
    cache=None,
    dry_run: bool = False,
    **embed_options,
) -> CurateResult:
    dataset = Path(dataset)
    curation = curation_dir_for(dataset)
    _check_curation_folder(curation)
    _tidy_interrupted(dataset, curation)
    state_path = curation / STATE
    if state_path.exists():
        _check_owner(state_path, dataset)
        raise UserError(
            f"{dataset} is already curated (see {state_path}); run `ganscapes curate {dataset} --undo` first."
        )
    with Dataset(dataset) as ds:
        names = list(ds.image_names)
    is_zip = dataset.is_file()
    if not names:
        raise UserError(f"The dataset {dataset} holds no images.")
    refs = [ImageRef(dataset, n) if is_zip else ImageRef(dataset / n) for n in names]
    embedded = embed_images(refs, encoder, cache, desc="scoring", **embed_options)
    if not embedded.refs:
        raise UserError(f"None of the {len(refs)} images in {dataset} could be read; is it a dataset?")
    ranking = rank_embedded(embedded, encoder, prompt)
    n_refuse = rule.how_many(ranking)
    rel = {ref: _rel_name(ref, dataset) for ref in refs}
    refused = [rel[r] for r in ranking.refs[len(ranking) - n_refuse :]] if n_refuse else []

    curation.mkdir(parents=True, exist_ok=True)
    scores_csv = _write_scores(curation / SCORES, ranking, rel, set(refused))
    unreadable = [(rel[r], reason) for r, reason in embedded.unreadable]
    if unreadable:
        with atomic_path(curation / "unreadable.tsv") as tmp:
            tmp.write_text("".join(f"{n}\t{why}\n" for n, why in unreadable), encoding="utf-8")
    top = save_contact_sheet(curation / "top.png", _sheet_items(ranking, range(min(SHEET_COUNT, len(ranking)))))
    worst = range(len(ranking) - 1, max(len(ranking) - 1 - SHEET_COUNT, -1), -1)
    bottom = save_contact_sheet(curation / "bottom.png", _sheet_items(ranking, worst))

    if not dry_run and refused:
        record = {
            "kind": "ganscapes-curation",
            "version": 1,
            "dataset": str(dataset.resolve()),
            "container": "zip" if is_zip else "folder",
            "prompt": {
                "positives": list(prompt.positives),
                "negatives": list(prompt.negatives),
                "templates": list(prompt.templates),
            },
            "rule": rule.describe(),
            "clip_model": ranking.model_id,
            "images": len(names),
            "unreadable": len(unreadable),
            "refused": refused,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "status": "moving",
        }
        scores_of = {rel[r]: float(s) for r, s in zip(ranking.refs, ranking.scores)}
        (_move_out_of_zip if is_zip else _move_out_of_folder)(dataset, curation, record, scores_of)
    return CurateResult(
        dataset=dataset,
        curation=curation,
        ranking=ranking,
        refused=refused,
        scores_csv=scores_csv,
        top_sheet=top,
        bottom_sheet=bottom,
        dry_run=dry_run,
        encoded=embedded.encoded,
        unreadable=unreadable,
    )


def _check_curation_folder(curation: Path) -> None:
    """Before minutes of scoring: the curation folder's name must not be taken by a file."""
    if (curation.exists() or curation.is_symlink()) and not curation.is_dir():
        raise UserError(f"{curation} exists and is not a folder; curate keeps its scores and undo data there, move it.")


def _tidy_interrupted(dataset: Path, curation: Path) -> None:
    """Delete what a killed curate (or undo) left half-written: the zip being rebuilt
    (`.NAME.curated-PID`, as large as the dataset) and temporary files of atomic writes
    in the dataset folder and the curation folder. Only files of processes that are gone."""
    remove_stale_copies(dataset, ("curated",))
    if dataset.is_dir():
        remove_stale_temporaries(dataset)  # .manifest.json.PID.tmp, .dataset.json.PID.tmp
    remove_stale_temporaries(curation, recursive=True)


def _check_owner(state_path: Path, dataset: Path, record: dict | None = None) -> None:
    """`landscapes/` and `landscapes.zip` side by side share a curation folder name."""
    if record is None:
        try:
            record = json.loads(state_path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError, UnicodeDecodeError):
            return
    owner = record.get("dataset") if isinstance(record, dict) else None
    if owner and Path(owner).name != dataset.resolve().name:  # names only: moving both together is fine
        raise UserError(
            f"{state_path.parent} holds the curation of {owner}, not of {dataset}; move one of them elsewhere."
        )


def _rel_name(ref: ImageRef, dataset: Path) -> str:
    return ref.member if ref.member is not None else ref.path.relative_to(dataset).as_posix()


def _sheet_items(ranking: Ranking, indices) -> list:
    return [(ranking.refs[i].read_bytes, f"#{i + 1} {ranking.scores[i]:+.4f}") for i in indices]


def _write_scores(path: Path, ranking: Ranking, rel: dict, refused: set[str]) -> Path:
    with atomic_path(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["path", "score", "rank", "refused", "sha256"])
        for k, (ref, s, d) in enumerate(zip(ranking.refs, ranking.scores, ranking.digests), 1):
            name = rel[ref]
            w.writerow([name, f"{s:.6f}", k, int(name in refused), d])
    return path


def _write_state(curation: Path, record: dict) -> None:
    write_bytes_atomic(curation / STATE, json.dumps(record, indent=1).encode(), fsync=True)


def _write_salon_manifest(salon: Path, record: dict, scores_of: dict) -> None:
    items = [{"file": n, "score": round(scores_of[n], 6)} for n in record["refused"]]
    body = {k: record[k] for k in ("dataset", "prompt", "rule", "clip_model", "created")} | {"refused": items}
    write_bytes_atomic(salon / "manifest.json", json.dumps(body, indent=1).encode())


def _rewritten_metadata(read, refused: set[str], record: dict) -> dict[str, bytes]:
    """New dataset.json / manifest.json without the refused images (only files that change)."""
    out: dict[str, bytes] = {}
    labels = read(LABELS)
    if labels is not None:
        data = json.loads(labels)
        if isinstance(data, dict) and isinstance(data.get("labels"), list):
            data["labels"] = [e for e in data["labels"] if not (isinstance(e, list) and e and e[0] in refused)]
            out[LABELS] = json.dumps(data).encode()
    manifest = read(MANIFEST)
    if manifest is not None:
        data = json.loads(manifest)
        if isinstance(data, dict) and isinstance(data.get("images"), list):
            data["images"] = [e for e in data["images"] if not (isinstance(e, dict) and e.get("file") in refused)]
            data["curation"] = {k: record[k] for k in ("prompt", "rule", "clip_model", "created")} | {
                "refused": len(refused)
            }
            out[MANIFEST] = json.dumps(data, indent=1).encode()
    return out


def _move_out_of_folder(dataset: Path, curation: Path, record: dict, scores_of: dict) -> None:
    salon = curation / REFUSED_DIR
    originals = curation / "original"
    originals.mkdir(parents=True, exist_ok=True)
    salon.mkdir(parents=True, exist_ok=True)

    def read(name: str) -> bytes | None:
        p = dataset / name
        return p.read_bytes() if p.is_file() else None

    for meta in (LABELS, MANIFEST):
        data = read(meta)
        if data is not None:
            write_bytes_atomic(originals / meta, data, fsync=True)
    _write_state(curation, record)  # from here on, undo knows what to put back
    _write_salon_manifest(salon, record, scores_of)
    refused = set(record["refused"])
    new_meta = _rewritten_metadata(read, refused, record)
    for name in record["refused"]:
        dest = salon / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(dataset / name, dest)
    for meta, data in new_meta.items():
        write_bytes_atomic(dataset / meta, data)
    _write_state(curation, record | {"status": "done"})


def _move_out_of_zip(dataset: Path, curation: Path, record: dict, scores_of: dict) -> None:
    salon = curation / REFUSED_DIR
    salon.mkdir(parents=True, exist_ok=True)
    refused = set(record["refused"])
    tmp = dataset.with_name(f".{dataset.name}.curated-{os.getpid()}")
    try:
        with zipfile.ZipFile(dataset) as src:
            members = {i.filename for i in src.infolist()}

            def read(name: str) -> bytes | None:
                return src.read(name) if name in members else None

            new_meta = _rewritten_metadata(read, refused, record)
            for name in record["refused"]:
                dest = salon / name
                dest.parent.mkdir(parents=True, exist_ok=True)
                write_bytes_atomic(dest, src.read(name))
            with zipfile.ZipFile(tmp, "w") as out:
                for info in src.infolist():
                    if info.filename in refused:
                        continue
                    data = new_meta.get(info.filename, None)
                    # Same entry settings (name, date, compression) as the original.
                    out.writestr(info, data if data is not None else src.read(info))
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    # What undo checks before it puts original.zip back: that the dataset is still this zip.
    record["curated_zip"] = _zip_fingerprint(tmp)
    _write_state(curation, record)
    _write_salon_manifest(salon, record, scores_of)
    os.replace(dataset, curation / "original.zip")  # same folder tree: a rename, not a copy
    os.replace(tmp, dataset)
    _write_state(curation, record | {"status": "done"})


def _zip_fingerprint(path: Path) -> dict:
    """Size and SHA-256 of a file: enough to tell the zip curate wrote from any other."""
    with open(path, "rb") as f:
        return {"bytes": os.fstat(f.fileno()).st_size, "sha256": hashlib.file_digest(f, "sha256").hexdigest()}


def _is_curated_zip(dataset: Path, original: Path, record: dict) -> bool:
    """Whether `dataset` is the zip curate left there, so that undo may replace it.

    Curations recorded by ganscapes 0.1 carry no fingerprint; for them the zip must hold
    exactly the original's entries but the refused ones, with the same contents.
    """
    if not dataset.is_file():
        return False
    recorded = record.get("curated_zip")
    if isinstance(recorded, dict):
        if dataset.stat().st_size != recorded.get("bytes"):
            return False
        return _zip_fingerprint(dataset) == recorded
    refused = set(record.get("refused") or ())
    try:
        with zipfile.ZipFile(dataset) as now, zipfile.ZipFile(original) as before:
            expected = {i.filename: i.CRC for i in before.infolist() if i.filename not in refused}
            found = {i.filename: i.CRC for i in now.infolist()}
    except (zipfile.BadZipFile, OSError):
        return False
    meta = {LABELS, MANIFEST}  # rewritten by curate
    return set(found) == set(expected) and all(found[n] == expected[n] for n in found if n not in meta)


# ---------------------------------------------------------------------------------------
# undo


def undo_curation(dataset: Path) -> int:
    """Put the dataset back exactly as it was before `curate`; returns the images restored."""
    dataset = Path(dataset)
    curation = curation_dir_for(dataset)
    _check_curation_folder(curation)
    _tidy_interrupted(dataset, curation)
    state_path = curation / STATE
    if not state_path.is_file():
        raise UserError(f"There is no curation of {dataset} to undo ({state_path} does not exist).")
    try:
        record = json.loads(state_path.read_text(encoding="utf-8"))
        refused = list(record["refused"])
        container = record["container"]
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError):
        raise UserError(f"{state_path} is damaged; the refused images are in {curation / REFUSED_DIR}.") from None
    _check_owner(state_path, dataset, record)
    if container == "zip":
        original = curation / "original.zip"
        if original.is_file():
            if (dataset.exists() or dataset.is_symlink()) and not _is_curated_zip(dataset, original, record):
                raise UserError(
                    f"{dataset} is no longer the zip that curate wrote (it was replaced, e.g. prepared again), "
                    f"so undo will not overwrite it with {original}; move one of them away first."
                )
            os.replace(original, dataset)
        elif record.get("status") != "moving" or not dataset.is_file():
            # ("moving" with no original.zip: interrupted before the swap, dataset untouched)
            raise UserError(f"{original} is missing, so the zip dataset cannot be restored.")
    else:
        salon = curation / REFUSED_DIR
        for name in refused:
            src, dest = salon / name, dataset / name
            if src.is_file():
                if dest.exists():
                    raise UserError(f"{dest} exists again, so {src} cannot go back; move one of them away first.")
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.replace(src, dest)
        for meta in (LABELS, MANIFEST):
            backup = curation / "original" / meta
            if backup.is_file():
                write_bytes_atomic(dataset / meta, backup.read_bytes())
    shutil.rmtree(curation)
    return len(refused)
