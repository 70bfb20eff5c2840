//! The one table of (MySQL type, Postgres type) → [`Rule`]: the conversion and how its
//! values travel, one row per type pair. `docs/mapping.md` documents every row; the tests
//! below check them one by one.

use std::sync::Arc;

use super::conversion::{Conversion, Labels, Rule, Wire, Zone};
use super::MappingOptions;
use crate::catalog::{MyType, PgType, SourceColumn, TargetColumn};

const TEXT_OID: u32 = 25;
const VARCHAR_OID: u32 = 1043;

/// The rule for one column pair, or why there is none.
pub fn choose(
    src: &SourceColumn,
    dst: &TargetColumn,
    options: &MappingOptions,
) -> Result<Rule, String> {
    use Conversion as C;
    use MyType as M;
    use PgType as P;
    use Rule as R;
    let no_rule = || {
        Err(format!(
            "no rule converts MySQL {} into Postgres {}",
            src.column_type, dst.type_name
        ))
    };
    let rule = match (&src.ty, &dst.ty) {
        // Integers.
        (M::Int { .. }, P::Bool) => R::binary(C::IntegerToBool, Wire::Bool),
        (M::Int { .. }, P::Int2 | P::Int4 | P::Int8 | P::Numeric(_)) => {
            let (min, max) = integer_range(&dst.ty).expect("integer target");
            R::binary(C::Integer { min, max }, integer_wire(&dst.ty))
        }
        (M::Year, P::Int2 | P::Int4 | P::Int8) => R::binary(C::Year, integer_wire(&dst.ty)),
        // Bits.
        (M::Bit(1), P::Bool) => R::binary(C::BitToBool, Wire::Bool),
        (M::Bit(n), P::Bit(m)) if n == m => R::binary(C::Bits { width: *n }, Wire::Bits),
        (M::Bit(n), P::Varbit(max)) if max.is_none_or(|m| m >= *n) => {
            R::binary(C::Bits { width: *n }, Wire::Bits)
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
            let max_integer_digits = target.map(|(p, s)| p - s);
            R::binary(C::Decimal { max_integer_digits }, Wire::Numeric)
        }
        (M::Float, P::Float4) => R::binary(C::Float32, Wire::Float4),
        (M::Float | M::Double, P::Float8) => R::binary(C::Float64, Wire::Float8),
        // Text and what text may hold. (`name` has no rule: its text input silently cuts
        // values beyond 63 bytes.)
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_) | M::Json, P::Text) => {
            R::binary(C::Text { max_chars: None }, Wire::Text)
        }
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_) | M::Json, P::Varchar(n)) => {
            R::binary(C::Text { max_chars: *n }, Wire::Text)
        }
        (M::Char { .. } | M::Text | M::Enum(_) | M::Set(_), P::Char(n)) => R::binary(
            C::Text {
                max_chars: Some(*n),
            },
            Wire::Text,
        ),
        (M::Char { .. } | M::Text, P::Uuid) => R::binary(C::TextToUuid, Wire::Uuid),
        (M::Char { .. } | M::Text | M::Json, P::Json) => {
            R::binary(C::Json { jsonb: false }, Wire::Text)
        }
        (M::Char { .. } | M::Text | M::Json, P::Jsonb) => {
            R::binary(C::Json { jsonb: true }, Wire::Jsonb)
        }
        (M::Enum(_) | M::Char { .. } | M::Text, P::Enum { labels, .. }) => R::binary(
            C::EnumLabel {
                labels: Arc::new(Labels::new(labels)),
            },
            Wire::Text,
        ),
        (M::Char { .. } | M::Text, P::Inet { cidr }) => R::csv_only(
            C::Inet { cidr: *cidr },
            "network addresses travel as text: Postgres' input normalizes them",
        ),
        (M::Char { .. } | M::Text, P::Macaddr) => R::csv_only(
            C::Macaddr,
            "MAC addresses travel as text: Postgres' input reads its many spellings",
        ),
        (M::Set(_), P::TextArray { varchar, max_chars }) => R::binary(
            C::SetToArray {
                max_chars: *max_chars,
            },
            Wire::TextArray {
                element_oid: if *varchar { VARCHAR_OID } else { TEXT_OID },
            },
        ),
        // Bytes.
        (M::Binary { .. }, P::Bytea) => R::binary(C::Bytea, Wire::Bytea),
        (
            M::Binary {
                fixed: true,
                max_bytes: Some(16),
            },
            P::Uuid,
        ) => R::binary(C::BinaryToUuid, Wire::Uuid),
        (M::Binary { .. }, P::Text | P::Varchar(_)) => {
            let max_chars = match dst.ty {
                P::Varchar(n) => n,
                _ => None,
            };
            R::binary(C::Text { max_chars }, Wire::Text)
        }
        // Dates and times: MySQL timestamps are read in UTC (the session's time zone);
        // datetimes are wall-clock values, placed in the source time zone for timestamptz.
        (M::Date | M::DateTime(_) | M::Timestamp(_), P::Date) => {
            let zero_dates = options.zero_dates;
            R::binary(C::Date { zero_dates }, Wire::Date)
        }
        (M::Date | M::DateTime(_) | M::Timestamp(_), P::Timestamp(p)) => R::binary(
            C::Timestamp {
                zone: Zone::Naive,
                precision: *p,
                zero_dates: options.zero_dates,
            },
            Wire::Timestamp,
        ),
        (M::Timestamp(_), P::Timestamptz(p)) => R::binary(
            C::Timestamp {
                zone: Zone::Utc,
                precision: *p,
                zero_dates: options.zero_dates,
            },
            Wire::Timestamp,
        ),
        (M::Date | M::DateTime(_), P::Timestamptz(p)) => {
            let conversion = |zone| C::Timestamp {
                zone,
                precision: *p,
                zero_dates: options.zero_dates,
            };
            match &options.source_timezone {
                None => R::binary(conversion(Zone::Utc), Wire::Timestamp),
                Some(zone) => R::csv_only(
                    conversion(Zone::Named(zone.clone())),
                    "a datetime placed in a named time zone: Postgres computes its offset (daylight saving included) from the text",
                ),
            }
        }
        (M::Time(_), P::Time(p)) => R::binary(C::Time { precision: *p }, Wire::Time),
        (M::Time(_), P::Interval) => R::binary(C::Interval, Wire::Interval),
        _ => return no_rule(),
    };
    Ok(rule)
}

/// The binary form of an integer target column.
fn integer_wire(ty: &PgType) -> Wire {
    match ty {
        PgType::Int2 => Wire::Int2,
        PgType::Int4 => Wire::Int4,
        PgType::Int8 => Wire::Int8,
        _ => Wire::Numeric,
    }
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
    use crate::mapping::conversion::Travel;

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
                .unwrap_or_else(|e| panic!("{ct} -> {pt}: {e}"))
                .conversion;
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
        .unwrap()
        .conversion
        else {
            panic!()
        };
        assert_eq!(max, 32767);
    }

    /// Every MySQL type against every Postgres type: where a rule exists, its values travel
    /// in the binary form of the target type, or the rule says why it is CSV only.
    #[test]
    fn every_rule_has_the_target_types_wire_or_says_why_it_is_csv_only() {
        let sources = [
            ("tinyint", "tinyint(1)"),
            ("int", "int(10) unsigned"),
            ("bigint", "bigint(20)"),
            ("decimal", "decimal(10,2)"),
            ("float", "float"),
            ("double", "double"),
            ("bit", "bit(1)"),
            ("char", "char(36)"),
            ("varchar", "varchar(255)"),
            ("text", "text"),
            ("binary", "binary(16)"),
            ("blob", "blob"),
            ("json", "json"),
            ("enum", "enum('a','b')"),
            ("set", "set('a','b')"),
            ("date", "date"),
            ("datetime", "datetime(6)"),
            ("timestamp", "timestamp(6)"),
            ("time", "time"),
            ("year", "year"),
        ];
        let targets = [
            ("bool", -1),
            ("int2", -1),
            ("int4", -1),
            ("int8", -1),
            ("numeric", ((12 << 16) | 2) + 4),
            ("numeric", -1),
            ("float4", -1),
            ("float8", -1),
            ("text", -1),
            ("varchar", 260),
            ("bpchar", 40),
            ("uuid", -1),
            ("bytea", -1),
            ("json", -1),
            ("jsonb", -1),
            ("date", -1),
            ("timestamp", -1),
            ("timestamptz", -1),
            ("time", -1),
            ("interval", -1),
            ("bit", 1),
            ("varbit", -1),
            ("name", -1),
            ("inet", -1),
            ("cidr", -1),
            ("macaddr", -1),
            ("citext", -1),
        ];
        let zoned = MappingOptions {
            source_timezone: Some("Europe/Amsterdam".into()),
            ..MappingOptions::default()
        };
        let mut rules = 0;
        for options in [MappingOptions::default(), zoned] {
            for (dt, ct) in sources {
                let mut s = src(dt, ct);
                if dt == "bit" {
                    s.ty = MyType::Bit(1);
                }
                for (pt, typmod) in targets {
                    let d = dst(pt, typmod);
                    let Ok(rule) = choose(&s, &d, &options) else {
                        continue;
                    };
                    rules += 1;
                    let fits = match (rule.travel, &d.ty) {
                        (Travel::Binary(wire), ty) => wire_fits(wire, ty),
                        (Travel::CsvOnly(_), PgType::Timestamptz(_)) => matches!(
                            rule.conversion,
                            Conversion::Timestamp {
                                zone: Zone::Named(_),
                                ..
                            }
                        ),
                        (Travel::CsvOnly(_), PgType::Inet { .. } | PgType::Macaddr) => true,
                        (Travel::CsvOnly(_), _) => false,
                    };
                    assert!(fits, "{ct} -> {pt}: {rule:?}");
                }
            }
        }
        assert!(rules > 60, "only {rules} rules found");
    }

    /// The Postgres types whose binary input reads `wire`.
    fn wire_fits(wire: Wire, ty: &PgType) -> bool {
        use PgType as P;
        match wire {
            Wire::Bool => matches!(ty, P::Bool),
            Wire::Int2 => matches!(ty, P::Int2),
            Wire::Int4 => matches!(ty, P::Int4),
            Wire::Int8 => matches!(ty, P::Int8),
            Wire::Numeric => matches!(ty, P::Numeric(_)),
            Wire::Float4 => matches!(ty, P::Float4),
            Wire::Float8 => matches!(ty, P::Float8),
            Wire::Text => matches!(
                ty,
                P::Text | P::Varchar(_) | P::Char(_) | P::Json | P::Enum { .. }
            ),
            Wire::Jsonb => matches!(ty, P::Jsonb),
            Wire::Uuid => matches!(ty, P::Uuid),
            Wire::Bytea => matches!(ty, P::Bytea),
            Wire::TextArray { .. } => matches!(ty, P::TextArray { .. }),
            Wire::Date => matches!(ty, P::Date),
            Wire::Timestamp => matches!(ty, P::Timestamp(_) | P::Timestamptz(_)),
            Wire::Time => matches!(ty, P::Time(_)),
            Wire::Interval => matches!(ty, P::Interval),
            Wire::Bits => matches!(ty, P::Bit(_) | P::Varbit(_)),
        }
    }
}
