//! Property: any text and any bytes written by pgferry's CSV encoder come back out of a real
//! Postgres COPY unchanged, NULL stays NULL and the empty string stays empty.

mod common;

use bytes::Bytes;
use futures_util::SinkExt;
use mysql_async::Value;
use pgferry::encode::Conversion;
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
        text.encode(&v, &mut out).unwrap();
        out.push(b',');
        let v = b.as_ref().map_or(Value::NULL, |b| Value::Bytes(b.clone()));
        bytea.encode(&v, &mut out).unwrap();
        out.push(b'\n');
    }
    out
}

#[test]
fn any_text_and_bytes_survive_copy() {
    let db = common::unique("csvprop");
    common::create_pg_db(&db);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(async {
        let (client, conn) =
            tokio_postgres::connect(&common::postgres_url(&db), tokio_postgres::NoTls)
                .await
                .unwrap();
        tokio::spawn(conn);
        client
            .batch_execute("CREATE TABLE t (i int, v text, b bytea)")
            .await
            .unwrap();
        client
    });
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
