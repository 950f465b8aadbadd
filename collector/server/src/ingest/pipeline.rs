//! The ingest pipeline every transport shares: admit (duplicate batch id, room in the queue),
//! decode, flatten to canonical records, route each record to its retention class, append one
//! frame per class, and wait for the fsync. A transport (OTLP/HTTP today) only parses its
//! framing and answers; what is stored, and when a batch counts as acknowledged, is decided here
//! once.
//!
//! Without `[retention]` there is one class, `default`, whose store is the data directory: the
//! same path. With classes, each class's frame carries the request's batch id and goes to its
//! store at once (one fsync wait, not one per class); the answer is success only once every one
//! is durable (a duplicate when every one was already stored), else the first class's error. A
//! retry splits identically, so the classes that already stored their part answer it as a
//! duplicate. The body's size is reserved in the default class's queue while it is decoded and
//! carried over to the default class's frame; other classes reserve their frames' sizes.
//!
//! Decoding, flattening, compression and (with encryption at rest) sealing are CPU work and run
//! on the blocking pool. If the fsyncs take longer than the ack timeout the batch is refused as
//! unavailable: not acknowledged, though it may still be stored, so a retry with the same batch
//! id is then answered as a duplicate rather than stored twice.
//!
//! A batch may also arrive already decoded ([`DecodedBatch`]: the collector's own access records
//! and alerts); it then skips the decoding step and joins the same path. OTLP/gRPC hands over
//! the message's protobuf bytes as a [`Batch`], so its decoding runs here on the blocking pool,
//! never on the async task serving the connection. A batch sent by a principal with a tenant has every
//! resource's `meshlog.tenant` attribute set to that tenant (replacing what the client sent)
//! before records are routed, so retention classes can match it.

use super::decode::{BodyEncoding, decode, decompress, parse};
use super::error::{ApiError, RETRY_AFTER_BUSY_SECS, StorageFailure, WireFormat};
use super::{CANONICAL_EXPANSION_LIMIT, Limits, flatten, json_view, view};
use axum::body::Bytes;
use meshlog_format::batch_id::BatchId;
use meshlog_format::frame::{BuildError, EncodedFrame, FrameBuilder};
use meshlog_retention::classes::ClassRoutes;
use meshlog_retention::sweep::{Clock, SystemClock};
use meshlog_store::{Appended, StoreHandle};
use meshlog_tlog::keys::Keyring;
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
pub use redact::Redaction;
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

#[path = "redact.rs"]
pub mod redact;

/// What the pipeline needs: where records go, request limits, and how long a batch may wait
/// for its fsync before it is refused (unacknowledged).
#[derive(Debug)]
pub struct Pipeline {
    routes: Arc<ClassRoutes>,
    limits: Limits,
    ack_timeout: Duration,
    metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The collector's clock for receive times (stored in each frame's header: what
    /// retention runs on).
    clock: Arc<dyn Clock>,
    redaction: Arc<Redaction>,
}

/// The resource attribute a principal's tenant is stamped in.
pub const TENANT_ATTRIBUTE: &str = "meshlog.tenant";

/// One batch as a transport received it.
#[derive(Debug)]
pub struct Batch {
    /// The body as received.
    pub body: Bytes,
    /// OTLP/JSON or protobuf.
    pub format: WireFormat,
    /// gzip, zstd or none.
    pub encoding: BodyEncoding,
    /// The client's batch id, when it sent one.
    pub batch_id: Option<BatchId>,
    /// When it arrived (stands in for a record's missing observed time).
    pub received_unix_nano: u64,
    /// The sending principal's tenant, stamped on every resource.
    pub tenant: Option<String>,
}

/// One batch already decoded (the collector's own records and alerts).
#[derive(Debug)]
pub struct DecodedBatch {
    /// The request.
    pub request: ExportLogsServiceRequest,
    /// Its encoded size, bytes (reserved in the ingest queue while it is prepared).
    pub size: u64,
    /// The client's batch id, when it sent one.
    pub batch_id: Option<BatchId>,
    /// When it arrived.
    pub received_unix_nano: u64,
    /// The sending principal's tenant.
    pub tenant: Option<String>,
}

/// Whether to read a batch's body at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Every class already stores this batch id: answer success, read nothing.
    Duplicate,
    /// Go on.
    Proceed,
}

/// What became of an acknowledged batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Durably stored (at least one class's part was new).
    Stored {
        /// Records stored.
        records: u64,
    },
    /// Every part was already stored under this batch id.
    Duplicate,
    /// Valid, but it held no log records.
    Empty,
}

/// Which class a record goes to, and how many classes there are.
pub trait Classify: Sync {
    /// The number of classes.
    fn classes(&self) -> usize;
    /// The index of `record`'s class.
    fn classify(&self, record: &Map<String, Value>) -> usize;
}

/// Every record in one class (tools and fuzzing; a served pipeline has [`ClassRoutes`]).
#[derive(Debug, Clone, Copy)]
pub struct OneClass;

impl Classify for OneClass {
    fn classes(&self) -> usize {
        1
    }
    fn classify(&self, _: &Map<String, Value>) -> usize {
        0
    }
}

impl Classify for ClassRoutes {
    fn classes(&self) -> usize {
        self.names().len()
    }
    fn classify(&self, record: &Map<String, Value>) -> usize {
        ClassRoutes::classify(self, record)
    }
}

impl Pipeline {
    /// A pipeline over `routes`.
    pub fn new(routes: Arc<ClassRoutes>, limits: Limits, ack_timeout: Duration) -> Self {
        Pipeline {
            routes,
            limits,
            ack_timeout,
            metrics: None,
            clock: Arc::new(SystemClock),
            redaction: Arc::new(Redaction::default()),
        }
    }

    /// The same pipeline with receive times from `clock` (tests inject one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The receive time of a batch arriving now, by the collector's clock.
    pub fn now_unix_nano(&self) -> u64 {
        self.clock.now_unix_ns()
    }

    /// With `redaction` (`[redaction]`) instead of the secure default.
    pub fn with_redaction(mut self, redaction: Redaction) -> Self {
        self.redaction = Arc::new(redaction);
        self
    }

    /// The same pipeline, observing fsync waits in `metrics`.
    pub fn with_metrics(mut self, metrics: Arc<crate::metrics::Metrics>) -> Self {
        self.metrics = Some(metrics);
        self
    }

    /// A pipeline over one store (no retention classes).
    pub fn single(store: StoreHandle, limits: Limits, ack_timeout: Duration) -> Self {
        Self::new(Arc::new(ClassRoutes::single(store)), limits, ack_timeout)
    }

    /// Request limits.
    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// The classes and their stores.
    pub fn routes(&self) -> &Arc<ClassRoutes> {
        &self.routes
    }

    /// Before a body is read: a batch id every class already stores is a duplicate; a full
    /// queue in any class refuses at once.
    pub fn admit(&self, batch_id: Option<&BatchId>) -> Result<Admission, ApiError> {
        let handles = self.routes.handles();
        if let Some(id) = batch_id
            && handles.iter().all(|h| h.is_stored(id))
        {
            tracing::debug!(batch_id = %id, "batch already stored; answering as a duplicate");
            return Ok(Admission::Duplicate);
        }
        for h in handles {
            h.check_room()?;
        }
        Ok(Admission::Proceed)
    }

    /// Stores `batch`: returns once every class's part is durable.
    pub async fn ingest(&self, batch: Batch) -> Result<Outcome, ApiError> {
        let limits = self.limits;
        let Batch {
            body,
            format,
            encoding,
            batch_id,
            received_unix_nano,
            tenant,
        } = batch;
        let size = body.len() as u64;
        let meta = (batch_id, received_unix_nano, tenant);
        self.decode_and_store(size, meta, "decoding", move |prep| {
            let bytes = decompress(&body, encoding, limits)?;
            // Records that all go to the one class as they are: read in place.
            if let Some(frames) = prep.view(&bytes, format) {
                return frames;
            }
            prep.request(parse(&bytes, format)?)
        })
        .await
    }

    /// Stores an already decoded batch: returns once every class's part is durable.
    pub async fn ingest_decoded(&self, batch: DecodedBatch) -> Result<Outcome, ApiError> {
        let DecodedBatch {
            request,
            size,
            batch_id,
            received_unix_nano,
            tenant,
        } = batch;
        let meta = (batch_id, received_unix_nano, tenant);
        self.decode_and_store(size, meta, "preparing", move |prep| prep.request(request))
            .await
    }

    /// What both entry points share: reserve `size` bytes in the default class's queue, then on
    /// the blocking pool get the request, stamp the tenant, flatten, redact and frame it
    /// (`prepare`, given a [`Prep`]), then store the frames.
    async fn decode_and_store(
        &self,
        size: u64,
        (batch_id, received_unix_nano, tenant): (Option<BatchId>, u64, Option<String>),
        what: &'static str,
        prepare: impl FnOnce(Prep) -> Result<Vec<(usize, EncodedFrame)>, ApiError> + Send + 'static,
    ) -> Result<Outcome, ApiError> {
        let Some(default) = self.routes.default_handle() else {
            return Err(StorageFailure::NoClass(0).into());
        };
        let reservation = default.reserve(size)?;
        let prep = Prep {
            limits: self.limits,
            received_unix_nano,
            batch_id: batch_id.clone(),
            keyring: default.keyring().cloned(),
            routes: self.routes.clone(),
            redaction: self.redaction.clone(),
            tenant,
        };
        let frames = tokio::task::spawn_blocking(move || prepare(prep))
            .await
            .map_err(|source| StorageFailure::Task { what, source })??;
        self.store(frames, reservation, batch_id).await
    }

    /// Appends prepared frames, one per class, and waits for every fsync.
    async fn store(
        &self,
        frames: Vec<(usize, EncodedFrame)>,
        reservation: meshlog_store::queue::Reservation,
        batch_id: Option<BatchId>,
    ) -> Result<Outcome, ApiError> {
        let mut reservation = Some(reservation);
        if frames.is_empty() {
            return Ok(Outcome::Empty);
        }
        let default_index = self.routes.default_index();
        let handles = self.routes.handles();
        let mut pending = Vec::with_capacity(frames.len());
        for (class, frame) in frames {
            let Some(h) = handles.get(class).cloned() else {
                return Err(StorageFailure::NoClass(class).into());
            };
            let records = frame.records();
            // The body's reservation carries over to the default class's frame.
            let held = if class == default_index {
                reservation.take()
            } else {
                None
            };
            let task = tokio::spawn(async move {
                match held {
                    Some(r) => h.append_reserved(frame, r).await,
                    None => h.append(frame).await,
                }
            });
            pending.push((class, records, task));
        }
        drop(reservation);
        let waited = std::time::Instant::now();
        let results = tokio::time::timeout(self.ack_timeout, async {
            let mut out = Vec::with_capacity(pending.len());
            for (class, records, task) in pending {
                let r = task.await.map_err(|source| StorageFailure::Task {
                    what: "storing",
                    source,
                })?;
                out.push((class, records, r));
            }
            Ok::<_, ApiError>(out)
        })
        .await
        .map_err(|_| not_confirmed(self.ack_timeout, batch_id.as_ref()))??;
        if let Some(m) = &self.metrics {
            m.fsync_wait(waited.elapsed());
        }
        let mut stored = 0;
        let mut all_duplicate = true;
        for (class, records, r) in results {
            let class = self.routes.names().get(class).map_or("?", String::as_str);
            match r? {
                Appended::Stored(loc) => {
                    all_duplicate = false;
                    stored += u64::from(records);
                    tracing::debug!(
                        class,
                        records,
                        segment = loc.segment,
                        offset = loc.offset,
                        batch_id = batch_id.as_ref().map(BatchId::as_str),
                        "batch stored"
                    );
                }
                Appended::Duplicate => tracing::debug!(
                    class,
                    batch_id = batch_id.as_ref().map(BatchId::as_str),
                    "batch id stored meanwhile; answering as a duplicate"
                ),
            }
        }
        Ok(if all_duplicate {
            Outcome::Duplicate
        } else {
            Outcome::Stored { records: stored }
        })
    }
}

/// What preparing one batch's frames needs, on the blocking pool.
struct Prep {
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    routes: Arc<ClassRoutes>,
    redaction: Arc<Redaction>,
    tenant: Option<String>,
}

impl Prep {
    /// A decoded request: stamp the tenant, then [`prepare_request`].
    fn request(
        self,
        mut req: ExportLogsServiceRequest,
    ) -> Result<Vec<(usize, EncodedFrame)>, ApiError> {
        stamp_tenant(&mut req, self.tenant.as_deref());
        prepare_request(
            &req,
            self.limits,
            self.received_unix_nano,
            self.batch_id,
            self.keyring,
            self.routes.as_ref(),
            &self.redaction,
        )
    }

    /// `bytes` read in place ([`view`], [`json_view`]) and written straight to one frame,
    /// when every record goes to the one class unredacted; `None` when that is not so (or the
    /// view does not read the message): then the caller decodes with prost (or serde).
    fn view(
        &self,
        bytes: &[u8],
        format: WireFormat,
    ) -> Option<Result<Vec<(usize, EncodedFrame)>, ApiError>> {
        if self.routes.as_ref().classes() != 1 {
            return None;
        }
        let prepare = match format {
            WireFormat::Protobuf => prepare_view,
            WireFormat::Json => prepare_json_view,
        };
        prepare(
            bytes,
            self.tenant.as_deref(),
            self.limits,
            self.received_unix_nano,
            self.batch_id.clone(),
            self.keyring.clone(),
            &self.redaction,
        )
    }
}

/// [`prepare_request`] for protobuf `bytes` read in place ([`view`]), all into class 0, when
/// `redaction` leaves every record as it is; `None` when it does not (or the view does not read
/// the message): then the caller decodes with prost. The frames are byte for byte
/// [`prepare_request`]'s.
pub fn prepare_view(
    bytes: &[u8],
    tenant: Option<&str>,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    redaction: &Redaction,
) -> Option<Result<Vec<(usize, EncodedFrame)>, ApiError>> {
    let req = view::request(bytes).ok()?;
    write_view(
        req,
        tenant,
        limits,
        received_unix_nano,
        batch_id,
        keyring,
        redaction,
    )
}

/// [`prepare_view`] for OTLP/JSON `bytes` ([`json_view`]): `None` when the reader does not
/// take them exactly as serde's decoding into prost's structs would (then the caller decodes
/// with serde); else the frames are byte for byte [`prepare_request`]'s.
pub fn prepare_json_view(
    bytes: &[u8],
    tenant: Option<&str>,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    redaction: &Redaction,
) -> Option<Result<Vec<(usize, EncodedFrame)>, ApiError>> {
    let arena = bumpalo::Bump::new();
    let req = json_view::request(bytes, &arena).ok()?;
    write_view(
        req,
        tenant,
        limits,
        received_unix_nano,
        batch_id,
        keyring,
        redaction,
    )
}

/// Frames a request view, all into class 0, when `redaction` leaves every record as it is.
fn write_view<'a>(
    mut req: view::RequestView<'a>,
    tenant: Option<&'a str>,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    redaction: &Redaction,
) -> Option<Result<Vec<(usize, EncodedFrame)>, ApiError>> {
    let all_skipped = req
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .flat_map(|sl| &sl.log_records)
        .all(|lr| redaction.skips_view(lr));
    if !all_skipped {
        return None;
    }
    if let Some(tenant) = tenant {
        for rl in &mut req.resource_logs {
            rl.resource.retain(|kv| kv.key != TENANT_ATTRIBUTE);
            rl.resource.push(view::Kv {
                key: TENANT_ATTRIBUTE,
                value: view::Val::Str(tenant),
            });
        }
    }
    let mut frames = Frames::new(limits, received_unix_nano, batch_id, keyring, 1);
    let mut line = Vec::with_capacity(4096);
    let mut members = Vec::with_capacity(128);
    let mut order = flatten::KeyOrder::default();
    let prepared = (|| {
        for rl in &req.resource_logs {
            for sl in &rl.scope_logs {
                let base = flatten::Base::of_view(&rl.resource, sl);
                for lr in &sl.log_records {
                    line.clear();
                    let shape = flatten::write_view_record(
                        &mut line,
                        &mut members,
                        &base,
                        lr,
                        received_unix_nano,
                        &mut order,
                    );
                    line.push(b'\n');
                    frames.push(0, &line, &members, shape)?;
                }
            }
        }
        frames.finish()
    })();
    Some(prepared)
}

/// One frame per class that has records, under the request's canonical size limit.
struct Frames {
    builders: Vec<Option<FrameBuilder>>,
    raw: u64,
    max_raw: u64,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
}

impl Frames {
    fn new(
        limits: Limits,
        received_unix_nano: u64,
        batch_id: Option<BatchId>,
        keyring: Option<Arc<Keyring>>,
        classes: usize,
    ) -> Self {
        let mut builders = Vec::new();
        builders.resize_with(classes, || None);
        Frames {
            builders,
            raw: 0,
            max_raw: max_raw_bytes(limits),
            received_unix_nano,
            batch_id,
            keyring,
        }
    }

    /// Appends one NDJSON `line` with its member index to `class`'s frame.
    fn push(
        &mut self,
        class: usize,
        line: &[u8],
        members: &[u32],
        shape: u64,
    ) -> Result<(), ApiError> {
        self.raw += line.len() as u64;
        if self.raw > self.max_raw {
            return Err(too_large(BuildError::TooLarge {
                limit: self.max_raw,
            }));
        }
        let slot = self
            .builders
            .get_mut(class)
            .ok_or_else(|| too_large(BuildError::Overflow("no such retention class")))?;
        let builder = match slot {
            Some(b) => b,
            None => {
                let mut b = FrameBuilder::with_received(
                    self.max_raw,
                    self.batch_id.clone(),
                    self.keyring.clone(),
                    Some(self.received_unix_nano),
                )
                .map_err(too_large)?;
                // Subscribers (detection, the tail, the sink) take fresh frames from memory;
                // the store drops the copy when none is open or the queue has no room for it.
                b.keep_records();
                slot.insert(b)
            }
        };
        builder
            .push_indexed(line, members, shape)
            .map_err(too_large)
    }

    /// The frames, as `(class index, frame)` in class order.
    fn finish(self) -> Result<Vec<(usize, EncodedFrame)>, ApiError> {
        let mut frames = Vec::new();
        for (i, b) in self.builders.into_iter().enumerate() {
            if let Some(b) = b {
                frames.push((i, b.finish().map_err(too_large)?));
            }
        }
        Ok(frames)
    }
}

/// The most canonical NDJSON one request may produce.
fn max_raw_bytes(limits: Limits) -> u64 {
    (limits.max_decoded_bytes as u64).saturating_mul(CANONICAL_EXPANSION_LIMIT)
}

fn too_large(e: BuildError) -> ApiError {
    match e {
        BuildError::TooLarge { limit } => ApiError::TooLarge(format!(
            "the canonical records of this request exceed {limit} bytes \
             ({CANONICAL_EXPANSION_LIMIT} × max_decoded_bytes); send smaller batches"
        )),
        BuildError::Overflow(what) => {
            ApiError::TooLarge(format!("the request does not fit in one frame: {what}"))
        }
        BuildError::Io(e) => StorageFailure::Compress(e).into(),
        BuildError::Seal(e) => StorageFailure::Seal(e).into(),
    }
}

/// Decodes one request and encodes its records into one frame per class that has any, as
/// `(class index, frame)` in class order, each with `batch_id` and sealed with `keyring`'s
/// current key when given. The canonical size limit applies to the request as a whole.
#[allow(clippy::too_many_arguments)]
pub fn prepare(
    body: &[u8],
    format: WireFormat,
    encoding: BodyEncoding,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    classes: &dyn Classify,
) -> Result<Vec<(usize, EncodedFrame)>, ApiError> {
    let req = decode(body, format, encoding, limits)?;
    let off = Redaction::off();
    prepare_request(
        &req,
        limits,
        received_unix_nano,
        batch_id,
        keyring,
        classes,
        &off,
    )
}

/// Sets `meshlog.tenant` on every resource of `req` to `tenant` (replacing any the client
/// sent); without a tenant, leaves `req` as it is.
pub fn stamp_tenant(req: &mut ExportLogsServiceRequest, tenant: Option<&str>) {
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value};
    let Some(tenant) = tenant else { return };
    for rl in &mut req.resource_logs {
        let res = rl.resource.get_or_insert_with(Default::default);
        res.attributes.retain(|kv| kv.key != TENANT_ATTRIBUTE);
        res.attributes.push(KeyValue {
            key: TENANT_ATTRIBUTE.to_owned(),
            value: Some(AnyValue {
                value: Some(any_value::Value::StringValue(tenant.to_owned())),
            }),
            ..Default::default()
        });
    }
}

/// [`prepare`] for a request already decoded.
pub fn prepare_request(
    req: &ExportLogsServiceRequest,
    limits: Limits,
    received_unix_nano: u64,
    batch_id: Option<BatchId>,
    keyring: Option<Arc<Keyring>>,
    classes: &dyn Classify,
    redaction: &Redaction,
) -> Result<Vec<(usize, EncodedFrame)>, ApiError> {
    let mut frames = Frames::new(
        limits,
        received_unix_nano,
        batch_id,
        keyring,
        classes.classes(),
    );
    // Each record is serialized once, into this reused buffer: its size counts against the
    // request's limit and its bytes go to its class's frame.
    let mut line = Vec::with_capacity(4096);
    // With one class every record goes to it, so a record the collector does not redact
    // (the filter's, by default) is written straight from the request (`write_record`);
    // the others take the map: redaction and class rules work on it.
    let single = classes.classes() == 1;
    let mut order = flatten::KeyOrder::default();
    // The member index of the line written directly (none for the map's: serde writes it).
    let mut members = Vec::with_capacity(128);
    let mut shape;
    for rl in &req.resource_logs {
        for sl in &rl.scope_logs {
            let mut base = None;
            let mut base_map = None;
            for lr in &sl.log_records {
                line.clear();
                let class = if single && redaction.skips(lr) {
                    let base = base.get_or_insert_with(|| flatten::Base::new(rl, sl));
                    shape = flatten::write_record(
                        &mut line,
                        &mut members,
                        base,
                        lr,
                        received_unix_nano,
                        &mut order,
                    );
                    0
                } else {
                    let base = base_map.get_or_insert_with(|| flatten::base_map(rl, sl));
                    let mut r = flatten::canonical_record(base, lr, received_unix_nano);
                    // The collector's redaction, before anything is framed.
                    redaction.apply(&mut r);
                    serde_json::to_writer(&mut line, &r)
                        .map_err(|e| too_large(BuildError::Io(e.into())))?;
                    members.clear();
                    shape = 0;
                    classes.classify(&r)
                };
                line.push(b'\n');
                frames.push(class, &line, &members, shape)?;
            }
        }
    }
    frames.finish()
}

/// The refusal for a batch not confirmed within the ack timeout.
fn not_confirmed(ack_timeout: Duration, batch_id: Option<&BatchId>) -> ApiError {
    ApiError::Unavailable {
        message: format!(
            "the batch was not confirmed on disk within {} ms and is not acknowledged; it may \
             still be stored: retry it{}",
            ack_timeout.as_millis(),
            if batch_id.is_some() {
                " with the same meshlog-batch-id"
            } else {
                ""
            }
        ),
        retry_after: RETRY_AFTER_BUSY_SECS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;
    use prost::Message;

    /// Every record in one class.
    struct One;
    impl Classify for One {
        fn classes(&self) -> usize {
            1
        }
        fn classify(&self, _: &Map<String, Value>) -> usize {
            0
        }
    }
    const ONE: One = One;

    #[test]
    fn empty_protobuf_is_an_empty_request_and_prepares_no_frame() {
        let f = prepare(
            b"",
            WireFormat::Protobuf,
            BodyEncoding::Identity,
            Limits::default(),
            1,
            None,
            None,
            &ONE,
        );
        assert!(f.unwrap().is_empty());
        let f = prepare(
            br#"{"resourceLogs":[]}"#,
            WireFormat::Json,
            BodyEncoding::Identity,
            Limits::default(),
            1,
            None,
            None,
            &ONE,
        );
        assert!(f.unwrap().is_empty());
    }

    #[test]
    fn resource_amplification_is_capped() {
        // 3000 records each repeating a 2 KB resource attribute: ~6 MB canonical from ~11 KB.
        let big = "r".repeat(2000);
        let recs = vec!["{}"; 3000].join(",");
        let body = format!(
            r#"{{"resourceLogs":[{{"resource":{{"attributes":[{{"key":"k","value":{{"stringValue":"{big}"}}}}]}},"scopeLogs":[{{"logRecords":[{recs}]}}]}}]}}"#
        );
        let limits = Limits {
            max_body_bytes: 1 << 20,
            max_decoded_bytes: 1 << 20,
        };
        let e = prepare(
            body.as_bytes(),
            WireFormat::Json,
            BodyEncoding::Identity,
            limits,
            1,
            None,
            None,
            &ONE,
        )
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::PAYLOAD_TOO_LARGE);
        assert!(e.to_string().contains("exceed 4194304 bytes"), "{e}");
    }

    /// The filter's records (as `meshlog-otlp-load` sends them) and the flatten fixtures'
    /// values, as protobuf: read in place they make the same frames as decoded by prost, with
    /// and without a tenant; unmarked records go the map path (the view declines).
    #[test]
    fn protobuf_read_in_place_makes_the_same_frames_as_prost() {
        use meshlog_core::capture::MapSource;
        use meshlog_core::otlp::{Envelope, encode_log_record};
        use meshlog_core::redact::RedactionPolicy;
        use opentelemetry_proto::tonic::common::v1::{
            AnyValue, ArrayValue, KeyValue, KeyValueList, any_value::Value as V,
        };
        let policy = RedactionPolicy::default();
        let frags: Vec<Vec<u8>> = (0..20)
            .map(|i| {
                let src = MapSource::default()
                    .int("request.time", 1_764_000_000_000_000_000 + i)
                    .text("request.method", "GET")
                    .text("request.url_path", format!("/api/\"orders\"/{i}/é"))
                    .text("request.query", "page=2&user=jo%40example.com")
                    .int("response.code", if i % 5 == 0 { 503 } else { 200 })
                    .header(
                        "traceparent",
                        format!("00-{:032x}-{:016x}-01", i + 1, i + 1),
                    );
                let rec = meshlog_core::capture_http(&src, &policy, 1_764_000_000_001_000_000);
                let mut b = Vec::new();
                encode_log_record(&mut b, &rec);
                b
            })
            .collect();
        let filter = Envelope::new([("service.name", "shop"), ("meshlog.tenant", "spoof")])
            .wrap(frags.iter().map(Vec::as_slice), 0);
        let mut req = parse(&filter, WireFormat::Json).unwrap();
        // Every value type, nested ones included, on a marked record.
        let kv = |k: &str, v: V| KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..KeyValue::default()
        };
        let mut odd = req.resource_logs[0].scope_logs[0].log_records[0].clone();
        odd.body = Some(AnyValue {
            value: Some(V::KvlistValue(KeyValueList {
                values: vec![
                    kv("z", V::DoubleValue(f64::NAN)),
                    kv("a", V::BoolValue(true)),
                ],
            })),
        });
        odd.attributes.extend([
            kv(
                "list",
                V::ArrayValue(ArrayValue {
                    values: vec![AnyValue::default()],
                }),
            ),
            kv("d", V::DoubleValue(0.1)),
            kv("inf", V::DoubleValue(f64::INFINITY)),
            kv("raw", V::BytesValue(vec![0, 255])),
            kv("i", V::IntValue(-7)),
            kv("body", V::StringValue("renamed".into())),
            kv("dup", V::BoolValue(false)),
            kv("dup", V::BoolValue(true)),
            KeyValue {
                key: "none".into(),
                ..KeyValue::default()
            },
        ]);
        odd.observed_time_unix_nano = 0;
        req.resource_logs[0].scope_logs[0].log_records.push(odd);
        req.resource_logs.push(req.resource_logs[0].clone());
        req.resource_logs[1].resource = None;
        let bytes = req.encode_to_vec();
        let on = Redaction::default();
        let limits = Limits::default();
        let id = BatchId::parse(b"vm:1-20").ok();
        for tenant in [None, Some("bank")] {
            let viewed = prepare_view(&bytes, tenant, limits, 7, id.clone(), None, &on)
                .expect("the view reads the filter's records")
                .unwrap();
            let mut decoded = ExportLogsServiceRequest::decode(bytes.as_slice()).unwrap();
            stamp_tenant(&mut decoded, tenant);
            let mapped = prepare_request(&decoded, limits, 7, id.clone(), None, &ONE, &on).unwrap();
            assert_eq!(viewed.len(), 1);
            assert_eq!(mapped.len(), 1);
            assert_eq!(
                viewed[0].1.bytes(),
                mapped[0].1.bytes(),
                "tenant {tenant:?}"
            );
            assert_eq!(viewed[0].1.records(), 42);
            // The records kept for the subscriptions, member indexes included.
            let kept = viewed[0].1.plain().expect("records kept");
            assert_eq!(Some(kept), mapped[0].1.plain(), "tenant {tenant:?}");
            assert!(kept.records().all(|(line, m, shape)| !m.is_empty()
                && line[m[0] as usize] == b'"'
                && shape != 0));
        }
        // An unmarked record needs the collector's redaction: the view declines.
        let mut unmarked = req.clone();
        unmarked.resource_logs[0].scope_logs[0].log_records[3]
            .attributes
            .retain(|kv| kv.key != redact::POLICY_VERSION);
        let bytes = unmarked.encode_to_vec();
        assert!(prepare_view(&bytes, None, limits, 7, None, None, &on).is_none());
        assert!(prepare_view(&bytes, None, limits, 7, None, None, &Redaction::off()).is_some());
        // Malformed protobuf: declined, and prost names the message.
        assert!(
            prepare_view(&bytes[..bytes.len() - 3], None, limits, 7, None, None, &on).is_none()
        );
        let e = prepare(
            &bytes[..bytes.len() - 3],
            WireFormat::Protobuf,
            BodyEncoding::Identity,
            limits,
            7,
            None,
            None,
            &ONE,
        )
        .unwrap_err();
        assert!(e.to_string().contains("ExportLogsServiceRequest"), "{e}");
        // A key that is not UTF-8: declined by the view; prost's error names the field.
        let mut bad = ExportLogsServiceRequest::default();
        bad.resource_logs.push(req.resource_logs[1].clone());
        bad.resource_logs[0].scope_logs[0].log_records[0]
            .attributes
            .push(kv("KEY~", V::IntValue(1)));
        let mut bytes = bad.encode_to_vec();
        let at = bytes.windows(4).position(|w| w == b"KEY~").unwrap() + 3;
        bytes[at] = 0xff;
        assert!(prepare_view(&bytes, None, limits, 7, None, None, &on).is_none());
        let e = prepare(
            &bytes,
            WireFormat::Protobuf,
            BodyEncoding::Identity,
            limits,
            7,
            None,
            None,
            &ONE,
        )
        .unwrap_err();
        assert_eq!(e.status(), StatusCode::BAD_REQUEST);
        assert!(e.to_string().contains("KeyValue.key"), "{e}");
    }
}
