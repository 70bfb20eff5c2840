//! After the load: every sequence owned by a loaded column is set past the column's
//! maximum, so the application's next insert does not collide with a copied row.

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::error::{Error, Result};

/// Sets each owned sequence (serial or identity) of `qualified` to its column's max.
/// Returns how many sequences moved.
pub async fn advance_sequences(client: &Client, qualified: &str) -> Result<usize> {
    let context = format!("advancing the sequences of {qualified}");
    let owned = client
        .query(
            "SELECT a.attname::text, pg_get_serial_sequence($1, a.attname)
             FROM pg_attribute a
             WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND pg_get_serial_sequence($1, a.attname) IS NOT NULL",
            &[&qualified],
        )
        .await
        .map_err(Error::target(&context))?;
    let mut moved = 0;
    for row in owned {
        let column: String = row.get(0);
        let sequence: String = row.get(1);
        let max = client
            .query_one(&format!("SELECT max({})::bigint FROM {qualified}", pg_ident(&column)), &[])
            .await
            .map_err(Error::target(&context))?;
        if let Some(max) = max.get::<_, Option<i64>>(0) {
            client
                .execute("SELECT setval($1::regclass, $2, true)", &[&sequence, &max])
                .await
                .map_err(Error::target(&context))?;
            moved += 1;
        }
    }
    Ok(moved)
}
