//! The table: `CREATE TABLE` for each [`Flavor`] (what `meshlog sink init` runs), and finding
//! which flavor an existing table is (what the exporter and `sink check` read and write).
//!
//! Both are `ReplacingMergeTree` tables sorted by `(Tenant, ServiceName, TimestampTime,
//! CollectorId, Log, LeafIndex, RecordIndex)`: a tenant's reads touch its own parts (the
//! exporter's README advice), service and time ranges are cheap, and the key ends with the
//! record's identity, so two copies of one record (a retried insert) are one row after a merge
//! and under `FINAL`. The modern table also sets `non_replicated_deduplication_window`, so an
//! insert repeated with the same `insert_deduplication_token` is dropped at once.

use super::Error;
use super::encoder::Flavor;
use clickhouse::Client;

/// The `CREATE TABLE` statement for `database.table` in `flavor`.
pub fn create_table(database: &str, table: &str, flavor: Flavor) -> String {
    match flavor {
        Flavor::Modern => format!(
            "CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (
    Timestamp DateTime64(9) CODEC(Delta(8), ZSTD(1)),
    TimestampTime DateTime DEFAULT toDateTime(Timestamp),
    TraceId String CODEC(ZSTD(1)),
    SpanId String CODEC(ZSTD(1)),
    TraceFlags UInt8,
    SeverityText LowCardinality(String) CODEC(ZSTD(1)),
    SeverityNumber UInt8,
    ServiceName LowCardinality(String) CODEC(ZSTD(1)),
    Body String CODEC(ZSTD(1)),
    ResourceSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ResourceAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    ScopeSchemaUrl LowCardinality(String) CODEC(ZSTD(1)),
    ScopeName String CODEC(ZSTD(1)),
    ScopeVersion LowCardinality(String) CODEC(ZSTD(1)),
    ScopeAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    LogAttributes Map(LowCardinality(String), String) CODEC(ZSTD(1)),
    EventName String CODEC(ZSTD(1)),
    CollectorId LowCardinality(String),
    Log LowCardinality(String),
    LeafIndex UInt64 CODEC(Delta(8), ZSTD(1)),
    RecordIndex UInt32,
    VmId String CODEC(ZSTD(1)),
    Sequence Nullable(UInt64),
    Tenant LowCardinality(String),
    RecordHash String CODEC(ZSTD(1)),
    INDEX idx_trace_id TraceId TYPE bloom_filter(0.001) GRANULARITY 1,
    INDEX idx_res_attr_key mapKeys(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_res_attr_value mapValues(ResourceAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_key mapKeys(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_log_attr_value mapValues(LogAttributes) TYPE bloom_filter(0.01) GRANULARITY 1,
    INDEX idx_body Body TYPE tokenbf_v1(32768, 3, 0) GRANULARITY 8,
    INDEX idx_leaf LeafIndex TYPE minmax GRANULARITY 1
) ENGINE = ReplacingMergeTree
PARTITION BY toDate(TimestampTime)
PRIMARY KEY (Tenant, ServiceName, TimestampTime)
ORDER BY (Tenant, ServiceName, TimestampTime, CollectorId, Log, LeafIndex, RecordIndex)
SETTINGS index_granularity = 8192, non_replicated_deduplication_window = 1000"
        ),
        Flavor::Legacy => format!(
            "CREATE TABLE IF NOT EXISTS `{database}`.`{table}` (
    Timestamp UInt64,
    TimestampTime DateTime DEFAULT toDateTime(intDiv(Timestamp, 1000000000)),
    TraceId String,
    SpanId String,
    TraceFlags UInt8,
    SeverityText String,
    SeverityNumber UInt8,
    ServiceName String,
    Body String,
    ResourceSchemaUrl String,
    ResourceAttributes Nested(key String, value String),
    ScopeSchemaUrl String,
    ScopeName String,
    ScopeVersion String,
    ScopeAttributes Nested(key String, value String),
    LogAttributes Nested(key String, value String),
    EventName String,
    CollectorId String,
    Log String,
    LeafIndex UInt64,
    RecordIndex UInt32,
    VmId String,
    Sequence Nullable(UInt64),
    Tenant String,
    RecordHash String
) ENGINE = ReplacingMergeTree()
PARTITION BY toDate(TimestampTime)
ORDER BY (Tenant, ServiceName, TimestampTime, CollectorId, Log, LeafIndex, RecordIndex)
SETTINGS index_granularity = 8192"
        ),
    }
}

/// The server's version string (`SELECT version()`).
pub async fn server_version(client: &Client) -> Result<String, Error> {
    client
        .query("SELECT version()")
        .fetch_one::<String>()
        .await
        .map_err(Error::ClickHouse)
}

/// What `meshlog sink init` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Created {
    /// The server's version.
    pub version: String,
    /// The flavor of the table now there.
    pub flavor: Flavor,
    /// Whether the table existed already (then it was left as it was).
    pub existed: bool,
}

/// Creates the database (if missing) and the table in the flavor the server supports; a table
/// that exists is left alone and its flavor reported.
pub async fn init(client: &Client, database: &str, table: &str) -> Result<Created, Error> {
    // The database may not exist yet: these first statements run in `default`.
    let admin = client.clone().with_database("default");
    let version = server_version(&admin).await?;
    admin
        .query(&format!("CREATE DATABASE IF NOT EXISTS `{database}`"))
        .execute()
        .await
        .map_err(Error::ClickHouse)?;
    if let Some(flavor) = table_flavor(&admin, database, table).await? {
        return Ok(Created {
            version,
            flavor,
            existed: true,
        });
    }
    let flavor = Flavor::for_version(&version);
    client
        .query(&create_table(database, table, flavor))
        .execute()
        .await
        .map_err(Error::ClickHouse)?;
    Ok(Created {
        version,
        flavor,
        existed: false,
    })
}

/// The flavor of `database.table` from its `Timestamp` column's type; `None` when there is no
/// such table.
pub async fn table_flavor(
    client: &Client,
    database: &str,
    table: &str,
) -> Result<Option<Flavor>, Error> {
    let types = client
        .query("SELECT type FROM system.columns WHERE database = ? AND table = ? AND name = 'Timestamp'")
        .bind(database)
        .bind(table)
        .fetch_all::<String>()
        .await
        .map_err(Error::ClickHouse)?;
    match types.first().map(String::as_str) {
        None => Ok(None),
        Some(t) if t.starts_with("DateTime64") => Ok(Some(Flavor::Modern)),
        Some("UInt64") => Ok(Some(Flavor::Legacy)),
        Some(other) => Err(Error::Schema(format!(
            "{database}.{table} has a Timestamp column of type {other}: not a table made by \
             `meshlog sink init` (expected DateTime64(9) or UInt64)"
        ))),
    }
}

/// The flavor of an existing table, or [`Error::NoTable`].
pub async fn require_table(client: &Client, database: &str, table: &str) -> Result<Flavor, Error> {
    table_flavor(client, database, table)
        .await?
        .ok_or_else(|| Error::NoTable {
            database: database.to_owned(),
            table: table.to_owned(),
        })
}
