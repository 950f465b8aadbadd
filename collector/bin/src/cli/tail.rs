//! `meshlog tail --server URL [filters] [--from ID]`: follows a running collector's
//! `GET /api/v1/tail` and prints each record as one JSON line (NDJSON) on stdout.
//!
//! It remembers the id (log position) of the last record it printed and, when the connection
//! drops (a network failure, a collector restart), reconnects with `Last-Event-ID` so the output
//! goes on with no gap and no duplicate. A `lag` event (this reader fell too far behind) and a
//! `gap` event (retention deleted what was asked for) are reported on stderr, with the ids to
//! ask for with `--from`.

use super::remote::{FilterFlags, RemoteFlags};
use super::{RunError, io_err};
use clap::Args;
use std::io::{self, BufRead, BufReader, Write};
use std::time::Duration;

/// `meshlog tail` options.
#[derive(Debug, Args)]
pub struct TailArgs {
    /// The collector, e.g. https://collector:4318.
    #[arg(long, value_name = "URL")]
    pub server: String,
    /// Where to start: `start` (the oldest stored record), `end` (only new records; the
    /// default), or an id printed by an earlier tail (`LEAF:RECORD`; with `--class all` a
    /// cursor `NAME=LEAF:RECORD,…`): the records after it.
    #[arg(long, value_name = "ID")]
    pub from: Option<String>,
    /// The retention class whose log to follow, or `all` for every class in one stream
    /// [default: the default class].
    #[arg(long, value_name = "NAME")]
    pub class: Option<String>,
    /// Batches this reader may fall behind before the server skips ahead (and says so).
    #[arg(long, value_name = "N")]
    pub max_lag: Option<u64>,
    /// Add each record's id (its log position) to the printed object as `meshlog.position`,
    /// to resume from later with `--from`.
    #[arg(long)]
    pub ids: bool,
    #[command(flatten)]
    pub filters: FilterFlags,
    #[command(flatten)]
    pub remote: RemoteFlags,
}

impl TailArgs {
    /// The query parameters (filters and tail options), without `from`.
    fn params(&self) -> Vec<(String, String)> {
        let mut p = self.filters.params();
        if let Some(c) = &self.class {
            p.push(("class".into(), c.clone()));
        }
        if let Some(n) = self.max_lag {
            p.push(("max_lag".into(), n.to_string()));
        }
        p
    }
}

/// The key `--ids` adds to each printed record.
pub const POSITION_KEY: &str = "meshlog.position";

/// Longest wait between reconnects.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// One server-sent event.
#[derive(Debug, Default)]
struct SseEvent {
    event: String,
    id: Option<String>,
    data: String,
}

/// Runs `meshlog tail` until stdout closes (or an error that retrying cannot fix).
pub fn tail(args: &TailArgs, out: &mut impl Write) -> Result<(), RunError> {
    // A tail is a stream without end: no timeout on the request.
    let client = args.remote.client(None)?;
    let url = format!("{}/api/v1/tail", args.server.trim_end_matches('/'));
    let params = args.params();
    let mut last_id: Option<String> = None;
    let mut backoff = Duration::from_millis(200);
    loop {
        let mut req = client
            .get(&url)
            .header("accept", "text/event-stream")
            .query(&params);
        match &last_id {
            Some(id) => req = req.header("last-event-id", id.as_str()),
            None => {
                if let Some(from) = &args.from {
                    req = req.query(&[("from", from)]);
                }
            }
        }
        req = args.remote.authorize(req);
        let resp = match req.send() {
            Ok(r) => r,
            Err(e) => {
                eprintln!("meshlog tail: cannot reach {url}: {e}; retrying");
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                continue;
            }
        };
        let status = resp.status();
        if !status.is_success() {
            let body = resp.text().unwrap_or_default();
            match status.as_u16() {
                400 => return Err(RunError::Usage(format!("the collector refused: {body}"))),
                401 | 403 => {
                    return Err(RunError::Io {
                        context: format!("the collector refused the tail ({status})"),
                        source: io::Error::other(body),
                    });
                }
                _ => {
                    eprintln!("meshlog tail: {status} from {url}: {body}; retrying");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            }
        }
        backoff = Duration::from_millis(200);
        match follow(BufReader::new(resp), out, &mut last_id, args.ids) {
            Ok(()) => eprintln!("meshlog tail: the collector ended the stream; reconnecting"),
            Err(Follow::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(Follow::Output(e)) => return Err(io_err("writing the output")(e)),
            Err(Follow::Input(e)) => {
                eprintln!("meshlog tail: connection lost ({e}); resuming after {last_id:?}");
            }
        }
        std::thread::sleep(backoff);
    }
}

enum Follow {
    Input(io::Error),
    Output(io::Error),
}

/// Reads events until the stream ends, printing records and remembering the last id.
fn follow(
    input: impl BufRead,
    out: &mut impl Write,
    last_id: &mut Option<String>,
    ids: bool,
) -> Result<(), Follow> {
    let mut ev = SseEvent::default();
    for line in input.lines() {
        let line = line.map_err(Follow::Input)?;
        if line.is_empty() {
            let done = std::mem::take(&mut ev);
            if dispatch(done, out, last_id, ids).map_err(Follow::Output)? {
                return Ok(());
            }
            continue;
        }
        if line.starts_with(':') {
            continue; // keep-alive comment
        }
        let (field, value) = line.split_once(':').unwrap_or((line.as_str(), ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => ev.event = value.to_owned(),
            "id" => ev.id = Some(value.to_owned()),
            "data" => {
                if !ev.data.is_empty() {
                    ev.data.push('\n');
                }
                ev.data.push_str(value);
            }
            _ => {}
        }
    }
    Ok(())
}

/// Handles one event; true when the stream should be reopened (an `error` event).
fn dispatch(
    ev: SseEvent,
    out: &mut impl Write,
    last_id: &mut Option<String>,
    ids: bool,
) -> io::Result<bool> {
    match ev.event.as_str() {
        "" | "message" => {
            if ev.data.is_empty() {
                return Ok(false);
            }
            match (&ev.id, ids) {
                (Some(id), true) => {
                    let mut rec: serde_json::Map<String, serde_json::Value> =
                        serde_json::from_str(&ev.data).map_err(io::Error::other)?;
                    rec.insert(POSITION_KEY.into(), id.clone().into());
                    serde_json::to_writer(&mut *out, &rec)?;
                }
                _ => out.write_all(ev.data.as_bytes())?,
            }
            out.write_all(b"\n")?;
            out.flush()?;
            if ev.id.is_some() {
                *last_id = ev.id;
            }
        }
        "lag" => eprintln!(
            "meshlog tail: too far behind, the collector skipped ahead: {} (ask for the skipped \
             records with --from set to the last id printed before this)",
            ev.data
        ),
        "gap" => eprintln!("meshlog tail: records no longer stored: {}", ev.data),
        "error" => {
            eprintln!("meshlog tail: the collector reported an error: {}", ev.data);
            return Ok(true);
        }
        other => eprintln!("meshlog tail: ignoring unknown event {other:?}"),
    }
    Ok(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_printed_and_their_ids_remembered_lag_is_not_printed() {
        let stream = b": keep-alive\n\nid: 3:0\ndata: {\"a\":1}\n\nevent: lag\ndata: {\"skipped\":5}\n\nid: 9:1\ndata: {\"a\":2}\n\n";
        let mut out = Vec::new();
        let mut last = None;
        assert!(follow(&stream[..], &mut out, &mut last, false).is_ok());
        assert_eq!(out, b"{\"a\":1}\n{\"a\":2}\n");
        assert_eq!(last.as_deref(), Some("9:1"));
        let mut out = Vec::new();
        assert!(follow(&stream[..], &mut out, &mut None, true).is_ok());
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"a\":1,\"meshlog.position\":\"3:0\"}\n{\"a\":2,\"meshlog.position\":\"9:1\"}\n"
        );
    }
}
