//! Property: any text and any bytes written by pgclipper's CSV encoder come back out of a real
//! Postgres COPY unchanged, NULL stays NULL and the empty string stays empty.

use bytes::Bytes;
use futures_util::SinkExt;
use mysql_async::Value;
use pgclipper::mapping::Conversion;
use pgclipper::source::row::ValueRef;
use proptest::prelude::*;

/// Strings dense in what CSV and COPY treat specially.
fn tricky_text() -> impl Strategy<Value = Option<String>> {
    let piece = prop_oneof![
        Just(",".to_string()),
        Just("\"".to_string()),
        Just("\r".to_string()),
        Just("\n".to_string()),
        Just("\\".to_string()),
        Just("\\N".to_string()),
        Just("\\.".to_string()),
        Just("NULL".to_string()),
        Just(" ".to_string()),
        Just("".to_string()),
        "[a-zé😀\t]{0,3}",
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(String::from),
    ];
    proptest::option::weighted(
        0.85,
        proptest::collection::vec(piece, 0..8).prop_map(|p| p.concat()),
    )
}

fn encode(rows: &[(Option<String>, Option<Vec<u8>>)]) -> Vec<u8> {
    let text = Conversion::Text { max_chars: None };
    let bytea = Conversion::Bytea;
    let mut out = Vec::new();
    for (i, (t, b)) in rows.iter().enumerate() {
        out.extend_from_slice(format!("{i},").as_bytes());
        let v = t
            .as_ref()
            .map_or(Value::NULL, |s| Value::Bytes(s.clone().into_bytes()));
        text.encode(&ValueRef::from(&v), &mut out).unwrap();
        out.push(b',');
        let v = b.as_ref().map_or(Value::NULL, |b| Value::Bytes(b.clone()));
        bytea.encode(&ValueRef::from(&v), &mut out).unwrap();
        out.push(b'\n');
    }
    out
}

/// A new Postgres database and a client on it, with the runtime that drives the client.
fn fresh_database(prefix: &str) -> (tokio::runtime::Runtime, tokio_postgres::Client) {
    let db = crate::common::unique(prefix);
    crate::common::create_pg_db(&db);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&crate::common::postgres_url(&db), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        client
    });
    (runtime, client)
}

#[test]
fn any_text_and_bytes_survive_copy() {
    let (runtime, client) = fresh_database("csvprop");
    runtime
        .block_on(client.batch_execute("CREATE TABLE t (i int, v text, b bytea)"))
        .unwrap();
    let config = ProptestConfig {
        cases: 300,
        ..ProptestConfig::default()
    };
    proptest!(config, |(rows in proptest::collection::vec(
        (tricky_text(), proptest::option::weighted(0.8, proptest::collection::vec(any::<u8>(), 0..40))),
        1..20,
    ))| {
        let csv = encode(&rows);
        let back: Vec<(Option<String>, Option<Vec<u8>>)> = runtime.block_on(async {
            client.batch_execute("TRUNCATE t").await.unwrap();
            let sink = client.copy_in::<_, Bytes>("COPY t FROM STDIN WITH (FORMAT csv)").await.unwrap();
            futures_util::pin_mut!(sink);
            sink.send(Bytes::from(csv)).await.unwrap();
            let n = sink.as_mut().finish().await.unwrap();
            assert_eq!(n as usize, rows.len());
            client
                .query("SELECT v, b FROM t ORDER BY i", &[])
                .await
                .unwrap()
                .iter()
                .map(|r| (r.get(0), r.get(1)))
                .collect()
        });
        prop_assert_eq!(back, rows);
    });
}

/// Near-JSON built from the tokens where validators disagree: escapes, surrogates,
/// numbers, nesting, stray punctuation.
fn near_json() -> impl Strategy<Value = String> {
    let token = prop_oneof![
        Just("{".to_string()),
        Just("}".to_string()),
        Just("[".to_string()),
        Just("]".to_string()),
        Just(",".to_string()),
        Just(":".to_string()),
        Just("\"k\"".to_string()),
        Just("\"".to_string()),
        Just("\\u0000".to_string()),
        Just("\\ud83d".to_string()),
        Just("\\ude00".to_string()),
        Just("\\n".to_string()),
        Just("\\x".to_string()),
        Just("0".to_string()),
        Just("-".to_string()),
        Just("1.5e-3".to_string()),
        Just("01".to_string()),
        Just("true".to_string()),
        Just("nul".to_string()),
        Just(" ".to_string()),
        "[a-z\t]{0,2}",
    ];
    proptest::collection::vec(token, 1..12).prop_map(|t| t.concat())
}

/// Valid JSON documents whose strings carry every escape, surrogate pairs and `\u0000`.
fn valid_json() -> impl Strategy<Value = String> {
    let string = proptest::collection::vec(
        prop_oneof![
            Just("\\u0000".to_string()),
            Just("\\ud83d\\ude00".to_string()),
            Just("\\\"".to_string()),
            Just("\\\\".to_string()),
            Just("\\/\\b\\f\\n\\r\\t".to_string()),
            Just("é😀".to_string()),
            "[a-z ,:]{0,3}",
        ],
        0..4,
    )
    .prop_map(|p| format!("\"{}\"", p.concat()));
    let leaf = prop_oneof![
        string.clone(),
        Just("null".to_string()),
        Just("false".to_string()),
        Just("-0.5E+300".to_string()),
        Just("123456789012345678901234567890".to_string()),
    ];
    leaf.prop_recursive(8, 64, 4, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4)
                .prop_map(|v| format!("[{}]", v.join(","))),
            proptest::collection::vec((string.clone(), inner), 0..4).prop_map(|v| {
                let members: Vec<String> =
                    v.into_iter().map(|(k, v)| format!("{k} : {v}")).collect();
                format!("{{ {} }}", members.join(", "))
            }),
        ]
    })
}

#[test]
fn json_validator_agrees_with_postgres() {
    let (runtime, client) = fresh_database("jsonprop");
    let config = ProptestConfig {
        cases: 1500,
        ..ProptestConfig::default()
    };
    proptest!(config, |(text in prop_oneof![near_json(), valid_json()], jsonb in any::<bool>())| {
        let cast = if jsonb { "jsonb" } else { "json" };
        let postgres_accepts = runtime
            .block_on(client.query(&format!("SELECT $1::text::{cast}"), &[&text]))
            .is_ok();
        let ours = pgclipper::encode::json::validate(text.as_bytes(), jsonb);
        prop_assert_eq!(ours.is_ok(), postgres_accepts, "{} as {}: {:?}", text, cast, ours);
    });
}
