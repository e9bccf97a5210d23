//! Property tests: round trips, and no panic on any input.

use std::collections::HashSet;

use proptest::prelude::*;

use crate::xmlrpc::{Value, parse_call, write_call, write_fault, write_response};

/// Strings as they survive XML: a carriage return is read back as a line feed
/// (by expat as by us), so it is left out.
const TEXT: &str = "[^\r]{0,24}";

fn dedup_members(members: Vec<(String, Value)>) -> Vec<(String, Value)> {
    let mut seen = HashSet::new();
    members
        .into_iter()
        .filter(|(k, _)| seen.insert(k.clone()))
        .collect()
}

fn value() -> impl Strategy<Value = Value> {
    use proptest::num::f64 as float;
    let leaf = prop_oneof![
        any::<i32>().prop_map(Value::Int),
        any::<bool>().prop_map(Value::Bool),
        TEXT.prop_map(Value::String),
        (float::NORMAL
            | float::SUBNORMAL
            | float::ZERO
            | float::INFINITE
            | float::NEGATIVE
            | float::POSITIVE)
            .prop_map(Value::Double),
        "[0-9]{8}T[0-9]{2}:[0-9]{2}:[0-9]{2}".prop_map(Value::DateTime),
        prop::collection::vec(any::<u8>(), 0..130).prop_map(Value::Base64),
        Just(Value::Nil),
    ];
    leaf.prop_recursive(5, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((TEXT, inner), 0..6)
                .prop_map(|m| Value::Struct(dedup_members(m))),
        ]
    })
}

/// Equality that also holds for NaN doubles.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Double(x), Value::Double(y)) => x == y || (x.is_nan() && y.is_nan()),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Struct(x), Value::Struct(y)) => {
            x.len() == y.len()
                && x.iter()
                    .zip(y)
                    .all(|((ka, a), (kb, b))| ka == kb && same(a, b))
        }
        _ => a == b,
    }
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Bytes that matter to XML, plus anything.
    let byte = prop_oneof![
        prop::sample::select(b"<>/&;#=\"'![]?-x0 \n".to_vec()),
        any::<u8>(),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(i, b)| Mutation::Flip(i, b)),
        (any::<usize>(), byte).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<usize>().prop_map(Mutation::Remove),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(body: &mut Vec<u8>, m: &Mutation) {
    if body.is_empty() {
        return;
    }
    match *m {
        Mutation::Flip(i, b) => {
            let i = i % body.len();
            body[i] = b;
        }
        Mutation::Insert(i, b) => body.insert(i % (body.len() + 1), b),
        Mutation::Remove(i) => {
            body.remove(i % body.len());
        }
        Mutation::Truncate(i) => body.truncate(i % body.len()),
    }
}

/// Whatever parsed can be written back and parsed again.
fn rewrite_parses(body: &[u8]) {
    if let Ok(call) = parse_call(body) {
        let again = write_call(&call.method, &call.params);
        let reparsed = parse_call(&again);
        assert!(
            reparsed.is_ok(),
            "{call:?} wrote {:?}: {reparsed:?}",
            String::from_utf8_lossy(&again)
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn calls_round_trip(method in "[^\r]{1,24}", params in prop::collection::vec(value(), 0..4)) {
        let body = write_call(&method, &params);
        let call = parse_call(&body).map_err(|e| TestCaseError::fail(format!("{e} in {}", String::from_utf8_lossy(&body))))?;
        prop_assert_eq!(&call.method, &method);
        prop_assert!(
            call.params.len() == params.len() && call.params.iter().zip(&params).all(|(a, b)| same(a, b)),
            "{:?} != {:?}", call.params, params
        );
    }

    #[test]
    fn writers_never_panic(v in value(), code in any::<i32>(), s in any::<String>()) {
        prop_assert!(write_response(&v).starts_with(b"<?xml version='1.0'?>\n<methodResponse>\n"));
        prop_assert!(write_fault(code, &s).ends_with(b"</fault>\n</methodResponse>\n"));
    }

    #[test]
    fn random_bytes_never_panic(body in prop::collection::vec(any::<u8>(), 0..512)) {
        rewrite_parses(&body);
    }

    #[test]
    fn random_text_with_markup_never_panics(body in "(<[/?!]?(methodCall|methodName|params|param|value|int|i8|string|struct|member|name|array|data|base64|nil|double|boolean)/?>|[a-z0-9 &;#<>=\"'\\[\\]!-]){0,60}") {
        rewrite_parses(body.as_bytes());
    }

    #[test]
    fn mutated_calls_never_panic(
        method in "[a-zA-Z.]{1,12}",
        params in prop::collection::vec(value(), 0..3),
        mutations in prop::collection::vec(mutation(), 1..6),
    ) {
        let mut body = write_call(&method, &params);
        for m in &mutations {
            apply(&mut body, m);
        }
        rewrite_parses(&body);
    }
}
