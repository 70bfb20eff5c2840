//! Pairs every source table and column with its target by name and chooses each
//! column's conversion; collects every problem at once so `check` can report them all.

pub mod conversion;
pub mod rules;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

pub use conversion::{Conversion, Rule, Travel, Wire, ZeroDates, Zone};

use crate::catalog::{MyType, PgType, SourceTable, TargetTable};
use crate::error::Problem;

/// Which tables a run covers.
#[derive(Debug, Clone, Default)]
pub struct TableFilter {
    pub only: Option<Vec<String>>,
    pub exclude: Vec<String>,
}

impl TableFilter {
    pub fn includes(&self, table: &str) -> bool {
        if self.exclude.iter().any(|t| t == table) {
            return false;
        }
        match &self.only {
            Some(only) => only.iter().any(|t| t == table),
            None => true,
        }
    }
}

/// The operator's choices that shape conversions.
#[derive(Debug, Clone, Default)]
pub struct MappingOptions {
    pub zero_dates: ZeroDates,
    /// The zone of `datetime` values going into `timestamptz` (UTC when `None`).
    pub source_timezone: Option<Arc<str>>,
    /// `(table, column)` source columns not to copy.
    pub drop_columns: BTreeSet<(String, String)>,
}

/// One column copied from source to target.
#[derive(Debug, Clone)]
pub struct ColumnMapping {
    pub source: String,
    pub target: String,
    pub conversion: Conversion,
    /// How the converted values reach Postgres.
    pub travel: Travel,
}

/// One table copied from source to target.
#[derive(Debug, Clone)]
pub struct TableMapping {
    pub source: SourceTable,
    pub target: TargetTable,
    /// Columns written to the target, in the order of the SELECT and the COPY.
    pub columns: Vec<ColumnMapping>,
    /// Source columns selected: the written ones, then key columns not written.
    pub select: Vec<String>,
    /// Positions in `select` of the key columns (empty for a keyless table).
    pub key_positions: Vec<usize>,
}

impl TableMapping {
    pub fn name(&self) -> &str {
        &self.source.name
    }

    pub fn key_columns(&self) -> &[String] {
        &self.source.key
    }
}

/// The outcome of pairing: the tables to copy, what stops the run, what deserves a look.
#[derive(Debug, Default)]
pub struct Mapping {
    pub tables: Vec<TableMapping>,
    pub problems: Vec<Problem>,
    pub warnings: Vec<Problem>,
}

pub fn build(
    source: &[SourceTable],
    target: &[TargetTable],
    filter: &TableFilter,
    options: &MappingOptions,
) -> Mapping {
    let targets: BTreeMap<&str, &TargetTable> =
        target.iter().map(|t| (t.name.as_str(), t)).collect();
    let mut mapping = Mapping::default();

    if let Some(only) = &filter.only {
        for name in only {
            if !source.iter().any(|t| &t.name == name) {
                mapping.problems.push(problem(
                    name,
                    None,
                    "--tables names a table the source does not have",
                ));
            }
        }
    }

    for src in source.iter().filter(|t| filter.includes(&t.name)) {
        let Some(dst) = targets.get(src.name.as_str()) else {
            mapping.problems.push(problem(
                &src.name,
                None,
                format!(
                    "no table of that name in the target schema (leave it out with --exclude {})",
                    src.name
                ),
            ));
            continue;
        };
        if let Some(table) = pair_table(src, dst, options, &mut mapping) {
            mapping.tables.push(table);
        }
    }
    mapping
}

fn pair_table(
    src: &SourceTable,
    dst: &TargetTable,
    options: &MappingOptions,
    mapping: &mut Mapping,
) -> Option<TableMapping> {
    let table = &src.name;
    let problems_before = mapping.problems.len();
    let mut columns = Vec::new();
    for sc in &src.columns {
        if sc.generated {
            continue; // computed again by the target, or not wanted there
        }
        if options
            .drop_columns
            .contains(&(table.clone(), sc.name.clone()))
        {
            mapping
                .warnings
                .push(problem(table, Some(&sc.name), "not copied (--drop-column)"));
            continue;
        }
        let Some(tc) = dst.column(&sc.name) else {
            mapping.problems.push(problem(
                table,
                Some(&sc.name),
                format!(
                    "no column of that name in target table {} (leave it out with --drop-column {table}.{})",
                    dst.qualified(),
                    sc.name
                ),
            ));
            continue;
        };
        if tc.generated {
            mapping.warnings.push(problem(
                table,
                Some(&sc.name),
                "generated in the target: not copied",
            ));
            continue;
        }
        match rules::choose(sc, tc, options) {
            Ok(Rule { conversion, travel }) => {
                check_column(src, sc, tc, &conversion, mapping);
                columns.push(ColumnMapping {
                    source: sc.name.clone(),
                    target: tc.name.clone(),
                    conversion,
                    travel,
                });
            }
            Err(reason) => mapping
                .problems
                .push(problem(table, Some(&sc.name), reason)),
        }
    }
    for tc in &dst.columns {
        let copied = src.columns.iter().any(|c| {
            c.name == tc.name
                && !c.generated
                && !options
                    .drop_columns
                    .contains(&(table.clone(), c.name.clone()))
        });
        if !copied && tc.not_null && !tc.has_default && !tc.generated {
            let fillers: Vec<&str> = dst
                .insert_triggers
                .iter()
                .filter(|t| t.before_row)
                .map(|t| t.name.as_str())
                .collect();
            if fillers.is_empty() {
                mapping.problems.push(problem(
                    table,
                    Some(&tc.name),
                    "target column is NOT NULL without a default, and no source column fills it",
                ));
            } else {
                // COPY fires the trigger: the load proves whether it fills the column.
                mapping.warnings.push(problem(
                    table,
                    Some(&tc.name),
                    format!(
                        "target column is NOT NULL without a default and no source column fills it; the BEFORE INSERT trigger {} may: a row it leaves NULL stops the load",
                        fillers.join(", ")
                    ),
                ));
            }
        }
    }
    for trigger in &dst.insert_triggers {
        mapping.warnings.push(problem(
            table,
            None,
            format!(
                "trigger {} ({}) fires for every row loaded: it costs time and may write elsewhere (see docs/mapping.md, Triggers)",
                trigger.name, trigger.function
            ),
        ));
    }
    if src.key.is_empty() {
        mapping.warnings.push(problem(
            table,
            None,
            "no primary key or NOT NULL unique key: copied as one chunk",
        ));
    }
    if mapping.problems.len() > problems_before {
        return None;
    }

    let mut select: Vec<String> = columns.iter().map(|c| c.source.clone()).collect();
    let key_positions = src
        .key
        .iter()
        .map(|k| match select.iter().position(|c| c == k) {
            Some(i) => i,
            None => {
                select.push(k.clone());
                select.len() - 1
            }
        })
        .collect();
    Some(TableMapping {
        source: src.clone(),
        target: dst.clone(),
        columns,
        select,
        key_positions,
    })
}

/// Problems and warnings that depend on the data's shape rather than the type pair.
fn check_column(
    src: &SourceTable,
    sc: &crate::catalog::SourceColumn,
    tc: &crate::catalog::TargetColumn,
    conversion: &Conversion,
    mapping: &mut Mapping,
) {
    if sc.nullable && tc.not_null {
        mapping.warnings.push(problem(
            &src.name,
            Some(&sc.name),
            "nullable in the source, NOT NULL in the target: a NULL will stop the run",
        ));
    }
    if let (MyType::Enum(source_labels), PgType::Enum { name, labels }) = (&sc.ty, &tc.ty) {
        let missing: Vec<&String> = source_labels
            .iter()
            .filter(|l| !labels.contains(l))
            .collect();
        if !missing.is_empty() {
            mapping.problems.push(problem(
                &src.name,
                Some(&sc.name),
                format!("enum labels {missing:?} are missing in target type {name}"),
            ));
        }
    }
    if let (
        Conversion::Text {
            max_chars: Some(max),
        },
        MyType::Char {
            max_chars: Some(n), ..
        },
    ) = (conversion, &sc.ty)
    {
        if *n > *max as u64 {
            mapping.warnings.push(problem(
                &src.name,
                Some(&sc.name),
                format!(
                    "{} into {}: every value's length is checked",
                    sc.column_type, tc.type_name
                ),
            ));
        }
    }
}

/// A digest of everything a plan depends on: tables, keys, columns and types on both sides.
/// A resumed run whose catalogs no longer give the same digest is refused.
pub fn fingerprint(tables: &[TableMapping]) -> String {
    let mut text = String::new();
    for t in tables {
        text.push_str(&format!(
            "{}>{}|key:{:?}|",
            t.name(),
            t.target.qualified(),
            t.key_columns()
        ));
        for c in &t.columns {
            let sc = t.source.column(&c.source).expect("mapped source column");
            let tc = t.target.column(&c.target).expect("mapped target column");
            text.push_str(&format!(
                "{}:{}:{}>{}:{}:{};",
                sc.name,
                sc.column_type,
                sc.collation.as_deref().unwrap_or(""),
                tc.name,
                tc.type_name,
                tc.not_null
            ));
        }
        text.push('\n');
    }
    format!("{:032x}", xxhash_rust::xxh3::xxh3_128(text.as_bytes()))
}

fn problem(table: &str, column: Option<&str>, message: impl Into<String>) -> Problem {
    Problem {
        table: table.to_string(),
        column: column.map(str::to_string),
        message: message.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_excludes_and_restricts() {
        let f = TableFilter {
            only: Some(vec!["a".into(), "b".into()]),
            exclude: vec!["b".into()],
        };
        assert!(f.includes("a"));
        assert!(!f.includes("b"));
        assert!(!f.includes("c"));
    }
}
