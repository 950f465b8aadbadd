//! Sinks: where committed records go besides the local store. Today one, ClickHouse
//! ([`clickhouse`]): the store's subscription read from a persisted cursor, exported exactly
//! once into an `otel_logs`-shaped table, and reconciled row by row against the log
//! (`meshlog sink check`). The local store stays the system of record: a sink that is down only
//! falls behind.

pub mod clickhouse;
