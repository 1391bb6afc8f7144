"""Region formats: look-alike correction where a pattern demands it, scoring, voting."""
import pytest

from parkinglot.lpr import formats


def test_brazil_old_and_mercosur_are_corrected_positionwise():
    assert formats.correct("AB01234", "br") == "ABO1234"  # the third character must be a letter
    assert formats.correct("ABC1D2B", "br") == "ABC1D28"  # Mercosur: LLL9L99
    assert formats.correct("A8C1234", "br") == "ABC1234"


def test_us_generic_is_never_forced():
    assert formats.correct("8OB1", "us") == "8OB1"
    ranked = formats.score_candidates([("ABC1234", 0.8), ("A8C1234", 0.82)], "us")
    assert ranked[0].text == "ABC1234"  # common serial fits, the other only the generic pattern


def test_all_letter_words_rank_below_plates_but_stay_readable():
    """A state name or slogan read as confidently as the plate must not win; a lone
    all-letter reading (a vanity plate) is still returned."""
    ranked = formats.score_candidates([("OREGON", 0.9), ("7XK412", 0.85)], "us")
    assert ranked[0].text == "7XK412"
    assert formats.score_candidates([("VANITY", 0.9)], "us")[0].text == "VANITY"


def test_eu_formats():
    assert formats.correct("AB123CD", "eu") == "AB123CD"  # France / Italy
    assert formats.correct("1234BCD", "eu") == "1234BCD"  # Spain
    assert formats.matches_region("BAB1234", "eu")  # Germany, written without separators
    assert formats.correct("AB12CDE", "eu") == "AB12CDE"  # United Kingdom


def test_fit_rejects_impossible_characters():
    assert formats.fit("ABX1234", "@@@####") == ("ABX1234", 0)
    assert formats.fit("ABXX234", "@@@####") is None
    assert formats.fit("AB", "@@@") is None


def test_scoring_prefers_confident_and_cheap_fits():
    ranked = formats.score_candidates([("ABC1234", 0.6), ("ABC12B4", 0.61)], "br")
    assert ranked[0].text == "ABC1234"
    assert all(r.score <= ranked[0].score for r in ranked)


def test_unknown_region_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown region"):
        formats.formats_for("mars")


def test_vote_across_frames_by_character():
    readings = [("ABC1234", (0.9,) * 7), ("A8C1234", (0.9, 0.3, 0.9, 0.9, 0.9, 0.9, 0.9)), ("ABC1Z34", (0.9, 0.9, 0.9, 0.9, 0.2, 0.9, 0.9)),
                ("ABC123", (0.5,) * 6)]
    text, confs = formats.vote(readings)
    assert text == "ABC1234" and len(confs) == 7
    assert formats.vote([]) is None


def test_a_swap_costs_more_the_surer_the_reader_was_of_the_character():
    """Formats bend unsure characters only: a reading of a format not on the region's list,
    every character sure, is kept as read; the same reading with its odd character unsure is
    corrected; without per-character confidences a swap costs the flat penalty, as before."""
    sure = formats.score_candidates([("K7MPX", 0.6, (1.0,) * 5)], "eu")
    assert sure[0].text == "K7MPX" and sure[0].format is None
    unsure = formats.score_candidates([("K7MPX2", 0.6, (1.0, 0.2, 1.0, 1.0, 1.0, 1.0))], "eu")
    assert unsure[0].text == "KTMPX2"  # Germany: letters then digits
    assert formats.swap_cost("AB01234", "ABO1234") == pytest.approx(formats.SWAP_PENALTY)
    assert formats.swap_cost("AB01234", "ABO1234", (1,) * 7) > formats.swap_cost("AB01234", "ABO1234", (0.2,) * 7)
    assert formats.swap_cost("AB01234", "AB01234", (1,) * 7) == 0
    # confidences that do not line up with the text are ignored, not misapplied
    assert formats.swap_cost("AB01234", "ABO1234", (1.0,) * 3) == pytest.approx(formats.SWAP_PENALTY)


def test_a_sure_reading_of_an_unlisted_format_outranks_an_unsure_one_that_fits():
    """A lower candidate that fits a listed format wins only when the reader's own preference
    for the top one is weak (within FIT_BONUS + NO_FIT_PENALTY)."""
    ranked = formats.score_candidates([("47KKT82", 0.99, (1.0,) * 7), ("47KT82", 0.001, (1.0,) * 6)], "eu")
    assert ranked[0].text == "47KKT82"
    ranked = formats.score_candidates([("ABC12345", 0.4, (0.9,) * 8), ("ABC1234", 0.35, (0.9,) * 7)], "br")
    assert ranked[0].text == "ABC1234"
