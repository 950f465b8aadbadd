//! `meshlog query`: the records of a data directory that match the filters (meshlog-query),
//! as NDJSON (the default when stdout is not a terminal), a table (on a terminal) or CSV;
//! `--count` / `--group-by KEY [--every 1m]` count them instead. With `--server URL` the same
//! question goes to a running collector's `GET /api/v1/query` / `/api/v1/aggregate` (over TLS
//! with `--ca` and, for mutual TLS, `--cert`/`--key`; or a bearer `--token`).
//!
//! Reading the data directory directly is local administration: it needs file access to the
//! store, is not limited to a tenant and is not audited (the collector's API is both).
//! After the records, a summary on stderr says what the result is complete against.

use super::remote::{FilterFlags, RemoteFlags};
use super::*;
use meshlog_query::aggregate::{Aggregate, aggregate};
use meshlog_query::complete::Completeness;
use meshlog_query::params::QueryParams;
use meshlog_query::scan::{ScanOptions, ScanStats};
use meshlog_query::{Position, Record};
use serde_json::Value;
use std::time::{SystemTime, UNIX_EPOCH};

/// Loads the data-encryption key file, if one is configured.
pub(super) fn load_data_keys(key_file: Option<&Path>) -> Result<Option<DataKeys>, RunError> {
    key_file
        .map(|p| DataKeys::load(p).map_err(RunError::DataKeys))
        .transpose()
}

/// How records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// One JSON object per line (the default when stdout is not a terminal).
    Ndjson,
    /// Aligned columns (the default on a terminal).
    Table,
    /// Comma-separated values with a header line.
    Csv,
}

/// `meshlog query`'s filters and output flags. Each filter flag is also the name of the
/// HTTP API's query parameter (docs/query.md).
#[derive(Debug, Default, Args)]
pub struct QueryFlags {
    #[command(flatten)]
    pub filters: FilterFlags,
    /// At most N records (1 to 10000) [default: all].
    #[arg(long, value_name = "N", help_heading = "Output")]
    pub limit: Option<String>,
    /// oldest (store order) or newest first [default: oldest].
    #[arg(long, value_name = "ORDER", help_heading = "Output")]
    pub order: Option<String>,
    /// Continue from a previous page's cursor (printed on stderr when --limit cut it).
    #[arg(long, value_name = "CURSOR", help_heading = "Output")]
    pub cursor: Option<String>,
    /// ndjson, table or csv [default: table on a terminal, else ndjson].
    #[arg(long, value_enum, help_heading = "Output")]
    pub format: Option<OutputFormat>,
    /// Print the number of matching records.
    #[arg(long, help_heading = "Counts")]
    pub count: bool,
    /// Count per value of KEY: service, namespace, tenant, status, status-class, method,
    /// route, principal, client, enduser, or any attribute.
    #[arg(long, value_name = "KEY", help_heading = "Counts")]
    pub group_by: Option<String>,
    /// Count per time bucket of this length (30s, 1m, 1h, 1d).
    #[arg(long, value_name = "DURATION", help_heading = "Counts")]
    pub every: Option<String>,
    /// Read every frame, not using the per-segment indexes.
    #[arg(long, help_heading = "Output")]
    pub no_index: bool,
    /// Ask the collector at URL (https://host:port) instead of reading a data directory.
    #[arg(long, value_name = "URL", help_heading = "Remote")]
    pub server: Option<String>,
    /// Search ClickHouse ([sink.clickhouse] in --config): every collector exporting there, with
    /// the same filters (docs/clickhouse.md).
    #[arg(long, help_heading = "Remote", conflicts_with_all = ["server", "cursor", "no_index"])]
    pub clickhouse: bool,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

impl QueryFlags {
    /// The flags as `(parameter, value)` pairs: the HTTP API's query string.
    pub fn params(&self) -> Vec<(String, String)> {
        let mut out = self.filters.params();
        for (name, v) in [
            ("limit", &self.limit),
            ("order", &self.order),
            ("cursor", &self.cursor),
            ("group-by", &self.group_by),
            ("every", &self.every),
        ] {
            if let Some(v) = v {
                out.push((name.to_owned(), v.clone()));
            }
        }
        if self.count {
            out.push(("count".into(), "true".into()));
        }
        out
    }
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// Runs `meshlog query`.
pub(super) fn run(a: QueryArgs) -> Result<(), RunError> {
    let params = a.q.params();
    // Checked here too, so a bad flag is a usage error naming it before anything is read.
    let q = QueryParams::from_params(params.iter().map(|(k, v)| (k, v)), now_ns())
        .map_err(flag_error)?;
    let format = a.q.format.unwrap_or(if io::stdout().is_terminal() {
        OutputFormat::Table
    } else {
        OutputFormat::Ndjson
    });
    let mut out = Printer::new(format, BufWriter::new(io::stdout().lock()));
    let result = match &a.q.server {
        Some(url) => remote::run(url, &a.q, &params, &q, &mut out),
        None if a.q.clickhouse => clickhouse(&a, &q, &mut out),
        None => local(&a, &q, &mut out),
    };
    let result = result.and_then(|()| {
        out.finish()
            .map_err(|e| RunError::Read(ReadError::Output(e)))
    });
    match result {
        // `meshlog query | head` is not a failure.
        Err(RunError::Read(ReadError::Output(e)))
        | Err(RunError::Query(meshlog_query::QueryError::Read(ReadError::Output(e))))
            if e.kind() == io::ErrorKind::BrokenPipe =>
        {
            Ok(())
        }
        other => other,
    }
}

/// A filter error as the command line spells it (`--trace-id`, not `trace-id`).
fn flag_error(e: meshlog_query::FilterError) -> RunError {
    RunError::Usage(format!("--{}: {e}", e.parameter().replace('_', "-")))
}

/// `--clickhouse`: the same filters over the ClickHouse sink's table.
fn clickhouse(a: &QueryArgs, q: &QueryParams, out: &mut Printer) -> Result<(), RunError> {
    use meshlog_sink::clickhouse::query::{self as chq, Order};
    let cfg = Config::load(a.config.as_deref())?;
    let Some(sink) = cfg.sink_clickhouse else {
        return Err(RunError::Usage(
            "--clickhouse needs --config with a [sink.clickhouse] section".into(),
        ));
    };
    if q.is_aggregate() {
        return Err(RunError::Usage(
            "--clickhouse lists records; --count, --group-by and --every read the local store \
             (or ask ClickHouse in SQL, docs/clickhouse.md)"
                .into(),
        ));
    }
    let order = match q.order {
        meshlog_query::params::Order::Oldest => Order::Oldest,
        meshlog_query::params::Order::Newest => Order::Newest,
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(super::io_err("starting the async runtime"))?;
    let outcome = rt.block_on(chq::search(&sink, &q.filter, order, q.limit, |r| {
        out.record(r)
    }))?;
    let mut lines = vec![format!(
        "meshlog: {} records (from ClickHouse {}/{}.{}: {} rows examined after its narrowing)",
        outcome.returned, sink.url, sink.database, sink.table, outcome.examined
    )];
    for c in &outcome.covered {
        lines.push(format!(
            "meshlog: collector {} log {}: complete for leaves {}..={} as exported ({} rows); \
             records committed after its sink's last insert are not included (`meshlog sink \
             check` there counts them)",
            c.collector_id,
            if c.log.is_empty() { "default" } else { &c.log },
            c.leaves.0,
            c.leaves.1,
            c.rows
        ));
    }
    if outcome.covered.is_empty() {
        lines.push("meshlog: the ClickHouse table holds no rows".into());
    }
    eprintln!("{}", lines.join("\n"));
    Ok(())
}

fn local(a: &QueryArgs, q: &QueryParams, out: &mut Printer) -> Result<(), RunError> {
    let cfg = Config::load(a.config.as_deref())?;
    let data_dir = a.data_dir.clone().unwrap_or(cfg.data_dir);
    require_dir(&data_dir)?;
    let keys = load_data_keys(a.key_file.clone().or(cfg.encryption_key_file).as_deref())?;
    let opts = ScanOptions {
        no_index: a.q.no_index,
        ..ScanOptions::default()
    };
    if q.is_aggregate() {
        let agg = aggregate(&data_dir, keys.as_ref(), q, &opts)?;
        out.aggregate(&agg).map_err(ReadError::Output)?;
        summary(
            &format!("{} matching records", agg.total),
            &agg.outcome.stats,
            &agg.outcome.completeness,
            None,
        );
        return Ok(());
    }
    let listing =
        meshlog_query::records::list(&data_dir, keys.as_ref(), q, &opts, |_, r| out.record(&r))?;
    summary(
        &format!("{} records", listing.returned),
        &listing.outcome.stats,
        &listing.outcome.completeness,
        listing.next_cursor,
    );
    Ok(())
}

/// The completeness statement and the scan's counts, on stderr.
fn summary(what: &str, stats: &ScanStats, c: &Completeness, next: Option<Position>) {
    let mut lines = vec![format!(
        "meshlog: {what} ({} frames: {} read, {} skipped by the index)",
        stats.frames, stats.frames_read, stats.frames_skipped
    )];
    if let Some(p) = next {
        lines.push(format!("meshlog: more: --cursor {p}"));
    }
    lines.extend(completeness_lines(c));
    eprintln!("{}", lines.join("\n"));
}

/// The completeness statement as lines of text.
pub fn completeness_lines(c: &Completeness) -> Vec<String> {
    let mut lines = Vec::new();
    for s in &c.stores {
        lines.push(match &s.checkpoint {
            Some(cp) => format!(
                "meshlog: store {}: complete against checkpoint {} size {} root {} key {} \
                 ({} leaves read{}{})",
                s.store,
                cp.origin,
                cp.size,
                cp.root,
                cp.key_id,
                s.leaves,
                if s.after_checkpoint > 0 {
                    format!(", {} newer than the checkpoint", s.after_checkpoint)
                } else {
                    String::new()
                },
                if s.covers_checkpoint {
                    ""
                } else {
                    "; FEWER LEAVES THAN THE CHECKPOINT: run meshlog verify"
                }
            ),
            None => format!(
                "meshlog: store {}: no signed checkpoint ({} leaves read)",
                s.store, s.leaves
            ),
        });
    }
    let ranges = |r: &[[u64; 2]]| {
        r.iter()
            .map(|[a, b]| {
                if a == b {
                    a.to_string()
                } else {
                    format!("{a}-{b}")
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    for v in &c.vms {
        lines.push(if v.gapless {
            format!(
                "meshlog: vm {}: sequences {}..{} gapless",
                v.vm, v.first, v.last
            )
        } else {
            format!(
                "meshlog: vm {}: sequences {}..{}, missing {} (lost per delivery tallies: {}; \
                 unexplained: {}; the VM counted {} dropped for overflow, {} refused)",
                v.vm,
                v.first,
                v.last,
                ranges(&v.gaps),
                if v.explained.is_empty() {
                    "none".into()
                } else {
                    ranges(&v.explained)
                },
                if v.unexplained.is_empty() {
                    "none".into()
                } else {
                    ranges(&v.unexplained)
                },
                v.dropped_overflow_total,
                v.failed_total
            )
        });
    }
    lines
}

/// Columns of the table and CSV formats.
const COLUMNS: &[(&str, &str)] = &[
    ("time", ""),
    ("service", "resource.service.name"),
    ("method", "http.request.method"),
    ("status", "http.response.status_code"),
    ("route", "http.route"),
    ("path", "url.path"),
    ("client", "client.address"),
    ("principal", "meshlog.peer.principal"),
    ("enduser", "enduser.id"),
    ("trace_id", "trace_id"),
    ("request_id", "meshlog.request_id"),
    ("tenant", "resource.meshlog.tenant"),
];

/// Writes records or counts in the chosen format.
pub(super) struct Printer {
    format: OutputFormat,
    out: BufWriter<io::StdoutLock<'static>>,
    header_done: bool,
}

impl Printer {
    fn new(format: OutputFormat, out: BufWriter<io::StdoutLock<'static>>) -> Self {
        Printer {
            format,
            out,
            header_done: false,
        }
    }

    fn cells(r: &Record) -> Vec<String> {
        COLUMNS
            .iter()
            .map(|(name, key)| match *name {
                "time" => meshlog_query::filter::record_time_ns(r)
                    .map(meshlog_format::time::rfc3339)
                    .unwrap_or_default(),
                _ => r
                    .get(*key)
                    .map(|v| meshlog_query::filter::value_str(v).into_owned())
                    .unwrap_or_default(),
            })
            .collect()
    }

    fn csv_row(&mut self, cells: &[String]) -> io::Result<()> {
        let mut w = csv::Writer::from_writer(&mut self.out);
        w.write_record(cells).map_err(io::Error::other)?;
        w.flush()
    }

    /// One record.
    pub(super) fn record(&mut self, r: &Record) -> io::Result<()> {
        match self.format {
            OutputFormat::Ndjson => {
                serde_json::to_writer(&mut self.out, r)?;
                self.out.write_all(b"\n")
            }
            OutputFormat::Csv => {
                if !self.header_done {
                    self.header_done = true;
                    let h: Vec<String> = COLUMNS.iter().map(|(n, _)| (*n).to_owned()).collect();
                    self.csv_row(&h)?;
                }
                self.csv_row(&Self::cells(r))
            }
            OutputFormat::Table => {
                const WIDTHS: &[usize] = &[24, 16, 7, 6, 24, 28, 15, 40, 12, 32, 36, 10];
                let cells = Self::cells(r);
                if !self.header_done {
                    self.header_done = true;
                    let h: Vec<String> = COLUMNS.iter().map(|(n, _)| n.to_uppercase()).collect();
                    self.table_line(&h, WIDTHS)?;
                }
                self.table_line(&cells, WIDTHS)
            }
        }
    }

    fn table_line(&mut self, cells: &[String], widths: &[usize]) -> io::Result<()> {
        let mut line = String::new();
        for (c, w) in cells.iter().zip(widths) {
            let mut c: String = c.chars().take(*w).collect();
            if c.chars().count() == *w && *w > 1 {
                c.pop();
                c.push('…');
            }
            line.push_str(&format!("{c:<w$} "));
        }
        writeln!(self.out, "{}", line.trim_end())
    }

    /// The counts of an aggregate.
    pub(super) fn aggregate(&mut self, a: &Aggregate) -> io::Result<()> {
        for g in &a.groups {
            let key = g.key.clone().map(|k| k.unwrap_or_else(|| "(none)".into()));
            match self.format {
                OutputFormat::Ndjson => {
                    serde_json::to_writer(&mut self.out, g)?;
                    self.out.write_all(b"\n")?;
                }
                OutputFormat::Csv => {
                    if !self.header_done {
                        self.header_done = true;
                        self.csv_row(&["time".into(), "key".into(), "count".into()])?;
                    }
                    let row = [
                        g.time.clone().unwrap_or_default(),
                        key.unwrap_or_default(),
                        g.count.to_string(),
                    ];
                    self.csv_row(&row)?;
                }
                OutputFormat::Table => {
                    let mut cells = Vec::new();
                    if let Some(t) = &g.time {
                        cells.push(format!("{t:<24}"));
                    }
                    if let Some(k) = key {
                        cells.push(format!("{k:<32}"));
                    }
                    cells.push(format!("{:>10}", g.count));
                    writeln!(self.out, "{}", cells.join(" "))?;
                }
            }
        }
        if a.groups.is_empty() && a.group_by.is_none() && a.every_ns.is_none() {
            // A plain --count on no matches is still a count.
            match self.format {
                OutputFormat::Ndjson => writeln!(self.out, "{}", serde_json::json!({"count": 0}))?,
                _ => writeln!(self.out, "0")?,
            }
        }
        Ok(())
    }

    fn finish(mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// `--server`: the same question to a running collector.
mod remote {
    use super::*;

    /// `v[key]`, `null` when absent.
    fn at<'a>(v: &'a Value, key: &str) -> &'a Value {
        v.get(key).unwrap_or(&Value::Null)
    }

    fn remote_err(what: impl std::fmt::Display) -> RunError {
        RunError::Remote(what.to_string())
    }

    fn get(
        c: &reqwest::blocking::Client,
        f: &QueryFlags,
        url: &str,
        params: &[(String, String)],
    ) -> Result<Value, RunError> {
        let resp = f
            .remote
            .authorize(c.get(url).query(params))
            .send()
            .map_err(|e| remote_err(format!("{url}: {e}")))?;
        let status = resp.status();
        let body: Value = resp
            .json()
            .map_err(|e| remote_err(format!("{url}: answer is not JSON: {e}")))?;
        if !status.is_success() {
            let msg = at(&body, "message").as_str().unwrap_or("").to_owned();
            return Err(match at(&body, "parameter").as_str() {
                Some(p) if status.as_u16() == 400 => RunError::Usage(format!(
                    "--{}: {msg} (the collector answered {status})",
                    p.replace('_', "-")
                )),
                _ => remote_err(format!("{url}: the collector answered {status}: {msg}")),
            });
        }
        Ok(body)
    }

    pub(super) fn run(
        server: &str,
        f: &QueryFlags,
        params: &[(String, String)],
        q: &QueryParams,
        out: &mut Printer,
    ) -> Result<(), RunError> {
        let c = f.remote.client(Some(Duration::from_secs(300)))?;
        let base = server.trim_end_matches('/');
        let not_local = |c: &Completeness| completeness_lines(c);
        if q.is_aggregate() {
            let body = get(&c, f, &format!("{base}/api/v1/aggregate"), params)?;
            let agg = Aggregate {
                group_by: q.group_by.clone(),
                every_ns: q.every_ns,
                total: at(&body, "total").as_u64().unwrap_or(0),
                groups: serde_json::from_value(at(&body, "groups").clone()).unwrap_or_default(),
                outcome: Default::default(),
            };
            out.aggregate(&agg).map_err(ReadError::Output)?;
            let c: Completeness =
                serde_json::from_value(at(&body, "completeness").clone()).unwrap_or_default();
            eprintln!(
                "meshlog: {} matching records (from {server})\n{}",
                agg.total,
                not_local(&c).join("\n")
            );
            return Ok(());
        }
        // Without --limit, page through everything (the collector answers 100 at a time by
        // default; ask for its largest page).
        let all = q.limit.is_none();
        let mut params = params.to_vec();
        if all {
            params.push(("limit".into(), meshlog_query::params::MAX_LIMIT.to_string()));
        }
        let mut returned = 0u64;
        loop {
            let body = get(&c, f, &format!("{base}/api/v1/query"), &params)?;
            for r in at(&body, "records").as_array().into_iter().flatten() {
                if let Value::Object(m) = r {
                    out.record(m).map_err(ReadError::Output)?;
                    returned += 1;
                }
            }
            let next = at(&body, "next_cursor").as_str().map(str::to_owned);
            match next {
                Some(cursor) if all => {
                    params.retain(|(k, _)| k != "cursor");
                    params.push(("cursor".into(), cursor));
                }
                _ => {
                    let c: Completeness = serde_json::from_value(at(&body, "completeness").clone())
                        .unwrap_or_default();
                    let mut lines = vec![format!("meshlog: {returned} records (from {server})")];
                    if let Some(n) = next {
                        lines.push(format!("meshlog: more: --cursor {n}"));
                    }
                    lines.extend(not_local(&c));
                    eprintln!("{}", lines.join("\n"));
                    return Ok(());
                }
            }
        }
    }
}

/// Writes every record in `data_dir` to `out`, one per line, opening encrypted frames with
/// `keys`; returns the number written. Order: the store in `data_dir` itself (without
/// retention), then each retention class's store by class name, each in store order.
pub fn query(
    data_dir: &Path,
    keys: Option<DataKeys>,
    out: &mut impl Write,
) -> Result<u64, ReadError> {
    let mut n = 0;
    let first = reader::frames(data_dir)?;
    let classes = classes::store_dirs(data_dir).map_err(|source| ReadError::Io {
        path: data_dir.join(classes::CLASSES_DIR),
        source,
    })?;
    let mut stores = vec![first];
    for dir in classes.iter().skip(1) {
        stores.push(reader::frames(dir)?);
    }
    for frames in stores {
        for frame in frames.with_keys(keys.clone()) {
            frame?.for_each_line(|line| {
                n += 1;
                out.write_all(line)?;
                out.write_all(b"\n")
            })?;
        }
    }
    Ok(n)
}
