import pytest

from appliance.formats.canonical import CanonicalFormError, canonical_bytes


def test_keys_sorted_no_whitespace_utf8_raw():
    assert canonical_bytes({"b": 1, "a": [True, None, "Łódź"]}) == (
        '{"a":[true,null,"Łódź"],"b":1}'.encode()
    )


def test_control_characters_use_short_escapes():
    assert canonical_bytes({"t": 'a\nb\t\x01"\\'}) == b'{"t":"a\\nb\\t\\u0001\\"\\\\"}'


@pytest.mark.parametrize(
    "value",
    [{"price": 1.5}, {"n": 2**53}, {"n": -(2**53)}, {"ł": 1}, {1: 2}, {"x": object()}],
)
def test_values_outside_the_canonical_subset_are_refused(value):
    with pytest.raises(CanonicalFormError):
        canonical_bytes(value)


def test_largest_safe_integer_is_allowed():
    assert canonical_bytes([2**53 - 1, -(2**53 - 1)]) == b"[9007199254740991,-9007199254740991]"


from hypothesis import given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from appliance.formats.canonical import canonical_text  # noqa: E402
from appliance.formats.chain import (  # noqa: E402
    Event,
    envelope,
    envelope_hash,
    event_hash,
    line_hash_matches,
)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53 - 1), 2**53 - 1) | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.text(alphabet=st.characters(max_codepoint=127), max_size=8), children, max_size=4
        )
    ),
    max_leaves=20,
)


# a payload, a text and a number the envelope's fields are made from (_fields)
any_event = given(
    st.dictionaries(st.text(alphabet="abcdefgh_", min_size=1), json_values, max_size=5),
    st.text(),
    st.integers(0, 2**53 - 1),
)


def _fields(text, number):
    return dict(
        seq=number,
        event_id=text,
        device_id=text[::-1],
        type="sale.completed",
        wall_ms=number,
        boot_id=text,
        mono_us=number,
        prev_hash="ab" * 32,
    )


@any_event
def test_writer_fast_hash_equals_the_specified_hash(payload, text, number):
    fields = _fields(text, number)
    specified = event_hash(envelope(payload=payload, **fields))
    assert envelope_hash(payload_text=canonical_text(payload), **fields) == specified


@any_event
def test_export_line_is_the_canonical_export_form_and_verifies(payload, text, number):
    """The one export encoder against the specified bytes (canonical JSON of to_json),
    and the one fast verifier: it accepts that line and refuses any other hash."""
    env = envelope(payload=payload, **_fields(text, number))
    event = Event.from_json({**env, "hash": event_hash(env)})
    line = event.export_line()
    assert line == canonical_bytes(event.to_json())
    assert line_hash_matches(line, event.hash)
    other = "cd" * 32
    assert not line_hash_matches(line.replace(event.hash.encode(), other.encode()), other)
    assert not line_hash_matches(line, 7)


# -- the strict reader (issue 11, finding 4) ---------------------------------------------
from appliance.formats.canonical import NotJSONError, parse_canonical  # noqa: E402


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b'{"a":1,"a":1}', "duplicate key 'a'"),
        (b'{"a":{"b":1,"b":2}}', "duplicate key 'b'"),
        (b'{"seq":7.0}', "not an integer"),
        (b'{"n":1e3}', "not an integer"),
        (b'{"n":NaN}', "not a JSON value"),
        (b'{"a": 1}', "not in canonical form"),
        (b'{"b":1,"a":2}', "not in canonical form"),
        (b'{"a":"\\u0041"}', "not in canonical form"),
        (b'{"a":"caf\\u00e9"}', "not in canonical form"),
        (b'{"a":-0}', "not in canonical form"),
        (b'{"a":1} ', "not in canonical form"),
        (b'{"qty":18446744073709551615}', "outside"),
        (b'{"qty":9007199254740992}', "outside"),
        (b"[-9007199254740992]", "outside"),
        ('{"ł":1}'.encode(), "ASCII"),
    ],
)
def test_parse_canonical_refuses_every_other_spelling(data, why):
    with pytest.raises(CanonicalFormError, match=why):
        parse_canonical(data)


@pytest.mark.parametrize("data", [b'{"a":', b"\xff", b"[" * 100_000, b"", b"1" * 5000])
def test_parse_canonical_says_not_json(data):
    with pytest.raises(NotJSONError):
        parse_canonical(data)


@given(json_values)
def test_parse_canonical_accepts_exactly_canonical_bytes(value):
    assert parse_canonical(canonical_bytes(value)) == value
