//! A whole query: the [`Filter`] plus what to do with the matches (limit, order, cursor,
//! count, group by, time buckets), from the same `(name, value)` pairs the CLI and the HTTP
//! API use.

use crate::filter::{Filter, FilterError, unknown_parameter};
use crate::scan::Position;

/// Largest `limit`.
pub const MAX_LIMIT: u64 = 10_000;
/// Fewest nanoseconds in an `every` bucket (one second).
pub const MIN_EVERY_NS: u64 = 1_000_000_000;
/// The parameters besides the filter's.
pub const QUERY_PARAMS: &[&str] = &["limit", "order", "cursor", "count", "group-by", "every"];

/// Which end of the store comes first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Order {
    /// Store order (the default).
    #[default]
    Oldest,
    /// Newest first.
    Newest,
}

/// A parsed query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct QueryParams {
    /// Which records.
    pub filter: Filter,
    /// At most this many records (1 to [`MAX_LIMIT`]); none: all (the CLI's default).
    pub limit: Option<u64>,
    /// `order`: `oldest` or `newest`.
    pub order: Order,
    /// `cursor`: continue after (oldest first) or before (newest first) this position.
    pub cursor: Option<Position>,
    /// `count`: count instead of listing.
    pub count: bool,
    /// `group-by KEY`: count per value of KEY (a filter name such as `service` or
    /// `status-class`, or any attribute).
    pub group_by: Option<String>,
    /// `every`: count per time bucket of this length.
    pub every_ns: Option<u64>,
}

impl QueryParams {
    /// Parses `params`; any name that is neither a filter's nor one of [`QUERY_PARAMS`] is an
    /// error naming it.
    pub fn from_params<K, V>(
        params: impl IntoIterator<Item = (K, V)>,
        now_ns: u64,
    ) -> Result<QueryParams, FilterError>
    where
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let mut q = QueryParams::default();
        for (k, v) in params {
            q.parse_param(k.as_ref(), v.as_ref(), now_ns)?;
        }
        Ok(q)
    }

    /// Adds one parameter.
    pub fn parse_param(&mut self, name: &str, value: &str, now_ns: u64) -> Result<(), FilterError> {
        if self.filter.parse_param(name, value, now_ns)? {
            return Ok(());
        }
        let bad = |expected| FilterError::BadValue {
            param: name.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match name.replace('_', "-").as_str() {
            "limit" => match value.parse::<u64>() {
                Ok(n @ 1..=MAX_LIMIT) => self.limit = Some(n),
                _ => return Err(bad("a number of records from 1 to 10000")),
            },
            "order" => {
                self.order = match value {
                    "oldest" => Order::Oldest,
                    "newest" => Order::Newest,
                    _ => return Err(bad("oldest or newest")),
                }
            }
            "cursor" => {
                self.cursor = Some(
                    value
                        .parse()
                        .map_err(|()| bad("a cursor from a previous page's next_cursor"))?,
                )
            }
            "count" => {
                self.count = match value {
                    "" | "true" | "1" => true,
                    "false" | "0" => false,
                    _ => return Err(bad("true or false")),
                }
            }
            "group-by" => {
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(bad(
                        "an attribute name or a filter name (service, status-class)",
                    ));
                }
                self.group_by = Some(value.to_owned());
            }
            "every" => {
                let ns = crate::filter::parse_duration_ns(value)
                    .filter(|ns| *ns >= MIN_EVERY_NS)
                    .ok_or_else(|| bad("a bucket length of at least 1s (30s, 1m, 1h, 1d)"))?;
                self.every_ns = Some(ns);
            }
            _ => return Err(unknown_parameter(name, QUERY_PARAMS)),
        }
        Ok(())
    }

    /// Whether this asks for counts rather than records.
    pub fn is_aggregate(&self) -> bool {
        self.count || self.group_by.is_some() || self.every_ns.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_parameters_parse_and_bad_ones_name_themselves() {
        let q = QueryParams::from_params(
            [
                ("service", "a"),
                ("limit", "5"),
                ("order", "newest"),
                ("cursor", "0-1-8-2"),
                ("group_by", "status-class"),
                ("every", "1m"),
            ],
            0,
        )
        .unwrap();
        assert_eq!(q.filter.service, ["a"]);
        assert_eq!(q.limit, Some(5));
        assert_eq!(q.order, Order::Newest);
        assert_eq!(q.cursor.unwrap().offset, 8);
        assert_eq!(q.group_by.as_deref(), Some("status-class"));
        assert_eq!(q.every_ns, Some(60_000_000_000));
        assert!(q.is_aggregate());
        for (name, value) in [
            ("limit", "0"),
            ("limit", "10001"),
            ("limit", "x"),
            ("order", "up"),
            ("cursor", "1-2"),
            ("every", "0s"),
            ("every", "now"),
            ("bogus", "1"),
        ] {
            let e = QueryParams::from_params([(name, value)], 0).unwrap_err();
            assert_eq!(e.parameter(), name, "{e}");
        }
    }
}
