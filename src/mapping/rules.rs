//! The one table of (MySQL type, Postgres type) → [`Conversion`]. `docs/mapping.md`
//! documents every row; the tests below check them one by one.

use std::collections::HashSet;
use std::sync::Arc;

use super::MappingOptions;
use crate::catalog::{MyType, PgType, SourceColumn, TargetColumn};
use crate::encode::{Conversion, Zone};

/// The conversion for one column pair, or why there is none.
pub fn choose(
    src: &SourceColumn,
    dst: &TargetColumn,
    options: &MappingOptions,
) -> Result<Conversion, String> {
    use MyType as M;
    use PgType as P;
    let no_rule = || {
        Err(format!(
            "no rule converts MySQL {} into Postgres {}",
            src.column_type, dst.type_name
        ))
    };
    let conversion = match (&src.ty, &dst.ty) {
        // Integers.
        (M::Int { .. }, P::Bool) => Conversion::IntegerToBool,
        (M::Int { .. }, P::Int2 | P::Int4 | P::Int8 | P::Numeric(_)) => {
            let (min, max) = integer_range(&dst.ty).expect("integer target");
            Conversion::Integer { min, max }
        }
        (M::Year, P::Int2 | P::Int4 | P::Int8) => Conversion::Year,
        // Bits.
        (M::Bit(1), P::Bool) => Conversion::BitToBool,
        (M::Bit(n), P::Bit(m)) if n == m => Conversion::Bits { width: *n },
        (M::Bit(n), P::Varbit(max)) if max.is_none_or(|m| m >= *n) => {
            Conversion::Bits { width: *n }
        }
        // Exact and floating-point numbers.
        (M::Decimal { scale, .. }, P::Numeric(target)) => {
            if let Some((_, target_scale)) = target {
                if scale > target_scale {
                    return Err(format!(
                        "scale {scale} of MySQL {} would be rounded to {target_scale} by Postgres {}",
                        src.column_type, dst.type_name
                    ));
                }
            }
            Conversion::Decimal {
                max_integer_digits: target.map(|(p, s)| p - s),
            }
        }
        (M::Float, P::Float4) => Conversion::Float32,
        (M::Float | M::Double, P::Float8) => Conversion::Float64,
        // Text and what text may hold.
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_) | M::Json, P::Text) => {
            Conversion::Text { max_chars: None }
        }
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_) | M::Json, P::Varchar(n)) => {
            Conversion::Text { max_chars: *n }
        }
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_), P::Char(n)) => Conversion::Text {
            max_chars: Some(*n),
        },
        (M::Char { .. } | M::Text, P::Uuid) => Conversion::TextToUuid,
        (M::Char { .. } | M::Text | M::Json, P::Json) => Conversion::Json { jsonb: false },
        (M::Char { .. } | M::Text | M::Json, P::Jsonb) => Conversion::Json { jsonb: true },
        (M::Enum(_) | M::Char { .. } | M::Text, P::Enum { labels, .. }) => Conversion::EnumLabel {
            labels: Arc::new(labels.iter().cloned().collect::<HashSet<_>>()),
        },
        (M::Set(_), P::TextArray { .. }) => Conversion::SetToArray,
        // Bytes.
        (M::Binary { .. }, P::Bytea) => Conversion::Bytea,
        (
            M::Binary {
                fixed: true,
                max_bytes: Some(16),
            },
            P::Uuid,
        ) => Conversion::BinaryToUuid,
        (M::Binary { .. }, P::Text | P::Varchar(_)) => Conversion::Text {
            max_chars: match dst.ty {
                P::Varchar(n) => n,
                _ => None,
            },
        },
        // Dates and times: MySQL timestamps are read in UTC (the session's time zone);
        // datetimes are wall-clock values, placed in the source time zone for timestamptz.
        (M::Date | M::DateTime(_) | M::Timestamp(_), P::Date) => Conversion::Date {
            zero_dates: options.zero_dates,
        },
        (M::Date | M::DateTime(_) | M::Timestamp(_), P::Timestamp(p)) => Conversion::Timestamp {
            zone: Zone::Naive,
            precision: *p,
            zero_dates: options.zero_dates,
        },
        (M::Timestamp(_), P::Timestamptz(p)) => Conversion::Timestamp {
            zone: Zone::Utc,
            precision: *p,
            zero_dates: options.zero_dates,
        },
        (M::Date | M::DateTime(_), P::Timestamptz(p)) => Conversion::Timestamp {
            zone: match &options.source_timezone {
                Some(zone) => Zone::Named(zone.clone()),
                None => Zone::Utc,
            },
            precision: *p,
            zero_dates: options.zero_dates,
        },
        (M::Time(_), P::Time(p)) => Conversion::Time { precision: *p },
        (M::Time(_), P::Interval) => Conversion::Interval,
        _ => return no_rule(),
    };
    Ok(conversion)
}

/// The values an integer or numeric target column holds.
fn integer_range(ty: &PgType) -> Option<(i128, i128)> {
    Some(match ty {
        PgType::Int2 => (i16::MIN as i128, i16::MAX as i128),
        PgType::Int4 => (i32::MIN as i128, i32::MAX as i128),
        PgType::Int8 => (i64::MIN as i128, i64::MAX as i128),
        PgType::Numeric(None) => (i128::MIN, i128::MAX),
        PgType::Numeric(Some((p, s))) => {
            let digits = p.saturating_sub(*s).min(38);
            let max = 10i128.pow(digits) - 1;
            (-max, max)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{mysql, postgres};

    fn src(data_type: &str, column_type: &str) -> SourceColumn {
        SourceColumn {
            name: "c".into(),
            ty: mysql::parse_type(data_type, column_type, Some(36), 10, 2, 6),
            column_type: column_type.into(),
            nullable: true,
            charset: None,
            collation: None,
            generated: false,
        }
    }

    fn dst(typname: &str, typmod: i32) -> TargetColumn {
        TargetColumn {
            name: "c".into(),
            ty: postgres::parse_type(typname, typmod, None),
            type_name: typname.into(),
            not_null: false,
            generated: false,
            has_default: false,
        }
    }

    /// Every pair the Alkemio and Kratos schemas use has a rule.
    #[test]
    fn every_fixture_pair_has_a_rule() {
        let pairs = [
            (("char", "char(36)"), ("uuid", -1), "TextToUuid"),
            (("varchar", "varchar(255)"), ("uuid", -1), "TextToUuid"),
            (("datetime", "datetime(6)"), ("timestamp", -1), "Timestamp"),
            (("timestamp", "timestamp"), ("timestamp", -1), "Timestamp"),
            (("int", "int(11)"), ("int4", -1), "Integer"),
            (("bigint", "bigint(20)"), ("int8", -1), "Integer"),
            (("varchar", "varchar(128)"), ("varchar", 132), "Text"),
            (("varchar", "varchar(128)"), ("varchar", -1), "Text"),
            (("char", "char(44)"), ("varchar", 48), "Text"),
            (("char", "char(36)"), ("bpchar", 40), "Text"),
            (("text", "text"), ("text", -1), "Text"),
            (("longtext", "longtext"), ("json", -1), "Json"),
            (("longtext", "longtext"), ("jsonb", -1), "Json"),
            (("longtext", "longtext"), ("text", -1), "Text"),
            (("tinyint", "tinyint(4)"), ("bool", -1), "IntegerToBool"),
            (("tinyint", "tinyint(1)"), ("bool", -1), "IntegerToBool"),
            (("mediumblob", "mediumblob"), ("bytea", -1), "Bytea"),
            (("blob", "blob"), ("bytea", -1), "Bytea"),
            (
                ("decimal", "decimal(10,2)"),
                ("numeric", ((10 << 16) | 2) + 4),
                "Decimal",
            ),
        ];
        for ((dt, ct), (pt, typmod), expected) in pairs {
            let c = choose(&src(dt, ct), &dst(pt, typmod), &MappingOptions::default())
                .unwrap_or_else(|e| panic!("{ct} -> {pt}: {e}"));
            assert!(
                format!("{c:?}").starts_with(expected),
                "{ct} -> {pt}: {c:?}"
            );
        }
    }

    #[test]
    fn pairs_without_rule_are_refused_with_both_types() {
        let err = choose(
            &src("date", "date"),
            &dst("bool", -1),
            &MappingOptions::default(),
        )
        .unwrap_err();
        assert!(err.contains("date") && err.contains("bool"), "{err}");
    }

    #[test]
    fn decimal_scale_shrink_is_refused() {
        let mut s = src("decimal", "decimal(10,4)");
        s.ty = MyType::Decimal {
            precision: 10,
            scale: 4,
        };
        assert!(choose(
            &s,
            &dst("numeric", ((10 << 16) | 2) + 4),
            &MappingOptions::default()
        )
        .is_err());
    }

    #[test]
    fn integer_range_follows_the_target() {
        let Conversion::Integer { max, .. } = choose(
            &src("int", "int(11)"),
            &dst("int2", -1),
            &MappingOptions::default(),
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(max, 32767);
    }
}
