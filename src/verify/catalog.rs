//! What rows do not show: every key, constraint and index of the loaded tables as the
//! ledger recorded it before the load, every foreign key present and validated, every
//! sequence a loaded column draws from (identity, serial, or any default `nextval`, owned
//! or not) past the column's maximum, and the row count of every target table.

use tokio_postgres::Client;

use crate::catalog::pg_ident;
use crate::catalog::postgres::{sequences_drawn, DrawnSequence};
use crate::error::{Error, Result};
use crate::sink::{ledger, ObjectKind};

/// One check and its outcome.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Finding {
    pub check: &'static str,
    pub ok: bool,
    pub detail: String,
}

/// A target table's row count; tables the plan did not load are reported, not judged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableCount {
    pub table: String,
    pub rows: i64,
    pub planned: bool,
}

fn failed(check: &'static str, detail: String) -> Finding {
    Finding {
        check,
        ok: false,
        detail,
    }
}

/// Runs every check on the loaded `tables` (qualified names) of `schema`. `plan_id` is the
/// plan whose ledger records the objects as they were, when the target knows it.
pub async fn check(
    client: &Client,
    plan_id: Option<&str>,
    tables: &[String],
    schema: &str,
) -> Result<(Vec<Finding>, Vec<TableCount>)> {
    let context = "verifying the target's catalog";
    let mut findings = Vec::new();
    // Keys, constraints, indexes and foreign keys as recorded before the load.
    let recorded = match plan_id {
        Some(id) => ledger::recorded_objects(client, id).await?,
        None => Vec::new(),
    };
    for object in &recorded {
        let now: Option<String> = match object.kind {
            ObjectKind::Index => client
                .query_opt(
                    "SELECT pg_get_indexdef(c.oid) FROM pg_class c
                     WHERE c.oid = to_regclass($1) AND c.relkind = 'i'",
                    &[&object.name],
                )
                .await
                .map_err(Error::postgres(context))?
                .map(|r| r.get(0)),
            // Spelled as `post::deferred` records it.
            _ => client
                .query_opt(
                    "SELECT pg_get_constraintdef(oid) FROM pg_constraint
                     WHERE conrelid = to_regclass($1) AND conname = $2",
                    &[&object.table, &object.name],
                )
                .await
                .map_err(Error::postgres(context))?
                .map(|r| {
                    let definition: String = r.get(0);
                    let (table, name) = (&object.table, pg_ident(&object.name));
                    format!("ALTER TABLE {table} ADD CONSTRAINT {name} {definition}")
                }),
        };
        let what = format!("{} {} on {}", object.kind, object.name, object.table);
        match now {
            None => findings.push(failed(
                "as recorded before the load",
                format!("{what} is missing"),
            )),
            Some(now) if now != object.restore => findings.push(failed(
                "as recorded before the load",
                format!("{what} differs: `{now}`, recorded `{}`", object.restore),
            )),
            Some(_) => {}
        }
    }
    if plan_id.is_some() && findings.is_empty() {
        findings.push(Finding {
            check: "as recorded before the load",
            ok: true,
            detail: format!(
                "{} keys, constraints, indexes and foreign keys",
                recorded.len()
            ),
        });
    }
    // Foreign keys from or to the loaded tables, validated; indexes valid.
    let invalid = client
        .query(
            "SELECT conrelid::regclass::text, conname::text FROM pg_constraint
             WHERE contype = 'f' AND NOT convalidated
               AND (conrelid = ANY($1::text[]::regclass[]) OR confrelid = ANY($1::text[]::regclass[]))
             UNION ALL
             SELECT indrelid::regclass::text, indexrelid::regclass::text FROM pg_index
             WHERE NOT indisvalid AND indrelid = ANY($1::text[]::regclass[])
             ORDER BY 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(context))?;
    for row in &invalid {
        let (table, name): (String, String) = (row.get(0), row.get(1));
        findings.push(failed(
            "validated",
            format!("{name} on {table} is not valid (NOT VALID foreign key or invalid index)"),
        ));
    }
    if invalid.is_empty() {
        findings.push(Finding {
            check: "validated",
            ok: true,
            detail: "every foreign key and index of the loaded tables is valid".into(),
        });
    }
    findings.extend(sequences(client, tables).await?);
    let counts = row_counts(client, tables, schema).await?;
    Ok((findings, counts))
}

/// Every sequence a loaded column draws from must hand out a value past the column's max.
async fn sequences(client: &Client, tables: &[String]) -> Result<Vec<Finding>> {
    let context = "verifying sequences";
    let drawn = sequences_drawn(client, tables).await?;
    let mut findings = Vec::new();
    for DrawnSequence {
        table,
        column,
        sequence,
    } in &drawn
    {
        let state = client
            .query_one(
                &format!(
                    "SELECT (SELECT max({})::numeric FROM {table})::text,
                            (CASE WHEN s.is_called THEN s.last_value + p.seqincrement ELSE s.last_value END)::text
                     FROM {sequence} s, pg_sequence p WHERE p.seqrelid = '{}'::regclass",
                    pg_ident(column),
                    sequence.replace('\'', "''")
                ),
                &[],
            )
            .await
            .map_err(Error::postgres(context))?;
        let max: Option<String> = state.get::<_, Option<String>>(0);
        let next: String = state.get(1);
        let past = match &max {
            None => true,
            Some(max) => compare_integers(&next, max) == std::cmp::Ordering::Greater,
        };
        let detail = format!(
            "{sequence} (for {table}.{column}) hands out {next} next; the column's max is {}",
            max.as_deref().unwrap_or("NULL (empty)")
        );
        findings.push(Finding {
            check: "sequences past the loaded values",
            ok: past,
            detail,
        });
    }
    Ok(findings)
}

/// Integers in decimal text, compared by value.
fn compare_integers(a: &str, b: &str) -> std::cmp::Ordering {
    match (a.parse::<i128>(), b.parse::<i128>()) {
        (Ok(a), Ok(b)) => a.cmp(&b),
        _ => a.len().cmp(&b.len()).then(a.cmp(b)),
    }
}

/// The row count of every table of `schema`.
async fn row_counts(client: &Client, planned: &[String], schema: &str) -> Result<Vec<TableCount>> {
    let context = "counting the target's rows";
    let tables = client
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), c.oid = ANY($2::text[]::regclass[])
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1 AND c.relkind IN ('r', 'p') ORDER BY 1",
            &[&schema, &planned],
        )
        .await
        .map_err(Error::postgres(context))?;
    let mut counts = Vec::new();
    for row in &tables {
        let (table, planned): (String, bool) = (row.get(0), row.get(1));
        let rows: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .await
            .map_err(Error::postgres(context))?
            .get(0);
        counts.push(TableCount {
            planned,
            table,
            rows,
        });
    }
    Ok(counts)
}
