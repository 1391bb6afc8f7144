"""Training pipeline: data split, initialisation, and a tiny resumable run."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from parkinglot.lpr import ocr, train


def test_split_is_deterministic_and_by_file_name_only() -> None:
    names = [f"img{i:04d}.jpg" for i in range(600)]
    splits = [train.split_of(n) for n in names]
    assert set(splits) == {"train", "val"}
    assert 0.25 < splits.count("val") / len(names) < 0.42
    assert train.split_of("/a/b/img0001.jpg") == train.split_of("img0001.jpg") == splits[1]


def test_cut_box_without_jitter_is_the_box() -> None:
    img = np.arange(100 * 200, dtype=np.uint32).reshape(100, 200).astype(np.uint8)
    crop = train.cut_box(img, (30, 20, 50, 25), None)
    assert crop.shape == (25, 50)
    assert np.array_equal(crop, img[20:45, 30:80])


@pytest.mark.ocr
def test_init_keeps_english_g2_rows_for_the_plate_alphabet() -> None:
    import torch

    model = train.init_from_english_g2()
    sd = ocr.load_state_dict(ocr.english_g2_path())
    chars = ocr.english_g2_characters()
    w = model.state_dict()["Prediction.weight"]
    assert tuple(w.shape) == (len(ocr.CHARSET) + 1, 256)
    assert torch.equal(w[0], sd["Prediction.weight"][0])
    assert torch.equal(w[ocr.CHARSET.index("K") + 1], sd["Prediction.weight"][chars.index("K") + 1])


@pytest.mark.ocr
@pytest.mark.slow
def test_tiny_run_checkpoints_resumes_and_writes_loadable_weights(tmp_path: Path) -> None:
    work, out = tmp_path / "work", tmp_path / "plate.pth"
    common = ["--no-real", "--synth", "72", "--batch", "4", "--workdir", str(work), "--out", str(out),
              "--eval-every", "1", "--ckpt-every", "1", "--workers", "1", "--quiet", "--warmup", "1",
              "--head-steps", "2"]
    assert train.main(["--steps", "2", *common]) == 0
    for stage in ("head", "full"):
        assert (work / stage / "checkpoint.pt").is_file() and (work / stage / "best.pth").is_file()
    assert out.is_file()
    assert list(work.glob("synth2-*.npz")) and list(work.glob("feat-synth-*.npz"))   # caches
    assert train.main(["--steps", "3", *common]) == 0            # stage 1 done, stage 2 resumes at 2
    import json

    import torch

    ck = torch.load(work / "full" / "checkpoint.pt", weights_only=False)
    assert ck["state"]["step"] == 3
    assert [h["step"] for h in ck["state"]["history"]] == [0, 1, 2, 3]
    report = json.loads((work / "report.json").read_text())
    assert report["selected"]["stage"] in ("head", "full") and report["val_files"] == []
    reader = ocr.load_tuned(out, quantize=False)
    assert len(reader.read([np.full((40, 160), 200, np.uint8)])) == 1


def test_edit_distance() -> None:
    assert train.edit_distance("", "") == 0
    assert train.edit_distance("ABC", "ABC") == 0
    assert train.edit_distance("ABC", "AXC") == 1
    assert train.edit_distance("ABC", "ABCD") == 1
    assert train.edit_distance("KITTEN", "SITTING") == 3


def test_located_crops_match_the_locator_and_augment() -> None:
    """Locator crops of a synthetic frame: the band re-cut from the stored region is the
    locator's own crop, and jittered re-cuts are plausible plate bands."""
    from .lpr_synth_frames import make_frame

    rng = np.random.default_rng(5)
    items = []
    for seed in range(6):
        fr = make_frame(seed, lines=1)
        items += train._located(f"f{seed}.jpg", "plates/xx", fr.text, fr.image, tuple(float(v) for v in fr.box))
    assert len({it.name for it in items}) >= 4
    for it in items:
        again = train.warp_band(it.image, it.quad, it.edges)
        assert again.shape == it.crop.shape
        assert np.abs(again.astype(float) - it.crop).mean() < 4.0
        view = train.augment_located(it, rng)
        assert view.dtype == np.uint8 and view.ndim == 2 and view.shape[1] > view.shape[0]
    best = train.located_views(items, best_only=True)
    assert len(best) == len({it.name for it in items})
    assert all(b.rank == min(i.rank for i in items if i.name == b.name) for b in best)


def test_selection_score_averages_the_validation_sets() -> None:
    kinds = ["crop", "crop", "box", "jitter", "loc"]
    fs = train.FeatureSet(np.zeros((256, 5), np.float16), np.ones(5, int), ["A", "B", "C", "D", "E"])

    class Fake:
        pass

    preds = ["A", "X", "C", "X", "E"]   # crops 1/2, label views 1/2, located 1/1
    orig = train.greedy_from_features
    train.greedy_from_features = lambda model, fs: preds
    try:
        m = train.evaluate(Fake(), fs, kinds)
    finally:
        train.greedy_from_features = orig
    assert m["set:crops"] == 0.5 and m["set:label"] == 0.5 and m["set:located"] == 1.0
    assert m["all"] == 0.6 and abs(m["score"] - 2 / 3) < 1e-3


@pytest.mark.ocr
@pytest.mark.slow
def test_a_continued_round_skips_stage_one_and_starts_from_the_given_weights(tmp_path: Path) -> None:
    import json

    first, work, out = tmp_path / "first.pth", tmp_path / "work", tmp_path / "plate.pth"
    train.save_weights(train.init_from_english_g2(), first)
    assert train.main(["--no-real", "--synth", "72", "--batch", "4", "--workdir", str(work), "--out", str(out),
                       "--eval-every", "1", "--ckpt-every", "1", "--workers", "1", "--quiet", "--warmup", "1",
                       "--init", str(first), "--steps", "1"]) == 0
    assert not (work / "head").exists() and not list(work.glob("feat-*.npz"))   # no stage 1, no feature cache
    report = json.loads((work / "report.json").read_text())
    assert report["init"] == str(first) and report["stage1"]["steps"] == 0
    history = report["stage2"]["history"]
    assert [h["step"] for h in history] == [0, 1]
    # step 0 is the given weights, scored before any training: a round never ships worse than its start
    assert report["selected"]["stage"] == "full" and report["stage2"]["best_val"] >= history[0]["score"]
    assert ocr.load_tuned(out, quantize=False) is not None


def _tiny_stage(tmp_path: Path, steps: int, ema: float, seen: list):
    """run_stage on a one-parameter model pulled towards 3.0, every validated network recorded."""
    import argparse

    import torch

    torch.manual_seed(0)
    model = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        model.weight.fill_(0.0)
    args = argparse.Namespace(workdir=tmp_path, fresh=False, quiet=True, ema=ema, seed=1, warmup=1,
                              eval_every=1, ckpt_every=1, stop_at=0)

    def step_fn(rng) -> float:
        loss = ((model.weight - 3.0) ** 2).sum()
        loss.backward()
        return float(loss.detach())

    def eval_fn(net) -> dict:
        w = float(net.weight.detach())
        seen.append(w)
        return {"score": 1.0 / (1.0 + abs(w - 3.0))}

    state = train.run_stage("tiny", model, list(model.parameters()), steps, 0.1, args, step_fn, eval_fn)
    return model, state


def test_ema_validates_and_keeps_the_moving_average_and_resumes_it(tmp_path: Path) -> None:
    import torch

    raw_seen: list[float] = []
    raw, _ = _tiny_stage(tmp_path / "raw", 3, 0.0, raw_seen)
    avg_seen: list[float] = []
    _, state = _tiny_stage(tmp_path / "avg", 3, 0.5, avg_seen)
    # the same trajectory of raw weights; what is judged is the average of them, which lags
    expect, avg = [0.0], 0.0
    for w in raw_seen[1:]:
        avg = 0.5 * avg + 0.5 * w
        expect.append(avg)
    assert avg_seen == pytest.approx(expect) and avg_seen[-1] < raw_seen[-1]
    best = torch.load(tmp_path / "avg" / "tiny" / "best.pth")
    assert float(best["module.weight"]) == pytest.approx(expect[state["best_step"]])
    # interrupted after two steps, resumed to three: the same averages as one go
    resumed: list[float] = []
    _tiny_stage(tmp_path / "again", 2, 0.5, resumed)
    _tiny_stage(tmp_path / "again", 3, 0.5, resumed)
    assert resumed == pytest.approx(expect)


def _printed(text: str, gap: int = 14) -> np.ndarray:
    """Dark characters on a light plate, each drawn on its own so the spacing is known."""
    import cv2

    img = np.full((64, 20 + len(text) * (30 + gap)), 225, np.uint8)
    for i, ch in enumerate(text):
        cv2.putText(img, ch, (12 + i * (30 + gap), 50), cv2.FONT_HERSHEY_SIMPLEX, 1.4, 20, 4)
    return img


def test_shuffling_moves_whole_glyphs_within_their_kind() -> None:
    text = "ABC1234"
    img = _printed(text)
    spans_in = train.character_spans(img)
    assert len(spans_in) == len(text)
    rng = np.random.default_rng(3)
    out, new = train.shuffle_characters(img, text, rng)
    assert new != text and sorted(new) == sorted(text)
    assert all(a.isdigit() == b.isdigit() for a, b in zip(text, new))
    assert out.shape == img.shape
    # every glyph arrives whole: the new image is the new text printed the same way
    spans_out = train.character_spans(out)
    assert len(spans_out) == len(text)
    for i, ch in enumerate(new):
        (a, b), (c, d) = spans_out[i], spans_in[text.index(ch)]
        assert np.array_equal(out[:, a:b], img[:, c:d])


def test_shuffling_leaves_crops_it_cannot_segment_alone() -> None:
    rng = np.random.default_rng(4)
    touching = _printed("ABC1234", gap=-8)
    assert train.shuffle_characters(touching, "ABC1234", rng)[1] == "ABC1234"
    wrong_count = _printed("ABC123")
    out, new = train.shuffle_characters(wrong_count, "ABC1234", rng)
    assert new == "ABC1234" and out is wrong_count
    short = _printed("A1")
    assert train.shuffle_characters(short, "A1", rng)[1] == "A1"


def _two_step_round(tmp_path: Path, *extra: str) -> Path:
    """A two-step continued round from english_g2 with ``extra`` options; returns its workdir
    (the selected weights go to ``tmp_path / "plate.pth"``)."""
    first, work = tmp_path / "first.pth", tmp_path / "work"
    train.save_weights(train.init_from_english_g2(), first)
    assert train.main([*extra, "--synth", "24", "--workdir", str(work), "--out", str(tmp_path / "plate.pth"),
                       "--eval-every", "2", "--ckpt-every", "2", "--workers", "1", "--quiet", "--warmup", "1",
                       "--init", str(first), "--steps", "2"]) == 0
    return work


def test_a_round_with_real_crops_shuffles_the_given_share(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import json

    import cv2

    folder = tmp_path / "data" / "plate-crops" / "xx"
    folder.mkdir(parents=True)
    with open(folder / "labels.csv", "w", newline="") as fh:
        rows = csv.writer(fh)
        rows.writerow(["file", "state", "plate"])
        for i in range(12):
            text = f"{'ABCDEFGHJKLM'[i]}{'NPRSTUVWXYZA'[i]}{i % 10}{(3 * i) % 10}{(7 * i + 1) % 10}"
            cv2.imwrite(str(folder / f"p{i}.png"), _printed(text))
            rows.writerow([f"p{i}.png", "xx", text])
    calls: list[tuple[str, str]] = []
    real_shuffle = train.shuffle_characters

    def counting(image, text, rng):
        out = real_shuffle(image, text, rng)
        calls.append((text, out[1]))
        return out

    monkeypatch.setattr(train, "shuffle_characters", counting)
    work = _two_step_round(tmp_path, "--data", str(tmp_path / "data"), "--no-located", "--batch", "6",
                           "--real-frac", "0.5", "--shuffle-chars", "1.0")
    assert len(calls) == 2 * 3                       # every real crop of both steps' batches
    assert any(a != b for a, b in calls)             # and printed plates do get rearranged
    assert json.loads((work / "report.json").read_text())["shuffle_chars"] == 1.0


def test_feature_dropout_is_the_plain_forward_at_zero_and_perturbs_it_otherwise() -> None:
    import torch

    model = train.init_from_english_g2()
    model.eval()
    x = ocr.batch_tensor([ocr.normalize_crop(_printed("ABC1234"))])
    with torch.no_grad():
        plain = model(x, None)
        torch.manual_seed(0)
        same = train.dropped_logits(model, x, 0.0)
        noisy = train.dropped_logits(model, x, 0.5)
    assert torch.allclose(plain, same, atol=1e-5)
    assert plain.shape == noisy.shape and not torch.allclose(plain, noisy, atol=1e-3)


def test_a_round_with_feature_dropout_trains_and_records_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import json

    rates: list[float] = []
    real_dropped = train.dropped_logits

    def counting(model, x, p):
        rates.append(p)
        return real_dropped(model, x, p)

    monkeypatch.setattr(train, "dropped_logits", counting)
    work = _two_step_round(tmp_path, "--no-real", "--batch", "4", "--feature-dropout", "0.25")
    assert rates and set(rates) == {0.25}            # every training chunk of both steps
    assert json.loads((work / "report.json").read_text())["feature_dropout"] == 0.25
    assert ocr.load_tuned(tmp_path / "plate.pth").read([_printed("AB123")])[0] is not None   # loads as usual
    with pytest.raises(SystemExit):
        train.parse_args(["--feature-dropout", "1.0"])


def test_a_round_stopped_at_a_step_keeps_its_schedule_and_records_it(tmp_path: Path) -> None:
    """``--stop-at`` ends the stage early (a round cut short for time can be rebuilt exactly):
    the history ends at that step and the report says where it stopped."""
    import json

    import torch

    work = _two_step_round(tmp_path, "--no-real", "--batch", "4", "--stop-at", "1")
    ck = torch.load(work / "full" / "checkpoint.pt", weights_only=False)
    assert ck["state"]["step"] == 1 and [h["step"] for h in ck["state"]["history"]] == [0, 1]
    assert json.loads((work / "report.json").read_text())["stop_at"] == 1
