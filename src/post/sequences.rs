//! Sequences after the load: every sequence owned by a loaded column (serial or identity)
//! set past the column's maximum, so the application's next insert does not collide with
//! a copied row; their state before is saved in the ledger, for `reset` to put back.

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::error::{Error, Result};
use crate::sink::ledger::{self, SequenceState};

/// Sets each owned sequence (serial or identity) of `qualified` to its column's max.
/// The sequence's state before is saved in the ledger first (once: a resumed run keeps the
/// original), so `reset` can put it back. Returns how many sequences moved.
pub async fn advance(client: &Client, plan_id: &str, qualified: &str) -> Result<usize> {
    let context = format!("advancing the sequences of {qualified}");
    let owned = client
        .query(
            "SELECT a.attname::text, pg_get_serial_sequence($1::text, a.attname)
             FROM pg_attribute a
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
               AND pg_get_serial_sequence($1::text, a.attname) IS NOT NULL",
            &[&qualified],
        )
        .await
        .map_err(Error::postgres(&context))?;
    let mut moved = 0;
    for row in owned {
        let column: String = row.get(0);
        let sequence: String = row.get(1);
        let state = client
            .query_one(
                &format!("SELECT last_value, is_called FROM {sequence}"),
                &[],
            )
            .await
            .map_err(Error::postgres(&context))?;
        let before = SequenceState {
            name: sequence.clone(),
            last_value: state.get(0),
            is_called: state.get(1),
        };
        ledger::save_sequence(client, plan_id, &before).await?;
        let max = client
            .query_one(
                &format!("SELECT max({})::bigint FROM {qualified}", pg_ident(&column)),
                &[],
            )
            .await
            .map_err(Error::postgres(&context))?;
        if let Some(max) = max.get::<_, Option<i64>>(0) {
            client
                .execute(
                    "SELECT setval($1::text::regclass, $2, true)",
                    &[&sequence, &max],
                )
                .await
                .map_err(Error::postgres(&context))?;
            moved += 1;
        }
    }
    Ok(moved)
}

/// Puts every sequence the plan moved back where it was. Returns how many.
pub async fn restore(client: &Client, plan_id: &str) -> Result<usize> {
    let saved = ledger::saved_sequences(client, plan_id).await?;
    for state in &saved {
        client
            .execute(
                "SELECT setval($1::text::regclass, $2, $3)",
                &[&state.name, &state.last_value, &state.is_called],
            )
            .await
            .map_err(Error::postgres("restoring sequences"))?;
    }
    Ok(saved.len())
}
