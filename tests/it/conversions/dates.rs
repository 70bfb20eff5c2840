//! Dates, datetimes, timestamps and times at the target precision and in the source time
//! zone, and zero dates.

use super::{check_rules, rule};

#[test]
fn dates_and_times_arrive_at_the_target_precision() {
    check_rules(
        &[
            rule(
                "date",
                "date",
                &["'2024-02-29'", "'0001-01-01'", "'9999-12-31'"],
                &[Some("2024-02-29"), Some("0001-01-01"), Some("9999-12-31")],
            ),
            rule(
                "datetime(6)",
                "timestamp(6)",
                &[
                    "'2024-02-29 23:59:59.999999'",
                    "'1000-01-01 00:00:00.000001'",
                ],
                &[
                    Some("2024-02-29 23:59:59.999999"),
                    Some("1000-01-01 00:00:00.000001"),
                ],
            ),
            rule(
                "datetime",
                "timestamp(0)",
                &["'2024-01-01 00:00:00'"],
                &[Some("2024-01-01 00:00:00")],
            ),
            rule(
                "datetime(6)",
                "timestamp(3)",
                &["'2024-01-01 00:00:00.123000'"],
                &[Some("2024-01-01 00:00:00.123")],
            ),
            rule(
                "timestamp(3)",
                "timestamp(3)",
                &["'2038-01-19 03:14:07.123'"],
                &[Some("2038-01-19 03:14:07.123")],
            ),
            // Inserted while the session is in UTC; MySQL timestamps are read in UTC.
            rule(
                "timestamp",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "datetime",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "date",
                "timestamp",
                &["'2020-06-01'"],
                &[Some("2020-06-01 00:00:00")],
            ),
            rule(
                "time",
                "time",
                &["'23:59:59'", "'00:00:00'", "'24:00:00'"],
                &[Some("23:59:59"), Some("00:00:00"), Some("24:00:00")],
            ),
            rule(
                "time(6)",
                "time(6)",
                &["'12:34:56.789012'"],
                &[Some("12:34:56.789012")],
            ),
            rule(
                "time",
                "interval",
                &["'-838:59:59'", "'838:59:59'", "'100:00:00'"],
                &[Some("-838:59:59"), Some("838:59:59"), Some("100:00:00")],
            ),
            rule("year", "integer", &["2024"], &[Some("2024")]),
        ],
        "SET time_zone = '+00:00'",
        "",
        &[],
    );
}

#[test]
fn datetimes_into_timestamptz_are_read_in_the_source_time_zone() {
    check_rules(
        &[
            // Summer (UTC+2) and winter (UTC+1) in Amsterdam.
            rule(
                "datetime",
                "timestamptz",
                &["'2020-06-01 12:00:00'", "'2020-01-01 12:00:00'"],
                &[
                    Some("2020-06-01 10:00:00+00"),
                    Some("2020-01-01 11:00:00+00"),
                ],
            ),
            // timestamp values are UTC whatever the option says.
            rule(
                "timestamp",
                "timestamptz",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00+00")],
            ),
            rule(
                "datetime",
                "timestamp",
                &["'2020-06-01 12:00:00'"],
                &[Some("2020-06-01 12:00:00")],
            ),
        ],
        "SET time_zone = '+00:00'",
        "",
        &["--source-timezone", "Europe/Amsterdam"],
    );
}

#[test]
fn zero_dates_become_null_when_asked() {
    check_rules(
        &[
            rule(
                "datetime",
                "timestamp",
                &["'0000-00-00 00:00:00'", "'2020-00-10 00:00:00'"],
                &[None, None],
            ),
            rule(
                "date",
                "date",
                &["'2020-05-00'", "'2020-05-01'"],
                &[None, Some("2020-05-01")],
            ),
        ],
        "",
        "",
        &["--zero-dates", "null"],
    );
}
