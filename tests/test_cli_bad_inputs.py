"""Every command against a table of realistic mistakes: exit status 2, exactly one line on stderr
that names what was wrong (no traceback), and nothing written to --out.

Each case runs in-process through ``neurolp.cli.main``; conftest sets ``NEUROLP_DEBUG=1``, so a
mistake that reaches an unexpected exception fails here with its traceback instead of passing as
"one line". A few cases also run as real processes to check what a user's terminal shows.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from allen_fixtures import make_allen_cache
from neurolp.cli import main
from neurolp.rf.rossi import load_rossi


def _unwritable(root: Path) -> Path | None:
    """A folder this process cannot create files in: chmod 555 for normal users; as root (who
    ignores permissions) a location on a read-only or permission-checked file system."""
    if os.geteuid() != 0:
        d = root / "readonly"
        d.mkdir()
        d.chmod(0o555)
        return d
    import tempfile

    for cand in ("/sys", "/proc/sys"):
        try:
            fd, tmp = tempfile.mkstemp(dir=cand)
        except OSError:
            return Path(cand)
        os.close(fd)
        os.unlink(tmp)
    return None


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("bad_inputs")
    make_allen_cache(root / "allen")
    (root / "a_file.txt").write_text("not a folder\n")
    (root / "a_folder").mkdir()
    images = root / "images"
    images.mkdir()
    for i in range(2):
        Image.fromarray(np.full((40, 40, 3), 60 * i, np.uint8)).save(images / f"im{i}.png")
    t = load_rossi().astype({"dx_um": object})
    t.loc[4, "dx_um"] = "about 12"
    t.to_csv(root / "rossi_bad.csv", index=False)
    run0 = root / "run_zero_state"  # a run folder whose state.pt is empty (a crash mid-write)
    run0.mkdir()
    (run0 / "config.json").write_text(json.dumps({"model": "base-smallcnn", "dataset": "digits"}))
    (run0 / "state.pt").write_bytes(b"")
    (root / "bad.json").write_text("{not json")
    _neural_files(root)
    out = root / "out"  # an existing output folder that every failed command must leave alone
    out.mkdir()
    (out / "keep.csv").write_text("earlier,result\n1,2\n")
    return {"root": root, "out": out, "cache": root / "allen", "file": root / "a_file.txt",
            "dir": root / "a_folder", "images": images, "rossi_bad": root / "rossi_bad.csv",
            "run0": run0, "bad_json": root / "bad.json", "ro": _unwritable(root)}


def _neural_files(root: Path) -> None:
    """--neural files over the two images of the world's image folder (im0, im1, plus a third)."""
    rsm = np.array([[1.0, 0.2, -0.1], [0.2, 1.0, 0.4], [-0.1, 0.4, 1.0]])
    names = np.array(["im0", "im1", "blank"])
    np.savez(root / "neural_ok.npz", **{"rsm/V1": rsm}, stimuli=names)
    asym = rsm.copy()
    asym[0, 1] = 0.9
    np.savez(root / "neural_asym.npz", **{"rsm/V1": asym}, stimuli=names)
    diag = rsm.copy()
    diag[2, 2] = 0.5
    np.savez(root / "neural_diag.npz", **{"rsm/V1": diag}, stimuli=names)
    nan = rsm.copy()
    nan[1, :] = nan[:, 1] = np.nan
    np.savez(root / "neural_nan.npz", **{"rsm/V1": nan}, stimuli=names)
    np.savez(root / "neural_noorder.npz", **{"rsm/V1": rsm})
    np.save(root / "two_images.npy", np.zeros((2, 8, 8), np.uint8))
    np.savez(root / "neural_owl.npz", **{"rsm/V1": rsm}, stimuli=np.array(["im0", "owl", "im1"]))


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(folder.rglob("*"))}


FIT = ["fit-mpnd", "--quiet", "--no-figure"]
TRAIN = ["train", "--no-progress", "--device", "cpu", "--no-publish"]
RSA = ["rsa", "--model", "base-smallcnn", "--allen-cache", "{cache}", "--no-progress"]
NEURAL = ["rsa", "--model", "base-smallcnn", "--untrained", "--image-size", "32", "--no-progress"]
OK_NEURAL = ["--neural", "{root}/neural_ok.npz", "--images", "{images}"]
REPORT = ["report", "--models", "base-smallcnn", "lp2-smallcnn", "--no-progress"]
HEBB = ["hebbian", "train", "--no-progress", "--preset", "quick"]

# (id, argv, regex the one stderr line must match); {placeholders} come from the world fixture,
# {out} is the existing output folder, {new} an output folder that must not appear.
CASES = [
    # fit-mpnd
    ("fit-out-empty", FIT + ["--out", ""], r"--out: is empty"),
    ("fit-out-is-file", FIT + ["--out", "{file}"], r"--out: .*a_file.txt exists and is a file"),
    ("fit-out-under-file", FIT + ["--out", "{file}/sub"], r"a_file.txt is a file, so nothing can be created"),
    ("fit-out-unwritable", FIT + ["--out", "{ro}/x"], r"--out: .*cannot write in"),
    ("fit-p-max-inf", FIT + ["--out", "{out}", "--p-max", "inf"], r"--p-max: must be a finite number"),
    ("fit-p-max-2", FIT + ["--out", "{out}", "--p-max", "2"], r"--p-max: must be in \(2, 1024\]"),
    ("fit-csv-non-numeric", FIT + ["--out", "{out}", "--conditions", "v1", "--rossi-dir", "{rossi_bad}"],
     r"column dx_um has 1 missing or non-numeric value.*lines \[6\], e.g. 'about 12'"),
    ("fit-images-and-allen", FIT + ["--out", "{out}", "--images", "{images}", "--allen-cache", "{cache}"],
     r"--images and --allen-cache exclude each other"),
    ("fit-images-unused", FIT + ["--out", "{out}", "--conditions", "v1", "--images", "{images}"],
     r"--images is only used by the \*-image conditions"),
    ("fit-unknown-model", FIT + ["--out", "{out}", "--conditions", "untrained-noise", "--model", "resnet19"],
     r"unknown model 'resnet19' \(did you mean 'resnet18'\?\)"),
    ("fit-n-inputs-0", FIT + ["--out", "{out}", "--n-inputs", "0"], r"--n-inputs: must be an integer in \[2, 1000\]"),
    ("fit-seed-negative", FIT + ["--out", "{out}", "--seed", "-1"], r"--seed: must be an integer >= 0"),
    ("fit-unknown-condition", FIT + ["--out", "{out}", "--conditions", "v2"], r"unknown condition 'v2'"),
    ("fit-weights-missing", FIT + ["--out", "{out}", "--weights", "{root}/none.pth"], r"--weights: .*none.pth does not exist"),
    ("fit-rossi-dir-missing", FIT + ["--out", "{out}", "--rossi-dir", "{root}/nowhere"], r"nowhere does not exist"),
    ("fit-unknown-flag", FIT + ["--out", "{out}", "--p-min", "1"],
     r"unrecognized arguments: --p-min 1 \(see `neurolp fit-mpnd --help`\)"),
    ("fit-fit-typo", FIT + ["--out", "{out}", "--fit", "papr"], r"--fit: unknown fit 'papr' \(did you mean 'paper'\?\)"),
    ("fit-lr-without-paper", FIT + ["--out", "{out}", "--lr", "0.05"], r"--lr 0.05 only applies to --fit paper"),
    ("fit-steps-without-paper", FIT + ["--out", "{out}", "--steps", "300"], r"--steps 300 only applies to --fit paper"),
    ("fit-lr-0", FIT + ["--out", "{out}", "--fit", "paper", "--lr", "0"], r"--lr: must be in \(0, 10\]"),
    ("fit-lr-nan", FIT + ["--out", "{out}", "--fit", "paper", "--lr", "nan"], r"--lr: must be a finite number"),
    ("fit-steps-0", FIT + ["--out", "{out}", "--fit", "paper", "--steps", "0"], r"--steps: must be an integer in \[1, "),
    ("fit-rf-typo", FIT + ["--out", "{out}", "--rf", "perfilter"], r"--rf: unknown RF kind 'perfilter' \(did you mean 'per-filter'\?\)"),
    ("fit-rf-v1-only", FIT + ["--out", "{out}", "--conditions", "v1", "--rf", "per-filter"],
     r"--rf per-filter only changes the artificial"),
    ("fit-untrained-networks-0", FIT + ["--out", "{out}", "--untrained-networks", "0"],
     r"--untrained-networks: must be an integer in \[1, 1000\]"),
    ("fit-untrained-networks-too-many", FIT + ["--out", "{out}", "--n-inputs", "3", "--untrained-networks", "4"],
     r"--untrained-networks 4 is more than --n-inputs 3"),
    ("fit-untrained-networks-unused", FIT + ["--out", "{out}", "--conditions", "v1", "--untrained-networks", "2"],
     r"--untrained-networks 2 only applies to the untrained-\* conditions"),
    ("fit-untrained-networks-per-filter", FIT + ["--out", "{out}", "--untrained-networks", "2", "--rf", "per-filter"],
     r"--untrained-networks 2 needs --rf pooled"),
    ("fit-sensitivity-full-C", FIT + ["--out", "{out}", "--sensitivity", "--C", "full"],
     r"--sensitivity .* does not take --C full"),
    ("fit-n-boot-small", FIT + ["--out", "{out}", "--n-boot", "10"], r"--n-boot: must be an integer in \[100, "),
    ("fit-min-inputs-1", FIT + ["--out", "{out}", "--min-inputs", "1"], r"--min-inputs: must be an integer in \[2, "),
    # train
    ("train-opt", TRAIN + ["--out", "{new}", "--opt", "foo"], r"--opt 'foo' is not a timm optimizer"),
    ("train-opt-typo", TRAIN + ["--out", "{new}", "--opt", "adamww"], r"\(did you mean 'adamw'\?\)"),
    ("train-auto-augment", TRAIN + ["--out", "{new}", "--auto-augment", "x"], r"--auto-augment 'x' is not a timm"),
    ("train-val-fraction", TRAIN + ["--out", "{new}", "--val-fraction", "0.999"],
     r"--val-fraction 0.999 of 1437 training images leaves"),
    ("train-val-fraction-1", TRAIN + ["--out", "{new}", "--val-fraction", "1"], r"--val-fraction: must be in \[0, 1\)"),
    ("train-config-missing", TRAIN + ["--out", "{new}", "--config", "{root}/missing.json"], r"--config: .*missing.json does not exist"),
    ("train-config-bad-json", TRAIN + ["--out", "{new}", "--config", "{bad_json}"], r"bad.json is not valid JSON"),
    ("train-model-kwargs", TRAIN + ["--out", "{new}", "--model-kwargs", '{"width": -1}'],
     r"cannot build lp2-smallcnn with --model-kwargs \{\"width\": -1\}"),
    ("train-model-kwargs-unknown", TRAIN + ["--out", "{new}", "--model-kwargs", '{"depth": 3}'],
     r"invalid options for smallcnn"),
    ("train-model-kwargs-json", TRAIN + ["--out", "{new}", "--model-kwargs", "{width: 4}"],
     r"--model-kwargs: is not valid JSON"),
    ("train-resume-typo", TRAIN + ["--resume", "--out", "{root}/TYPO"], r"--resume: .*TYPO does not exist"),
    ("train-resume-no-run", TRAIN + ["--resume", "--out", "{dir}"], r"--resume: .*a_folder holds no training run"),
    ("train-resume-empty-state", TRAIN + ["--resume", "--out", "{run0}"],
     r"training state .*state.pt is (empty|corrupted or truncated)"),
    ("train-store-is-file", ["train", "--no-progress", "--device", "cpu", "--out", "{new}", "--store", "{file}"],
     r"--store: .*exists and is a file"),
    ("train-batch-0", TRAIN + ["--out", "{new}", "--batch-size", "0"], r"--batch-size: must be an integer in \[1, "),
    ("train-epochs-0", TRAIN + ["--out", "{new}", "--epochs", "0"], r"--epochs: must be an integer in \[1, "),
    ("train-lr-nan", TRAIN + ["--out", "{new}", "--lr", "nan"], r"--lr: must be a finite number"),
    ("train-dataset", TRAIN + ["--out", "{new}", "--dataset", "mnist"], r"unknown dataset 'mnist'"),
    ("train-model", TRAIN + ["--out", "{new}", "--model", "lp2-resnet19"], r"unknown architecture 'resnet19'"),
    ("train-cuda", ["train", "--no-progress", "--no-publish", "--out", "{new}", "--device", "cuda"],
     r"CUDA is not available"),
    ("train-out-is-file", TRAIN + ["--out", "{file}"], r"--out: .*exists and is a file"),
    ("train-on-bad-sample", TRAIN + ["--out", "{new}", "--on-bad-sample", "maybe"],
     r"--on-bad-sample: unknown on bad sample 'maybe'"),
    ("train-image-too-small", TRAIN + ["--out", "{new}", "--model", "base-alexnet", "--image-size", "8"],
     r"--image-size 8 is too small for base-alexnet"),
    ("train-too-few-images", TRAIN + ["--out", "{new}", "--max-train-samples", "5"],
     r"leaves 0 for validation .*raise --val-fraction"),
    ("train-convert-kwargs", TRAIN + ["--out", "{new}", "--convert-kwargs", '{"p_min": 0}'], r"p_min must be > 0"),
    ("train-device-name", ["train", "--no-publish", "--out", "{new}", "--device", "gpu"], r"unknown device 'gpu'"),
    ("train-unknown-flag", TRAIN + ["--out", "{new}", "--lr-min", "0"], r"\(see `neurolp train --help`\)"),
    # eval
    ("eval-batch-0", ["eval", "--checkpoint", "x", "--batch-size", "0"], r"--batch-size: must be an integer in \[1, "),
    ("eval-workers", ["eval", "--checkpoint", "x", "--num-workers", "-1"], r"--num-workers: must be an integer in \[0, "),
    ("eval-severity", ["eval", "--checkpoint", "x", "--severities", "6"], r"--severities: must be an integer in \[1, 5\]"),
    ("eval-out-file", ["eval", "--checkpoint", "x", "--out", "{file}"], r"--out: .*exists and is a file"),
    ("eval-missing-checkpoint", ["eval", "--checkpoint", "{root}/none.safetensors"], r"checkpoint .*none.safetensors does not exist"),
    ("eval-corruptions-without-c", ["eval", "--checkpoint", "x", "--corruptions", "fog"],
     r"--corruptions only applies to --dataset cifar100c"),
    ("eval-corruption-typo", ["eval", "--checkpoint", "x", "--dataset", "cifar100c", "--corruptions", "fgo"],
     r"unknown corruption 'fgo' \(did you mean 'fog'\?\)"),
    # rsa
    ("rsa-batch-0", RSA + ["--untrained", "--image-size", "32", "--batch-size", "0"], r"--batch-size: must be an integer in \[1, "),
    ("rsa-image-size-huge", RSA + ["--untrained", "--image-size", "100000"], r"--image-size: must be an integer in \[8, 1024\]"),
    ("rsa-image-size-0", RSA + ["--untrained", "--image-size", "0"], r"--image-size: must be an integer in \[8, 1024\]"),
    ("rsa-splits-0", RSA + ["--untrained", "--image-size", "32", "--preset", "lpconv", "--splits", "0"],
     r"--splits: must be an integer in \[1, "),
    ("rsa-untrained-no-size", RSA + ["--untrained"], r"--untrained needs --image-size"),
    ("rsa-out-file", RSA + ["--untrained", "--image-size", "32", "--out", "{file}"], r"--out: .*exists and is a file"),
    ("rsa-cre-typo", RSA + ["--untrained", "--image-size", "32", "--cre-lines", "Cux2"],
     r"unknown Cre line 'Cux2' \(did you mean 'Cux2-CreERT2'\?\)"),
    ("rsa-area-typo", RSA + ["--untrained", "--image-size", "32", "--areas", "VISx"], r"unknown visual area 'VISx'"),
    ("rsa-cache-missing", ["rsa", "--model", "base-smallcnn", "--untrained", "--image-size", "32",
                           "--allen-cache", "{root}/nocache"], r"--allen-cache: .*nocache does not exist"),
    ("rsa-save-rsms-no-out", RSA + ["--untrained", "--image-size", "32", "--save-rsms"], r"--save-rsms needs --out"),
    ("rsa-window-0", RSA + ["--untrained", "--image-size", "32", "--window", "0", "0"], r"--window FRAMES must be >= 1"),
    ("rsa-checkpoint-count", RSA + ["--checkpoint", "{file}", "{file}"], r"2 --checkpoint for 1 --model"),
    ("rsa-unknown-model", ["rsa", "--model", "lp2-alexnett", "--allen-cache", "{cache}"], r"unknown architecture 'alexnett'"),
    ("rsa-one-mouse-no-ceiling", RSA + ["--untrained", "--image-size", "32", "--bootstrap", "0",
                                        "--areas", "VISal", "--cre-lines", "Cux2-CreERT2", "--out", "{out}"],
     r"every layer × area score is undefined.*VISal: one mouse only"),
    # rsa --neural
    ("rsa-two-brain-sources", NEURAL + ["--allen-cache", "{cache}"] + OK_NEURAL,
     r"--allen-cache and --neural exclude each other"),
    ("rsa-no-brain-source", NEURAL, r"give the brain data: --allen-cache DIR .* or --neural FILE"),
    ("rsa-neural-no-images", NEURAL + ["--neural", "{root}/neural_ok.npz"], r"--neural needs --images"),
    ("rsa-images-without-neural", RSA + ["--untrained", "--image-size", "32", "--images", "{images}"],
     r"--images only applies to --neural FILE"),
    ("rsa-neural-missing", NEURAL + ["--neural", "{root}/none.npz", "--images", "{images}"],
     r"--neural: .*none.npz does not exist"),
    ("rsa-neural-not-data", NEURAL + ["--neural", "{file}", "--images", "{images}"],
     r"a_file.txt is neither an npz nor an HDF5 file"),
    ("rsa-neural-asymmetric", NEURAL + ["--neural", "{root}/neural_asym.npz", "--images", "{images}"],
     r"rsm/V1 is not symmetric: entry \(0, 1\) = 0.9 but \(1, 0\) = 0.2"),
    ("rsa-neural-diagonal", NEURAL + ["--neural", "{root}/neural_diag.npz", "--images", "{images}"],
     r"rsm/V1 has 0.5 on the diagonal at stimulus 2 \('blank'\)"),
    ("rsa-neural-nan-row", NEURAL + ["--neural", "{root}/neural_nan.npz", "--images", "{images}"],
     r"NaN row at stimulus 1 \('im1'\)"),
    ("rsa-neural-image-count", NEURAL + ["--neural", "{root}/neural_noorder.npz", "--images",
                                         "{root}/two_images.npy"],
     r"holds 2 images but the neural data has 3 stimuli"),
    ("rsa-neural-unknown-stimulus", NEURAL + ["--neural", "{root}/neural_owl.npz", "--images", "{images}"],
     r"1 of 3 stimuli have no image in .*: owl"),
    ("rsa-neural-no-names-for-folder", NEURAL + ["--neural", "{root}/neural_noorder.npz", "--images",
                                                 "{images}"], r"does not name its stimuli"),
    ("rsa-neural-allen-option", NEURAL + OK_NEURAL + ["--signal", "dff"],
     r"--signal only applies to --allen-cache"),
    ("rsa-neural-areas", NEURAL + OK_NEURAL + ["--areas", "VISp"],
     r"--areas selects Allen experiments; with --neural choose sites with --sites"),
    ("rsa-neural-site-typo", NEURAL + OK_NEURAL + ["--sites", "V2"], r"--sites: unknown site 'V2'; valid: V1"),
    ("rsa-neural-descriptor", NEURAL + OK_NEURAL + ["--site-descriptor", "roi"],
     r"--site-descriptor only applies to rsatoolbox RDMs files"),
    ("rsa-neural-reliability-on-rsms", NEURAL + OK_NEURAL + ["--reliability", "0.5"],
     r"--reliability selects neurons from responses, but .* holds similarity matrices"),
    ("rsa-neural-reliability-range", NEURAL + OK_NEURAL + ["--reliability", "2"],
     r"--reliability: must be in \[-1, 1\]"),
    ("rsa-neural-split-half-on-rsms", NEURAL + OK_NEURAL + ["--normalise-by", "split-half"],
     r"the trial split-half ceiling needs responses"),
    ("rsa-neural-pooled-on-rsms", NEURAL + OK_NEURAL + ["--preset", "lpconv"],
     r"needs responses \[images, trials, neurons\]"),
    ("rsa-neural-no-ceiling", NEURAL + OK_NEURAL + ["--normalise-by", "lower", "--bootstrap", "0",
                                                    "--out", "{out}"],
     r"every layer × area score is undefined.*--normalise-by none"),
    ("rsa-neural-crop", NEURAL + OK_NEURAL + ["--crop", "middle"], r"--crop: invalid choice: 'middle'"),
    # report
    ("report-no-out", REPORT + ["--untrained", "--image-size", "32"],
     r"the following arguments are required: --out"),
    ("report-checkpoint-count", REPORT + ["--out", "{new}", "--checkpoint", "{file}"],
     r"1 --checkpoint for 2 --models; give one per model"),
    ("report-both-files", REPORT + ["--out", "{new}", "--checkpoint", "{file}", "-", "--weights",
                                    "{file}", "-", "--image-size", "32"],
     r"base-smallcnn has both a --checkpoint and a --weights file"),
    ("report-untrained-no-size", REPORT + ["--out", "{new}", "--untrained"],
     r"--untrained and --weights models need --image-size"),
    ("report-weights-dash-typo", REPORT + ["--out", "{new}", "--weights", "{root}/w.pt", "-"],
     r"--weights: .*w.pt does not exist"),
    ("report-store-empty", REPORT + ["--out", "{new}", "--store", "{dir}"],
     r"no checkpoint of base-smallcnn"),
    ("report-rsa-without-brain", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                           "--bootstrap", "10"],
     r"--bootstrap configures the RSA, which needs brain data"),
    ("report-two-brain-sources", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                           "--allen-cache", "{cache}"] + OK_NEURAL,
     r"--allen-cache and --neural exclude each other"),
    ("report-neural-asymmetric", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                           "--neural", "{root}/neural_asym.npz", "--images", "{images}"],
     r"rsm/V1 is not symmetric"),
    ("report-data-dir-alone", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                        "--data-dir", "{dir}"],
     r"--data-dir is the folder of --eval-dataset"),
    ("report-eval-needs-data", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                         "--eval-dataset", "cifar100"],
     r"--eval-dataset cifar100 needs --data-dir DIR"),
    ("report-eval-classes", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                      "--num-classes", "5", "--eval-dataset", "digits"],
     r"--num-classes 5 but digits has 10 classes"),
    ("report-eval-typo", REPORT + ["--out", "{new}", "--eval-dataset", "digit"],
     r"unknown dataset 'digit' \(did you mean 'digits'\?\)"),
    ("report-rf-inputs-typo", REPORT + ["--out", "{new}", "--rf-inputs", "imag"],
     r"unknown RF input 'imag' \(did you mean 'image'\?\)"),
    ("report-rf-images-noise", REPORT + ["--out", "{new}", "--untrained", "--image-size", "32",
                                         "--rf-inputs", "noise", "--rf-images", "{images}"],
     r"--rf-images is only used with --rf-inputs image"),
    ("report-n-inputs-1", REPORT + ["--out", "{new}", "--n-inputs", "1"],
     r"--n-inputs: must be an integer in \[2, 1000\]"),
    ("report-out-file", REPORT + ["--out", "{file}"], r"--out: .*exists and is a file"),
    ("report-unknown-model", ["report", "--models", "lp2-alexnett", "--out", "{new}"],
     r"unknown architecture 'alexnett'"),
    # allen
    ("allen-info-cre-typo", ["allen", "info", "--cache", "{cache}", "--cre-lines", "Cux2"], r"did you mean 'Cux2-CreERT2'"),
    ("allen-info-csv-dir", ["allen", "info", "--cache", "{cache}", "--csv", "{dir}"], r"--csv: .*a_folder is a folder"),
    ("allen-info-no-match", ["allen", "info", "--cache", "{cache}", "--depths", "17"],
     r"no natural-scene experiment .*matches the selection.*depth 17 \(the cache has: 175, 275"),
    ("allen-verify-missing", ["allen", "verify", "--cache", "{root}/nocache"], r"--cache: .*nocache does not exist"),
    ("allen-fetch-cache-file", ["allen", "fetch", "--cache", "{file}"], r"--cache: .*exists and is a file"),
    ("allen-no-subcommand", ["allen"], r"choose a subcommand"),
    ("allen-unknown-flag", ["allen", "info", "--cache", "{cache}", "--verbose"], r"\(see `neurolp allen info --help`\)"),
    # models, checkpoints
    ("models-csv-dir", ["models", "--csv", "{dir}"], r"--csv: .*a_folder is a folder"),
    ("models-unknown", ["models", "lp2-resnet19"], r"unknown architecture 'resnet19'"),
    ("models-image-too-small", ["models", "--image-size", "8", "lp2-alexnet"], r"--image-size 8 is too small for lp2-alexnet"),
    ("models-classes-0", ["models", "--num-classes", "0"], r"--num-classes: must be an integer in \[1, "),
    ("checkpoints-csv-dir", ["checkpoints", "--csv", "{dir}"], r"--csv: .*a_folder is a folder"),
    ("checkpoints-model", ["checkpoints", "--model", "lp2-resnet19"], r"unknown architecture 'resnet19'"),
    ("checkpoints-dataset", ["checkpoints", "--dataset", "cifar1000"], r"unknown dataset 'cifar1000' \(did you mean 'cifar100'\?\)"),
    # hebbian, and the plug-in model families (locally connected, DoG) through train
    ("hebbian-layers-6", HEBB + ["--out", "{new}", "--layers", "6"], r"--layers: must be an integer in \[1, 5\]"),
    ("hebbian-device-typo", HEBB + ["--out", "{new}", "--device", "cpus"], r"unknown device 'cpus'"),
    ("hebbian-cifar10-missing", HEBB + ["--out", "{new}", "--dataset", "cifar10", "--data-dir", "{dir}"],
     r"cifar10 not found: .*cifar-10-python.tar.gz"),
    ("hebbian-supervised-rule", HEBB + ["--out", "{new}", "--supervised", "--p", "3"],
     r"--supervised trains by SGD only"),
    ("hebbian-lr-0", HEBB + ["--out", "{new}", "--conv-lr", "0"], r"--conv-lr: expected LR > 0"),
    ("hebbian-out-file", HEBB + ["--out", "{file}"], r"--out: .*exists and is a file"),
    ("hebbian-out-unwritable", HEBB + ["--out", "{ro}/x"], r"--out: .*cannot write in"),
    ("hebbian-store-unwritable", HEBB + ["--out", "{new}", "--store", "{ro}/store"], r"--store: .*cannot write in"),
    ("hebbian-no-subcommand", ["hebbian"], r"choose a subcommand: neurolp hebbian train"),
    ("train-lc-unsupported-arch", TRAIN + ["--model", "lc-alexnet", "--out", "{new}"],
     r"lc models \(lc-\.\.\.\) exist for resnet20, smallcnn, not 'alexnet'"),
    ("train-dog-unsupported-arch", TRAIN + ["--model", "dog-resnet18", "--out", "{new}"],
     r"dog models \(dog-\.\.\.\) exist for convnext_tiny"),
    ("train-hebb-unsupported-arch", TRAIN + ["--model", "hebb1-resnet18", "--out", "{new}"],
     r"exist for amato, not 'resnet18'"),
    ("train-hebb-by-backprop", TRAIN + ["--model", "hebb2-amato", "--out", "{new}"],
     r"Hebbian layer\(s\) of hebb2-amato learn without labels: train it with `neurolp hebbian train --layers 2`"),
]


@pytest.mark.parametrize("argv, pattern", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(world, tmp_path, capsys, argv, pattern):
    if any("{ro}" in a for a in argv) and world["ro"] is None:
        pytest.skip("no unwritable location on this machine")
    new = tmp_path / "new-out"
    values = {k: str(v) for k, v in world.items()} | {"new": str(new)}
    argv = [a.format(**values) if "{" in a and "}" in a and not a.startswith("{\"") and ": " not in a
            else a for a in argv]
    before = _snapshot(world["out"]), _snapshot(world["root"] / "run_zero_state")
    rc = main(argv)
    captured = capsys.readouterr()
    err = captured.err
    assert rc == 2, (rc, err, captured.out[-2000:])
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("neurolp: error: "), err
    assert re.search(pattern, lines[0]), lines[0]
    assert (_snapshot(world["out"]), _snapshot(world["root"] / "run_zero_state")) == before
    assert not new.exists()
    assert not any(p.name.startswith((".out.staging", ".new-out")) for p in world["root"].iterdir())


def test_a_real_process_prints_one_line(world):
    """What a terminal shows: one line, status 2, for a parse error and for a check error."""
    env = {**os.environ, "NEUROLP_DEBUG": ""}
    for argv, pattern in ((["train", "--opt", "foo", "--no-publish", "--out", str(world["root"] / "p1")],
                           "--opt 'foo' is not a timm optimizer"),
                          (["rsa", "--model", "lp2-smallcnn", "--allen-cache", str(world["cache"]),
                            "--bogus"], r"see `neurolp rsa --help`")):
        r = subprocess.run([sys.executable, "-m", "neurolp", *argv], capture_output=True, text=True,
                           env=env, timeout=120)
        assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
        assert re.search(pattern, r.stderr) and "Traceback" not in r.stderr


def test_an_internal_error_is_one_line_exit_1_unless_debugging(monkeypatch, capsys):
    """A bug (not bad input) still shows one line, asks for a report, and exits 1."""
    import neurolp.cli.models as models_cli

    def boom(args):
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(models_cli, "run", boom)
    monkeypatch.setenv("NEUROLP_DEBUG", "")
    assert main(["models", "smallcnn"]) == 1
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "internal error (ZeroDivisionError" in err
    assert "NEUROLP_DEBUG=1" in err
    monkeypatch.setenv("NEUROLP_DEBUG", "1")
    with pytest.raises(ZeroDivisionError):
        main(["models", "smallcnn"])


def test_dataloader_worker_traceback_shrinks_to_its_last_line():
    from neurolp.cli import one_line
    from neurolp.errors import DataFormatError

    wrapped = DataFormatError("Caught DataFormatError in DataLoader worker process 0.\nOriginal Traceback "
                              "(most recent call last):\n  File \"x.py\", line 1, in f\n"
                              "neurolp.errors.DataFormatError: cannot read image a.jpg (OSError: truncated)\n")
    assert one_line(wrapped) == "cannot read image a.jpg (OSError: truncated)"
