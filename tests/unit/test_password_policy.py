"""The one password policy (SPEC section 1 and 6.4): Unicode-aware, NFKC-normalised, every broken rule listed."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from zxcvbn.frequency_lists import FREQUENCY_LISTS

from app.domain.users.password_policy import MAX_LENGTH, MIN_LENGTH, check_password, normalize_password

USERNAME = "maria_k"
EMAIL = "maria.kowalska@example.com"
LONGEST_COMMON_PASSWORD = max(len(word) for word in FREQUENCY_LISTS["passwords"])


def codes(password: str, *, username: str | None = USERNAME, email: str | None = EMAIL) -> list[str]:
    return [issue.code for issue in check_password(password, username=username, email=email)]


@pytest.mark.parametrize(
    "password",
    [
        "Pässwörd€2024",
        "yen¥Secret99",
        "pound£Secret99",
        "密码安全測試9€",
        "Пароль№2024секрет",  # № is Shift+3 on the Russian layout
        "Пароль§2024секрет",
        "Ελληνικά«2024»κωδικός",
    ],
)
def test_unicode_passwords_with_letter_digit_and_special_are_accepted(password: str) -> None:
    assert check_password(password, username=USERNAME, email=EMAIL) == []


@pytest.mark.parametrize("special", ["€", "¥", "£", "§", "«", "—", "・"])
def test_every_special_named_in_the_spec_counts_as_special(special: str) -> None:
    assert codes(f"Kestrel7{special}Harbour") == []


@pytest.mark.parametrize("typed_special", ["№", "™", "¨", "´"])
def test_special_typed_counts_even_when_nfkc_turns_it_into_letters_or_spaces(typed_special: str) -> None:
    # NFKC("№") == "No", NFKC("¨") == " " + combining diaeresis: no P*/S* left after
    # normalising, but the user did type a symbol.
    assert not any(unicodedata.category(c)[0] in "PS" for c in normalize_password(typed_special))
    assert codes(f"Kestrel7{typed_special}Harbour") == []


def test_roman_numeral_typed_counts_as_a_digit() -> None:
    assert normalize_password("\u216b") == "XII"  # ROMAN NUMERAL TWELVE, category Nl
    assert codes("Kestrel!\u216bHarbour") == []


def test_issues_carry_field_and_message() -> None:
    issues = check_password("abc")
    assert issues
    assert all(issue.field == "password" and issue.message for issue in issues)


@pytest.mark.parametrize(
    ("password", "expected"),
    [
        ("Ab1!xyz", "too_short"),
        ("Kestrel7!" + "q" * (MAX_LENGTH + 1 - len("Kestrel7!")), "too_long"),
        ("1234567!?", "missing_letter"),
        ("Kestrel!Harbour", "missing_digit"),
        ("Kestrel7Harbour", "missing_special"),
        ("xxMARIA_Kxx7!", "contains_username"),
        ("Maria.Kowalska7!", "contains_email"),
        ("P@ssw0rd", "too_common"),
        ("password1!", "too_common"),
        ("PASSWORD1!", "too_common"),
        ("P@SSW0RD", "too_common"),
        ("dragon2024!", "too_common"),
    ],
)
def test_each_rule_alone_gives_exactly_its_code(password: str, expected: str) -> None:
    assert codes(password) == [expected]


def test_too_long_is_measured_in_code_points() -> None:
    at_limit = "Kestrel7!" + "ж" * (MAX_LENGTH - len("Kestrel7!"))
    assert len(at_limit) == MAX_LENGTH
    assert codes(at_limit) == []
    assert codes(at_limit + "ж") == ["too_long"]


def test_minimum_length_is_accepted_and_one_less_is_too_short() -> None:
    assert codes("Kstrl7!q") == []
    assert codes("Kstrl7!") == ["too_short"]


def test_common_password_is_matched_case_insensitively() -> None:
    assert "too_common" in codes("PASSWORD")
    assert "too_common" in codes("PaSsWoRd")


def test_username_match_is_case_insensitive_and_ignores_short_usernames() -> None:
    assert codes("Kestrel7!JOHNNY", username="johnny") == ["contains_username"]
    # A two-letter username would forbid those letters everywhere: it is not searched for.
    assert codes("Kestrel7!Harbour", username="ha") == []


def test_email_local_part_is_checked_not_the_domain() -> None:
    assert codes("Kestrel7!EXAMPLE", email="someone@example.com") == []
    assert codes("Kestrel7!SOMEONE", email="someone@example.com") == ["contains_email"]


def test_several_broken_rules_are_all_listed() -> None:
    assert codes("abc") == ["too_short", "missing_digit", "missing_special"]
    assert codes("") == ["too_short", "missing_letter", "missing_digit", "missing_special"]
    assert codes("maria_k", email=None) == ["too_short", "missing_digit", "contains_username"]


def test_full_width_digit_counts_as_digit() -> None:
    full_width_seven = "\uff17"
    assert normalize_password(full_width_seven) == "7"
    assert codes(f"Kestrel{full_width_seven}!Harbour") == []


def test_length_is_counted_after_nfkc() -> None:
    ligature_ffi = "\ufb03"  # one code point, three after NFKC
    short_raw = ligature_ffi * 2 + "9!"  # 4 code points typed, 8 after NFKC
    assert len(short_raw) == 4
    assert codes(short_raw) == []

    long_raw = ligature_ffi * 42 + "9!"  # 44 code points typed, 128 after NFKC
    assert len(normalize_password(long_raw)) == MAX_LENGTH
    assert codes(long_raw) == []
    assert codes(ligature_ffi + long_raw) == ["too_long"]


letters = st.text(st.characters(categories=["L"]), min_size=LONGEST_COMMON_PASSWORD + 4, max_size=60)
digits = st.text(st.characters(categories=["Nd"]), min_size=1, max_size=4)
specials = st.text(st.characters(categories=["P", "S"]), min_size=1, max_size=4)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(core=letters, digit_part=digits, special_part=specials, order=st.permutations([0, 1, 2]))
def test_any_script_letters_with_a_digit_and_a_special_are_accepted(
    core: str, digit_part: str, special_part: str, order: list[int]
) -> None:
    parts = (core, digit_part, special_part)
    password = "".join(parts[i] for i in order)
    normalized = normalize_password(password)
    folded = normalized.casefold()
    assume(MIN_LENGTH <= len(normalized) <= MAX_LENGTH)
    # More letters than the longest listed common password: it cannot be one, nor its core.
    assume(sum(unicodedata.category(c).startswith("L") for c in folded) > LONGEST_COMMON_PASSWORD)
    assume(USERNAME not in folded and "maria.kowalska" not in folded)

    assert check_password(password, username=USERNAME, email=EMAIL) == []
