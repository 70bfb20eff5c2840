//! Sequences after the load: every sequence a loaded column draws from (identity, serial,
//! or any default `nextval`, owned or not) set past the maximum of every loaded column that
//! draws from it, so the application's next insert does not collide with a copied row; the
//! state before is saved in the ledger, for `reset` to put back.

use std::collections::BTreeMap;

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::catalog::postgres::sequences_drawn;
use crate::error::{Error, Result};
use crate::sink::ledger::{self, SequenceState};

/// Sets each sequence the columns of `tables` (qualified) draw from to the largest value
/// among those columns. A sequence's state before is saved in the ledger first (once: a
/// resumed run keeps the original), so `reset` can put it back. Returns how many moved.
pub async fn advance(client: &Client, plan_id: &str, tables: &[String]) -> Result<usize> {
    let mut by_sequence: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
    for drawn in sequences_drawn(client, tables).await? {
        by_sequence
            .entry(drawn.sequence)
            .or_default()
            .push((drawn.table, drawn.column));
    }
    let mut moved = 0;
    for (sequence, columns) in &by_sequence {
        let context = format!("advancing the sequence {sequence}");
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
        // A sequence shared by several columns or tables ends past the largest of them.
        let maxima: Vec<String> = columns
            .iter()
            .map(|(table, column)| {
                format!("(SELECT max({})::bigint FROM {table})", pg_ident(column))
            })
            .collect();
        let max = client
            .query_one(&format!("SELECT greatest({})", maxima.join(", ")), &[])
            .await
            .map_err(Error::postgres(&context))?;
        if let Some(max) = max.get::<_, Option<i64>>(0) {
            client
                .execute(
                    "SELECT setval($1::text::regclass, $2, true)",
                    &[sequence, &max],
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
