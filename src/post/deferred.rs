//! Keys, constraints, indexes and foreign keys taken off the loaded tables before the load
//! and put back after it: chunks then load in any order, and each index is built once from
//! all rows instead of row by row (primary-key inserts, a random uuid key above all, were a
//! quarter of Postgres' work during the load). Duplicate keys cannot arise from the load
//! (the ledger loads each chunk once), and would still be refused when the key is put back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use std::time::Duration;

use tokio_postgres::{Client, Transaction};

use crate::catalog::pg_ident;
use crate::error::{Error, Result};
use crate::sink::{self, ledger, DeferredObject, LoadOptions, ObjectKind};
use crate::url::DbUrl;
use crate::work::{Failure, Workers};

/// What [`defer_objects`] took off.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deferred {
    pub foreign_keys: usize,
    pub constraints: usize,
    pub indexes: usize,
}

/// Takes off, for the load, every foreign key from or to `tables` (qualified names), and
/// their primary keys, unique and exclusion constraints and secondary indexes. Every
/// object's re-creating statement goes into the ledger in the caller's transaction (the
/// one that records the plan), with its drop, so a crash can never lose one.
/// [`restore_deferred`] puts them back.
pub async fn defer_objects(
    tx: &Transaction<'_>,
    plan_id: &str,
    tables: &[String],
) -> Result<Deferred> {
    let context = "deferring constraints and indexes";
    let mut objects: Vec<(DeferredObject, String)> = Vec::new(); // with the dropping statement
    let constraints = tx
        .query(
            "SELECT format('%I.%I', n.nspname, c.relname), con.conname::text, con.contype::text,
                    pg_get_constraintdef(con.oid),
                    CASE WHEN con.contype = 'f' THEN format('%I.%I', rn.nspname, r.relname) END
             FROM pg_constraint con
             JOIN pg_class c ON c.oid = con.conrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             LEFT JOIN pg_class r ON r.oid = con.confrelid
             LEFT JOIN pg_namespace rn ON rn.oid = r.relnamespace
             WHERE (con.contype = 'f'
                    AND (con.conrelid = ANY($1::text[]::regclass[]) OR con.confrelid = ANY($1::text[]::regclass[])))
                OR (con.contype IN ('p', 'u', 'x') AND con.conrelid = ANY($1::text[]::regclass[]))
             ORDER BY con.contype = 'f' DESC, 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(context))?;
    for row in &constraints {
        let (table, name, kind, definition): (String, String, String, String) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        let name_sql = pg_ident(&name);
        objects.push((
            DeferredObject {
                restore: format!("ALTER TABLE {table} ADD CONSTRAINT {name_sql} {definition}"),
                table: table.clone(),
                name,
                kind: if kind == "f" {
                    ObjectKind::ForeignKey
                } else {
                    ObjectKind::Constraint
                },
                referenced: row.get(4),
            },
            format!("ALTER TABLE {table} DROP CONSTRAINT {name_sql}"),
        ));
    }
    // Indexes that back no constraint (those go with their constraint).
    let indexes = tx
        .query(
            "SELECT format('%I.%I', tn.nspname, t.relname), format('%I.%I', n.nspname, ic.relname),
                    pg_get_indexdef(i.indexrelid)
             FROM pg_index i
             JOIN pg_class ic ON ic.oid = i.indexrelid
             JOIN pg_namespace n ON n.oid = ic.relnamespace
             JOIN pg_class t ON t.oid = i.indrelid
             JOIN pg_namespace tn ON tn.oid = t.relnamespace
             WHERE i.indrelid = ANY($1::text[]::regclass[])
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid)
             ORDER BY 1, 2",
            &[&tables],
        )
        .await
        .map_err(Error::postgres(context))?;
    for row in &indexes {
        let (table, index, definition): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        objects.push((
            DeferredObject {
                table,
                name: index.clone(),
                kind: ObjectKind::Index,
                restore: definition,
                referenced: None,
            },
            format!("DROP INDEX {index}"),
        ));
    }
    let mut deferred = Deferred::default();
    for (object, drop) in &objects {
        ledger::record_deferred(tx, plan_id, object).await?;
        tx.batch_execute(drop)
            .await
            .map_err(Error::postgres(context))?;
        match object.kind {
            ObjectKind::ForeignKey => deferred.foreign_keys += 1,
            ObjectKind::Constraint => deferred.constraints += 1,
            ObjectKind::Index => deferred.indexes += 1,
        }
    }
    Ok(deferred)
}

/// Which deferred object a free session restores next. Keys and indexes go first, largest
/// table first (the longest builds start early). A foreign key waits until the keys and
/// indexes of its own table and of the table it references are back (adding it locks both
/// tables against index builds), not for every table's: its validation overlaps the builds
/// of unrelated tables.
struct RestoreOrder {
    waiting: Vec<DeferredObject>,
    /// Keys and indexes not restored yet (waiting or being built), per table.
    unbuilt: HashMap<String, usize>,
    failed: bool,
}

enum Next {
    Restore(DeferredObject),
    /// Everything left waits for builds in progress.
    Wait,
    Done,
}

impl RestoreOrder {
    /// `objects` ordered keys and indexes first, largest table first.
    fn new(objects: Vec<DeferredObject>) -> Self {
        let mut unbuilt = HashMap::new();
        for o in objects.iter().filter(|o| o.kind != ObjectKind::ForeignKey) {
            *unbuilt.entry(o.table.clone()).or_insert(0) += 1;
        }
        RestoreOrder {
            waiting: objects,
            unbuilt,
            failed: false,
        }
    }

    fn next(&mut self) -> Next {
        if self.failed || self.waiting.is_empty() {
            return Next::Done;
        }
        let built = |table: &str| self.unbuilt.get(table).is_none_or(|&n| n == 0);
        let ready = self.waiting.iter().position(|o| {
            o.kind != ObjectKind::ForeignKey
                || match &o.referenced {
                    Some(referenced) => built(&o.table) && built(referenced),
                    None => self.unbuilt.values().all(|&n| n == 0),
                }
        });
        match ready {
            Some(i) => Next::Restore(self.waiting.remove(i)),
            None => Next::Wait,
        }
    }

    fn restored(&mut self, object: &DeferredObject) {
        if object.kind != ObjectKind::ForeignKey {
            if let Some(n) = self.unbuilt.get_mut(&object.table) {
                *n -= 1;
            }
        }
    }
}

/// Re-creates every object [`defer_objects`] took off for `plan_id`, on up to `sessions`
/// connections at once with a large `maintenance_work_mem` (Postgres validates each
/// foreign key's rows as it adds it, with that memory). Each object leaves the ledger in
/// the transaction that re-creates it. Returns how many objects were restored.
pub async fn restore_deferred(url: &DbUrl, plan_id: &str, options: &LoadOptions) -> Result<usize> {
    let objects = {
        let client = sink::connect(url).await?;
        ledger::deferred_objects(&client, plan_id).await?
    };
    let count = objects.len();
    let began = std::time::Instant::now();
    let under_way = crate::report::record::rebuild_under_way();
    let order = Arc::new(Mutex::new(RestoreOrder::new(objects)));
    let progress = Arc::new(tokio::sync::Notify::new());
    let failure = Failure::new();
    let timeout = options.io_timeout;
    Workers::spawn(options.writers, &failure, "a restoring session", |_| {
        let (order, progress, url, plan_id) = (
            order.clone(),
            progress.clone(),
            url.clone(),
            plan_id.to_string(),
        );
        async move {
            let outcome = restore_worker(&order, &progress, &url, &plan_id, timeout).await;
            if outcome.is_err() {
                // Sessions waiting for this one's build must not wait forever.
                order.lock().expect("restore order lock").failed = true;
                progress.notify_waiters();
            }
            outcome
        }
    })
    .wait()
    .await?;
    crate::report::record::rebuild_phases(began, under_way);
    Ok(count)
}

async fn restore_worker(
    order: &Mutex<RestoreOrder>,
    progress: &tokio::sync::Notify,
    url: &DbUrl,
    plan_id: &str,
    timeout: Duration,
) -> Result<()> {
    let (mut client, mut probe) = (None, None);
    loop {
        // Registered before the order is looked at, so a build finishing in between wakes it.
        let notified = progress.notified();
        let next = order.lock().expect("restore order lock").next();
        let object = match next {
            Next::Done => return Ok(()),
            Next::Wait => {
                notified.await;
                continue;
            }
            Next::Restore(object) => object,
        };
        if client.is_none() {
            let c = sink::connect(url).await?;
            c.batch_execute("SET maintenance_work_mem = '1GB'")
                .await
                .map_err(Error::postgres("raising maintenance_work_mem"))?;
            client = Some(c);
            probe = Some(sink::connect(url).await?);
        }
        let client = client.as_mut().expect("connected above");
        let probe = probe.as_ref().expect("connected above");
        let DeferredObject {
            table, name, kind, ..
        } = &object;
        let context = format!("restoring {kind} {name} on {table}");
        let started = std::time::Instant::now();
        let tx = client
            .transaction()
            .await
            .map_err(Error::postgres(&context))?;
        // A build may rightly take long, so it has no time limit of its own; a server that
        // stops answering must still end the run: another session asks it, again and again.
        tokio::select! {
            built = tx.batch_execute(&object.restore) => built.map_err(Error::postgres(&context))?,
            dead = server_stops_answering(probe, timeout, &context) => return Err(dead),
        }
        ledger::restored(&tx, plan_id, &object).await?;
        tx.commit().await.map_err(Error::postgres(&context))?;
        tracing::info!(table = %table, object = %name, kind = %kind, seconds = started.elapsed().as_secs_f64(), "Restored.");
        crate::report::rebuilt(table, *kind == ObjectKind::ForeignKey, started);
        order.lock().expect("restore order lock").restored(&object);
        progress.notify_waiters();
    }
}

/// Resolves once `probe` gets no answer to `SELECT 1` within `timeout` (asking every
/// `timeout / 2`, at most every 10 s): the error that ends the run. Pending while the server
/// answers, however long the build it waits for takes.
async fn server_stops_answering(probe: &Client, timeout: Duration, doing: &str) -> Error {
    let every = (timeout / 2).clamp(Duration::from_millis(200), Duration::from_secs(10));
    loop {
        tokio::time::sleep(every).await;
        let answer = tokio::time::timeout(timeout, probe.simple_query("SELECT 1")).await;
        if !matches!(answer, Ok(Ok(_))) {
            return Error::Environment(format!(
                "the target stopped answering while {doing} (no answer to a liveness check within {} s): `pgclipper migrate` on the same workdir resumes",
                timeout.as_secs()
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(
        table: &str,
        name: &str,
        kind: ObjectKind,
        referenced: Option<&str>,
    ) -> DeferredObject {
        DeferredObject {
            table: table.into(),
            name: name.into(),
            kind,
            restore: String::new(),
            referenced: referenced.map(Into::into),
        }
    }

    fn take(order: &mut RestoreOrder) -> Option<String> {
        match order.next() {
            Next::Restore(o) => Some(o.name),
            Next::Wait => None,
            Next::Done => Some("done".into()),
        }
    }

    use ObjectKind::{Constraint, ForeignKey};

    #[test]
    fn a_foreign_key_waits_for_the_keys_of_both_its_tables_only() {
        let mut order = RestoreOrder::new(vec![
            object("events", "events_pkey", Constraint, None),
            object("users", "users_pkey", Constraint, None),
            object("tags", "tags_pkey", Constraint, None),
            object("events", "events_user_fk", ForeignKey, Some("users")),
            object("tags", "tags_self_fk", ForeignKey, Some("tags")),
        ]);
        let events_pkey = order.waiting[0].clone();
        let users_pkey = order.waiting[1].clone();
        let tags_pkey = order.waiting[2].clone();
        assert_eq!(take(&mut order).as_deref(), Some("events_pkey"));
        assert_eq!(take(&mut order).as_deref(), Some("users_pkey"));
        order.restored(&users_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("tags_pkey"));
        // events_pkey and tags_pkey are still being built: both foreign keys wait.
        assert_eq!(take(&mut order), None);
        order.restored(&tags_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("tags_self_fk"));
        assert_eq!(take(&mut order), None);
        order.restored(&events_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("events_user_fk"));
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }

    #[test]
    fn a_foreign_key_of_an_older_ledger_waits_for_every_key() {
        let mut order = RestoreOrder::new(vec![
            object("a", "a_pkey", Constraint, None),
            object("b", "b_fk", ForeignKey, None),
        ]);
        let a_pkey = order.waiting[0].clone();
        assert_eq!(take(&mut order).as_deref(), Some("a_pkey"));
        assert_eq!(take(&mut order), None);
        order.restored(&a_pkey);
        assert_eq!(take(&mut order).as_deref(), Some("b_fk"));
    }

    #[test]
    fn a_failed_build_ends_the_order_for_every_session() {
        let mut order = RestoreOrder::new(vec![
            object("a", "a_pkey", Constraint, None),
            object("a", "a_fk", ForeignKey, Some("a")),
        ]);
        assert_eq!(take(&mut order).as_deref(), Some("a_pkey"));
        assert_eq!(take(&mut order), None);
        order.failed = true;
        assert_eq!(take(&mut order).as_deref(), Some("done"));
    }
}
